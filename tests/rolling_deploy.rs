//! The previous release starts again after a newer one migrated (a rolling
//! deploy, an old replica restarting, "redeploy the previous version"):
//! versions newer than every file it has are noted, not refused, by apply,
//! status, check, wait and `require_up_to_date`. A missing older version, an
//! edited file and an out-of-order file still refuse, and
//! `allow_newer_applied = false` keeps the strict rule.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::{Project, TestDb};
use migsafe::events::{Event, EventSink};

const PROFILE: &str = "[profiles.production]\nrequire_migrated = true\n";

/// A release: its config and the migrations it carries.
fn release(config: &str, versions: &[(&str, &str)]) -> Project {
    let project = Project::new(&[("migsafe.toml", config)]);
    for (version, table) in versions {
        project.write(
            &format!("migrations/{version}_create_{table}.up.sql"),
            format!("CREATE TABLE {table} (id bigint PRIMARY KEY);\n").as_bytes(),
        );
        project.write(
            &format!("migrations/{version}_create_{table}.down.sql"),
            format!("DROP TABLE {table};\n").as_bytes(),
        );
    }
    project
}

const A: &[(&str, &str)] = &[("0010", "users"), ("0020", "orders")];
const B: &[(&str, &str)] = &[("0010", "users"), ("0020", "orders"), ("0030", "invoices")];

/// Collects the events of a library call.
#[derive(Default)]
struct Seen(Mutex<Vec<Event>>);

impl EventSink for Seen {
    fn emit(&self, event: &Event) {
        self.0.lock().unwrap().push(event.clone());
    }
}

fn require_up_to_date(project: &Project, db: &TestDb) -> (migsafe::Result<()>, Vec<Event>) {
    let seen = Arc::new(Seen::default());
    let config = migsafe::Config::load(None, project.path()).unwrap();
    let migrator = migsafe::Migrator::new(config)
        .with_database_url(Some(db.url.clone()))
        .with_log_dir(project.path().join("logs"))
        .with_events(seen.clone());
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(migrator.require_up_to_date(None));
    let events = seen.0.lock().unwrap().clone();
    (result, events)
}

#[test]
fn the_previous_release_starts_again_after_a_newer_one_migrated() {
    let db = TestDb::new();
    let a = release(PROFILE, A);
    let b = release(PROFILE, B);
    a.run(&db, &["apply", "--skip-backup"], 0);
    // Release B rolls out and applies 0030.
    b.run(&db, &["apply", "--skip-backup"], 0);
    assert!(db.exists("invoices"));

    // Release A's replicas restart: nothing to do, the newer version noted.
    let out = a.run(&db, &["apply", "--skip-backup"], 0);
    assert!(
        out.contains("default: note: 0030 applied by a newer release (this one knows up to 0020)"),
        "{out}"
    );
    assert!(out.contains("default: up to date"), "{out}");
    let log = a.event_log();
    assert!(
        log.contains(r#""event":"newer_applied""#)
            && log.contains("MIGRATION_NEWER_THAN_RELEASE:default:0030"),
        "{log}"
    );
    let out = a.run(&db, &["status"], 0);
    assert!(
        out.contains("default (3 applied, 0 pending, 1 applied by a newer release)"),
        "{out}"
    );
    assert!(out.contains("newer        0030"), "{out}");
    let out = a.run(&db, &["--format", "json", "status"], 0);
    assert!(out.contains(r#""state": "newer-applied""#), "{out}");
    let out = a.run(
        &db,
        &["check", "--profile", "production", "--check-migrations"],
        0,
    );
    assert!(out.contains("every rule is met"), "{out}");
    a.run(&db, &["wait", "--migrated", "--timeout", "5s"], 0);
    let out = a.run(&db, &["preflight"], 0);
    assert!(
        out.contains("warn newer_applied [MIGRATION_NEWER_THAN_RELEASE:default:0030]"),
        "{out}"
    );
    let (result, events) = require_up_to_date(&a, &db);
    result.unwrap();
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::NewerApplied { versions, known, .. } if versions == &["0030"] && known == "0020"
        )),
        "{events:?}"
    );
    // Release A cannot undo what it has no file for.
    let out = a.run(&db, &["rollback", "--skip-backup"], 1);
    assert!(out.contains("MIGRATION_FILE_MISSING:default:0030"), "{out}");
    assert!(db.exists("invoices"));

    // Release B again: everything is its own.
    let out = b.run(&db, &["apply", "--skip-backup"], 0);
    assert!(!out.contains("newer release"), "{out}");
}

