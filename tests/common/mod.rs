//! Test support: one real PostgreSQL sandbox per test binary, a fresh
//! database per test, a project directory per test, and the built binary.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use migsafe::sandbox::Sandbox;

static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The sandbox of this test binary (started on first use; the watchdog
/// removes it when the binary exits).
pub fn sandbox() -> &'static Sandbox {
    SANDBOX.get_or_init(|| Sandbox::start().expect("the test sandbox must start"))
}

static REPLICATED: OnceLock<Sandbox> = OnceLock::new();

/// A second sandbox of this test binary, with one streaming standby
/// (`standby1`), started on first use.
pub fn replicated() -> &'static Sandbox {
    REPLICATED.get_or_init(|| {
        Sandbox::start_with_standbys(1).expect("the sandbox with a standby must start")
    })
}

/// A fresh database on the sandbox.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    /// Creates `t_<pid>_<n>` from template0.
    pub fn new() -> TestDb {
        TestDb::on(sandbox())
    }

    /// Creates `t_<pid>_<n>` from template0 with `CREATE DATABASE` options
    /// (`ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'`).
    #[allow(dead_code)]
    pub fn with_options(options: &str) -> TestDb {
        TestDb::create(sandbox(), options)
    }

    /// Creates `t_<pid>_<n>` from template0 on `sandbox`.
    pub fn on(sandbox: &Sandbox) -> TestDb {
        TestDb::create(sandbox, "")
    }

    fn create(sandbox: &Sandbox, options: &str) -> TestDb {
        let name = format!(
            "t_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        query(
            &sandbox.url("postgres"),
            &format!("CREATE DATABASE {name} TEMPLATE template0 {options}"),
        );
        TestDb {
            url: sandbox.url(&name),
            name,
        }
    }

    /// Runs SQL, returns the rows as text.
    pub fn query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        query(&self.url, sql)
    }

    /// The first column of the first row.
    pub fn scalar(&self, sql: &str) -> Option<String> {
        self.query(sql)
            .into_iter()
            .next()
            .and_then(|row| row.into_iter().next().flatten())
    }

    /// Whether a relation exists.
    pub fn exists(&self, relation: &str) -> bool {
        self.scalar(&format!("SELECT to_regclass('{relation}') IS NOT NULL"))
            .as_deref()
            == Some("t")
    }

    /// History rows as (version, dirty).
    pub fn history(&self, namespace: &str) -> Vec<(String, bool)> {
        if !self.exists("migsafe.schema_migrations") {
            return Vec::new();
        }
        self.query(&format!(
            "SELECT version, dirty::text FROM migsafe.schema_migrations WHERE namespace = '{namespace}' ORDER BY applied_at, version"
        ))
        .into_iter()
        .map(|row| (row[0].clone().unwrap(), row[1].as_deref() == Some("true")))
        .collect()
    }
}

/// Runs SQL with the simple query protocol on a throwaway runtime.
pub fn query(url: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let messages = client
            .simple_query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        messages
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_string))
                        .collect(),
                ),
                _ => None,
            })
            .collect()
    })
}

/// A project directory with the given files.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new(files: &[(&str, &str)]) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let project = Project { dir };
        for (path, text) in files {
            project.write(path, text.as_bytes());
        }
        project
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, path: &str, bytes: &[u8]) {
        let target = self.dir.path().join(path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, bytes).unwrap();
    }

    pub fn remove(&self, path: &str) {
        std::fs::remove_file(self.dir.path().join(path)).unwrap();
    }

    /// `migsafe` in this project against `db`.
    pub fn migsafe(&self, db: &TestDb) -> assert_cmd::Command {
        let mut command = migsafe_command();
        command
            .current_dir(self.path())
            .env("DATABASE_URL", &db.url);
        command
    }

    /// Runs `migsafe ARGS` here against `db`, asserts the exit code, and
    /// returns everything it printed.
    pub fn run(&self, db: &TestDb, args: &[&str], code: i32) -> String {
        expect_exit(&self.migsafe(db).args(args).output().unwrap(), code)
    }

    /// Starts `migsafe ARGS` here against `db` in the background, its output
    /// piped (for tests that signal it or act while it runs).
    pub fn spawn(&self, db: &TestDb, args: &[&str]) -> std::process::Child {
        std::process::Command::new(migsafe_bin())
            .current_dir(self.path())
            .env("DATABASE_URL", &db.url)
            .env("NO_COLOR", "1")
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// The event log text.
    pub fn event_log(&self) -> String {
        std::fs::read_to_string(self.path().join("logs/migrations.jsonl")).unwrap_or_default()
    }
}

