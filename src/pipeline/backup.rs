//! Backups with pg_dump (custom format) before a migration, and their
//! listing, verification and restore.
//!
//! A backup is written under a temporary name, read back with
//! `pg_restore --list`, and only then renamed to `backup-<timestamp>.dump`:
//! a file with that name is always a complete, readable dump. Beside it,
//! `backup-<timestamp>.dump.json` records which database on which server it
//! came from (a dump's own header names the database, not the server). Files
//! are 0600 in a 0700 directory. Credentials reach pg_dump through its
//! environment, never its arguments.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use chrono::Utc;
use serde::Serialize;

use crate::config::Config;
use crate::db::catalog::server_version;
use crate::db::{ConnectionSettings, Db, scrub};
use crate::error::{Code, Error, ReasonCode, Result};
use crate::events::{Event, EventSink, Interrupt};
use crate::report::create_private_dir;

/// The pointer to the newest backup.
pub const LATEST: &str = "latest-backup.txt";

/// A backup file.
#[derive(Debug, Clone, Serialize)]
pub struct BackupFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Entries in its table of contents (when verified).
    pub entries: Option<usize>,
    /// The database it is a dump of (`dbname:` of its header, or its
    /// origin file), when known.
    pub database: Option<String>,
    /// The server it was dumped from, `host:port`, when recorded.
    pub server: Option<String>,
}

/// `<dump>.json`: where a backup migsafe wrote came from.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
struct Origin {
    schema_version: u32,
    database: Option<String>,
    server: Option<String>,
}

/// The origin file of a dump.
fn origin_path(dump: &Path) -> PathBuf {
    let mut name = dump.as_os_str().to_os_string();
    name.push(".json");
    PathBuf::from(name)
}

