//! `migsafe lint` end to end: live table sizes in messages and severities,
//! output formats, suppressions, unparseable statements, plan order, and a
//! parser that never panics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Project, TestDb, expect_exit};

const MIGRATIONS: &[(&str, &str)] = &[
    (
        "migrations/0001_events.up.sql",
        "CREATE TABLE events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, kind text, at timestamptz);\n-- an index on a table created in the same plan is fine\nCREATE INDEX events_kind ON events (kind);\n",
    ),
    (
        "migrations/0002_index.up.sql",
        "CREATE INDEX events_at ON events (at);\n",
    ),
];

#[test]
fn live_sizes_name_the_table_and_decide_the_severity() {
    let db = TestDb::new();
    let project = Project::new(&MIGRATIONS[..1]);
    project.run(&db, &["apply", "--skip-backup"], 0);
    db.query("INSERT INTO events (kind, at) SELECT 'k' || g, now() FROM generate_series(1, 20000) g; ANALYZE events;");
    project.write(MIGRATIONS[1].0, MIGRATIONS[1].1.as_bytes());

    // Under the large-table threshold (default 10 MB): a warning naming the size.
    let output = project.migsafe(&db).arg("lint").output().unwrap();
    let out = expect_exit(&output, 0);
    assert!(
        out.contains("0002_index.up.sql:1:1: warning[require-concurrent-index]"),
        "{out}"
    );
    assert!(
        out.contains("`events`: ") && out.contains("MB") && out.contains("~20000 rows"),
        "{out}"
    );
    assert!(
        out.contains("1 file(s), live table sizes from postgres://postgres:****@"),
        "only pending migrations: {out}"
    );

    // Over it: an error, exit 1, and preflight fails on it.
    project.write("migsafe.toml", b"[lint]\nlarge_table = \"100kB\"\n");
    let out = project.run(&db, &["lint"], 1);
    assert!(out.contains("error[require-concurrent-index]"), "{out}");
    let out = project.run(&db, &["apply", "--skip-backup"], 1);
    assert!(out.contains("LINT_ERROR:default:0002"), "{out}");

    // Without a database: every migration is the plan, so `events` is created
    // earlier in it and both indexes are fine.
    let output = common::migsafe_command()
        .current_dir(project.path())
        .arg("lint")
        .output()
        .unwrap();
    let out = expect_exit(&output, 0);
    assert!(
        out.contains("0 error(s), 0 warning(s) in 2 file(s)") && !out.contains("live table sizes"),
        "{out}"
    );
}

#[test]
fn json_and_github_formats() {
    let project = Project::new(&[(
        "bad.sql",
        "ALTER TABLE users ADD COLUMN plan text NOT NULL;\nALTER TABLE users RENAME COLUMN a TO b;\n",
    )]);
    let output = common::migsafe_command()
        .current_dir(project.path())
        .args(["lint", "bad.sql", "--format", "json"])
        .output()
        .unwrap();
    expect_exit(&output, 1);
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let findings = doc["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 2);
    assert_eq!(findings[0]["rule"], "add-column-not-null-without-default");
    assert_eq!(findings[0]["severity"], "error");
    assert_eq!(findings[1]["line"], 2);

    let output = common::migsafe_command()
        .current_dir(project.path())
        .args(["lint", "bad.sql", "--format", "github"])
        .output()
        .unwrap();
    expect_exit(&output, 1);
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.starts_with(
            "::error file=bad.sql,line=1,col=1,title=add-column-not-null-without-default::"
        ),
        "{text}"
    );
    assert!(
        text.contains("::warning file=bad.sql,line=2,col=1,title=rename-column-or-table::"),
        "{text}"
    );
}

#[test]
fn suppressions_need_a_reason_and_bad_sql_does_not_stop_the_rest() {
    let project = Project::new(&[
        (
            "allowed.sql",
            "-- migsafe:allow drop-column-or-table -- unused since release 42\nALTER TABLE users DROP COLUMN legacy;\n",
        ),
        (
            "no_reason.sql",
            "-- migsafe:allow drop-column-or-table\nALTER TABLE users DROP COLUMN legacy;\n",
        ),
        (
            "broken.sql",
            "CREATE TABLE ok (id bigint);\nCREATE TABLE nope (id bigint,,);\nVACUUM FULL users;\n",
        ),
    ]);
    let out = expect_exit(
        &common::migsafe_command()
            .current_dir(project.path())
            .args(["lint", "allowed.sql"])
            .output()
            .unwrap(),
        0,
    );
    assert!(out.contains("0 error(s), 0 warning(s)"), "{out}");
    let out = expect_exit(
        &common::migsafe_command()
            .current_dir(project.path())
            .args(["lint", "no_reason.sql"])
            .output()
            .unwrap(),
        0,
    );
    assert!(
        out.contains("warning[allow-without-reason]")
            && out.contains("warning[drop-column-or-table]"),
        "{out}"
    );
    let out = expect_exit(
        &common::migsafe_command()
            .current_dir(project.path())
            .args(["lint", "broken.sql"])
            .output()
            .unwrap(),
        1,
    );
    assert!(
        out.contains("broken.sql:2:30: error[syntax-error]")
            && out.contains("syntax error at or near"),
        "{out}"
    );
    assert!(
        out.contains("broken.sql:3:1: error[vacuum-full-cluster-reindex]"),
        "the statement after the bad one is linted: {out}"
    );
}

