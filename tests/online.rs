//! `apply --online` (SPEC 15): risky statements written the plain way run in
//! their online form, end in the same schema as the plain statements, and an
//! interrupted run resumes at the step it stopped in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Project, Running, TestDb, checksum, hold_lock, wait_for_query};

/// Tables with rows, as migration 0001, and the risky statements as 0002.
const BASE: &str = "CREATE TABLE users (id int PRIMARY KEY, email text);
INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 300) g;
CREATE TABLE orders (id int, user_id int, n int, code text);
INSERT INTO orders SELECT g, 1 + g % 300, g, 'c' || g FROM generate_series(1, 3000) g;
";

const RISKY: &str = "CREATE INDEX orders_n_idx ON orders (n);
CREATE UNIQUE INDEX orders_code_idx ON orders (lower(code)) WHERE n > 10;
ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE orders ADD CONSTRAINT orders_n_pos CHECK (n > 0);
ALTER TABLE orders ALTER COLUMN n SET NOT NULL;
ALTER TABLE orders ADD CONSTRAINT orders_code_key UNIQUE (code);
ALTER TABLE orders ADD CONSTRAINT orders_pkey PRIMARY KEY (id);
";

fn make(config: &str, risky: &str) -> Project {
    Project::new(&[
        ("migsafe.toml", config),
        ("migrations/0001_base.up.sql", BASE),
        ("migrations/0002_risky.up.sql", risky),
    ])
}

const FAST_RETRIES: &str = "[defaults]\nlock_timeout = \"1s\"\nlock_retry_delay = \"100ms\"\nlock_retries = 1000\nlock_wait = \"60s\"\n";

/// Nothing left NOT VALID, no INVALID index, no progress row, both applied.
fn assert_clean_end(db: &TestDb) {
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_constraint WHERE NOT convalidated")
            .as_deref(),
        Some("0")
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_index WHERE NOT indisvalid")
            .as_deref(),
        Some("0")
    );
    if db.exists("migsafe.online_progress") {
        assert_eq!(
            db.scalar("SELECT count(*) FROM migsafe.online_progress")
                .as_deref(),
            Some("0")
        );
    }
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_constraint WHERE conname LIKE 'migsafe_nn_%'")
            .as_deref(),
        Some("0")
    );
    let history = db.history("default");
    assert_eq!(history.len(), 2, "{history:?}");
    assert!(history.iter().all(|(_, dirty)| !dirty), "{history:?}");
}

#[test]
fn every_rewrite_ends_in_the_schema_of_the_plain_statements() {
    let plain_db = TestDb::new();
    let plain = make("", RISKY);
    // The plain statements are lint errors on existing tables: forced.
    plain.run(&plain_db, &["apply", "--skip-backup", "--force"], 0);

    let online_db = TestDb::new();
    let online = make("", RISKY);
    let out = online.run(&online_db, &["apply", "--skip-backup", "--online"], 0);
    assert!(
        out.contains("CREATE INDEX CONCURRENTLY orders_n_idx"),
        "{out}"
    );
    assert!(out.contains("NOT VALID"), "{out}");
    assert!(out.contains("VALIDATE CONSTRAINT orders_user_fk"), "{out}");
    assert!(out.contains("UNIQUE USING INDEX orders_code_key"), "{out}");
    assert!(out.contains("PRIMARY KEY USING INDEX orders_pkey"), "{out}");
    assert_clean_end(&online_db);
    assert_eq!(
        db_indexes(&online_db),
        db_indexes(&plain_db),
        "same index definitions"
    );
    let diff = online.run(
        &online_db,
        &["schema", "diff", &plain_db.url, &online_db.url],
        0,
    );
    assert_eq!(
        checksum(&online, &online_db),
        checksum(&plain, &plain_db),
        "{diff}"
    );
    assert_eq!(
        online_db.scalar("SELECT attnotnull::text FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'n'").as_deref(),
        Some("true")
    );
}

fn db_indexes(db: &TestDb) -> Vec<Vec<Option<String>>> {
    db.query("SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'orders'::regclass ORDER BY 1")
}

/// Constraints written without a name: PostgreSQL names them in the step
/// that adds them, and the validation uses that name.
const UNNAMED: &str = "ALTER TABLE orders ADD FOREIGN KEY (user_id) REFERENCES users (id);
ALTER TABLE orders ADD CHECK (n > 0), ADD CHECK (n < 1000000);
";