fn read_origin(dump: &Path) -> Option<Origin> {
    let text = std::fs::read_to_string(origin_path(dump)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Ctrl-C while pg_dump ran: stopped, nothing kept, nothing changed.
fn interrupted() -> Error {
    Error::Refused {
        reason: ReasonCode::new(Code::Interrupted),
        message: "interrupted during the backup: pg_dump was stopped and its partial file removed; no migration ran and nothing was changed".into(),
        hint: Some("run the command again when ready".into()),
        source: None,
    }
}

fn failed(message: impl Into<String>) -> Error {
    Error::Refused {
        reason: ReasonCode::new(Code::BackupFailed),
        message: message.into(),
        hint: Some("nothing was changed; fix the backup problem, or pass --skip-backup if you have another backup".into()),
     source: None, }
}

/// Tools found in this process, by name and server major version. Finding
/// one asks every candidate its `--version` (on Debian `/usr/bin/pg_dump` is
/// a Perl wrapper: tens of milliseconds each, and blocking): a fleet would pay
/// that for every database, twice, although what is installed does not change
/// during one run. Failures are not kept: they are asked again.
static FOUND: std::sync::Mutex<Vec<(String, u32, PathBuf)>> = std::sync::Mutex::new(Vec::new());

/// A PostgreSQL client tool (`pg_dump`, `pg_restore`) at least as new as the
/// server: the same major version when installed, else the newest newer one.
/// Found once per process for each name and server version.
pub fn find_tool(name: &str, server_major: u32) -> Result<PathBuf> {
    let found = || {
        FOUND
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    if let Some((_, _, path)) = found()
        .iter()
        .find(|(n, major, _)| n == name && *major == server_major)
    {
        return Ok(path.clone());
    }
    let path = look_for_tool(name, server_major)?;
    found().push((name.to_string(), server_major, path.clone()));
    Ok(path)
}

/// [`find_tool`] without the memory.
fn look_for_tool(name: &str, server_major: u32) -> Result<PathBuf> {
    let mut candidates: Vec<(u32, PathBuf)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        for entry in entries.flatten() {
            if let Some(major) = entry
                .file_name()
                .to_str()
                .and_then(|v| v.parse::<u32>().ok())
            {
                let path = entry.path().join("bin").join(name);
                if path.is_file() {
                    candidates.push((major, path));
                }
            }
        }
    }
    // The server's own version, installed the Debian way: the first exact
    // match below would be this one whatever else is found, so the other
    // candidates need not be asked their version (on Debian, PATH's
    // pg_dump is a Perl wrapper; each `--version` costs tens of ms).
    if let Some((_, path)) = candidates.iter().find(|(major, _)| *major == server_major) {
        return Ok(path.clone());
    }
    if let Ok(dir) = crate::sandbox::find_bin_dir() {
        let path = dir.join(name);
        if let Some(major) = tool_major(&path) {
            candidates.push((major, path));
        }
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let path = dir.join(name);
            if let Some(major) = tool_major(&path) {
                candidates.push((major, path));
            }
        }
    }
    if let Some((_, path)) = candidates.iter().find(|(major, _)| *major == server_major) {
        return Ok(path.clone());
    }
    let newest_newer = candidates
        .iter()
        .filter(|(major, _)| *major > server_major)
        .min_by_key(|(major, _)| *major);
    if let Some((_, path)) = newest_newer {
        return Ok(path.clone());
    }
    let found = candidates.iter().map(|(m, _)| *m).max();
    Err(Error::Refused {
        reason: ReasonCode::new(Code::BackupToolTooOld),
        message: match found {
            Some(major) => format!(
                "{name} {major} is older than the server (PostgreSQL {server_major}); {name} cannot dump a newer server"
            ),
            None => format!("{name} was not found"),
        },
        hint: Some(format!(
            "install the client tools of the server's version (Debian: apt-get install postgresql-client-{server_major}), or pass --skip-backup"
        )),
        source: None,
    })
}

fn tool_major(path: &Path) -> Option<u32> {
    let output = std::process::Command::new(path)
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text.split_whitespace().last()?;
    version.split('.').next()?.parse().ok()
}

/// How often a running pg_dump's progress is sent.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Dumps the database into the backup directory; returns the verified file.
pub(crate) async fn create(
    config: &Config,
    settings: &ConnectionSettings,
    db: &Db,
    events: &dyn EventSink,
    interrupt: &Interrupt,
) -> Result<BackupFile> {
    create_keeping(config, settings, db, events, None, interrupt).await
}

/// [`create`], never pruning `protect` (the dump a restore is about to read).
async fn create_keeping(
    config: &Config,
    settings: &ConnectionSettings,
    db: &Db,
    events: &dyn EventSink,
    protect: Option<&Path>,
    interrupt: &Interrupt,
) -> Result<BackupFile> {
    let started = Instant::now();
    let (_, version_num) = server_version(db).await?;
    let server_major = u32::try_from(version_num / 10_000).unwrap_or(0);
    let pg_dump = find_tool("pg_dump", server_major)?;
    let pg_restore = find_tool("pg_restore", server_major)?;
    let dir = &config.backup.dir;
    create_private_dir(dir)?;
    let stamp = crate::report::file_stamp(Utc::now());
    let final_path = dir.join(format!("backup-{stamp}.dump"));
    let partial = dir.join(format!(".backup-{stamp}.dump.partial"));
    // Created 0600 before pg_dump opens it, so it is never readable by others.
    private_file(&partial)?;
    // A rotated password is asked for now, as for a connection.
    let env = settings.current().await?.libpq_env();
    // A stop request stops pg_dump, which cancels its query on the server.
    // The dump's size as it grows, for a progress bar (pg_dump says nothing
    // of its own progress; the compressed size has no known total).
    let output = super::child::output(
        tokio::process::Command::new(&pg_dump)
            .args(["--format=custom", "--no-password", "--file"])
            .arg(&partial)
            .envs(env),
        super::child::OnStop::Stop(interrupt),
        PROGRESS_EVERY,
        || {
            events.emit(&Event::Progress {
                task: "backup".into(),
                done: std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0),
                total: None,
                unit: "bytes".into(),
            });
        },
    )
    .await;
    let output = match output {
        Ok(output) => output,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            if e.kind() == std::io::ErrorKind::Interrupted {
                return Err(interrupted());
            }
            return Err(failed(format!("cannot run {}: {e}", pg_dump.display())));
        }
    };
    // Stopped by a signal of its own (a kill of its process group).
    if !output.status.success() && interrupt.is_triggered() {
        let _ = std::fs::remove_file(&partial);
        return Err(interrupted());
    }
    if !output.status.success() {
        let _ = std::fs::remove_file(&partial);
        return Err(failed(format!(
            "pg_dump failed; no backup was kept: {}",
            scrub(String::from_utf8_lossy(&output.stderr).trim())
        )));
    }
    let (entries, dumped_db) = match list_entries(&pg_restore, &partial).await {
        Ok(found) => found,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    let origin = Origin {
        schema_version: 1,
        database: dumped_db.or_else(|| settings.dbname().map(str::to_string)),
        server: settings.server(),
    };
    // Written before the dump gets its final name: a listed dump always has it.
    if let Err(e) = crate::report::write_private_json(&origin_path(&final_path), &origin) {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, &final_path).map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        let _ = std::fs::remove_file(origin_path(&final_path));
        Error::io(&final_path, "rename the verified backup to", &e)
    })?;
    let latest = dir.join(LATEST);
    let _ = std::fs::remove_file(&latest);
    private_file(&latest)?;
    std::fs::write(&latest, format!("{}\n", final_path.display()))
        .map_err(|e| Error::io(&latest, "write", &e))?;
    prune(dir, config.backup.keep, protect)?;
    let bytes = std::fs::metadata(&final_path).map(|m| m.len()).unwrap_or(0);
    events.emit(&Event::BackupWritten {
        path: final_path.display().to_string(),
        bytes,
        duration_ms: crate::events::millis(started.elapsed()),
    });
    Ok(BackupFile {
        path: final_path,
        bytes,
        entries: Some(entries),
        database: origin.database,
        server: origin.server,
    })
}

