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
