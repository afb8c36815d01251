//! `migsafe verify` against real PostgreSQL: down scripts that forget
//! something are caught and named, a clean corpus passes, scratch databases
//! never outlive the run, production is never touched.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Project, TestDb, expect_exit, sandbox};

fn scratch_url() -> String {
    sandbox().url("postgres")
}

/// Tests that count the scratch databases on the shared server take turns,
/// so that one test's databases are not counted by another.
static SCRATCH_SERVER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn scratch_server() -> std::sync::MutexGuard<'static, ()> {
    SCRATCH_SERVER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn verify_dbs() -> usize {
    common::query(
        &scratch_url(),
        "SELECT count(*) FROM pg_database WHERE datname LIKE 'migsafe_verify_%'",
    )[0][0]
        .as_deref()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn each_forgotten_undo_is_caught_and_named() {
    let _turn = scratch_server();
    let project = Project::new(&[
        (
            "migrations/0001_base.up.sql",
            "CREATE TABLE t (id int PRIMARY KEY, name text);\nCREATE TYPE color AS ENUM ('red');\nDO $$ BEGIN CREATE ROLE verify_reader; EXCEPTION WHEN duplicate_object THEN NULL; END $$;",
        ),
        (
            "migrations/0001_base.down.sql",
            "DROP TYPE color;\nDROP TABLE t;",
        ),
        (
            "migrations/0002_index.up.sql",
            "CREATE INDEX t_name ON t (name);",
        ),
        (
            "migrations/0002_index.down.sql",
            "SELECT 1; -- forgot DROP INDEX t_name",
        ),
        (
            "migrations/0003_default.up.sql",
            "ALTER TABLE t ALTER COLUMN name SET DEFAULT 'anon';",
        ),
        (
            "migrations/0003_default.down.sql",
            "SELECT 1; -- forgot DROP DEFAULT",
        ),
        (
            "migrations/0004_function.up.sql",
            "CREATE FUNCTION shout(x text) RETURNS text LANGUAGE sql AS $$ SELECT upper(x) $$;",
        ),
        (
            "migrations/0004_function.down.sql",
            "SELECT 1; -- forgot DROP FUNCTION",
        ),
        (
            "migrations/0005_enum.up.sql",
            "ALTER TYPE color ADD VALUE 'blue';",
        ),
        (
            "migrations/0005_enum.down.sql",
            "SELECT 1; -- an enum value cannot be dropped",
        ),
        (
            "migrations/0006_sequence.up.sql",
            "CREATE SEQUENCE ticket START 100;",
        ),
        (
            "migrations/0006_sequence.down.sql",
            "SELECT 1; -- forgot DROP SEQUENCE",
        ),
        (
            "migrations/0007_grant.up.sql",
            "GRANT SELECT ON t TO verify_reader;",
        ),
        (
            "migrations/0007_grant.down.sql",
            "SELECT 1; -- forgot REVOKE",
        ),
    ]);
    let output = common::migsafe_command()
        .current_dir(project.path())
        .args(["verify", "--stepwise", "--scratch-url", &scratch_url()])
        .output()
        .unwrap();
    let out = expect_exit(&output, 6);
    for (version, object) in [
        ("0002", "+ index public.t_name"),
        ("0003", "~ column public.t.name"),
        ("0004", "+ function public.shout(x text)"),
        ("0005", "~ enum public.color"),
        ("0006", "+ sequence public.ticket"),
        ("0007", "~ table public.t"),
    ] {
        let header = format!("default {version}: its down script did not undo its up script");
        let at = out
            .find(&header)
            .unwrap_or_else(|| panic!("{version} not named:\n{out}"));
        assert!(
            out[at..].contains(object),
            "{version} should name `{object}`:\n{out}"
        );
    }
    assert!(
        !out.contains("default 0001:"),
        "0001 reverses cleanly:\n{out}"
    );
    assert!(!out.contains(sandbox().password()));
    assert_eq!(
        verify_dbs(),
        0,
        "the scratch database is dropped after a mismatch"
    );

    // The full cycle finds it too, for the namespace as a whole; JSON has the details.
    let output = common::migsafe_command()
        .current_dir(project.path())
        .args([
            "verify",
            "--quick",
            "--format",
            "json",
            "--scratch-url",
            &scratch_url(),
        ])
        .output()
        .unwrap();
    expect_exit(&output, 6);
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["result"], "fail");
    assert_eq!(doc["mode"], "quick");
    assert!(!doc["mismatches"].as_array().unwrap().is_empty());
}

