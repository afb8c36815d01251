//! Migration histories as real teams write them apply as they are: tables
//! created and renamed in the same plan, up and down paired by version,
//! scripts with their own BEGIN/COMMIT, CONCURRENTLY without a directive,
//! up-only histories, and directories in no layout migsafe reads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Project, TestDb};

#[test]
fn relations_created_in_the_plan_in_every_form_and_through_renames_are_new() {
    let db = TestDb::new();
    let project = Project::new(&[
        (
            "migrations/0001_packages.up.sql",
            "CREATE TABLE packages (id bigint PRIMARY KEY, name text);\n",
        ),
        (
            "migrations/0002_rename.up.sql",
            "ALTER TABLE packages RENAME TO crates;\n",
        ),
        (
            "migrations/0003_index.up.sql",
            "CREATE INDEX crates_name_idx ON crates (name);\n",
        ),
        (
            "migrations/0004_views.up.sql",
            "CREATE MATERIALIZED VIEW crate_names AS SELECT name FROM crates;\nCREATE INDEX crate_names_idx ON crate_names (name);\nCREATE TABLE crates_copy AS SELECT * FROM crates;\nCREATE INDEX crates_copy_idx ON crates_copy (name);\nSELECT * INTO crates_old FROM crates;\nCREATE INDEX crates_old_idx ON crates_old (name);\n",
        ),
        (
            "migrations/0005_partitions.up.sql",
            "CREATE TABLE events (id bigint, at date) PARTITION BY RANGE (at);\nCREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');\nCREATE INDEX events_2026_at ON events_2026 (at);\nCREATE TABLE crates_like (LIKE crates INCLUDING ALL);\nCREATE INDEX crates_like_idx ON crates_like (name);\n",
        ),
    ]);
    let out = project.run(&db, &["plan"], 0);
    assert!(!out.contains("require-concurrent-index"), "{out}");
    project.run(&db, &["apply"], 0);
    project.run(&db, &["apply"], 0);
}

#[test]
fn the_same_statement_on_a_live_table_with_rows_still_stops_apply() {
    let db = TestDb::new();
    let project = Project::new(&[
        ("migsafe.toml", "[lint]\nlarge_table = \"8kB\"\n"),
        (
            "migrations/0001_users.up.sql",
            "CREATE TABLE users (id bigint PRIMARY KEY, name text);\n",
        ),
    ]);
    project.run(&db, &["apply", "--skip-backup"], 0);
    db.query(
        "INSERT INTO users SELECT g, 'n' || g FROM generate_series(1, 5000) g; ANALYZE users;",
    );
    // Renamed in the plan, it is still the live table with its rows.
    project.write(
        "migrations/0002_rename.up.sql",
        b"ALTER TABLE users RENAME TO members;\n",
    );
    project.write(
        "migrations/0003_index.up.sql",
        b"CREATE INDEX members_name_idx ON members (name);\n",
    );
    let out = project.run(&db, &["plan"], 1);
    assert!(out.contains("LINT_ERROR:default:0003"), "{out}");
    assert!(out.contains("require-concurrent-index"), "{out}");
}

#[test]
fn up_and_down_pair_by_version_as_golang_migrate_does() {
    let db = TestDb::new();
    let project = Project::new(&[
        (
            "migrations/30_add_magic_metadata.up.sql",
            "CREATE TABLE magic (id int);\n",
        ),
        (
            "migrations/30_drop_magic_metadata.down.sql",
            "DROP TABLE magic;\n",
        ),
    ]);
    let out = project.run(&db, &["status", "-v"], 0);
    assert!(
        out.contains("30 pairs by version with 30_drop_magic_metadata.down.sql"),
        "{out}"
    );
    project.run(&db, &["apply", "--skip-backup"], 0);
    assert!(db.exists("magic"));
    project.run(&db, &["rollback", "--skip-backup"], 0);
    assert!(!db.exists("magic"));
}

#[test]
fn a_script_wrapped_in_begin_commit_runs_in_migsafes_transaction() {
    let db = TestDb::new();
    let project = Project::new(&[(
        "migrations/0001_wrapped.up.sql",
        "BEGIN;\nCREATE TABLE a (id int);\nINSERT INTO a VALUES (1);\nCOMMIT;\n",
    )]);
    let out = project.run(&db, &["plan"], 0);
    assert!(
        out.contains("transaction (inferred: its own BEGIN … COMMIT"),
        "{out}"
    );
    project.run(&db, &["apply", "--skip-backup"], 0);
    assert_eq!(db.scalar("SELECT count(*) FROM a").as_deref(), Some("1"));
    // A failing wrapped script leaves nothing: its body and the history row
    // were one transaction.
    project.write(
        "migrations/0002_wrapped_bad.up.sql",
        b"BEGIN;\nCREATE TABLE b (id int);\nINSERT INTO nope VALUES (1);\nCOMMIT;\n",
    );
    let out = project.run(&db, &["apply", "--skip-backup"], 2);
    assert!(out.contains("MIGRATION_FAILED:default:0002"), "{out}");
    assert!(out.contains("0002_wrapped_bad.up.sql:3:"), "{out}");
    assert!(!db.exists("b"));
    assert_eq!(db.history("default").len(), 1);
}

