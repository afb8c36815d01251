//! Where a backfill waits before each batch, so that it never makes the
//! application wait: while other sessions wait for locks on its table (or
//! for a row a transaction holds), the next batch is held back.
//!
//! `before_batch` is the one place a batch waits, also while a standby
//! replays later than `max_replica_lag` / `max_replica_lag_bytes` (SPEC 17).

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

/// Waits until the next batch may run: no standby is behind (up to
/// `lock_wait`, then the replicas' refusal), and no session waits for a lock
/// behind it (at most [`MAX_PAUSE`]). Returns early on Ctrl-C (the caller
/// then stops).
pub(crate) async fn before_batch(
    runner: &Runner<'_>,
    version: &str,
    relation: u32,
) -> crate::error::Result<()> {
    runner
        .replicas
        .before(
            crate::db::replicas::Step::Batch,
            runner.db,
            runner.events,
            runner.interrupt,
        )
        .await?;
    let started = Instant::now();
    let mut said = false;
    while started.elapsed() < MAX_PAUSE && !runner.interrupt.is_triggered() {
        let count = waiters(runner.db, relation).await;
        if count == 0 {
            return Ok(());
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
            () = runner.interrupt.wait() => return Ok(()),
        }
    }
    Ok(())
}
