//! The phases that change (or describe changing) a database: apply,
//! rollback, stamp, repair, and the psql script of `apply --sql`.
//!
//! Each phase works on one namespace ([`Target`]) and returns a typed value;
//! the [`crate::Migrator`] runs them over `--target ns|all`. The SPEC's later
//! phases (preflight, backup, postflight) slot in around `apply` here.

pub mod apply;
pub mod backup;
pub mod child;
pub mod guarded;
pub mod postflight;
pub mod preconditions;
pub mod preflight;
pub mod recovery;
pub mod repair;
pub mod rollback;
pub mod script;
pub mod stamp;

use crate::config::{Config, Namespace};
use crate::db::execute::{Limits, Runner};
use crate::db::history::{History, Prepared, database_error, operator};
use crate::db::{ConnectionSettings, Db};
use crate::error::Result;
use crate::events::{Event, EventSink, Interrupt};
use crate::plan::NamespaceState;
use crate::source::MigrationSet;

/// What every phase needs besides its namespace.
pub struct Env<'a> {
    /// The configuration.
    pub config: &'a Config,
    /// Where events go.
    pub events: &'a dyn EventSink,
    /// Ctrl-C.
    pub interrupt: &'a Interrupt,
    /// Where reports go; `None`: no report files (library use that did
    /// not ask for them).
    pub log_dir: Option<&'a std::path::Path>,
}

/// One namespace with its files and database.
pub struct Target<'a> {
    /// The namespace.
    pub namespace: &'a Namespace,
    /// Its migration files.
    pub sources: &'a MigrationSet,
    /// Its database.
    pub settings: &'a ConnectionSettings,
}

impl Target<'_> {
    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.namespace.name
    }

    /// The schemas this namespace answers for (drift, recorded checksum).
    pub fn scope(&self) -> crate::schema::Scope {
        crate::schema::Scope::of(self.namespace, self.sources)
    }

    /// Reads the history and joins it with the files.
    pub(crate) async fn state(&self, db: &Db, history: &History) -> Result<NamespaceState> {
        read_state(db, history, self.namespace, self.sources).await
    }
}

/// Reads a namespace's history (versioned and repeatable) and joins it with
/// its files: the one place a [`NamespaceState`] is built from the database.
pub(crate) async fn read_state(
    db: &Db,
    history: &History,
    namespace: &crate::config::Namespace,
    sources: &crate::source::MigrationSet,
) -> Result<NamespaceState> {
    let rows = history.read(db, &namespace.name).await?;
    // Only a namespace with repeatable files asks for their table: the
    // others send the same queries as before repeatables existed.
    let repeatable_rows = if sources.repeatables.is_empty() {
        Vec::new()
    } else {
        crate::db::repeatables::Repeatables::of(history)
            .read(db, &namespace.name)
            .await?
    };
    Ok(NamespaceState::build(
        &namespace.name,
        namespace.forward_only,
        sources,
        rows,
        repeatable_rows,
    ))
}

use crate::db::execute::CHECK_CLIENT;

/// Takes the namespace lock (waiting up to `lock_wait`) and creates the
/// history tables if needed; returns the lock key for [`unlock_namespace`].
pub(crate) async fn lock_namespace(
    env: &Env<'_>,
    target: &Target<'_>,
    db: &Db,
    history: &History,
) -> Result<i64> {
    let namespace = target.name();
    // If this process dies (SIGKILL, lost network), the server notices within a
    // second even in the middle of a long statement, rolls the migration back
    // and frees the namespace lock for the next runner (PostgreSQL 14+).
    db.client
        .batch_execute(CHECK_CLIENT)
        .await
        .map_err(|e| database_error(db, "prepare the session", &e))?;
    let key = crate::db::lock::key(history.schema(), namespace);
    let waited = crate::db::lock::acquire(
        db,
        key,
        namespace,
        env.config.defaults.lock_wait,
        env.interrupt,
        |holder| {
            env.events.emit(&Event::LockWaiting {
                namespace: namespace.to_string(),
                holder: holder.cloned(),
            });
        },
    )
    .await?;
    env.events.emit(&Event::LockAcquired {
        namespace: namespace.to_string(),
        duration_ms: millis(waited),
    });
    if let Err(err) = history.ensure(db).await {
        crate::db::lock::release(db, key).await;
        return Err(err);
    }
    Ok(key)
}

