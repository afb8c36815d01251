//! `migsafe fleet apply | status` (SPEC 17): the guarded apply over many
//! databases of one sandbox, a canary first, a stop after too many
//! failures with the failing database named and the later ones untouched,
//! and a rerun that converges.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use common::{Project, TestDb, expect_exit, migsafe_command, sandbox, two_tables};

/// The databases file, outside the project (it holds the password, which
/// must appear nowhere in the project's logs, reports and backups).
struct Fleet {
    dbs: Vec<TestDb>,
    _dir: tempfile::TempDir,
    file: String,
}

impl Fleet {
    fn new(count: usize) -> Fleet {
        let dbs: Vec<TestDb> = (0..count).map(|_| TestDb::new()).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("databases.txt");
        let mut text = String::from("# the tenants\n\n");
        for db in &dbs {
            text.push_str(&db.url);
            text.push('\n');
        }
        std::fs::write(&path, text).unwrap();
        Fleet {
            dbs,
            file: path.display().to_string(),
            _dir: dir,
        }
    }

    /// How the fleet names database `i`.
    fn name(&self, i: usize) -> String {
        format!("127.0.0.1:{}/{}", sandbox().port(), self.dbs[i].name)
    }

    fn dir(&self, i: usize) -> String {
        format!("127.0.0.1_{}_{}", sandbox().port(), self.dbs[i].name)
    }
}

fn fleet(project: &Project, fleet: &Fleet, args: &[&str], code: i32) -> String {
    let output = migsafe_command()
        .current_dir(project.path())
        .args(["fleet"])
        .args(args)
        .args(["--databases", &fleet.file])
        .timeout(std::time::Duration::from_secs(600))
        .output()
        .unwrap();
    let text = expect_exit(&output, code);
    assert!(
        !text.contains(sandbox().password()),
        "the password leaked:\n{text}"
    );
    text
}

/// Makes `0002_create_orders` fail on this database.
fn poison(db: &TestDb) {
    db.query("CREATE TABLE orders (poisoned int)");
}

#[test]
fn sixty_databases_one_poisoned_stops_named_later_ones_untouched_then_all_converge() {
    let project = two_tables();
    let fleet_ = Fleet::new(60);
    // A database gone read-only (a maintenance switch left on): every
    // write fails, and putting it back changes no schema.
    let admin = sandbox().url("postgres");
    common::query(
        &admin,
        &format!(
            "ALTER DATABASE {} SET default_transaction_read_only = on",
            fleet_.dbs[30].name
        ),
    );
    let out = fleet(
        &project,
        &fleet_,
        &["apply", "--parallel", "4", "--skip-backup"],
        2,
    );
    // Named with its reason code; the stop is said.
    let failed_line = out
        .lines()
        .find(|l| l.contains(&format!("{}: FAILED", fleet_.name(30))))
        .unwrap_or_else(|| panic!("the poisoned database is not named:\n{out}"));
    assert!(failed_line.contains("DATABASE_ERROR"), "{failed_line}");
    assert!(out.contains("FLEET_STOPPED"), "{out}");
    assert!(out.contains("[ 1/60] "), "no running count:\n{out}");
    // Everything started before it finished; nothing after the ones in flight started.
    for i in 0..30 {
        assert_eq!(fleet_.dbs[i].history("default").len(), 2, "database {i}");
    }
    assert!(fleet_.dbs[30].history("default").is_empty());
    for i in 34..60 {
        assert!(
            fleet_.dbs[i].history("default").is_empty(),
            "database {i} was started"
        );
        assert!(!fleet_.dbs[i].exists("users"), "database {i} was touched");
    }
    // Each database has its own event log.
    assert!(
        project
            .path()
            .join("logs")
            .join(fleet_.dir(0))
            .join("migrations.jsonl")
            .is_file()
    );
    assert!(!project.path().join("logs").join(fleet_.dir(59)).exists());
    // ...and the fleet a line per database that ended.
    let fleet_log = project.event_log();
    assert!(fleet_log.contains("\"event\":\"fleet_database_done\""));
    assert!(fleet_log.contains(&fleet_.name(30)));

    let status = fleet(&project, &fleet_, &["status"], 0);
    let line = |i: usize| {
        status
            .lines()
            .find(|l| l.contains(&format!("{}: ", fleet_.name(i))))
            .unwrap_or_else(|| panic!("no line for {i}:\n{status}"))
            .to_string()
    };
    assert!(line(0).contains("up to date"), "{}", line(0));
    assert!(line(30).contains("2 pending"), "{}", line(30));
    assert!(line(59).contains("2 pending"), "{}", line(59));

    // Fixed: the rerun skips what is done and converges the rest.
    common::query(
        &admin,
        &format!(
            "ALTER DATABASE {} RESET default_transaction_read_only",
            fleet_.dbs[30].name
        ),
    );
    let out = fleet(
        &project,
        &fleet_,
        &["apply", "--parallel", "8", "--skip-backup"],
        0,
    );
    assert!(
        out.lines()
            .any(|l| l.contains(&format!("{}: up to date", fleet_.name(0)))),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains(&format!("{}: applied 2 migration(s)", fleet_.name(30)))),
        "{out}"
    );
    assert!(out.contains("0 failed"), "{out}");
    for (i, db) in fleet_.dbs.iter().enumerate() {
        assert_eq!(db.history("default").len(), 2, "database {i}");
    }
    let output = migsafe_command()
        .current_dir(project.path())
        .args([
            "fleet",
            "status",
            "--format",
            "json",
            "--databases",
            &fleet_.file,
        ])
        .output()
        .unwrap();
    let status = expect_exit(&output, 0);
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let databases = document["databases"].as_array().unwrap();
    assert_eq!(databases.len(), 60);
    assert!(
        databases.iter().all(|d| d["outcome"] == "up_to_date"),
        "{status}"
    );
    assert_eq!(document["succeeded"], 60);
}

