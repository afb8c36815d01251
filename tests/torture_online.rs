//! Reliability scenario (issue 15): risky DDL and a backfill under live
//! writes. pgbench's clients update random rows of a table while migsafe
//! changes it, first with the plain statements (forced past lint), then with
//! `--online` on a fresh copy, then backfills it. Figures, not timed
//! assertions: the longest pgbench transaction and the failed ones during
//! each run. What is asserted is the end state.
//!
//! `TORTURE_ROWS` (default 20000; `scripts/torture` uses 1000000) rows;
//! `TORTURE_LOAD_SECS` (default 6; `scripts/torture` uses 30) how long pgbench runs per case.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Project, TestDb, checksum, migsafe_bin, sandbox};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

const RISKY: &str = "CREATE INDEX accounts_owner_idx ON accounts (owner);
ALTER TABLE accounts ADD CONSTRAINT accounts_owner_fk FOREIGN KEY (owner) REFERENCES owners (id);
ALTER TABLE accounts ADD CONSTRAINT accounts_balance_pos CHECK (balance >= 0);
ALTER TABLE accounts ALTER COLUMN owner SET NOT NULL;
ALTER TABLE accounts ADD CONSTRAINT accounts_code_key UNIQUE (code);
";

const BACKFILL: &str =
    "-- migsafe:backfill\nUPDATE accounts SET code_lower = lower(code) WHERE code_lower IS NULL;\n";

fn setup(db: &TestDb, rows: u64) {
    db.query(&format!(
        "CREATE TABLE owners (id int PRIMARY KEY);
         INSERT INTO owners SELECT g FROM generate_series(1, 1000) g;
         CREATE TABLE accounts (id int PRIMARY KEY, owner int, balance bigint NOT NULL DEFAULT 0, code text, code_lower text);
         INSERT INTO accounts SELECT g, 1 + g % 1000, 0, 'C' || g, NULL FROM generate_series(1, {rows}) g;
         ANALYZE accounts;"
    ));
}

/// The longest latency and the failed count of a pgbench run with per-transaction logs.
struct Load {
    longest: Duration,
    failed: u64,
    processed: String,
}

fn with_load(db: &TestDb, rows: u64, secs: u64, work: impl FnOnce()) -> (Load, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("bench.sql");
    std::fs::write(
        &script,
        format!("\\set id random(1, {rows})\nUPDATE accounts SET balance = balance + 1 WHERE id = :id;\n"),
    )
    .unwrap();
    let pgbench = Command::new(sandbox().bin_dir().join("pgbench"))
        .current_dir(dir.path())
        .args(["-n", "-c", "4", "-j", "2", "-T", &secs.to_string(), "-f"])
        .arg(&script)
        .args(["-l", &db.url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    work();
    let took = started.elapsed();
    let bench = pgbench.wait_with_output().unwrap();
    let text = common::text(&bench);
    assert!(bench.status.success(), "pgbench failed:\n{text}");
    let failed = text
        .lines()
        .find_map(|l| l.strip_prefix("number of failed transactions: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let processed = text
        .lines()
        .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
        .unwrap_or("?")
        .to_string();
    let mut longest = 0u64;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("pgbench_log")
        {
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                if let Some(latency) = line.split_whitespace().nth(2).and_then(|l| l.parse().ok()) {
                    longest = longest.max(latency);
                }
            }
        }
    }
    (
        Load {
            longest: Duration::from_micros(longest),
            failed,
            processed,
        },
        took,
    )
}

fn apply(project: &Project, db: &TestDb, args: &[&str]) {
    let output = Command::new(migsafe_bin())
        .current_dir(project.path())
        .env("DATABASE_URL", &db.url)
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", common::text(&output));
}

#[test]
fn online_under_load() {
    let rows = env_or("TORTURE_ROWS", 20_000);
    let secs = env_or("TORTURE_LOAD_SECS", 6);
    let config =
        "[defaults]\nlock_timeout = \"1s\"\nlock_retry_delay = \"200ms\"\nlock_retries = 100\n";
    let make = || {
        Project::new(&[
            ("migsafe.toml", config),
            ("migrations/0001_risky.up.sql", RISKY),
            ("migrations/0002_fill.up.sql", BACKFILL),
        ])
    };

    let plain_db = TestDb::new();
    setup(&plain_db, rows);
    let plain = make();
    let (plain_load, plain_took) = with_load(&plain_db, rows, secs, || {
        apply(
            &plain,
            &plain_db,
            &["apply", "--skip-backup", "--force", "--steps", "1"],
        );
    });

    let online_db = TestDb::new();
    setup(&online_db, rows);
    let online = make();
    let (online_load, online_took) = with_load(&online_db, rows, secs, || {
        apply(
            &online,
            &online_db,
            &["apply", "--skip-backup", "--online", "--steps", "1"],
        );
    });
    assert_eq!(checksum(&online, &online_db), checksum(&plain, &plain_db));

    let (fill_load, fill_took) = with_load(&online_db, rows, secs, || {
        apply(&online, &online_db, &["apply", "--skip-backup"]);
    });
    assert_eq!(
        online_db
            .scalar("SELECT count(*) FROM accounts WHERE code_lower IS DISTINCT FROM lower(code)")
            .as_deref(),
        Some("0")
    );
    for (what, load, took) in [
        ("plain (forced)", &plain_load, plain_took),
        ("--online", &online_load, online_took),
        ("backfill", &fill_load, fill_took),
    ] {
        println!(
            "online under load: {rows} rows, pgbench 4 writers for {secs}s, {what}: took {} ms; pgbench transactions {}, failed {} (target 0); longest {} ms (target < 1000 ms online)",
            took.as_millis(),
            load.processed,
            load.failed,
            load.longest.as_millis()
        );
    }
}
