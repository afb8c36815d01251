//! `migsafe adopt` takes over another tool's history (SPEC 14). For each
//! tool a fixture of our own (`tests/adopt/<tool>/`) is applied with psql
//! the way that tool runs it, its history table is created and filled as
//! that tool leaves it (`history.sql`, checksums computed outside migsafe),
//! and adopt must record every applied migration with its original time,
//! after which `apply` runs nothing, the schema is unchanged and the other
//! tool's table is untouched. Every refusal exits 1 with ADOPT_MISMATCH
//! naming the migration and records nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{Project, TestDb, expect_exit};

fn fixture(tool: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/adopt")
        .join(tool)
}

/// A project whose `migrations/` is the tool's fixture.
fn project(tool: &str) -> Project {
    let project = Project::new(&[]);
    copy_dir(
        &fixture(tool).join("migrations"),
        &project.path().join("migrations"),
    );
    project
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn psql_file(db: &TestDb, path: &Path) {
    let psql = common::sandbox().bin_dir().join("psql");
    let output = std::process::Command::new(psql)
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &db.url, "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "psql -f {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The up part of a script in the tool's own semantics: dbmate, goose and
/// sql-migrate files end their up section at the down marker.
fn up_part(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let marker = line.trim().to_ascii_lowercase();
        if marker.starts_with("-- migrate:down")
            || marker.starts_with("-- +goose down")
            || marker.starts_with("-- +migrate down")
        {
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Runs the fixture's up scripts with psql, in version order, as the tool
/// would, then its `history.sql`, with the database's time zone 5:30 off UTC.
fn migrate_natively(db: &TestDb, tool: &str, project: &Project) {
    // Not UTC: tools that keep `timestamp without time zone` wrote local
    // time, which adopt must turn back into the moment.
    db.query(&format!(
        "ALTER DATABASE {} SET TimeZone = 'Asia/Kolkata'",
        db.name
    ));
    let dir = project.path().join("migrations");
    let mut scripts: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            for script in ["up.sql", "migration.sql"] {
                if path.join(script).is_file() {
                    scripts.push(path.join(script));
                }
            }
        } else if path.extension().is_some_and(|e| e == "sql") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !name.ends_with(".down.sql") && !name.starts_with('U') {
                scripts.push(path);
            }
        }
    }
    // Version order: numerically, as every one of these tools sorts.
    let key = |p: &PathBuf| {
        let name = p
            .strip_prefix(&dir)
            .unwrap()
            .to_string_lossy()
            .trim_start_matches('V')
            .to_string();
        let digits: String = name
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '-' || *c == '_')
            .filter(char::is_ascii_digit)
            .collect();
        // Flyway runs the repeatables last, by description.
        let repeatable = name.starts_with("R__");
        (repeatable, digits.len(), digits, name)
    };
    scripts.sort_by_key(key);
    if dir.join("sqitch.plan").is_file() {
        // Sqitch deploys in plan order (the fixture's plan, reworked change last).
        scripts = ["users", "orders", "order_total@v1", "order_total"]
            .iter()
            .map(|c| dir.join("deploy").join(format!("{c}.sql")))
            .collect();
    }
    let scratch = tempfile::tempdir().unwrap();
    for (index, script) in scripts.iter().enumerate() {
        let text = std::fs::read_to_string(script).unwrap();
        let up = scratch.path().join(format!("{index}.sql"));
        std::fs::write(&up, up_part(&text)).unwrap();
        psql_file(db, &up);
    }
    psql_file(db, &fixture(tool).join("history.sql"));
}

/// A digest of every row of a table, to show it was left untouched.
fn table_digest(db: &TestDb, table: &str) -> String {
    db.scalar(&format!(
        "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t"
    ))
    .unwrap()
}

/// migsafe's history: (version, applied_at in UTC).
fn adopted(db: &TestDb) -> Vec<(String, String)> {
    if !db.exists("migsafe.schema_migrations") {
        return Vec::new();
    }
    db.query(
        "SELECT version, to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') \
         FROM migsafe.schema_migrations ORDER BY applied_at, length(version), version",
    )
    .into_iter()
    .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
    .collect()
}

/// The whole contract for one tool. `times`: the applied times the tool
/// recorded (UTC), or `None` for a tool that keeps none.
fn adopts(tool: &str, from: Option<&str>, table: &str, versions: &[&str], times: Option<&[&str]>) {
    let db = TestDb::new();
    let project = project(tool);
    migrate_natively(&db, tool, &project);
    let before_table = table_digest(&db, table);
    let before_schema = common::checksum(&project, &db);

    let mut args = vec!["adopt", "--dry-run", "--format", "json"];
    if let Some(from) = from {
        args.extend(["--from", from]);
    }
    let out = project.run(&db, &args, 0);
    let doc: serde_json::Value = serde_json::from_str(&out[..out.rfind('}').unwrap() + 1]).unwrap();
    let planned: Vec<&str> = doc["namespaces"][0]["recorded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["version"].as_str().unwrap())
        .collect();
    assert_eq!(planned, versions, "{out}");
    assert!(
        !db.exists("migsafe.schema_migrations"),
        "--dry-run must write nothing"
    );

    let mut args = vec!["adopt"];
    if let Some(from) = from {
        args.extend(["--from", from]);
    }
    let out = project.run(&db, &args, 0);
    let history = adopted(&db);
    let recorded: Vec<&str> = history.iter().map(|(v, _)| v.as_str()).collect();
    assert_eq!(recorded, versions, "{out}");
    if let Some(times) = times {
        let at: Vec<&str> = history.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(at, times, "the original applied times are kept");
    }
    assert_eq!(
        db.scalar("SELECT count(*) FROM migsafe.history_audit WHERE action = 'adopt'")
            .as_deref(),
        Some(versions.len().to_string().as_str())
    );

    assert_eq!(
        project.event_log().matches("\"adopted\"").count(),
        versions.len(),
        "one event per adopted migration:\n{}",
        project.event_log()
    );

    // apply has nothing to do, and nothing changed.
    let out = project.run(&db, &["apply"], 0);
    assert!(out.contains("up to date"), "{out}");
    assert_eq!(adopted(&db).len(), versions.len());
    assert_eq!(common::checksum(&project, &db), before_schema);
    assert_eq!(
        table_digest(&db, table),
        before_table,
        "the other tool's table is untouched"
    );
    // Adopting again records nothing more.
    project.run(&db, &args, 0);
    assert_eq!(adopted(&db).len(), versions.len());
}

#[test]
fn golang_migrate_counts_every_version_up_to_the_current_one() {
    adopts(
        "golang-migrate",
        Some("golang-migrate"),
        "schema_migrations",
        &["1", "2", "3"],
        None,
    );
}

#[test]
fn dbmate_is_detected_and_adopted() {
    adopts(
        "dbmate",
        None,
        "schema_migrations",
        &["20240105090000", "20240106090000", "20240107090000"],
        None,
    );
}

#[test]
fn sqlx_keeps_its_times_and_its_sha384_matches_crlf_files_as_they_are() {
    adopts(
        "sqlx",
        None,
        "_sqlx_migrations",
        &["20240201100000", "20240202100000", "20240203100000"],
        Some(&[
            "2024-02-04 09:00:01",
            "2024-02-04 09:00:02",
            "2024-02-04 09:00:03",
        ]),
    );
}

#[test]
fn diesel_keeps_its_run_on_times() {
    adopts(
        "diesel",
        Some("diesel"),
        "__diesel_schema_migrations",
        &["20240301100000", "20240302100000", "20240303100000"],
        Some(&[
            "2024-03-04 08:00:01",
            "2024-03-04 08:00:02",
            "2024-03-04 08:00:03",
        ]),
    );
}

#[test]
fn flyway_crc32_matches_bom_and_crlf_files() {
    adopts(
        "flyway",
        None,
        "flyway_schema_history",
        &["1", "1.1", "2"],
        Some(&[
            "2024-07-01 06:00:01",
            "2024-07-01 06:00:02",
            "2024-07-01 06:00:03",
        ]),
    );
}

#[test]
fn goose_reads_down_rows_and_takes_the_newest_row_of_each_version() {
    adopts(
        "goose",
        None,
        "goose_db_version",
        &["00001", "00002", "00003"],
        Some(&[
            "2024-04-01 12:00:01",
            "2024-04-01 12:00:02",
            "2024-04-03 12:00:00",
        ]),
    );
}

#[test]
fn sql_migrate_matches_rows_by_file_name() {
    adopts(
        "sql-migrate",
        None,
        "gorp_migrations",
        &["1", "2", "3"],
        Some(&[
            "2024-05-01 07:30:01",
            "2024-05-01 07:30:02",
            "2024-05-01 07:30:03",
        ]),
    );
}

#[test]
fn drizzle_rows_are_matched_through_the_journal_and_their_sha256() {
    adopts(
        "drizzle",
        None,
        "drizzle.__drizzle_migrations",
        &["0000", "0001", "0002"],
        None,
    );
}

#[test]
fn prisma_takes_the_attempt_that_finished_after_a_rolled_back_one() {
    adopts(
        "prisma",
        None,
        "_prisma_migrations",
        &["20240801100000", "20240802100000", "20240803100000"],
        Some(&[
            "2024-08-04 10:00:01",
            "2024-08-04 10:00:02",
            "2024-08-04 10:10:00",
        ]),
    );
}

#[test]
fn a_rolled_back_or_unfinished_prisma_migration_is_refused() {
    refuses(
        "prisma",
        "DELETE FROM _prisma_migrations WHERE id = '0f4a4c1e-0000-4000-8000-000000000004'",
        |_| {},
        &[],
        "ADOPT_MISMATCH:default:20240803100000",
    );
    refuses(
        "prisma",
        "UPDATE _prisma_migrations SET finished_at = NULL WHERE id = '0f4a4c1e-0000-4000-8000-000000000002'",
        |_| {},
        &[],
        "ADOPT_MISMATCH:default:20240802100000",
    );
    refuses(
        "prisma",
        "",
        |p| {
            p.write(
                "migrations/20240802100000_add_user_name/migration.sql",
                b"ALTER TABLE \"users\" ADD COLUMN \"nick\" TEXT;\n",
            )
        },
        &[],
        "ADOPT_MISMATCH:default:20240802100000",
    );
}

#[test]
fn liquibase_changesets_are_matched_by_author_id_and_file() {
    adopts(
        "liquibase",
        None,
        "databasechangelog",
        &["1", "2", "3", "4", "5", "6"],
        Some(&[
            "2024-09-01 08:00:01",
            "2024-09-01 08:00:02",
            "2024-09-01 08:00:03",
            "2024-09-01 08:00:04",
            "2024-09-01 08:00:05",
            "2024-09-01 08:00:06",
        ]),
    );
}

/// MD5SUM (checksum version 9) is compared per changeset, as Liquibase
/// computes it: whitespace does not count, a `--validCheckSum` line is
/// honoured, and a NULL (after `clear-checksums`) has nothing to compare.
#[test]
fn a_liquibase_changeset_edited_since_it_ran_is_refused() {
    const ORDERS: &str = "migrations/002-orders.sql";
    let edited = "--liquibase formatted sql\n\n--changeset tomas:orders-table\nCREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint REFERENCES users (id));\n--rollback DROP TABLE orders;\n";
    refuses(
        "liquibase",
        "",
        |p| p.write(ORDERS, edited.as_bytes()),
        &[],
        "ADOPT_MISMATCH:default:3",
    );
    let accepted = |sql: &str, text: String| {
        let db = TestDb::new();
        let project = project("liquibase");
        migrate_natively(&db, "liquibase", &project);
        if !sql.is_empty() {
            db.query(sql);
        }
        project.write(ORDERS, text.as_bytes());
        let out = project.run(&db, &["adopt"], 0);
        assert_eq!(adopted(&db).len(), 6, "{out}");
    };
    // Only whitespace moved: Liquibase's checksum is the same.
    accepted(
        "",
        "--liquibase formatted sql\n\n--changeset tomas:orders-table\nCREATE TABLE orders (\n    id bigint PRIMARY KEY,\n    user_id bigint NOT NULL REFERENCES users (id)\n);\n--rollback DROP TABLE orders;\n".into(),
    );
    // The edit is declared valid for the recorded checksum.
    accepted(
        "",
        edited.replace(
            "--changeset tomas:orders-table\n",
            "--changeset tomas:orders-table\n--validCheckSum: 9:5a2decf39a8e5832407c9b36d96372cd\n",
        ),
    );
    // Nothing recorded to compare with.
    accepted(
        "UPDATE databasechangelog SET md5sum = NULL WHERE id = 'orders-table'",
        edited.to_string(),
    );
}

/// A `runOnChange:true` changeset edited since Liquibase last ran it is not
/// a mismatch: Liquibase would run it again at its next update, so adopt
/// records it as changed and `apply` runs it again, in place.
#[test]
fn a_liquibase_run_on_change_changeset_edited_since_it_ran_is_run_again() {
    const EXTRAS: &str = "migrations/003-extras.sql";
    let db = TestDb::new();
    let project = project("liquibase");
    migrate_natively(&db, "liquibase", &project);
    let text = std::fs::read_to_string(project.path().join(EXTRAS)).unwrap();
    let edited = text
        .replace(
            "--changeset tomas:order-count splitStatements:false",
            "--changeset tomas:order-count splitStatements:false runOnChange:true",
        )
        .replace(
            "CREATE FUNCTION order_count",
            "CREATE OR REPLACE FUNCTION order_count",
        )
        .replace("WHERE user_id = uid;", "WHERE user_id = uid AND uid > 0;");
    assert_ne!(edited, text);
    project.write(EXTRAS, edited.as_bytes());
    let out = project.run(&db, &["adopt"], 0);
    assert!(out.contains("apply` runs it again"), "{out}");
    assert_eq!(adopted(&db).len(), 6, "{out}");
    let status = project.run(&db, &["status"], 0);
    assert!(status.contains("1 changed, to run again"), "{status}");
    let out = project.run(&db, &["apply"], 0);
    assert!(
        out.contains("tomas:order-count") && out.contains("changed since it ran"),
        "{out}"
    );
    assert_eq!(
        db.scalar("SELECT prosrc LIKE '%uid > 0%' FROM pg_proc WHERE proname = 'order_count'")
            .as_deref(),
        Some("t")
    );
    let status = project.run(&db, &["status"], 0);
    assert!(status.contains("6 applied, 0 pending"), "{status}");
    assert_eq!(
        db.scalar("SELECT count(*) FROM databasechangelog")
            .as_deref(),
        Some("6"),
        "Liquibase's table is left as it is"
    );
}

#[test]
fn a_failed_or_unknown_liquibase_changeset_is_refused() {
    refuses(
        "liquibase",
        "UPDATE databasechangelog SET exectype = 'FAILED' WHERE id = 'users-name'",
        |_| {},
        &[],
        "ADOPT_MISMATCH:default:maria:users-name",
    );
    refuses(
        "liquibase",
        "UPDATE databasechangelog SET id = 'orders-table-v2' WHERE id = 'orders-table'",
        |_| {},
        &[],
        "ADOPT_MISMATCH:default:tomas:orders-table-v2",
    );
}

#[test]
fn sqitch_matches_a_reworked_change_to_each_of_its_instances() {
    adopts(
        "sqitch",
        None,
        "sqitch.changes",
        &["1", "2", "3", "4"],
        Some(&[
            "2024-10-06 08:00:01",
            "2024-10-06 08:00:02",
            "2024-10-06 08:00:03",
            "2024-10-06 08:00:04",
        ]),
    );
}

#[test]
fn a_sqitch_change_not_in_the_plan_is_refused() {
    refuses(
        "sqitch",
        "UPDATE sqitch.changes SET change = 'refunds' WHERE change = 'orders'",
        |_| {},
        &[],
        "ADOPT_MISMATCH:default:refunds",
    );
}

#[test]
fn a_sqitch_deploy_script_edited_since_it_ran_is_refused() {
    let edit = |p: &Project| {
        p.write(
            "migrations/deploy/orders.sql",
            b"CREATE TABLE orders (id bigint PRIMARY KEY, total numeric);\n",
        );
    };
    refuses("sqitch", "", edit, &[], "ADOPT_MISMATCH:default:2");
    // A registry upgraded from before Sqitch 0.9993 holds the change id in
    // script_hash for the changes deployed until then: nothing to compare.
    let db = TestDb::new();
    let project = project("sqitch");
    migrate_natively(&db, "sqitch", &project);
    db.query("UPDATE sqitch.changes SET script_hash = change_id WHERE change = 'orders'");
    edit(&project);
    project.run(&db, &["adopt"], 0);
    assert_eq!(adopted(&db).len(), 4);
}

#[test]
fn pop_is_detected_and_adopted() {
    adopts(
        "pop",
        None,
        "schema_migration",
        &["20240601100000", "20240602100000", "20240603100000"],
        None,
    );
}

/// Prepares a tool's fixture, changes the database with `sql` (and the
/// project with `edit`), and expects adopt to refuse with `code`, recording
/// nothing.
fn refuses(tool: &str, sql: &str, edit: impl Fn(&Project), args: &[&str], code: &str) {
    let db = TestDb::new();
    let project = project(tool);
    migrate_natively(&db, tool, &project);
    if !sql.is_empty() {
        db.query(sql);
    }
    edit(&project);
    let mut all = vec!["adopt"];
    all.extend(args);
    let out = project.run(&db, &all, 1);
    assert!(out.contains(code), "expected {code}:\n{out}");
    assert!(adopted(&db).is_empty(), "a refusal records nothing");
    assert!(
        !db.exists("migsafe.schema_migrations"),
        "a refusal creates nothing either"
    );
    // The dry run refuses the same way.
    all.push("--dry-run");
    let out = project.run(&db, &all, 1);
    assert!(out.contains(code), "expected {code} from --dry-run:\n{out}");
}

#[test]
fn a_dirty_golang_migrate_version_is_refused() {
    refuses(
        "golang-migrate",
        "UPDATE schema_migrations SET dirty = true",
        |_| {},
        &[],
        "ADOPT_MISMATCH:default:3",
    );
}

#[test]
fn a_row_without_a_file_is_refused() {
    refuses(
        "dbmate",
        "INSERT INTO schema_migrations VALUES ('20240108090000')",
        |_| {},
        &[],
        "ADOPT_MISMATCH:default:20240108090000",
    );
    refuses(
        "golang-migrate",
        "UPDATE schema_migrations SET version = 4",
        |_| {},
        &[],
        "ADOPT_MISMATCH:default:4",
    );
}

#[test]
fn a_file_the_tool_never_applied_below_its_newest_version_is_refused() {
    refuses(
        "dbmate",
        "DELETE FROM schema_migrations WHERE version = '20240106090000'",
        |_| {},
        &[],
        "ADOPT_MISMATCH:default:20240106090000",
    );
}

#[test]
fn the_same_file_with_the_other_line_ending_still_matches() {
    let db = TestDb::new();
    let project = project("sqlx");
    migrate_natively(&db, "sqlx", &project);
    // sqlx ran the CRLF file; this checkout has it with LF, and the LF ones
    // with CRLF.
    for name in [
        "20240201100000_create_users.sql",
        "20240202100000_add_user_name.sql",
        "20240203100000_create_orders.sql",
    ] {
        let path = format!("migrations/{name}");
        let text = std::fs::read_to_string(project.path().join(&path)).unwrap();
        let flipped = if text.contains("\r\n") {
            text.replace("\r\n", "\n")
        } else {
            text.replace('\n', "\r\n")
        };
        project.write(&path, flipped.as_bytes());
    }
    project.run(&db, &["adopt"], 0);
    assert_eq!(adopted(&db).len(), 3);
}

#[test]
fn a_changed_file_is_refused_by_its_checksum() {
    let edit = |project: &Project, path: &str| {
        project.write(path, b"CREATE TABLE orders (id bigint PRIMARY KEY);\n");
    };
    refuses(
        "sqlx",
        "",
        |p| edit(p, "migrations/20240203100000_create_orders.sql"),
        &[],
        "ADOPT_MISMATCH:default:20240203100000",
    );
    refuses(
        "flyway",
        "",
        |p| edit(p, "migrations/V2__create_orders.sql"),
        &[],
        "ADOPT_MISMATCH:default:2",
    );
    refuses(
        "drizzle",
        "",
        |p| edit(p, "migrations/0001_add_user_name.sql"),
        &[],
        "ADOPT_MISMATCH:default:0001",
    );
}

#[test]
fn a_failed_row_is_refused() {
    refuses(
        "sqlx",
        "UPDATE _sqlx_migrations SET success = false WHERE version = 20240202100000",
        |_| {},
        &[],
        "ADOPT_MISMATCH:default:20240202100000",
    );
    refuses(
        "flyway",
        "UPDATE flyway_schema_history SET success = false WHERE version = '1.1'",
        |_| {},
        &[],
        "ADOPT_MISMATCH:default:1.1",
    );
}

#[test]
fn several_tools_tables_need_from_and_a_missing_one_is_named() {
    let db = TestDb::new();
    let project = project("goose");
    migrate_natively(&db, "goose", &project);
    psql_file(&db, &fixture("pop").join("history.sql"));
    let out = project.run(&db, &["adopt"], 1);
    assert!(out.contains("ADOPT_SOURCE_AMBIGUOUS:default"), "{out}");
    assert!(out.contains("goose") && out.contains("pop"), "{out}");
    let out = project.run(&db, &["adopt", "--from", "flyway"], 1);
    assert!(out.contains("ADOPT_SOURCE_MISSING:default"), "{out}");
    assert!(adopted(&db).is_empty());
    project.run(&db, &["adopt", "--from", "goose"], 0);
    assert_eq!(adopted(&db).len(), 3);
    let out = project.run(&db, &["adopt", "--from", "liquibas"], 5);
    assert!(out.contains("USAGE"), "{out}");
}

#[test]
fn a_flyway_baseline_counts_every_version_up_to_it_and_an_undo_takes_one_back() {
    let db = TestDb::new();
    let project = project("flyway");
    migrate_natively(&db, "flyway", &project);
    // `flyway baseline -baselineVersion=1.1` on the existing schema, then V2;
    // then `flyway undo` of V2 (Teams), which left V2 to run again.
    db.query(
        "DELETE FROM flyway_schema_history WHERE installed_rank IN (1, 2);
         INSERT INTO flyway_schema_history VALUES
           (1, '1.1', '<< Flyway Baseline >>', 'BASELINE', '<< Flyway Baseline >>', NULL, 'app',
            TIMESTAMPTZ '2024-06-30 23:00:00+00' AT TIME ZONE current_setting('TimeZone'), 0, true),
           (4, '2', 'create orders', 'UNDO_SQL', 'U2__create_orders.sql', 12345, 'app',
            TIMESTAMPTZ '2024-07-02 06:00:00+00' AT TIME ZONE current_setting('TimeZone'), 5, true);",
    );
    let out = project.run(&db, &["adopt", "--format", "json"], 0);
    let doc: serde_json::Value = serde_json::from_str(&out[..out.rfind('}').unwrap() + 1]).unwrap();
    assert_eq!(
        doc["namespaces"][0]["pending"],
        serde_json::json!(["2"]),
        "{out}"
    );
    assert_eq!(
        adopted(&db),
        vec![
            ("1".to_string(), "2024-06-30 23:00:00".to_string()),
            ("1.1".to_string(), "2024-06-30 23:00:00".to_string()),
        ]
    );
}

#[test]
fn a_flyway_repeatable_row_without_its_file_is_refused() {
    refuses(
        "flyway",
        "INSERT INTO flyway_schema_history VALUES (4, NULL, 'views', 'SQL', 'R__views.sql', 42, 'app', now(), 3, true)",
        |_| {},
        &[],
        "ADOPT_MISMATCH:default:R__views",
    );
}

#[test]
fn a_flyway_java_repeatable_is_refused_by_its_script() {
    refuses(
        "flyway",
        "INSERT INTO flyway_schema_history VALUES (4, NULL, 'views', 'JDBC', 'db.migration.R__Views', NULL, 'app', now(), 3, true)",
        |_| {},
        &[],
        "ADOPT_MISMATCH:default:db.migration.R__Views",
    );
}

#[test]
fn a_flyway_repeatable_whose_last_run_failed_is_refused() {
    refuses(
        "flyway-repeatable",
        "UPDATE flyway_schema_history SET success = false WHERE installed_rank = 4",
        |_| {},
        &[],
        "ADOPT_MISMATCH:default:R__user_names",
    );
}

/// (name, checksum) of migsafe's record of repeatables.
fn adopted_repeatables(db: &TestDb) -> Vec<(String, String)> {
    db.query("SELECT name, checksum FROM migsafe.repeatable_migrations ORDER BY name")
        .into_iter()
        .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
        .collect()
}

#[test]
fn flyway_repeatables_are_taken_over_by_their_last_run() {
    let db = TestDb::new();
    let project = project("flyway-repeatable");
    migrate_natively(&db, "flyway-repeatable", &project);
    let before_table = table_digest(&db, "flyway_schema_history");
    let before_schema = common::checksum(&project, &db);

    let out = project.run(&db, &["adopt", "--format", "json"], 0);
    let doc: serde_json::Value = serde_json::from_str(&out[..out.rfind('}').unwrap() + 1]).unwrap();
    let recorded: Vec<(&str, bool)> = doc["namespaces"][0]["recorded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["version"].as_str().unwrap(),
                m["runs_again"].as_bool().unwrap(),
            )
        })
        .collect();
    // R__old_report was removed and Flyway recorded that: not asked for.
    assert_eq!(
        recorded,
        [
            ("1", false),
            ("2", false),
            ("R__order_totals", false),
            ("R__user_names", false)
        ],
        "{out}"
    );
    assert_eq!(adopted(&db).len(), 2);
    let repeatables = adopted_repeatables(&db);
    assert_eq!(repeatables.len(), 2, "{repeatables:?}");
    // The time of the last run is kept.
    assert_eq!(
        db.scalar("SELECT to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') FROM migsafe.repeatable_migrations WHERE name = 'order_totals'")
            .as_deref(),
        Some("2024-08-02 10:00:00")
    );
    let out = project.run(&db, &["apply"], 0);
    assert!(out.contains("up to date"), "{out}");
    assert_eq!(common::checksum(&project, &db), before_schema);
    assert_eq!(table_digest(&db, "flyway_schema_history"), before_table);
    // Adopting again records nothing more.
    project.run(&db, &["adopt"], 0);
    assert_eq!(adopted_repeatables(&db), repeatables);
}

