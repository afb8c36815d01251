//! Bad input and bad connections: each exits 5 with a reason code and a clear
//! message, changes nothing, and never prints the password.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    Project, TestDb, assert_no_secret, expect_exit, migsafe_command, sandbox, two_tables,
};

#[test]
fn wrong_password_is_exit_5_and_never_printed() {
    let db = TestDb::new();
    let project = two_tables();
    let secret = "Wr0ng-Pa55word-xyzzy";
    let url = format!(
        "postgres://postgres:{secret}@127.0.0.1:{}/{}?sslmode=disable",
        sandbox().port(),
        db.name
    );
    for args in [
        &["apply"][..],
        &["status"],
        &["plan"],
        &["status", "--format", "json"],
        &["rollback"],
    ] {
        let output = migsafe_command()
            .current_dir(project.path())
            .env("DATABASE_URL", &url)
            .args(args)
            .output()
            .unwrap();
        let out = expect_exit(&output, 5);
        assert!(out.contains("DATABASE_AUTH_FAILED"), "{out}");
        assert!(out.contains("postgres://postgres:****@127.0.0.1"), "{out}");
        assert_no_secret(&project, &output, secret);
    }
    // The real password of the sandbox never shows either, even with -vv.
    let output = project
        .migsafe(&db)
        .args(["-vv", "apply"])
        .output()
        .unwrap();
    expect_exit(&output, 0);
    assert_no_secret(&project, &output, sandbox().password());
    let output = project.migsafe(&db).args(["--help"]).output().unwrap();
    assert_no_secret(&project, &output, sandbox().password());
}

#[test]
fn unreachable_host_and_missing_database_are_exit_5() {
    let project = two_tables();
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = migsafe_command()
        .current_dir(project.path())
        .args([
            "--database-url",
            &format!("postgres://app:s3cret-pw@127.0.0.1:{closed_port}/db"),
            "apply",
        ])
        .output()
        .unwrap();
    let out = expect_exit(&output, 5);
    assert!(out.contains("DATABASE_UNREACHABLE"), "{out}");
    assert!(out.contains("check the host and port"), "{out}");
    assert_no_secret(&project, &output, "s3cret-pw");

    let url = sandbox().url("no_such_database");
    let output = migsafe_command()
        .current_dir(project.path())
        .args(["apply", "--database-url", &url])
        .output()
        .unwrap();
    let out = expect_exit(&output, 5);
    assert!(out.contains("DATABASE_NOT_FOUND"), "{out}");
    assert_no_secret(&project, &output, sandbox().password());
}

#[test]
fn malformed_urls_and_missing_urls_are_exit_5() {
    let project = two_tables();
    let out = expect_exit(
        &migsafe_command()
            .current_dir(project.path())
            .arg("apply")
            .output()
            .unwrap(),
        5,
    );
    assert!(out.contains("DATABASE_URL_MISSING:default"), "{out}");
    for url in [
        "postgres://u:pw-in-bad-url@host/db?sslmode=sometimes",
        "postgres://u:pw-in-bad-url@host:notaport/db",
        "host=x password=pw-in-bad-url bogus_key=1",
    ] {
        let output = migsafe_command()
            .current_dir(project.path())
            .args(["status", "--database-url", url])
            .output()
            .unwrap();
        let out = expect_exit(&output, 5);
        assert!(out.contains("DATABASE_URL_INVALID"), "{url}: {out}");
        assert_no_secret(&project, &output, "pw-in-bad-url");
    }
}