/// The number of entries in a dump's table of contents, and the database
/// its header names (`;     dbname: app`).
async fn list_entries(pg_restore: &Path, file: &Path) -> Result<(usize, Option<String>)> {
    let output = tokio::process::Command::new(pg_restore)
        .arg("--list")
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| failed(format!("cannot run {}: {e}", pg_restore.display())))?;
    if !output.status.success() {
        return Err(failed(format!(
            "{} cannot be read back by pg_restore: {}",
            file.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let entries = text
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .count();
    Ok((entries, header_dbname(&text)))
}

/// `dbname:` of a `pg_restore --list` header.
fn header_dbname(list: &str) -> Option<String> {
    list.lines()
        .take_while(|l| l.starts_with(';'))
        .find_map(|l| l.trim_start_matches(';').trim().strip_prefix("dbname:"))
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
}

fn private_file(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map(|_| ())
        .map_err(|e| Error::io(path, "create", &e))
}

/// Complete backups in the directory, newest first.
pub fn list(dir: &Path) -> Result<Vec<BackupFile>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, "read", &e)),
    };
    let mut files: Vec<BackupFile> = entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with("backup-") && n.ends_with(".dump"))
        })
        .map(|e| {
            let path = e.path();
            let origin = read_origin(&path);
            BackupFile {
                bytes: e.metadata().map(|m| m.len()).unwrap_or(0),
                entries: None,
                database: origin.as_ref().and_then(|o| o.database.clone()),
                server: origin.and_then(|o| o.server),
                path,
            }
        })
        .collect();
    files.sort_by(|a, b| b.path.cmp(&a.path));
    Ok(files)
}

