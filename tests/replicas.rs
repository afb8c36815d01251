//! Streaming standbys (SPEC 17): preflight lists them with their lag, and
//! apply does not run a migration while one is behind; it lands once the
//! standby has caught up. A real standby whose replay is paused.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::sync::{Mutex, PoisonError};

use common::{Project, Running, TestDb, query, replicated};

/// Pausing replay affects every database of the sandbox: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

static FILLER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Replay paused on the standby until dropped (also when a test fails).
struct Paused;

impl Paused {
    fn start() -> Paused {
        query(
            &replicated().standbys()[0].url("postgres"),
            "SELECT pg_wal_replay_pause()",
        );
        Paused
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        query(
            &replicated().standbys()[0].url("postgres"),
            "SELECT pg_wal_replay_resume()",
        );
    }
}

/// Two migrations; a standby 1 kB of WAL behind counts as behind.
fn project(lock_wait: &str, extra: &str) -> Project {
    Project::new(&[
        (
            "migsafe.toml",
            &format!(
                "[defaults]\nmax_replica_lag_bytes = \"1kB\"\nlock_wait = \"{lock_wait}\"\n{extra}"
            ),
        ),
        (
            "migrations/0001_a.up.sql",
            "CREATE TABLE a (id bigint PRIMARY KEY);\n",
        ),
        ("migrations/0001_a.down.sql", "DROP TABLE a;\n"),
        (
            "migrations/0002_b.up.sql",
            "CREATE TABLE b (id bigint PRIMARY KEY);\n",
        ),
        ("migrations/0002_b.down.sql", "DROP TABLE b;\n"),
    ])
}

/// Writes enough WAL that a paused standby is well over 1 kB behind.
fn write_wal(db: &TestDb) {
    db.query(&format!(
        "CREATE TABLE filler_{n} AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 2000) g",
        n = FILLER.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
}

/// The standby's data as seen on the standby itself.
fn on_standby(db: &TestDb, sql: &str) -> Option<String> {
    query(&replicated().standbys()[0].url(&db.name), sql)
        .into_iter()
        .next()
        .and_then(|row| row.into_iter().next().flatten())
}

#[test]
fn preflight_lists_every_standby_with_its_lag() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let db = TestDb::on(replicated());
    let project = project("60s", "");
    let out = project.run(&db, &["preflight", "--format", "json"], 0);
    let document: serde_json::Value = serde_json::from_str(&out[..out.rfind('}').unwrap() + 1])
        .unwrap_or_else(|e| panic!("{e}: {out}"));
    let text = document.to_string();
    assert!(
        text.contains("standby standby1 (streaming, async)"),
        "{out}"
    );
}

#[test]
fn apply_waits_while_a_standby_is_behind_and_lands_after_it_catches_up() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let db = TestDb::on(replicated());
    let project = project("120s", "");
    let paused = Paused::start();
    write_wal(&db);
    let running = Running::until(
        &project,
        &db,
        &["apply", "--skip-backup"],
        "REPLICA_LAG:standby1",
    );
    // It waits before the first migration: nothing ran, nothing reached the standby.
    assert!(
        !db.exists("a"),
        "the migration ran while the standby was behind"
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        !db.exists("a"),
        "the migration ran while the standby was behind"
    );
    assert!(db.history("default").is_empty());
    drop(paused);
    let (code, seen) = running.finish();
    assert_eq!(code, Some(0), "{seen}");
    assert!(seen.contains("waiting before the next migration"), "{seen}");
    assert!(db.exists("a") && db.exists("b"), "{seen}");
    assert_eq!(db.history("default").len(), 2);
    assert!(project.event_log().contains("\"event\":\"replica_lag\""));
    assert!(project.event_log().contains("REPLICA_LAG:standby1"));
    // The standby replays the migrations too (hot standby, read-only).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while on_standby(&db, "SELECT to_regclass('b') IS NOT NULL").as_deref() != Some("t") {
        assert!(
            std::time::Instant::now() < deadline,
            "the standby never replayed b"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn apply_refuses_after_lock_wait_while_a_standby_stays_behind() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let db = TestDb::on(replicated());
    let project = project("1s", "");
    let _paused = Paused::start();
    write_wal(&db);
    let out = project.run(&db, &["apply", "--skip-backup"], 1);
    assert!(out.contains("error[REPLICA_LAG:standby1]"), "{out}");
    assert!(!db.exists("a"));
    assert!(db.history("default").is_empty());
}

#[test]
fn expect_standbys_more_than_connected_fails_preflight() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let db = TestDb::on(replicated());
    let project = project("60s", "expect_standbys = 2\n");
    let out = project.run(&db, &["apply", "--skip-backup"], 1);
    assert!(out.contains("REPLICA_MISSING"), "{out}");
    assert!(!db.exists("a"));
    // --force does not go past it (apply would ask again before each
    // migration and refuse there, after a backup for nothing).
    let out = project.run(&db, &["apply", "--skip-backup", "--force"], 1);
    assert!(
        out.contains("REPLICA_MISSING") && out.contains("--force does not go past this"),
        "{out}"
    );
    assert!(!out.contains("forced past"), "{out}");
    assert!(!db.exists("a"));
    // rollback asks too, before its first down script.
    let ok = self::project("60s", "");
    ok.run(&db, &["apply", "--skip-backup"], 0);
    let out = project.run(&db, &["rollback", "--steps", "1"], 1);
    assert!(out.contains("REPLICA_MISSING"), "{out}");
    assert!(db.exists("b"), "nothing was rolled back: {out}");
    ok.run(&db, &["rollback", "--steps", "2"], 0);
    let ok = self::project("60s", "expect_standbys = 1\n");
    ok.run(&db, &["preflight"], 0);
}

