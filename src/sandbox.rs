//! A throwaway PostgreSQL server from the installed server binaries, for
//! `migsafe sandbox`, `migsafe demo` and the tests.
//!
//! It runs initdb in a fresh temporary directory (as the `postgres` user when
//! migsafe runs as root, since PostgreSQL refuses to run as root), starts on a
//! free loopback port with a private socket directory, and waits until it
//! accepts connections. It removes itself on drop, and a small watchdog
//! process holding the read end of a pipe from us stops the server and deletes
//! the directory if we die any other way (SIGKILL, a panic outside unwinding,
//! a test binary exiting without running destructors).
//!
//! It can also start streaming standbys of itself (`pg_basebackup -R`, each
//! with its own port and data directory under the same temporary directory,
//! stopped and removed with the primary), for replica-lag tests and
//! `migsafe sandbox --standbys N`.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::error::{Code, Error, ReasonCode, Result};

/// The superuser of every sandbox.
pub const SUPERUSER: &str = "postgres";

/// A running throwaway server.
pub struct Sandbox {
    root: Option<tempfile::TempDir>,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    bin_dir: PathBuf,
    port: u16,
    password: String,
    run_as: Option<(nix::unistd::Uid, nix::unistd::Gid)>,
    watchdog: Option<Child>,
    stopped: bool,
    standbys: Vec<Standby>,
}

/// A streaming standby of a [`Sandbox`] (read-only, hot standby).
#[derive(Debug, Clone)]
pub struct Standby {
    name: String,
    data_dir: PathBuf,
    port: u16,
    password: String,
}

impl Standby {
    /// Its name: `standby1`, `standby2`… (its `cluster_name`, so the
    /// primary's `pg_stat_replication.application_name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its loopback TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A URL for `dbname` on the standby (same superuser and password).
    pub fn url(&self, dbname: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{dbname}?sslmode=disable",
            self.password, self.port
        )
    }
}

fn failed(message: impl Into<String>) -> Error {
    Error::Sandbox {
        reason: ReasonCode::new(Code::SandboxFailed),
        message: message.into(),
        source: None,
    }
}

const INSTALL_HINT: &str = "install the PostgreSQL server (Debian: apt-get install postgresql) or point MIGSAFE_PG_BIN at the directory holding initdb and pg_ctl";

/// Finds the directory holding `initdb` and `pg_ctl`: `$MIGSAFE_PG_BIN`,
/// then `PATH`, then `pg_config --bindir`, then the newest
/// `/usr/lib/postgresql/*/bin`.
pub fn find_bin_dir() -> Result<PathBuf> {
    // Follow symlinks (/usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb)
    // so psql and pg_dump of the same version are found next to it.
    find_linked_bin_dir().map(|dir| {
        std::fs::canonicalize(dir.join("initdb"))
            .ok()
            .and_then(|real| real.parent().map(Path::to_path_buf))
            .filter(|real| real.join("pg_ctl").is_file())
            .unwrap_or(dir)
    })
}

fn find_linked_bin_dir() -> Result<PathBuf> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("MIGSAFE_PG_BIN") {
        let dir = PathBuf::from(dir);
        if has_server(&dir) {
            return Ok(dir);
        }
        return Err(failed(format!(
            "MIGSAFE_PG_BIN={} holds no initdb and pg_ctl",
            dir.display()
        )));
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if has_server(&dir) {
                return Ok(dir);
            }
        }
    }
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output()
        && output.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if has_server(&dir) {
            return Ok(dir);
        }
    }
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let version = e.file_name().to_str()?.parse::<u32>().ok()?;
                    Some((version, e.path().join("bin")))
                })
                .filter(|(_, dir)| has_server(dir))
                .collect()
        })
        .unwrap_or_default();
    candidates.sort();
    candidates.pop().map(|(_, dir)| dir).ok_or_else(|| {
        failed(format!(
            "no PostgreSQL server binaries (initdb, pg_ctl) found; {INSTALL_HINT}"
        ))
    })
}

