//! Recovery of an interrupted no-transaction migration is a step of the
//! guarded pipeline: preflight, the verified backup, then the down script;
//! and a down script that would destroy rows written after the interruption
//! is refused unless the operator passes `--recover`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Project, TestDb, expect_exit};

/// The scenario: a no-transaction migration copies `events` into
/// `archive`, sleeps, then builds an index; its down drops `archive`.
fn archive_project() -> Project {
    Project::new(&[
        (
            "migrations/0001_events.up.sql",
            "CREATE TABLE events (id bigint PRIMARY KEY, kind text NOT NULL);\nINSERT INTO events SELECT g, 'k' || g FROM generate_series(1, 50) g;\n",
        ),
        ("migrations/0001_events.down.sql", "DROP TABLE events;\n"),
        (
            "migrations/0002_archive.up.sql",
            "-- migsafe:no-transaction\nCREATE TABLE archive AS SELECT * FROM events;\nSELECT pg_sleep(4);\nCREATE INDEX CONCURRENTLY archive_kind_idx ON archive (kind);\n",
        ),
        (
            "migrations/0002_archive.down.sql",
            "-- migsafe:no-transaction\nDROP TABLE IF EXISTS archive;\n",
        ),
    ])
}

/// Starts `apply` and sends SIGINT while it sleeps in 0002; returns what it printed.
fn interrupt_during_sleep(project: &Project, db: &TestDb) -> String {
    let child = project.spawn(db, &["apply", "--skip-backup"]);
    common::wait_for_query(db, "pg_sleep(4)");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    expect_exit(&output, 2)
}

/// The rows of `archive` as pg_restore prints them from a backup file.
fn archive_rows_in(backup: &std::path::Path) -> String {
    let pg_restore = migsafe::pipeline::backup::find_tool("pg_restore", 0).unwrap();
    let output = std::process::Command::new(pg_restore)
        .args(["--data-only", "--table", "archive", "--file", "-"])
        .arg(backup)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn newest_backup(project: &Project) -> std::path::PathBuf {
    let mut dumps: Vec<_> = std::fs::read_dir(project.path().join("backups/migrations"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "dump"))
        .collect();
    dumps.sort();
    dumps.pop().expect("a backup")
}

#[test]
fn recovery_that_would_drop_rows_written_since_is_refused_then_runs_after_the_backup() {
    let db = TestDb::new();
    let project = archive_project();
    let out = interrupt_during_sleep(&project, &db);
    assert!(out.contains("MIGRATION_DIRTY:default:0002"), "{out}");
    assert!(out.contains("cancelled on the server"), "{out}");
    // The message says what the next apply does, not "refuses until repaired".
    assert!(
        out.contains("The next `migsafe apply` runs preflight, takes a verified backup"),
        "{out}"
    );
    assert_eq!(
        db.history("default").last(),
        Some(&("0002".to_string(), true))
    );
    // The application writes into the half-made table.
    db.query("INSERT INTO archive VALUES (9001, 'written-after-the-interruption');");

    // Plain apply: refused before anything, the row is still there.
    let out = project.run(&db, &["apply"], 1);
    assert!(
        out.contains("RECOVERY_WOULD_DESTROY_DATA:default:0002"),
        "{out}"
    );
    assert!(out.contains("archive (DROP TABLE) holds 1 row(s)"), "{out}");
    assert!(out.contains("--recover"), "{out}");
    assert!(!out.contains("recovered 0002"), "{out}");
    assert_eq!(
        db.scalar("SELECT kind FROM archive WHERE id = 9001")
            .as_deref(),
        Some("written-after-the-interruption")
    );
    // --force does not override it.
    let out = project.run(&db, &["apply", "--force"], 1);
    assert!(
        out.contains("RECOVERY_WOULD_DESTROY_DATA:default:0002"),
        "{out}"
    );
    // plan says the same as apply.
    let out = project.run(&db, &["plan"], 1);
    assert!(
        out.contains("RECOVERY_WOULD_DESTROY_DATA:default:0002"),
        "{out}"
    );
    // --recover without a backup is refused too.
    let out = project.run(&db, &["apply", "--recover", "--skip-backup"], 1);
    assert!(out.contains("without --skip-backup"), "{out}");
    assert!(db.exists("archive"));

    // --recover: preflight, then the backup, then recovery, then the migration.
    let out = project.run(&db, &["apply", "--recover"], 0);
    let preflight = out.find("preflight passed").expect(&out);
    let backup = out.find("\nbackup: ").expect(&out);
    let recovered = out.find("recovered 0002").expect(&out);
    assert!(preflight < recovered && backup < recovered, "{out}");
    let rows = archive_rows_in(&newest_backup(&project));
    assert!(rows.contains("written-after-the-interruption"), "{rows}");
    // Applied again from scratch: the copy of events, without the later row.
    assert_eq!(
        db.scalar("SELECT count(*) FROM archive").as_deref(),
        Some("50")
    );
    assert_eq!(
        db.history("default").last(),
        Some(&("0002".to_string(), false))
    );
}

#[test]
fn recovery_with_nothing_written_since_runs_after_preflight_and_backup() {
    let db = TestDb::new();
    let project = archive_project();
    interrupt_during_sleep(&project, &db);
    // Nothing written since: the migration's own 50 copied rows do not count.
    let out = project.run(&db, &["apply"], 0);
    let preflight = out.find("preflight passed").expect(&out);
    let recovered = out.find("recovered 0002").expect(&out);
    assert!(preflight < recovered, "{out}");
    assert_eq!(
        db.scalar("SELECT count(*) FROM archive").as_deref(),
        Some("50")
    );
}

#[test]
fn ctrl_c_ends_the_wait_for_the_namespace_lock_at_once() {
    let db = TestDb::new();
    let project = common::two_tables();
    project.write("migsafe.toml", b"[defaults]\nlock_wait = \"5m\"\n");
    // Another runner holds the namespace lock (same key migsafe uses).
    let key = migsafe::db::lock::key("migsafe", "default");
    let (release, holder) = common::hold_lock(&db, &format!("SELECT pg_advisory_lock({key})"));
    let child = project.spawn(&db, &["apply", "--skip-backup"]);
    // Wait until it polls for the lock.
    std::thread::sleep(Duration::from_millis(1500));
    let sent = std::time::Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "{:?}",
        sent.elapsed()
    );
    let out = expect_exit(&output, 130);
    assert!(out.contains("INTERRUPTED:default"), "{out}");
    assert!(out.contains("nothing was started"), "{out}");
    release.send(()).unwrap();
    holder.join().unwrap();
    assert!(db.history("default").is_empty());
}