#[test]
fn constraints_without_a_name_get_the_name_postgresql_gives_them() {
    let plain_db = TestDb::new();
    let plain = make("", UNNAMED);
    plain.run(&plain_db, &["apply", "--skip-backup", "--force"], 0);
    let online_db = TestDb::new();
    let online = make("", UNNAMED);
    let out = online.run(&online_db, &["apply", "--skip-backup", "--online"], 0);
    assert!(out.contains("step 6/6"), "{out}");
    assert_clean_end(&online_db);
    assert_eq!(checksum(&online, &online_db), checksum(&plain, &plain_db));
    assert_eq!(
        online_db
            .scalar("SELECT string_agg(conname, ',' ORDER BY conname) FROM pg_constraint WHERE conrelid = 'orders'::regclass")
            .as_deref(),
        Some("orders_n_check,orders_n_check1,orders_user_id_fkey")
    );
    // psql runs the script to the same end, reading the names back.
    let psql_db = TestDb::new();
    let scripted = make("", UNNAMED);
    scripted.run(&psql_db, &["apply", "--skip-backup", "--steps", "1"], 0);
    let script = scripted.run(&psql_db, &["apply", "--sql", "--online"], 0);
    assert!(script.contains("\\gset"), "{script}");
    run_psql(&psql_db, &script);
    assert_clean_end(&psql_db);
    assert_eq!(checksum(&scripted, &psql_db), checksum(&plain, &plain_db));
}

fn run_psql(db: &TestDb, script: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("psql")
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-q", &db.url])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_config_key_and_the_directive_ask_for_the_online_form_too() {
    let by_config = TestDb::new();
    let project_config = make(
        "[defaults]\nonline = true\n",
        "CREATE INDEX orders_n_idx ON orders (n);\n",
    );
    let out = project_config.run(&by_config, &["apply", "--skip-backup"], 0);
    assert!(out.contains("step 1/1: CREATE INDEX CONCURRENTLY"), "{out}");

    let by_directive = TestDb::new();
    let project_directive = make(
        "",
        "-- migsafe:online\nALTER TABLE orders ADD CONSTRAINT orders_n_pos CHECK (n > 0);\n",
    );
    let out = project_directive.run(&by_directive, &["apply", "--skip-backup"], 0);
    assert!(
        out.contains("step 2/2: ALTER TABLE orders VALIDATE CONSTRAINT orders_n_pos"),
        "{out}"
    );
    assert_eq!(
        by_directive
            .scalar("SELECT convalidated::text FROM pg_constraint WHERE conname = 'orders_n_pos'")
            .as_deref(),
        Some("true")
    );
}

#[test]
fn plan_and_the_psql_script_show_the_steps() {
    let db = TestDb::new();
    let project = make("", RISKY);
    project.run(&db, &["apply", "--skip-backup", "--steps", "1"], 0);
    let plan = project.run(&db, &["plan", "--online"], 0);
    assert!(plan.contains("0002"), "{plan}");
    assert!(plan.contains("online"), "{plan}");
    assert!(
        plan.contains("step 1: CREATE INDEX CONCURRENTLY orders_n_idx ON orders USING btree (n)"),
        "{plan}"
    );
    assert!(plan.contains("no transaction"), "{plan}");
    assert!(plan.contains("SHARE UPDATE EXCLUSIVE"), "{plan}");
    // With --online, the statements that get an online form are no finding.
    assert!(!plan.contains("require-concurrent-index"), "{plan}");

    // Small tables: warnings, so the plan does not refuse.
    let plain_plan = project.run(&db, &["plan"], 0);
    assert!(
        plain_plan.contains("require-concurrent-index"),
        "{plain_plan}"
    );
    assert!(plain_plan.contains("`apply --online`"), "{plain_plan}");

    let script = project.run(&db, &["apply", "--sql", "--online"], 0);
    assert!(script.contains("-- online step 1 of"), "{script}");
    assert!(script.contains("\\gexec"), "{script}");
    assert!(
        script.contains("CREATE INDEX CONCURRENTLY orders_n_idx"),
        "{script}"
    );
    assert!(
        script.contains("BEGIN;\nSET LOCAL lock_timeout"),
        "{script}"
    );
    // psql runs it to the same end as migsafe.
    let psql = std::process::Command::new("psql")
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-q", &db.url])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    {
        let mut child = psql.unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_clean_end(&db);
    }
}

