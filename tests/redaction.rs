//! A password typed into a mistyped database URL never reaches the output,
//! the logs or the reports, whatever the command: redaction must not depend
//! on the URL parsing as intended.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestDb, assert_no_secret, migsafe_command, sandbox, text, two_tables};

/// Typo'd URLs of many shapes, each with its own secret, all aimed at the
/// test server (so that the ones that parse get as far as authentication).
fn mistyped_urls(db: &TestDb) -> Vec<(String, String)> {
    let port = sandbox().port();
    let name = &db.name;
    let shapes: Vec<(&str, String)> = vec![
        // The password in the user position, after a `?` or a `#`.
        (
            "Qm-user-q-1",
            format!("postgres://app1?{{}}@127.0.0.1:{port}/{name}?sslmode=disable"),
        ),
        (
            "Qm-user-h-2",
            format!("postgres://app1#{{}}@127.0.0.1:{port}/{name}"),
        ),
        // A `/` or an `@` inside the password, not percent-encoded.
        (
            "Qm/slash/3",
            format!("postgres://postgres:{{}}@127.0.0.1:{port}/{name}?sslmode=disable"),
        ),
        (
            "Qm@at-4",
            format!("postgres://postgres:{{}}@127.0.0.1:{port}/{name}?sslmode=disable"),
        ),
        // The `@` forgotten.
        (
            "Qm-noat-5",
            format!("postgres://postgres:{{}}127.0.0.1:{port}/{name}"),
        ),
        // One slash, or a misspelt scheme.
        (
            "Qm-slash-6",
            format!("postgres:/postgres:{{}}@127.0.0.1:{port}/{name}"),
        ),
        (
            "Qm-scheme-7",
            format!("postgress://postgres:{{}}@127.0.0.1:{port}/{name}"),
        ),
        // The password as a query parameter (wrong, so authentication fails).
        (
            "Qm-query-8",
            format!("postgres://postgres@127.0.0.1:{port}/{name}?password={{}}&sslmode=disable"),
        ),
        // key=value strings: a key without value, an unterminated quote.
        (
            "Qm-kv-9",
            format!("host=127.0.0.1 port={port} user=postgres password={{}} dbname"),
        ),
        (
            "Qm kv 10",
            format!("host=127.0.0.1 port={port} user=postgres password='{{}} dbname={name}"),
        ),
        (
            "Qm-kv-11",
            format!(
                "host=127.0.0.1 port={port} user=postgres password={{}} dbname={name} sslmode=disable"
            ),
        ),
    ];
    shapes
        .into_iter()
        .map(|(secret, shape)| (shape.replace("{}", secret), secret.to_string()))
        .collect()
}

#[test]
fn no_command_prints_a_password_from_a_mistyped_url() {
    let db = TestDb::new();
    let commands: [&[&str]; 16] = [
        &["apply"],
        &["status"],
        &["plan"],
        &["history"],
        &["status", "--format", "json"],
        &["rollback"],
        &["stamp", "1"],
        &["preflight"],
        &["postflight"],
        &["schema", "checksum"],
        &["backup", "create"],
        &["wait", "--timeout", "100ms"],
        &["check", "--profile", "production"],
        &["cutover", "sqlite", "precheck", "--from", "app.db"],
        &["cutover", "sqlite", "run", "--from", "app.db"],
        &["cutover", "sqlite", "verify", "--from", "app.db"],
    ];
    for (url, secret) in mistyped_urls(&db) {
        for args in commands {
            let project = two_tables();
            let sqlite = rusqlite::Connection::open(project.path().join("app.db")).unwrap();
            sqlite
                .execute_batch("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);")
                .unwrap();
            drop(sqlite);
            for by_env in [false, true] {
                let mut command = migsafe_command();
                command.current_dir(project.path()).args(args);
                if by_env {
                    command.env("DATABASE_URL", &url);
                } else {
                    command.args(["--database-url", &url]);
                }
                let output = command.output().unwrap();
                assert_ne!(
                    output.status.code(),
                    Some(0),
                    "{args:?} {url}: {}",
                    text(&output)
                );
                assert_no_secret(&project, &output, &secret);
                // A refused command leaves no stray log file behind.
                assert!(
                    !project.path().join("logs").exists(),
                    "{args:?} {url} wrote logs/: {}",
                    text(&output)
                );
            }
        }
    }
}

/// A URL given without its flag (or with a misspelt flag) is quoted by the
/// argument parser's error: without its password.
#[test]
fn a_stray_database_url_in_the_arguments_is_shown_without_its_password() {
    for args in [
        vec!["apply", "postgres://app:Hunter2Stray@127.0.0.1:1/app"],
        vec![
            "apply",
            "--databse-url",
            "postgres://app:Hunter2Stray@127.0.0.1:1/app",
        ],
        vec![
            "apply",
            "--databse-url=postgres://app:Hunter2Stray@127.0.0.1:1/app",
        ],
    ] {
        let output = common::migsafe_command().args(&args).output().unwrap();
        let text = common::text(&output);
        assert_eq!(output.status.code(), Some(5), "{text}");
        assert!(!text.contains("Hunter2Stray"), "{text}");
        assert!(text.contains("unexpected argument"), "{text}");
    }
}
