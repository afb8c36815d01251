//! Other tools' layouts (SPEC section 2a) read as they are, each from a
//! fixture under tests/corpus/layouts/<tool>/ that exercises every rule of its
//! row: `apply` on an empty database gives the schema psql gives running the
//! files the native tool's way, `rollback` uses the layout's down scripts,
//! `verify` works, a BOM and CRLF line ends change no checksum, `new` writes
//! a file in the layout, and `status -v` names the layout and every file it
//! ignored, with why.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{Project, TestDb};

fn corpus(tool: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus/layouts")
        .join(tool)
}

/// Copies the fixture of `tool` into `project`'s `migrations/`.
fn copy_fixture(project: &Project, tool: &str) {
    fn walk(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                walk(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
    walk(&corpus(tool), &project.path().join("migrations"));
}

/// A project whose `migrations/` is `tool`'s fixture.
fn fixture_project(tool: &str) -> Project {
    let project = Project::new(&[]);
    copy_fixture(&project, tool);
    project
}

/// psql runs each text as a file, statement by statement, stopping on an error.
fn psql_runs(db: &TestDb, texts: &[String]) {
    let dir = tempfile::tempdir().unwrap();
    for (index, text) in texts.iter().enumerate() {
        let file = dir.path().join(format!("{index}.sql"));
        std::fs::write(&file, text).unwrap();
        let output = std::process::Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &db.url, "-f"])
            .arg(&file)
            .output()
            .expect("psql");
        assert!(
            output.status.success(),
            "{text}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn schema_checksum(db: &TestDb) -> String {
    let output = common::migsafe_command()
        .args(["schema", "checksum", "--database-url", &db.url])
        .output()
        .unwrap();
    common::expect_exit(&output, 0).trim().to_string()
}

/// The lines of the sections a line-marker tool runs as its up script, read
/// the simple way that tool does (an independent reading, for psql).
fn up_sections(text: &str, up: &str, down: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        let lower = line.trim().to_ascii_lowercase();
        if lower.starts_with(up) {
            inside = true;
        } else if lower.starts_with(down) {
            inside = false;
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn read(tool: &str, file: &str) -> String {
    std::fs::read_to_string(corpus(tool).join(file)).unwrap()
}

/// Rewrites every `.sql` file under `dir` with a BOM and CRLF line ends.
fn windows_checkout(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            windows_checkout(&path);
        } else if path.extension().is_some_and(|e| e == "sql") {
            let text = std::fs::read_to_string(&path).unwrap();
            let mut bytes = b"\xEF\xBB\xBF".to_vec();
            bytes.extend(text.replace('\n', "\r\n").into_bytes());
            std::fs::write(&path, bytes).unwrap();
        }
    }
}

struct Case<'a> {
    tool: &'a str,
    layout: &'a str,
    /// What the native tool runs, in order.
    reference: Vec<String>,
    /// How many history rows the native tool would record.
    migrations: usize,
    reversible: bool,
    /// Files `status -v` lists as ignored, with a word of the reason.
    ignored: &'a [(&'a str, &'a str)],
    /// Relations that must not exist after apply.
    never: &'a [&'a str],
}

fn round_trip(case: &Case) {
    let project = Project::new(&[]);
    copy_fixture(&project, case.tool);
    let (db, reference, empty) = (TestDb::new(), TestDb::new(), TestDb::new());
    psql_runs(&reference, &case.reference);
    let tool = case.tool;

    let out = project.run(&db, &["status", "-v"], 0);
    assert!(
        out.contains("layout") && out.contains(case.layout),
        "{tool}: {out}"
    );
    assert!(
        out.contains(&format!("{} pending", case.migrations)),
        "{tool}: {out}"
    );
    for (file, why) in case.ignored {
        let line = out
            .lines()
            .find(|l| l.contains("ignored") && l.contains(&format!("/{file} (")))
            .unwrap_or_else(|| panic!("{tool}: {file} not listed as ignored: {out}"));
        assert!(line.contains(why), "{tool}: {line}");
    }

    project.run(&db, &["apply"], 0);
    let out = project.run(&db, &["apply"], 0);
    assert!(out.contains("up to date"), "{tool}: {out}");
    assert_eq!(db.history("default").len(), case.migrations, "{tool}");
    assert_eq!(
        schema_checksum(&db),
        schema_checksum(&reference),
        "{tool}: migsafe and the native tool's way built different schemas"
    );
    for relation in case.never {
        assert!(!db.exists(relation), "{tool}: {relation} was created");
    }

    if case.reversible {
        let steps = case.migrations.to_string();
        project.run(&db, &["rollback", "--steps", &steps, "--skip-backup"], 0);
        assert_eq!(
            schema_checksum(&db),
            schema_checksum(&empty),
            "{tool}: the down scripts did not undo everything"
        );
        project.run(&db, &["apply", "--skip-backup"], 0);
        assert_eq!(schema_checksum(&db), schema_checksum(&reference), "{tool}");
        let out = project.run(&db, &["verify"], 0);
        assert!(
            out.contains(&format!("{} migration(s) verified", case.migrations)),
            "{tool}: {out}"
        );
    } else {
        let out = project.run(&db, &["verify"], 0);
        assert!(out.contains("forward-only"), "{tool}: {out}");
    }

    // A Windows checkout is not "modified".
    windows_checkout(&project.path().join("migrations"));
    let out = project.run(&db, &["apply"], 0);
    assert!(out.contains("up to date"), "{tool}: {out}");

    // `new` writes the next migration in the same layout.
    if case.layout == "sqitch" {
        let out = project.run(&db, &["new", "add_notes"], 5);
        assert!(out.contains("sqitch add"), "{out}");
        return;
    }
    let out = project.run(&db, &["new", "add_notes"], 0);
    let out2 = project.run(&db, &["status", "-v"], 0);
    assert!(out2.contains("1 pending"), "{tool}: {out}\n{out2}");
    assert!(
        !out2.contains("edited after apply"),
        "{tool}: {out}\n{out2}"
    );
    let layout_line = out2.lines().find(|l| l.contains("layout")).unwrap();
    assert_eq!(
        layout_line.split_whitespace().nth(1),
        Some(case.layout),
        "{tool}: {out2}"
    );
}

#[test]
fn goose_files_apply_like_goose() {
    let files = [
        "00001_create_users.sql",
        "00002_lower_email.sql",
        "00003_index_email.sql",
        "00004_orders.sql",
    ];
    round_trip(&Case {
        tool: "goose",
        layout: "goose",
        reference: files
            .iter()
            .map(|f| up_sections(&read("goose", f), "-- +goose up", "-- +goose down"))
            .collect(),
        migrations: 4,
        reversible: true,
        ignored: &[("README.md", "does not start with a version")],
        never: &[],
    });
}

#[test]
fn sql_migrate_files_apply_like_sql_migrate() {
    let files = ["1_accounts.sql", "2.sql", "3_audit.sql"];
    round_trip(&Case {
        tool: "sql-migrate",
        layout: "sql-migrate",
        reference: files
            .iter()
            .map(|f| {
                up_sections(
                    &read("sql-migrate", f),
                    "-- +migrate up",
                    "-- +migrate down",
                )
            })
            .collect(),
        migrations: 3,
        reversible: true,
        ignored: &[],
        never: &[],
    });
}

#[test]
fn pop_files_apply_like_pop_on_postgres() {
    let files = [
        "20240101000000_create_pets.up.sql",
        "20240102000000_pet_names.postgres.up.sql",
        "20240103000000_pet_kind_index.postgres.autocommit.up.sql",
        "20240104000000_nothing_on_postgres.up.sql",
        "20240106000000000000_owners.up.sql",
    ];
    round_trip(&Case {
        tool: "pop",
        layout: "pop",
        reference: files.iter().map(|f| read("pop", f)).collect(),
        migrations: 5,
        reversible: true,
        ignored: &[
            ("20240101000000_create_pets.mysql.up.sql", "`mysql` dialect"),
            (
                "20240101000000_create_pets.mysql.down.sql",
                "`mysql` dialect",
            ),
            (
                "20240102000000_pet_names.up.sql",
                "replaces the dialect-less",
            ),
            (
                "20240102000000_pet_names.sqlite3.up.sql",
                "`sqlite3` dialect",
            ),
            (
                "20240104000000_nothing_on_postgres.cockroach.up.sql",
                "`cockroach`",
            ),
            ("20240105000000_only_mysql.mysql.up.sql", "`mysql` dialect"),
        ],
        never: &[],
    });
}

#[test]
fn pop_autocommit_runs_without_a_transaction_and_empty_files_are_no_ops() {
    let db = TestDb::new();
    let project = Project::new(&[]);
    copy_fixture(&project, "pop");
    let out = project.run(&db, &["plan"], 0);
    let line = out.lines().find(|l| l.contains("pet_kind_index")).unwrap();
    assert!(
        line.contains("no-transaction") && !line.contains("inferred"),
        "{line}"
    );
    let line = out
        .lines()
        .find(|l| l.contains("nothing_on_postgres"))
        .unwrap();
    assert!(line.contains("transaction"), "{line}");
}

#[test]
fn prisma_folders_apply_like_prisma_migrate_deploy() {
    let folders = [
        "20240101000000_init",
        "20240102000000_add_posts",
        "20240103000000_post_title_index",
    ];
    round_trip(&Case {
        tool: "prisma",
        layout: "prisma",
        reference: folders
            .iter()
            .map(|f| read("prisma", &format!("{f}/migration.sql")))
            .collect(),
        migrations: 3,
        reversible: false,
        ignored: &[("migration_lock.toml", "Prisma's provider lock")],
        never: &[],
    });
}

