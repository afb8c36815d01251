//! Reliability scenario 5 (issue 8): hostile input. Generated inputs for the
//! file-name parser, the directive parser, config loading and the statement
//! splitter (`TORTURE_CASES` each, default 300; `scripts/torture` runs 20,000),
//! counting panics; and the table of malformed inputs of SPEC 2 and 3, each run
//! through the CLI with its exit code, reason code and message checked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use common::{Project, TestDb, expect_exit};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

/// Runs `check` on `cases` values of `strategy`; returns how many panicked.
fn panics<S: Strategy>(cases: u32, strategy: S, check: impl Fn(&S::Value)) -> u32
where
    S::Value: std::fmt::Debug,
{
    let mut runner = TestRunner::deterministic();
    let mut panicked = 0;
    for _ in 0..cases {
        let value = strategy.new_tree(&mut runner).unwrap().current();
        if catch_unwind(AssertUnwindSafe(|| check(&value))).is_err() {
            panicked += 1;
            eprintln!("panicked on {value:?}");
        }
    }
    panicked
}

/// Text that is mostly the input's own vocabulary, with arbitrary bytes mixed in.
fn near(words: &'static [&'static str]) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            3 => proptest::sample::select(words).prop_map(str::to_string),
            1 => any::<String>(),
            1 => "[ \n\t\"'=\\[\\]#;:$.-]{1,3}",
        ],
        0..24,
    )
    .prop_map(|parts| parts.concat())
}