#[test]
fn lint_says_what_online_does_and_what_it_cannot() {
    let project = Project::new(&[(
        "migrations/0001_x.up.sql",
        "CREATE INDEX orders_n_idx ON orders (n);
CREATE INDEX ON orders (code);
ALTER TABLE orders ALTER COLUMN n TYPE bigint;
",
    )]);
    let out = common::expect_exit(
        &common::migsafe_command()
            .current_dir(project.path())
            .args(["lint"])
            .output()
            .unwrap(),
        1,
    );
    assert!(out.contains("`apply --online`"), "{out}");
    assert!(
        out.contains("`--online` cannot rewrite it: the index has no name"),
        "{out}"
    );
    assert!(out.contains("`--online` has no online form"), "{out}");

    let online = Project::new(&[(
        "migrations/0001_x.up.sql",
        "-- migsafe:online\nCREATE INDEX orders_n_idx ON orders (n);\n",
    )]);
    let out = common::expect_exit(
        &common::migsafe_command()
            .current_dir(online.path())
            .args(["lint"])
            .output()
            .unwrap(),
        0,
    );
    assert!(!out.contains("require-concurrent-index"), "{out}");
}

/// An event trigger that makes a DDL statement wait for advisory lock 4242
/// while its text matches `block_at.pattern`: a run can be held at any
/// chosen step.
const HOLD_DDL: &str = "CREATE TABLE block_at (pattern text);
CREATE FUNCTION hold_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM block_at WHERE current_query() LIKE pattern) THEN
    PERFORM pg_advisory_xact_lock(4242);
  END IF;
END $$;
CREATE EVENT TRIGGER hold_ddl ON ddl_command_start EXECUTE FUNCTION hold_ddl();";

/// The steps of [`RISKY`] (its 16 steps), by a text unique to each.
const STEP_MARKERS: &[&str] = &[
    "CONCURRENTLY orders_n_idx",
    "CONCURRENTLY orders_code_idx",
    "orders_user_fk FOREIGN KEY",
    "VALIDATE CONSTRAINT orders_user_fk",
    "orders_n_pos CHECK",
    "VALIDATE CONSTRAINT orders_n_pos",
    "migsafe_nn_orders_n CHECK",
    "VALIDATE CONSTRAINT migsafe_nn_orders_n",
    "ALTER COLUMN n SET NOT NULL",
    "CONCURRENTLY orders_code_key",
    "UNIQUE USING INDEX",
    "migsafe_nn_orders_id CHECK",
    "VALIDATE CONSTRAINT migsafe_nn_orders_id",
    "ALTER COLUMN id SET NOT NULL",
    "CONCURRENTLY orders_pkey",
    "PRIMARY KEY USING INDEX",
];

#[test]
fn a_run_killed_at_every_step_resumes_at_that_step() {
    let db = TestDb::new();
    db.query(HOLD_DDL);
    let project = make(FAST_RETRIES, RISKY);
    project.run(&db, &["apply", "--skip-backup", "--steps", "1"], 0);
    let total = STEP_MARKERS.len();
    for (index, marker) in STEP_MARKERS.iter().enumerate() {
        let step = index + 1;
        db.query(&format!(
            "DELETE FROM block_at; INSERT INTO block_at VALUES ('%{marker}%')"
        ));
        let (release, holder) = hold_lock(&db, "SELECT pg_advisory_lock(4242)");
        let mut running = Running::until(
            &project,
            &db,
            &["apply", "--skip-backup", "--online", "--force"],
            &format!("default: 0002 step {step}/{total}"),
        );
        if step > 1 {
            // The step killed last time runs again first.
            assert!(
                running
                    .seen
                    .contains(&format!("resuming at step {} of {total}", step - 1)),
                "step {step}: {}",
                running.seen
            );
        }
        wait_for_query(&db, marker);
        running.child.kill().unwrap();
        let _ = running.child.wait();
        release.send(()).unwrap();
        holder.join().unwrap();
        assert_eq!(db.history("default").len(), 1, "step {step}: not applied");
        let done = wait_until_backend_gone(&db);
        assert_eq!(
            done.as_deref(),
            Some(index.to_string().as_str()),
            "step {step}: the steps before it are recorded"
        );
    }
    db.query("DELETE FROM block_at");
    let out = project.run(&db, &["apply", "--skip-backup"], 0);
    assert!(
        out.contains(&format!("resuming at step {total} of {total}")),
        "{out}"
    );
    assert_clean_end(&db);

    // The same end as the plain statements.
    let plain_db = TestDb::new();
    plain_db.query(HOLD_DDL);
    let plain = make(FAST_RETRIES, RISKY);
    plain.run(&plain_db, &["apply", "--skip-backup", "--force"], 0);
    assert_eq!(checksum(&project, &db), checksum(&plain, &plain_db));
}

