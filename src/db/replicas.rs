//! Streaming standbys (SPEC 17): how far each one is behind, and the wait
//! before each migration (and each backfill batch) while one is too far.
//!
//! DDL and backfills produce WAL that a standby replays later; a migration
//! that runs while a standby is minutes behind is lost on failover, and a
//! long replay cancels queries on a hot standby. So the runner asks the
//! primary (`pg_stat_replication`) before each step and waits, up to
//! `lock_wait`, while any standby is behind `max_replica_lag` or
//! `max_replica_lag_bytes`, sending a [`Event::ReplicaLag`] while it waits.
//!
//! Bytes are measured from the primary's current WAL position to the
//! standby's replay position; time is the server's own `replay_lag`, which
//! goes stale while a standby replays nothing, so the byte measure is the
//! one that notices a paused or stuck replay.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::connect::Db;
use super::history::database_error;
use crate::config::{Config, format_duration};
use crate::error::{Code, Error, ReasonCode, Result};
use crate::events::{Event, EventSink, Interrupt, millis};

/// Every walsender but base backups, with its unreplayed WAL in bytes and
/// its replay lag in milliseconds. On a cascading standby the reference is
/// its own replay position (`pg_current_wal_lsn()` fails during recovery).
/// The LSN columns are NULL for a role without `pg_read_all_stats`: `state`
/// says whether the row could be read at all.
const STANDBYS: &str = "SELECT COALESCE(NULLIF(application_name, ''), host(client_addr), 'pid ' || pid::text), \
     state, sync_state, \
     pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, replay_lsn)::bigint, \
     (EXTRACT(epoch FROM replay_lag) * 1000)::bigint \
     FROM pg_stat_replication WHERE state IS DISTINCT FROM 'backup' ORDER BY 1";

/// How often the wait asks again.
const POLL: Duration = Duration::from_millis(250);

/// How often a standby that stays behind is announced again.
const ANNOUNCE_EVERY: Duration = Duration::from_secs(5);

/// One streaming standby as the primary sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Standby {
    /// `application_name` (a standby's `cluster_name`), else its address.
    pub name: String,
    /// `streaming`, `catchup`, `startup`…; `None` when this role may not
    /// read the row (needs `pg_read_all_stats` or `pg_monitor`).
    pub state: Option<String>,
    /// `async`, `sync`, `potential`, `quorum`.
    pub sync_state: Option<String>,
    /// WAL not yet replayed, in bytes (`None`: not known yet, or not readable).
    pub lag_bytes: Option<i64>,
    /// The server's replay lag (`None` when it has measured none: an idle,
    /// caught-up standby).
    pub lag_ms: Option<u64>,
}

/// The thresholds and the bound of the wait, from `[defaults]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `max_replica_lag`.
    pub max_lag: Duration,
    /// `max_replica_lag_bytes`.
    pub max_lag_bytes: i64,
    /// `lock_wait`: how long to wait for them before refusing.
    pub wait: Duration,
    /// `expect_standbys`: fewer streaming is a refusal before each
    /// migration and batch too, not only at preflight (a standby that died
    /// mid-run would otherwise end the wait as "nothing behind").
    pub expect: Option<u32>,
}

impl Limits {
    /// The limits a configuration sets.
    pub fn of(config: &Config) -> Limits {
        Limits {
            max_lag: config.defaults.max_replica_lag,
            max_lag_bytes: config.defaults.max_replica_lag_bytes,
            wait: config.defaults.lock_wait,
            expect: config.defaults.expect_standbys,
        }
    }

    /// Both thresholds, for messages: `30s / 256.0 MB`.
    pub fn describe(&self) -> String {
        format!(
            "{} / {}",
            format_duration(self.max_lag),
            crate::pipeline::preflight::human_bytes(u64::try_from(self.max_lag_bytes).unwrap_or(0))
        )
    }
}

impl Standby {
    /// Whether this role can see the standby's positions.
    pub fn readable(&self) -> bool {
        self.state.is_some()
    }

    /// Behind either threshold. A readable standby whose replay position is
    /// not known yet (still starting) counts as behind; one whose row this
    /// role may not read never does (preflight warns about it instead).
    pub fn behind(&self, limits: &Limits) -> bool {
        if !self.readable() {
            return false;
        }
        let bytes = self.lag_bytes.is_none_or(|b| b > limits.max_lag_bytes);
        // replay_lag keeps its last value while nothing is replayed: with
        // every byte replayed, the standby is not behind, however old that is.
        let time = !self.caught_up()
            && self
                .lag_ms
                .is_some_and(|ms| Duration::from_millis(ms) > limits.max_lag);
        bytes || time
    }

    /// Every byte of WAL replayed.
    pub fn caught_up(&self) -> bool {
        self.lag_bytes.is_some_and(|b| b <= 0)
    }

    /// `standby1 (streaming, async): 12.3 kB, 1.2s behind`.
    pub fn describe(&self) -> String {
        format!(
            "{} ({}, {}): {}",
            self.name,
            self.state.as_deref().unwrap_or("state not readable"),
            self.sync_state.as_deref().unwrap_or("?"),
            self.lag()
        )
    }