#[test]
fn a_flyway_repeatable_edited_since_its_last_run_is_adopted_to_run_again() {
    let db = TestDb::new();
    let project = project("flyway-repeatable");
    migrate_natively(&db, "flyway-repeatable", &project);
    // Edited after Flyway's last run, never run by Flyway: Flyway's next
    // migrate would run it, so migsafe's next apply does.
    std::fs::write(
        project.path().join("migrations/R__user_names.sql"),
        "CREATE OR REPLACE VIEW user_names AS SELECT id, coalesce(name, email) AS shown, email FROM users;\n",
    )
    .unwrap();
    let out = project.run(&db, &["adopt"], 0);
    assert!(out.contains("runs it again"), "{out}");
    let out = project.run(&db, &["status"], 0);
    assert!(
        out.lines()
            .any(|l| l.contains("changed") && l.contains("R__user_names")),
        "{out}"
    );
    let out = project.run(&db, &["apply", "--skip-backup"], 0);
    assert!(out.contains("R__user_names"), "{out}");
    assert!(!out.contains("R__order_totals"), "{out}");
    assert_eq!(
        db.scalar("SELECT count(*) FROM information_schema.columns WHERE table_name = 'user_names' AND column_name = 'email'")
            .as_deref(),
        Some("1")
    );
    let out = project.run(&db, &["apply"], 0);
    assert!(out.contains("up to date"), "{out}");
}

