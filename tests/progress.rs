//! Progress (SPEC 18): on a terminal, verify and the backup draw indicatif
//! bars; off a terminal, progress lines; `-q` silences both.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestDb, expect_exit, two_tables};

#[test]
fn off_a_terminal_verify_prints_progress_lines_and_quiet_silences_them() {
    let db = TestDb::new();
    let project = two_tables();
    let scratch = common::sandbox().url("postgres");
    let out = project.run(&db, &["verify", "--scratch-url", &scratch], 0);
    assert!(out.contains("verify: 0/2 migrations"), "{out}");
    assert!(out.contains("verify: 2/2 migrations"), "{out}");
    assert!(!out.contains("ETA"), "no bar off a terminal: {out}");
    let quiet = project.run(&db, &["-q", "verify", "--scratch-url", &scratch], 0);
    assert!(!quiet.contains("verify: "), "{quiet}");
}

/// `script` (util-linux) gives the command a pseudo-terminal.
fn on_a_terminal(db: &TestDb, project: &common::Project, args: &str) -> String {
    let command = format!("{} {args}", common::migsafe_bin().display());
    let output = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(project.path())
        .env("DATABASE_URL", &db.url)
        .env("TERM", "xterm")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    expect_exit(&output, 0)
}

#[test]
fn on_a_terminal_verify_and_the_backup_draw_bars_and_quiet_silences_them() {
    let db = TestDb::new();
    let project = two_tables();
    let scratch = common::sandbox().url("postgres");
    let out = on_a_terminal(&db, &project, &format!("verify --scratch-url '{scratch}'"));
    assert!(
        out.contains("verify [") && out.contains("migrations") && out.contains("ETA"),
        "{out}"
    );
    assert!(!out.contains("verify: 0/2"), "bars, not lines: {out}");
    let applied = on_a_terminal(&db, &project, "apply");
    assert!(
        applied.contains("backup ") && applied.contains("B/s"),
        "{applied}"
    );
    let quiet = on_a_terminal(
        &db,
        &project,
        &format!("-q verify --scratch-url '{scratch}'"),
    );
    assert!(
        !quiet.contains("ETA") && !quiet.contains("verify ["),
        "{quiet}"
    );
}

#[test]
fn on_a_terminal_a_backfill_draws_a_bar_of_its_rows() {
    let db = TestDb::new();
    let project = common::Project::new(&[
        (
            "migrations/0001_accounts.up.sql",
            "CREATE TABLE accounts (id bigint PRIMARY KEY, email text, email_lower text);\nINSERT INTO accounts SELECT g, 'User' || g || '@Example.com', NULL FROM generate_series(1, 200000) g;\n",
        ),
        (
            "migrations/0002_fill.up.sql",
            "-- migsafe:backfill 20ms\nUPDATE accounts SET email_lower = lower(email) WHERE email_lower IS NULL;\n",
        ),
    ]);
    let out = on_a_terminal(&db, &project, "apply --skip-backup");
    assert!(
        out.contains("backfill default:0002 accounts") && out.contains("rows"),
        "{out}"
    );
    assert!(
        !out.contains("rows in "),
        "a bar, not the progress lines: {out}"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM accounts WHERE email_lower IS NULL")
            .as_deref(),
        Some("0")
    );
}

