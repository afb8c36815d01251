//! The safety pipeline, each check provoked for real: preflight (long
//! transactions, blocking locks, drift), backup (restore gives the same schema
//! and rows; a failing pg_dump leaves nothing that looks like a backup),
//! postflight (NOT VALID foreign keys with orphans, INVALID indexes, time
//! budget) and the report files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Project, TestDb, expect_exit, two_tables};

fn reports(project: &Project, phase: &str) -> Vec<serde_json::Value> {
    let mut found: Vec<_> = std::fs::read_dir(project.path().join("logs"))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(&format!("{phase}-report-"))
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
        .iter()
        .map(|path| {
            let mode = std::os::unix::fs::PermissionsExt::mode(
                &std::fs::metadata(path).unwrap().permissions(),
            );
            assert_eq!(mode & 0o777, 0o600, "{} must be owner-only", path.display());
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
        })
        .collect()
}

/// Nothing in the backup directory that looks like a backup, or half of one.
fn assert_no_dump_left(project: &Project) {
    let left: Vec<String> = std::fs::read_dir(project.path().join("backups/migrations"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        left.iter()
            .all(|n| !n.ends_with(".dump") && !n.ends_with(".partial")),
        "{left:?}"
    );
}

fn check<'a>(report: &'a serde_json::Value, reason_prefix: &str) -> Option<&'a serde_json::Value> {
    report["checks"].as_array().unwrap().iter().find(|c| {
        c["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with(reason_prefix))
    })
}

#[test]
fn apply_runs_preflight_backup_postflight_and_writes_reports() {
    let db = TestDb::new();
    let project = two_tables();
    let out = project.run(&db, &["apply"], 0);
    assert!(
        out.contains("preflight passed") && out.contains("postflight passed"),
        "{out}"
    );
    let pre = reports(&project, "preflight");
    let post = reports(&project, "postflight");
    assert_eq!((pre.len(), post.len()), (1, 1));
    assert_eq!(pre[0]["schema_version"], 1);
    assert_eq!(pre[0]["result"], "pass");
    assert_eq!(post[0]["schema_checksum"].as_str().unwrap().len(), 64);
    let checksum = post[0]["namespace_checksums"]["default"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(checksum.len(), 64);
    // The namespace's checksum (its schemas only) is on the newest history row.
    assert_eq!(
        db.scalar("SELECT schema_checksum FROM migsafe.schema_migrations WHERE version = '0002'")
            .as_deref(),
        Some(checksum.as_str())
    );
    // A verified backup, owner-only, and the pointer to it.
    let backups = project.path().join("backups/migrations");
    let dumps: Vec<_> = std::fs::read_dir(&backups)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".dump"))
        .collect();
    assert_eq!(dumps.len(), 1);
    let mode = std::os::unix::fs::PermissionsExt::mode(&dumps[0].metadata().unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let latest = std::fs::read_to_string(backups.join("latest-backup.txt")).unwrap();
    assert_eq!(latest.trim(), dumps[0].path().display().to_string());

    // Nothing pending: no preflight, no backup, no postflight.
    project.run(&db, &["apply"], 0);
    assert_eq!(reports(&project, "preflight").len(), 1);
    // The dump, its origin file and the pointer.
    assert_eq!(std::fs::read_dir(&backups).unwrap().count(), 3);
}

#[test]
fn a_backup_taken_by_apply_restores_to_the_same_schema_and_rows() {
    let db = TestDb::new();
    let project = two_tables();
    project.run(&db, &["apply", "--skip-backup"], 0);
    db.query("INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 500) g; INSERT INTO orders SELECT g, g % 500 + 1 FROM generate_series(1, 1200) g;");
    project.write(
        "migrations/0003_more.up.sql",
        b"ALTER TABLE users ADD COLUMN email text;",
    );
    let before_schema = {
        let output = project
            .migsafe(&db)
            .args(["schema", "checksum"])
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap()
    };
    project.run(&db, &["apply"], 0);
    let latest =
        std::fs::read_to_string(project.path().join("backups/migrations/latest-backup.txt"))
            .unwrap();
    let fresh = TestDb::new();
    let out = project.run(&fresh, &["backup", "restore", latest.trim()], 5);
    assert!(out.contains("--yes"), "{out}");
    project.run(&fresh, &["backup", "restore", latest.trim(), "--yes"], 0);
    let after_schema = {
        let output = project
            .migsafe(&fresh)
            .args(["schema", "checksum"])
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap()
    };
    assert_eq!(
        before_schema, after_schema,
        "the restored schema is the one before the migration"
    );
    assert_eq!(
        fresh.scalar("SELECT count(*) FROM users").as_deref(),
        Some("500")
    );
    assert_eq!(
        fresh.scalar("SELECT count(*) FROM orders").as_deref(),
        Some("1200")
    );
    let out = project.run(&db, &["backup", "list"], 0);
    assert!(out.contains(".dump"), "{out}");
    let out = project.run(&db, &["backup", "verify", latest.trim()], 0);
    assert!(out.contains("readable"), "{out}");
}

