//! The per-namespace session advisory lock that makes concurrent runners
//! (replicas migrating at start-up) take turns.
//!
//! A waiting runner polls `pg_try_advisory_lock` (every 100-200 ms, jittered)
//! rather than blocking in `pg_advisory_lock`: a blocked call is an open
//! transaction, and `CREATE INDEX CONCURRENTLY` in the lock holder's
//! migration waits for every open transaction to end — holder and waiter
//! would wait for each other until the deadlock detector killed one. Each try
//! is a transaction of a few microseconds. Session locks do not survive a
//! transaction-pooling pgbouncer: migrate over a direct connection.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::activity::{Session, advisory_lock_holder};
use super::connect::Db;
use super::history::database_error;
use crate::error::{Code, Error, ReasonCode, Result};
use crate::events::Interrupt;

/// The advisory lock key of a namespace: the first 8 bytes of
/// SHA-256("migsafe:<history schema>:<namespace>"), so two histories in one
/// database do not block each other.
pub fn key(history_schema: &str, namespace: &str) -> i64 {
    let digest = Sha256::digest(format!("migsafe:{history_schema}:{namespace}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// Takes the lock, waiting at most `wait`. `on_wait` is called once with the
/// holder when the lock is not free at once. Returns how long it waited.
///
/// The first Ctrl-C or SIGTERM ends the wait at once (`interrupt`): a
/// Kubernetes grace period is far shorter than `lock_wait`, and nothing has
/// started yet, so there is nothing to finish.
pub(crate) async fn acquire(
    db: &Db,
    key: i64,
    namespace: &str,
    wait: Duration,
    interrupt: &Interrupt,
    on_wait: impl FnOnce(Option<&Session>),
) -> Result<Duration> {
    let started = Instant::now();
    if try_lock(db, key).await? {
        return Ok(Duration::ZERO);
    }
    let holder = advisory_lock_holder(db, key).await.ok().flatten();
    on_wait(holder.as_ref());
    loop {
        let remaining = wait.saturating_sub(started.elapsed());
        if remaining.is_zero() {
            let holder = advisory_lock_holder(db, key).await.ok().flatten();
            return Err(busy(namespace, holder.as_ref(), wait));
        }
        let pause = POLL + Duration::from_millis(fastrand::u64(0..=POLL_JITTER_MS));
        tokio::select! {
            () = tokio::time::sleep(pause.min(remaining)) => {}
            () = interrupt.wait() => return Err(interrupted(namespace, started.elapsed())),
        }
        if try_lock(db, key).await? {
            return Ok(started.elapsed());
        }
    }
}

/// Pause between tries while another runner holds the lock, plus jitter.
const POLL: Duration = Duration::from_millis(100);
const POLL_JITTER_MS: u64 = 100;

async fn try_lock(db: &Db, key: i64) -> Result<bool> {
    Ok(db
        .client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
        .await
        .map_err(|e| database_error(db, "take the namespace lock", &e))?
        .get(0))
}

/// Releases the lock (closing the connection releases it too).
pub(crate) async fn release(db: &Db, key: i64) {
    match db
        .client
        .query_one("SELECT pg_advisory_unlock($1)", &[&key])
        .await
    {
        Ok(_) => {}
        // The session is gone, and the lock with it.
        Err(err) if err.is_closed() => {}
        Err(err) => tracing::warn!("could not release the namespace lock: {err}"),
    }
}

fn interrupted(namespace: &str, waited: Duration) -> Error {
    Error::Refused {
        reason: ReasonCode::about(Code::Interrupted, namespace),
        message: format!(
            "interrupted while waiting {} for the lock of namespace `{namespace}`: nothing was started and nothing changed",
            crate::config::format_duration(waited)
        ),
        hint: Some("run the command again once the session holding the lock has finished (`migsafe status` and pg_stat_activity show who it is)".into()),
    }
}

fn busy(namespace: &str, holder: Option<&Session>, wait: Duration) -> Error {
    let who = holder.map_or_else(
        || "another session (it ended while we looked)".to_string(),
        Session::describe,
    );
    let pid = holder.map_or_else(|| "<pid>".to_string(), |h| h.pid.to_string());
    Error::Refused {
        reason: ReasonCode::about(Code::AdvisoryLockBusy, namespace),
        message: format!(
            "namespace `{namespace}` is locked by another migsafe run, held by {who}; gave up after waiting {}; nothing was changed",
            crate::config::format_duration(wait)
        ),
        hint: Some(format!(
            "let that run finish (or, if it is stuck, end it with SELECT pg_terminate_backend({pid}); its migration then rolls back or is left dirty), then retry; `lock_wait` sets how long to wait"
        )),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_differ_by_schema_and_namespace() {
        assert_ne!(super::key("migsafe", "a"), super::key("migsafe", "b"));
        assert_ne!(super::key("migsafe", "a"), super::key("other", "a"));
        assert_eq!(super::key("migsafe", "a"), super::key("migsafe", "a"));
    }
}
