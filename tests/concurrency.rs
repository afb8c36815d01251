//! What migsafe survives: many runners at once, SIGKILL in the middle of a
//! migration, Ctrl-C, sessions holding conflicting locks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Project, TestDb, expect_exit, two_tables};

fn spawn_apply(project: &Project, db: &TestDb, extra: &[&str]) -> std::process::Child {
    let args: Vec<&str> = std::iter::once("apply")
        .chain(extra.iter().copied())
        .collect();
    project.spawn(db, &args)
}

fn many_migrations(count: usize) -> Project {
    let project = Project::new(&[]);
    for i in 1..=count {
        project.write(
            &format!("migrations/{i:04}_table_{i}.up.sql"),
            format!("CREATE TABLE t{i} (id bigint PRIMARY KEY, v text);\nCREATE INDEX t{i}_v ON t{i} (v);\n").as_bytes(),
        );
        project.write(
            &format!("migrations/{i:04}_table_{i}.down.sql"),
            format!("DROP TABLE t{i};").as_bytes(),
        );
    }
    project
}

#[test]
fn sixteen_runners_at_once_apply_everything_exactly_once() {
    let db = TestDb::new();
    let project = many_migrations(25);
    let children: Vec<_> = (0..16).map(|_| spawn_apply(&project, &db, &[])).collect();
    let mut failures = Vec::new();
    for child in children {
        let output = child.wait_with_output().unwrap();
        if !output.status.success() {
            failures.push(common::text(&output));
        }
    }
    assert!(
        failures.is_empty(),
        "{} runner(s) failed:\n{}",
        failures.len(),
        failures.join("\n---\n")
    );
    let history = db.history("default");
    assert_eq!(history.len(), 25);
    assert!(history.iter().all(|(_, dirty)| !dirty));
    let ran = project
        .event_log()
        .lines()
        .filter(|l| l.contains("\"migration_finished\""))
        .count();
    assert_eq!(
        ran, 25,
        "each migration ran exactly once across all runners"
    );
}

#[test]
fn sigkill_during_a_transactional_migration_leaves_nothing_and_the_next_apply_succeeds() {
    let db = TestDb::new();
    let project = two_tables();
    project.write(
        "migrations/0003_slow.up.sql",
        b"CREATE TABLE half_done (id int);\nINSERT INTO half_done VALUES (1);\nSELECT pg_sleep(60);\n",
    );
    let mut child = spawn_apply(&project, &db, &[]);
    common::wait_for_query(&db, "pg_sleep(60)");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!db.history("default").iter().any(|(v, _)| v == "0003"));

    // The server notices the dead client within a second, rolls back, and
    // frees the namespace lock: a normal apply can proceed.
    project.write(
        "migrations/0003_slow.up.sql",
        b"CREATE TABLE half_done (id int);\nINSERT INTO half_done VALUES (1);\n",
    );
    let mut command = project.migsafe(&db);
    command.arg("status");
    let out = expect_exit(&command.output().unwrap(), 0);
    assert!(
        out.contains("pending 0003") || out.contains("pending"),
        "{out}"
    );
    let started = Instant::now();
    // The edited file is fine: 0003 was never recorded.
    project.run(&db, &["apply"], 0);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "waited for the dead runner's lock too long"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM half_done").as_deref(),
        Some("1")
    );
}

#[test]
fn sigkill_during_a_no_transaction_migration_leaves_it_dirty_and_refused() {
    let db = TestDb::new();
    let project = two_tables();
    project.write(
        "migrations/0003_steps.up.sql",
        b"-- migsafe:no-transaction\nCREATE TABLE step_one (id int);\nSELECT pg_sleep(60);\nCREATE TABLE step_three (id int);\n",
    );
    let mut child = spawn_apply(&project, &db, &[]);
    common::wait_for_query(&db, "pg_sleep(60)");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(db.exists("step_one") && !db.exists("step_three"));
    assert_eq!(
        db.history("default").last(),
        Some(&("0003".to_string(), true))
    );

    let out = project.run(&db, &["apply"], 1);
    assert!(out.contains("error[MIGRATION_DIRTY:default:0003]"), "{out}");
    assert!(
        out.contains("repair --target default --clear-dirty 0003"),
        "{out}"
    );
    let out = project.run(&db, &["rollback"], 1);
    assert!(out.contains("MIGRATION_DIRTY:default:0003"), "{out}");

    // The operator finishes the statements by hand and records it.
    db.query("CREATE TABLE step_three (id int)");
    project.run(
        &db,
        &[
            "repair",
            "--clear-dirty",
            "3",
            "--reason",
            "finished step_three by hand",
        ],
        0,
    );
    assert_eq!(
        db.history("default").last(),
        Some(&("0003".to_string(), false))
    );
    let out = project.run(&db, &["apply"], 0);
    assert!(out.contains("up to date"), "{out}");
}

