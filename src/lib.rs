//! # migsafe
//!
//! Safe PostgreSQL schema migrations: apply a directory of SQL migrations
//! exactly once, in order, under a per-namespace advisory lock, with every
//! transactional migration and its history row committed together, and every
//! failure reported with a stable reason code.
//!
//! The pipeline reads top to bottom: [`source`] (files) and [`db::history`]
//! feed [`plan`]; [`pipeline`] phases run a plan on a connection; the CLI
//! renders what they return. The library never prints; it sends [`events`].
//!
//! ```no_run
//! use migsafe::{Config, Migrator, pipeline::apply::ApplyOptions};
//!
//! # async fn run() -> migsafe::Result<()> {
//! let config = Config::load(None, std::path::Path::new("."))?;
//! let migrator = Migrator::new(config)
//!     .with_database_url(Some("postgres://app@localhost/app".into()));
//! // preflight → backup → migrate → postflight, under the namespace locks
//! let report = migrator.apply(None, &ApplyOptions::default()).await?;
//! for namespace in &report.namespaces {
//!     println!("{}: {} applied", namespace.namespace, namespace.ran.len());
//! }
//! # Ok(())
//! # }
//! ```
//!
//! A service that should not start on an out-of-date schema checks at
//! start-up, on the same lock and history as the CLI (a runnable example is
//! `examples/service.rs`):
//!
//! ```no_run
//! # async fn start(migrator: migsafe::Migrator) {
//! if let Err(err) = migrator.require_up_to_date(None).await {
//!     // e.g. MIGRATION_PENDING:billing:20260101090000, exit code 7
//!     eprintln!("error[{}]: {err}", err.reason());
//!     std::process::exit(err.exit_code());
//! }
//! # }
//! ```
//!
//! ## Migrations compiled into the service
//!
//! A service can carry its migrations inside its binary instead of reading a
//! directory at start-up. Its `build.rs`, with the small `migsafe-build`
//! crate under `[build-dependencies]` (it compiles no SQL parser, database
//! driver or SQLite), reads the directory with the same code as the CLI — a
//! malformed file fails the build, every problem listed — and writes the
//! normalised scripts with their build-time checksums into `OUT_DIR`:
//!
//! ```ignore
//! // build.rs
//! fn main() {
//!     migsafe_build::embed("app", "migrations");
//! }
//! ```
//!
//! [`embedded_migrations!`] includes them (`migsafe::embedded_migrations!("app")`;
//! below, the same generated code of this repository's example is included
//! by path). The service connects with its own settings — a
//! `tokio_postgres::Config` built in code, its rustls configuration, a
//! password asked for before every connection — sends events to its
//! `tracing` subscriber, and writes no file unless asked:
//!
//! ```no_run
//! use std::sync::Arc;
//! use migsafe::{ConnectionSettings, Migrator, TracingEvents};
//! use migsafe::source::embed::Embedded;
//!
//! static MIGRATIONS: Embedded =
//!     include!(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/embedded/app.rs"));
//!
//! # async fn start() -> migsafe::Result<()> {
//! let mut pg = tokio_postgres::Config::new();
//! pg.host("db.internal").user("app").dbname("app");
//! let settings = ConnectionSettings::from_config(pg)?.with_password_source(Arc::new(|| {
//!     // e.g. a fresh IAM token or the secret store's current password
//!     Box::pin(async { std::env::var("APP_DB_PASSWORD").map_err(Into::into) })
//! }));
//! let migrator = Migrator::for_embedded(&MIGRATIONS)?
//!     .with_connection(settings)
//!     .with_events(Arc::new(TracingEvents::new()));
//! // The release job: migsafe apply's pipeline, without backup or report
//! // files (`with_backups(true)`, `with_log_dir(…)` to have them).
//! migrator.apply(None, &Default::default()).await?;
//! // Every replica: refuse to start unless migrated (exit 7, every reason).
//! migrator.require_up_to_date(None).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Settings beyond the defaults come from [`Config::builder`] (or a
//! `migsafe.toml` with [`Config::load`]); [`Migrator::with_embedded`] adds
//! the migrations of each namespace. The CLI reading the same files sees the
//! same versions, checksums and history.
//!
//! ## Rolling deploys and timeouts
//!
//! A release whose newest migration is older than one already applied (the
//! previous release restarting during a rolling deploy) starts: the newer
//! versions are reported (`MIGRATION_NEWER_THAN_RELEASE`, a `newer_applied`
//! event), not refused; a missing older version, an edited one or a dirty one
//! still refuses. `Config::builder().allow_newer_applied(false)` is the
//! strict rule. Every connection is set up — TCP, TLS, authentication, the
//! password source, a first query — within `connect_timeout` (10 s unless
//! the settings say otherwise), and the [`Interrupt`] given to
//! [`Migrator::with_interrupt`] ends any wait at once (docs/deploy.md).
//!
//! ## Features
//!
//! - `engine`: connecting, planning, preflight (with lint), backup, apply,
//!   rollback, postflight, readiness, verify, the sandbox — what a service
//!   embeds: `migsafe = { version = "0.1", default-features = false,
//!   features = ["engine"] }`.
//! - `cutover-sqlite`: `cutover sqlite …` (bundled SQLite).
//! - `notify`: webhook notices on start, success, failure and rollback
//!   (`[notify] webhook_url_env`), sent from the library's events.
//! - `html-report`: `logs/report-<timestamp>.html` beside the JSON reports.
//! - `cli` (default): the `migsafe` binary (clap, terminal output), with
//!   both of the above.
//!
//! Without features, the crate only reads migration files (what
//! `migsafe-build` uses at build time).

// Always built: reading migration files, which a build script does too
// (`migsafe-build`, with no SQL parser, database driver or SQLite).
pub mod config;
pub mod error;
pub mod source;

#[cfg(feature = "engine")]
pub mod adopt;
#[cfg(feature = "cutover-sqlite")]
pub mod cutover;
#[cfg(feature = "engine")]
pub mod db;
#[cfg(feature = "engine")]
pub mod events;
#[cfg(feature = "engine")]
pub mod fleet;
#[cfg(feature = "engine")]
pub mod lint;
#[cfg(feature = "engine")]
pub mod migrator;
#[cfg(feature = "notify")]
pub mod notify;
#[cfg(feature = "engine")]
pub mod online;
#[cfg(feature = "engine")]
pub mod pipeline;
#[cfg(feature = "engine")]
pub mod plan;
#[cfg(feature = "engine")]
pub mod readiness;
#[cfg(feature = "engine")]
pub mod report;
#[cfg(feature = "engine")]
pub mod run_report;
#[cfg(feature = "engine")]
pub mod sandbox;
#[cfg(feature = "engine")]
pub mod schema;
#[cfg(feature = "engine")]
pub mod scratch;
#[cfg(feature = "engine")]
pub mod verify;

pub use config::{Config, ConfigBuilder};
#[cfg(feature = "engine")]
pub use db::ConnectionSettings;
pub use error::{Code, Error, ReasonCode, Result};
#[cfg(feature = "engine")]
pub use events::{Event, EventSink, Interrupt, TracingEvents};
#[cfg(feature = "engine")]
pub use migrator::{IgnoredFile, Migrator, NamespaceStatus, SourceSummary};
#[cfg(feature = "engine")]
pub use plan::NamespaceState;