#[test]
fn hostile_input() {
    let cases: u32 = std::env::var("TORTURE_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(300);
    let file_names = panics(
        cases,
        prop_oneof![
            any::<String>(),
            "[0-9VUR]{0,3}[0-9._-]{0,12}_{0,2}[a-z_ ]{0,8}(\\.up|\\.down)?(\\.sql|\\.txt)?",
        ],
        |name| {
            let _ = migsafe::source::layout::parse_file_name(name);
            let _ = migsafe::source::layout::parse_dir_name(name);
        },
    );
    let directives = panics(
        cases,
        near(&[
            "-- migsafe:",
            "no-transaction",
            "lock-timeout",
            "statement-timeout",
            "allow",
            " -- ",
            "5s",
            "1m 2s",
            "-1",
            "\n",
            "-- migrate:up",
            "transaction:false",
            "SELECT 1;",
        ]),
        |text| {
            let _ = migsafe::source::directives::parse(text);
        },
    );
    let configs = panics(
        cases,
        near(&[
            "[defaults]\n",
            "[backup]\n",
            "[lint]\n",
            "[namespaces.a]\n",
            "[profiles.p]\n",
            "lock_timeout = ",
            "keep = ",
            "dir = ",
            "forward_only = ",
            "large_table = ",
            "\"5s\"",
            "\"10MB\"",
            "true",
            "-3",
            "99999999999999999999",
            "\n",
        ]),
        |text| {
            let _ = migsafe::Config::parse(text, Path::new("/tmp"), None, "migsafe.toml");
        },
    );
    let statements = panics(
        cases,
        near(&[
            "SELECT 1;",
            "CREATE INDEX CONCURRENTLY i ON t (a);",
            "$$",
            "$tag$",
            "'",
            "\"",
            "--",
            "/*",
            "*/",
            ";",
            "BEGIN;",
            "E'\\''",
            "\n",
        ]),
        |text| {
            let _ = migsafe::source::statements::split(text);
            let _ = migsafe::source::statements::transaction_control(text);
            let _ = migsafe::source::checksum::normalize(text.as_bytes());
        },
    );
    let table = malformed_input_table();
    println!(
        "hostile input: {cases} generated inputs each for the file-name parser, the directive parser, config loading and the statement splitter: panics {} (target 0); malformed-input table: {}/{} cases with the expected exit code, reason code and message",
        file_names + directives + configs + statements,
        table.0,
        table.1
    );
    assert_eq!((file_names, directives, configs, statements), (0, 0, 0, 0));
    assert_eq!(table.0, table.1);
}

/// SPEC 2 (files) and 3 (configuration): each malformed input, the exit code,
/// reason code and a piece of the message it must give. Returns (passed, total).
fn malformed_input_table() -> (usize, usize) {
    type Case = (
        &'static [(&'static str, &'static [u8])],
        &'static [&'static str],
        i32,
        &'static str,
        &'static str,
    );
    let cases: &[Case] = &[
        (
            &[("migrations/0001_.sql", b"SELECT 1;")],
            &["plan"],
            5,
            "MIGRATION_FILE_INVALID:default",
            "0001_.sql",
        ),
        (
            &[("migrations/0001_x.txt", b"SELECT 1;")],
            &["plan"],
            5,
            "MIGRATION_FILE_INVALID:default",
            "not a .sql file",
        ),
        (
            &[("migrations/V1_x.sql", b"SELECT 1;")],
            &["plan"],
            5,
            "MIGRATION_FILE_INVALID:default",
            "`__`",
        ),
        (
            &[("migrations/1a_x.sql", b"SELECT 1;")],
            &["plan"],
            5,
            "MIGRATION_FILE_INVALID:default",
            "1a_x.sql",
        ),
        (
            &[("migrations/0001_bad.up.sql", b"SELECT '\xff';")],
            &["plan"],
            5,
            "MIGRATION_FILE_INVALID:default",
            "not valid UTF-8",
        ),
        (
            &[("migrations/0001_x.down.sql", b"SELECT 1;")],
            &["plan"],
            5,
            "MIGRATION_FILE_INVALID:default",
            "without an up script",
        ),
        (
            &[
                ("migrations/0001_a.sql", b"SELECT 1;"),
                ("migrations/0001_b.down.sql", b"SELECT 1;"),
            ],
            &["plan"],
            5,
            "MIGRATION_FILE_INVALID:default",
            "a down script for the up-only file",
        ),
        (
            &[
                ("migrations/0001_a.sql", b"SELECT 1;"),
                ("migrations/1_b.sql", b"SELECT 2;"),
            ],
            &["plan"],
            5,
            "MIGRATION_VERSION_DUPLICATE:default:0001",
            "0001_a.sql",
        ),
        (
            &[("migrations/0001_empty.up.sql", b"-- nothing yet\n\n")],
            &["apply", "--skip-backup"],
            5,
            "MIGRATION_FILE_INVALID:default:0001",
            "empty",
        ),
        (
            &[("migrations/0001_x.sql", b"\xef\xbb\xbf")],
            &["apply", "--skip-backup"],
            5,
            "MIGRATION_FILE_INVALID:default",
            "empty",
        ),
        (
            &[(
                "migrations/0001_x.sql",
                b"-- migsafe:no-transactoin\nSELECT 1;",
            )],
            &["plan"],
            5,
            "MIGRATION_FILE_INVALID:default",
            "unknown directive",
        ),
        (
            &[(
                "migrations/0001_x.sql",
                b"-- migsafe:lock-timeout soon\nSELECT 1;",
            )],
            &["plan"],
            5,
            "MIGRATION_FILE_INVALID:default",
            "soon",
        ),
        (
            &[("migrations/create_t.sql", b"CREATE TABLE t (id int);")],
            &["apply", "--skip-backup"],
            5,
            "MIGRATION_LAYOUT_UNKNOWN:default",
            "create_t.sql",
        ),
        (
            &[
                ("migsafe.toml", b"[defaults]\nlock_retires = 3\n"),
                ("migrations/.keep", b""),
            ],
            &["status"],
            5,
            "CONFIG_INVALID",
            "line 2",
        ),
        (
            &[
                ("migsafe.toml", b"[defaults]\nlock_timeout = \"fast\"\n"),
                ("migrations/.keep", b""),
            ],
            &["status"],
            5,
            "CONFIG_INVALID",
            "fast",
        ),
        (
            &[("migsafe.toml", b"[namespaces.a]\ndir = \"nowhere\"\n")],
            &["status"],
            5,
            "MIGRATION_DIR_MISSING:a",
            "nowhere",
        ),
        (
            &[("migsafe.toml", b"[namespaces.\"a b\"]\n")],
            &["status"],
            5,
            "CONFIG_INVALID",
            "a b",
        ),
        (
            &[("migsafe.toml", b"not toml at all [[[")],
            &["status"],
            5,
            "CONFIG_INVALID",
            "line 1",
        ),
        (
            &[("migrations/.keep", b"")],
            &["status", "--database-url", "postgres://u@h:notaport/db"],
            5,
            "DATABASE_URL_INVALID",
            "cannot be used",
        ),
        (
            &[("migrations/.keep", b"")],
            &["status", "--target", "nope"],
            5,
            "NAMESPACE_UNKNOWN:nope",
            "nope",
        ),
    ];
    let db = TestDb::new();
    let mut passed = 0;
    for (files, args, exit, reason, message) in cases {
        let project = Project::new(&[]);
        for (path, bytes) in *files {
            project.write(path, bytes);
        }
        let output = project.migsafe(&db).args(*args).output().unwrap();
        let text = common::text(&output);
        if output.status.code() == Some(*exit) && text.contains(reason) && text.contains(message) {
            passed += 1;
        } else {
            eprintln!(
                "malformed input {files:?} {args:?}: expected exit {exit}, {reason}, {message:?}; got {:?}:\n{text}",
                output.status.code()
            );
        }
    }
    // Nothing reached the database.
    expect_exit(
        &Project::new(&[("migrations/.keep", "")])
            .migsafe(&db)
            .arg("status")
            .output()
            .unwrap(),
        0,
    );
    assert!(!db.exists("migsafe.schema_migrations"));
    (passed, cases.len())
}
