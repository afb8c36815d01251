//! A service that migrates at start-up (`migrate`) or refuses to start on an
//! out-of-date schema (no argument), with its migrations in its binary.
//!
//! ```sh
//! DATABASE_URL=postgres://… cargo run -- migrate   # the release job
//! DATABASE_URL=postgres://… cargo run              # every replica
//! ```

use migsafe::source::embed::Embedded;
use migsafe::{ConnectionSettings, Migrator};

static APP: Embedded = migsafe::embedded_migrations!("app");

fn fail(err: migsafe::Error) -> ! {
    // A stable reason code per unmet reason, and the SPEC's exit code.
    for reason in err.reasons() {
        eprintln!("error[{reason}]");
    }
    eprintln!("{err}");
    if let Some(hint) = err.hint() {
        eprintln!("next: {hint}");
    }
    std::process::exit(err.exit_code());
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // The service's own connection settings (here from a URL; a service
    // may build them in code, with its TLS and a password source).
    let url = std::env::var("DATABASE_URL").unwrap_or_default();
    let config: tokio_postgres::Config = match url.parse() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("DATABASE_URL cannot be used: {err}");
            std::process::exit(5);
        }
    };
    let settings = ConnectionSettings::from_config(config).unwrap_or_else(|e| fail(e));
    let migrator = Migrator::for_embedded(&APP)
        .unwrap_or_else(|e| fail(e))
        .with_connection(settings);
    let result = if std::env::args().nth(1).as_deref() == Some("migrate") {
        migrator
            .apply(None, &Default::default())
            .await
            .map(|report| {
                for namespace in &report.namespaces {
                    println!("{}: {} applied", namespace.namespace, namespace.ran.len());
                }
            })
    } else {
        migrator
            .require_up_to_date(None)
            .await
            .map(|()| println!("schema up to date: starting"))
    };
    if let Err(err) = result {
        fail(err);
    }
}