#[test]
fn a_sqitch_registry_named_in_sqitch_conf_is_read() {
    let db = TestDb::new();
    let project = project("sqitch");
    migrate_natively(&db, "sqitch", &project);
    // `sqitch deploy --registry app_registry`, as sqitch.conf keeps it.
    db.query("ALTER SCHEMA sqitch RENAME TO app_registry");
    let out = project.run(&db, &["adopt", "--from", "sqitch"], 1);
    assert!(out.contains("ADOPT_SOURCE_MISSING"), "{out}");
    std::fs::write(
        project.path().join("migrations/sqitch.conf"),
        "[core]\n\tengine = pg\n[engine \"pg\"]\n\tregistry = app_registry\n",
    )
    .unwrap();
    let out = project.run(&db, &["adopt"], 0);
    assert!(out.contains("app_registry"), "{out}");
    assert_eq!(adopted(&db).len(), 4, "{out}");
    let out = project.run(&db, &["apply"], 0);
    assert!(out.contains("up to date"), "{out}");
}

/// `status` says what apply would refuse on: another tool's history
/// holds rows and migsafe has recorded nothing (the preflight's detection).
#[test]
fn status_warns_that_another_tools_history_must_be_adopted() {
    let db = TestDb::new();
    let project = project("flyway");
    migrate_natively(&db, "flyway", &project);
    let out = project.run(&db, &["status"], 0);
    let warning = out
        .lines()
        .find(|l| l.contains("ADOPT_REQUIRED:default"))
        .unwrap_or_else(|| panic!("no ADOPT_REQUIRED line:\n{out}"));
    assert!(warning.contains("warning"), "{out}");
    assert!(warning.contains("flyway_schema_history"), "{out}");
    assert!(out.contains("migsafe adopt --from flyway"), "{out}");

    let output = project
        .migsafe(&db)
        .args(["status", "--format", "json"])
        .output()
        .unwrap();
    expect_exit(&output, 0);
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let adopt = &doc["namespaces"][0]["adopt_required"];
    assert_eq!(adopt["reason"], "ADOPT_REQUIRED:default", "{doc}");
    assert_eq!(adopt["tool"], "flyway", "{doc}");
    assert_eq!(adopt["hint"], "migsafe adopt --from flyway", "{doc}");
    assert_eq!(
        adopt["histories"][0]["table"], "flyway_schema_history",
        "{doc}"
    );

    // Adopted: nothing to warn about.
    project.run(&db, &["adopt"], 0);
    let out = project.run(&db, &["status"], 0);
    assert!(!out.contains("ADOPT_REQUIRED"), "{out}");
    let output = project
        .migsafe(&db)
        .args(["status", "--format", "json"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(doc["namespaces"][0]["adopt_required"].is_null(), "{doc}");
}

#[test]
fn apply_before_adopt_is_refused_instead_of_running_everything_again() {
    let db = TestDb::new();
    let project = project("flyway-repeatable");
    migrate_natively(&db, "flyway-repeatable", &project);
    db.query("INSERT INTO users VALUES (1, 'a@example.com', NULL)");
    let out = project.run(&db, &["apply"], 1);
    assert!(out.contains("ADOPT_REQUIRED:default"), "{out}");
    assert!(out.contains("flyway_schema_history"), "{out}");
    assert!(out.contains("migsafe adopt"), "{out}");
    // The failing check is listed once, by the error, not also under the
    // "preflight FAILED" line.
    assert_eq!(out.matches("flyway_schema_history").count(), 1, "{out}");
    assert!(out.contains("preflight FAILED 1 check(s)"), "{out}");
    assert!(adopted(&db).is_empty(), "nothing ran: {out}");
    let out = project.run(&db, &["plan"], 1);
    assert!(out.contains("ADOPT_REQUIRED:default"), "{out}");
    // Said once: the refusal names the check that failed, not the check
    // again in a list of one.
    assert_eq!(out.matches("ADOPT_REQUIRED").count(), 1, "{out}");
    assert_eq!(out.matches("flyway_schema_history").count(), 1, "{out}");
    project.run(&db, &["adopt"], 0);
    let out = project.run(&db, &["apply"], 0);
    assert!(out.contains("up to date"), "{out}");
    assert_eq!(
        db.scalar("SELECT count(*) FROM users").as_deref(),
        Some("1")
    );
}

/// Flyway keeps its history in its default schema (the first of
/// `schemas`) under `table`: read from the project's Flyway configuration
/// (flyway.conf, or Flyway 10's flyway.toml), found there, so that apply
/// does not run a history that already ran.
#[test]
fn a_flyway_history_in_its_own_schema_and_table_is_found_by_flyway_conf() {
    flyway_history_moved_and_found_through(
        "flyway.conf",
        b"flyway.schemas=fw,public\nflyway.table=deploy_history\n",
    );
}

#[test]
fn a_flyway_history_named_in_flyway_toml_is_found() {
    flyway_history_moved_and_found_through(
        "flyway.toml",
        b"[environments.default]\nurl = \"jdbc:postgresql://localhost/app\"\n\n[flyway]\nlocations = [\"filesystem:migrations\"]\nschemas = [\"fw\", \"public\"]\ntable = \"deploy_history\"\n",
    );
}

/// Flyway's history moved to `fw.deploy_history`, and the configuration
/// file that says so.
fn flyway_history_moved_and_found_through(file: &str, text: &[u8]) {
    let db = TestDb::new();
    let project = project("flyway");
    migrate_natively(&db, "flyway", &project);
    db.query(
        "CREATE SCHEMA fw;
         ALTER TABLE flyway_schema_history SET SCHEMA fw;
         ALTER TABLE fw.flyway_schema_history RENAME TO deploy_history;",
    );
    project.write(file, text);
    let out = project.run(&db, &["apply", "--skip-backup"], 1);
    assert!(out.contains("ADOPT_REQUIRED"), "{out}");
    project.run(&db, &["adopt"], 0);
    assert!(!adopted(&db).is_empty());
    let out = project.run(&db, &["apply", "--skip-backup"], 0);
    assert!(out.contains("up to date"), "{out}");
}