#[test]
fn a_failed_canary_stops_the_fleet_whatever_max_failures_says() {
    let project = two_tables();
    let fleet_ = Fleet::new(5);
    poison(&fleet_.dbs[0]);
    let out = fleet(
        &project,
        &fleet_,
        &[
            "apply",
            "--canary",
            "1",
            "--max-failures",
            "3",
            "--skip-backup",
        ],
        2,
    );
    assert!(out.contains("FLEET_STOPPED"), "{out}");
    for db in &fleet_.dbs[1..] {
        assert!(db.history("default").is_empty());
    }
}

#[test]
fn max_failures_lets_the_others_run_and_json_is_one_document() {
    let project = two_tables();
    let fleet_ = Fleet::new(6);
    poison(&fleet_.dbs[2]);
    poison(&fleet_.dbs[4]);
    let output = migsafe_command()
        .current_dir(project.path())
        .args(["fleet", "apply", "--max-failures", "2", "--skip-backup"])
        .args(["--databases", &fleet_.file, "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(document["command"], "fleet apply");
    assert_eq!(document["failed"], 2);
    assert_eq!(document["succeeded"], 4);
    assert_eq!(document["not_started"], 0);
    assert_eq!(document["databases"][2]["outcome"], "failed");
    assert_eq!(
        document["databases"][2]["reason"],
        "MIGRATION_FAILED:default:0002"
    );
    assert_eq!(document["databases"][2]["database"], fleet_.name(2));
    for i in [0, 1, 3, 5] {
        assert_eq!(fleet_.dbs[i].history("default").len(), 2);
    }
    // --parallel 0 would run nothing: a usage error.
    let output = migsafe_command()
        .current_dir(project.path())
        .args([
            "fleet",
            "status",
            "--parallel",
            "0",
            "--databases",
            &fleet_.file,
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(5), "{}", common::text(&output));
    // Every database tried, two failed: the summary says FLEET_FAILED.
    let output = migsafe_command()
        .current_dir(project.path())
        .args(["fleet", "apply", "--max-failures", "2", "--skip-backup"])
        .args(["--databases", &fleet_.file])
        .output()
        .unwrap();
    let text = common::text(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("FLEET_FAILED"), "{text}");
    // A failed database's line carries the server's error, not only
    // "0002 create_orders failed:".
    let line = text
        .lines()
        .find(|l| l.contains(&format!("{}: FAILED", fleet_.name(2))))
        .unwrap_or_else(|| panic!("no line for the poisoned database:\n{text}"));
    assert!(
        line.contains("MIGRATION_FAILED:default:0002")
            && line.contains("relation \"orders\" already exists"),
        "{line}"
    );
}

#[test]
fn every_database_gets_its_own_backup_and_reports_and_no_password_is_written() {
    let project = two_tables();
    let fleet_ = Fleet::new(3);
    let output = migsafe_command()
        .current_dir(project.path())
        .args(["fleet", "apply", "--parallel", "2"])
        .args(["--databases", &fleet_.file])
        .output()
        .unwrap();
    expect_exit(&output, 0);
    for i in 0..3 {
        let logs = project.path().join("logs").join(fleet_.dir(i));
        let reports: Vec<String> = std::fs::read_dir(&logs)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert!(
            reports.iter().any(|r| r.starts_with("preflight-report-")),
            "{reports:?}"
        );
        assert!(
            reports.iter().any(|r| r.starts_with("postflight-report-")),
            "{reports:?}"
        );
        let backups = project
            .path()
            .join("backups/migrations")
            .join(fleet_.dir(i));
        assert!(std::fs::read_dir(&backups).unwrap().count() >= 1);
    }
    common::assert_no_secret(&project, &output, sandbox().password());
}

/// A project whose second migration runs until it is cancelled.
fn slow_second() -> Project {
    Project::new(&[
        (
            "migrations/0001_create_users.up.sql",
            "CREATE TABLE users (id bigint PRIMARY KEY);\n",
        ),
        (
            "migrations/0002_slow.up.sql",
            "CREATE TABLE never (id int);\nSELECT pg_sleep(60);\n",
        ),
    ])
}

#[test]
fn ctrl_c_is_interrupted_130_lists_what_committed_and_what_never_started() {
    let project = slow_second();
    let fleet_ = Fleet::new(3);
    let child = std::process::Command::new(common::migsafe_bin())
        .current_dir(project.path())
        .env_remove("DATABASE_URL")
        .env("NO_COLOR", "1")
        .args(["fleet", "apply", "--parallel", "1", "--canary", "0"])
        .args(["--skip-backup", "--format", "json"])
        .args(["--databases", &fleet_.file])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    common::wait_for_query(&fleet_.dbs[0], "pg_sleep(60)");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    let text = common::text(&output);
    assert_eq!(output.status.code(), Some(130), "{text}");
    let document: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {text}"));
    let first = &document["databases"][0];
    assert_eq!(first["outcome"], "interrupted", "{text}");
    // 0001 committed before the Ctrl-C: the outcome says so.
    assert_eq!(
        first["migrations"],
        serde_json::json!(["default:0001"]),
        "{text}"
    );
    assert_eq!(
        first["reason"], "MIGRATION_CANCELLED:default:0002",
        "{text}"
    );
    for i in 1..3 {
        assert_eq!(document["databases"][i]["outcome"], "not_started", "{text}");
    }
    assert_eq!(document["interrupted"], 1, "{text}");
    assert_eq!(document["failed"], 0, "Ctrl-C is no failure: {text}");
    assert_eq!(document["not_started"], 2, "{text}");
    assert_eq!(document["stopped"], "INTERRUPTED", "{text}");
    assert!(
        text.contains(&format!(
            "{}: INTERRUPTED after 1 migration(s) committed: MIGRATION_CANCELLED:default:0002",
            fleet_.name(0)
        )),
        "{text}"
    );
    assert_eq!(fleet_.dbs[0].history("default").len(), 1);
    assert!(!fleet_.dbs[0].exists("never"));
    assert!(fleet_.dbs[1].history("default").is_empty());
}

#[test]
fn a_database_url_on_the_command_line_is_refused_the_file_names_the_databases() {
    let project = two_tables();
    let fleet_ = Fleet::new(1);
    let output = migsafe_command()
        .current_dir(project.path())
        .args([
            "fleet",
            "apply",
            "--skip-backup",
            "--database-url",
            &fleet_.dbs[0].url,
        ])
        .args(["--databases", &fleet_.file])
        .output()
        .unwrap();
    let text = expect_exit(&output, 5);
    assert!(text.contains("error[USAGE]"), "{text}");
    assert!(text.contains("--databases"), "{text}");
    assert!(!text.contains(sandbox().password()), "{text}");
    assert!(fleet_.dbs[0].history("default").is_empty());
    // DATABASE_URL in the environment (a sandbox, a CI job) is not the flag.
    let output = migsafe_command()
        .current_dir(project.path())
        .env("DATABASE_URL", &fleet_.dbs[0].url)
        .args([
            "fleet",
            "apply",
            "--skip-backup",
            "--databases",
            &fleet_.file,
        ])
        .output()
        .unwrap();
    expect_exit(&output, 0);
    assert_eq!(fleet_.dbs[0].history("default").len(), 2);
}

/// A database that cannot be read is what a monitoring script must see:
/// `fleet status` exits 5 (cannot connect, SPEC 11) and says how many.
#[test]
fn status_exits_5_when_a_database_cannot_be_read() {
    let project = two_tables();
    let good = TestDb::new();
    // A port nothing listens on: bound, then let go.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("databases.txt");
    std::fs::write(
        &file,
        format!(
            "{}\npostgres://postgres@127.0.0.1:{closed}/gone?connect_timeout=5\n",
            good.url
        ),
    )
    .unwrap();
    let status = |extra: &[&str]| {
        migsafe_command()
            .current_dir(project.path())
            .args(["fleet", "status", "--databases"])
            .arg(&file)
            .args(extra)
            .output()
            .unwrap()
    };
    let output = status(&[]);
    let text = expect_exit(&output, 5);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("127.0.0.1:{closed}/gone: FAILED")),
        "{text}"
    );
    assert!(
        stdout.contains("2 pending"),
        "the good one is read:\n{text}"
    );
    assert!(
        stdout.contains("FLEET_UNREADABLE: 1 of 2 database(s) could not be read"),
        "{text}"
    );

    let output = status(&["--format", "json"]);
    assert_eq!(output.status.code(), Some(5), "{}", common::text(&output));
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(document["unreadable"], 1, "{document}");
    assert_eq!(document["databases"][1]["outcome"], "failed", "{document}");

    // Every database read: 0 again, pending or not.
    std::fs::write(&file, format!("{}\n", good.url)).unwrap();
    expect_exit(&status(&[]), 0);
}

/// `--database-url` is refused by fleet, so fleet's help does not offer it
/// (among its options or in its usage line) and says why instead.
#[test]
fn fleet_help_does_not_offer_the_refused_database_url() {
    for args in [
        &["fleet", "--help"][..],
        &["fleet", "apply", "--help"],
        &["fleet", "status", "--help"],
        &["fleet", "status", "-h"],
        &["help", "fleet", "apply"],
    ] {
        let output = migsafe_command().args(args).output().unwrap();
        let text = expect_exit(&output, 0);
        assert!(
            !text.contains("--database-url <URL>"),
            "{args:?} offers --database-url:\n{text}"
        );
        let usage = text.lines().find(|l| l.starts_with("Usage:")).unwrap();
        assert!(!usage.contains("database-url"), "{usage}");
        if args.contains(&"apply") || args.contains(&"status") {
            assert!(
                text.contains("`--database-url` is refused"),
                "{args:?} does not say why:\n{text}"
            );
        }
    }
    // The other commands still offer it.
    let text = expect_exit(
        &migsafe_command()
            .args(["apply", "--help"])
            .output()
            .unwrap(),
        0,
    );
    assert!(text.contains("--database-url <URL>"), "{text}");
}

/// `fleet status` names what apply would refuse on: a schema changed
/// outside migsafe (SCHEMA_DRIFT) and another tool's history not adopted
/// (ADOPT_REQUIRED), each on its database, as `status` does on one.
#[test]
fn status_names_drift_and_a_history_to_adopt() {
    let project = two_tables();
    let fleet_of = Fleet::new(3);
    fleet(&project, &fleet_of, &["apply"], 0);
    fleet_of.dbs[0].query("CREATE TABLE made_by_hand (x int)");
    // The third: a golang-migrate history and nothing of migsafe's.
    fleet_of.dbs[2].query(
        "DROP SCHEMA migsafe CASCADE; DROP TABLE orders, users CASCADE; \
         CREATE TABLE schema_migrations (version bigint PRIMARY KEY, dirty boolean NOT NULL); \
         INSERT INTO schema_migrations VALUES (2, false)",
    );
    let text = fleet(&project, &fleet_of, &["status"], 0);
    assert!(
        text.contains(&format!(
            "{}: FAILED SCHEMA_DRIFT:default",
            fleet_of.name(0)
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("{}: up to date", fleet_of.name(1))),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{}: FAILED ADOPT_REQUIRED:default",
            fleet_of.name(2)
        )),
        "{text}"
    );
    // One database, the same news.
    let output = project
        .migsafe(&fleet_of.dbs[0])
        .arg("status")
        .output()
        .unwrap();
    let one = expect_exit(&output, 0);
    assert!(one.contains("SCHEMA_DRIFT:default"), "{one}");
    assert!(one.contains("made_by_hand"), "{one}");
}
