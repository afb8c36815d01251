//! Where an online migration or a backfill stands, stored in the history
//! schema (`<history_schema>.online_progress`), one row per migration that
//! started and has not finished.
//!
//! A transactional step (or a backfill batch) moves the row in its own
//! transaction, so the row never claims a step that did not commit. A step
//! outside a transaction (a concurrent index build) is marked started before
//! it runs; after an interruption the next run finds the index valid (the
//! build finished: the step is done) or INVALID (dropped and built again).
//! The table is created under the namespace lock, like the history table.

use crate::db::Db;
use crate::db::history::{History, database_error};
use crate::db::quote_ident;
use crate::error::Result;

/// One migration's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Checksum of the up script that made it: another script cannot resume it.
    pub checksum: String,
    /// Steps committed (online migration).
    pub steps: i32,
    /// The next step started outside a transaction and may have been cut short.
    pub step_started: bool,
    /// Primary key of the last row of the last committed batch (backfill), as text.
    pub last_key: Option<String>,
    /// Rows updated so far (backfill).
    pub rows: i64,
    /// Keys visited so far (backfill), for the ETA.
    pub scanned: i64,
    /// Batches committed (backfill).
    pub batches: i64,
}

/// The progress table of one history schema.
pub struct ProgressTable {
    table: String,
}

impl ProgressTable {
    /// The table next to `history`'s.
    pub fn of(history: &History) -> ProgressTable {
        ProgressTable {
            table: format!("{}.online_progress", quote_ident(history.schema())),
        }
    }

    /// Creates the table when missing (under the namespace lock).
    pub(crate) async fn ensure(&self, db: &Db) -> Result<()> {
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} (
                namespace text NOT NULL,
                version text NOT NULL,
                checksum text NOT NULL,
                steps integer NOT NULL DEFAULT 0,
                step_started boolean NOT NULL DEFAULT false,
                last_key text,
                rows bigint NOT NULL DEFAULT 0,
                scanned bigint NOT NULL DEFAULT 0,
                batches bigint NOT NULL DEFAULT 0,
                names jsonb NOT NULL DEFAULT '{{}}'::jsonb,
                started_at timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (namespace, version))",
            self.table
        );
        db.client
            .batch_execute(&sql)
            .await
            .map_err(|e| database_error(db, "create the online progress table", &e))
    }

    /// Versions of `namespace` with progress (the table may not exist yet).
    pub(crate) async fn versions(
        &self,
        db: &Db,
        history: &History,
        namespace: &str,
    ) -> Result<Vec<String>> {
        let exists: bool = db
            .client
            .query_one(
                "SELECT to_regclass(format('%I.online_progress', $1::text)) IS NOT NULL",
                &[&history.schema()],
            )
            .await
            .map_err(|e| database_error(db, "look for the online progress table", &e))?
            .get(0);
        if !exists {
            return Ok(Vec::new());
        }
        let rows = db
            .client
            .query(
                &format!("SELECT version FROM {} WHERE namespace = $1", self.table),
                &[&namespace],
            )
            .await
            .map_err(|e| database_error(db, "read the online progress", &e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// The progress of one migration, if it started.
    pub(crate) async fn read(
        &self,
        db: &Db,
        namespace: &str,
        version: &str,
    ) -> Result<Option<Progress>> {
        let row = db
            .client
            .query_opt(
                &format!(
                    "SELECT checksum, steps, step_started, last_key, rows, scanned, batches FROM {} WHERE namespace = $1 AND version = $2",
                    self.table
                ),
                &[&namespace, &version],
            )
            .await
            .map_err(|e| database_error(db, "read the online progress", &e))?;
        Ok(row.map(|r| Progress {
            checksum: r.get(0),
            steps: r.get(1),
            step_started: r.get(2),
            last_key: r.get(3),
            rows: r.get(4),
            scanned: r.get(5),
            batches: r.get(6),
        }))
    }

    /// Records that a migration starts (no row yet).
    pub(crate) async fn start(
        &self,
        db: &Db,
        namespace: &str,
        version: &str,
        checksum: &str,
    ) -> Result<()> {
        db.client
            .execute(
                &format!(
                    "INSERT INTO {} (namespace, version, checksum) VALUES ($1, $2, $3) ON CONFLICT (namespace, version) DO NOTHING",
                    self.table
                ),
                &[&namespace, &version, &checksum],
            )
            .await
            .map(|_| ())
            .map_err(|e| database_error(db, "record the online progress", &e))
    }

    /// SQL moving a migration to `$3` steps done (`$1` namespace, `$2` version).
    pub fn step_done_sql(&self) -> String {
        format!(
            "UPDATE {} SET steps = $3, step_started = false, updated_at = now() WHERE namespace = $1 AND version = $2",
            self.table
        )
    }

    /// Marks the next step as started (outside a transaction).
    pub(crate) async fn step_started(&self, db: &Db, namespace: &str, version: &str) -> Result<()> {
        db.client
            .execute(
                &format!(
                    "UPDATE {} SET step_started = true, updated_at = now() WHERE namespace = $1 AND version = $2",
                    self.table
                ),
                &[&namespace, &version],
            )
            .await
            .map(|_| ())
            .map_err(|e| database_error(db, "record the online progress", &e))
    }

    /// SQL recording a committed batch: `$3` last key, `$4` rows, `$5` keys visited.
    pub fn batch_done_sql(&self) -> String {
        format!(
            "UPDATE {} SET last_key = $3, rows = rows + $4, scanned = scanned + $5, batches = batches + 1, updated_at = now() WHERE namespace = $1 AND version = $2",
            self.table
        )
    }

    /// SQL recording the name PostgreSQL gave the constraint step `$3` added
    /// (`$4`), in that step's transaction.
    pub fn name_sql(&self) -> String {
        format!(
            "UPDATE {} SET names = names || jsonb_build_object($3::text, $4::text) WHERE namespace = $1 AND version = $2",
            self.table
        )
    }

    /// The name recorded by step `step` (0-based).
    pub(crate) async fn recorded_name(
        &self,
        db: &Db,
        namespace: &str,
        version: &str,
        step: usize,
    ) -> Result<Option<String>> {
        let key = step.to_string();
        let row = db
            .client
            .query_opt(
                &format!(
                    "SELECT names ->> $3::text FROM {} WHERE namespace = $1 AND version = $2",
                    self.table
                ),
                &[&namespace, &version, &key],
            )
            .await
            .map_err(|e| database_error(db, "read the online progress", &e))?;
        Ok(row.and_then(|r| r.get(0)))
    }

    /// SQL removing a finished migration's row (`$1` namespace, `$2` version).
    pub fn finish_sql(&self) -> String {
        format!(
            "DELETE FROM {} WHERE namespace = $1 AND version = $2",
            self.table
        )
    }

    /// The quoted table name.
    pub fn table(&self) -> &str {
        &self.table
    }
}
