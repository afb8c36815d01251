//! The library as a service embeds it: migsafe's runtime on the service's
//! own connection settings (a `tokio_postgres::Config`, a password source),
//! its events in the service's `tracing`, no files unless asked, and
//! failures that carry every reason with advice that fits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{TestDb, query, sandbox};
use migsafe::db::PasswordSource;
use migsafe::source::embed::Embedded;
use migsafe::{ConnectionSettings, Migrator, TracingEvents};

static APP: Embedded = include!("../examples/embedded/app.rs");

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The test database as a service would configure it in code: no URL and
/// no password in the config.
fn service_config(db: &TestDb) -> tokio_postgres::Config {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(sandbox().port())
        .user("postgres")
        .dbname(&db.name)
        .ssl_mode(tokio_postgres::config::SslMode::Disable);
    config
}

fn password_source(password: String, calls: Arc<AtomicUsize>) -> PasswordSource {
    Arc::new(move || {
        calls.fetch_add(1, Ordering::SeqCst);
        let password = password.clone();
        Box::pin(async move { Ok(password) })
    })
}

/// A working directory with nothing in it, to see what the library writes.
fn in_empty_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn a_service_config_with_a_rotating_password_applies_and_writes_no_file() {
    let db = TestDb::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let settings = ConnectionSettings::from_config(service_config(&db))
        .unwrap()
        .with_password_source(password_source(
            sandbox().password().to_string(),
            calls.clone(),
        ));
    assert!(
        !settings.to_string().contains(sandbox().password()),
        "{settings}"
    );
    let dir = in_empty_dir();
    let config = migsafe::Config::builder()
        .namespace("app")
        .base(dir.path())
        .build()
        .unwrap();
    let migrator = Migrator::new(config)
        .with_embedded(&APP)
        .unwrap()
        .with_connection(settings);
    let rt = runtime();
    let report = rt
        .block_on(migrator.apply(None, &Default::default()))
        .unwrap();
    assert_eq!(report.namespaces[0].ran.len(), APP.migrations.len());
    // No backup and no report file without asking: no pg_dump needed, no
    // writable directory.
    assert!(report.backups.is_empty());
    assert!(report.preflight.iter().all(|r| r.path.is_none()));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // The password was asked for on every connection, not once.
    let asked = calls.load(Ordering::SeqCst);
    assert!(asked >= 1, "asked {asked} time(s)");
    rt.block_on(migrator.require_up_to_date(None)).unwrap();
    assert!(calls.load(Ordering::SeqCst) > asked);
    let applied = query(&db.url, "SELECT count(*) FROM migsafe.schema_migrations");
    assert_eq!(
        applied[0][0].as_deref(),
        Some(APP.migrations.len().to_string().as_str())
    );
}

#[test]
fn a_failing_or_wrong_password_source_is_an_auth_failure_with_no_secret() {
    let db = TestDb::new();
    let rt = runtime();
    let failing: PasswordSource =
        Arc::new(|| Box::pin(async { Err("the vault is sealed".to_string().into()) }));
    let migrator = Migrator::for_embedded(&APP).unwrap().with_connection(
        ConnectionSettings::from_config(service_config(&db))
            .unwrap()
            .with_password_source(failing),
    );
    let err = rt.block_on(migrator.require_up_to_date(None)).unwrap_err();
    assert_eq!(err.reason().to_string(), "DATABASE_AUTH_FAILED");
    assert!(err.to_string().contains("vault is sealed"), "{err}");

    let wrong = "not-the-password-4242";
    let migrator = Migrator::for_embedded(&APP).unwrap().with_connection(
        ConnectionSettings::from_config(service_config(&db))
            .unwrap()
            .with_password_source(password_source(wrong.into(), Arc::new(AtomicUsize::new(0)))),
    );
    let err = rt.block_on(migrator.require_up_to_date(None)).unwrap_err();
    assert_eq!(err.reason().to_string(), "DATABASE_AUTH_FAILED");
    assert!(!err.to_string().contains(wrong), "{err}");
    // A database that cannot be reached is that error (exit 5), not
    // "not migrated" (7): an orchestrator must tell the two apart.
    assert_eq!(err.exit_code(), 5);
    assert!(err.hint().unwrap().contains("password"), "{err:?}");
}