/// Waits until the killed run's session is gone (it held the namespace
/// lock), then returns the recorded step count.
fn wait_until_backend_gone(db: &TestDb) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let others = db
            .scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid <> 4242");
        if others.as_deref() == Some("0") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    db.scalar("SELECT steps FROM migsafe.online_progress WHERE version = '0002'")
}

#[test]
fn an_invalid_index_left_by_a_killed_build_is_dropped_and_built_again() {
    let db = TestDb::new();
    let project = make(FAST_RETRIES, "CREATE INDEX orders_n_idx ON orders (n);\n");
    project.run(&db, &["apply", "--skip-backup", "--steps", "1"], 0);
    // An open snapshot: the concurrent build waits for it in its last phase,
    // times out (lock_timeout) and leaves its index INVALID, again and again.
    let (release, holder) = hold_lock(
        &db,
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM users",
    );
    let mut running = Running::until(
        &project,
        &db,
        &["apply", "--skip-backup", "--online", "--force"],
        "default: 0002 step 1/1",
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while db
        .scalar("SELECT count(*) FROM pg_index WHERE NOT indisvalid")
        .as_deref()
        != Some("1")
    {
        assert!(Instant::now() < deadline, "no INVALID index appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    running.child.kill().unwrap();
    let _ = running.child.wait();
    release.send(()).unwrap();
    holder.join().unwrap();
    wait_until_backend_gone(&db);
    let out = project.run(&db, &["apply", "--skip-backup"], 0);
    assert!(out.contains("resumed"), "{out}");
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_index WHERE NOT indisvalid")
            .as_deref(),
        Some("0")
    );
    assert_eq!(
        db.scalar(
            "SELECT indisvalid::text FROM pg_index WHERE indexrelid = 'orders_n_idx'::regclass"
        )
        .as_deref(),
        Some("true")
    );
}

#[test]
fn a_resumed_migration_whose_file_changed_is_refused() {
    let db = TestDb::new();
    db.query(HOLD_DDL);
    let project = make(FAST_RETRIES, RISKY);
    project.run(&db, &["apply", "--skip-backup", "--steps", "1"], 0);
    db.query("INSERT INTO block_at VALUES ('%VALIDATE CONSTRAINT orders_user_fk%')");
    let (release, holder) = hold_lock(&db, "SELECT pg_advisory_lock(4242)");
    let mut running = Running::until(
        &project,
        &db,
        &["apply", "--skip-backup", "--online", "--force"],
        "default: 0002 step 4/",
    );
    wait_for_query(&db, "VALIDATE CONSTRAINT orders_user_fk");
    running.child.kill().unwrap();
    let _ = running.child.wait();
    release.send(()).unwrap();
    holder.join().unwrap();
    wait_until_backend_gone(&db);
    db.query("DELETE FROM block_at");
    project.write(
        "migrations/0002_risky.up.sql",
        format!("{RISKY}-- edited\n").as_bytes(),
    );
    let out = project.run(&db, &["apply", "--skip-backup", "--online", "--force"], 2);
    assert!(
        out.contains("ONLINE_PROGRESS_MISMATCH:default:0002"),
        "{out}"
    );
}

#[test]
fn ctrl_c_stops_at_its_step_and_the_next_apply_resumes_there() {
    let db = TestDb::new();
    db.query(HOLD_DDL);
    let project = make(FAST_RETRIES, RISKY);
    project.run(&db, &["apply", "--skip-backup", "--steps", "1"], 0);
    db.query("INSERT INTO block_at VALUES ('%VALIDATE CONSTRAINT orders_user_fk%')");
    let (release, holder) = hold_lock(&db, "SELECT pg_advisory_lock(4242)");
    let running = Running::until(
        &project,
        &db,
        &["apply", "--skip-backup", "--online", "--force"],
        "default: 0002 step 4/",
    );
    wait_for_query(&db, "VALIDATE CONSTRAINT orders_user_fk");
    let sent = std::process::Command::new("kill")
        .args(["-INT", &running.child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let (code, seen) = running.finish();
    release.send(()).unwrap();
    holder.join().unwrap();
    assert_ne!(code, Some(0), "{seen}");
    assert!(seen.contains("MIGRATION_CANCELLED:default:0002"), "{seen}");
    assert!(seen.contains("steps 1–3 of 16 are committed"), "{seen}");
    assert!(seen.contains("resumes at step 4"), "{seen}");
    db.query("DELETE FROM block_at");
    let out = project.run(&db, &["apply", "--skip-backup"], 0);
    assert!(out.contains("resuming at step 4 of 16"), "{out}");
    assert_clean_end(&db);
}

#[test]
fn a_failing_step_stops_there_and_resumes_once_the_cause_is_fixed() {
    let db = TestDb::new();
    let project = make(
        FAST_RETRIES,
        "ALTER TABLE orders ADD CONSTRAINT orders_n_small CHECK (n < 1000);\n",
    );
    project.run(&db, &["apply", "--skip-backup", "--steps", "1"], 0);
    let out = project.run(&db, &["apply", "--skip-backup", "--online"], 2);
    assert!(out.contains("MIGRATION_FAILED:default:0002"), "{out}");
    assert!(out.contains("step 2 of 2 failed"), "{out}");
    assert!(out.contains("violated by some row"), "{out}");
    assert!(
        out.contains("resumes at step 2 once the cause is fixed"),
        "{out}"
    );
    // The NOT VALID constraint of step 1 is committed: new rows obey it.
    assert_eq!(
        db.scalar("SELECT convalidated::text FROM pg_constraint WHERE conname = 'orders_n_small'")
            .as_deref(),
        Some("false")
    );
    assert!(
        out.contains("Still in the database from the committed steps") && out.contains("NOT VALID"),
        "the NOT VALID constraint that already checks new rows is named: {out}"
    );
    db.query("UPDATE orders SET n = 1 WHERE n >= 1000");
    let out = project.run(&db, &["apply", "--skip-backup"], 0);
    assert!(out.contains("resuming at step 2 of 2"), "{out}");
    assert_clean_end(&db);
}

/// A unique build that fails on duplicates leaves no INVALID index behind:
/// one that is still maintained would refuse the application's duplicates
/// while the migration says it failed.
#[test]
fn a_failed_unique_build_leaves_no_index_behind() {
    let db = TestDb::new();
    let project = make(
        FAST_RETRIES,
        "CREATE UNIQUE INDEX orders_user_uq ON orders (user_id);\n",
    );
    project.run(&db, &["apply", "--skip-backup", "--steps", "1"], 0);
    let out = project.run(&db, &["apply", "--skip-backup", "--online"], 2);
    assert!(out.contains("MIGRATION_FAILED:default:0002"), "{out}");
    assert!(
        out.contains("INVALID index the build left was dropped"),
        "{out}"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_class WHERE relname = 'orders_user_uq'")
            .as_deref(),
        Some("0"),
        "{out}"
    );
    db.query("INSERT INTO orders VALUES (9999, 1, 5, 'dup')");
}

#[test]
fn a_run_killed_before_validating_an_unnamed_constraint_validates_it_by_its_recorded_name() {
    let db = TestDb::new();
    db.query(HOLD_DDL);
    let project = make(
        FAST_RETRIES,
        "ALTER TABLE orders ADD FOREIGN KEY (user_id) REFERENCES users (id);\n",
    );
    project.run(&db, &["apply", "--skip-backup", "--steps", "1"], 0);
    db.query("INSERT INTO block_at VALUES ('%VALIDATE CONSTRAINT%')");
    let (release, holder) = hold_lock(&db, "SELECT pg_advisory_lock(4242)");
    let mut running = Running::until(
        &project,
        &db,
        &["apply", "--skip-backup", "--online", "--force"],
        "default: 0002 step 2/2",
    );
    wait_for_query(&db, "VALIDATE CONSTRAINT orders_user_id_fkey");
    running.child.kill().unwrap();
    let _ = running.child.wait();
    release.send(()).unwrap();
    holder.join().unwrap();
    assert_eq!(wait_until_backend_gone(&db).as_deref(), Some("1"));
    db.query("DELETE FROM block_at");
    let out = project.run(&db, &["apply", "--skip-backup"], 0);
    assert!(out.contains("resuming at step 2 of 2"), "{out}");
    assert_clean_end(&db);
}