#[test]
fn drizzle_applies_what_the_journal_lists_in_its_order() {
    round_trip(&Case {
        tool: "drizzle",
        layout: "drizzle",
        reference: ["0000_tidy_customers.sql", "0001_orders_and_status.sql"]
            .iter()
            .map(|f| read("drizzle", f))
            .collect(),
        migrations: 2,
        reversible: false,
        ignored: &[
            ("0002_left_behind.sql", "not in meta/_journal.json"),
            ("meta", "journal and schema snapshots"),
        ],
        never: &["left_behind"],
    });
}

#[test]
fn a_forced_layout_reads_markers_as_comments() {
    let db = TestDb::new();
    let project = Project::new(&[
        (
            "migsafe.toml",
            "[namespaces.default]\ndir = \"migrations\"\nlayout = \"up-only\"\n",
        ),
        (
            "migrations/0001_t.sql",
            "-- +goose Up\nCREATE TABLE t (id int);\n-- +goose Down\nCREATE TABLE u (id int);\n",
        ),
    ]);
    let out = project.run(&db, &["status", "-v"], 0);
    assert!(out.contains("up-only"), "{out}");
    project.run(&db, &["apply", "--skip-backup"], 0);
    assert!(db.exists("t") && db.exists("u"));
    let project = Project::new(&[(
        "migsafe.toml",
        "[namespaces.default]\ndir = \"migrations\"\nlayout = \"flywheel\"\n",
    )]);
    let out = project.run(&db, &["status"], 5);
    assert!(out.contains("drizzle") && out.contains("flywheel"), "{out}");
}

#[test]
fn bad_layout_input_names_the_file_and_the_reason() {
    let db = TestDb::new();
    let journal = |tags: &[&str]| {
        let entries: Vec<String> = tags
            .iter()
            .enumerate()
            .map(|(i, t)| format!("{{\"idx\":{i},\"when\":{i},\"tag\":\"{t}\"}}"))
            .collect();
        format!(
            "{{\"dialect\":\"postgresql\",\"entries\":[{}]}}",
            entries.join(",")
        )
    };
    let cases: Vec<(Vec<(String, String)>, &str)> = vec![
        (
            vec![
                (
                    "migrations/meta/_journal.json".into(),
                    journal(&["0000_a", "0001_gone"]),
                ),
                ("migrations/0000_a.sql".into(), "SELECT 1;\n".into()),
            ],
            "0001_gone.sql: is listed in meta/_journal.json but does not exist",
        ),
        (
            vec![(
                "migrations/meta/_journal.json".into(),
                "{\"entries\": [".into(),
            )],
            "is not a Drizzle journal",
        ),
        (
            vec![
                (
                    "migrations/meta/_journal.json".into(),
                    journal(&["0001_a", "0001_b"]),
                ),
                ("migrations/0001_a.sql".into(), "SELECT 1;\n".into()),
                ("migrations/0001_b.sql".into(), "SELECT 1;\n".into()),
            ],
            "its number is not greater",
        ),
        (
            vec![(
                "migrations/1_x.sql".into(),
                "-- +goose Down\nDROP TABLE x;\n".into(),
            )],
            "has goose markers but no up section",
        ),
        (
            vec![
                (
                    "migrations/1_x.sql".into(),
                    "-- +goose Up\nSELECT 1;\n".into(),
                ),
                (
                    "migrations/1_y.sql".into(),
                    "-- +goose Up\nSELECT 2;\n".into(),
                ),
            ],
            "MIGRATION_VERSION_DUPLICATE:default:1",
        ),
        (
            vec![
                (
                    "migrations/1_x.postgres.up.sql".into(),
                    "SELECT 1;\n".into(),
                ),
                (
                    "migrations/1_y.postgres.up.sql".into(),
                    "SELECT 2;\n".into(),
                ),
            ],
            "MIGRATION_VERSION_DUPLICATE:default:1",
        ),
        (
            vec![
                (
                    "migrations/migration_lock.toml".into(),
                    "provider = \"mysql\"\n".into(),
                ),
                ("migrations/1_x/migration.sql".into(), "SELECT 1;\n".into()),
            ],
            "locks this history to provider `mysql`",
        ),
    ];
    for (files, expected) in cases {
        let files: Vec<(&str, &str)> = files
            .iter()
            .map(|(p, t)| (p.as_str(), t.as_str()))
            .collect();
        let project = Project::new(&files);
        let out = project.run(&db, &["status"], 5);
        assert!(out.contains(expected), "{files:?}: {out}");
        assert!(out.contains("MIGRATION_"), "{out}");
    }
}

#[test]
fn liquibase_changesets_apply_like_liquibase_update() {
    let functions = read("liquibase", "002-functions.sql");
    // Liquibase sends `/`-delimited statements one by one, and skips the
    // mysql-only changeset on PostgreSQL.
    let functions = functions
        .split("--changeset bo:mysql-only")
        .next()
        .unwrap()
        .lines()
        .map(|l| if l.trim() == "/" { ";" } else { l })
        .collect::<Vec<_>>()
        .join("\n");
    round_trip(&Case {
        tool: "liquibase",
        layout: "liquibase",
        reference: vec![
            read("liquibase", "001-init.sql"),
            functions,
            read("liquibase", "003-genres.sql"),
        ],
        migrations: 5,
        reversible: true,
        ignored: &[
            ("README.md", "not Liquibase formatted SQL"),
            ("002-functions.sql#bo:mysql-only", "dbms mysql"),
        ],
        never: &[],
    });
}

#[test]
fn liquibase_changesets_are_versioned_by_position_and_run_as_marked() {
    let db = TestDb::new();
    let project = Project::new(&[]);
    copy_fixture(&project, "liquibase");
    let out = project.run(&db, &["plan"], 0);
    let line = out
        .lines()
        .find(|l| l.contains("bo:books-title-index"))
        .unwrap();
    assert!(line.trim_start().starts_with('4'), "{line}");
    assert!(
        line.contains("no-transaction") && !line.contains("inferred"),
        "{line}"
    );
    let line = out.lines().find(|l| l.contains("cy:genres")).unwrap();
    assert!(line.trim_start().starts_with('6'), "{line}");
    let bad = Project::new(&[(
        "migrations/changelog.sql",
        "--liquibase formatted sql\n--changeset ana\nSELECT 1;\n",
    )]);
    let out = bad.run(&db, &["status"], 5);
    assert!(
        out.contains("MIGRATION_FILE_INVALID:default") && out.contains("has no id"),
        "{out}"
    );
}

#[test]
fn sqitch_deploys_in_plan_order_with_reworked_changes_at_their_tag() {
    round_trip(&Case {
        tool: "sqitch",
        layout: "sqitch",
        reference: [
            "deploy/users.sql",
            "deploy/flips@v1.0.sql",
            "deploy/flips.sql",
        ]
        .iter()
        .map(|f| read("sqitch", f))
        .collect(),
        migrations: 3,
        reversible: true,
        ignored: &[
            ("sqitch.conf", "not part of the Sqitch plan"),
            ("sqitch.plan", "read for the order"),
        ],
        never: &[],
    });
    let db = TestDb::new();
    let bad = Project::new(&[
        ("migrations/sqitch.plan", "users 2024-01-01 Ana\n"),
        ("migrations/deploy/users.sql", "SELECT 1;\n"),
    ]);
    let out = bad.run(&db, &["status"], 5);
    assert!(
        out.contains("MIGRATION_FILE_INVALID:default") && out.contains("line 1:"),
        "{out}"
    );
}

/// Sqitch's verify scripts run right after their deploy, in its transaction:
/// a failing one undoes the deploy and is named; what a passing one does is
/// not kept; a deploy that cannot be undone is left DIRTY; a verify script
/// that would end the transaction is refused before anything runs.
#[test]
fn sqitch_verify_scripts_run_after_each_deploy() {
    let plan = "%project=shop\n\nusers 2024-01-01T10:00:00Z Ana <a@x> # users\norders [users] 2024-01-02T10:00:00Z Ana <a@x> # orders\n";
    let db = TestDb::new();
    let project = Project::new(&[
        ("migrations/sqitch.plan", plan),
        (
            "migrations/deploy/users.sql",
            "BEGIN;\nCREATE TABLE users (id int PRIMARY KEY, nick text);\nCOMMIT;\n",
        ),
        ("migrations/revert/users.sql", "DROP TABLE users;\n"),
        (
            "migrations/verify/users.sql",
            "-- Verify shop:users on pg\nBEGIN;\nSELECT id, nick FROM users WHERE false;\nCREATE TABLE verify_side_effect (x int);\nROLLBACK;\n",
        ),
        (
            "migrations/deploy/orders.sql",
            "CREATE TABLE orders (id int PRIMARY KEY);\n",
        ),
        ("migrations/revert/orders.sql", "DROP TABLE orders;\n"),
        (
            "migrations/verify/orders.sql",
            "BEGIN;\n\nSELECT id, total FROM orders WHERE false;\nROLLBACK;\n",
        ),
    ]);
    let out = project.run(&db, &["apply"], 2);
    assert!(out.contains("MIGRATION_FAILED:default:2"), "{out}");
    assert!(out.contains("verify script failed"), "{out}");
    assert!(
        out.contains("verify/orders.sql:3"),
        "the failing line of the verify script: {out}"
    );
    assert!(out.contains("total"), "the server's error: {out}");
    assert!(db.exists("users"), "the first change verified and stays");
    assert!(
        !db.exists("verify_side_effect"),
        "a verify script's own work is rolled back"
    );
    assert!(!db.exists("orders"), "the failing verify undid its deploy");
    assert_eq!(db.history("default"), vec![("1".to_string(), false)]);

    // Fixed verify: the change lands; --sql shows the verify step.
    project.write(
        "migrations/verify/orders.sql",
        b"BEGIN;\nSELECT id FROM orders WHERE false;\nROLLBACK;\n",
    );
    project.remove("migrations/deploy/orders.sql");
    project.write(
        "migrations/deploy/orders.sql",
        b"CREATE TABLE orders (id int PRIMARY KEY);\n",
    );
    let sql = project.run(&db, &["apply", "--sql"], 0);
    assert!(
        sql.contains("-- verify:") && sql.contains("SAVEPOINT migsafe_verify"),
        "{sql}"
    );
    project.run(&db, &["apply"], 0);
    assert!(db.exists("orders"));

    // A deploy outside a transaction cannot be undone: DIRTY, named.
    let db = TestDb::new();
    let project = Project::new(&[
        (
            "migrations/sqitch.plan",
            "%project=shop\n\nidx 2024-01-01T10:00:00Z Ana <a@x> # idx\n",
        ),
        (
            "migrations/deploy/idx.sql",
            "CREATE TABLE t (a int);\nCREATE INDEX CONCURRENTLY t_a ON t (a);\n",
        ),
        (
            "migrations/verify/idx.sql",
            "-- Verify idx\nBEGIN;\nSELECT 1/count(*) FROM pg_class WHERE relname = 'nope';\nROLLBACK;\n",
        ),
    ]);
    let out = project.run(&db, &["apply"], 2);
    assert!(
        out.contains("verify script failed") && out.contains("DIRTY"),
        "{out}"
    );
    assert!(
        out.contains("verify/idx.sql:3"),
        "a runtime error names its line: {out}"
    );
    assert_eq!(db.history("default"), vec![("1".to_string(), true)]);

    // A verify script that would commit the migration's transaction.
    let db = TestDb::new();
    let project = Project::new(&[
        (
            "migrations/sqitch.plan",
            "%project=shop\n\nusers 2024-01-01T10:00:00Z Ana <a@x> # users\n",
        ),
        (
            "migrations/deploy/users.sql",
            "CREATE TABLE users (id int);\n",
        ),
        (
            "migrations/verify/users.sql",
            "SELECT 1;\nCOMMIT;\nSELECT 2;\n",
        ),
    ]);
    let out = project.run(&db, &["apply"], 5);
    assert!(
        out.contains("MIGRATION_FILE_INVALID:default:1") && out.contains("COMMIT"),
        "{out}"
    );
    assert!(!db.exists("users"), "nothing ran");
}