/// What a migration says with `RAISE NOTICE` (and the server's warnings)
/// is shown under it, as Flyway's `DB:` lines are, with DETAIL and HINT,
/// in the event log too; a loop that raises one per row shows at most the
/// last 200 a second and counts the rest; a failing script's notices come
/// before its failure.
#[test]
fn what_the_server_says_while_a_migration_runs_is_shown_under_it() {
    let db = TestDb::new();
    let project = common::Project::new(&[
        (
            "migrations/0001_accounts.up.sql",
            "CREATE TABLE accounts (id bigint PRIMARY KEY);\nCREATE TABLE IF NOT EXISTS accounts (id bigint);\nDO $$ BEGIN RAISE NOTICE 'backfilled % rows', 30 USING DETAIL = 'batch 1 of 1', HINT = 'nothing to do'; RAISE WARNING 'slow plan'; END $$;\n",
        ),
        (
            "migrations/0002_loop.up.sql",
            // The first notice is shown at once; the loop's 250, raised
            // within the second after it, in one batch of the last 200.
            "DO $$ BEGIN RAISE NOTICE 'start'; PERFORM pg_sleep(0.4); FOR i IN 1..250 LOOP RAISE NOTICE 'row %', i; END LOOP; END $$;\n",
        ),
    ]);
    let out = project.run(&db, &["apply", "--skip-backup"], 0);
    assert!(
        out.contains("default: 0001 DB NOTICE: relation \"accounts\" already exists, skipping"),
        "{out}"
    );
    assert!(out.contains("default: 0001 DB NOTICE: backfilled 30 rows\n    DETAIL: batch 1 of 1\n    HINT: nothing to do"), "{out}");
    assert!(out.contains("default: 0001 DB WARNING: slow plan"), "{out}");
    // Between the migration's start and end lines.
    let notice = out.find("backfilled 30 rows").unwrap();
    assert!(
        out.find("applying 0001 accounts").unwrap() < notice,
        "{out}"
    );
    assert!(notice < out.find("done 0001 accounts").unwrap(), "{out}");
    assert!(
        out.contains("default: 0002 (50 earlier server notice(s) not shown; the last 200 follow)"),
        "{out}"
    );
    assert!(
        !out.contains("DB NOTICE: row 50\n")
            && out.contains("DB NOTICE: row 51\n")
            && out.contains("DB NOTICE: row 250\n"),
        "{out}"
    );
    let log = std::fs::read_to_string(project.path().join("logs/migrations.jsonl")).unwrap();
    assert!(
        log.contains(r#""event":"server_notice""#)
            && log.contains(r#""message":"backfilled 30 rows""#),
        "{log}"
    );

    // The run's report keeps them with their migration.
    let report = std::fs::read_dir(project.path().join("logs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("run-report-")
        })
        .unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    let first = &report["timeline"][0];
    assert!(
        first["notices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["message"] == "backfilled 30 rows" && n["hint"] == "nothing to do"),
        "{report}"
    );
    assert_eq!(report["timeline"][1]["notices_dropped"], 50, "{report}");

    // A failing script: what it said first, then the failure.
    project.write(
        "migrations/0003_fails.up.sql",
        b"DO $$ BEGIN RAISE NOTICE 'about to fail'; END $$;\nSELECT 1/0;\n",
    );
    let out = project.run(&db, &["apply", "--skip-backup"], 2);
    let said = out.find("0003 DB NOTICE: about to fail").unwrap();
    let failed = out.find("FAILED 0003").unwrap();
    assert!(said < failed, "{out}");
}

/// A long migration that reports with `RAISE NOTICE` is heard as it goes,
/// not when it ends: the notice is printed while the server still sleeps
/// after it.
#[test]
fn a_notice_is_shown_while_its_migration_still_runs() {
    use std::io::{BufRead, BufReader};
    let db = TestDb::new();
    let project = common::Project::new(&[(
        "migrations/0001_backfill.up.sql",
        "CREATE TABLE t (id int);\nDO $$ BEGIN RAISE NOTICE 'halfway there'; PERFORM pg_sleep(3); END $$;\n",
    )]);
    let mut child = project.spawn(&db, &["apply", "--skip-backup"]);
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    let heard = loop {
        let Some(line) = lines.next() else {
            panic!("the notice never came:\n{}", seen.join("\n"));
        };
        let line = line.unwrap();
        let found = line.contains("DB NOTICE: halfway there");
        seen.push(line);
        if found {
            break std::time::Instant::now();
        }
    };
    for line in lines {
        seen.push(line.unwrap());
    }
    let status = child.wait().unwrap();
    let after = heard.elapsed();
    assert!(status.success(), "{}", seen.join("\n"));
    // The server sleeps 3 s after the notice: shown at the end, it would
    // come moments before the exit.
    assert!(
        after >= std::time::Duration::from_secs(2),
        "the notice came {after:?} before the end:\n{}",
        seen.join("\n")
    );
    assert!(
        seen.iter().any(|l| l.contains("done 0001")),
        "{}",
        seen.join("\n")
    );
}