#[test]
fn plan_order_matters_for_tables_created_earlier() {
    let project = Project::new(&[
        ("migrations/0001_a.up.sql", "CREATE TABLE a (id bigint);"),
        (
            "migrations/0002_a_idx.up.sql",
            "CREATE INDEX a_id ON a (id);\nALTER TABLE a ADD COLUMN n text NOT NULL;",
        ),
    ]);
    let out = expect_exit(
        &common::migsafe_command()
            .current_dir(project.path())
            .arg("lint")
            .output()
            .unwrap(),
        0,
    );
    assert!(
        out.contains("0 error(s), 0 warning(s) in 2 file(s)"),
        "a table created earlier in the plan blocks nobody: {out}"
    );
}

/// Lints one script of `sql` (the result does not matter: it must not panic).
/// An unclosed parenthesis used to hide the rest of the file (the scanner's
/// split kept it open to the end): "0 error(s)", exit 0. Now the error is
/// reported where the grammar stopped, the dangerous index after it is still
/// linted, and preflight fails on it.
#[test]
fn a_syntax_error_is_reported_at_its_position_and_does_not_hide_the_rest() {
    let db = TestDb::new();
    db.query("CREATE TABLE users (id bigint PRIMARY KEY)");
    let project = Project::new(&[(
        "migrations/0001_af.up.sql",
        "-- a comment line first\nCREATE TABLE af (id bigint;\nCREATE INDEX users_id ON users (id);\n",
    )]);
    let out = expect_exit(
        &common::migsafe_command()
            .current_dir(project.path())
            .arg("lint")
            .output()
            .unwrap(),
        1,
    );
    assert!(
        out.contains("0001_af.up.sql:2:27: error[syntax-error]")
            && out.contains("syntax error at or near \";\""),
        "{out}"
    );
    assert!(
        out.contains("0001_af.up.sql:3:1: error[require-concurrent-index]"),
        "the index after the broken statement is linted: {out}"
    );
    assert!(out.contains("2 error(s)"), "{out}");

    for format in ["json", "github"] {
        let output = common::migsafe_command()
            .current_dir(project.path())
            .args(["lint", "--format", format])
            .output()
            .unwrap();
        expect_exit(&output, 1);
        let text = String::from_utf8(output.stdout).unwrap();
        if format == "json" {
            let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
            let finding = &doc["findings"][0];
            assert_eq!(finding["rule"], "syntax-error", "{text}");
            assert_eq!(finding["severity"], "error");
            assert_eq!(
                (finding["line"].as_u64(), finding["column"].as_u64()),
                (Some(2), Some(27))
            );
        } else {
            assert!(
                text.contains("0001_af.up.sql,line=2,col=27,title=syntax-error::"),
                "{text}"
            );
        }
    }

    // Preflight turns it into a failed check naming the migration.
    let out = project.run(&db, &["preflight"], 1);
    assert!(
        out.contains("LINT_ERROR:default:0001") && out.contains("[syntax-error]"),
        "{out}"
    );
}

/// A table filled and never analyzed has no `reltuples` (-1, or 0 with no
/// pages recorded): lint used to say `~0 rows` however big it was. Its rows
/// are now estimated from its pages and said to be an estimate.
#[test]
fn a_never_analyzed_table_gets_a_row_estimate_from_its_pages() {
    let db = TestDb::new();
    db.query(
        "CREATE TABLE big (id bigint PRIMARY KEY, note text) WITH (autovacuum_enabled = false);
         INSERT INTO big SELECT g, 'note ' || g FROM generate_series(1, 50000) g;",
    );
    assert_eq!(
        db.scalar(
            "SELECT (reltuples < 0 OR relpages = 0)::text FROM pg_class WHERE relname = 'big'"
        )
        .as_deref(),
        Some("true"),
        "the catalog has no row count for `big` yet"
    );
    let project = Project::new(&[(
        "migrations/0001_note.up.sql",
        "CREATE INDEX big_note ON big (note);\n",
    )]);
    let out = project.run(&db, &["lint"], 0);
    let rows: f64 = out
        .split("~")
        .nth(1)
        .and_then(|rest| rest.split(" rows").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no row count in:\n{out}"));
    assert!(
        (10_000.0..=200_000.0).contains(&rows),
        "about 50000 rows, not {rows}:\n{out}"
    );
    assert!(
        out.contains("rows estimated from its pages: never analyzed"),
        "{out}"
    );

    // Once analyzed, the statistic is used and not called an estimate from pages.
    db.query("ANALYZE big");
    let out = project.run(&db, &["lint"], 0);
    assert!(
        out.contains("~50000 rows)") && !out.contains("never analyzed"),
        "{out}"
    );
}

fn lint_text(sql: String) {
    let script = migsafe::lint::Script {
        path: "fuzz.sql".into(),
        sql,
        first_line: 1,
        transactional: true,
        allows: Vec::new(),
        lock_timeout: None,
        migration: None,
        online: false,
        unresolved_placeholders: Vec::new(),
    };
    let _ = migsafe::lint::lint(&[script], &migsafe::lint::Context::default());
}

#[test]
fn the_linter_never_panics_on_arbitrary_bytes() {
    use proptest::prelude::*;
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(300));
    runner
        .run(&proptest::collection::vec(any::<u8>(), 0..400), |bytes| {
            lint_text(String::from_utf8_lossy(&bytes).to_string());
            Ok(())
        })
        .unwrap();
    runner
        .run(&"(ALTER TABLE|CREATE INDEX|DROP|VACUUM|;|\\(|\\)|'|\\$\\$| |[a-z]{1,5}|NOT NULL|DEFAULT){0,30}", |sql| {
            lint_text(sql);
            Ok(())
        })
        .unwrap();
}