/// Liquibase files grow at the end, a blank line between changesets: the
/// changeset before stays as applied. What Liquibase decides at run time
/// (contexts, preconditions) is refused for a pending changeset before
/// anything runs, never run unconditionally.
#[test]
fn liquibase_files_grow_at_the_end_and_runtime_decisions_are_refused() {
    let db = TestDb::new();
    let first = "--liquibase formatted sql\n\n--changeset ana:users\nCREATE TABLE users (id int PRIMARY KEY);\n--rollback DROP TABLE users;\n";
    let project = Project::new(&[("migrations/001-users.sql", first)]);
    project.run(&db, &["apply"], 0);
    let grown =
        format!("{first}\n--changeset ana:orders\nCREATE TABLE orders (id int PRIMARY KEY);\n\n");
    project.write("migrations/001-users.sql", grown.as_bytes());
    let out = project.run(&db, &["status"], 0);
    assert!(
        !out.contains("EDITED"),
        "appending changed the changeset before:\n{out}"
    );
    project.run(&db, &["apply"], 0);
    assert!(db.exists("orders"));

    let guarded = format!(
        "{grown}--changeset ana:seed context:test\nINSERT INTO users VALUES (1);\n\n--changeset ana:purge\n--preconditions onFail:MARK_RAN\n--precondition-sql-check expectedResult:0 SELECT count(*) FROM orders\nDELETE FROM users;\n"
    );
    project.write("migrations/001-users.sql", guarded.as_bytes());
    let out = project.run(&db, &["apply"], 5);
    assert!(
        out.contains("MIGRATION_FILE_INVALID:default:3") && out.contains("context:test"),
        "{out}"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM users").as_deref(),
        Some("0"),
        "nothing ran"
    );
    // A precondition kind migsafe does not check is refused, named.
    let without_seed = guarded.replace(" context:test", "").replace(
        "--precondition-sql-check expectedResult:0 SELECT count(*) FROM orders",
        "--precondition-table-exists tableName:orders",
    );
    project.write("migrations/001-users.sql", without_seed.as_bytes());
    let out = project.run(&db, &["apply"], 5);
    assert!(
        out.contains("MIGRATION_FILE_INVALID:default:4")
            && out.contains("precondition-table-exists"),
        "{out}"
    );
}

/// Liquibase changesets guard themselves with `--precondition-sql-check`:
/// apply checks it just before the changeset, and does what `onFail` /
/// `onError` say — MARK_RAN records it without running it, WARN runs it,
/// HALT stops the run there with the ones before it applied.
#[test]
fn liquibase_preconditions_are_checked_just_before_their_changeset() {
    let changelog = "--liquibase formatted sql\n\n--changeset ana:accounts\nCREATE TABLE accounts (id bigint PRIMARY KEY, email text);\n\n--changeset ana:legacy-schema\n--preconditions onFail:MARK_RAN\n--precondition-sql-check expectedResult:0 SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'legacy'\nCREATE SCHEMA legacy;\n\n--changeset ana:warned\n--preconditions onFail:WARN\n--precondition-sql-check expectedResult:1 SELECT 2;\nCREATE TABLE warned (id int);\nINSERT INTO accounts VALUES (1, 'a@x'), (2, 'a@x');\n\n--changeset ana:unique-email\n--preconditions onFail:HALT onFailMessage:\"duplicate emails\"\n--precondition-sql-check expectedResult:0 SELECT count(*) FROM (SELECT email FROM accounts GROUP BY email HAVING count(*) > 1) d\nCREATE UNIQUE INDEX accounts_email ON accounts (email);\n\n--changeset ana:after\nCREATE TABLE after_it (id int);\n\n--changeset ana:guarded-by-nothing\n--preconditions onError:MARK_RAN\n--precondition-sql-check expectedResult:0 SELECT count(*) FROM nowhere\nCREATE TABLE never_made (id int);\n\n--changeset ana:sneaky-check\n--preconditions onError:WARN\n--precondition-sql-check expectedResult:0 WITH d AS (DELETE FROM accounts RETURNING 1) SELECT count(*) FROM d\nSELECT 1;\n";
    let db = TestDb::new();
    // Made outside the migrations, as the precondition expects.
    db.query("CREATE SCHEMA legacy; CREATE TABLE legacy.keep (id int); INSERT INTO legacy.keep VALUES (7)");
    let project = Project::new(&[("migrations/001-accounts.sql", changelog)]);
    let plan = project.run(&db, &["plan"], 0);
    assert!(
        plan.contains("precondition checked first (onFail:MARK_RAN onError:HALT, 1 check(s))"),
        "{plan}"
    );

    // MARK_RAN records 2 without running it, WARN runs 3, HALT stops at 4:
    // what landed before it is in the JSON error document, 2 included.
    let out = project.run(&db, &["apply", "--format", "json"], 2);
    assert!(
        out.contains("2 ana:legacy-schema precondition:")
            && out.contains(
                "gave `1`, expected `0`; recorded as applied without running it (MARK_RAN)"
            )
            && out.contains("3 ana:warned precondition:")
            && out.contains("run anyway (WARN)")
            && out.contains("PRECONDITION_FAILED:default:4")
            && out.contains("duplicate emails")
            && out.contains("001-accounts.sql:19"),
        "{out}"
    );
    let start = out.find('{').unwrap();
    let doc: serde_json::Value =
        serde_json::from_str(&out[start..=out.rfind('}').unwrap()]).expect(&out);
    assert_eq!(
        doc["committed"][0]["versions"],
        serde_json::json!(["1", "2", "3"]),
        "{doc}"
    );
    assert_eq!(
        db.scalar("SELECT id FROM legacy.keep").as_deref(),
        Some("7")
    );
    assert!(db.exists("warned") && !db.exists("accounts_email") && !db.exists("after_it"));
    let history: Vec<String> = db.history("default").into_iter().map(|(v, _)| v).collect();
    assert_eq!(history, ["1", "2", "3"]);
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM migsafe.history_audit WHERE action = 'mark-ran' AND version = '2'"
        )
        .as_deref(),
        Some("1")
    );
    let log = project.event_log();
    assert!(
        log.contains(r#""event":"precondition_failed""#) && log.contains(r#""action":"MARK_RAN""#),
        "{log}"
    );

    // A psql script cannot decide ahead what the precondition will say.
    let out = project.run(&db, &["apply", "--sql"], 5);
    assert!(
        out.contains("MIGRATION_FILE_INVALID:default:4") && out.contains("preconditions"),
        "{out}"
    );

    // Fixed: it runs, and so does the rest. A check that cannot run at all
    // does what onError says; a check only looks (read-only, rolled back):
    // the DELETE in the last one changes nothing.
    db.query("DELETE FROM accounts WHERE id = 2");
    let out = project.run(&db, &["apply"], 0);
    assert!(
        out.contains("could not be checked")
            && out.contains("nowhere")
            && out.contains("read-only transaction")
            && out.contains("(1 of them not run: their precondition said MARK_RAN)"),
        "{out}"
    );
    assert!(db.exists("accounts_email") && db.exists("after_it") && !db.exists("never_made"));
    assert_eq!(
        db.scalar("SELECT count(*) FROM accounts").as_deref(),
        Some("1")
    );
    assert_eq!(db.history("default").len(), 7);

    // A check that is not one readable query is refused before anything runs.
    let project = Project::new(&[(
        "migrations/001-accounts.sql",
        "--liquibase formatted sql\n--changeset ana:a\n--preconditions onFail:MARK_RAN\n--precondition-sql-check expectedResult:1 SELECT 1; DROP TABLE accounts; SELECT 1\nSELECT 1;\n--changeset ana:b\n--precondition-sql-check expectedResult:hello world SELECT 'hello world'\nSELECT 1;\n",
    )]);
    let fresh = TestDb::new();
    let out = project.run(&fresh, &["apply"], 5);
    assert!(
        out.contains("MIGRATION_FILE_INVALID:default:1") && out.contains("holds 3 statements"),
        "{out}"
    );
}