/// 0002's down forgets its column; 0001's down drops the whole table, so
/// "all down" ends empty anyway. The default (stepwise) names 0002; `--quick`
/// cannot see it, which is why it is documented as the weaker check.
#[test]
fn the_default_catches_a_forgotten_column_that_a_later_down_hides_and_quick_does_not() {
    let _turn = scratch_server();
    let project = Project::new(&[
        (
            "migrations/0001_table.up.sql",
            "CREATE TABLE accounts (id bigint PRIMARY KEY);",
        ),
        ("migrations/0001_table.down.sql", "DROP TABLE accounts;"),
        (
            "migrations/0002_column.up.sql",
            "ALTER TABLE accounts ADD COLUMN email text;",
        ),
        (
            "migrations/0002_column.down.sql",
            "SELECT 1; -- forgot DROP COLUMN email",
        ),
    ]);
    let run = |args: &[&str], code: i32| {
        expect_exit(
            &common::migsafe_command()
                .current_dir(project.path())
                .args(args)
                .args(["--scratch-url", &scratch_url()])
                .output()
                .unwrap(),
            code,
        )
    };
    let out = run(&["verify"], 6);
    let at = out
        .find("default 0002: its down script did not undo its up script")
        .unwrap_or_else(|| panic!("0002 not named:\n{out}"));
    assert!(out[at..].contains("public.accounts"), "{out}");
    assert!(!out.contains("default 0001:"), "{out}");
    assert!(out.contains("each migration up, down, up"), "{out}");

    // `--stepwise` still works and means the default.
    run(&["verify", "--stepwise"], 6);

    let out = run(&["verify", "--quick"], 0);
    assert!(
        out.contains("quick") && out.contains("still passes"),
        "--quick says what it cannot see:\n{out}"
    );
    assert_eq!(verify_dbs(), 0);
}