/// The built binary with a clean environment.
pub fn migsafe_command() -> assert_cmd::Command {
    let mut command = assert_cmd::Command::cargo_bin("migsafe").unwrap();
    command
        .env_remove("DATABASE_URL")
        .env_remove("MIGSAFE_CONFIG")
        .env_remove("PGPASSWORD")
        .env("NO_COLOR", "1")
        .timeout(std::time::Duration::from_secs(120));
    command
}

/// The path of the built binary (for spawning many at once).
pub fn migsafe_bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("migsafe")
}

/// Stdout and stderr as one string.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Asserts the exit code and returns everything printed.
pub fn expect_exit(output: &Output, code: i32) -> String {
    let all = text(output);
    assert_eq!(
        output.status.code(),
        Some(code),
        "unexpected exit code; output:\n{all}"
    );
    all
}

/// Asserts that no byte printed, logged or reported holds `secret`.
pub fn assert_no_secret(project: &Project, output: &Output, secret: &str) {
    assert!(
        !text(output).contains(secret),
        "the password leaked into the output:\n{}",
        text(output)
    );
    for entry in walk(project.path()) {
        if let Ok(content) = std::fs::read(&entry) {
            assert!(
                !String::from_utf8_lossy(&content).contains(secret),
                "the password leaked into {}",
                entry.display()
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// A simple reversible two-migration project in the default namespace.
pub fn two_tables() -> Project {
    Project::new(&[
        (
            "migrations/0001_create_users.up.sql",
            "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL);\n",
        ),
        (
            "migrations/0001_create_users.down.sql",
            "DROP TABLE users;\n",
        ),
        (
            "migrations/0002_create_orders.up.sql",
            "CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint REFERENCES users (id));\n",
        ),
        (
            "migrations/0002_create_orders.down.sql",
            "DROP TABLE orders;\n",
        ),
    ])
}

/// Waits until a session other than ours runs a query containing `marker`.
pub fn wait_for_query(db: &TestDb, marker: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let sql = format!(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND datname = current_database() AND pid <> pg_backend_pid() AND query LIKE '%{marker}%' AND query NOT LIKE '%pg_stat_activity%'"
        );
        if db.scalar(&sql).as_deref() != Some("0") {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no session ran {marker} within 30s");
}

/// Runs `sql` as one batch on a connection of its own (application_name
/// `blocker`) on a thread, until it ends or its backend is terminated (the
/// error that gives is expected and ignored).
#[allow(dead_code)]
pub fn run_in_background(db: &TestDb, sql: &str) -> std::thread::JoinHandle<()> {
    let (url, sql) = (db.url.clone(), sql.to_string());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            let _ = client
                .batch_execute(&format!("SET application_name = 'blocker'; {sql}"))
                .await;
        });
    })
}

/// Holds `lock_sql` in an open transaction on another connection until
/// `release` fires; returns once the lock is held.
pub fn hold_lock(db: &TestDb, lock_sql: &str) -> (mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (locked_tx, locked_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let url = db.url.clone();
    let sql = lock_sql.to_string();
    let handle = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            client
                .batch_execute(&format!("SET application_name = 'blocker'; BEGIN; {sql}"))
                .await
                .unwrap();
            locked_tx.send(()).unwrap();
            let _ = tokio::task::spawn_blocking(move || release_rx.recv()).await;
            client.batch_execute("COMMIT").await.unwrap();
        });
    });
    locked_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    (release_tx, handle)
}

/// 50 migrations: tables with data, a few no-transaction index builds, all
/// reversible, some slow enough to be killed in the middle of.
pub fn fifty() -> Project {
    let project = Project::new(&[("migsafe.toml", "[defaults]\nlock_wait = \"60s\"\n")]);
    for i in 1..=50 {
        let (up, down) = if i % 10 == 0 {
            (
                format!(
                    "-- migsafe:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS t{p}_v ON t{p} (v);\nSELECT pg_sleep(0.02);\n",
                    p = i - 1
                ),
                format!(
                    "-- migsafe:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS t{p}_v;\n",
                    p = i - 1
                ),
            )
        } else {
            (
                format!(
                    "CREATE TABLE t{i} (id bigint PRIMARY KEY, v text);\nINSERT INTO t{i} SELECT g, 'v' || g FROM generate_series(1, 200) g;\nSELECT pg_sleep(0.01);\n"
                ),
                format!("DROP TABLE t{i};\n"),
            )
        };
        project.write(&format!("migrations/{i:04}_m{i}.up.sql"), up.as_bytes());
        project.write(&format!("migrations/{i:04}_m{i}.down.sql"), down.as_bytes());
    }
    project
}

