//! A service that uses migsafe as a library at start-up, on the same lock and
//! history as the `migsafe` CLI, with its migrations compiled into the binary.
//!
//! ```sh
//! export DATABASE_URL=$(...)              # e.g. from `migsafe sandbox`
//! cargo run --example service -- migrate  # apply the pending migrations (a release job)
//! cargo run --example service             # refuse to start unless fully migrated
//! migsafe status --config examples/migsafe.toml   # the CLI sees the same history
//! ```
//!
//! In your own crate, `build.rs` calls `migsafe_build::embed("app",
//! "migrations/app")` (the `migsafe-build` crate) and the code says
//! `migsafe::embedded_migrations!("app")`; `examples/embedding-service/` is
//! such a crate. This example lives inside migsafe,
//! whose own build cannot run migsafe, so it includes the same generated code
//! checked in under `examples/embedded/` (a test keeps it current).

use std::path::Path;

use migsafe::pipeline::apply::ApplyOptions;
use migsafe::source::embed::Embedded;
use migsafe::{Config, Migrator};

/// What `migsafe::embedded_migrations!("app")` expands to in a crate with the build script.
static APP: Embedded = include!("embedded/app.rs");
static AUDIT: Embedded = include!("embedded/audit.rs");

fn fail(err: migsafe::Error) -> ! {
    // Every failure has a stable reason code and the SPEC exit code.
    eprintln!("error[{}]: {err}", err.reason());
    std::process::exit(err.exit_code());
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // The configuration (namespaces, lock and timeout settings); the
    // migration directories it names are not read: the binary has them.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let config = Config::load(Some(&root.join("migsafe.toml")), &root).unwrap_or_else(|e| fail(e));
    let migrator = Migrator::new(config)
        .with_database_url(std::env::var("DATABASE_URL").ok())
        .with_embedded(&APP)
        .and_then(|m| m.with_embedded(&AUDIT))
        .unwrap_or_else(|e| fail(e));
    let result = if std::env::args().nth(1).as_deref() == Some("migrate") {
        // One process migrates (a release job); replicas only check. In
        // library use there is no backup and no report file unless asked
        // (`with_backups(true)`, `with_log_dir(…)`).
        migrator
            .apply(None, &ApplyOptions::default())
            .await
            .map(|report| {
                for namespace in &report.namespaces {
                    println!(
                        "{}: {} migration(s) applied",
                        namespace.namespace,
                        namespace.ran.len()
                    );
                }
            })
    } else {
        migrator.require_up_to_date(None).await.map(|()| {
            println!("schema is up to date: starting the service");
        })
    };
    if let Err(err) = result {
        fail(err);
    }
}