#[test]
fn several_transaction_blocks_or_concurrently_run_outside_a_transaction_without_a_directive() {
    let db = TestDb::new();
    let project = Project::new(&[
        (
            "migrations/0001_blocks.up.sql",
            "BEGIN;\nCREATE TABLE a (id int);\nCOMMIT;\nBEGIN;\nCREATE TABLE b (id int);\nCOMMIT;\n",
        ),
        (
            "migrations/0002_index.up.sql",
            "CREATE INDEX CONCURRENTLY a_id_idx ON a (id);\n",
        ),
    ]);
    let out = project.run(&db, &["plan"], 0);
    assert!(
        out.contains("no-transaction (inferred: its own BEGIN/COMMIT blocks)"),
        "{out}"
    );
    assert!(
        out.contains("no-transaction (inferred: CREATE INDEX CONCURRENTLY)"),
        "{out}"
    );
    project.run(&db, &["apply", "--skip-backup"], 0);
    assert!(db.exists("a") && db.exists("b") && db.exists("a_id_idx"));
    assert_eq!(
        db.history("default"),
        vec![("0001".to_string(), false), ("0002".to_string(), false)]
    );
}

#[test]
fn a_history_without_any_down_script_is_forward_only() {
    let db = TestDb::new();
    let project = Project::new(&[
        ("migrations/0001_a.sql", "CREATE TABLE a (id int);\n"),
        ("migrations/0002_b.up.sql", "CREATE TABLE b (id int);\n"),
    ]);
    project.run(&db, &["apply", "--skip-backup"], 0);
    let out = project.run(&db, &["status"], 0);
    assert!(out.contains("forward-only"), "{out}");
    let out = project.run(&db, &["rollback", "--skip-backup"], 4);
    assert!(out.contains("DOWN_SCRIPT_MISSING"), "{out}");
}

#[test]
fn a_directory_in_no_known_layout_is_an_error_not_an_empty_success() {
    let db = TestDb::new();
    let project = Project::new(&[
        (
            "migrations/create_users.sql",
            "CREATE TABLE users (id int);\n",
        ),
        ("migrations/sqitch.plan", "%project=x\n"),
        ("migrations/README.md", "notes\n"),
    ]);
    for command in [&["status"][..], &["apply", "--skip-backup"][..]] {
        let out = project.run(&db, command, 5);
        assert!(out.contains("MIGRATION_LAYOUT_UNKNOWN:default"), "{out}");
        assert!(out.contains("create_users.sql"), "{out}");
    }
    // A fresh directory (nothing, or only notes) is simply empty.
    let empty = Project::new(&[("migrations/README.md", "notes\n")]);
    empty.run(&db, &["status"], 0);
}

#[test]
fn a_failure_inside_a_scripts_own_block_counts_what_committed_and_frees_the_session() {
    let db = TestDb::new();
    let project = Project::new(&[(
        "migrations/0001_base.up.sql",
        "CREATE TABLE base (id int PRIMARY KEY);\n",
    )]);
    project.run(&db, &["apply", "--skip-backup"], 0);
    project.write(
        "migrations/0002_blocks.up.sql",
        b"BEGIN;\nCREATE TABLE mb_a (id int);\nINSERT INTO mb_a VALUES (1);\nCOMMIT;\nBEGIN;\nCREATE TABLE mb_b (id int);\nINSERT INTO base VALUES (5), (5);\nCOMMIT;\n",
    );
    let out = project.run(&db, &["apply", "--skip-backup"], 2);
    assert!(
        out.contains("statements 1–4 of 8 ran and are committed"),
        "{out}"
    );
    assert!(
        out.contains("statements 5–7 were in the script's own BEGIN block"),
        "{out}"
    );
    assert!(!out.contains("could not release"), "{out}");
    assert!(db.exists("mb_a") && !db.exists("mb_b"));
    assert_eq!(
        db.history("default").last(),
        Some(&("0002".to_string(), true))
    );
}

#[test]
fn a_script_that_opens_a_transaction_and_never_ends_it_is_refused_before_anything_runs() {
    let db = TestDb::new();
    let project = Project::new(&[(
        "migrations/0001_unterminated.up.sql",
        "CREATE TABLE base (id int);\nCREATE INDEX CONCURRENTLY base_id ON base (id);\nBEGIN;\nCREATE TABLE forgot (id int);\n",
    )]);
    let out = project.run(&db, &["plan"], 1);
    assert!(
        out.contains("MIGRATION_TRANSACTION_CONTROL:default:0001"),
        "{out}"
    );
    let out = project.run(&db, &["apply", "--skip-backup"], 5);
    assert!(
        out.contains("0001_unterminated.up.sql:3: the script opens a transaction"),
        "{out}"
    );
    assert!(!db.exists("base"));
    assert!(db.history("default").is_empty());
}