/// [`list`], with the database of each dump read from its header when no
/// origin file says it (a dump copied in from elsewhere). Without
/// pg_restore, what the origin files say.
pub async fn list_described(dir: &Path) -> Result<Vec<BackupFile>> {
    let mut files = list(dir)?;
    if files.iter().all(|f| f.database.is_some()) {
        return Ok(files);
    }
    let Ok(pg_restore) = find_tool("pg_restore", 0) else {
        return Ok(files);
    };
    for file in files.iter_mut().filter(|f| f.database.is_none()) {
        if let Ok((entries, database)) = list_entries(&pg_restore, &file.path).await {
            file.entries = Some(entries);
            file.database = database;
        }
    }
    Ok(files)
}

/// Deletes all but the newest `keep` backups (0 keeps all), never `protect`.
fn prune(dir: &Path, keep: u32, protect: Option<&Path>) -> Result<()> {
    if keep == 0 {
        return Ok(());
    }
    let protected = protect.and_then(|p| std::fs::canonicalize(p).ok());
    for old in list(dir)?.into_iter().skip(keep as usize) {
        if protected.is_some() && std::fs::canonicalize(&old.path).ok() == protected {
            continue;
        }
        std::fs::remove_file(&old.path)
            .map_err(|e| Error::io(&old.path, "remove the old backup", &e))?;
        let _ = std::fs::remove_file(origin_path(&old.path));
    }
    Ok(())
}

/// Reads a backup's table of contents with pg_restore.
pub async fn verify(file: &Path) -> Result<BackupFile> {
    let pg_restore = find_tool("pg_restore", 0)?;
    let (entries, database) = list_entries(&pg_restore, file).await?;
    let origin = read_origin(file);
    Ok(BackupFile {
        path: file.to_path_buf(),
        bytes: std::fs::metadata(file).map(|m| m.len()).unwrap_or(0),
        entries: Some(entries),
        database: database.or_else(|| origin.as_ref().and_then(|o| o.database.clone())),
        server: origin.and_then(|o| o.server),
    })
}

/// How `backup restore` runs.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Take a verified backup of the database as it is before restoring
    /// (the default; `--no-safety-backup` turns it off).
    pub safety_backup: bool,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            safety_backup: true,
        }
    }
}

/// A history row, for saying what a restore changed in the history.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Recorded {
    /// Namespace.
    pub namespace: String,
    /// Version.
    pub version: String,
}

/// What `backup restore` did.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    /// The dump restored.
    pub restored: PathBuf,
    /// The database the dump holds (its header), when known.
    pub dump_database: Option<String>,
    /// Where it was restored (no password).
    pub into: String,
    /// The backup of the database taken just before, to undo the restore
    /// (`None` with `--no-safety-backup`).
    pub safety_backup: Option<BackupFile>,
    /// Versions recorded as applied before the restore and not after: the
    /// history now is the dump's.
    pub no_longer_recorded: Vec<Recorded>,
    /// Versions the dump records that were not recorded before.
    pub newly_recorded: Vec<Recorded>,
}