impl Sandbox {
    /// Creates, starts and waits for a new server.
    pub fn start() -> Result<Sandbox> {
        let bin_dir = find_bin_dir()?;
        let run_as = if nix::unistd::geteuid().is_root() {
            let user = nix::unistd::User::from_name(SUPERUSER)
                .ok()
                .flatten()
                .ok_or_else(|| failed("running as root, but there is no `postgres` user to run the server as (PostgreSQL refuses to run as root); create one or run as a normal user"))?;
            Some((user.uid, user.gid))
        } else {
            None
        };
        // MIGSAFE_SANDBOX_DIR puts the server elsewhere (tmpfs for benchmarks
        // and tests: no disk noise, nothing left on disk).
        let base = std::env::var_os("MIGSAFE_SANDBOX_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let root = tempfile::Builder::new()
            .prefix("migsafe-sandbox-")
            .tempdir_in(&base)
            .map_err(|e| failed(format!("cannot create a temporary directory: {e}")))?;
        let data_dir = root.path().join("data");
        let socket_dir = root.path().join("socket");
        std::fs::create_dir(&socket_dir)
            .map_err(|e| failed(format!("cannot create the socket directory: {e}")))?;
        let password: String = std::iter::repeat_with(fastrand::alphanumeric)
            .take(24)
            .collect();
        let pwfile = root.path().join("pwfile");
        write_private(&pwfile, password.as_bytes())?;
        give_to(
            run_as,
            &[root.path(), socket_dir.as_path(), pwfile.as_path()],
        )?;
        let mut sandbox = Sandbox {
            root: Some(root),
            data_dir,
            socket_dir,
            bin_dir,
            port: 0,
            password,
            run_as,
            watchdog: None,
            stopped: false,
            standbys: Vec::new(),
        };
        sandbox.spawn_watchdog()?;
        let initdb = sandbox
            .command("initdb")
            .arg("-D")
            .arg(&sandbox.data_dir)
            .args(["-U", SUPERUSER, "-E", "UTF8", "--locale=C", "--no-sync"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .map_err(|e| failed(format!("cannot run initdb: {e}")))?;
        let _ = std::fs::remove_file(&pwfile);
        if !initdb.status.success() {
            return Err(failed(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&initdb.stderr).trim()
            )));
        }
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port()?;
            match sandbox.start_on(port) {
                Ok(()) => {
                    sandbox.port = port;
                    return Ok(sandbox);
                }
                Err(message) => last_error = message,
            }
        }
        Err(failed(format!("the server did not start: {last_error}")))
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin_dir.join(program));
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid.as_raw()).gid(gid.as_raw());
            // The server inherits the environment; keep root's HOME out of it.
            command.env("HOME", &self.socket_dir);
        }
        command.env_remove("PGDATA").env("LC_ALL", "C");
        command
    }

    fn server_log(&self) -> PathBuf {
        self.root.as_ref().map_or_else(
            || self.data_dir.join("server.log"),
            |r| r.path().join("server.log"),
        )
    }

    /// fsync and full-page writes are off (a sandbox need not survive an
    /// operating-system crash), but commits are synchronous: a crash of the
    /// server process itself loses nothing, which the crash tests rely on.
    fn start_on(&self, port: u16) -> Result<(), String> {
        self.start_server(&self.data_dir, &self.server_log(), port, "")
    }

    /// The server options of the primary and its standbys (a hot standby
    /// needs max_connections and max_locks_per_transaction at least the
    /// primary's). WAL is kept at `replica` level with walsenders free, so
    /// standbys can be added at any time.
    fn start_server(
        &self,
        data_dir: &Path,
        log: &Path,
        port: u16,
        extra: &str,
    ) -> Result<(), String> {
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c full_page_writes=off -c max_connections=300 -c shared_buffers=128MB \
             -c max_locks_per_transaction=256 -c log_min_messages=warning -c log_statement=none \
             -c wal_level=replica -c max_wal_senders=10 -c hot_standby=on{extra}",
            self.socket_dir.display()
        );
        let output = self
            .command("pg_ctl")
            .arg("-D")
            .arg(data_dir)
            .arg("-l")
            .arg(log)
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run pg_ctl: {e}"))?;
        if output.status.success() {
            return Ok(());
        }
        let log = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(10).collect();
        Err(format!(
            "{} {}",
            String::from_utf8_lossy(&output.stderr).trim(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ))
    }

    fn spawn_watchdog(&mut self) -> Result<()> {
        let Some(root) = &self.root else {
            return Ok(());
        };
        // Blocks on stdin until our end of the pipe closes (we exit or stop),
        // then stops the server with SIGQUIT (immediate shutdown) and deletes
        // the directory. It runs as us, not as the server's user: root may
        // signal the server, and may delete the directory wherever it is.
        let script = r#"while read -r _; do :; done
for pidfile in "$0/postmaster.pid" "$1"/standby*/postmaster.pid; do
  [ -f "$pidfile" ] || continue
  pid=$(head -n 1 "$pidfile")
  kill -QUIT "$pid" 2>/dev/null
  i=0
  while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
done
rm -rf "$1""#;
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(script)
            .arg(&self.data_dir)
            .arg(root.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let child = command
            .spawn()
            .map_err(|e| failed(format!("cannot start the sandbox watchdog: {e}")))?;
        self.watchdog = Some(child);
        Ok(())
    }

    /// The loopback TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser password (the server uses scram-sha-256 over TCP).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The directory of the server binaries (pg_dump, psql… of the same version).
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A URL for `dbname` as the superuser, with the password.
    pub fn url(&self, dbname: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{dbname}?sslmode=disable",
            self.password, self.port
        )
    }

    /// Runs `pg_ctl <args>` against this server (restart, stop -m immediate…),
    /// for tests that need a server that goes away.
    pub fn pg_ctl(&self, args: &[&str]) -> Result<()> {
        let output = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(self.server_log())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| failed(format!("cannot run pg_ctl: {e}")))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(failed(format!(
                "pg_ctl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            )))
        }
    }

    /// Turns TLS on with the given PEM certificate (chain) and key, and waits
    /// until the server has reloaded its configuration. For TLS tests.
    pub fn enable_tls(&self, cert_pem: &str, key_pem: &str) -> Result<()> {
        let cert = self.data_dir.join("server.crt");
        let key = self.data_dir.join("server.key");
        let _ = std::fs::remove_file(&cert);
        let _ = std::fs::remove_file(&key);
        write_private(&cert, cert_pem.as_bytes())?;
        write_private(&key, key_pem.as_bytes())?;
        let conf = self.data_dir.join("postgresql.auto.conf");
        let mut settings = std::fs::read_to_string(&conf).unwrap_or_default();
        settings
            .push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        std::fs::write(&conf, settings)
            .map_err(|e| failed(format!("cannot write {}: {e}", conf.display())))?;
        give_to(self.run_as, &[cert.as_path(), key.as_path()])?;
        self.pg_ctl(&["reload"])?;
        // Reload is asynchronous; the postmaster has applied it once the log says so.
        std::thread::sleep(std::time::Duration::from_millis(500));
        Ok(())
    }

    /// A primary with `count` streaming standbys, each caught up and
    /// streaming when this returns.
    pub fn start_with_standbys(count: usize) -> Result<Sandbox> {
        let mut sandbox = Sandbox::start()?;
        for _ in 0..count {
            sandbox.add_standby()?;
        }
        Ok(sandbox)
    }

    /// The standbys started so far, in order.
    pub fn standbys(&self) -> &[Standby] {
        &self.standbys
    }

    /// Adds one streaming standby: `pg_basebackup -R` of this server into a
    /// new data directory beside its own, started on a free port with
    /// `cluster_name = standbyN`; returns once the primary sees it streaming.
    pub fn add_standby(&mut self) -> Result<Standby> {
        let Some(root) = &self.root else {
            return Err(failed("the sandbox is stopped"));
        };
        let name = format!("standby{}", self.standbys.len() + 1);
        let data_dir = root.path().join(&name);
        let log = root.path().join(format!("{name}.log"));
        let backup = self
            .command("pg_basebackup")
            .arg("-D")
            .arg(&data_dir)
            .arg("-h")
            .arg(&self.socket_dir)
            .args(["-p", &self.port.to_string(), "-U", SUPERUSER])
            .args(["-R", "-X", "stream", "-c", "fast", "--no-sync"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| failed(format!("cannot run pg_basebackup: {e}")))?;
        if !backup.status.success() {
            return Err(failed(format!(
                "pg_basebackup failed: {}",
                String::from_utf8_lossy(&backup.stderr).trim()
            )));
        }
        let extra = format!(" -c cluster_name={name}");
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port()?;
            match self.start_server(&data_dir, &log, port, &extra) {
                Ok(()) => {
                    let standby = Standby {
                        name: name.clone(),
                        data_dir: data_dir.clone(),
                        port,
                        password: self.password.clone(),
                    };
                    self.standbys.push(standby.clone());
                    self.wait_streaming(&name)?;
                    return Ok(standby);
                }
                Err(message) => last_error = message,
            }
        }
        Err(failed(format!("the standby did not start: {last_error}")))
    }

    /// Waits (up to a minute) until the primary lists `name` as streaming.
    fn wait_streaming(&self, name: &str) -> Result<()> {
        let sql = format!(
            "SELECT count(*) FROM pg_stat_replication WHERE application_name = '{name}' AND state = 'streaming'"
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            let output = self
                .command("psql")
                .arg("-h")
                .arg(&self.socket_dir)
                .args([
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    SUPERUSER,
                    "-d",
                    "postgres",
                ])
                .args(["-X", "-A", "-t", "-c", &sql])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| failed(format!("cannot run psql: {e}")))?;
            if String::from_utf8_lossy(&output.stdout).trim() == "1" {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Err(failed(format!(
            "standby {name} did not start streaming within 60s"
        )))
    }

    /// Stops the server (its standbys first) and removes its directory.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        for standby in std::mem::take(&mut self.standbys) {
            let _ = self
                .command("pg_ctl")
                .arg("-D")
                .arg(&standby.data_dir)
                .args(["-m", "fast", "-w", "stop"])
                .stdin(Stdio::null())
                .output();
        }
        let _ = self.pg_ctl(&["-m", "fast", "-w", "stop"]);
        if let Some(mut watchdog) = self.watchdog.take() {
            drop(watchdog.stdin.take());
            let _ = watchdog.wait();
        }
        if let Some(root) = self.root.take() {
            let _ = root.close();
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Hands files to the user the server runs as (when we run as root).
fn give_to(run_as: Option<(nix::unistd::Uid, nix::unistd::Gid)>, paths: &[&Path]) -> Result<()> {
    let Some((uid, gid)) = run_as else {
        return Ok(());
    };
    for path in paths {
        std::os::unix::fs::chown(path, Some(uid.as_raw()), Some(gid.as_raw())).map_err(|e| {
            failed(format!(
                "cannot hand {} to the postgres user: {e}",
                path.display()
            ))
        })?;
    }
    Ok(())
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| failed(format!("cannot find a free port: {e}")))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| failed(format!("cannot find a free port: {e}")))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| failed(format!("cannot write {}: {e}", path.display())))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| failed(format!("cannot protect {}: {e}", path.display())))?;
    file.write_all(bytes)
        .map_err(|e| failed(format!("cannot write {}: {e}", path.display())))
}
