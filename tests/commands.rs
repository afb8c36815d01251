//! Every command's happy path and its refusals, against a real PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Project, TestDb, expect_exit, two_tables};

#[test]
fn apply_status_history_and_rollback_round_trip() {
    let db = TestDb::new();
    let project = two_tables();

    let out = project.run(&db, &["status"], 0);
    assert!(out.contains("0 applied, 2 pending"), "{out}");
    // Read commands never create the history table.
    assert!(!db.exists("migsafe.schema_migrations"));

    let out = project.run(&db, &["apply"], 0);
    assert!(out.contains("applied 2 migration(s)"), "{out}");
    assert!(db.exists("users") && db.exists("orders"));
    assert_eq!(
        db.history("default"),
        vec![("0001".into(), false), ("0002".into(), false)]
    );
    let row = db.query("SELECT name, checksum, down_checksum IS NOT NULL, applied_by, tool_version, execution_ms >= 0 FROM migsafe.schema_migrations WHERE version = '0001'");
    assert_eq!(row[0][0].as_deref(), Some("create_users"));
    assert_eq!(row[0][1].as_ref().map(String::len), Some(64));
    assert_eq!(row[0][2].as_deref(), Some("t"));
    assert!(row[0][3].as_deref().unwrap().contains('@'));
    assert_eq!(row[0][5].as_deref(), Some("t"));

    // Nothing pending: exit 0, nothing runs.
    let out = project.run(&db, &["apply"], 0);
    assert!(out.contains("up to date"), "{out}");

    let out = project.run(&db, &["history", "--format", "json"], 0);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(doc["namespaces"][0]["applied"].as_array().unwrap().len(), 2);

    let out = project.run(&db, &["rollback"], 0);
    assert!(out.contains("rolled back 1 migration(s)"), "{out}");
    assert!(!db.exists("orders") && db.exists("users"));
    assert_eq!(db.history("default"), vec![("0001".into(), false)]);

    project.run(&db, &["rollback", "--to", "0"], 0);
    assert!(!db.exists("users"));
    assert!(db.history("default").is_empty());

    // The event log has one JSON object per line, with the SPEC fields.
    let log = project.event_log();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(events.iter().any(|e| e["event"] == "migration_finished"
        && e["version"] == "0002"
        && e["duration_ms"].is_u64()));
    assert!(events.iter().all(|e| e["ts"].is_string()));
    let mode = std::fs::metadata(project.path().join("logs/migrations.jsonl")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
}

#[test]
fn status_json_is_one_document_with_states() {
    let db = TestDb::new();
    let project = two_tables();
    project.run(&db, &["apply", "--steps", "1"], 0);
    let output = project
        .migsafe(&db)
        .args(["status", "--format", "json"])
        .output()
        .unwrap();
    expect_exit(&output, 0);
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let entries = doc["namespaces"][0]["entries"].as_array().unwrap();
    assert_eq!(entries[0]["state"], "applied");
    assert_eq!(entries[1]["state"], "pending");
}

#[test]
fn apply_to_and_steps_select_a_prefix() {
    let db = TestDb::new();
    let project = two_tables();
    project.write(
        "migrations/0003_more.up.sql",
        b"CREATE TABLE more (id int);",
    );
    project.run(&db, &["apply", "--to", "2"], 0);
    assert_eq!(db.history("default").len(), 2);
    let out = project.run(&db, &["apply", "--to", "99"], 5);
    assert!(out.contains("VERSION_UNKNOWN:default:99"), "{out}");
    project.run(&db, &["apply", "--steps", "1"], 0);
    assert_eq!(db.history("default").len(), 3);
}

#[test]
fn plan_lists_the_order_and_mode_without_writing() {
    let db = TestDb::new();
    let project = two_tables();
    project.write(
        "migrations/0003_index.up.sql",
        b"-- migsafe:no-transaction\nCREATE INDEX CONCURRENTLY users_name ON users (name);\n",
    );
    let out = project.run(&db, &["plan"], 0);
    assert!(out.contains("3 migration(s) to apply"), "{out}");
    assert!(out.contains("no-transaction"), "{out}");
    let out = project.run(&db, &["dry-run"], 0);
    assert!(out.contains("0001"), "{out}");
    assert!(!db.exists("migsafe.schema_migrations"));
    assert!(!db.exists("users"));
}

#[test]
fn apply_sql_prints_a_script_psql_can_run() {
    let db = TestDb::new();
    let project = two_tables();
    let output = project
        .migsafe(&db)
        .args(["apply", "--sql"])
        .output()
        .unwrap();
    expect_exit(&output, 0);
    let script = String::from_utf8(output.stdout).unwrap();
    assert!(script.contains("pg_advisory_lock"));
    assert!(!db.exists("users"), "apply --sql must not run anything");
    let script_path = project.path().join("apply.sql");
    std::fs::write(&script_path, &script).unwrap();
    let psql = common::sandbox().bin_dir().join("psql");
    let status = std::process::Command::new(psql)
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &db.url, "-f"])
        .arg(&script_path)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(db.exists("orders"));
    // migsafe sees what the script recorded.
    let out = project.run(&db, &["apply"], 0);
    assert!(out.contains("up to date"), "{out}");
}

