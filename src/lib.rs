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
//! directory at start-up. Its `build.rs` (with `migsafe` also under
//! `[build-dependencies]`) reads the directory with the same code as the CLI
//! — a malformed file fails the build, every problem listed — and writes the
//! normalised scripts with their build-time checksums into `OUT_DIR`:
//!
//! ```no_run
//! // in build.rs, inside fn main():
//! migsafe::source::embed::build("app", "migrations");
//! ```
//!
//! [`embedded_migrations!`] includes them; [`Migrator::with_embedded`] uses
//! them for their namespace. `apply` and `require_up_to_date` then work as
//! above, on the same lock and history as the CLI, which sees the same
//! versions and checksums (`examples/service.rs` runs this):
//!
//! ```ignore
//! static MIGRATIONS: migsafe::source::embed::Embedded = migsafe::embedded_migrations!("app");
//!
//! # async fn start(config: migsafe::Config) -> migsafe::Result<()> {
//! let migrator = migsafe::Migrator::new(config).with_embedded(&MIGRATIONS)?;
//! migrator.require_up_to_date(Some("app")).await?;
//! # Ok(())
//! # }
//! ```

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
pub mod lint;
#[cfg(feature = "engine")]
pub mod migrator;
#[cfg(feature = "engine")]
pub mod pipeline;
#[cfg(feature = "engine")]
pub mod plan;
#[cfg(feature = "engine")]
pub mod readiness;
#[cfg(feature = "engine")]
pub mod report;
#[cfg(feature = "engine")]
pub mod sandbox;
#[cfg(feature = "engine")]
pub mod schema;
#[cfg(feature = "engine")]
pub mod scratch;
#[cfg(feature = "engine")]
pub mod verify;

pub use config::Config;
pub use error::{Code, Error, ReasonCode, Result};
#[cfg(feature = "engine")]
pub use events::{Event, EventSink, Interrupt};
#[cfg(feature = "engine")]
pub use migrator::{IgnoredFile, Migrator, SourceSummary};
#[cfg(feature = "engine")]
pub use plan::NamespaceState;