    /// The lag alone: `12.3 kB, 1.2s behind`, or `caught up`.
    pub fn lag(&self) -> String {
        if self.caught_up() {
            return "caught up".to_string();
        }
        let bytes = self.lag_bytes.map_or_else(
            || "replay position unknown".to_string(),
            |b| crate::pipeline::preflight::human_bytes(u64::try_from(b).unwrap_or(0)),
        );
        match self.lag_ms {
            Some(ms) => format!(
                "{bytes}, {} behind",
                format_duration(Duration::from_millis(ms))
            ),
            None => format!("{bytes} behind"),
        }
    }

    /// `REPLICA_LAG:{name}`.
    pub fn reason(&self) -> ReasonCode {
        ReasonCode::about(Code::ReplicaLag, &self.name)
    }
}

/// What a wait found.
#[derive(Debug, Clone, Copy)]
pub struct Waited {
    /// How long it waited (zero when no standby was behind).
    pub duration: Duration,
    /// Standbys seen at the end (zero: the server has none right now, or a
    /// `Watch` saw none less than `NO_STANDBY_RECHECK` ago).
    pub standbys: usize,
}

/// The standbys streaming from `db`'s server (none on a server without any).
pub(crate) async fn standbys(db: &Db) -> Result<Vec<Standby>> {
    let rows = db
        .client
        .query(STANDBYS, &[])
        .await
        .map_err(|e| database_error(db, "read pg_stat_replication", &e))?;
    Ok(rows
        .iter()
        .map(|row| Standby {
            name: row.get::<_, Option<String>>(0).unwrap_or_default(),
            state: row.get(1),
            sync_state: row.get(2),
            lag_bytes: row.get(3),
            lag_ms: row
                .get::<_, Option<i64>>(4)
                .map(|ms| u64::try_from(ms).unwrap_or(0)),
        })
        .collect())
}

/// What a wait holds back: the next migration, or a backfill's next batch
/// (its messages say which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The next migration of the run.
    Migration,
    /// The next batch of a backfill.
    Batch,
}

impl Step {
    /// `migration` or `batch`, as events and messages say it.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Migration => "migration",
            Step::Batch => "batch",
        }
    }
}

/// How long "this server has no standby" is trusted: many short steps
/// (small migrations, quick backfill batches) need not ask
/// `pg_stat_replication` before each one; once a second is enough to see
/// a standby appear.
pub(crate) const NO_STANDBY_RECHECK: Duration = Duration::from_secs(1);

/// The replica waits of one run on one connection: the limits, and when
/// the server was last seen without any standby (then the next
/// [`NO_STANDBY_RECHECK`] of steps, migrations and backfill batches alike,
/// do not ask again). With `expect_standbys` set, seeing none is a refusal,
/// so nothing is skipped.
#[derive(Debug)]
pub(crate) struct Watch {
    limits: Limits,
    no_standby_at: std::sync::Mutex<Option<Instant>>,
}

impl Watch {
    /// A watch with nothing seen yet: the first step asks.
    pub(crate) fn new(limits: Limits) -> Watch {
        Watch {
            limits,
            no_standby_at: std::sync::Mutex::new(None),
        }
    }

    fn seen_none_lately(&self) -> bool {
        self.no_standby_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|at| at.elapsed() < NO_STANDBY_RECHECK)
    }

    /// Waits before `step` as [`wait_within`] does, unless the server was
    /// seen without a standby less than [`NO_STANDBY_RECHECK`] ago (then at
    /// once, `standbys: 0`).
    pub(crate) async fn before(
        &self,
        step: Step,
        db: &Db,
        events: &dyn EventSink,
        interrupt: &Interrupt,
    ) -> Result<Waited> {
        if self.seen_none_lately() {
            return Ok(Waited {
                duration: Duration::ZERO,
                standbys: 0,
            });
        }
        let waited = wait_within(db, &self.limits, step, events, interrupt).await?;
        self.saw(waited.standbys);
        Ok(waited)
    }

    /// Remembers how many standbys the server had just now.
    fn saw(&self, standbys: usize) {
        *self
            .no_standby_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            (standbys == 0).then(Instant::now);
    }
}