#[test]
fn backups_are_taken_when_the_service_asks() {
    let db = TestDb::new();
    let dir = in_empty_dir();
    let config = migsafe::Config::builder()
        .namespace("app")
        .base(dir.path())
        .build()
        .unwrap();
    let migrator = Migrator::new(config)
        .with_embedded(&APP)
        .unwrap()
        .with_database_url(Some(db.url.clone()))
        .with_backups(true)
        .with_log_dir(dir.path().join("logs"));
    let report = runtime()
        .block_on(migrator.apply(None, &Default::default()))
        .unwrap();
    assert_eq!(report.backups.len(), 1);
    assert!(report.backups[0].path.starts_with(dir.path()));
    assert!(dir.path().join("logs").is_dir());
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn events_reach_tracing_with_a_span_per_migration() {
    let db = TestDb::new();
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let migrator = Migrator::for_embedded(&APP)
        .unwrap()
        .with_database_url(Some(db.url.clone()))
        .with_events(Arc::new(TracingEvents::new()));
    tracing::subscriber::with_default(subscriber, || {
        runtime()
            .block_on(migrator.apply(None, &Default::default()))
            .unwrap();
    });
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    for migration in APP.migrations {
        let span = format!("migration{{namespace=app version={}", migration.version);
        let inside: Vec<&str> = text.lines().filter(|l| l.contains(&span)).collect();
        assert!(
            inside.iter().any(|l| l.contains("migration_started"))
                && inside.iter().any(|l| l.contains("migration_finished")),
            "{span} in:\n{text}"
        );
    }
    assert!(text.contains("event=plan"), "{text}");
    assert!(!text.contains(sandbox().password()), "{text}");
}

#[test]
fn not_ready_carries_every_reason_with_advice_for_each() {
    let db = TestDb::new();
    let rt = runtime();
    let migrator = || {
        Migrator::for_embedded(&APP)
            .unwrap()
            .with_database_url(Some(db.url.clone()))
    };
    rt.block_on(migrator().apply(None, &Default::default()))
        .unwrap();
    // One applied migration edited (as a build from other files would
    // have it), and the newest one undone: two reasons.
    let first = APP.migrations[0].version;
    let newest = APP.migrations.last().unwrap().version;
    query(
        &db.url,
        &format!(
            "UPDATE migsafe.schema_migrations SET checksum = 'edited' WHERE version = '{first}';
             DELETE FROM migsafe.schema_migrations WHERE version = '{newest}';"
        ),
    );
    let err = rt
        .block_on(migrator().require_up_to_date(None))
        .unwrap_err();
    assert_eq!(err.exit_code(), 7);
    let reasons: Vec<String> = err.reasons().iter().map(|r| r.to_string()).collect();
    assert!(
        reasons.contains(&format!("POSTGRES_MIGRATION_CHECKSUM_MISMATCH:app:{first}")),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&format!("MIGRATION_PENDING:app:{newest}")),
        "{reasons:?}"
    );
    let mismatch = err
        .reasons()
        .into_iter()
        .find(|r| r.code() == migsafe::Code::PostgresMigrationChecksumMismatch)
        .unwrap();
    assert_eq!(mismatch.namespace(), Some("app"));
    assert_eq!(mismatch.version().unwrap().to_string(), first);
    let hint = err.hint().unwrap();
    assert!(hint.contains("--accept-checksum"), "{hint}");
    assert!(hint.contains("migsafe apply"), "{hint}");
}

#[test]
fn the_builder_refuses_what_a_config_file_would() {
    let err = migsafe::Config::builder()
        .namespace("bad name")
        .build()
        .unwrap_err();
    assert_eq!(err.reason().to_string(), "CONFIG_INVALID");
    assert_eq!(err.exit_code(), 5);
    let config = migsafe::Config::builder()
        .namespace("app")
        .history_schema("ops")
        .allow_newer_applied(false)
        .base(Path::new("/srv/app"))
        .build()
        .unwrap();
    assert_eq!(config.history_schema, "ops");
    assert!(!config.defaults.allow_newer_applied);
    assert_eq!(
        config.namespaces[0].dir,
        Path::new("/srv/app/migrations/app")
    );
}

#[test]
fn errors_keep_the_driver_error_as_their_source() {
    use std::error::Error as _;
    let rt = runtime();
    // Nothing listens on this port: the connect error's source is the driver's.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("postgres://app:secret-77@127.0.0.1:{port}/app?sslmode=disable");
    let migrator = Migrator::for_embedded(&APP)
        .unwrap()
        .with_database_url(Some(url));
    let err = rt
        .block_on(migrator.apply(None, &Default::default()))
        .unwrap_err();
    assert_eq!(err.reason().to_string(), "DATABASE_UNREACHABLE");
    let source = err.source().expect("a connect error keeps its cause");
    assert!(source.downcast_ref::<tokio_postgres::Error>().is_some());
    assert!(!format!("{source} {source:?}").contains("secret-77"));

    // A failing migration: the server's error, with its SQLSTATE.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("0001_broken.up.sql"),
        "CREATE TABLE t (id int REFERENCES nowhere (id));\n",
    )
    .unwrap();
    let db = TestDb::new();
    let config = migsafe::Config::builder()
        .dir("app", dir.path())
        .build()
        .unwrap();
    let err = rt
        .block_on(
            Migrator::new(config)
                .with_database_url(Some(db.url.clone()))
                .apply(None, &Default::default()),
        )
        .unwrap_err();
    assert_eq!(err.reason().code(), migsafe::Code::MigrationFailed);
    let server = err
        .source()
        .and_then(|s| s.downcast_ref::<tokio_postgres::Error>())
        .expect("a failed migration keeps the server's error");
    assert_eq!(server.code().unwrap().code(), "42P01");
}