#[test]
fn malformed_files_each_name_their_path() {
    let db = TestDb::new();
    let cases: &[(&str, &[u8], &str)] = &[
        ("migrations/0001_.sql", b"SELECT 1;", "0001_.sql"),
        ("migrations/0001_x.txt", b"SELECT 1;", "not a .sql file"),
        ("migrations/V1_x.sql", b"SELECT 1;", "`__`"),
        ("migrations/r__views.sql", b"SELECT 1;", "lowercase prefix"),
        (
            "migrations/0001_bad.up.sql",
            b"SELECT '\xff\xfe';",
            "not valid UTF-8",
        ),
        (
            "migrations/0001_x.down.sql",
            b"SELECT 1;",
            "without an up script",
        ),
        (
            "migrations/0001_x.sql",
            b"-- migsafe:no-transactoin\nSELECT 1;",
            "unknown directive",
        ),
    ];
    for (path, bytes, expected) in cases {
        let project = Project::new(&[]);
        project.write(path, bytes);
        let out = project.run(&db, &["apply"], 5);
        assert!(
            out.contains("MIGRATION_FILE_INVALID:default"),
            "{path}: {out}"
        );
        assert!(
            out.contains(path.trim_start_matches("migrations/")),
            "{path}: {out}"
        );
        assert!(out.contains(expected), "{path}: {out}");
    }
    assert!(
        !db.exists("migsafe.schema_migrations"),
        "bad files must stop before the database is touched"
    );
}

/// Editors, merge tools and patch leave copies beside a migration; they used
/// to make read-only commands exit 5 as badly named migrations.
#[test]
fn editor_and_backup_copies_are_ignored_and_listed() {
    let db = TestDb::new();
    let project = two_tables();
    let leftovers = [
        "0001_create_users.up.sql.bak",
        "0001_create_users.up.sql~",
        ".0001_create_users.up.sql.swp",
        "#0001_create_users.up.sql#",
        "0002_create_orders.up.sql.orig",
        "0002_create_orders.down.sql.rej",
        "0002_create_orders.up.sql.tmp",
    ];
    for name in leftovers {
        project.write(&format!("migrations/{name}"), b"DROP TABLE users;\n");
    }
    let out = project.run(&db, &["status"], 0);
    assert!(out.contains("0 applied, 2 pending"), "{out}");
    let out = project.run(&db, &["status", "-v"], 0);
    for name in leftovers {
        assert!(
            out.lines()
                .any(|l| l.trim_start().starts_with("ignored") && l.contains(&format!("{name} ("))),
            "{name} is listed as ignored:\n{out}"
        );
    }
    project.run(&db, &["apply", "--skip-backup"], 0);
    assert_eq!(db.history("default").len(), 2);
    assert!(db.exists("users"), "no leftover ran");
}

#[test]
fn duplicate_versions_name_both_files() {
    let db = TestDb::new();
    let project = Project::new(&[
        ("migrations/0001_a.sql", "SELECT 1;"),
        ("migrations/1_b.up.sql", "SELECT 1;"),
        ("migrations/0002_c.sql", "SELECT 1;"),
    ]);
    let output = project
        .migsafe(&db)
        .args(["apply", "--format", "json"])
        .output()
        .unwrap();
    expect_exit(&output, 5);
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        doc["error"]["reason"],
        "MIGRATION_VERSION_DUPLICATE:default:0001"
    );
    let message = doc["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("0001_a.sql") && message.contains("1_b.up.sql"),
        "{message}"
    );
}

#[test]
fn an_empty_up_script_is_refused_before_anything_runs() {
    let db = TestDb::new();
    let project = two_tables();
    project.write("migrations/0003_todo.up.sql", b"-- TODO: write this\n\n");
    let out = project.run(&db, &["apply"], 5);
    assert!(out.contains("MIGRATION_FILE_INVALID:default:0003"), "{out}");
    assert!(
        out.contains("0003_todo.up.sql: the up script is empty"),
        "{out}"
    );
    assert!(!db.exists("users"));
    // status still works, to show what is there.
    project.run(&db, &["status"], 0);
}

#[test]
fn bad_config_is_exit_5_with_the_line() {
    let db = TestDb::new();
    let project = Project::new(&[(
        "migsafe.toml",
        "[defaults]\nlock_timeout = \"1s\"\nlock_retires = 3\n",
    )]);
    let out = project.run(&db, &["status"], 5);
    assert!(
        out.contains("CONFIG_INVALID") && out.contains("line 3"),
        "{out}"
    );
    let project = Project::new(&[]);
    let out = project.run(&db, &["status"], 5);
    assert!(out.contains("MIGRATION_DIR_MISSING:default"), "{out}");
    let out = project.run(&db, &["--config", "nope.toml", "status"], 5);
    assert!(out.contains("nope.toml"), "{out}");
    let out = project.run(&db, &["apply", "--steps", "many"], 5);
    assert!(out.contains("many"), "{out}");
}