/// The archive project with `down` as 0002's down script and `up` as its
/// first statements (before the sleep), interrupted during the sleep.
fn interrupted_with(db: &TestDb, up: &str, down: &str) -> Project {
    let project = archive_project();
    project.write(
        "migrations/0002_archive.up.sql",
        format!("-- migsafe:no-transaction\n{up}\nSELECT pg_sleep(4);\nCREATE INDEX CONCURRENTLY archive_kind_idx ON archive (kind);\n").as_bytes(),
    );
    project.write(
        "migrations/0002_archive.down.sql",
        format!("-- migsafe:no-transaction\n{down}\n").as_bytes(),
    );
    interrupt_during_sleep(&project, db);
    project
}

#[test]
fn what_a_down_script_reaches_counts_cascades_search_path_types_and_opaque_blocks() {
    // ON DELETE CASCADE behind a DELETE, and TRUNCATE … CASCADE.
    for down in ["DELETE FROM archive;", "TRUNCATE archive CASCADE;"] {
        let db = TestDb::new();
        let project = interrupted_with(
            &db,
            "CREATE TABLE archive (id bigint PRIMARY KEY, kind text);\nINSERT INTO archive SELECT * FROM events;\nCREATE TABLE notes (archive_id bigint REFERENCES archive ON DELETE CASCADE, note text);",
            down,
        );
        db.query("INSERT INTO notes VALUES (1, 'precious');");
        let out = project.run(&db, &["apply"], 1);
        assert!(
            out.contains("RECOVERY_WOULD_DESTROY_DATA:default:0002"),
            "{down}: {out}"
        );
        assert!(out.contains("notes"), "{down}: {out}");
        assert_eq!(
            db.scalar("SELECT count(*) FROM notes").as_deref(),
            Some("1")
        );
    }
    // An unqualified name under the down script's own search_path.
    let db = TestDb::new();
    let project = interrupted_with(
        &db,
        "CREATE SCHEMA app;\nCREATE TABLE app.archive AS SELECT * FROM events;\nCREATE TABLE archive (id bigint, kind text);",
        "SET search_path = app;\nDROP TABLE IF EXISTS archive;",
    );
    db.query("INSERT INTO app.archive VALUES (100, 'x');");
    let out = project.run(&db, &["apply"], 1);
    assert!(
        out.contains("app.archive (DROP TABLE) holds 1 row(s)"),
        "{out}"
    );
    // A DO block: what it destroys is unknown, so it needs --recover.
    let db = TestDb::new();
    let project = interrupted_with(
        &db,
        "CREATE TABLE archive AS SELECT * FROM events;",
        "DO $$ BEGIN EXECUTE 'DROP TABLE IF EXISTS archive'; END $$;",
    );
    let out = project.run(&db, &["apply"], 1);
    assert!(out.contains("a DO block"), "{out}");
    assert!(db.exists("archive"));
    // DROP TYPE … CASCADE drops the columns of that type.
    let db = TestDb::new();
    let project = interrupted_with(
        &db,
        "CREATE TYPE mood AS ENUM ('ok', 'bad');\nALTER TABLE events ADD COLUMN m mood;\nCREATE TABLE archive AS SELECT * FROM events;",
        "DROP TABLE IF EXISTS archive;\nDROP TYPE IF EXISTS mood CASCADE;",
    );
    db.query("UPDATE events SET m = 'bad' WHERE id = 1;");
    let out = project.run(&db, &["apply"], 1);
    assert!(out.contains("events (DROP TYPE"), "{out}");
    assert_eq!(
        db.scalar("SELECT m::text FROM events WHERE id = 1")
            .as_deref(),
        Some("bad")
    );
}