#[test]
fn tampered_applied_file_stops_everything_with_the_checksum_code() {
    let db = TestDb::new();
    let project = two_tables();
    project.run(&db, &["apply", "--steps", "1"], 0);
    project.write(
        "migrations/0001_create_users.up.sql",
        b"CREATE TABLE users (id bigint PRIMARY KEY, name text, email text);\n",
    );
    let out = project.run(&db, &["apply"], 1);
    assert!(
        out.contains("error[POSTGRES_MIGRATION_CHECKSUM_MISMATCH:default:0001]"),
        "{out}"
    );
    assert!(
        !db.exists("orders"),
        "nothing may run after a checksum mismatch"
    );

    // CRLF and a BOM are not a modification.
    let project2 = two_tables();
    let db2 = TestDb::new();
    project2.run(&db2, &["apply", "--steps", "1"], 0);
    project2.write(
        "migrations/0001_create_users.up.sql",
        b"\xEF\xBB\xBFCREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL);\r\n",
    );
    project2.run(&db2, &["apply"], 0);

    // repair --accept-checksum records the new checksum, with a reason.
    let out = project.run(&db, &["repair", "--accept-checksum", "1"], 5);
    assert!(out.contains("reason"), "{out}");
    project.run(
        &db,
        &[
            "repair",
            "--accept-checksum",
            "1",
            "--reason",
            "added a column before deploy, by hand too",
        ],
        0,
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM migsafe.history_audit WHERE action = 'accept-checksum'")
            .as_deref(),
        Some("1")
    );
    project.run(&db, &["apply"], 0);
    assert!(db.exists("orders"));
}

#[test]
fn missing_and_out_of_order_files_are_refused_unless_allowed() {
    let db = TestDb::new();
    let project = two_tables();
    project.write(
        "migrations/0005_later.up.sql",
        b"CREATE TABLE later (id int);",
    );
    project.run(&db, &["apply"], 0);

    project.write(
        "migrations/0003_merged_late.up.sql",
        b"CREATE TABLE late (id int);",
    );
    let out = project.run(&db, &["apply"], 1);
    assert!(out.contains("MIGRATION_OUT_OF_ORDER:default:0003"), "{out}");
    project.run(&db, &["apply", "--allow-out-of-order"], 0);
    assert!(db.exists("late"));

    // A file older than the newest one is gone (the newest one gone reads
    // as a newer release's version: tests/rolling_deploy.rs).
    project.remove("migrations/0003_merged_late.up.sql");
    let out = project.run(&db, &["apply"], 1);
    assert!(out.contains("MIGRATION_FILE_MISSING:default:0003"), "{out}");
    let out = project.run(&db, &["status"], 0);
    assert!(out.contains("FILE MISSING"), "{out}");
    project.run(&db, &["apply", "--ignore-missing"], 0);
}

