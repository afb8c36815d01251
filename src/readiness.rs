//! Start-up ordering and the readiness contract (SPEC 9): `migsafe wait`
//! blocks until the database accepts connections — and, with `--migrated`,
//! until every namespace is fully applied, clean and unedited — so container
//! replicas start only once migrations have completed.

use std::time::{Duration, Instant};

use crate::config::{Namespace, format_duration};
use crate::db::ConnectionSettings;
use crate::db::history::History;
use crate::error::{Code, Error, ReasonCode, Result};
use crate::plan::{NamespaceState, Tolerance};
use crate::source::MigrationSet;

/// How often `wait` looks again.
const POLL: Duration = Duration::from_millis(500);

/// One namespace to wait for.
pub struct Waited<'a> {
    /// The namespace.
    pub namespace: &'a Namespace,
    /// Its files (for `--migrated`).
    pub sources: &'a MigrationSet,
    /// Its database.
    pub settings: &'a ConnectionSettings,
}

/// Why a namespace is not ready yet, or `None` when it is.
async fn not_ready(item: &Waited<'_>, history_schema: &str, migrated: bool) -> Option<String> {
    let db = match item.settings.connect().await {
        Ok(db) => db,
        Err(err) => return Some(err.to_string()),
    };
    if !migrated {
        return None;
    }
    let history = History::new(history_schema);
    let rows = match history.read(&db, &item.namespace.name).await {
        Ok(rows) => rows,
        Err(err) => return Some(err.to_string()),
    };
    let state = NamespaceState::build(
        &item.namespace.name,
        item.namespace.forward_only,
        item.sources,
        rows,
    );
    if let Err(err) = state.check_can_move(&Tolerance::default()) {
        return Some(format!("{}: {err}", err.reason()));
    }
    let pending = state.pending().count();
    if pending > 0 {
        return Some(format!(
            "namespace `{}` has {pending} pending migration(s)",
            item.namespace.name
        ));
    }
    None
}

/// Waits until every database accepts connections (and, with `migrated`,
/// every namespace is fully applied), at most `timeout`. Returns how long it
/// took.
pub async fn wait(
    items: &[Waited<'_>],
    history_schema: &str,
    timeout: Duration,
    migrated: bool,
) -> Result<Duration> {
    let started = Instant::now();
    loop {
        let mut waiting_for = None;
        for item in items {
            if let Some(why) = not_ready(item, history_schema, migrated).await {
                waiting_for = Some(why);
                break;
            }
        }
        let Some(why) = waiting_for else {
            return Ok(started.elapsed());
        };
        let remaining = timeout.saturating_sub(started.elapsed());
        if remaining.is_zero() {
            return Err(Error::NotReady {
                reason: ReasonCode::new(Code::WaitTimeout),
                message: format!(
                    "not ready after {}: {why}",
                    format_duration(started.elapsed())
                ),
                hint: Some(if migrated {
                    "start the application only after `migsafe apply` has completed; raise --timeout if migrations are slow".into()
                } else {
                    "check that the database is running and reachable from here; raise --timeout for slow starts".into()
                }),
            });
        }
        tokio::time::sleep(POLL.min(remaining)).await;
    }
}
