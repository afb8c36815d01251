//! Reliability scenario 4 (issue 8): lock contention under load. pgbench runs a
//! read/write workload on the table a migration alters, while another session
//! holds a conflicting lock for a while. A migration that queued for its
//! ACCESS EXCLUSIVE lock without a timeout would stall every pgbench
//! transaction behind it for as long as the blocker lives; migsafe's
//! `lock_timeout` and retries bound the stall to about `lock_timeout`.
//!
//! `TORTURE_HOLD_SECS` (default 5, `scripts/torture` uses 20) is how long the
//! blocker holds its lock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Project, TestDb, migsafe_bin, sandbox};

/// The longest transaction latency in pgbench's per-transaction logs
/// (`client_id transaction_no latency_us script_no epoch epoch_us`).
fn longest_latency(dir: &std::path::Path) -> Duration {
    let mut longest = 0u64;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if !path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("pgbench_log")
        {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            if let Some(latency) = line.split_whitespace().nth(2).and_then(|l| l.parse().ok()) {
                longest = longest.max(latency);
            }
        }
    }
    Duration::from_micros(longest)
}

#[test]
fn lock_contention_under_load() {
    let hold = Duration::from_secs(
        std::env::var("TORTURE_HOLD_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5),
    );
    let lock_timeout = Duration::from_secs(1);
    let db = TestDb::new();
    db.query(
        "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL DEFAULT 0);
         INSERT INTO accounts SELECT g, 0 FROM generate_series(1, 1000) g;",
    );
    let project = Project::new(&[
        (
            "migsafe.toml",
            "[defaults]\nlock_timeout = \"1s\"\nlock_retry_delay = \"500ms\"\nlock_retries = 30\n",
        ),
        (
            "migrations/0001_add_note.up.sql",
            "ALTER TABLE accounts ADD COLUMN note text;",
        ),
        (
            "migrations/0001_add_note.down.sql",
            "ALTER TABLE accounts DROP COLUMN note;",
        ),
        (
            "bench.sql",
            "\\set id random(1, 1000)\nUPDATE accounts SET balance = balance + 1 WHERE id = :id;\nSELECT balance FROM accounts WHERE id = :id;\n",
        ),
    ]);
    let logs = project.path().join("pgbench");
    std::fs::create_dir_all(&logs).unwrap();
    let run_for = hold + Duration::from_secs(6);
    let pgbench = Command::new(sandbox().bin_dir().join("pgbench"))
        .current_dir(&logs)
        .args([
            "-n",
            "-c",
            "4",
            "-j",
            "2",
            "-T",
            &run_for.as_secs().to_string(),
            "-f",
            project.path().join("bench.sql").to_str().unwrap(),
            "-l",
            &db.url,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));

    // A long report query: its ACCESS SHARE lock conflicts with ALTER TABLE,
    // not with pgbench's reads and writes.
    // Busy in its transaction (not idle in it): ordinary traffic, which
    // preflight lets the lock_timeout retries wait out.
    let url = db.url.clone();
    let hold_secs = hold.as_secs_f64();
    let blocker = std::thread::spawn(move || {
        common::query(
            &url,
            &format!(
                "SET application_name = 'blocker'; BEGIN; SELECT count(*) FROM accounts; SELECT pg_sleep({hold_secs}); COMMIT;"
            ),
        );
    });
    common::wait_for_query(&db, "pg_sleep");
    let blocked_at = Instant::now();
    let migsafe = Command::new(migsafe_bin())
        .current_dir(project.path())
        .env("DATABASE_URL", &db.url)
        .env("NO_COLOR", "1")
        .args(["apply", "--skip-backup"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    blocker.join().unwrap();
    let released_at = blocked_at.elapsed();

    let applied = migsafe.wait_with_output().unwrap();
    let applied_after = blocked_at.elapsed();
    let bench = pgbench.wait_with_output().unwrap();
    let bench_text = common::text(&bench);
    assert!(bench.status.success(), "pgbench failed:\n{bench_text}");
    // "number of failed transactions: 0 (0.000%)" (PostgreSQL 15 and later);
    // older pgbench aborts a client on an error instead, which fails above.
    let failed: u64 = bench_text
        .lines()
        .find_map(|l| l.strip_prefix("number of failed transactions: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let processed = bench_text
        .lines()
        .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
        .unwrap_or("?")
        .to_string();
    let longest = longest_latency(&logs);
    let retries = common::text(&applied).matches("retrying").count();
    let column = db.scalar(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'accounts' AND column_name = 'note'",
    );
    println!(
        "lock contention: pgbench 4 clients for {}s, blocker held {}s: pgbench transactions {processed}, failed {failed} (target 0); longest stall {} ms (target <= lock_timeout + 1 s = {} ms); migration applied after {} attempts, {} ms after the blocker went away",
        run_for.as_secs(),
        hold.as_secs(),
        longest.as_millis(),
        (lock_timeout + Duration::from_secs(1)).as_millis(),
        retries + 1,
        applied_after.saturating_sub(released_at).as_millis(),
    );
    assert!(
        applied.status.success(),
        "the migration must apply once the blocker is gone:\n{}",
        common::text(&applied)
    );
    assert_eq!(column.as_deref(), Some("1"));
    assert!(
        retries >= 1,
        "the blocker must have made the migration wait:\n{}",
        common::text(&applied)
    );
    assert_eq!(failed, 0, "{bench_text}");
    assert!(
        longest <= lock_timeout + Duration::from_secs(1),
        "pgbench stalled {longest:?}"
    );
}