#[test]
fn every_layout_is_read_and_applied() {
    let db = TestDb::new();
    let project = Project::new(&[
        (
            "migsafe.toml",
            "[namespaces.native]\ndir=\"native\"\n[namespaces.diesel]\ndir=\"diesel\"\n[namespaces.dbmate]\ndir=\"dbmate\"\n[namespaces.flyway]\ndir=\"flyway\"\n[namespaces.uponly]\ndir=\"uponly\"\nforward_only=true\n",
        ),
        (
            "native/20240101000000_a.up.sql",
            "CREATE TABLE native_a (id int);",
        ),
        ("native/20240101000000_a.down.sql", "DROP TABLE native_a;"),
        ("native/README.md", "not a migration"),
        (
            "diesel/2019-01-01-000000_create_b/up.sql",
            "CREATE TABLE diesel_b (id int);",
        ),
        (
            "diesel/2019-01-01-000000_create_b/down.sql",
            "DROP TABLE diesel_b;",
        ),
        (
            "diesel/2026-07-30-140000-0000_index_b/up.sql",
            "CREATE INDEX CONCURRENTLY diesel_b_id ON diesel_b (id);",
        ),
        (
            "diesel/2026-07-30-140000-0000_index_b/down.sql",
            "DROP INDEX CONCURRENTLY diesel_b_id;",
        ),
        (
            "diesel/2026-07-30-140000-0000_index_b/metadata.toml",
            "run_in_transaction = false\n",
        ),
        ("diesel/.keep", ""),
        (
            "dbmate/20200101000000_c.sql",
            "-- migrate:up transaction:false\nCREATE TABLE dbmate_c (id int);\nCREATE INDEX CONCURRENTLY dbmate_c_id ON dbmate_c (id);\n\n-- migrate:down\nDROP TABLE dbmate_c;\n",
        ),
        ("flyway/V1__d.sql", "CREATE TABLE flyway_d (id int);"),
        ("flyway/V1_10__e.sql", "CREATE TABLE flyway_e (id int);"),
        ("flyway/V1_9__f.sql", "CREATE TABLE flyway_f (id int);"),
        ("flyway/U1_10__e.sql", "DROP TABLE flyway_e;"),
        ("uponly/0001_g.sql", "CREATE TABLE uponly_g (id int);"),
        ("uponly/seed_data.sql", "INSERT INTO nothing VALUES (1);"),
    ]);
    let out = project.run(&db, &["status", "-v"], 0);
    assert!(
        out.contains("README.md") && out.contains("seed_data.sql"),
        "ignored files are listed: {out}"
    );
    project.run(&db, &["apply"], 0);
    for table in [
        "native_a",
        "diesel_b",
        "diesel_b_id",
        "dbmate_c",
        "dbmate_c_id",
        "flyway_d",
        "flyway_e",
        "flyway_f",
        "uponly_g",
    ] {
        assert!(db.exists(table), "{table}");
    }
    assert_eq!(
        db.history("flyway")
            .iter()
            .map(|r| r.0.as_str())
            .collect::<Vec<_>>(),
        ["1", "1.9", "1.10"]
    );
    assert_eq!(db.history("diesel")[0].0, "20190101000000");
    project.run(&db, &["rollback", "--target", "flyway"], 0);
    assert!(!db.exists("flyway_e"));
    project.run(&db, &["rollback", "--target", "diesel", "--to", "0"], 0);
    assert!(!db.exists("diesel_b"));
    project.run(&db, &["rollback", "--target", "dbmate"], 0);
    assert!(!db.exists("dbmate_c"));
    project.run(&db, &["rollback", "--target", "uponly"], 4);
}
