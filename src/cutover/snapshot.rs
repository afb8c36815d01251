//! One view of the target shared by several connections, for verify.
//!
//! Verify reads a table in slices on several connections at once; its
//! result only means "the target holds exactly these rows" if every slice
//! sees the same committed state. The first connection opens a
//! `REPEATABLE READ READ ONLY` transaction and exports its snapshot
//! (`pg_export_snapshot()`); every other connection starts the same kind of
//! transaction and imports it (`SET TRANSACTION SNAPSHOT`) before it reads
//! anything. The exporting transaction stays open until the end, which
//! keeps the snapshot valid; all of them only read, and end with `COMMIT`.

use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::db::{ConnectionSettings, Db, history::database_error, quote_literal};
use crate::error::{Code, Error, Result};

/// The read-only transaction every connection reads in.
const BEGIN: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
/// Exported by the first connection.
const EXPORT: &str = "SELECT pg_export_snapshot()";

/// Connections reading one snapshot of the target, lent one at a time.
pub(crate) struct Snapshot {
    idle: Mutex<Vec<Db>>,
    permits: Semaphore,
}

/// A connection of the [`Snapshot`], given back when dropped.
pub(crate) struct Lease<'a> {
    snapshot: &'a Snapshot,
    db: Option<Db>,
    _permit: SemaphorePermit<'a>,
}

impl std::ops::Deref for Lease<'_> {
    type Target = Db;

    fn deref(&self) -> &Db {
        // Taken out only in drop.
        self.db.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(db) = self.db.take() {
            lock(&self.snapshot.idle).push(db);
        }
    }
}

impl Snapshot {
    /// Opens `connections` connections (at least one) on one snapshot.
    pub async fn open(settings: &ConnectionSettings, connections: usize) -> Result<Snapshot> {
        let first = settings.connect().await?;
        first
            .client
            .batch_execute(BEGIN)
            .await
            .map_err(|e| database_error(&first, "start a read-only transaction", &e))?;
        let id: String = first
            .client
            .query_one(EXPORT, &[])
            .await
            .map_err(|e| database_error(&first, "export the verify's snapshot", &e))?
            .get(0);
        // A snapshot id is hex digits and dashes; anything else is not one.
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Err(Error::config(
                Code::DatabaseError,
                format!("the server exported a snapshot id migsafe does not understand: {id:?}"),
            ));
        }
        let import = format!("{BEGIN}; SET TRANSACTION SNAPSHOT {}", quote_literal(&id));
        let others = futures_util::future::try_join_all((1..connections.max(1)).map(|_| async {
            let db = settings.connect().await?;
            db.client
                .batch_execute(&import)
                .await
                .map_err(|e| database_error(&db, "share the verify's snapshot", &e))?;
            Ok::<_, Error>(db)
        }))
        .await?;
        let mut idle = vec![first];
        idle.extend(others);
        Ok(Snapshot {
            permits: Semaphore::new(idle.len()),
            idle: Mutex::new(idle),
        })
    }

    /// Waits for an idle connection.
    pub async fn lease(&self) -> Lease<'_> {
        // The semaphore is never closed.
        let permit = self
            .permits
            .acquire()
            .await
            .unwrap_or_else(|_| unreachable!());
        let db = lock(&self.idle).pop();
        Lease {
            snapshot: self,
            db,
            _permit: permit,
        }
    }

    /// Ends every transaction (they only read: nothing to keep or lose).
    pub async fn close(self) {
        let idle = self
            .idle
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        for db in idle {
            let _ = db.client.batch_execute("COMMIT").await;
        }
    }
}

/// The idle list (a lease that panicked left it as it was).
fn lock(idle: &Mutex<Vec<Db>>) -> MutexGuard<'_, Vec<Db>> {
    idle.lock().unwrap_or_else(PoisonError::into_inner)
}
