//! A service that uses migsafe as a library at start-up, on the same lock and
//! history as the `migsafe` CLI.
//!
//! ```sh
//! export DATABASE_URL=$(...)              # e.g. from `migsafe sandbox`
//! cargo run --example service -- migrate  # apply the pending migrations of examples/
//! cargo run --example service             # refuse to start unless fully migrated
//! ```

use std::path::Path;

use migsafe::pipeline::apply::ApplyOptions;
use migsafe::{Config, Migrator};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let config = match Config::load(Some(&root.join("migsafe.toml")), &root) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error[{}]: {err}", err.reason());
            std::process::exit(err.exit_code());
        }
    };
    let migrator = Migrator::new(config).with_database_url(std::env::var("DATABASE_URL").ok());
    let result = if std::env::args().nth(1).as_deref() == Some("migrate") {
        // One process migrates (a release job); replicas only check.
        let options = ApplyOptions {
            skip_backup: true,
            ..ApplyOptions::default()
        };
        migrator.apply(None, &options).await.map(|report| {
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
        // Every failure has a stable reason code and the SPEC exit code.
        eprintln!("error[{}]: {err}", err.reason());
        std::process::exit(err.exit_code());
    }
}