#[test]
fn gaps_edits_and_out_of_order_files_still_refuse() {
    let db = TestDb::new();
    let b = release(PROFILE, B);
    b.run(&db, &["apply", "--skip-backup"], 0);

    // A release without 0020 but with 0030: 0020 is missing, not newer.
    let gap = release(PROFILE, &[("0010", "users"), ("0030", "invoices")]);
    let out = gap.run(&db, &["apply", "--skip-backup"], 1);
    assert!(
        out.contains("error[MIGRATION_FILE_MISSING:default:0020]"),
        "{out}"
    );
    let out = gap.run(
        &db,
        &["check", "--profile", "production", "--check-migrations"],
        7,
    );
    assert!(
        out.contains("[MIGRATION_FILE_MISSING:default:0020]"),
        "{out}"
    );
    let (result, _) = require_up_to_date(&gap, &db);
    assert_eq!(
        result.unwrap_err().reason().to_string(),
        "MIGRATION_FILE_MISSING:default:0020"
    );

    // Release A with 0020 edited after it was applied.
    let edited = release(PROFILE, A);
    edited.write(
        "migrations/0020_create_orders.up.sql",
        b"CREATE TABLE orders (id bigint PRIMARY KEY, note text);\n",
    );
    let out = edited.run(&db, &["apply", "--skip-backup"], 1);
    assert!(
        out.contains("POSTGRES_MIGRATION_CHECKSUM_MISMATCH:default:0020"),
        "{out}"
    );
    let (result, _) = require_up_to_date(&edited, &db);
    assert_eq!(
        result.unwrap_err().reason().to_string(),
        "POSTGRES_MIGRATION_CHECKSUM_MISMATCH:default:0020"
    );

    // A hotfix of release A numbered below 0030 never runs under it.
    let hotfix = release(
        PROFILE,
        &[("0010", "users"), ("0020", "orders"), ("0025", "hotfix")],
    );
    let out = hotfix.run(&db, &["apply", "--skip-backup"], 1);
    assert!(out.contains("MIGRATION_OUT_OF_ORDER:default:0025"), "{out}");
    assert!(!db.exists("hotfix"));
}

#[test]
fn allow_newer_applied_false_keeps_the_strict_rule() {
    let db = TestDb::new();
    let b = release(PROFILE, B);
    b.run(&db, &["apply", "--skip-backup"], 0);
    let strict = release(
        &format!("[defaults]\nallow_newer_applied = false\n{PROFILE}"),
        A,
    );
    let out = strict.run(&db, &["apply", "--skip-backup"], 1);
    assert!(
        out.contains("error[MIGRATION_FILE_MISSING:default:0030]"),
        "{out}"
    );
    assert!(out.contains("newer than 0020"), "{out}");
    let out = strict.run(
        &db,
        &["check", "--profile", "production", "--check-migrations"],
        7,
    );
    assert!(
        out.contains("[MIGRATION_FILE_MISSING:default:0030]"),
        "{out}"
    );
    let out = strict.run(&db, &["wait", "--migrated", "--timeout", "1s"], 7);
    assert!(out.contains("MIGRATION_FILE_MISSING:default:0030"), "{out}");
    let (result, events) = require_up_to_date(&strict, &db);
    assert_eq!(
        result.unwrap_err().reason().to_string(),
        "MIGRATION_FILE_MISSING:default:0030"
    );
    assert!(events.is_empty(), "{events:?}");
    // --ignore-missing still tolerates it, as any missing file.
    strict.run(&db, &["apply", "--skip-backup", "--ignore-missing"], 0);
}
