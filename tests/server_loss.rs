//! The server goes away in the middle of a migration: migsafe exits 2 with a
//! clear message (never hangs), the history tells the truth, and the next
//! apply succeeds once the server is back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{TestDb, expect_exit, migsafe_bin, sandbox, two_tables};

/// Tests here restart the shared sandbox: one at a time.
static RESTARTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_server_restart_mid_migration_is_exit_2_and_recoverable() {
    let _one_at_a_time = RESTARTS.lock().unwrap_or_else(|e| e.into_inner());
    for mode in ["fast", "immediate"] {
        let db = TestDb::new();
        let project = two_tables();
        project.write(
            "migrations/0003_slow.up.sql",
            b"CREATE TABLE slow_t (id int);\nSELECT pg_sleep(30);\n",
        );
        let child = Command::new(migsafe_bin())
            .current_dir(project.path())
            .env("DATABASE_URL", &db.url)
            .env("NO_COLOR", "1")
            .arg("apply")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while db
            .scalar("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid() AND query NOT LIKE '%pg_stat_activity%'")
            .as_deref()
            == Some("0")
        {
            assert!(Instant::now() < deadline, "the migration never started");
            std::thread::sleep(Duration::from_millis(50));
        }
        let started = Instant::now();
        sandbox()
            .pg_ctl(&["-m", mode, "-w", "-t", "60", "restart"])
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{mode}: migsafe hung for {:?}",
            started.elapsed()
        );
        let out = expect_exit(&output, 2);
        assert!(
            out.contains("MIGRATION_FAILED:default:0003")
                || out.contains("MIGRATION_OUTCOME_UNKNOWN:default:0003"),
            "{mode}: {out}"
        );
        assert!(!out.contains(sandbox().password()));
        assert!(
            !db.exists("slow_t"),
            "{mode}: nothing of the migration may remain"
        );
        assert_eq!(db.history("default").len(), 2, "{mode}");
        project.write(
            "migrations/0003_slow.up.sql",
            b"CREATE TABLE slow_t (id int);\n",
        );
        project.run(&db, &["apply"], 0);
        assert!(db.exists("slow_t"));
    }
}

/// A server restart in the middle of a SQLite cutover: exit 2, never a hang,
/// and once the server is back every table of the cutover is empty and the
/// schema is as before (the load and its constraint take-out are one
/// transaction, which the restart rolled back).
#[test]
fn a_server_restart_mid_cutover_leaves_the_tables_empty() {
    let _one_at_a_time = RESTARTS.lock().unwrap_or_else(|e| e.into_inner());
    let (project, _source) = common::events_project(600_000);
    let db = TestDb::new();
    project.run(&db, &["apply", "--skip-backup"], 0);
    let before = common::checksum(&project, &db);
    let running = common::Running::cutover_mid_load(&project, &db);
    let started = Instant::now();
    sandbox()
        .pg_ctl(&["-m", "immediate", "-w", "-t", "60", "restart"])
        .unwrap();
    let (code, seen) = running.finish();
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "migsafe hung for {:?}",
        started.elapsed()
    );
    assert_eq!(code, Some(2), "{seen}");
    assert!(!seen.contains(sandbox().password()), "{seen}");
    for table in ["kinds", "events"] {
        assert_eq!(
            db.scalar(&format!("SELECT count(*) FROM {table}"))
                .as_deref(),
            Some("0"),
            "{table} must be empty again:\n{seen}"
        );
    }
    // The foreign key and primary keys taken out for the load are there:
    // they were dropped in the load's transaction, which the restart ended.
    assert_eq!(common::checksum(&project, &db), before, "{seen}");
}