/// Releases a lock taken by [`lock_namespace`].
pub(crate) async fn unlock_namespace(db: &Db, key: i64) {
    crate::db::lock::release(db, key).await;
}

/// Runs `work` holding the namespace lock; the lock is released whatever
/// `work` returns. The history tables are created (if needed) inside it.
pub(crate) async fn with_namespace_lock<T, F, Fut>(
    env: &Env<'_>,
    target: &Target<'_>,
    db: &Db,
    history: &History,
    work: F,
) -> Result<T>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let key = lock_namespace(env, target, db, history).await?;
    let result = work().await;
    unlock_namespace(db, key).await;
    result
}

/// What a `Runner` borrows, prepared once the lock is held.
pub struct RunnerParts {
    prepared: Prepared,
    backend_pid: i32,
    applied_by: String,
}

impl RunnerParts {
    /// Sets the run's default timeouts on the session, prepares the history
    /// statements and reads the backend pid.
    pub(crate) async fn load(env: &Env<'_>, db: &Db, history: &History) -> Result<RunnerParts> {
        db.client
            .batch_execute(&limits(env).session_sql())
            .await
            .map_err(|e| database_error(db, "set the session's timeouts", &e))?;
        let prepared = history.prepare(db).await?;
        let backend_pid: i32 = db
            .client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .map_err(|e| database_error(db, "read the backend pid", &e))?
            .get(0);
        Ok(RunnerParts {
            prepared,
            backend_pid,
            applied_by: operator(),
        })
    }

    /// A runner for one namespace on `db`.
    pub(crate) fn runner<'a>(
        &'a self,
        env: &'a Env<'a>,
        target: &'a Target<'a>,
        db: &'a Db,
        history: &'a History,
    ) -> Runner<'a> {
        Runner {
            db,
            settings: target.settings,
            history,
            prepared: &self.prepared,
            backend_pid: self.backend_pid,
            namespace: target.name(),
            applied_by: &self.applied_by,
            limits: limits(env),
            events: env.events,
            interrupt: env.interrupt,
            auto_recovery: env.config.defaults.recovery == "auto",
            side: tokio::sync::Mutex::new(None),
            replicas: crate::db::replicas::Watch::new(crate::db::replicas::Limits::of(env.config)),
        }
    }
}

fn limits(env: &Env<'_>) -> Limits {
    let d = &env.config.defaults;
    Limits {
        lock_timeout: d.lock_timeout,
        statement_timeout: d.statement_timeout,
        lock_retries: d.lock_retries,
        lock_retry_delay: d.lock_retry_delay,
    }
}

/// Reads the schema and records it for `targets` on `db`: drift
/// detection compares the live schema with the last one recorded.
pub(crate) async fn record_schema(
    env: &Env<'_>,
    db: &Db,
    history: &History,
    targets: &[&Target<'_>],
) -> Result<crate::schema::Snapshot> {
    let snapshot = crate::schema::read(db, &env.config.history_schema).await?;
    store_schema(db, history, targets, &snapshot).await?;
    Ok(snapshot)
}

/// Records an already-read snapshot for `targets` on `db`, each cut to the
/// schemas its namespace answers for.
pub(crate) async fn store_schema(
    db: &Db,
    history: &History,
    targets: &[&Target<'_>],
    snapshot: &crate::schema::Snapshot,
) -> Result<()> {
    for target in targets {
        let scoped = target.scope().on(db).await?.apply(snapshot);
        let json = serde_json::to_value(&scoped).unwrap_or(serde_json::Value::Null);
        history
            .record_schema(db, target.name(), &scoped.checksum(), &json)
            .await?;
    }
    Ok(())
}

pub use crate::events::millis;