/// A changeset recorded without running (MARK_RAN: the schema its
/// precondition looks for was already there) is rolled back by removing its
/// row only: its `--rollback` would drop a schema it never made.
#[test]
fn rolling_back_a_changeset_marked_ran_does_not_run_its_down_script() {
    let changelog = "--liquibase formatted sql\n\n--changeset ana:accounts\nCREATE TABLE accounts (id bigint PRIMARY KEY);\n--rollback DROP TABLE accounts;\n\n--changeset ana:legacy-schema\n--preconditions onFail:MARK_RAN\n--precondition-sql-check expectedResult:0 SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'legacy'\nCREATE SCHEMA legacy;\n--rollback DROP SCHEMA legacy CASCADE;\n";
    let db = TestDb::new();
    db.query("CREATE SCHEMA legacy; CREATE TABLE legacy.keep (id int); INSERT INTO legacy.keep VALUES (7)");
    let project = Project::new(&[("migrations/001-accounts.sql", changelog)]);
    project.run(&db, &["apply"], 0);
    assert_eq!(db.history("default").len(), 2);
    let out = project.run(&db, &["rollback"], 0);
    assert!(out.contains("its down script is not run"), "{out}");
    assert_eq!(
        db.scalar("SELECT id FROM legacy.keep").as_deref(),
        Some("7"),
        "{out}"
    );
    let history: Vec<String> = db.history("default").into_iter().map(|(v, _)| v).collect();
    assert_eq!(history, ["1"]);
    // Applied again, it is marked again, and rolled back the same way; the
    // changeset before it, which ran, is rolled back with its down script.
    let out = project.run(&db, &["apply"], 0);
    assert!(out.contains("MARK_RAN"), "{out}");
    let out = project.run(&db, &["rollback", "--steps", "2"], 0);
    assert!(out.contains("its down script is not run"), "{out}");
    assert!(!db.exists("accounts") && db.exists("legacy.keep"), "{out}");
    assert!(db.history("default").is_empty());
}

/// verify checks preconditions as apply does: the classic guard (create it
/// unless an earlier changeset made it) is marked as ran on the scratch
/// database, neither run nor rolled back, and a HALT that would stop a
/// fresh database fails verify.
#[test]
fn verify_checks_liquibase_preconditions_as_apply_does() {
    let guarded = "--liquibase formatted sql\n\n--changeset ana:customers\nCREATE TABLE customers (id bigint PRIMARY KEY);\n--rollback DROP TABLE customers;\n\n--changeset bo:customers-again\n--preconditions onFail:MARK_RAN\n--precondition-sql-check expectedResult:0 SELECT count(*) FROM information_schema.tables WHERE table_name = 'customers'\nCREATE TABLE customers (id bigint PRIMARY KEY);\n--rollback DROP TABLE customers;\n\n--changeset bo:orders\n--preconditions onFail:MARK_RAN\n--precondition-sql-check expectedResult:0 SELECT count(*) FROM information_schema.tables WHERE table_name = 'orders'\nCREATE TABLE orders (id bigint PRIMARY KEY);\n--rollback DROP TABLE orders;\n";
    let project = Project::new(&[("migrations/001-changelog.sql", guarded)]);
    let db = TestDb::new();
    project.run(&db, &["verify"], 0);
    let halting = guarded.replace(
        "--changeset bo:orders\n--preconditions onFail:MARK_RAN\n--precondition-sql-check expectedResult:0",
        "--changeset bo:orders\n--preconditions onFail:HALT\n--precondition-sql-check expectedResult:5",
    );
    project.write("migrations/001-changelog.sql", halting.as_bytes());
    let out = project.run(&db, &["verify"], 2);
    assert!(
        out.contains("PRECONDITION_FAILED:default:3")
            && out.contains("would not run on a fresh database"),
        "{out}"
    );
}

/// A Liquibase project keeps its views and functions in `runOnChange:true`
/// changesets and edits them in place: apply runs an edited one again, in
/// its order, and rewrites its history row; a failed rerun keeps the
/// earlier text and record; an edit of any other changeset is still refused.
#[test]
fn liquibase_run_on_change_changesets_run_again_in_place() {
    const FILE: &str = "migrations/001-accounts.sql";
    let db = TestDb::new();
    let first = "--liquibase formatted sql\n\n--changeset ana:accounts\nCREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL, active boolean NOT NULL DEFAULT true);\n--rollback DROP TABLE accounts;\n\n--changeset ana:active-accounts runOnChange:true\nCREATE OR REPLACE VIEW active_accounts AS SELECT id, name FROM accounts WHERE active;\n--rollback DROP VIEW active_accounts;\n\n--changeset bo:account-count runOnChange:true splitStatements:false stripComments:false\nDROP FUNCTION IF EXISTS account_count();\nCREATE FUNCTION account_count() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM accounts $$;\n--rollback DROP FUNCTION account_count();\n\n--changeset bo:name-idx runInTransaction:false runOnChange:true\nCREATE INDEX CONCURRENTLY IF NOT EXISTS accounts_name_idx ON accounts (name);\n--rollback DROP INDEX CONCURRENTLY accounts_name_idx;\n";
    let project = Project::new(&[(FILE, first)]);
    project.run(&db, &["apply"], 0);
    db.query("INSERT INTO accounts VALUES (1, 'a', true), (2, 'b', false)");
    let checksum = |version: &str| {
        db.scalar(&format!(
            "SELECT checksum FROM migsafe.schema_migrations WHERE namespace = 'default' AND version = '{version}'"
        ))
        .unwrap()
    };
    let before = [checksum("2"), checksum("3"), checksum("4")];

    // The view gains a column, the function counts active accounts only,
    // the index becomes a partial one, and a changeset is appended.
    let edited = first
        .replace(
            "SELECT id, name FROM accounts WHERE active;",
            "SELECT id, name, upper(name) AS shown FROM accounts WHERE active;",
        )
        .replace(
            "SELECT count(*) FROM accounts $$",
            "SELECT count(*) FROM accounts WHERE active $$",
        )
        .replace(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS accounts_name_idx ON accounts (name);",
            "DROP INDEX CONCURRENTLY IF EXISTS accounts_name_idx;\nCREATE INDEX CONCURRENTLY accounts_name_idx ON accounts (name) WHERE active;",
        )
        + "\n--changeset ana:email\nALTER TABLE accounts ADD COLUMN email text;\n";
    project.write(FILE, edited.as_bytes());
    let status = project.run(&db, &["status"], 0);
    assert!(
        status.contains("3 changed, to run again") && !status.contains("EDITED"),
        "{status}"
    );
    let plan = project.run(&db, &["plan"], 0);
    assert_eq!(plan.matches("runs again").count(), 3, "{plan}");
    let sql = project.run(&db, &["apply", "--sql"], 0);
    assert!(
        sql.contains("UPDATE \"migsafe\".schema_migrations SET name = 'ana:active-accounts'")
            && !sql.contains("VALUES ('default', '2'")
            && sql.contains("VALUES ('default', '5'"),
        "{sql}"
    );

    let out = project.run(&db, &["apply"], 0);
    assert_eq!(out.matches("changed since it ran").count(), 3, "{out}");
    let at = |name: &str| {
        out.find(name)
            .unwrap_or_else(|| panic!("{name} did not run:\n{out}"))
    };
    assert!(
        at("ana:active-accounts") < at("bo:account-count")
            && at("bo:account-count") < at("bo:name-idx")
            && at("bo:name-idx") < at("ana:email"),
        "the reruns run in changeset order, before the new one:\n{out}"
    );
    assert_eq!(
        db.scalar("SELECT string_agg(shown, ',') FROM active_accounts")
            .as_deref(),
        Some("A")
    );
    assert_eq!(db.scalar("SELECT account_count()").as_deref(), Some("1"));
    assert_eq!(
        db.scalar("SELECT indexdef LIKE '%WHERE active%' FROM pg_indexes WHERE indexname = 'accounts_name_idx'")
            .as_deref(),
        Some("t")
    );
    assert!(
        db.exists("accounts") && db.scalar("SELECT count(*) FROM accounts").as_deref() == Some("2")
    );
    let history = db.history("default");
    assert_eq!(history.len(), 5, "one row per changeset: {history:?}");
    assert!(history.iter().all(|(_, dirty)| !dirty), "{history:?}");
    let after = [checksum("2"), checksum("3"), checksum("4")];
    assert!(
        before.iter().zip(&after).all(|(b, a)| b != a),
        "the rows record the new text: {before:?} {after:?}"
    );
    let status = project.run(&db, &["status"], 0);
    assert!(
        status.contains("5 applied, 0 pending") && !status.contains("changed"),
        "{status}"
    );
    let again = project.run(&db, &["apply"], 0);
    assert!(!again.contains("changed since it ran"), "{again}");

    // A rerun that fails keeps the earlier view and its record.
    let broken = edited.replace("upper(name) AS shown", "upper(nickname) AS shown");
    project.write(FILE, broken.as_bytes());
    let out = project.run(&db, &["apply"], 2);
    assert!(
        out.contains("MIGRATION_FAILED:default:2") && out.contains("nickname"),
        "{out}"
    );
    assert_eq!(
        checksum("2"),
        after[0],
        "the record of the earlier run stays"
    );
    assert_eq!(
        db.scalar("SELECT string_agg(shown, ',') FROM active_accounts")
            .as_deref(),
        Some("A"),
        "the earlier view stays"
    );
    let status = project.run(&db, &["status"], 0);
    assert!(status.contains("1 changed, to run again"), "{status}");

    // Any other changeset edited after it ran is still refused.
    let restored = edited.replace("name text NOT NULL,", "name text NOT NULL, note text,");
    project.write(FILE, restored.as_bytes());
    let out = project.run(&db, &["apply"], 1);
    assert!(
        out.contains("POSTGRES_MIGRATION_CHECKSUM_MISMATCH:default:1"),
        "{out}"
    );
}