/// Waits while any standby of `db`'s server is behind `limits`, announcing
/// each lagging one ([`Event::ReplicaLag`]) when the wait starts and every
/// few seconds; returns how long it waited (zero at once when none is
/// behind or there are none) and how many it saw.
///
/// Call it (through a [`Watch`]) before each step that writes a lot of
/// WAL: each migration (the apply pipeline does) and each backfill batch.
/// After `lock_wait` it refuses with `REPLICA_LAG:{standby}` (the one most
/// behind), an [`Error::Refused`]: nothing of the step it guards started.
/// A Ctrl-C ends the wait at once (`INTERRUPTED`).
pub(crate) async fn wait_within(
    db: &Db,
    limits: &Limits,
    step: Step,
    events: &dyn EventSink,
    interrupt: &Interrupt,
) -> Result<Waited> {
    let limits = *limits;
    let next = step.as_str();
    let started = Instant::now();
    let mut announced: Vec<(String, Instant)> = Vec::new();
    loop {
        let all = standbys(db).await?;
        let seen = all.len();
        if let Some(expected) = limits.expect
            && seen < expected as usize
        {
            return Err(Error::Refused {
                reason: ReasonCode::new(Code::ReplicaMissing),
                message: format!(
                    "{seen} standby(s) connected, expect_standbys = {expected}: a standby disconnected during the run; the next {next} did not start"
                ),
                hint: Some(
                    "bring the standby back (or lower expect_standbys if it is gone for good), then run again: what already ran is committed".into(),
                ),
                source: None,
            });
        }
        let behind: Vec<Standby> = all.into_iter().filter(|s| s.behind(&limits)).collect();
        if behind.is_empty() {
            return Ok(Waited {
                duration: started.elapsed(),
                standbys: seen,
            });
        }
        let waited = started.elapsed();
        for standby in &behind {
            let due = announced
                .iter()
                .find(|(name, _)| *name == standby.name)
                .is_none_or(|(_, at)| at.elapsed() >= ANNOUNCE_EVERY);
            if due {
                events.emit(&Event::ReplicaLag {
                    standby: standby.name.clone(),
                    lag_bytes: standby.lag_bytes.unwrap_or(-1),
                    lag_ms: standby.lag_ms,
                    waited_ms: millis(waited),
                    before: next.to_string(),
                    reason: standby.reason().to_string(),
                });
                announced.retain(|(name, _)| *name != standby.name);
                announced.push((standby.name.clone(), Instant::now()));
            }
        }
        if waited >= limits.wait {
            let worst = behind
                .iter()
                .max_by_key(|s| s.lag_bytes.unwrap_or(i64::MAX))
                .unwrap_or(&behind[0]);
            return Err(Error::Refused {
                reason: worst.reason(),
                message: format!(
                    "standby {} is still behind after waiting {} (limits {}); the next {next} did not start",
                    worst.describe(),
                    format_duration(limits.wait),
                    limits.describe()
                ),
                hint: Some(
                    "let the standby catch up (is its replay paused, `SELECT pg_is_wal_replay_paused()` on it? is it overloaded?), then run again; `max_replica_lag`, `max_replica_lag_bytes` and `lock_wait` in [defaults] set the limits"
                        .into(),
                ),
                source: None,
            });
        }
        tokio::select! {
            () = tokio::time::sleep(POLL.min(limits.wait.saturating_sub(waited)).max(Duration::from_millis(10))) => {}
            () = interrupt.wait() => {
                return Err(Error::Refused {
                    reason: ReasonCode::new(Code::Interrupted),
                    message: format!("stopped while waiting for lagging standbys; the next {next} did not start"),
                    hint: None,
                    source: None,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standby(bytes: Option<i64>, ms: Option<u64>) -> Standby {
        Standby {
            name: "s1".into(),
            state: Some("streaming".into()),
            sync_state: Some("async".into()),
            lag_bytes: bytes,
            lag_ms: ms,
        }
    }

    fn limits() -> Limits {
        Limits {
            max_lag: Duration::from_secs(30),
            max_lag_bytes: 1000,
            wait: Duration::from_secs(1),
            expect: None,
        }
    }

    #[test]
    fn a_server_seen_without_standby_is_not_asked_again_for_a_while() {
        let watch = Watch::new(limits());
        assert!(!watch.seen_none_lately(), "the first step asks");
        watch.saw(0);
        assert!(watch.seen_none_lately(), "the next steps within 1 s do not");
        watch.saw(1);
        assert!(!watch.seen_none_lately(), "a standby: every step asks");
        watch.saw(0);
        *watch.no_standby_at.lock().unwrap() = Instant::now().checked_sub(NO_STANDBY_RECHECK);
        assert!(!watch.seen_none_lately(), "after 1 s it asks again");
        assert_eq!(Step::Batch.as_str(), "batch");
        assert_eq!(Step::Migration.as_str(), "migration");
    }

    #[test]
    fn behind_either_threshold() {
        let limits = limits();
        assert!(!standby(Some(10), None).behind(&limits));
        assert!(standby(Some(1001), None).behind(&limits));
        assert!(standby(Some(10), Some(31_000)).behind(&limits));
        // Every byte replayed: the 31 s is the last measure, gone stale.
        assert!(!standby(Some(0), Some(31_000)).behind(&limits));
        assert_eq!(standby(Some(0), Some(31_000)).lag(), "caught up");
        assert_eq!(standby(Some(2048), None).lag(), "2.0 kB behind");
        assert!(standby(None, None).behind(&limits));
        let unreadable = Standby {
            state: None,
            ..standby(None, None)
        };
        assert!(!unreadable.behind(&limits));
        assert_eq!(
            standby(Some(1), None).reason().to_string(),
            "REPLICA_LAG:s1"
        );
    }
}
