//! A ready sink for services: every event as a `tracing` event (target
//! `migsafe`), and a span per migration from its start to its end, so a
//! service's own subscriber (JSON logs, OpenTelemetry) shows the run with
//! the rest of its start-up.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use super::{Event, EventSink};

/// Sends events to `tracing`. Failures are `ERROR`, retries, lock waits and
/// warnings `WARN`, the rest `INFO`; every event carries its kind (`event`)
/// and its fields as JSON (`fields`), the same document as a line of
/// `logs/migrations.jsonl`. Events of a running migration are inside its
/// `migration` span (fields `namespace`, `version`, `name`, `direction`).
#[derive(Default)]
pub struct TracingEvents {
    spans: Mutex<HashMap<(String, String), tracing::Span>>,
}

impl TracingEvents {
    /// A sink with no migration running.
    pub fn new() -> Self {
        Self::default()
    }
}

#[derive(Clone, Copy)]
enum Level {
    Info,
    Warn,
    Error,
}

fn level(event: &Event) -> Level {
    match event {
        Event::MigrationFailed { .. } => Level::Error,
        Event::MigrationRetried { .. }
        | Event::LockWaiting { .. }
        | Event::NoticeFailed { .. }
        | Event::ReplicaLag { .. } => Level::Warn,
        Event::ServerNotice { severity, .. } if severity == "WARNING" => Level::Warn,
        Event::RunFinished {
            succeeded: false, ..
        } => Level::Error,
        Event::PhaseChecked { result, .. } => match result {
            crate::report::Status::Fail => Level::Error,
            crate::report::Status::Warn => Level::Warn,
            crate::report::Status::Pass => Level::Info,
        },
        _ => Level::Info,
    }
}

/// The migration an event belongs to, when it belongs to one.
fn migration_of(event: &Event) -> Option<(&str, &str)> {
    match event {
        Event::MigrationStarted {
            namespace, version, ..
        }
        | Event::MigrationRetried {
            namespace, version, ..
        }
        | Event::MigrationFinished {
            namespace, version, ..
        }
        | Event::MigrationFailed {
            namespace, version, ..
        }
        | Event::ServerNotice {
            namespace, version, ..
        }
        | Event::ServerNoticesDropped {
            namespace, version, ..
        } => Some((namespace, version)),
        _ => None,
    }
}

fn send(event: &Event) {
    let document = serde_json::to_value(event).unwrap_or_default();
    let kind = document
        .get("event")
        .and_then(|v| v.as_str())
        .unwrap_or("event")
        .to_string();
    let fields = crate::db::scrub(&document.to_string());
    match level(event) {
        Level::Info => tracing::info!(target: "migsafe", event = %kind, fields = %fields, "{kind}"),
        Level::Warn => tracing::warn!(target: "migsafe", event = %kind, fields = %fields, "{kind}"),
        Level::Error => {
            tracing::error!(target: "migsafe", event = %kind, fields = %fields, "{kind}");
        }
    }
}

impl EventSink for TracingEvents {
    fn emit(&self, event: &Event) {
        let mut spans = self.spans.lock().unwrap_or_else(PoisonError::into_inner);
        let Some((namespace, version)) = migration_of(event) else {
            drop(spans);
            send(event);
            return;
        };
        let key = (namespace.to_string(), version.to_string());
        if let Event::MigrationStarted {
            name, direction, ..
        } = event
        {
            let span = tracing::info_span!(
                target: "migsafe",
                "migration",
                namespace = %namespace,
                version = %version,
                name = %name,
                direction = ?direction
            );
            spans.insert(key.clone(), span);
        }
        let ends = matches!(
            event,
            Event::MigrationFinished { .. } | Event::MigrationFailed { .. }
        );
        let span = if ends {
            spans.remove(&key)
        } else {
            spans.get(&key).cloned()
        };
        drop(spans);
        match span {
            Some(span) => span.in_scope(|| send(event)),
            None => send(event),
        }
    }
}
