//! What migsafe says matches what happened and what happens next: `plan`
//! refuses what `apply` refuses, every failure's `next:` line describes the
//! database as it is, and every failure has a `next:` line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Project, TestDb, two_tables};

/// The `next:` line of a failure.
fn next_line(out: &str) -> &str {
    out.lines()
        .find(|l| l.trim_start().starts_with("next:"))
        .unwrap_or_else(|| panic!("no next: line in\n{out}"))
}

#[test]
fn plan_refuses_with_the_code_apply_refuses_with() {
    let db = TestDb::new();
    let project = two_tables();
    project.write("migsafe.toml", b"[lint]\nlarge_table = \"8kB\"\n");
    project.run(&db, &["apply", "--skip-backup"], 0);
    db.query(
        "INSERT INTO users SELECT g, 'n' || g FROM generate_series(1, 5000) g; ANALYZE users;",
    );
    project.write(
        "migrations/0003_name_idx.up.sql",
        b"CREATE INDEX users_name_idx ON users (name);\n",
    );
    let plan = project.run(&db, &["plan"], 1);
    assert!(plan.contains("LINT_ERROR:default:0003"), "{plan}");
    let output = project
        .migsafe(&db)
        .args(["plan", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let reason = doc["namespaces"][0]["refused"]["reason"].as_str().unwrap();
    let apply = project.run(&db, &["apply", "--skip-backup"], 1);
    assert!(
        apply.contains(&format!("error[{reason}]")),
        "{reason}\n{apply}"
    );
    assert!(!db.exists("users_name_idx"));
}

#[test]
fn a_failed_transactional_down_says_the_migration_is_still_applied() {
    let db = TestDb::new();
    let project = two_tables();
    project.write(
        "migrations/0003_idx.up.sql",
        b"CREATE INDEX users_name_idx ON users (name);\nCREATE TABLE notes (id int);\n",
    );
    project.write(
        "migrations/0003_idx.down.sql",
        b"DROP TABLE notes;\nDROP INDEX nope_idx;\n",
    );
    project.run(&db, &["apply", "--skip-backup"], 0);
    let out = project.run(&db, &["rollback", "--skip-backup"], 4);
    assert!(out.contains("ROLLBACK_FAILED:default:0003"), "{out}");
    // The failing statement is named with its line, though the server gives no position.
    assert!(out.contains("0003_idx.down.sql:2:1"), "{out}");
    let next = next_line(&out);
    assert!(next.contains("the migration is still applied"), "{next}");
    assert!(next.contains("history row is unchanged"), "{next}");
    // ...and it is: row present and clean, and the down's first statement undone.
    assert_eq!(
        db.history("default").last(),
        Some(&("0003".to_string(), false))
    );
    assert!(db.exists("notes"));
    let status = project.run(&db, &["status"], 0);
    assert!(status.contains("3 applied, 0 pending"), "{status}");
}

#[test]
fn a_failed_no_transaction_down_says_dirty_and_is_dirty() {
    let db = TestDb::new();
    let project = two_tables();
    project.write(
        "migrations/0003_idx.up.sql",
        b"-- migsafe:no-transaction\nCREATE INDEX CONCURRENTLY users_name_idx ON users (name);\n",
    );
    project.write(
        "migrations/0003_idx.down.sql",
        b"-- migsafe:no-transaction\nDROP INDEX CONCURRENTLY users_name_idx;\nDROP INDEX CONCURRENTLY nope_idx;\n",
    );
    project.run(&db, &["apply", "--skip-backup"], 0);
    let out = project.run(&db, &["rollback", "--skip-backup"], 4);
    assert!(out.contains("MIGRATION_DIRTY:default:0003"), "{out}");
    let next = next_line(&out);
    assert!(next.contains("statements 1–1 of 2 ran"), "{next}");
    assert!(next.contains("DIRTY"), "{next}");
    assert_eq!(
        db.history("default").last(),
        Some(&("0003".to_string(), true))
    );
    assert!(!db.exists("users_name_idx"));
    // status does not count it as applied.
    let status = project.run(&db, &["status"], 0);
    assert!(status.contains("2 applied, 0 pending, 1 dirty"), "{status}");
}

#[test]
fn a_failed_apply_says_nothing_remains_and_nothing_does() {
    let db = TestDb::new();
    let project = two_tables();
    project.write(
        "migrations/0003_bad.up.sql",
        b"CREATE TABLE notes (id int);\n\nINSERT INTO notes VALUES (1);\nALTER TABLE nope ADD COLUMN x int;\n",
    );
    let out = project.run(&db, &["apply", "--skip-backup"], 2);
    assert!(out.contains("MIGRATION_FAILED:default:0003"), "{out}");
    assert!(out.contains("0003_bad.up.sql:4:"), "{out}");
    let next = next_line(&out);
    assert!(next.contains("nothing of it remains"), "{next}");
    assert!(next.contains("still pending"), "{next}");
    assert!(!db.exists("notes"));
    assert_eq!(db.history("default").len(), 2);
}

#[test]
fn every_failure_has_a_next_line() {
    let db = TestDb::new();
    // Duplicate versions.
    let project = Project::new(&[
        ("migrations/0001_a.up.sql", "CREATE TABLE a (id int);\n"),
        ("migrations/0001_b.up.sql", "CREATE TABLE b (id int);\n"),
    ]);
    let out = project.run(&db, &["status"], 5);
    assert!(out.contains("MIGRATION_VERSION_DUPLICATE"), "{out}");
    next_line(&out);
    // Non-UTF-8.
    project.remove("migrations/0001_b.up.sql");
    project.write("migrations/0002_c.up.sql", b"\xff\xfe CREATE");
    let out = project.run(&db, &["status"], 5);
    assert!(out.contains("MIGRATION_FILE_INVALID"), "{out}");
    next_line(&out);
    project.remove("migrations/0002_c.up.sql");
    // A missing --config file.
    let out = project.run(&db, &["status", "--config", "nope.toml"], 5);
    assert!(next_line(&out).contains("--config"), "{out}");
    // An unknown profile when none is defined.
    let out = project.run(&db, &["check", "--profile", "production"], 5);
    assert!(next_line(&out).contains("no profile is defined"), "{out}");
    // Permission denied on the history schema.
    let role = format!("ro_{}", std::process::id());
    db.query(&format!(
        "CREATE ROLE {role} LOGIN PASSWORD 'pw'; REVOKE CREATE ON SCHEMA public FROM PUBLIC; GRANT CONNECT ON DATABASE {name} TO {role};",
        name = db.name
    ));
    let url = format!(
        "postgres://{role}:pw@127.0.0.1:{}/{}?sslmode=disable",
        common::sandbox().port(),
        db.name
    );
    let out = common::expect_exit(
        &project
            .migsafe(&db)
            .env("DATABASE_URL", &url)
            .args(["apply", "--skip-backup"])
            .output()
            .unwrap(),
        5,
    );
    assert!(out.contains("permission denied"), "{out}");
    assert!(next_line(&out).contains("role"), "{out}");
}

#[test]
fn a_session_setting_of_one_migration_does_not_carry_into_the_next() {
    let db = TestDb::new();
    let project = Project::new(&[
        ("migrations/0001_schema.up.sql", "CREATE SCHEMA billing;\n"),
        (
            "migrations/0002_invoices.up.sql",
            "SET search_path = billing;\nCREATE TABLE invoices (id int);\n",
        ),
        ("migrations/0003_foo.up.sql", "CREATE TABLE foo (id int);\n"),
    ]);
    project.run(&db, &["apply", "--skip-backup"], 0);
    assert!(db.exists("billing.invoices"));
    assert!(
        db.exists("public.foo"),
        "foo went where the previous migration's search_path pointed"
    );
}

#[test]
fn drift_follows_the_database_default_search_path_and_quoted_names_do_not_break_preflight() {
    let db = TestDb::new();
    db.query(&format!(
        "CREATE SCHEMA app; ALTER DATABASE {} SET search_path = app;",
        db.name
    ));
    let project = Project::new(&[(
        "migrations/0001_t.up.sql",
        "CREATE TABLE t (id int);\nCREATE TABLE \"Ar chive\" (id int);\n",
    )]);
    project.run(&db, &["apply", "--skip-backup"], 0);
    assert!(db.exists("app.t"));
    project.write(
        "migrations/0002_copy.up.sql",
        b"CREATE TABLE copy AS SELECT * FROM \"Ar chive\";\n",
    );
    project.run(&db, &["plan"], 0);
    db.query("ALTER TABLE app.t ADD COLUMN hacked text;");
    let out = project.run(&db, &["plan"], 1);
    assert!(out.contains("SCHEMA_DRIFT:default"), "{out}");
    assert!(out.contains("hacked"), "{out}");
}

#[test]
fn preflight_does_not_hang_behind_a_lock_on_an_unrelated_table() {
    let db = TestDb::new();
    let project = two_tables();
    project.run(&db, &["apply", "--skip-backup"], 0);
    db.query("CREATE SCHEMA other; CREATE TABLE other.unrelated (id int); INSERT INTO other.unrelated VALUES (1);");
    let (release, holder) =
        common::hold_lock(&db, "LOCK TABLE other.unrelated IN ACCESS EXCLUSIVE MODE;");
    project.write(
        "migrations/0003_email.up.sql",
        b"ALTER TABLE users ADD COLUMN email text;\n",
    );
    let started = std::time::Instant::now();
    project.run(&db, &["apply", "--skip-backup", "--no-postflight"], 0);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    release.send(()).unwrap();
    holder.join().unwrap();
}