#[test]
fn a_clean_corpus_of_fifty_reversible_migrations_passes() {
    let project = Project::new(&[]);
    for i in 1..=50 {
        let (up, down) = match i % 5 {
            0 => (
                format!(
                    "CREATE TABLE c{i} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text DEFAULT 'x', at timestamptz NOT NULL DEFAULT now());"
                ),
                format!("DROP TABLE c{i};"),
            ),
            1 => (
                format!(
                    "CREATE TABLE c{i} (id int PRIMARY KEY);\nCREATE INDEX c{i}_id ON c{i} (id);"
                ),
                format!("DROP TABLE c{i};"),
            ),
            2 => (
                format!(
                    "CREATE TYPE e{i} AS ENUM ('a', 'b');\nCREATE TABLE c{i} (id int, e e{i});"
                ),
                format!("DROP TABLE c{i};\nDROP TYPE e{i};"),
            ),
            3 => (
                format!(
                    "CREATE FUNCTION f{i}(x int) RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN x + {i}; END $$;"
                ),
                format!("DROP FUNCTION f{i}(int);"),
            ),
            _ => (
                format!("CREATE SEQUENCE s{i};\nCREATE VIEW v{i} AS SELECT {i} AS n;"),
                format!("DROP VIEW v{i};\nDROP SEQUENCE s{i};"),
            ),
        };
        project.write(&format!("migrations/{i:04}_m{i}.up.sql"), up.as_bytes());
        project.write(&format!("migrations/{i:04}_m{i}.down.sql"), down.as_bytes());
    }
    let out = expect_exit(
        &common::migsafe_command()
            .current_dir(project.path())
            .arg("verify")
            .output()
            .unwrap(),
        0,
    );
    assert!(
        out.contains("50 migration(s) verified") && out.contains("verify passed"),
        "{out}"
    );
    expect_exit(
        &common::migsafe_command()
            .current_dir(project.path())
            .args(["verify", "--quick"])
            .output()
            .unwrap(),
        0,
    );
    let names: Vec<String> = std::fs::read_dir(project.path().join("logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let count = |prefix: &str| names.iter().filter(|n| n.starts_with(prefix)).count();
    // One verify report and one HTML page (with its JSON) per run.
    assert_eq!(count("verify-report-"), 2, "{names:?}");
    assert_eq!(count("report-"), 2, "{names:?}");
    assert_eq!(count("run-report-"), 2, "{names:?}");
    assert_eq!(names.len(), 6, "{names:?}");
}

#[test]
fn a_failing_script_is_exit_2_with_its_position_and_the_scratch_database_is_dropped() {
    let _turn = scratch_server();
    let project = Project::new(&[
        ("migrations/0001_a.up.sql", "CREATE TABLE a (id int);"),
        ("migrations/0001_a.down.sql", "DROP TABLE a;"),
        ("migrations/0002_b.up.sql", "CREATE TABLE b (id int);"),
        (
            "migrations/0002_b.down.sql",
            "DROP TABLE b;\nDROP TABLE not_there;",
        ),
    ]);
    let out = expect_exit(
        &common::migsafe_command()
            .current_dir(project.path())
            .args(["verify", "--scratch-url", &scratch_url()])
            .output()
            .unwrap(),
        2,
    );
    assert!(out.contains("the down script of 0002 b failed"), "{out}");
    // The server gives no position for DROP TABLE: the file and the object are named.
    assert!(
        out.contains("0002_b.down.sql") && out.contains("\"not_there\""),
        "{out}"
    );
    assert!(out.contains("42P01"), "{out}");
    assert_eq!(verify_dbs(), 0);
}

#[test]
fn an_interrupted_verify_drops_its_scratch_database() {
    let _turn = scratch_server();
    let project = Project::new(&[
        (
            "migrations/0001_slow.up.sql",
            "CREATE TABLE slow (id int);\nSELECT pg_sleep(60);",
        ),
        ("migrations/0001_slow.down.sql", "DROP TABLE slow;"),
    ]);
    let child = std::process::Command::new(common::migsafe_bin())
        .current_dir(project.path())
        .args(["verify", "--scratch-url", &scratch_url()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while common::query(&scratch_url(), "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid() AND query NOT LIKE '%pg_stat_activity%'")[0][0].as_deref() == Some("0") {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(verify_dbs(), 1);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    let out = expect_exit(&output, 2);
    assert!(out.contains("MIGRATION_CANCELLED"), "{out}");
    assert_eq!(
        verify_dbs(),
        0,
        "the scratch database is dropped after Ctrl-C"
    );
}

#[test]
fn over_budget_warns_unless_strict_and_production_is_never_touched() {
    let production = TestDb::new();
    let project = Project::new(&[
        (
            "migsafe.toml",
            "[defaults]\nmigration_time_budget = \"50ms\"\n",
        ),
        (
            "migrations/0001_slowish.up.sql",
            "CREATE TABLE s (id int);\nSELECT pg_sleep(0.1);",
        ),
        ("migrations/0001_slowish.down.sql", "DROP TABLE s;"),
    ]);
    let out = project.run(&production, &["verify"], 0);
    assert!(
        out.contains("over the time budget") && out.contains("passed with warnings"),
        "{out}"
    );
    project.run(&production, &["verify", "--strict"], 6);
    assert!(
        !production.exists("migsafe.schema_migrations") && !production.exists("s"),
        "verify must not touch DATABASE_URL"
    );
}

/// Steps whose up script only creates objects are checked from the DDL
/// record instead of two snapshots; when the down script turns out to touch
/// older objects, the schema before the step is rebuilt and compared, so a
/// leftover is still caught and named, and a faithful down still passes.
#[test]
fn steps_checked_from_the_ddl_record_still_catch_what_the_down_leaves() {
    let project = Project::new(&[
        (
            "migrations/0001_base.up.sql",
            "CREATE TABLE t (id int PRIMARY KEY, a int);",
        ),
        ("migrations/0001_base.down.sql", "DROP TABLE t;"),
        (
            "migrations/0002_table.up.sql",
            "CREATE TABLE u (id int PRIMARY KEY, t_id int REFERENCES t (id));\nCREATE INDEX u_t ON u (t_id);",
        ),
        ("migrations/0002_table.down.sql", "DROP TABLE u;"),
        (
            "migrations/0003_view.up.sql",
            "CREATE VIEW v AS SELECT id FROM t;",
        ),
        (
            "migrations/0003_view.down.sql",
            "DROP VIEW v;\nCOMMENT ON TABLE t IS 'touched, and restored';\nCOMMENT ON TABLE t IS NULL;",
        ),
        ("migrations/0004_index.up.sql", "CREATE INDEX t_a ON t (a);"),
        (
            "migrations/0004_index.down.sql",
            "DROP INDEX t_a;\nALTER TABLE t ALTER COLUMN a SET DEFAULT 7;",
        ),
    ]);
    let out = project
        .migsafe(&TestDb::new())
        .args(["verify", "--stepwise"])
        .output()
        .unwrap();
    let text = expect_exit(&out, 6);
    assert!(text.contains("0004"), "{text}");
    assert!(
        text.contains("column public.t.a"),
        "the default left behind:\n{text}"
    );
    assert!(!text.contains("0002") && !text.contains("0003"), "{text}");

    // Without the leftover, every step passes.
    project.write(
        "migrations/0004_index.down.sql",
        b"DROP INDEX t_a;\nALTER TABLE t ALTER COLUMN a SET DEFAULT 7;\nALTER TABLE t ALTER COLUMN a DROP DEFAULT;",
    );
    project.run(&TestDb::new(), &["verify", "--stepwise"], 0);
}

/// Issue 12: 0001's down leaves its trigger function behind; 0002's up
/// re-creates it with CREATE OR REPLACE and 0002's down drops it, so 0003's
/// up no longer finds what 0001 made. The first broken step is 0001 (its
/// down does not restore the schema); no later migration is blamed.
#[test]
fn a_trigger_function_left_by_a_down_is_blamed_on_that_down_not_on_a_later_up() {
    let project = Project::new(&[
        (
            "migrations/0001_audit.up.sql",
            "CREATE TABLE items (id int PRIMARY KEY, touched timestamptz);\nCREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.touched := now(); RETURN NEW; END $$;\nCREATE TRIGGER items_touch BEFORE UPDATE ON items FOR EACH ROW EXECUTE FUNCTION touch();",
        ),
        ("migrations/0001_audit.down.sql", "DROP TABLE items;"),
        (
            "migrations/0002_orders.up.sql",
            "CREATE OR REPLACE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.touched := now(); RETURN NEW; END $$;\nCREATE TABLE orders (id int PRIMARY KEY, touched timestamptz);\nCREATE TRIGGER orders_touch BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch();",
        ),
        (
            "migrations/0002_orders.down.sql",
            "DROP TABLE orders;\nDROP FUNCTION touch();",
        ),
        (
            "migrations/0003_more.up.sql",
            "CREATE INDEX items_touched ON items (touched);",
        ),
        ("migrations/0003_more.down.sql", "DROP INDEX items_touched;"),
    ]);
    // 0002's down is broken on its own too: on the schema a forward run
    // gives, 0001's trigger needs the function 0002's down drops.
    let text = project.run(&TestDb::new(), &["verify", "--stepwise"], 2);
    let first = text
        .find("default 0001: its down script did not undo its up script")
        .unwrap_or_else(|| panic!("0001 not named:\n{text}"));
    assert!(
        text[first..].contains("+ function public.touch()"),
        "{text}"
    );
    let second = text
        .find("default 0002: its down script failed")
        .unwrap_or_else(|| panic!("0002 not named:\n{text}"));
    assert!(first < second, "the first broken step comes first:\n{text}");
    assert!(
        text[second..].contains("ROLLBACK_FAILED:default:0002")
            && text[second..]
                .contains("trigger items_touch on table items depends on function touch()"),
        "{text}"
    );
    assert!(
        !text.contains("0003") && !text.contains("does not exist"),
        "no later step is blamed:\n{text}"
    );

    // With 0002's down fixed, 0001 is the only broken step, in both modes.
    project.write("migrations/0002_orders.down.sql", b"DROP TABLE orders;");
    let text = project.run(&TestDb::new(), &["verify"], 6);
    assert!(
        text.contains("default 0001: its down script did not undo its up script")
            && !text.contains("default 0002")
            && !text.contains("0003"),
        "{text}"
    );
}

/// Issue 12: a history with no down script at all (up-only files, `.up.sql`
/// alone, Flyway `V` files) is forward-only without configuration: verify
/// runs the up half, passes and says so; rollback refuses as it always did.
#[test]
fn up_only_histories_verify_forward_only_in_every_layout() {
    let layouts: [[(&str, &str); 2]; 3] = [
        [
            ("migrations/0001_a.sql", "CREATE TABLE a (id int);"),
            ("migrations/0002_b.sql", "CREATE TABLE b (id int);"),
        ],
        [
            ("migrations/0001_a.up.sql", "CREATE TABLE a (id int);"),
            ("migrations/0002_b.up.sql", "CREATE TABLE b (id int);"),
        ],
        [
            ("migrations/V1__a.sql", "CREATE TABLE a (id int);"),
            ("migrations/V2__b.sql", "CREATE TABLE b (id int);"),
        ],
    ];
    for files in layouts {
        let project = Project::new(&files);
        let db = TestDb::new();
        for mode in [&["verify"][..], &["verify", "--quick"]] {
            let out = project.run(&db, mode, 0);
            assert!(
                out.contains("2 migration(s) verified (forward-only")
                    && out.contains("verify passed")
                    && !out.contains("down script")
                    && !out.contains("warnings"),
                "{files:?} {mode:?}:\n{out}"
            );
        }
        project.run(&db, &["apply"], 0);
        let out = project.run(&db, &["rollback"], 4);
        assert!(out.contains("DOWN_SCRIPT_MISSING:default:"), "{out}");
    }
}

/// Issue 12: where only some migrations lack a down script, verify names each
/// one with DOWN_SCRIPT_MISSING (a warning; a failure with --strict) and
/// still checks every migration that has one — never "the down script failed".
#[test]
fn each_migration_without_a_down_is_named_and_the_others_are_still_checked() {
    let project = Project::new(&[
        (
            "migrations/0001_t.up.sql",
            "CREATE TABLE t (id int, v text);",
        ),
        ("migrations/0001_t.down.sql", "DROP TABLE t;"),
        (
            "migrations/0002_seed.up.sql",
            "INSERT INTO t VALUES (1, 'one');",
        ),
        ("migrations/0003_index.up.sql", "CREATE INDEX t_v ON t (v);"),
        ("migrations/0003_index.down.sql", "DROP INDEX t_v;"),
        (
            "migrations/0004_widen.up.sql",
            "ALTER TABLE t ALTER COLUMN id TYPE bigint;",
        ),
    ]);
    let db = TestDb::new();
    for mode in [&["verify"][..], &["verify", "--quick"]] {
        let out = project.run(&db, mode, 0);
        for version in ["0002 seed", "0004 widen"] {
            let code = format!("DOWN_SCRIPT_MISSING:default:{}", &version[..4]);
            assert!(
                out.contains(&format!("default {version}: no down script ({code})")),
                "{mode:?} names {version}:\n{out}"
            );
        }
        assert!(
            out.contains("verify passed with warnings") && !out.contains("failed"),
            "{mode:?}:\n{out}"
        );
    }
    project.run(&db, &["verify", "--strict"], 6);

    // The migrations with a down script are still checked. (`--quick` can
    // only cycle the migrations after the last one without a down script:
    // here none, as 0004 has none.)
    project.write(
        "migrations/0003_index.down.sql",
        b"SELECT 1; -- forgot DROP INDEX",
    );
    let out = project.run(&db, &["verify"], 6);
    assert!(
        out.contains("default 0003: its down script did not undo its up script")
            && out.contains("+ index public.t_v"),
        "{out}"
    );
    let output = project
        .migsafe(&db)
        .args(["verify", "--format", "json"])
        .output()
        .unwrap();
    expect_exit(&output, 6);
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        doc["namespaces"][0]["down_missing"],
        serde_json::json!(["0002", "0004"])
    );
    assert_eq!(doc["mismatches"][0]["version"], "0003");
    assert_eq!(doc["mismatches"][0]["step"], "down");
    assert_eq!(doc["mismatches"].as_array().unwrap().len(), 1);

    // Without 0004, `--quick` cycles 0003 (after the last gap) and sees it too.
    project.remove("migrations/0004_widen.up.sql");
    let out = project.run(&db, &["verify", "--quick"], 6);
    assert!(
        out.contains("default: rolling everything back did not return")
            && out.contains("+ index public.t_v")
            && out.contains("DOWN_SCRIPT_MISSING:default:0002"),
        "{out}"
    );
}

/// Issue 12: a history that assumes setup done outside it — a schema, a
/// role, `ALTER DATABASE … SET search_path`, the previous tool's bookkeeping
/// table that a later migration alters. `[verify] setup` prepares every
/// scratch database (also the ones a step is rebuilt or replayed on), and
/// the migrations run on connections opened after it.
#[test]
fn a_setup_file_prepares_every_scratch_database_before_the_migrations() {
    let _turn = scratch_server();
    let role = format!("verify_reader_{}", std::process::id());
    let setup = format!(
        "CREATE SCHEMA app;\n\
         DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN CREATE ROLE {role}; END IF; END $$;\n\
         DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET search_path = app, public', current_database()); END $$;\n\
         CREATE TABLE public.goose_db_version (id serial PRIMARY KEY, version_id bigint NOT NULL, is_applied boolean NOT NULL);\n"
    );
    let grant = format!("GRANT SELECT ON users TO {role};");
    let revoke = format!("REVOKE SELECT ON users FROM {role};");
    let project = Project::new(&[
        (
            "db/migsafe.toml",
            "[verify]\nsetup = \"verify-setup.sql\"\n\n[namespaces.app]\ndir = \"migrations\"\n",
        ),
        ("db/verify-setup.sql", &setup),
        (
            "db/migrations/0001_users.up.sql",
            "CREATE TABLE users (id int PRIMARY KEY);\n-- An explicit ACL: REVOKE after GRANT gives it back exactly (from no\n-- ACL at all it would leave the owner's default privileges spelled out).\nGRANT SELECT ON users TO PUBLIC;",
        ),
        ("db/migrations/0001_users.down.sql", "DROP TABLE users;"),
        ("db/migrations/0002_grant.up.sql", &grant),
        ("db/migrations/0002_grant.down.sql", &revoke),
        (
            "db/migrations/0003_bookkeeping.up.sql",
            "ALTER TABLE goose_db_version ADD COLUMN migrated_by text;",
        ),
        (
            "db/migrations/0003_bookkeeping.down.sql",
            "ALTER TABLE goose_db_version DROP COLUMN migrated_by;",
        ),
        // Only right where `users` went to schema app (the search_path).
        (
            "db/migrations/0004_index.up.sql",
            "CREATE INDEX users_id ON app.users (id);",
        ),
        (
            "db/migrations/0004_index.down.sql",
            "DROP INDEX app.users_id;",
        ),
        // Its down touches an older table: the schema before it is replayed
        // on a second scratch database, which needs the setup too.
        (
            "db/migrations/0005_audit.up.sql",
            "CREATE TABLE audit (id int);",
        ),
        (
            "db/migrations/0005_audit.down.sql",
            "DROP TABLE audit;\nCOMMENT ON TABLE goose_db_version IS 'touched';\nCOMMENT ON TABLE goose_db_version IS NULL;",
        ),
    ]);
    let verify = |extra: &[&str], code: i32| {
        expect_exit(
            &common::migsafe_command()
                .current_dir(project.path())
                .args([
                    "--config",
                    "db/migsafe.toml",
                    "verify",
                    "--scratch-url",
                    &scratch_url(),
                ])
                .args(extra)
                .output()
                .unwrap(),
            code,
        )
    };
    for mode in [&[][..], &["--quick"]] {
        let out = verify(mode, 0);
        assert!(
            out.contains("5 migration(s) verified") && out.contains("verify passed"),
            "{out}"
        );
    }
    // A broken step: the next ones run on a rebuilt database, set up as well.
    project.write(
        "db/migrations/0002_grant.down.sql",
        b"SELECT 1; -- forgot REVOKE",
    );
    let out = verify(&[], 6);
    assert!(
        out.contains("app 0002: its down script did not undo its up script")
            && out.contains("~ table app.users"),
        "{out}"
    );
    assert!(
        !out.contains("app 0003") && !out.contains("app 0004") && !out.contains("app 0005"),
        "{out}"
    );

    // Without the setup, the history cannot even start.
    project.write(
        "db/migsafe.toml",
        b"[namespaces.app]\ndir = \"migrations\"\n",
    );
    let out = verify(&[], 2);
    assert!(
        out.contains("MIGRATION_FAILED:app:0003")
            && out.contains("\"goose_db_version\" does not exist"),
        "{out}"
    );

    // A setup file that fails, or is missing, is named (exit 5).
    project.write(
        "db/migsafe.toml",
        b"[verify]\nsetup = \"verify-setup.sql\"\n[namespaces.app]\ndir = \"migrations\"\n",
    );
    project.write(
        "db/verify-setup.sql",
        b"CREATE SCHEMA app;\nCREATE TABLE app.x (id nonsense);\n",
    );
    let out = verify(&[], 5);
    assert!(
        out.contains("VERIFY_SETUP_FAILED")
            && out.contains("verify-setup.sql")
            && out.contains("line 2")
            && out.contains("nonsense"),
        "{out}"
    );
    project.remove("db/verify-setup.sql");
    let out = verify(&[], 5);
    assert!(
        out.contains("VERIFY_SETUP_FAILED") && out.contains("db/verify-setup.sql"),
        "{out}"
    );

    assert_eq!(verify_dbs(), 0, "every scratch database is dropped");
    common::query(&scratch_url(), &format!("DROP ROLE IF EXISTS {role}"));
}

/// A down script that changes a session setting gets `RESET ALL` after it
/// (settings never carry into the next migration), which also empties the
/// DDL record of the fast path: an emptied record proves nothing, and the
/// step is compared with snapshots, so what the down script left is found
/// (here a change that makes no new object, which the newest OID would show).
#[test]
fn a_down_script_that_resets_the_session_does_not_hide_what_it_left() {
    let project = Project::new(&[
        (
            "migrations/0001_t.up.sql",
            "CREATE TABLE t (id int, a int);",
        ),
        ("migrations/0001_t.down.sql", "DROP TABLE t;"),
        ("migrations/0002_index.up.sql", "CREATE INDEX t_a ON t (a);"),
        (
            "migrations/0002_index.down.sql",
            "SET search_path = public;\nDROP INDEX t_a;\nALTER TABLE t ALTER COLUMN a SET NOT NULL;",
        ),
    ]);
    let text = project.run(&TestDb::new(), &["verify"], 6);
    assert!(
        text.contains("default 0002: its down script did not undo its up script")
            && text.contains("column public.t.a"),
        "{text}"
    );
}
