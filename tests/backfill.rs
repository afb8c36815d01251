//! Backfills (`-- migsafe:backfill`, SPEC 16): one UPDATE in primary-key
//! batches, each its own transaction with its progress row; a run killed or
//! interrupted part-way resumes after the last committed batch.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Project, Running, TestDb, hold_lock, wait_for_query};

const ROWS: i64 = 50_000;

fn project(key: &str) -> Project {
    Project::new(&[
        (
            "migsafe.toml",
            "[defaults]\nlock_timeout = \"1s\"\nlock_retry_delay = \"100ms\"\nlock_retries = 1000\nlock_wait = \"60s\"\n",
        ),
        (
            "migrations/0001_accounts.up.sql",
            &format!(
                "CREATE TABLE accounts (id {key} PRIMARY KEY, email text, email_lower text);
INSERT INTO accounts SELECT g, 'User' || g || '@Example.com', NULL FROM generate_series(1, {ROWS}) g;
CREATE TABLE other (id int PRIMARY KEY, v int);
INSERT INTO other VALUES (1, 0);
"
            ),
        ),
        (
            "migrations/0002_fill.up.sql",
            "-- migsafe:backfill 20ms\nUPDATE accounts SET email_lower = lower(email) WHERE email_lower IS NULL;\n",
        ),
    ])
}

fn done_rows(db: &TestDb) -> i64 {
    db.scalar("SELECT count(*) FROM accounts WHERE email_lower IS NOT NULL")
        .unwrap()
        .parse()
        .unwrap()
}

/// Stops a run that is blocked on the row lock of `id` with `signal`, and
/// checks that exactly the committed batches are recorded.
fn stop_at(project: &Project, db: &TestDb, id: i64, signal: &str) -> (Option<i32>, String) {
    let (release, holder) = hold_lock(
        db,
        &format!("SELECT 1 FROM accounts WHERE id = {id} FOR UPDATE"),
    );
    let running = Running::until(
        project,
        db,
        &["apply", "--skip-backup", "--force"],
        "default: applying 0002",
    );
    wait_for_query(db, "lower(email)");
    let pid = running.child.id().to_string();
    let sent = std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let (code, seen) = running.finish();
    release.send(()).unwrap();
    holder.join().unwrap();
    // The killed session's batch is rolled back once the server notices.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while db
        .scalar("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%lower(email)%' AND pid <> pg_backend_pid() AND query NOT LIKE '%pg_stat_activity%'")
        .as_deref()
        != Some("0")
    {
        assert!(std::time::Instant::now() < deadline, "the batch never ended");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let recorded: i64 = db
        .scalar("SELECT rows FROM migsafe.online_progress WHERE version = '0002'")
        .unwrap()
        .parse()
        .unwrap();
    let last_key: i64 = db
        .scalar("SELECT last_key FROM migsafe.online_progress WHERE version = '0002'")
        .unwrap()
        .parse()
        .unwrap();
    assert!(last_key < id, "{last_key} {id}");
    assert!(recorded > 0 && recorded < ROWS, "{recorded}");
    assert_eq!(
        recorded,
        done_rows(db),
        "the recorded rows are exactly the committed ones"
    );
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM accounts WHERE email_lower IS NOT NULL AND id > {last_key}"
        ))
        .as_deref(),
        Some("0")
    );
    assert_eq!(db.history("default").len(), 1);
    (code, seen)
}

#[test]
fn a_backfill_killed_or_interrupted_resumes_after_its_last_batch() {
    let db = TestDb::new();
    let project = project("bigint");
    project.run(&db, &["apply", "--skip-backup", "--steps", "1"], 0);

    let (code, _) = stop_at(&project, &db, 20_000, "-KILL");
    assert_eq!(code, None, "killed");

    let (code, seen) = stop_at(&project, &db, 40_000, "-INT");
    assert_ne!(code, Some(0), "{seen}");
    assert!(
        seen.contains("backfill of accounts resumes after id = "),
        "{seen}"
    );
    assert!(seen.contains("MIGRATION_CANCELLED:default:0002"), "{seen}");
    assert!(seen.contains("resumes after key"), "{seen}");

    let out = project.run(&db, &["apply", "--skip-backup"], 0);
    assert!(out.contains("resumes after id = "), "{out}");
    assert!(out.contains("backfill accounts:"), "{out}");
    assert_eq!(done_rows(&db), ROWS);
    assert_eq!(
        db.scalar("SELECT count(*) FROM accounts WHERE email_lower <> lower(email)")
            .as_deref(),
        Some("0")
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM migsafe.online_progress")
            .as_deref(),
        Some("0")
    );
    let history = db.history("default");
    assert_eq!(history.len(), 2);
    assert!(history.iter().all(|(_, dirty)| !dirty));
}

