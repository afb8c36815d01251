//! `migsafe check --profile`: every rule kind met and unmet, all unmet rules
//! reported at once, exit 7.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Project, TestDb, expect_exit};

const CONFIG: &str = r#"
[profiles.production]
require_migrated = true
require_database_urls = ["SUPPORT_DSN"]
[profiles.production.require_env.STORE_BACKEND]
equals = "POSTGRES"
reason = "PERSISTENCE_PROFILE_REQUIRES_POSTGRES"
[profiles.production.require_env.API_TOKEN]
set = true
reason = "API_TOKEN_REQUIRED"

[profiles.dev]
require_env = { STORE_BACKEND = { equals = "SQLITE", reason = "DEV_USES_SQLITE" } }
"#;

fn project() -> Project {
    Project::new(&[
        ("migsafe.toml", CONFIG),
        ("migrations/0001_a.up.sql", "CREATE TABLE a (id bigint);"),
        ("migrations/0002_b.up.sql", "CREATE TABLE b (id bigint);"),
    ])
}

#[test]
fn every_unmet_rule_is_reported_with_its_code() {
    let db = TestDb::new();
    let project = project();
    let output = project
        .migsafe(&db)
        .args(["check", "--profile", "production"])
        .env("STORE_BACKEND", "SQLITE")
        .env_remove("API_TOKEN")
        .env("SUPPORT_DSN", "postgres://u:Dsn-Secret-9@127.0.0.1:1/db")
        .output()
        .unwrap();
    let out = expect_exit(&output, 7);
    for code in [
        "[PERSISTENCE_PROFILE_REQUIRES_POSTGRES]",
        "[API_TOKEN_REQUIRED]",
        "[DATABASE_UNREACHABLE:SUPPORT_DSN]",
        "[MIGRATION_PENDING:default:0001]",
        "[MIGRATION_PENDING:default:0002]",
    ] {
        assert!(out.contains(code), "{code} missing:\n{out}");
    }
    assert!(out.contains("5 rule(s) not met"), "{out}");
    assert!(!out.contains("Dsn-Secret-9"), "{out}");
}

#[test]
fn a_met_profile_exits_0_and_json_lists_what_is_unmet() {
    let db = TestDb::new();
    let project = project();
    project.run(&db, &["apply", "--skip-backup"], 0);
    let ok = project
        .migsafe(&db)
        .args(["check", "--profile", "production"])
        .env("STORE_BACKEND", "POSTGRES")
        .env("API_TOKEN", "t")
        .env("SUPPORT_DSN", &db.url)
        .output()
        .unwrap();
    let out = expect_exit(&ok, 0);
    assert!(out.contains("every rule is met"), "{out}");

    // Inline tables work too; --check-migrations adds the migration rule.
    project.write("migrations/0003_c.up.sql", b"CREATE TABLE c (id bigint);");
    let output = project
        .migsafe(&db)
        .args([
            "check",
            "--profile",
            "dev",
            "--check-migrations",
            "--format",
            "json",
        ])
        .env("STORE_BACKEND", "POSTGRES")
        .output()
        .unwrap();
    expect_exit(&output, 7);
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let reasons: Vec<&str> = doc["unmet"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        ["DEV_USES_SQLITE", "MIGRATION_PENDING:default:0003"]
    );
    assert_eq!(doc["ready"], false);

    let out = project.run(&db, &["check", "--profile", "staging"], 5);
    assert!(out.contains("no [profiles.staging]"), "{out}");
}

/// The library call a service makes at start-up: the reason codes for
/// pending, dirty and edited migrations, on the same history as the CLI.
#[test]
fn require_up_to_date_returns_the_reason_codes() {
    let db = TestDb::new();
    let project = Project::new(&[
        ("migrations/0001_a.up.sql", "CREATE TABLE a (id bigint);"),
        (
            "migrations/0002_b.up.sql",
            "-- migsafe:no-transaction\nCREATE TABLE b (id bigint);\nSELECT pg_sleep(60);",
        ),
    ]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let check = |project: &Project| {
        let config = migsafe::Config::load(None, project.path()).unwrap();
        let migrator = migsafe::Migrator::new(config).with_database_url(Some(db.url.clone()));
        runtime.block_on(migrator.require_up_to_date(None))
    };
    let err = check(&project).unwrap_err();
    assert_eq!(err.reason().to_string(), "MIGRATION_PENDING:default:0001");
    assert_eq!(err.exit_code(), 7);

    // The CLI applies 0001 and is killed in the middle of 0002: dirty.
    project.run(&db, &["apply", "--skip-backup", "--to", "1"], 0);
    let mut child = std::process::Command::new(common::migsafe_bin())
        .current_dir(project.path())
        .env("DATABASE_URL", &db.url)
        .args(["apply", "--skip-backup"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    common::wait_for_query(&db, "pg_sleep(60)");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        check(&project).unwrap_err().reason().to_string(),
        "MIGRATION_DIRTY:default:0002"
    );

    // Repaired by hand; then an applied file is edited.
    project.run(
        &db,
        &[
            "repair",
            "--clear-dirty",
            "2",
            "--reason",
            "finished by hand",
        ],
        0,
    );
    assert!(check(&project).is_ok());
    project.write(
        "migrations/0001_a.up.sql",
        b"CREATE TABLE a (id bigint, extra text);",
    );
    assert_eq!(
        check(&project).unwrap_err().reason().to_string(),
        "POSTGRES_MIGRATION_CHECKSUM_MISMATCH:default:0001"
    );
}