#[test]
fn ctrl_c_cancels_the_running_statement_and_keeps_the_history_true() {
    let db = TestDb::new();
    let project = two_tables();
    project.write(
        "migrations/0003_slow.up.sql",
        b"CREATE TABLE never (id int);\nSELECT pg_sleep(60);\n",
    );
    let child = spawn_apply(&project, &db, &[]);
    common::wait_for_query(&db, "pg_sleep(60)");
    let started = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "cancel took {:?}",
        started.elapsed()
    );
    let out = expect_exit(&output, 2);
    assert!(out.contains("MIGRATION_CANCELLED:default:0003"), "{out}");
    assert!(!db.exists("never"));
    assert_eq!(db.history("default").len(), 2);
}

#[test]
fn a_conflicting_lock_makes_apply_retry_then_succeed_once_released() {
    let db = TestDb::new();
    let project = two_tables();
    project.write(
        "migsafe.toml",
        // Each attempt waits long enough for the blocker to be sampled on
        // the side connection also on a loaded machine.
        b"[defaults]\nlock_timeout = \"1s\"\nlock_retry_delay = \"300ms\"\nlock_retries = 20\n",
    );
    project.run(&db, &["apply"], 0);
    project.write(
        "migrations/0003_add_email.up.sql",
        b"ALTER TABLE users ADD COLUMN email text;\n",
    );

    // Ordinary traffic: a report busy in its transaction for 3 s (not idle
    // in it), which preflight lets the lock_timeout retries wait out.
    let url = db.url.clone();
    let handle = std::thread::spawn(move || {
        common::query(
            &url,
            "SET application_name = 'blocker'; BEGIN; LOCK TABLE users IN ACCESS SHARE MODE; SELECT 'secret-value' FROM users; SELECT pg_sleep(3); COMMIT;",
        );
    });
    common::wait_for_query(&db, "pg_sleep");
    let child = spawn_apply(&project, &db, &[]);
    handle.join().unwrap();
    let output = child.wait_with_output().unwrap();
    let out = expect_exit(&output, 0);
    assert!(out.contains("retry"), "{out}");
    assert!(
        out.contains("blocked by pid"),
        "the blocker is named: {out}"
    );
    assert!(out.contains("blocker"), "with its application name: {out}");
    assert!(
        !out.contains("secret-value"),
        "the blocker's query is shown without its constants: {out}"
    );
    assert!(
        db.exists("users")
            && db
                .scalar(
                    "SELECT count(*) FROM information_schema.columns WHERE column_name = 'email'"
                )
                .as_deref()
                == Some("1")
    );
    let retried: Vec<serde_json::Value> = project
        .event_log()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| e["event"] == "migration_retried")
        .collect();
    assert!(!retried.is_empty());
    assert_eq!(retried[0]["reason"], "LOCK_TIMEOUT:default:0003");
    assert!(
        retried
            .iter()
            .any(|e| !e["blockers"].as_array().unwrap().is_empty())
    );
}

/// A session sitting in its transaction with ACCESS EXCLUSIVE on a table:
/// the schema cannot even be read. Preflight names the session at once
/// (BLOCKING_LOCK:<pid>, exit 1, its report written) instead of a lock
/// timeout from the catalog read, and --force cannot go on without it.
#[test]
fn an_exclusive_lock_held_idle_is_named_by_preflight_at_once() {
    let db = TestDb::new();
    let project = two_tables();
    project.run(&db, &["apply"], 0);
    project.write(
        "migrations/0003_add_email.up.sql",
        b"ALTER TABLE users ADD COLUMN email text;\n",
    );
    let (release, handle) = common::hold_lock(&db, "LOCK TABLE users IN ACCESS EXCLUSIVE MODE;");
    let pid = db
        .scalar("SELECT pid FROM pg_stat_activity WHERE application_name = 'blocker' AND datname = current_database()")
        .unwrap();
    let started = std::time::Instant::now();
    let output = project.migsafe(&db).arg("apply").output().unwrap();
    let out = expect_exit(&output, 1);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "named at once, not after a lock timeout: {out}"
    );
    assert!(
        out.contains(&format!("error[BLOCKING_LOCK:{pid}]")),
        "{out}"
    );
    assert!(out.contains("holds ACCESS EXCLUSIVE on users"), "{out}");
    assert!(
        out.contains(&format!("pg_terminate_backend({pid})")),
        "{out}"
    );
    assert!(!out.contains("DATABASE_ERROR"), "{out}");
    // status, what people watch, is not stuck behind it either.
    let started = std::time::Instant::now();
    let output = project.migsafe(&db).arg("status").output().unwrap();
    let status = expect_exit(&output, 0);
    assert!(started.elapsed() < Duration::from_secs(8), "{status}");
    assert!(status.contains("schema not compared"), "{status}");
    assert!(status.contains(&format!("BLOCKING_LOCK:{pid}")), "{status}");
    let forced = project
        .migsafe(&db)
        .args(["apply", "--force"])
        .output()
        .unwrap();
    let forced = expect_exit(&forced, 1);
    assert!(forced.contains("--force cannot go on"), "{forced}");
    let report = std::fs::read_dir(project.path().join("logs"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("preflight-report-")
        })
        .max()
        .unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["check"] == "blocking_locks" && c["status"] == "fail"),
        "{report}"
    );
    release.send(()).unwrap();
    handle.join().unwrap();
    assert_eq!(db.history("default").len(), 2);
    project.run(&db, &["apply"], 0);
    assert_eq!(db.history("default").len(), 3);
}