/// `backup restore`: checks that the dump is readable, takes a verified
/// safety backup of the database as it is (the same code as `backup create`;
/// the dump being restored is never pruned by it), restores, and compares
/// migsafe's history before and after, since the restore replaces it with
/// the one in the dump.
pub(crate) async fn restore_guarded(
    config: &Config,
    settings: &ConnectionSettings,
    db: &Db,
    file: &Path,
    options: &RestoreOptions,
    events: &dyn EventSink,
    interrupt: &Interrupt,
) -> Result<Restored> {
    let checked = verify(file).await.map_err(|e| {
        e.with_hint(
            "nothing was restored: this file cannot be read as a backup; `migsafe backup list` shows the verified ones",
        )
    })?;
    let history = crate::db::history::History::new(&config.history_schema);
    let before = history.recorded_versions(db).await?;
    let safety_backup = if options.safety_backup {
        Some(
            // Ctrl-C (or SIGTERM) stops the safety backup, and nothing is
            // restored; the restore itself, once started, runs to its end.
            create_keeping(config, settings, db, events, Some(file), interrupt)
                .await
                .map_err(|e| {
                    if interrupt.is_triggered() {
                        Error::Refused {
                            reason: ReasonCode::new(Code::Interrupted),
                            message: "interrupted during the safety backup: pg_dump was stopped and its partial file removed; nothing was restored, the database is as it was".into(),
                            hint: Some("run the restore again when ready".into()),
                            source: None,
                        }
                    } else {
                        e.with_hint(
                            "nothing was restored: the safety backup of the current database failed; fix that, or pass --no-safety-backup if you have another copy",
                        )
                    }
                })?,
        )
    } else {
        None
    };
    if interrupt.is_triggered() {
        return Err(Error::Refused {
            reason: ReasonCode::new(Code::Interrupted),
            message: format!(
                "interrupted before the restore began: nothing was restored, the database is as it was{}",
                safety_backup.as_ref().map_or_else(String::new, |s| format!(
                    " (its safety backup is at {})",
                    s.path.display()
                ))
            ),
            hint: Some("run the restore again when ready".into()),
            source: None,
        });
    }
    restore(settings, db, file)
        .await
        .map_err(|e| match &safety_backup {
            Some(safety) => e.with_hint(format!(
                "the database is as it was; a safety backup of it is at {}",
                safety.path.display()
            )),
            None => e,
        })?;
    let after = history.recorded_versions(db).await?;
    let as_rows = |rows: Vec<(String, String)>| -> std::collections::BTreeSet<Recorded> {
        rows.into_iter()
            .map(|(namespace, version)| Recorded { namespace, version })
            .collect()
    };
    let (before, after) = (as_rows(before), as_rows(after));
    Ok(Restored {
        restored: file.to_path_buf(),
        dump_database: checked.database,
        into: settings.to_string(),
        safety_backup,
        no_longer_recorded: before.difference(&after).cloned().collect(),
        newly_recorded: after.difference(&before).cloned().collect(),
    })
}

/// Restores a backup into the database: `pg_restore --clean --if-exists
/// --single-transaction`, so a failed restore changes nothing.
pub(crate) async fn restore(settings: &ConnectionSettings, db: &Db, file: &Path) -> Result<()> {
    let (_, version_num) = server_version(db).await?;
    let pg_restore = find_tool(
        "pg_restore",
        u32::try_from(version_num / 10_000).unwrap_or(0),
    )?;
    verify(file).await?;
    let env = settings.current().await?.libpq_env();
    let output = super::child::output(
        tokio::process::Command::new(&pg_restore)
        .args([
            "--clean",
            "--if-exists",
            "--single-transaction",
            "--exit-on-error",
            "--no-password",
            "--dbname",
        ])
        .arg(
            env.iter()
                .find(|(k, _)| *k == "PGDATABASE")
                .map_or("", |(_, v)| v.as_str()),
        )
        .arg(file)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str()))),
        // One transaction: stopping it half way gains nothing over letting
        // it commit or fail whole. A second Ctrl-C still stops it.
        super::child::OnStop::RunToEnd(
            "the restore already running goes on to its end (one transaction: all of it or nothing)",
        ),
        PROGRESS_EVERY,
        || {},
    )
    .await
    .map_err(|e| {
        failed(format!("cannot run {}: {e}", pg_restore.display()))
            .with_hint("nothing was restored; the database is as it was")
    })?;
    if !output.status.success() {
        return Err(Error::Config {
            reason: ReasonCode::new(Code::BackupFailed),
            message: format!(
                "pg_restore failed and rolled back; the database is as it was: {}",
                scrub(String::from_utf8_lossy(&output.stderr).trim())
            ),
            hint: None,
            source: None,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_database_comes_from_the_list_header() {
        let list = ";\n; Archive created at 2026-01-01 10:00:00 UTC\n;     dbname: app_prod\n;     TOC Entries: 12\n;\n3; 2615 2200 SCHEMA - public pg_database_owner\n";
        assert_eq!(super::header_dbname(list).as_deref(), Some("app_prod"));
        assert_eq!(super::header_dbname("3; 2615 SCHEMA - dbname: x\n"), None);
    }
}
