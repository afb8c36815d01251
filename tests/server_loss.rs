//! The server goes away in the middle of a migration: migsafe exits 2 with a
//! clear message (never hangs), the history tells the truth, and the next
//! apply succeeds once the server is back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{TestDb, expect_exit, migsafe_bin, sandbox, two_tables};

#[test]
fn a_server_restart_mid_migration_is_exit_2_and_recoverable() {
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
        expect_exit(&project.migsafe(&db).arg("apply").output().unwrap(), 0);
        assert!(db.exists("slow_t"));
    }
}
