//! Where a backfill waits before each batch, so that it never makes the
//! application wait: while other sessions wait for locks on its table (or
//! for a row a transaction holds), the next batch is held back.
//!
//! [`before_batch`] is the one place a batch waits. Replica lag (SPEC 17:
//! wait while a standby is behind `max_replica_lag`) belongs here too; it
//! is marked below and wired where the replica checks live.

use std::time::{Duration, Instant};

use crate::db::Db;
use crate::db::execute::Runner;
use crate::events::Event;

/// How often the waiters are looked at while paused.
const POLL: Duration = Duration::from_millis(50);

/// The longest one pause lasts: a session that waits for something else
/// for minutes must not stop the backfill for as long.
const MAX_PAUSE: Duration = Duration::from_secs(30);

/// Sessions waiting for a lock on the table (relation or row) or for a
/// transaction to end.
const WAITERS: &str = "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
     WHERE NOT l.granted AND a.datname = current_database() AND l.pid <> pg_backend_pid() \
     AND (l.relation = $1::oid OR l.locktype = 'transactionid')";

async fn waiters(db: &Db, relation: u32) -> i64 {
    db.client
        .query_one(WAITERS, &[&relation])
        .await
        .map(|row| row.get(0))
        .unwrap_or(0)
}

/// Waits until the next batch may run: no session waits for a lock behind
/// it (at most [`MAX_PAUSE`]), and — once wired — no replica lags. Returns
/// early on Ctrl-C (the caller then stops).
pub(crate) async fn before_batch(runner: &Runner<'_>, version: &str, relation: u32) {
    wait_for_replicas(runner, version).await;
    let started = Instant::now();
    let mut said = false;
    while started.elapsed() < MAX_PAUSE && !runner.interrupt.is_triggered() {
        let count = waiters(runner.db, relation).await;
        if count == 0 {
            return;
        }
        if !said {
            said = true;
            runner.events.emit(&Event::BackfillPaused {
                namespace: runner.namespace.to_string(),
                version: version.to_string(),
                reason: format!(
                    "{count} session(s) wait for a lock; the next batch waits for them"
                ),
            });
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = runner.interrupt.wait() => return,
        }
    }
}

/// SPEC 17: before each batch, wait while a standby lags more than
/// `max_replica_lag` / `max_replica_lag_bytes`, emitting `REPLICA_LAG`.
/// The replica checks are built on another branch; this is where each
/// batch calls them. Today: nothing to wait for.
async fn wait_for_replicas(_runner: &Runner<'_>, _version: &str) {}
