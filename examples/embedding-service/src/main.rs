//! A service that migrates at start-up (`migrate`) or refuses to start on an
//! out-of-date schema (no argument), with its migrations in its binary.
//!
//! ```sh
//! DATABASE_URL=postgres://… cargo run -- migrate   # the release job
//! DATABASE_URL=postgres://… cargo run              # every replica
//! ```

use std::sync::Arc;

use migsafe::source::embed::Embedded;
use migsafe::{ConnectionSettings, Event, EventSink, Interrupt, Migrator};

static APP: Embedded = migsafe::embedded_migrations!("app");

/// Every event as one JSON line on stderr (a real service would pass
/// `migsafe::TracingEvents` to its own `tracing` subscriber): lock waits
/// with the session holding the lock, retries, each migration's start and
/// end, versions applied by a newer release.
struct JsonLines;

impl EventSink for JsonLines {
    fn emit(&self, event: &Event) {
        if let Ok(line) = serde_json::to_string(event) {
            eprintln!("{line}");
        }
    }
}

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

/// SIGTERM (the orchestrator stopping the pod) or Ctrl-C: migsafe cancels
/// the running statement on the server and stops with the history true.
fn stop_on_signal(interrupt: Interrupt) {
    tokio::spawn(async move {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        interrupt.trigger();
    });
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // The service's own connection settings (here from a URL; a service
    // may build them in code, with its TLS and a password source).
    let url = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            eprintln!("DATABASE_URL is not set: export DATABASE_URL=postgres://user@host:5432/db");
            std::process::exit(5);
        }
    };
    let config: tokio_postgres::Config = match url.parse() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("DATABASE_URL cannot be used: {err}");
            std::process::exit(5);
        }
    };
    let settings = ConnectionSettings::from_config(config).unwrap_or_else(|e| fail(e));
    let interrupt = Interrupt::new();
    stop_on_signal(interrupt.clone());
    let migrator = Migrator::for_embedded(&APP)
        .unwrap_or_else(|e| fail(e))
        .with_connection(settings)
        .with_events(Arc::new(JsonLines))
        .with_interrupt(interrupt);
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