pub fn checksum(project: &Project, db: &TestDb) -> String {
    let output = project
        .migsafe(db)
        .args(["schema", "checksum"])
        .output()
        .unwrap();
    expect_exit(&output, 0);
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// For the `fifty()` set: the history says exactly what the schema has — one
/// table per applied table migration, nothing half-created.
pub fn history_matches_tables(db: &TestDb) -> bool {
    let applied_tables = db
        .history("default")
        .iter()
        .filter(|(v, _)| v.parse::<u32>().unwrap() % 10 != 0)
        .count();
    let tables: usize = db
        .scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename ~ '^t[0-9]+$'")
        .unwrap()
        .parse()
        .unwrap();
    tables == applied_tables
}

/// A SQLite cutover project: `kinds` and `events` (`rows` rows, ids with
/// gaps, big enough to load in parts), the schema as its migration, the file
/// as `app.db`. Returns the open SQLite file too, to change it.
pub fn events_project(rows: u32) -> (Project, rusqlite::Connection) {
    let project = Project::new(&[
        (
            "migrations/0001_events.up.sql",
            "CREATE TABLE kinds (id int PRIMARY KEY, name text NOT NULL);
             CREATE TABLE events (id bigint PRIMARY KEY, kind_id int NOT NULL REFERENCES kinds (id),
                                  at timestamptz NOT NULL, payload text);",
        ),
        (
            "migrations/0001_events.down.sql",
            "DROP TABLE events, kinds;",
        ),
    ]);
    let db = rusqlite::Connection::open(project.path().join("app.db")).unwrap();
    db.execute_batch(
        &"CREATE TABLE kinds (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         INSERT INTO kinds VALUES (1, 'click'), (2, 'view');
         CREATE TABLE events (id INTEGER PRIMARY KEY, kind_id INTEGER NOT NULL, at TEXT NOT NULL, payload TEXT);
         WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ?1)
         INSERT INTO events SELECT i * 3, 1 + i % 2, '2024-05-01 10:00:00', 'event ' || i FROM s;
         DELETE FROM events WHERE id % 7 = 0;"
            .replace("?1", &rows.to_string()),
    )
    .unwrap();
    (project, db)
}

/// A migsafe process whose stderr is followed line by line.
pub struct Running {
    pub child: std::process::Child,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStderr>>,
    /// Everything it printed on stderr so far.
    pub seen: String,
}

impl Running {
    /// Starts `migsafe ARGS` in `project` against `db` and returns once it
    /// printed a stderr line starting with `marker`.
    pub fn until(project: &Project, db: &TestDb, args: &[&str], marker: &str) -> Running {
        use std::io::BufRead;
        let mut child = std::process::Command::new(migsafe_bin())
            .current_dir(project.path())
            .env("DATABASE_URL", &db.url)
            .env("NO_COLOR", "1")
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut running = Running {
            lines: std::io::BufReader::new(child.stderr.take().unwrap()).lines(),
            child,
            seen: String::new(),
        };
        for line in running.lines.by_ref() {
            let line = line.unwrap();
            running.seen.push_str(&line);
            running.seen.push('\n');
            if line.starts_with(marker) {
                return running;
            }
        }
        panic!(
            "migsafe ended before printing {marker:?}:\n{}",
            running.seen
        );
    }

    /// `cutover sqlite run` of an [`events_project`], some way into loading
    /// `events` (to interrupt it there).
    pub fn cutover_mid_load(project: &Project, db: &TestDb) -> Running {
        let running = Running::until(
            project,
            db,
            &[
                "cutover",
                "sqlite",
                "run",
                "--from",
                "app.db",
                "--skip-backup",
            ],
            "copying events",
        );
        std::thread::sleep(Duration::from_millis(300));
        running
    }

    /// Sends SIGINT, as Ctrl-C in a terminal does.
    pub fn interrupt(&self) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
    }

    /// Reads the rest of stderr, waits, and returns the exit code and all it printed.
    pub fn finish(mut self) -> (Option<i32>, String) {
        for line in self.lines.by_ref() {
            self.seen.push_str(&line.unwrap());
            self.seen.push('\n');
        }
        let status = self.child.wait().unwrap();
        (status.code(), self.seen)
    }
}