#[test]
fn a_failing_migration_is_rolled_back_whole_and_named_with_its_position() {
    let db = TestDb::new();
    let project = two_tables();
    project.write(
        "migrations/0003_broken.up.sql",
        b"CREATE TABLE partial (id int);\nINSERT INTO partial VALUES (1);\nINSERT INTO partial (nope) VALUES (2);\n",
    );
    let output = project.migsafe(&db).arg("apply").output().unwrap();
    let out = expect_exit(&output, 2);
    assert!(
        out.contains("error[MIGRATION_FAILED:default:0003]"),
        "{out}"
    );
    assert!(
        out.contains("0003_broken.up.sql:3:22"),
        "the position must be file:line:column\n{out}"
    );
    assert!(out.contains("42703"), "{out}");
    assert!(
        !db.exists("partial"),
        "the failed migration must leave nothing behind"
    );
    assert_eq!(
        db.history("default").len(),
        2,
        "migrations before it stay applied"
    );
}

#[test]
fn rollback_refusals_use_exit_4() {
    let db = TestDb::new();
    let project = Project::new(&[
        ("migrations/0001_a.up.sql", "CREATE TABLE a (id int);"),
        ("migrations/0001_a.down.sql", "DROP TABLE a;"),
        ("migrations/0002_b.sql", "CREATE TABLE b (id int);"),
    ]);
    project.run(&db, &["apply"], 0);
    let out = project.run(&db, &["rollback"], 4);
    assert!(out.contains("DOWN_SCRIPT_MISSING:default:0002"), "{out}");
    // Refused as a whole: even --steps 2 undoes nothing.
    project.run(&db, &["rollback", "--steps", "2"], 4);
    assert!(db.exists("a") && db.exists("b"));
}