#[test]
fn rows_written_while_the_backup_is_taken_stop_the_recovery() {
    let db = TestDb::new();
    let project = archive_project();
    interrupt_during_sleep(&project, &db);
    // A table big enough that pg_dump takes a while to copy it.
    db.query("CREATE SCHEMA x; CREATE TABLE x.big AS SELECT g, md5(g::text) AS m FROM generate_series(1, 400000) g;");
    let child = project.spawn(&db, &["apply", "--recover"]);
    common::wait_for_query(&db, "COPY x.big");
    db.query("INSERT INTO archive VALUES (888, 'written during the backup');");
    let output = child.wait_with_output().unwrap();
    let out = expect_exit(&output, 1);
    assert!(
        out.contains("RECOVERY_WOULD_DESTROY_DATA:default:0002"),
        "{out}"
    );
    assert!(out.contains("while the backup was being taken"), "{out}");
    assert_eq!(
        db.scalar("SELECT kind FROM archive WHERE id = 888")
            .as_deref(),
        Some("written during the backup")
    );
}

#[test]
fn a_down_script_migsafe_cannot_fully_read_is_not_trusted() {
    for down in [
        // Renamed, then dropped under the new name.
        "ALTER TABLE IF EXISTS archive RENAME TO archive_old;\nDROP TABLE IF EXISTS archive_old;",
        // A deleting CTE.
        "WITH d AS (DELETE FROM archive RETURNING 1) SELECT count(*) FROM d;",
        // A function that may delete anything.
        "SELECT wipe_archive();",
        // A MERGE.
        "MERGE INTO archive a USING events e ON a.id = e.id WHEN MATCHED THEN DELETE;",
    ] {
        let db = TestDb::new();
        let project = interrupted_with(&db, "CREATE TABLE archive AS SELECT * FROM events;", down);
        db.query(
            "CREATE FUNCTION wipe_archive() RETURNS void LANGUAGE sql AS 'DELETE FROM archive';",
        );
        db.query("INSERT INTO archive VALUES (100, 'x');");
        let out = project.run(&db, &["apply", "--skip-backup"], 1);
        assert!(
            out.contains("RECOVERY_WOULD_DESTROY_DATA:default:0002"),
            "{down}: {out}"
        );
        assert_eq!(
            db.scalar("SELECT count(*) FROM archive WHERE id = 100")
                .as_deref(),
            Some("1"),
            "{down}"
        );
    }
}

/// A `CREATE INDEX CONCURRENTLY` that stops part way leaves an INVALID index:
/// the interrupted migration's own change, which preflight's drift check
/// must not hold against the recovery that removes it (found by a review:
/// every later release job was refused with SCHEMA_DRIFT).
#[test]
fn the_invalid_index_an_interrupted_migration_left_does_not_block_its_recovery() {
    let project = Project::new(&[
        (
            "migrations/0001_t.up.sql",
            "CREATE TABLE t (id bigint PRIMARY KEY, email text);\nINSERT INTO t VALUES (1, 'a'), (2, 'a');\n",
        ),
        ("migrations/0001_t.down.sql", "DROP TABLE t;\n"),
        (
            "migrations/0002_email.up.sql",
            "CREATE UNIQUE INDEX CONCURRENTLY t_email_key ON t (email);\n",
        ),
        (
            "migrations/0002_email.down.sql",
            "DROP INDEX CONCURRENTLY IF EXISTS t_email_key;\n",
        ),
    ]);
    let db = TestDb::new();
    // 0001 runs through the whole pipeline, which records its schema.
    project.run(&db, &["apply", "--skip-backup", "--to", "0001"], 0);
    // The build fails on the duplicate and leaves an INVALID index.
    let text = project.run(&db, &["apply", "--skip-backup"], 2);
    assert!(text.contains("MIGRATION_DIRTY:default:0002"), "{text}");
    let invalid = common::query(
        &db.url,
        "SELECT count(*) FROM pg_index WHERE NOT indisvalid AND indexrelid = 't_email_key'::regclass",
    );
    assert_eq!(invalid[0][0].as_deref(), Some("1"));
    // The data is fixed; the next apply recovers and applies it, noting the drift.
    common::query(&db.url, "DELETE FROM t WHERE id = 2");
    let text = project.run(&db, &["apply", "--skip-backup"], 0);
    assert!(text.contains("0002"), "{text}");
    let valid = common::query(
        &db.url,
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_email_key'::regclass",
    );
    assert_eq!(valid[0][0].as_deref(), Some("t"));
    let text = project.run(&db, &["status"], 0);
    assert!(text.contains("2 applied, 0 pending"), "{text}");
}