#[test]
fn plan_shows_the_findings_of_what_would_run() {
    let db = TestDb::new();
    let project = Project::new(&MIGRATIONS[..1]);
    project.run(&db, &["apply", "--skip-backup"], 0);
    project.write(MIGRATIONS[1].0, MIGRATIONS[1].1.as_bytes());
    let out = project.run(&db, &["plan"], 0);
    assert!(
        out.contains("1 migration(s) to apply")
            && out.contains("warning[require-concurrent-index]"),
        "{out}"
    );
}

/// A corpus of realistic migrations (tests/corpus), linted as one plan without
/// a database; the human and JSON output are snapshots (tests/snapshots).
#[test]
fn the_corpus_output_is_stable() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<String> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        // tests/corpus/layouts holds the other tools' fixtures (tests/layouts.rs).
        .filter(|name| name.ends_with(".sql"))
        .collect();
    files.sort();
    let human = common::migsafe_command()
        .current_dir(&corpus)
        .arg("lint")
        .args(&files)
        .output()
        .unwrap();
    expect_exit(&human, 1);
    insta::assert_snapshot!("corpus_human", String::from_utf8(human.stdout).unwrap());
    let json = common::migsafe_command()
        .current_dir(&corpus)
        .args(["lint", "--format", "json"])
        .args(&files)
        .output()
        .unwrap();
    expect_exit(&json, 1);
    insta::assert_snapshot!("corpus_json", String::from_utf8(json.stdout).unwrap());
}

#[test]
fn a_directory_is_linted_as_the_migrations_it_holds() {
    let project = Project::new(&[
        (
            "migrations/0001_events.up.sql",
            "CREATE TABLE events (id bigint PRIMARY KEY, kind text);\n",
        ),
        (
            "migrations/0002_kind.up.sql",
            "ALTER TABLE users ADD COLUMN plan text NOT NULL;\n",
        ),
        // Another team's Flyway directory that no namespace names, with a
        // placeholder from the top of migsafe.toml.
        (
            "other/db/V1__accounts.sql",
            "CREATE TABLE ${table} (id bigint PRIMARY KEY);\n",
        ),
        (
            "other/db/V2__index.sql",
            "CREATE INDEX accounts_id ON ${table} (id);\n",
        ),
        ("migsafe.toml", "[placeholders]\ntable = \"accounts\"\n"),
    ]);
    let lint = |path: &str| {
        common::migsafe_command()
            .current_dir(project.path())
            .args(["lint", path, "--format", "json"])
            .output()
            .unwrap()
    };
    // The namespace's own directory: its two migrations, in plan order.
    let output = lint("migrations/");
    expect_exit(&output, 1);
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["files"], 2, "{doc}");
    let findings = doc["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{doc}");
    assert_eq!(findings[0]["rule"], "add-column-not-null-without-default");

    // A directory of its own: its layout detected, placeholders replaced;
    // the index is on a table the same plan creates, so nothing to say.
    let output = lint("other/db");
    expect_exit(&output, 0);
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["files"], 2, "{doc}");
    assert_eq!(doc["findings"].as_array().unwrap().len(), 0, "{doc}");

    // Named twice (its directory and its namespace): linted once.
    let output = lint_twice(&project);
    expect_exit(&output, 1);
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["files"], 2, "{doc}");

    // A directory that is not there is still a file that is not there.
    let output = lint("nowhere/");
    expect_exit(&output, 5);

    // One that holds no migration is said to, not passed as clean.
    project.write("docs/README.md", b"notes\n");
    let output = lint("docs");
    expect_exit(&output, 0);
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["empty_dirs"], serde_json::json!(["docs"]), "{doc}");
    let output = common::migsafe_command()
        .current_dir(project.path())
        .args(["lint", "docs"])
        .output()
        .unwrap();
    let out = expect_exit(&output, 0);
    assert!(
        out.contains("docs holds no migration: nothing in it was linted"),
        "{out}"
    );
}

fn lint_twice(project: &Project) -> std::process::Output {
    common::migsafe_command()
        .current_dir(project.path())
        .args([
            "lint",
            "migrations",
            "default",
            "migrations/0002_kind.up.sql",
            "--format",
            "json",
        ])
        .output()
        .unwrap()
}