#[test]
fn a_failing_pg_dump_leaves_nothing_that_looks_like_a_backup() {
    let db = TestDb::new();
    let project = two_tables();
    project.run(&db, &["apply", "--skip-backup"], 0);
    // A role that may migrate but not read one table: pg_dump fails on it.
    let role = format!("limited_{}", db.name);
    db.query(&format!(
        "CREATE ROLE {role} LOGIN PASSWORD 'Limited-Pw-123'; GRANT ALL ON SCHEMA public TO {role}; \
         GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}; GRANT ALL ON SCHEMA migsafe TO {role}; \
         GRANT ALL ON ALL TABLES IN SCHEMA migsafe TO {role}; GRANT ALL ON ALL SEQUENCES IN SCHEMA migsafe TO {role}; \
         CREATE TABLE secret_stuff (x int); REVOKE ALL ON secret_stuff FROM {role};"
    ));
    project.write(
        "migrations/0003_more.up.sql",
        b"CREATE TABLE more_stuff (id int);",
    );
    let url = format!(
        "postgres://{role}:Limited-Pw-123@127.0.0.1:{}/{}?sslmode=disable",
        common::sandbox().port(),
        db.name
    );
    let output = common::migsafe_command()
        .current_dir(project.path())
        .args(["apply", "--force", "--database-url", &url])
        .output()
        .unwrap();
    let out = expect_exit(&output, 1);
    assert!(out.contains("BACKUP_FAILED"), "{out}");
    assert!(out.contains("permission denied"), "{out}");
    common::assert_no_secret(&project, &output, "Limited-Pw-123");
    assert!(
        !db.exists("more_stuff"),
        "nothing may run without its backup"
    );
    assert_no_dump_left(&project);
}

/// A role without CREATE on the database, that owns the schemas it works
/// in (the history schema included), applies: migsafe does not ask for a
/// schema that is already there.
#[test]
fn a_role_without_create_on_the_database_uses_its_own_history_schema() {
    let db = TestDb::new();
    let project = two_tables();
    let role = format!("owner_{}", db.name);
    db.query(&format!(
        "CREATE ROLE {role} LOGIN PASSWORD 'Owner-Pw-123'; REVOKE CREATE ON DATABASE {name} FROM PUBLIC; \
         GRANT CONNECT ON DATABASE {name} TO {role}; CREATE SCHEMA migsafe AUTHORIZATION {role}; \
         GRANT ALL ON SCHEMA public TO {role};",
        name = db.name
    ));
    let url = format!(
        "postgres://{role}:Owner-Pw-123@127.0.0.1:{}/{}?sslmode=disable",
        common::sandbox().port(),
        db.name
    );
    let output = common::migsafe_command()
        .current_dir(project.path())
        .args(["apply", "--skip-backup", "--database-url", &url])
        .output()
        .unwrap();
    expect_exit(&output, 0);
    assert_eq!(db.history("default").len(), 2);
}