/// Liquibase projects mark changesets with contexts (`context:test` for
/// seed data) and labels. With the database's contexts and label filter
/// set (migsafe.toml, or Liquibase's own environment variables), a
/// changeset that is not for it is not run and shows as excluded; without
/// them, a pending one is refused, never run everywhere.
#[test]
fn liquibase_contexts_and_labels_choose_the_changesets_of_this_database() {
    const FILE: &str = "migrations/001-accounts.sql";
    let changelog = "--liquibase formatted sql\n\n--changeset ana:accounts\nCREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL);\n--rollback DROP TABLE accounts;\n\n--changeset ana:seed context:test labels:seed\nINSERT INTO accounts VALUES (1, 'test account');\n--rollback DELETE FROM accounts WHERE id = 1;\n\n--changeset ana:reporting context:\"prod and !eu\"\nCREATE ROLE reporting_ro_x NOLOGIN;\n--rollback DROP ROLE reporting_ro_x;\n\n--changeset bo:billing labels:billing,v2\nCREATE TABLE invoices (id bigint PRIMARY KEY);\n--rollback DROP TABLE invoices;\n\n--changeset bo:audit\nCREATE TABLE audit_log (id bigint PRIMARY KEY);\n--rollback DROP TABLE audit_log;\n\n--changeset ana:test-view context:test runOnChange:true\nCREATE OR REPLACE VIEW test_accounts AS SELECT id FROM accounts;\n--rollback DROP VIEW test_accounts;\n";
    let db = TestDb::new();
    let project = Project::new(&[(FILE, changelog)]);
    // Nothing configured: refused before anything runs.
    let out = project.run(&db, &["apply"], 5);
    assert!(
        out.contains("MIGRATION_FILE_INVALID:default:2")
            && out.contains("context:test")
            && out.contains("LIQUIBASE_COMMAND_CONTEXTS"),
        "{out}"
    );
    assert!(!db.exists("accounts"), "nothing ran");

    project.write(
        "migsafe.toml",
        b"[liquibase]\ncontexts = \"prod\"\nlabel_filter = \"!billing\"\n",
    );
    let out = project.run(&db, &["apply"], 0);
    assert!(
        !out.contains("ana:seed") && !out.contains("bo:billing"),
        "{out}"
    );
    assert!(db.exists("accounts") && db.exists("audit_log") && !db.exists("invoices"));
    assert_eq!(
        db.scalar("SELECT count(*) FROM accounts").as_deref(),
        Some("0")
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_roles WHERE rolname = 'reporting_ro_x'")
            .as_deref(),
        Some("1")
    );
    db.query("DROP ROLE IF EXISTS reporting_ro_x");
    let status = project.run(&db, &["status"], 0);
    assert!(
        status.contains("3 applied, 0 pending, 3 not for this database")
            && status.contains("its context `test` (this database's: `prod`)")
            && status.contains("its labels `billing,v2`"),
        "{status}"
    );
    let history: Vec<String> = db.history("default").into_iter().map(|(v, _)| v).collect();
    assert_eq!(history, ["1", "3", "5"]);

    // An empty variable (a deploy template's unset value) is no setting:
    // it does not turn `prod` into "every changeset".
    let output = project
        .migsafe(&db)
        .env("LIQUIBASE_COMMAND_CONTEXTS", "")
        .args(["status"])
        .output()
        .unwrap();
    let out = common::expect_exit(&output, 0);
    assert!(
        out.contains("its context `test` (this database's: `prod`)"),
        "{out}"
    );
    // Contexts that are not a list of names would exclude everything.
    let output = project
        .migsafe(&db)
        .env("LIQUIBASE_COMMAND_CONTEXTS", "prod and")
        .args(["status"])
        .output()
        .unwrap();
    let out = common::expect_exit(&output, 5);
    assert!(
        out.contains("CONFIG_INVALID") && out.contains("not a list of names"),
        "{out}"
    );

    // Liquibase's own variables, as its deploys set them per environment,
    // win over migsafe.toml: on this (test) database the seed is for it.
    let output = project
        .migsafe(&db)
        .env("LIQUIBASE_COMMAND_CONTEXTS", "test")
        .env("LIQUIBASE_COMMAND_LABEL_FILTER", "billing or seed")
        .args(["apply", "--allow-out-of-order"])
        .output()
        .unwrap();
    let out = common::expect_exit(&output, 0);
    assert!(
        out.contains("ana:seed") && out.contains("bo:billing"),
        "{out}"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM accounts").as_deref(),
        Some("1")
    );
    assert!(db.exists("invoices") && db.exists("test_accounts"));

    // A runOnChange changeset that is not for this database is not run
    // again when it changes (Liquibase filters before it looks at changes).
    let edited = changelog.replace(
        "AS SELECT id FROM accounts;",
        "AS SELECT id, name FROM accounts;",
    );
    project.write(FILE, edited.as_bytes());
    let status = project.run(&db, &["status"], 0);
    assert!(
        status.contains("excluded") && !status.contains("changed"),
        "{status}"
    );
    let out = project.run(&db, &["apply"], 0);
    assert!(!out.contains("ana:test-view"), "{out}");
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'test_accounts'"
        )
        .as_deref(),
        Some("1"),
        "the test view is as it was"
    );

    // An expression Liquibase could not read either names the changeset.
    project.write(
        FILE,
        changelog
            .replace("context:\"prod and !eu\"", "context:\"prod and\"")
            .as_bytes(),
    );
    let out = project.run(&db, &["status"], 5);
    assert!(
        out.contains("MIGRATION_FILE_INVALID:default:3") && out.contains("001-accounts.sql:11"),
        "{out}"
    );
}

/// verify runs a `runOnChange` changeset a second time over itself, as
/// apply will at its next edit: a bare `CREATE FUNCTION` fails there, in CI,
/// not in production.
#[test]
fn verify_runs_a_run_on_change_changeset_again_over_itself() {
    let rerunnable = "--liquibase formatted sql\n\n--changeset ana:accounts\nCREATE TABLE accounts (id bigint PRIMARY KEY, active boolean NOT NULL);\n--rollback DROP TABLE accounts;\n\n--changeset bo:account-count runOnChange:true splitStatements:false\nDROP FUNCTION IF EXISTS account_count();\nCREATE FUNCTION account_count() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM accounts $$;\n--rollback DROP FUNCTION account_count();\n\n--changeset bo:active-idx runInTransaction:false runOnChange:true\nCREATE INDEX CONCURRENTLY IF NOT EXISTS accounts_active_idx ON accounts (id) WHERE active;\n--rollback DROP INDEX CONCURRENTLY accounts_active_idx;\n";
    let project = Project::new(&[("migrations/001-accounts.sql", rerunnable)]);
    let db = TestDb::new();
    project.run(&db, &["verify"], 0);
    let once_only = rerunnable.replace("DROP FUNCTION IF EXISTS account_count();\n", "");
    project.write("migrations/001-accounts.sql", once_only.as_bytes());
    let out = project.run(&db, &["verify", "--format", "json"], 2);
    assert!(
        out.contains("\"rerun\"") && out.contains("already exists") && out.contains("\"2\""),
        "{out}"
    );
    // A changeset without runOnChange runs once: it needs no second run.
    let once = once_only.replace(" runOnChange:true splitStatements", " splitStatements");
    project.write("migrations/001-accounts.sql", once.as_bytes());
    project.run(&db, &["verify"], 0);
}

/// Sqitch runs deploy scripts through psql; a psql variable or meta-command
/// is named before anything runs (exit 5), not reported as a syntax error.
#[test]
fn psql_syntax_in_a_script_is_named_before_anything_runs() {
    let db = TestDb::new();
    let project = Project::new(&[
        (
            "migrations/sqitch.plan",
            "%project=shop\n\nschema 2024-01-01T10:00:00Z Ana <a@x> # schema\n",
        ),
        (
            "migrations/deploy/schema.sql",
            "\\set ON_ERROR_STOP 1\nCREATE SCHEMA :\"schema\";\n",
        ),
    ]);
    let out = project.run(&db, &["apply"], 5);
    assert!(
        out.contains("MIGRATION_FILE_INVALID:default:1")
            && out.contains("deploy/schema.sql:1")
            && out.contains("psql syntax"),
        "{out}"
    );
    assert!(db.history("default").is_empty());
}

/// Flyway's order: versioned files by version, then the repeatables by
/// description (`_` read as a space, case-sensitive).
const FLYWAY_ORDER: [&str; 7] = [
    "V1__create_accounts.sql",
    "V2__create_orders.sql",
    "V2_1__add_order_status.sql",
    "R__Functions.sql",
    "R__account_summary.sql",
    "R__report_base.sql",
    "R__reportTotals.sql",
];

/// The fixture's files in Flyway's order, as psql runs them.
fn flyway_in_order() -> Vec<String> {
    FLYWAY_ORDER.iter().map(|f| read("flyway", f)).collect()
}

#[test]
fn flyway_repeatables_run_after_the_versions_in_description_order() {
    round_trip(&Case {
        tool: "flyway",
        layout: "flyway",
        reference: flyway_in_order(),
        migrations: 3,
        reversible: false,
        ignored: &[("README.md", "does not start with a version")],
        never: &[],
    });
}