#[test]
fn stamp_records_without_running_and_init_new_scaffold() {
    let db = TestDb::new();
    let project = Project::new(&[]);
    let out = project.run(&db, &["init"], 0);
    assert!(out.contains("migsafe.toml"), "{out}");
    // Backups (the whole database) and logs are kept out of git.
    assert!(
        out.contains("created ") && out.contains(".gitignore"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(project.path().join(".gitignore")).unwrap(),
        "backups/\nlogs/\n"
    );
    project.run(&db, &["init"], 5);
    project.run(&db, &["new", "Create users"], 0);
    project.run(&db, &["new", "add email"], 0);
    let mut names: Vec<String> = std::fs::read_dir(project.path().join("migrations"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(
        names[0].ends_with("_add_email.down.sql") || names[0].ends_with("_create_users.down.sql")
    );
    for name in &names {
        let path = project.path().join("migrations").join(name);
        let body = if name.ends_with(".up.sql") {
            "CREATE TABLE t_x (id int);"
        } else {
            "DROP TABLE t_x;"
        };
        let unique = body.replace("t_x", &format!("t_{}", &name[..14]));
        std::fs::write(path, unique).unwrap();
    }
    let first_version = names[0][..14].to_string();
    let out = project.run(&db, &["stamp", &first_version], 0);
    assert!(out.contains(&first_version), "{out}");
    assert!(
        !db.exists(&format!("t_{first_version}")),
        "stamp must not run the script"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM migsafe.history_audit WHERE action = 'stamp'")
            .as_deref(),
        Some("1")
    );
    project.run(&db, &["apply"], 0);
    assert_eq!(db.history("app").len(), 2);
}

#[test]
fn namespaces_are_independent_and_targeted() {
    let db = TestDb::new();
    let project = Project::new(&[
        (
            "migsafe.toml",
            "[namespaces.billing]\ndir = \"db/billing\"\n[namespaces.catalog]\ndir = \"db/catalog\"\nforward_only = true\n",
        ),
        (
            "db/billing/1_invoices.up.sql",
            "CREATE TABLE invoices (id int);",
        ),
        ("db/billing/1_invoices.down.sql", "DROP TABLE invoices;"),
        (
            "db/catalog/1_products.sql",
            "CREATE TABLE products (id int);",
        ),
    ]);
    project.run(&db, &["apply", "--target", "catalog"], 0);
    assert!(db.exists("products") && !db.exists("invoices"));
    project.run(&db, &["--target", "all", "apply"], 0);
    assert!(db.exists("invoices"));
    let out = project.run(&db, &["rollback"], 5);
    assert!(out.contains("--target"), "{out}");
    let out = project.run(&db, &["rollback", "--target", "nope"], 5);
    assert!(out.contains("NAMESPACE_UNKNOWN:nope"), "{out}");
    project.run(&db, &["rollback", "--target", "billing"], 0);
    assert!(!db.exists("invoices") && db.exists("products"));
}

#[test]
fn a_script_with_its_own_begin_commit_runs_as_one_transaction_with_its_history_row() {
    let db = TestDb::new();
    let project = two_tables();
    project.write(
        "migrations/0003_own_tx.up.sql",
        b"BEGIN;\nCREATE TABLE t3 (id int);\nCOMMIT;\n",
    );
    project.run(&db, &["apply"], 0);
    assert!(db.exists("t3"));
    assert_eq!(
        db.history("default").last(),
        Some(&("0003".to_string(), false))
    );
}

#[test]
fn a_concurrent_index_runs_outside_a_transaction_without_a_directive_and_says_so() {
    let db = TestDb::new();
    let project = two_tables();
    project.run(&db, &["apply"], 0);
    project.write(
        "migrations/0003_idx.up.sql",
        b"CREATE INDEX CONCURRENTLY users_name ON users (name);\nCREATE INDEX CONCURRENTLY users_id_name ON users (id, name);\n",
    );
    let out = project.run(&db, &["plan"], 0);
    assert!(
        out.contains("no-transaction (inferred: CREATE INDEX CONCURRENTLY)"),
        "{out}"
    );
    assert!(!out.contains("concurrent-index-in-transaction"), "{out}");
    project.run(&db, &["apply"], 0);
    assert!(db.exists("users_name") && db.exists("users_id_name"));
    assert_eq!(
        db.history("default").last(),
        Some(&("0003".to_string(), false))
    );
}

/// `[logs] keep`: reports are pruned like backups, per kind, and the event
/// log (one appended file) is left alone.
#[test]
fn old_reports_are_pruned_to_logs_keep() {
    let db = TestDb::new();
    let project = two_tables();
    project.write("migsafe.toml", b"[logs]\nkeep = 2\n");
    for _ in 0..3 {
        project.run(&db, &["preflight"], 0);
    }
    project.run(&db, &["postflight"], 0);
    let names: Vec<String> = std::fs::read_dir(project.path().join("logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let count = |prefix: &str| names.iter().filter(|n| n.starts_with(prefix)).count();
    assert_eq!(count("preflight-report-"), 2, "{names:?}");
    assert_eq!(count("postflight-report-"), 1, "{names:?}");

    // keep = 0 keeps every report; an unknown key is still refused.
    project.write("migsafe.toml", b"[logs]\nkeep = 0\n");
    project.run(&db, &["preflight"], 0);
    let preflights = std::fs::read_dir(project.path().join("logs"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("preflight-report-")
        })
        .count();
    assert_eq!(preflights, 3);
    project.write("migsafe.toml", b"[logs]\nkeep = 2\nkeeep = 3\n");
    let out = project.run(&db, &["status"], 5);
    assert!(out.contains("keeep"), "{out}");
}

/// `init` in a repository that has a `.gitignore` adds only what it lacks.
#[test]
fn init_appends_to_an_existing_gitignore_without_duplicating() {
    let db = TestDb::new();
    let project = Project::new(&[(".gitignore", "target/\nlogs/")]);
    let out = project.run(&db, &["init"], 0);
    assert!(
        out.contains(".gitignore: it now ignores backups/ and logs/"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(project.path().join(".gitignore")).unwrap(),
        "target/\nlogs/\nbackups/\n"
    );
    let output = project
        .migsafe(&db)
        .args(["init", "--format", "json"])
        .output()
        .unwrap();
    // migsafe.toml exists now: refused, and the .gitignore is not touched again.
    expect_exit(&output, 5);
    assert_eq!(
        std::fs::read_to_string(project.path().join(".gitignore")).unwrap(),
        "target/\nlogs/\nbackups/\n"
    );
}