/// A backfill waits before each batch while a standby is behind: the first
/// batch's own WAL holds the second back until replay resumes, then it
/// finishes.
#[test]
fn a_backfill_waits_between_batches_while_a_standby_is_behind() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let db = TestDb::on(replicated());
    let project = Project::new(&[
        (
            "migsafe.toml",
            // Small background WAL (autovacuum) does not count; one batch's does.
            "[defaults]\nmax_replica_lag_bytes = \"256kB\"\nlock_wait = \"120s\"\n",
        ),
        (
            "migrations/0001_accounts.up.sql",
            "CREATE TABLE accounts (id bigint PRIMARY KEY, email text, email_lower text);\nINSERT INTO accounts SELECT g, 'U' || g, NULL FROM generate_series(1, 20000) g;\n",
        ),
        (
            "migrations/0002_fill.up.sql",
            "-- migsafe:backfill 20ms\nUPDATE accounts SET email_lower = lower(email) || repeat('x', 2000) WHERE email_lower IS NULL;\n",
        ),
    ]);
    project.run(&db, &["apply", "--skip-backup", "--to", "0001"], 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while on_standby(&db, "SELECT count(*) FROM accounts").as_deref() != Some("20000") {
        assert!(
            std::time::Instant::now() < deadline,
            "the standby never caught up"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let paused = Paused::start();
    let running = Running::until(
        &project,
        &db,
        &["apply", "--skip-backup"],
        "REPLICA_LAG:standby1",
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    let done: i64 = db
        .scalar("SELECT count(*) FROM accounts WHERE email_lower IS NOT NULL")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        done < 20000,
        "the backfill went on while the standby was behind"
    );
    assert!(
        done > 0,
        "the first batch runs (the standby was caught up), the next waits"
    );
    drop(paused);
    let (code, seen) = running.finish();
    assert_eq!(code, Some(0), "{seen}");
    // Said as what it is: the backfill's next batch waits, not a migration.
    assert!(seen.contains("waiting before the next batch"), "{seen}");
    assert!(project.event_log().contains("\"before\":\"batch\""));
    assert_eq!(
        db.scalar("SELECT count(*) FROM accounts WHERE email_lower IS NULL")
            .as_deref(),
        Some("0"),
        "{seen}"
    );
}

/// A URL that leads to the standby: every command that writes refuses
/// before it changes anything (no backup, no preflight of a run that
/// cannot happen), with its reason code, not a read-only error half way.
#[test]
fn a_standby_url_is_refused_before_anything_is_written() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let db = TestDb::on(replicated());
    let project = project("60s", "");
    project.run(&db, &["apply", "--skip-backup", "--to", "0001"], 0);
    let standby = replicated().standbys()[0].url(&db.name);
    while on_standby(&db, "SELECT count(*) FROM migsafe.schema_migrations").as_deref() != Some("1")
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let on_standby_url = |args: &[&str]| {
        project
            .migsafe(&db)
            .env("DATABASE_URL", &standby)
            .args(args)
            .output()
            .unwrap()
    };
    for args in [&["apply"][..], &["rollback", "--steps", "1"]] {
        let output = on_standby_url(args);
        let out = common::expect_exit(&output, 5);
        assert!(out.contains("error[DATABASE_IS_STANDBY]"), "{out}");
        assert!(
            out.contains("point the database URL at the primary"),
            "{out}"
        );
        assert!(!out.contains("WARN"), "{out}");
    }
    assert!(
        !project.path().join("backups/migrations").exists()
            || std::fs::read_dir(project.path().join("backups/migrations"))
                .unwrap()
                .next()
                .is_none(),
        "no backup of a run that cannot happen"
    );
    assert!(!db.exists("b"));
    assert_eq!(db.history("default").len(), 1);
    // plan and preflight say what apply would do: refuse.
    for args in [&["plan"][..], &["preflight"]] {
        let output = on_standby_url(args);
        let out = common::text(&output);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {out}");
        assert!(out.contains("DATABASE_IS_STANDBY"), "{args:?}: {out}");
    }
    // Reading is fine on a standby, with a word about where it reads.
    let out = common::expect_exit(&on_standby_url(&["status"]), 0);
    assert!(out.contains("warning: DATABASE_IS_STANDBY"), "{out}");
}