fn has_column(db: &TestDb, table: &str, column: &str) -> bool {
    db.scalar(&format!(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = '{table}' AND column_name = '{column}'"
    ))
    .as_deref()
        == Some("1")
}

/// (name, checksum, runs) of the recorded repeatables.
fn repeatable_rows(db: &TestDb) -> Vec<(String, String, String)> {
    db.query("SELECT name, checksum, runs::text FROM migsafe.repeatable_migrations ORDER BY name")
        .into_iter()
        .map(|r| {
            (
                r[0].clone().unwrap(),
                r[1].clone().unwrap(),
                r[2].clone().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_changed_repeatable_runs_again_alone_and_a_failing_one_changes_nothing() {
    let project = fixture_project("flyway");
    let db = TestDb::new();
    let out = project.run(&db, &["status"], 0);
    assert!(out.contains("4 repeatable (4 to run)"), "{out}");
    project.run(&db, &["apply", "--skip-backup"], 0);
    let first = repeatable_rows(&db);
    assert_eq!(first.len(), 4, "{first:?}");
    assert!(first.iter().all(|(_, _, runs)| runs == "1"), "{first:?}");
    let out = project.run(&db, &["status"], 0);
    assert!(out.contains("4 repeatable (0 to run)"), "{out}");

    // Edit one view: only it runs again, and its record says so.
    let view = project.path().join("migrations/R__account_summary.sql");
    let text = std::fs::read_to_string(&view).unwrap();
    std::fs::write(
        &view,
        // CREATE OR REPLACE VIEW can only add columns at the end.
        text.replace(
            "coalesce(sum(o.total), 0) AS spent",
            "coalesce(sum(o.total), 0) AS spent,\n       a.created_at",
        )
        .replace(
            "GROUP BY a.id, a.email",
            "GROUP BY a.id, a.email, a.created_at",
        ),
    )
    .unwrap();
    let out = project.run(&db, &["status"], 0);
    assert!(
        out.lines()
            .any(|l| l.contains("changed") && l.contains("R__account_summary")),
        "{out}"
    );
    let out = project.run(&db, &["plan"], 0);
    assert!(out.contains("R__account_summary"), "{out}");
    assert!(!out.contains("R__report_base"), "{out}");
    let out = project.run(&db, &["apply", "--skip-backup"], 0);
    assert!(out.contains("R__account_summary"), "{out}");
    assert!(
        !out.contains("R__report_base"),
        "only the changed one runs: {out}"
    );
    assert!(has_column(&db, "account_summary", "created_at"));
    let second = repeatable_rows(&db);
    let runs: Vec<&str> = second.iter().map(|(_, _, r)| r.as_str()).collect();
    // Ordered by name: Functions, account_summary, reportTotals, report_base.
    assert_eq!(runs, ["1", "2", "1", "1"], "{second:?}");

    // A new versioned migration and an edited repeatable: the version first.
    std::fs::write(
        project.path().join("migrations/V3__order_notes.sql"),
        "ALTER TABLE orders ADD COLUMN notes text;\n",
    )
    .unwrap();
    let base = project.path().join("migrations/R__report_base.sql");
    std::fs::write(
        &base,
        "CREATE OR REPLACE VIEW report_base AS\nSELECT o.id, o.account_id, o.total, o.status, o.notes FROM orders o;\n",
    )
    .unwrap();
    let out = project.run(&db, &["apply", "--skip-backup", "--format", "json"], 0);
    let v3 = out.find("\"3\"").expect(&out);
    let base_at = out.find("R__report_base").expect(&out);
    assert!(v3 < base_at, "V3 runs before the repeatable: {out}");

    // --steps that leaves a version pending runs no repeatable.
    std::fs::write(
        project.path().join("migrations/V4__a.sql"),
        "CREATE TABLE a (id int);\n",
    )
    .unwrap();
    std::fs::write(
        project.path().join("migrations/V5__b.sql"),
        "CREATE TABLE b (id int);\n",
    )
    .unwrap();
    std::fs::write(
        &base,
        "CREATE OR REPLACE VIEW report_base AS\nSELECT o.id, o.account_id, o.total, o.status, o.notes, 1 AS one FROM orders o;\n",
    )
    .unwrap();
    let out = project.run(&db, &["apply", "--skip-backup", "--steps", "1"], 0);
    assert!(!out.contains("R__report_base"), "{out}");
    assert!(!has_column(&db, "report_base", "one"));
    project.run(&db, &["apply", "--skip-backup"], 0);
    assert!(has_column(&db, "report_base", "one"));

    // A repeatable that fails rolls back whole: view and record unchanged,
    // and it is still to run.
    let before = repeatable_rows(&db);
    std::fs::write(
        &view,
        "CREATE OR REPLACE VIEW account_summary AS SELECT 1 AS id;\nSELECT no_such_column FROM accounts;\n",
    )
    .unwrap();
    let out = project.run(&db, &["apply", "--skip-backup"], 2);
    assert!(
        out.contains("MIGRATION_FAILED:default:R__account_summary"),
        "{out}"
    );
    assert_eq!(repeatable_rows(&db), before);
    assert!(has_column(&db, "account_summary", "created_at"));
    let out = project.run(&db, &["status"], 0);
    assert!(out.contains("(1 to run)"), "{out}");
}

#[test]
fn a_repeatable_that_cannot_run_twice_fails_verify_and_no_transaction_is_refused() {
    let project = fixture_project("flyway");
    // `CREATE VIEW` without `OR REPLACE`: fine the first time, and fails at
    // the next edit, in production.
    std::fs::write(
        project.path().join("migrations/R__report_base.sql"),
        "CREATE VIEW report_base AS\nSELECT o.id, o.account_id, o.total, o.status FROM orders o;\n",
    )
    .unwrap();
    let db = TestDb::new();
    // A script that fails in verify exits 2, as it would in apply.
    let out = project.run(&db, &["verify", "--format", "json"], 2);
    assert!(out.contains("\"rerun\""), "{out}");
    assert!(out.contains("already exists"), "{out}");
    let out = project.run(&db, &["verify"], 2);
    assert!(out.contains("run a second time"), "{out}");
    assert!(!out.contains("down script"), "a repeatable has none: {out}");

    // Run twice, a bare CREATE INDEX makes a second index: a schema change.
    std::fs::write(
        project.path().join("migrations/R__report_base.sql"),
        "CREATE OR REPLACE VIEW report_base AS\nSELECT o.id, o.account_id, o.total, o.status FROM orders o;\nCREATE INDEX ON orders (total);\n",
    )
    .unwrap();
    let out = project.run(&db, &["verify"], 6);
    assert!(out.contains("changed the schema again"), "{out}");
    assert!(out.contains("R__report_base"), "{out}");

    // A repeatable that needs to run outside a transaction is refused
    // before anything runs.
    std::fs::write(
        project.path().join("migrations/R__report_base.sql"),
        "CREATE OR REPLACE VIEW report_base AS SELECT o.id FROM orders o;\nCREATE INDEX CONCURRENTLY orders_total ON orders (total);\n",
    )
    .unwrap();
    let out = project.run(&db, &["apply", "--skip-backup"], 5);
    assert!(
        out.contains("MIGRATION_TRANSACTION_CONTROL:default:R__report_base"),
        "{out}"
    );
    assert!(!db.exists("accounts"), "nothing ran");
}

#[test]
fn apply_sql_writes_repeatables_that_psql_runs_and_migsafe_then_sees() {
    let project = fixture_project("flyway");
    let (db, reference) = (TestDb::new(), TestDb::new());
    psql_runs(&reference, &flyway_in_order());
    let script = project.run(&db, &["apply", "--sql"], 0);
    assert!(script.contains("repeatable_migrations"), "{script}");
    psql_runs(&db, &[script]);
    assert_eq!(schema_checksum(&db), schema_checksum(&reference));
    assert_eq!(repeatable_rows(&db).len(), 4);
    let out = project.run(&db, &["apply"], 0);
    assert!(out.contains("up to date"), "{out}");
}

#[test]
fn a_flyway_placeholder_is_named_before_anything_runs() {
    let project = fixture_project("flyway");
    // Inside a function body it would parse, run, and be wrong at call time.
    std::fs::write(
        project.path().join("migrations/V3__count.sql"),
        "CREATE FUNCTION order_count() RETURNS bigint LANGUAGE sql AS $$\n    SELECT count(*) FROM ${flyway:defaultSchema}.orders\n$$;\n",
    )
    .unwrap();
    let db = TestDb::new();
    let out = project.run(&db, &["apply", "--skip-backup"], 5);
    assert!(out.contains("MIGRATION_FILE_INVALID:default:3"), "{out}");
    assert!(out.contains("V3__count.sql:2"), "{out}");
    assert!(out.contains("${flyway:defaultSchema}"), "{out}");
    assert!(!db.exists("accounts"), "nothing ran");
}

#[test]
fn flyway_files_in_subfolders_are_read_as_flyway_scans_them() {
    let project = fixture_project("flyway");
    let migrations = project.path().join("migrations");
    for (file, folder) in [
        ("R__report_base.sql", "views/reports"),
        ("R__reportTotals.sql", "views"),
        ("V2_1__add_order_status.sql", "v2"),
    ] {
        std::fs::create_dir_all(migrations.join(folder)).unwrap();
        std::fs::rename(migrations.join(file), migrations.join(folder).join(file)).unwrap();
    }
    std::fs::write(migrations.join("views/notes.txt"), "not a migration").unwrap();
    let (db, reference) = (TestDb::new(), TestDb::new());
    psql_runs(&reference, &flyway_in_order());
    let out = project.run(&db, &["status", "-v"], 0);
    assert!(
        out.contains("3 pending") && out.contains("4 repeatable"),
        "{out}"
    );
    project.run(&db, &["apply", "--skip-backup"], 0);
    assert_eq!(schema_checksum(&db), schema_checksum(&reference));

    // One repeatable in two folders: Flyway refuses it, and so does migsafe.
    std::fs::copy(
        migrations.join("views/reportTotals.sql".replace("reportTotals", "R__reportTotals")),
        migrations.join("v2/R__reportTotals.sql"),
    )
    .unwrap();
    let out = project.run(&db, &["status"], 5);
    assert!(
        out.contains("MIGRATION_VERSION_DUPLICATE:default:R__reportTotals"),
        "{out}"
    );
    std::fs::remove_file(migrations.join("v2/R__reportTotals.sql")).unwrap();

    // In a folder as at the top: a script's .sql.conf is read, a callback
    // and a lowercase name are errors, not silently skipped.
    std::fs::write(
        migrations.join("v2/V3__notes.sql"),
        "CREATE TABLE notes (id int);\n",
    )
    .unwrap();
    std::fs::write(
        migrations.join("v2/V3__notes.sql.conf"),
        "shouldExecute=false\n",
    )
    .unwrap();
    let out = project.run(&db, &["apply", "--skip-backup"], 5);
    assert!(out.contains("shouldExecute"), "{out}");
    assert!(!db.exists("notes"));
    std::fs::remove_file(migrations.join("v2/V3__notes.sql.conf")).unwrap();
    for misnamed in ["views/afterMigrate.sql", "v2/v4__lower.sql"] {
        std::fs::write(migrations.join(misnamed), "SELECT 1;\n").unwrap();
        let out = project.run(&db, &["status"], 5);
        let file = misnamed.rsplit('/').next().unwrap();
        assert!(out.contains(file), "{misnamed}: {out}");
        std::fs::remove_file(migrations.join(misnamed)).unwrap();
    }
}

#[test]
fn an_older_release_does_not_put_back_its_older_repeatables() {
    let project = fixture_project("flyway");
    let migrations = project.path().join("migrations");
    let view = migrations.join("R__account_summary.sql");
    let older = std::fs::read_to_string(&view).unwrap();
    // The newer release: V3 and a new version of the view.
    std::fs::write(
        migrations.join("V3__notes.sql"),
        "ALTER TABLE accounts ADD COLUMN notes text;\n",
    )
    .unwrap();
    std::fs::write(
        &view,
        older
            .replace(
                "coalesce(sum(o.total), 0) AS spent",
                "coalesce(sum(o.total), 0) AS spent,\n       a.notes",
            )
            .replace("GROUP BY a.id, a.email", "GROUP BY a.id, a.email, a.notes"),
    )
    .unwrap();
    let db = TestDb::new();
    project.run(&db, &["apply", "--skip-backup"], 0);
    // The previous release starts again: no V3, the older view.
    std::fs::remove_file(migrations.join("V3__notes.sql")).unwrap();
    std::fs::write(&view, older).unwrap();
    let out = project.run(&db, &["status"], 0);
    assert!(out.contains("wait: a newer release"), "{out}");
    let out = project.run(&db, &["apply", "--skip-backup"], 0);
    assert!(!out.contains("R__account_summary"), "{out}");
    assert!(
        has_column(&db, "account_summary", "notes"),
        "the newer view stays"
    );
}

#[test]
fn a_failure_after_some_migrations_committed_says_so_in_json() {
    let project = fixture_project("flyway");
    std::fs::write(
        project.path().join("migrations/R__report_base.sql"),
        "SELECT no_such_column FROM orders;\n",
    )
    .unwrap();
    let db = TestDb::new();
    let out = project.run(&db, &["apply", "--skip-backup", "--format", "json"], 2);
    let start = out.find('{').unwrap();
    let doc: serde_json::Value =
        serde_json::from_str(&out[start..=out.rfind('}').unwrap()]).expect(&out);
    assert_eq!(doc["error"]["exit_code"], 2, "{out}");
    let committed: Vec<&str> = doc["committed"][0]["versions"]
        .as_array()
        .expect(&out)
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    // The versions and the repeatables before the failing one landed.
    assert_eq!(
        committed,
        ["1", "2", "2.1", "R__Functions", "R__account_summary"],
        "{out}"
    );
}

#[test]
fn flyway_script_configuration_is_honoured_and_callbacks_are_named() {
    let project = fixture_project("flyway");
    let migrations = project.path().join("migrations");
    let write = |name: &str, text: &str| std::fs::write(migrations.join(name), text).unwrap();
    write(
        "V3__settings.sql",
        "CREATE TABLE settings (key text PRIMARY KEY, value text);\n",
    );
    write(
        "V3__settings.sql.conf",
        "# as Flyway reads it\nexecuteInTransaction=false\n",
    );
    write(
        "V4__template.sql",
        "INSERT INTO settings VALUES ('greeting', 'Hello ${name}');\n",
    );
    write("V4__template.sql.conf", "placeholderReplacement=false\n");
    let db = TestDb::new();
    let out = project.run(&db, &["status"], 0);
    let v3 = out.lines().find(|l| l.contains("settings")).expect(&out);
    assert!(v3.contains("no-transaction"), "{out}");
    project.run(&db, &["apply", "--skip-backup"], 0);
    assert_eq!(
        db.scalar("SELECT value FROM settings").as_deref(),
        Some("Hello ${name}"),
        "placeholderReplacement=false: the text is meant literally"
    );

    // A setting migsafe cannot honour refuses the script before it runs.
    write("V5__prod_only.sql", "CREATE TABLE prod_only (id int);\n");
    write(
        "V5__prod_only.sql.conf",
        "shouldExecute=${environment}==prod\n",
    );
    let out = project.run(&db, &["apply", "--skip-backup"], 5);
    assert!(out.contains("MIGRATION_FILE_INVALID:default:5"), "{out}");
    assert!(out.contains("shouldExecute"), "{out}");
    assert!(!db.exists("prod_only"));
    std::fs::remove_file(migrations.join("V5__prod_only.sql.conf")).unwrap();

    // A callback would silently stop running: named instead.
    write(
        "afterMigrate.sql",
        "GRANT SELECT ON ALL TABLES IN SCHEMA public TO PUBLIC;\n",
    );
    let out = project.run(&db, &["status"], 5);
    assert!(
        out.contains("afterMigrate.sql") && out.contains("Flyway callback"),
        "{out}"
    );
}

/// Flyway creates the schemas its configuration names and runs each
/// migration with the default one first in `search_path`, so that
/// unqualified names land there; migsafe does the same (an adopted
/// history goes on where Flyway put it), in `apply --sql` too.
#[test]
fn a_flyway_project_with_schemas_puts_unqualified_objects_in_the_default_one() {
    let project = Project::new(&[
        ("flyway.conf", "flyway.schemas=app,audit\n"),
        (
            "migrations/V1__init.sql",
            "CREATE TABLE accounts (id bigint PRIMARY KEY);\n",
        ),
        (
            "migrations/V2__notes.sql",
            "CREATE TABLE notes (account_id bigint REFERENCES accounts (id));\n",
        ),
        (
            "migrations/V3__index.sql",
            "CREATE INDEX CONCURRENTLY notes_account_id ON notes (account_id);\n",
        ),
    ]);
    let db = TestDb::new();
    let sql = project.run(&db, &["apply", "--sql"], 0);
    assert!(
        sql.contains("CREATE SCHEMA \"audit\"") && sql.contains("set_config('search_path', CASE"),
        "{sql}"
    );
    project.run(&db, &["apply", "--skip-backup"], 0);
    assert_eq!(db.history("default").len(), 3);
    for (schema, table) in [("app", "accounts"), ("app", "notes")] {
        assert_eq!(
            db.scalar(&format!(
                "SELECT to_regclass('{schema}.{table}') IS NOT NULL"
            )),
            Some("t".into()),
            "{schema}.{table}"
        );
    }
    assert_eq!(
        db.scalar("SELECT to_regclass('public.accounts') IS NULL"),
        Some("t".into())
    );
    assert_eq!(
        db.scalar("SELECT to_regclass('app.notes_account_id') IS NOT NULL"),
        Some("t".into())
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'audit'"),
        Some("1".into())
    );

    // verify: the schemas Flyway creates are there from the start, so no
    // undo script is expected to drop them.
    let undone = Project::new(&[
        ("flyway.conf", "flyway.schemas=app\n"),
        ("migrations/V1__t.sql", "CREATE TABLE t (id int);\n"),
        ("migrations/U1__t.sql", "DROP TABLE t;\n"),
        ("migrations/V2__u.sql", "CREATE TABLE u (id int);\n"),
        ("migrations/U2__u.sql", "DROP TABLE u;\n"),
    ]);
    let scratch = common::sandbox().url("postgres");
    undone.run(&db, &["verify", "--scratch-url", &scratch], 0);

    // createSchemas=false: the migrations create the schema; the one after
    // that runs in it, as with Flyway (which looks before each migration).
    let own = Project::new(&[
        (
            "flyway.conf",
            "flyway.schemas=own\nflyway.createSchemas=false\n",
        ),
        (
            "migrations/V1__schema.sql",
            "CREATE TABLE before_schema (id int);\nCREATE SCHEMA own;\n",
        ),
        (
            "migrations/V2__table.sql",
            "CREATE TABLE after_schema (id int);\n",
        ),
    ]);
    let db = TestDb::new();
    own.run(&db, &["apply", "--skip-backup"], 0);
    assert_eq!(
        db.scalar("SELECT to_regclass('public.before_schema') IS NOT NULL"),
        Some("t".into())
    );
    assert_eq!(
        db.scalar("SELECT to_regclass('own.after_schema') IS NOT NULL"),
        Some("t".into())
    );
}

/// A Flyway 10 project keeps its settings in flyway.toml: placeholders
/// under `[flyway.placeholders]`, the selected environment's over them,
/// the developer's flyway.user.toml over the project's, `${env.NAME}`
/// resolved, the default schema from `schemas`.
#[test]
fn flyway_toml_gives_the_placeholders_of_the_chosen_environment() {
    let project = Project::new(&[
        (
            "flyway.toml",
            "[environments.default]\nurl = \"jdbc:postgresql://localhost/app\"\nschemas = [\"shop\"]\n\n[environments.staging]\nurl = \"${vault.staging_url}\"\nschemas = [\"${env.MIGSAFE_TEST_SCHEMA}\"]\n\n[environments.staging.flyway.placeholders]\nregion = \"staging-region\"\n\n[flyway]\nlocations = [\"filesystem:migrations\"]\n\n[flyway.placeholders]\nregion = \"eu\"\nowner = \"team\"\nretries = 3\n",
        ),
        (
            "flyway.user.toml",
            "[flyway.placeholders]\nowner = \"me\"\n",
        ),
        (
            "migrations/V1__init.sql",
            "CREATE SCHEMA IF NOT EXISTS ${flyway:defaultSchema};\nCREATE TABLE ${flyway:defaultSchema}.accounts (id bigint PRIMARY KEY, region text DEFAULT '${region}', retries int DEFAULT ${retries});\nCOMMENT ON TABLE ${flyway:defaultSchema}.accounts IS 'by ${owner}';\n",
        ),
    ]);
    let db = TestDb::new();
    project.run(&db, &["apply", "--skip-backup"], 0);
    assert_eq!(
        db.scalar("SELECT column_default FROM information_schema.columns WHERE table_schema = 'shop' AND column_name = 'region'"),
        Some("'eu'::text".into())
    );
    assert_eq!(
        db.scalar("SELECT obj_description('shop.accounts'::regclass)"),
        Some("by me".into())
    );

    // Another database, the staging environment chosen as Flyway chooses it.
    let staging = TestDb::new();
    let output = project
        .migsafe(&staging)
        .env("flyway_environment", "staging")
        .env("MIGSAFE_TEST_SCHEMA", "stage")
        .args(["apply", "--skip-backup"])
        .output()
        .unwrap();
    common::expect_exit(&output, 0);
    assert_eq!(
        staging.scalar("SELECT column_default FROM information_schema.columns WHERE table_schema = 'stage' AND column_name = 'region'"),
        Some("'staging-region'::text".into())
    );

    // A placeholder from a resolver migsafe does not read has no value:
    // a script that needs it is refused, named; the environment gives it.
    project.write(
        "flyway.user.toml",
        b"[flyway.placeholders]\nowner = \"${localSecret.owner}\"\n",
    );
    let third = TestDb::new();
    let out = project.run(&third, &["apply", "--skip-backup"], 5);
    assert!(
        out.contains("V1__init.sql:3:") && out.contains("`${owner}`"),
        "{out}"
    );
    let output = project
        .migsafe(&third)
        .env("FLYWAY_PLACEHOLDERS_OWNER", "ops")
        .args(["apply", "--skip-backup"])
        .output()
        .unwrap();
    common::expect_exit(&output, 0);
    assert_eq!(
        third.scalar("SELECT obj_description('shop.accounts'::regclass)"),
        Some("by ops".into())
    );

    // An environment that flyway.toml does not define is refused.
    let output = project
        .migsafe(&third)
        .env("flyway_environment", "stagign")
        .args(["status"])
        .output()
        .unwrap();
    let out = common::expect_exit(&output, 5);
    assert!(out.contains("names the environment `stagign`"), "{out}");
}

/// Flyway placeholders get their values as Flyway gives them (flyway.conf,
/// then migsafe.toml, then `FLYWAY_PLACEHOLDERS_*`), built-ins included,
/// everywhere in the text (a function body too); checksums stay those of
/// the files as written; a secret's value never shows.
#[test]
fn flyway_placeholders_are_replaced_as_flyway_replaces_them() {
    let project = Project::new(&[
        (
            "flyway.conf",
            "flyway.url=jdbc:postgresql://elsewhere/app\nflyway.schemas=shop,other\nflyway.placeholders.region=us\nflyway.placeholders.owner=flyway_conf\n",
        ),
        ("migsafe.toml", "[placeholders]\nregion = \"eu\"\n"),
        (
            "migrations/V1__init.sql",
            "CREATE SCHEMA IF NOT EXISTS ${flyway:defaultSchema};\nCREATE TABLE ${flyway:defaultSchema}.accounts (id bigint PRIMARY KEY, region text DEFAULT '${region}');\nCOMMENT ON TABLE ${flyway:defaultSchema}.accounts IS '${flyway:filename} on ${flyway:database} by ${Owner}';\n",
        ),
        (
            "migrations/R__region.sql",
            "CREATE OR REPLACE VIEW shop.region_now AS SELECT '${region}'::text AS region;\n",
        ),
        (
            "migrations/V2__count.sql",
            "CREATE FUNCTION ${flyway:defaultSchema}.account_count() RETURNS bigint LANGUAGE sql AS $$\n    SELECT count(*) FROM ${flyway:defaultSchema}.accounts WHERE region = '${region}'\n$$;\n",
        ),
    ]);
    let db = TestDb::new();
    let lint = project.run(&db, &["lint"], 0);
    assert!(!lint.contains("syntax-error"), "{lint}");
    // A variable that is not UTF-8 in the environment is not a crash.
    let status = project
        .migsafe(&db)
        .env(
            "MIGSAFE_TEST_JUNK",
            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"\xff\xfe"),
        )
        .args(["status"])
        .output()
        .unwrap();
    common::expect_exit(&status, 0);
    // A file of the namespace, named as CI names changed files.
    let lint = project.run(&db, &["lint", "migrations/V1__init.sql"], 0);
    assert!(!lint.contains("syntax-error"), "{lint}");
    project.run(&db, &["apply", "--skip-backup"], 0);
    assert_eq!(db.history("default").len(), 2);
    assert_eq!(
        db.scalar("SELECT column_default FROM information_schema.columns WHERE table_schema = 'shop' AND column_name = 'region'"),
        Some("'eu'::text".into())
    );
    let database = db.scalar("SELECT current_database()").unwrap();
    assert_eq!(
        db.scalar("SELECT obj_description('shop.accounts'::regclass)"),
        Some(format!("V1__init.sql on {database} by flyway_conf"))
    );
    db.query("INSERT INTO shop.accounts VALUES (1, 'eu'), (2, 'us')");
    assert_eq!(db.scalar("SELECT shop.account_count()"), Some("1".into()));

    assert_eq!(
        db.scalar("SELECT region FROM shop.region_now"),
        Some("eu".into())
    );

    // Another value later: the applied versioned files are as written,
    // unchanged; the repeatable is checksummed as replaced (Flyway's way),
    // so it runs again with the new value.
    project.write("migsafe.toml", b"[placeholders]\nregion = \"ap\"\n");
    let status = project.run(&db, &["status"], 0);
    assert!(
        !status.contains("EDITED") && !status.contains("MISMATCH"),
        "{status}"
    );
    project.run(&db, &["apply", "--skip-backup"], 0);
    assert_eq!(
        db.scalar("SELECT region FROM shop.region_now"),
        Some("ap".into())
    );

    // From the environment, over the files; a secret's value never shows,
    // even in the server's own message about it.
    project.write("migrations/V3__token.sql", b"SELECT '${apiToken}'::json;\n");
    let with_token = |args: &[&str]| {
        project
            .migsafe(&db)
            .env("FLYWAY_PLACEHOLDERS_APITOKEN", "S3cr3tPw!9c2e${x}")
            .args(args)
            .output()
            .unwrap()
    };
    // A script to print would show the secret, or mask it and be wrong.
    let printed = with_token(&["apply", "--sql"]);
    let text = common::expect_exit(&printed, 5);
    assert!(text.contains("the script would hold a secret"), "{text}");
    common::assert_no_secret(&project, &printed, "S3cr3tPw!9c2e${x}");
    let output = with_token(&["apply", "--skip-backup"]);
    let text = common::expect_exit(&output, 2);
    // The server quotes part of it (`Token "S3cr3tPw" is invalid`).
    assert!(
        text.contains("invalid input syntax for type json"),
        "{text}"
    );
    assert!(text.contains("Token \"****"), "{text}");
    common::assert_no_secret(&project, &output, "S3cr3t");
    // Without a value: refused before anything runs (verify included),
    // every one named, saying how to give them one.
    project.write(
        "migrations/V3__token.sql",
        b"SELECT '${apiToken}'::integer;\nSELECT '${flyway:nothing}';\n",
    );
    let text = project.run(&db, &["verify"], 5);
    assert!(
        text.contains("V3__token.sql:1:9: `${apiToken}`\n  ")
            && text.contains("V3__token.sql:2:9: `${flyway:nothing}`"),
        "{text}"
    );
    let lint = project
        .migsafe(&db)
        .args(["lint", "migrations/V3__token.sql"])
        .output()
        .unwrap();
    let lint = common::text(&lint);
    assert!(
        lint.contains("V3__token.sql:2:9: error[placeholder-without-value]: the Flyway placeholder `${flyway:nothing}` has no value"),
        "{lint}"
    );
    assert!(!lint.contains("syntax-error"), "{lint}");
    let text = project.run(&db, &["apply", "--skip-backup"], 5);
    assert!(
        text.contains(
            "Flyway placeholder(s) without a value, which would reach the server unreplaced:\n"
        ) && text.contains("V3__token.sql:1:9: `${apiToken}`"),
        "{text}"
    );
    assert!(text.contains("FLYWAY_PLACEHOLDERS_<NAME>"), "{text}");
}