/// Ctrl-C while pg_dump runs: pg_dump is stopped, its partial file is
/// removed, nothing ran, and the error says it was an interruption (not
/// a failed backup).
#[test]
fn ctrl_c_during_the_backup_stops_pg_dump_and_leaves_no_partial_file() {
    let db = TestDb::new();
    let project = two_tables();
    project.write(
        "migrations/0003_big.up.sql",
        b"CREATE TABLE big AS SELECT g, repeat(md5(g::text), 8) AS pad FROM generate_series(1, 1500000) g;",
    );
    project.run(&db, &["apply", "--skip-backup"], 0);
    project.write(
        "migrations/0004_more.up.sql",
        b"CREATE TABLE more_stuff (id int);",
    );
    let child = std::process::Command::new(common::migsafe_bin())
        .current_dir(project.path())
        .env("DATABASE_URL", &db.url)
        .env("NO_COLOR", "1")
        .arg("apply")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = child;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while db
        .scalar("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'COPY public.big%'")
        .as_deref()
        == Some("0")
    {
        if child.try_wait().unwrap().is_some() || std::time::Instant::now() > deadline {
            let output = child.wait_with_output().unwrap();
            panic!("pg_dump never seen copying `big`:\n{}", common::text(&output));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    let out = expect_exit(&output, 130);
    assert!(out.contains("error[INTERRUPTED]"), "{out}");
    assert!(out.contains("interrupted during the backup"), "{out}");
    assert!(!out.contains("BACKUP_FAILED"), "{out}");
    assert!(!db.exists("more_stuff"));
    // pg_dump went with it.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY public.big%'")
            .as_deref(),
        Some("0")
    );
    assert_no_dump_left(&project);
}

/// Sessions queued for a lock are a warning (`LOCK_WAITERS`) in their own
/// database only: a lock queue in another database of the same server is
/// not one the migration would join.
#[test]
fn lock_waiters_are_those_of_the_database_being_migrated() {
    let db = TestDb::new();
    let other = TestDb::new();
    let project = two_tables();
    project.run(&db, &["apply", "--skip-backup"], 0);
    project.run(&other, &["apply", "--skip-backup"], 0);
    project.write(
        "migrations/0003_email.up.sql",
        b"ALTER TABLE users ADD COLUMN email text;",
    );
    // In `db`: a session holds an advisory lock, another waits for it
    // (nothing the schema read needs).
    let (release, blocker) = common::hold_lock(&db, "SELECT pg_advisory_xact_lock(4242);");
    let waiter = common::run_in_background(&db, "SELECT pg_advisory_lock(4242)");
    wait_for_lock_waits(&db, true, "the waiter never queued");
    let waiters = |target: &TestDb| {
        project.run(target, &["preflight"], 0);
        let last = reports(&project, "preflight").last().cloned().unwrap();
        check(&last, "LOCK_WAITERS").is_some()
    };
    assert!(waiters(&db), "a waiter in the database is reported");
    assert!(!waiters(&other), "a waiter in another database is not");
    release.send(()).unwrap();
    blocker.join().unwrap();
    waiter.join().unwrap();
}

#[test]
fn preflight_fails_on_a_session_holding_a_lock_the_migration_needs_and_force_records_it() {
    let db = TestDb::new();
    let project = two_tables();
    project.write("migsafe.toml", b"[defaults]\nlong_transaction = \"1s\"\nlock_timeout = \"200ms\"\nlock_retries = 30\nlock_retry_delay = \"100ms\"\n");
    project.run(&db, &["apply", "--skip-backup"], 0);
    project.write(
        "migrations/0003_email.up.sql",
        b"ALTER TABLE users ADD COLUMN email text;",
    );
    let (release, handle) = common::hold_lock(&db, "LOCK TABLE users IN ACCESS SHARE MODE;");
    std::thread::sleep(Duration::from_millis(1300));
    let output = project
        .migsafe(&db)
        .args(["apply", "--skip-backup"])
        .output()
        .unwrap();
    let out = expect_exit(&output, 1);
    assert!(out.contains("error[BLOCKING_LOCK:"), "{out}");
    assert!(
        out.contains("blocker") && out.contains("AccessShareLock on users"),
        "{out}"
    );
    let pre = reports(&project, "preflight");
    let last = pre.last().unwrap();
    assert_eq!(last["result"], "fail");
    assert!(check(last, "LONG_RUNNING_TRANSACTION:").is_some(), "{last}");
    assert!(
        !db.query("SELECT 1 FROM information_schema.columns WHERE column_name = 'email'")
            .iter()
            .any(|_| true)
    );

    // The standalone preflight says the same, read-only.
    project.run(&db, &["preflight"], 1);

    // --force goes on (and the retries wait for the blocker), recorded in the report.
    let child = std::process::Command::new(common::migsafe_bin())
        .current_dir(project.path())
        .env("DATABASE_URL", &db.url)
        .args(["apply", "--skip-backup", "--force"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    release.send(()).unwrap();
    handle.join().unwrap();
    expect_exit(&child.wait_with_output().unwrap(), 0);
    let forced = reports(&project, "preflight")
        .into_iter()
        .rev()
        .find(|r| r["forced"] == true);
    assert!(forced.is_some(), "the forced preflight is recorded");
}

#[test]
fn manual_ddl_outside_migsafe_is_drift_with_a_structural_diff() {
    let db = TestDb::new();
    let project = two_tables();
    project.run(&db, &["apply", "--skip-backup"], 0);
    db.query(
        "ALTER TABLE users ADD COLUMN hotfix text; CREATE INDEX users_name_hotfix ON users (name);",
    );
    project.write(
        "migrations/0003_more.up.sql",
        b"CREATE TABLE more_stuff (id int);",
    );
    let out = project.run(&db, &["apply", "--skip-backup"], 1);
    assert!(out.contains("error[SCHEMA_DRIFT:default]"), "{out}");
    assert!(out.contains("+ column public.users.hotfix"), "{out}");
    assert!(out.contains("+ index public.users_name_hotfix"), "{out}");
    assert!(!db.exists("more_stuff"));
    // An operator who accepts the change goes on with --force; the new
    // schema is recorded and the next run is clean again.
    project.run(&db, &["apply", "--skip-backup", "--force"], 0);
    project.write(
        "migrations/0004_even_more.up.sql",
        b"CREATE TABLE even_more (id int);",
    );
    project.run(&db, &["apply", "--skip-backup"], 0);
}

#[test]
fn postflight_catches_orphans_behind_not_valid_keys_invalid_indexes_and_slow_migrations() {
    let db = TestDb::new();
    let project = two_tables();
    project.write(
        "migsafe.toml",
        b"[defaults]\nmigration_time_budget = \"100ms\"\n",
    );
    project.run(&db, &["apply", "--skip-backup"], 0);
    db.query("CREATE TABLE payments (id int PRIMARY KEY, order_id int); INSERT INTO payments VALUES (1, 1), (2, 999), (3, NULL);");
    db.query("INSERT INTO users VALUES (1, 'a'); INSERT INTO orders VALUES (1, 1);");
    project.write(
        "migrations/0003_fk.up.sql",
        b"ALTER TABLE payments ADD CONSTRAINT payments_order_fk FOREIGN KEY (order_id) REFERENCES orders (id) NOT VALID;\nSELECT pg_sleep(0.3);\n",
    );
    let output = project
        .migsafe(&db)
        .args(["apply", "--skip-backup", "--force"])
        .output()
        .unwrap();
    let out = expect_exit(&output, 3);
    assert!(
        out.contains("FK_NOT_VALIDATED:public.payments.payments_order_fk"),
        "{out}"
    );
    assert!(
        out.contains("FK_ORPHANED_ROWS:public.payments.payments_order_fk"),
        "{out}"
    );
    assert!(
        out.contains("1 row(s)"),
        "exactly the one dangling row, not the NULL one: {out}"
    );
    let post = reports(&project, "postflight");
    let last = post.last().unwrap();
    assert_eq!(last["result"], "fail");
    assert!(
        check(last, "MIGRATION_OVER_BUDGET:default:0003").is_some(),
        "{last}"
    );
    // The migration itself is applied and recorded: postflight is after the fact.
    assert_eq!(db.history("default").len(), 3);

    // An INVALID index from a failed concurrent build.
    db.query("DELETE FROM payments WHERE id = 2; ALTER TABLE payments VALIDATE CONSTRAINT payments_order_fk;");
    db.query("INSERT INTO users VALUES (2, 'a');");
    let failed = std::panic::catch_unwind(|| {
        db.query("CREATE UNIQUE INDEX CONCURRENTLY users_name_unique ON users (name)")
    });
    assert!(
        failed.is_err(),
        "duplicate names make the concurrent build fail"
    );
    let output = project.migsafe(&db).arg("postflight").output().unwrap();
    let out = expect_exit(&output, 3);
    assert!(
        out.contains("INDEX_INVALID:public.users_name_unique"),
        "{out}"
    );
    assert!(!out.contains("FK_ORPHANED_ROWS"), "{out}");
    db.query("DROP INDEX users_name_unique");
    project.run(&db, &["postflight", "--deep"], 0);

    // not_valid = "warn": teams that validate in a later deploy.
    db.query("ALTER TABLE payments ADD CONSTRAINT payments_positive CHECK (id > 0) NOT VALID;");
    project.run(&db, &["postflight"], 3);
    project.write("migsafe.toml", b"[defaults]\nnot_valid = \"warn\"\n");
    let out = project.run(&db, &["postflight"], 0);
    assert!(
        out.contains("CHECK_NOT_VALIDATED:public.payments.payments_positive"),
        "{out}"
    );
}

#[test]
fn a_dirty_migration_with_a_down_script_is_recovered_and_retried() {
    let db = TestDb::new();
    let project = two_tables();
    project.write(
        "migrations/0003_steps.up.sql",
        b"-- migsafe:no-transaction\nCREATE TABLE step_one (id int);\nSELECT pg_sleep(60);\nCREATE TABLE step_three (id int);\n",
    );
    project.write(
        "migrations/0003_steps.down.sql",
        b"-- migsafe:no-transaction\nDROP TABLE IF EXISTS step_three;\nDROP TABLE IF EXISTS step_one;\n",
    );
    kill_during(&project, &db, "pg_sleep(60)");
    assert_eq!(
        db.history("default").last(),
        Some(&("0003".to_string(), true))
    );
    // The slow statement is fixed; the dirty row keeps the old checksum, but
    // recovery rolls it back first, so the new file is what runs.
    project.write(
        "migrations/0003_steps.up.sql",
        b"-- migsafe:no-transaction\nCREATE TABLE step_one (id int);\nCREATE TABLE step_three (id int);\n",
    );
    let out = project.run(&db, &["plan"], 0);
    assert!(out.contains("recover:"), "{out}");
    let out = project.run(&db, &["apply", "--skip-backup"], 0);
    assert!(out.contains("recovered 0003"), "{out}");
    assert!(db.exists("step_one") && db.exists("step_three"));
    assert_eq!(
        db.history("default").last(),
        Some(&("0003".to_string(), false))
    );
    assert!(project.event_log().contains("\"event\":\"recovered\""));
}

#[test]
fn recovery_drops_the_invalid_index_of_a_failed_concurrent_build() {
    let db = TestDb::new();
    let project = two_tables();
    project.run(&db, &["apply", "--skip-backup"], 0);
    db.query("INSERT INTO users VALUES (1, 'same'), (2, 'same');");
    project.write(
        "migrations/0003_unique_name.up.sql",
        b"-- migsafe:no-transaction\nCREATE UNIQUE INDEX CONCURRENTLY users_name_uq ON users (name);\n",
    );
    project.write(
        "migrations/0003_unique_name.down.sql",
        b"-- migsafe:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS users_name_uq;\n",
    );
    let out = project.run(&db, &["apply", "--skip-backup"], 2);
    assert!(out.contains("MIGRATION_DIRTY:default:0003"), "{out}");
    assert!(out.contains("INVALID index"), "{out}");
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_index WHERE NOT indisvalid")
            .as_deref(),
        Some("1")
    );

    // recovery = "manual": refused, with the repair command.
    project.write("migsafe.toml", b"[defaults]\nrecovery = \"manual\"\n");
    let out = project.run(&db, &["apply", "--skip-backup"], 1);
    assert!(
        out.contains("error[MIGRATION_DIRTY:default:0003]")
            && out.contains("repair --target default --clear-dirty 0003"),
        "{out}"
    );

    // The data is fixed; auto recovery drops the invalid index and builds it again.
    db.query("UPDATE users SET name = 'other' WHERE id = 2;");
    project.write("migsafe.toml", b"[defaults]\nrecovery = \"auto\"\n");
    let out = project.run(&db, &["apply", "--skip-backup"], 0);
    assert!(
        out.contains("after dropping the INVALID index(es) \"public\".\"users_name_uq\"")
            || out.contains("recovered 0003"),
        "{out}"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_index WHERE NOT indisvalid")
            .as_deref(),
        Some("0")
    );
    assert!(db.exists("users_name_uq"));
    assert_eq!(
        db.history("default").last(),
        Some(&("0003".to_string(), false))
    );
}

#[test]
fn no_postflight_marks_the_schema_unknown_instead_of_a_stale_snapshot() {
    let db = TestDb::new();
    let project = two_tables();
    project.run(&db, &["apply", "--skip-backup", "--steps", "1"], 0);
    project.run(&db, &["apply", "--skip-backup", "--no-postflight"], 0);
    project.write(
        "migrations/0003_more.up.sql",
        b"CREATE TABLE more_stuff (id int);",
    );
    // Not a false SCHEMA_DRIFT for the table 0002 created: the check says why it cannot run.
    project.run(&db, &["apply", "--skip-backup"], 0);
    let pre = reports(&project, "preflight");
    let drift = pre.last().unwrap()["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "schema_drift")
        .unwrap()
        .clone();
    assert!(
        drift["detail"]
            .as_str()
            .unwrap()
            .contains("--no-postflight"),
        "{drift}"
    );
    // The full run recorded it again: real drift is caught from here on.
    db.query("CREATE TABLE sneaky (id int);");
    project.write(
        "migrations/0004_more.up.sql",
        b"CREATE TABLE even_more (id int);",
    );
    let out = project.run(&db, &["apply", "--skip-backup"], 1);
    assert!(out.contains("+ table public.sneaky"), "{out}");
}

#[test]
fn backup_retention_keeps_the_newest() {
    let db = TestDb::new();
    let project = two_tables();
    project.write("migsafe.toml", b"[backup]\nkeep = 2\n");
    let mut made = Vec::new();
    for _ in 0..3 {
        let output = project
            .migsafe(&db)
            .args(["backup", "create"])
            .output()
            .unwrap();
        made.push(
            String::from_utf8(output.stdout.clone())
                .unwrap()
                .trim()
                .to_string(),
        );
        expect_exit(&output, 0);
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut left: Vec<String> = std::fs::read_dir(project.path().join("backups/migrations"))
        .unwrap()
        .flatten()
        .map(|e| e.path().display().to_string())
        .filter(|p| p.ends_with(".dump"))
        .collect();
    left.sort();
    assert_eq!(left, made[1..].to_vec(), "the oldest backup is removed");
    let origins = std::fs::read_dir(project.path().join("backups/migrations"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".dump.json"))
        .count();
    assert_eq!(origins, 2, "its origin file goes with it");
    let latest =
        std::fs::read_to_string(project.path().join("backups/migrations/latest-backup.txt"))
            .unwrap();
    assert_eq!(latest.trim(), made[2]);
}

/// Two databases backed up into one directory: `backup list` says which
/// database (and server) each dump holds, in text and JSON, also for a dump
/// copied in without its origin file (read from pg_restore's header).
#[test]
fn backup_list_names_the_database_of_each_dump() {
    let (a, b) = (TestDb::new(), TestDb::new());
    let project = two_tables();
    let create = |db: &TestDb| {
        let output = project
            .migsafe(db)
            .args(["backup", "create"])
            .output()
            .unwrap();
        let path = String::from_utf8(output.stdout.clone()).unwrap();
        expect_exit(&output, 0);
        std::thread::sleep(Duration::from_millis(20));
        path.trim().to_string()
    };
    let dump_a = create(&a);
    let dump_b = create(&b);
    // A dump from elsewhere, without its origin file.
    let copied = project
        .path()
        .join("backups/migrations/backup-20000101T000000.000Z.dump");
    std::fs::copy(&dump_a, &copied).unwrap();

    let server = format!("127.0.0.1:{}", common::sandbox().port());
    let out = project.run(&a, &["backup", "list"], 0);
    let line = |path: &str| {
        out.lines()
            .find(|l| l.starts_with(path))
            .unwrap_or_else(|| panic!("{path} not listed:\n{out}"))
            .to_string()
    };
    assert!(
        line(&dump_a).ends_with(&format!("database {} on {server}", a.name)),
        "{out}"
    );
    assert!(
        line(&dump_b).ends_with(&format!("database {} on {server}", b.name)),
        "{out}"
    );
    assert!(
        line(&copied.display().to_string())
            .ends_with(&format!("database {} (server not recorded)", a.name)),
        "{out}"
    );

    let output = project
        .migsafe(&a)
        .args(["backup", "list", "--format", "json"])
        .output()
        .unwrap();
    expect_exit(&output, 0);
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let backups = doc["backups"].as_array().unwrap();
    assert_eq!(backups.len(), 3, "{doc}");
    let by_path = |path: &str| {
        backups
            .iter()
            .find(|f| f["path"] == path)
            .unwrap_or_else(|| panic!("{path} missing: {doc}"))
    };
    assert_eq!(by_path(&dump_a)["database"], a.name.as_str());
    assert_eq!(by_path(&dump_b)["database"], b.name.as_str());
    assert_eq!(by_path(&dump_b)["server"], server.as_str());
    assert!(by_path(&copied.display().to_string())["server"].is_null());
}

/// The two tables applied, and a backup of them (its path).
fn applied_and_backed_up(db: &TestDb) -> (Project, String) {
    let project = two_tables();
    project.run(db, &["apply", "--skip-backup"], 0);
    let output = project
        .migsafe(db)
        .args(["backup", "create"])
        .output()
        .unwrap();
    expect_exit(&output, 0);
    let path = String::from_utf8(output.stdout).unwrap().trim().to_string();
    (project, path)
}

/// Waits until some session of the database waits for a lock (`some`), or
/// none does; `failure` when that does not come within 30 s.
fn wait_for_lock_waits(db: &TestDb, some: bool, failure: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let waiting = db
            .scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")
            .as_deref()
            != Some("0");
        if waiting == some {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{failure}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `backup restore` first takes a verified safety dump of the database as it
/// is, and says plainly that the history was rewound to the dump's.
#[test]
fn restore_takes_a_safety_backup_and_names_the_versions_it_unrecords() {
    let db = TestDb::new();
    let (project, first) = applied_and_backed_up(&db);
    project.write(
        "migrations/0003_notes.up.sql",
        b"ALTER TABLE users ADD COLUMN note text;",
    );
    project.write(
        "migrations/0003_notes.down.sql",
        b"ALTER TABLE users DROP COLUMN note;",
    );
    project.run(&db, &["apply", "--skip-backup"], 0);
    db.query("INSERT INTO users VALUES (1, 'after the first backup', 'kept in the safety dump')");
    std::thread::sleep(Duration::from_millis(20));

    let dumps = || -> Vec<String> {
        let mut found: Vec<String> = std::fs::read_dir(project.path().join("backups/migrations"))
            .unwrap()
            .flatten()
            .map(|e| e.path().display().to_string())
            .filter(|p| p.ends_with(".dump"))
            .collect();
        found.sort();
        found
    };
    let out = project.run(&db, &["backup", "restore", &first, "--yes"], 0);
    let made = dumps();
    assert_eq!(made.len(), 2, "{made:?}");
    let safety = made.iter().find(|p| **p != first).unwrap();
    assert!(
        out.contains(&format!(
            "safety backup of the database before the restore: {safety}"
        )),
        "{out}"
    );
    assert!(
        out.contains("history in the database is now the one in the dump")
            && out.contains("no longer recorded as applied: default 0003"),
        "{out}"
    );
    assert!(out.contains("migsafe apply"), "says what to do next: {out}");
    assert_eq!(
        db.history("default")
            .into_iter()
            .map(|(v, _)| v)
            .collect::<Vec<_>>(),
        ["0001", "0002"]
    );

    // The safety dump holds the state before the restore: 0003 and its row.
    let elsewhere = TestDb::new();
    project.run(
        &elsewhere,
        &["backup", "restore", safety, "--yes", "--no-safety-backup"],
        0,
    );
    assert_eq!(elsewhere.history("default").len(), 3);
    assert_eq!(
        elsewhere.scalar("SELECT note FROM users").as_deref(),
        Some("kept in the safety dump")
    );
    assert_eq!(dumps().len(), 2, "--no-safety-backup takes none");

    // JSON says the same.
    let output = project
        .migsafe(&db)
        .args(["backup", "restore", safety, "--yes", "--format", "json"])
        .output()
        .unwrap();
    expect_exit(&output, 0);
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(doc["safety_backup"]["path"].is_string(), "{doc}");
    assert_eq!(doc["newly_recorded"][0]["version"], "0003", "{doc}");
    assert_eq!(doc["no_longer_recorded"].as_array().unwrap().len(), 0);
}

/// SIGTERM (a deploy tool stopping the job) while the safety backup is
/// being taken: pg_dump is stopped, its partial file removed, nothing is
/// restored, and the database is as it was.
#[test]
fn a_stop_during_the_safety_backup_restores_nothing() {
    let db = TestDb::new();
    let (project, first) = applied_and_backed_up(&db);
    db.query("CREATE TABLE written_since (id int); INSERT INTO written_since VALUES (1);");
    // pg_dump waits for its share lock on the table while this is held.
    let (release, blocker) =
        common::hold_lock(&db, "LOCK TABLE written_since IN ACCESS EXCLUSIVE MODE;");
    let child = project.spawn(&db, &["backup", "restore", &first, "--yes"]);
    common::wait_for_query(&db, "IN ACCESS SHARE MODE");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    // pg_dump cancelled its LOCK TABLE on the server as it stopped: no
    // session of it is left waiting behind the lock.
    wait_for_lock_waits(&db, false, "pg_dump's session still waits");
    release.send(()).unwrap();
    blocker.join().unwrap();
    let out = expect_exit(&output, 130);
    assert!(
        out.contains("error[INTERRUPTED]")
            && out.contains("interrupted during the safety backup")
            && out.contains("nothing was restored, the database is as it was"),
        "{out}"
    );
    // Not restored: what was written since the first backup is there.
    assert_eq!(
        db.scalar("SELECT count(*) FROM written_since").as_deref(),
        Some("1")
    );
    // No partial safety dump beside the one being restored.
    let left: Vec<String> = std::fs::read_dir(project.path().join("backups/migrations"))
        .unwrap()
        .flatten()
        .map(|e| e.path().display().to_string())
        .filter(|p| p.ends_with(".dump") || p.ends_with(".partial"))
        .collect();
    assert_eq!(left, [first], "{left:?}");
}

/// A restore already running goes on to its end at the first stop
/// request, and says so; a second one stops pg_restore before migsafe
/// leaves (its one transaction rolls back), so that no restore commits
/// after migsafe has said it left.
#[test]
fn a_second_stop_during_the_restore_stops_pg_restore_before_leaving() {
    let db = TestDb::new();
    let (project, dump) = applied_and_backed_up(&db);
    db.query("INSERT INTO users VALUES (7, 'written after the backup')");
    // pg_restore's --clean waits behind this.
    let (release, blocker) =
        common::hold_lock(&db, "LOCK TABLE users, orders IN ACCESS SHARE MODE;");
    let child = project.spawn(
        &db,
        &["backup", "restore", &dump, "--yes", "--no-safety-backup"],
    );
    wait_for_lock_waits(&db, true, "pg_restore never waited for the lock");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let output = child.wait_with_output().unwrap();
    let out = expect_exit(&output, 130);
    assert!(
        out.contains("interrupted: the restore already running goes on to its end"),
        "{out}"
    );
    assert!(out.contains("pg_restore was told to stop"), "{out}");
    // pg_restore cancelled its statement and left: nothing waits any more,
    // and once the lock is free nothing commits later.
    wait_for_lock_waits(&db, false, "pg_restore still waits");
    release.send(()).unwrap();
    blocker.join().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        db.scalar("SELECT name FROM users WHERE id = 7").as_deref(),
        Some("written after the backup")
    );
}

fn kill_during(project: &Project, db: &TestDb, marker: &str) {
    let mut child = std::process::Command::new(common::migsafe_bin())
        .current_dir(project.path())
        .env("DATABASE_URL", &db.url)
        .args(["apply", "--skip-backup"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    common::wait_for_query(db, marker);
    child.kill().unwrap();
    child.wait().unwrap();
}