#[test]
fn a_uuid_key_is_walked_too() {
    let db = TestDb::new();
    let project = project("uuid");
    // generate_series gives integers: the table is made with uuids instead.
    project.write(
        "migrations/0001_accounts.up.sql",
        b"CREATE TABLE accounts (id uuid PRIMARY KEY, email text, email_lower text);
INSERT INTO accounts SELECT md5(g::text)::uuid, 'User' || g, NULL FROM generate_series(1, 5000) g;
",
    );
    let out = project.run(&db, &["apply", "--skip-backup"], 0);
    assert!(out.contains("done"), "{out}");
    assert_eq!(
        db.scalar("SELECT count(*) FROM accounts WHERE email_lower IS DISTINCT FROM lower(email)")
            .as_deref(),
        Some("0")
    );
}

#[test]
fn a_backfill_waits_while_other_sessions_wait_for_locks() {
    let db = TestDb::new();
    let project = project("bigint");
    project.run(&db, &["apply", "--skip-backup", "--steps", "1"], 0);
    // One session holds a row of another table, a second waits for it.
    let (release, holder) = hold_lock(&db, "SELECT 1 FROM other WHERE id = 1 FOR UPDATE");
    let url = db.url.clone();
    let waiter = std::thread::spawn(move || {
        common::query(&url, "UPDATE other SET v = v + 1 WHERE id = 1");
    });
    wait_for_query(&db, "UPDATE other");
    let running = Running::until(
        &project,
        &db,
        &["apply", "--skip-backup", "--force"],
        "default: 0002 backfill paused:",
    );
    assert_eq!(done_rows(&db), 0, "no batch ran while a session waited");
    release.send(()).unwrap();
    holder.join().unwrap();
    waiter.join().unwrap();
    let (code, seen) = running.finish();
    assert_eq!(code, Some(0), "{seen}");
    assert_eq!(done_rows(&db), ROWS);
}

#[test]
fn tables_without_a_usable_key_are_refused() {
    for (table, why) in [
        (
            "CREATE TABLE accounts (id int, email text, email_lower text)",
            "has no primary key",
        ),
        (
            "CREATE TABLE accounts (id int, n int, email text, email_lower text, PRIMARY KEY (id, n))",
            "primary key has several columns",
        ),
        (
            "CREATE TABLE accounts (id text PRIMARY KEY, email text, email_lower text)",
            "is of type text, not an integer or uuid",
        ),
    ] {
        let db = TestDb::new();
        let project = project("bigint");
        project.write(
            "migrations/0001_accounts.up.sql",
            format!("{table};\n").as_bytes(),
        );
        let out = project.run(&db, &["apply", "--skip-backup"], 2);
        assert!(out.contains("BACKFILL_REFUSED:default:0002"), "{out}");
        assert!(out.contains(why), "{out}");
        assert_eq!(db.history("default").len(), 1, "nothing of it ran");
    }
    // An UPDATE of the key itself would chase the rows it moves.
    {
        let db = TestDb::new();
        let project = project("bigint");
        project.write(
            "migrations/0002_fill.up.sql",
            b"-- migsafe:backfill\nUPDATE accounts SET id = id + 1000000, email_lower = lower(email);\n",
        );
        let out = project.run(&db, &["apply", "--skip-backup"], 2);
        assert!(
            out.contains("BACKFILL_REFUSED:default:0002")
                && out.contains("the primary key the batches walk by"),
            "{out}"
        );
        assert_eq!(
            db.scalar("SELECT count(*) FROM accounts WHERE id > 1000000")
                .as_deref(),
            Some("0"),
            "nothing of it ran"
        );
    }
    // Not one UPDATE: refused before anything runs.
    let db = TestDb::new();
    let project = project("bigint");
    project.write(
        "migrations/0002_fill.up.sql",
        b"-- migsafe:backfill\nUPDATE accounts SET email_lower = lower(email);\nUPDATE other SET v = 1;\n",
    );
    let out = project.run(&db, &["apply", "--skip-backup"], 5);
    assert!(out.contains("BACKFILL_REFUSED:default:0002"), "{out}");
    assert!(
        !db.exists("migsafe.schema_migrations") || db.history("default").is_empty(),
        "nothing ran"
    );
}