/// A running statement that holds ACCESS EXCLUSIVE may be about to finish:
/// preflight waits for it (up to 10 s) and says so at once, so the pause is
/// not taken for a hang, then names it.
#[test]
fn preflight_says_it_waits_for_a_running_exclusive_holder() {
    let db = TestDb::new();
    let project = two_tables();
    project.run(&db, &["apply"], 0);
    project.write(
        "migrations/0003_add_email.up.sql",
        b"ALTER TABLE users ADD COLUMN email text;\n",
    );
    let holder = common::run_in_background(
        &db,
        "BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60)",
    );
    common::wait_for_query(&db, "pg_sleep(60)");
    let pid = db
        .scalar("SELECT pid FROM pg_stat_activity WHERE application_name = 'blocker' AND datname = current_database()")
        .unwrap();
    let output = project.migsafe(&db).arg("preflight").output().unwrap();
    let out = expect_exit(&output, 1);
    assert!(
        out.contains(&format!("held by a running statement (pid {pid} on users)"))
            && out.contains("waits up to 10 s"),
        "{out}"
    );
    assert!(
        out.contains(&format!("error[BLOCKING_LOCK:{pid}]"))
            || out.contains(&format!("BLOCKING_LOCK:{pid}")),
        "{out}"
    );
    db.query(&format!("SELECT pg_terminate_backend({pid})"));
    holder.join().unwrap();
    project.run(&db, &["apply"], 0);
}

#[test]
fn lock_retries_exhausted_is_lock_timeout_with_history_unchanged() {
    let db = TestDb::new();
    let project = two_tables();
    project.write(
        "migsafe.toml",
        b"[defaults]\nlock_timeout = \"100ms\"\nlock_retry_delay = \"100ms\"\nlock_retries = 2\n",
    );
    project.run(&db, &["apply"], 0);
    project.write(
        "migrations/0003_add_email.up.sql",
        b"CREATE TABLE side (id int);\nALTER TABLE users ADD COLUMN email text;\n",
    );
    let (release, handle) = common::hold_lock(&db, "LOCK TABLE users IN ACCESS SHARE MODE;");
    let output = project
        .migsafe(&db)
        .args(["apply", "--force"])
        .output()
        .unwrap();
    release.send(()).unwrap();
    handle.join().unwrap();
    let out = expect_exit(&output, 2);
    assert!(out.contains("error[LOCK_TIMEOUT:default:0003]"), "{out}");
    assert!(out.contains("gave up after 3 attempts"), "{out}");
    assert!(!db.exists("side"));
    assert_eq!(db.history("default").len(), 2);
}

#[test]
fn a_held_namespace_lock_is_waited_for_then_reported_busy_with_the_holder() {
    let db = TestDb::new();
    let project = two_tables();
    project.write("migsafe.toml", b"[defaults]\nlock_wait = \"1s\"\n");
    let key = migsafe::db::lock::key("migsafe", "default");
    let (release, handle) = common::hold_lock(&db, &format!("SELECT pg_advisory_lock({key});"));
    let output = project.migsafe(&db).arg("apply").output().unwrap();
    let out = expect_exit(&output, 1);
    assert!(out.contains("error[ADVISORY_LOCK_BUSY:default]"), "{out}");
    assert!(out.contains("held by pid"), "{out}");
    assert!(!db.exists("users"));
    release.send(()).unwrap();
    handle.join().unwrap();
    // The session lock outlives the transaction: end the session's hold by
    // reconnecting; a fresh apply then goes through.
    project.run(&db, &["apply"], 0);
}
