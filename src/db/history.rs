//! The history table `<history_schema>.schema_migrations` and its audit log.
//!
//! Reading never creates anything (read commands write nothing, SPEC 13);
//! `History::ensure` creates the tables and is only called with the
//! namespace lock held, because concurrent `CREATE TABLE IF NOT EXISTS` races.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Statement;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;

use super::connect::Db;
use super::quote_ident;
use crate::error::{Code, Error, ReasonCode, Result};
use crate::source::Version;

/// One applied (or dirty) migration as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryRow {
    /// Namespace.
    pub namespace: String,
    /// Version as recorded.
    #[serde(serialize_with = "serialize_version")]
    pub version: Version,
    /// Name when applied.
    pub name: String,
    /// Up script checksum when applied.
    pub checksum: String,
    /// Down script checksum when applied.
    pub down_checksum: Option<String>,
    /// When it was applied.
    pub applied_at: DateTime<Utc>,
    /// How long it ran.
    pub execution_ms: i64,
    /// Who ran it (`osuser@host`).
    pub applied_by: String,
    /// migsafe version that ran it.
    pub tool_version: String,
    /// Interrupted no-transaction migration.
    pub dirty: bool,
    /// Canonical schema checksum after it (filled by the safety pipeline).
    pub schema_checksum: Option<String>,
}

fn serialize_version<S: serde::Serializer>(version: &Version, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(version.as_str())
}

/// The history table of one schema, with the statements a run prepares once.
pub struct History {
    schema: String,
    table: String,
    audit: String,
    snapshots: String,
}

/// Statements prepared once per run, so each migration needs no extra
/// round trip for its history write.
pub struct Prepared {
    /// Insert of a clean row (transactional up): execution time measured by
    /// the server from the transaction start.
    pub insert_applied: Statement,
    /// Insert of a dirty row (no-transaction up, before its first statement).
    pub insert_dirty: Statement,
    /// Marks a row clean with its execution time.
    pub mark_clean: Statement,
    /// Marks a row dirty (no-transaction down, before its first statement).
    pub mark_dirty: Statement,
    /// Deletes a row (down).
    pub delete: Statement,
}

impl History {
    /// The history of `schema`.
    pub fn new(schema: &str) -> History {
        let quoted = quote_ident(schema);
        History {
            schema: schema.to_string(),
            table: format!("{quoted}.schema_migrations"),
            audit: format!("{quoted}.history_audit"),
            snapshots: format!("{quoted}.schema_snapshots"),
        }
    }

    /// The schema name.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The quoted table name, for scripts.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Rewrites the row of a migration that runs again in place (a
    /// Liquibase `runOnChange` changeset): `$1` namespace, `$2` version,
    /// `$3` name, `$4` checksum, `$5` down checksum, `$6` applied by, `$7`
    /// tool version, `$8` dirty (a no-transaction script, before its first
    /// statement). Its applied time becomes this run's.
    pub(crate) fn rerun_sql(&self) -> String {
        format!(
            "UPDATE {} SET name = $3, checksum = $4, down_checksum = $5, applied_at = now(), \
             execution_ms = CASE WHEN $8 THEN 0 ELSE (extract(epoch FROM clock_timestamp() - now()) * 1000)::bigint END, \
             applied_by = $6, tool_version = $7, dirty = $8 WHERE namespace = $1 AND version = $2",
            self.table
        )
    }

    /// The DDL that creates the tables when missing.
    pub fn create_sql(&self) -> String {
        let create_schema = super::create_schema_if_missing_sql(&self.schema);
        format!(
            "{create_schema}
CREATE TABLE IF NOT EXISTS {table} (
    namespace       text        NOT NULL,
    version         text        NOT NULL,
    name            text        NOT NULL,
    checksum        text        NOT NULL,
    down_checksum   text,
    applied_at      timestamptz NOT NULL DEFAULT now(),
    execution_ms    bigint      NOT NULL DEFAULT 0,
    applied_by      text        NOT NULL,
    tool_version    text        NOT NULL,
    dirty           boolean     NOT NULL DEFAULT false,
    schema_checksum text,
    PRIMARY KEY (namespace, version)
);
COMMENT ON TABLE {table} IS 'migsafe: applied migrations. Change only through migsafe stamp / repair.';
CREATE TABLE IF NOT EXISTS {audit} (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace    text        NOT NULL,
    version      text        NOT NULL,
    action       text        NOT NULL,
    reason       text        NOT NULL,
    detail       text,
    performed_at timestamptz NOT NULL DEFAULT now(),
    performed_by text        NOT NULL,
    tool_version text        NOT NULL
);
CREATE TABLE IF NOT EXISTS {snapshots} (
    checksum    text        PRIMARY KEY,
    snapshot    jsonb       NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);",
            table = self.table,
            audit = self.audit,
            snapshots = self.snapshots,
        )
    }

    /// Creates the tables if they do not exist. Call with the lock held.
    pub(crate) async fn ensure(&self, db: &Db) -> Result<()> {
        let row = db
            .client
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL AND to_regclass($3) IS NOT NULL, pg_is_in_recovery()",
                &[&self.table, &self.audit, &self.snapshots],
            )
            .await
            .map_err(|e| database_error(db, "check the history table", &e))?;
        // Every command that writes comes here first: a standby would
        // refuse its first write half way, after a backup and a preflight.
        if row.get::<_, bool>(1) {
            return Err(Error::Config {
                reason: ReasonCode::new(Code::DatabaseIsStandby),
                message: format!(
                    "{} is a standby in recovery (pg_is_in_recovery()): it cannot be written; nothing was changed",
                    db.target
                ),
                hint: Some(
                    "point the database URL at the primary; its standbys receive the migrations by replication".into(),
                ),
                source: None,
            });
        }
        if row.get::<_, bool>(0) {
            return Ok(());
        }
        db.client
            .batch_execute(&self.create_sql())
            .await
            .map_err(|e| database_error(db, "create the history table", &e).with_hint(format!(
                "the role needs CREATE on the database (for schema {0}) or an existing schema {0} it can create tables in",
                quote_ident(&self.schema)
            )))
    }

    /// The rows of one namespace, oldest version first. A missing table is an
    /// empty history: nothing was applied yet.
    pub(crate) async fn read(&self, db: &Db, namespace: &str) -> Result<Vec<HistoryRow>> {
        let sql = format!(
            "SELECT version, name, checksum, down_checksum, applied_at, execution_ms, applied_by, \
                    tool_version, dirty, schema_checksum FROM {} WHERE namespace = $1",
            self.table
        );
        let rows = match db
            .client
            .query_typed(&sql, &[(&namespace, Type::TEXT)])
            .await
        {
            Ok(rows) => rows,
            Err(err) if not_created_yet(&err) => return Ok(Vec::new()),
            Err(err) => return Err(database_error(db, "read the history table", &err)),
        };
        let mut history = Vec::with_capacity(rows.len());
        for row in rows {
            let text: String = row.get(0);
            let version = Version::parse(&text).map_err(|e| Error::Config {
                reason: ReasonCode::about(Code::HistoryInvalid, namespace),
                message: format!(
                    "{} has a row with version {text:?} that is not a version: {e}",
                    self.table
                ),
                hint: Some("the history table was edited by hand; fix or delete that row".into()),
                source: None,
            })?;
            history.push(HistoryRow {
                namespace: namespace.to_string(),
                version,
                name: row.get(1),
                checksum: row.get(2),
                down_checksum: row.get(3),
                applied_at: row.get(4),
                execution_ms: row.get(5),
                applied_by: row.get(6),
                tool_version: row.get(7),
                dirty: row.get(8),
                schema_checksum: row.get(9),
            });
        }
        history.sort_by(|a, b| a.version.cmp(&b.version));
        Ok(history)
    }

    /// Prepares the per-migration statements (the table must exist).
    pub(crate) async fn prepare(&self, db: &Db) -> Result<Prepared> {
        let t = &self.table;
        let prepare = |sql: String, types: &'static [Type]| {
            let client = &db.client;
            async move { client.prepare_typed(&sql, types).await }
        };
        // The insert's seven texts are the rerun's first seven parameters.
        let insert_types: &[Type] = &RERUN_TYPES[..7];
        let result = tokio::try_join!(
            prepare(
                format!(
                    "INSERT INTO {t} (namespace, version, name, checksum, down_checksum, applied_at, execution_ms, \
                     applied_by, tool_version, dirty) VALUES ($1, $2, $3, $4, $5, now(), \
                     (extract(epoch FROM clock_timestamp() - now()) * 1000)::bigint, $6, $7, false)"
                ),
                insert_types,
            ),
            prepare(
                format!(
                    "INSERT INTO {t} (namespace, version, name, checksum, down_checksum, applied_at, execution_ms, \
                     applied_by, tool_version, dirty) VALUES ($1, $2, $3, $4, $5, now(), 0, $6, $7, true)"
                ),
                insert_types,
            ),
            prepare(
                format!(
                    "UPDATE {t} SET dirty = false, execution_ms = $3, applied_at = now() WHERE namespace = $1 AND version = $2"
                ),
                &[Type::TEXT, Type::TEXT, Type::INT8],
            ),
            prepare(
                format!("UPDATE {t} SET dirty = true WHERE namespace = $1 AND version = $2"),
                &[Type::TEXT, Type::TEXT],
            ),
            prepare(
                format!("DELETE FROM {t} WHERE namespace = $1 AND version = $2"),
                &[Type::TEXT, Type::TEXT],
            ),
        );
        let (insert_applied, insert_dirty, mark_clean, mark_dirty, delete) =
            result.map_err(|e| database_error(db, "prepare the history statements", &e))?;
        Ok(Prepared {
            insert_applied,
            insert_dirty,
            mark_clean,
            mark_dirty,
            delete,
        })
    }

    /// Records a stamp, repair or forced change in the audit table.
    pub(crate) async fn audit(&self, db: &Db, entry: &AuditEntry<'_>) -> Result<()> {
        let sql = format!(
            "INSERT INTO {} (namespace, version, action, reason, detail, performed_by, tool_version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            self.audit
        );
        db.client
            .execute(
                &sql,
                &[
                    &entry.namespace,
                    &entry.version,
                    &entry.action,
                    &entry.reason,
                    &entry.detail,
                    &entry.performed_by,
                    &env!("CARGO_PKG_VERSION"),
                ],
            )
            .await
            .map(|_| ())
            .map_err(|e| database_error(db, "write the history audit", &e))
    }

    /// Inserts a row for a migration recorded without running it (stamp).
    pub(crate) async fn insert_stamped(&self, db: &Db, row: &StampRow<'_>) -> Result<()> {
        let sql = format!(
            "INSERT INTO {} (namespace, version, name, checksum, down_checksum, execution_ms, applied_by, tool_version, dirty) \
             VALUES ($1, $2, $3, $4, $5, 0, $6, $7, false)",
            self.table
        );
        db.client
            .execute(
                &sql,
                &[
                    &row.namespace,
                    &row.version,
                    &row.name,
                    &row.checksum,
                    &row.down_checksum,
                    &row.applied_by,
                    &env!("CARGO_PKG_VERSION"),
                ],
            )
            .await
            .map(|_| ())
            .map_err(|e| database_error(db, "write the history table", &e))
    }

    /// Inserts a row for a migration another tool applied (adopt), with the
    /// time and duration that tool recorded.
    pub(crate) async fn insert_adopted(&self, db: &Db, row: &AdoptRow<'_>) -> Result<()> {
        let sql = format!(
            "INSERT INTO {} (namespace, version, name, checksum, down_checksum, applied_at, execution_ms, applied_by, tool_version, dirty) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, false)",
            self.table
        );
        db.client
            .execute(
                &sql,
                &[
                    &row.namespace,
                    &row.version,
                    &row.name,
                    &row.checksum,
                    &row.down_checksum,
                    &row.applied_at,
                    &row.execution_ms,
                    &row.applied_by,
                    &env!("CARGO_PKG_VERSION"),
                ],
            )
            .await
            .map(|_| ())
            .map_err(|e| database_error(db, "write the history table", &e))
    }

    /// Updates the recorded checksum of one row (repair --accept-checksum).
    pub(crate) async fn set_checksum(
        &self,
        db: &Db,
        namespace: &str,
        version: &str,
        checksum: &str,
        down: Option<&str>,
    ) -> Result<u64> {
        let sql = format!(
            "UPDATE {} SET checksum = $3, down_checksum = $4 WHERE namespace = $1 AND version = $2",
            self.table
        );
        db.client
            .execute(&sql, &[&namespace, &version, &checksum, &down])
            .await
            .map_err(|e| database_error(db, "update the history table", &e))
    }

    /// Clears the dirty flag of one row (repair --clear-dirty).
    pub(crate) async fn clear_dirty(&self, db: &Db, namespace: &str, version: &str) -> Result<u64> {
        let sql = format!(
            "UPDATE {} SET dirty = false WHERE namespace = $1 AND version = $2",
            self.table
        );
        db.client
            .execute(&sql, &[&namespace, &version])
            .await
            .map_err(|e| database_error(db, "update the history table", &e))
    }

    /// Touches a dirty row when its migration stops part-way (best effort):
    /// the row's `xmin` then marks the moment, so recovery can tell rows
    /// written afterwards from the migration's own. `execution_ms` becomes
    /// how long it ran (at least 1, which says the moment was recorded).
    pub(crate) async fn mark_interrupted(
        &self,
        db: &Db,
        namespace: &str,
        version: &str,
        ran_ms: i64,
    ) {
        let sql = format!(
            "UPDATE {} SET execution_ms = greatest($3::bigint, 1) WHERE namespace = $1 AND version = $2 AND dirty",
            self.table
        );
        if let Err(err) = db
            .client
            .execute(&sql, &[&namespace, &version, &ran_ms])
            .await
        {
            tracing::warn!("could not record when the migration stopped: {err}");
        }
    }

    /// Rows of `relation` (a name as the server prints a regclass) written
    /// after the dirty history row of `version` was last touched, counted up
    /// to `cap`. `age(xmin)` handles wraparound; frozen rows are oldest.
    pub(crate) async fn rows_written_after(
        &self,
        db: &Db,
        namespace: &str,
        version: &str,
        relation: &str,
        cap: i64,
    ) -> Result<i64> {
        // `relation` comes from `regclass::text`: quoted by the server.
        let sql = format!(
            "SELECT count(*) FROM (SELECT 1 FROM {relation} t              WHERE age(t.xmin) < (SELECT age(h.xmin) FROM {} h WHERE h.namespace = $1 AND h.version = $2)              LIMIT $3) s",
            self.table
        );
        db.client
            .query_one(&sql, &[&namespace, &version, &cap])
            .await
            .map(|row| row.get(0))
            .map_err(|e| database_error(db, &format!("count the rows of {relation}"), &e))
    }

    /// Rows of `relation` (a regclass text) whose `xmin` is not older than
    /// the transaction id `mark` (text), counted up to `cap`.
    pub(crate) async fn rows_newer_than(
        &self,
        db: &Db,
        relation: &str,
        mark: &str,
        cap: i64,
    ) -> Result<i64> {
        let sql = format!(
            "SELECT count(*) FROM (SELECT 1 FROM {relation} t WHERE age(t.xmin) <= age($1::text::xid) LIMIT $2) s"
        );
        db.client
            .query_one(&sql, &[&mark, &cap])
            .await
            .map(|row| row.get(0))
            .map_err(|e| database_error(db, &format!("count the rows of {relation}"), &e))
    }

    /// Deletes one row (repair --forget).
    /// Whether `version`'s row was written by a Liquibase `MARK_RAN` (its
    /// precondition did not hold, it never ran): its audit row was written
    /// in the same transaction, so at the same `now()`.
    pub(crate) async fn marked_ran(&self, db: &Db, namespace: &str, version: &str) -> Result<bool> {
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM {audit} a JOIN {table} h ON h.namespace = a.namespace \
             AND h.version = a.version AND h.applied_at = a.performed_at \
             WHERE a.namespace = $1 AND a.version = $2 AND a.action = 'mark-ran')",
            audit = self.audit,
            table = self.table
        );
        db.client
            .query_one(&sql, &[&namespace, &version])
            .await
            .map(|row| row.get(0))
            .map_err(|e| database_error(db, "read the history audit", &e))
    }

    pub(crate) async fn forget(&self, db: &Db, namespace: &str, version: &str) -> Result<u64> {
        let sql = format!(
            "DELETE FROM {} WHERE namespace = $1 AND version = $2",
            self.table
        );
        db.client
            .execute(&sql, &[&namespace, &version])
            .await
            .map_err(|e| database_error(db, "update the history table", &e))
    }
}

impl History {
    /// Records the schema after a run: the snapshot (kept by checksum, so
    /// drift can later be shown as a structural diff) and its checksum on
    /// the newest history row of `namespace`.
    pub(crate) async fn record_schema(
        &self,
        db: &Db,
        namespace: &str,
        checksum: &str,
        snapshot: &serde_json::Value,
    ) -> Result<()> {
        let upsert = format!(
            "INSERT INTO {} (checksum, snapshot) VALUES ($1, $2) ON CONFLICT (checksum) DO UPDATE SET recorded_at = now()",
            self.snapshots
        );
        let stamp = format!(
            "UPDATE {t} SET schema_checksum = $2 WHERE namespace = $1 AND version = \
             (SELECT version FROM {t} WHERE namespace = $1 ORDER BY applied_at DESC, length(version) DESC, version DESC LIMIT 1)",
            t = self.table
        );
        let upsert_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&checksum, snapshot];
        let stamp_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&namespace, &checksum];
        let (a, b) = tokio::join!(
            db.client.execute(&upsert, &upsert_params),
            db.client.execute(&stamp, &stamp_params),
        );
        a.and(b)
            .map(|_| ())
            .map_err(|e| database_error(db, "record the schema checksum", &e))
    }

    /// Every dirty row, of every namespace: (namespace, version).
    pub(crate) async fn dirty_rows(&self, db: &Db) -> Result<Vec<(String, String)>> {
        self.versions_where(db, "dirty").await
    }

    /// Every recorded version, of every namespace: (namespace, version),
    /// sorted. Empty before the history table exists.
    pub(crate) async fn recorded_versions(&self, db: &Db) -> Result<Vec<(String, String)>> {
        self.versions_where(db, "true").await
    }

    async fn versions_where(&self, db: &Db, condition: &str) -> Result<Vec<(String, String)>> {
        let sql = format!(
            "SELECT namespace, version FROM {} WHERE {condition} ORDER BY 1, 2",
            self.table
        );
        match db.client.query(&sql, &[]).await {
            Ok(rows) => Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect()),
            Err(err) if not_created_yet(&err) => Ok(Vec::new()),
            Err(err) => Err(database_error(db, "read the history table", &err)),
        }
    }

    /// Marks the recorded schema as unknown (a run skipped its snapshot):
    /// the next preflight then says drift cannot be checked, instead of
    /// comparing with a snapshot that is out of date.
    pub(crate) async fn forget_schema(&self, db: &Db, namespace: &str) -> Result<()> {
        self.record_schema(db, namespace, UNRECORDED, &serde_json::Value::Null)
            .await
    }

    /// The schema recorded for `namespace` after the last run that moved it
    /// (its scope only, see [`crate::schema::Scope`]): checksum and snapshot.
    /// `None` before the first recorded run (or before the history tables
    /// exist).
    pub(crate) async fn recorded_schema(
        &self,
        db: &Db,
        namespace: &str,
    ) -> Result<Option<(String, serde_json::Value)>> {
        // The newest row of the namespace carries the checksum recorded
        // after the last run that moved it (the same row record_schema stamps).
        let sql = format!(
            "SELECT h.schema_checksum, coalesce(s.snapshot, 'null'::jsonb) FROM {t} h \
             LEFT JOIN {s} s ON s.checksum = h.schema_checksum \
             WHERE h.namespace = $1 AND h.schema_checksum IS NOT NULL \
             ORDER BY h.applied_at DESC, length(h.version) DESC, h.version DESC LIMIT 1",
            t = self.table,
            s = self.snapshots
        );
        match db.client.query_opt(&sql, &[&namespace]).await {
            Ok(row) => Ok(row.map(|r| (r.get(0), r.get(1)))),
            Err(err) if not_created_yet(&err) => Ok(None),
            Err(err) => Err(database_error(db, "read the recorded schema", &err)),
        }
    }
}

/// The history tables (or their schema) do not exist yet: reading commands
/// create nothing, so "nothing recorded" is their answer.
pub(crate) fn not_created_yet(err: &tokio_postgres::Error) -> bool {
    matches!(
        err.code(),
        Some(&SqlState::UNDEFINED_TABLE) | Some(&SqlState::INVALID_SCHEMA_NAME)
    )
}

/// The checksum stored when a run skipped its snapshot.
pub const UNRECORDED: &str = "unrecorded";

/// A row written by `stamp`.
pub struct StampRow<'a> {
    /// Namespace.
    pub namespace: &'a str,
    /// Version text.
    pub version: &'a str,
    /// Name.
    pub name: &'a str,
    /// Up checksum.
    pub checksum: &'a str,
    /// Down checksum.
    pub down_checksum: Option<&'a str>,
    /// Who.
    pub applied_by: &'a str,
}

/// A row written by `adopt`.
pub struct AdoptRow<'a> {
    /// Namespace.
    pub namespace: &'a str,
    /// Version text.
    pub version: &'a str,
    /// Name.
    pub name: &'a str,
    /// Up checksum (migsafe's).
    pub checksum: &'a str,
    /// Down checksum.
    pub down_checksum: Option<&'a str>,
    /// When the other tool applied it.
    pub applied_at: DateTime<Utc>,
    /// How long it ran there.
    pub execution_ms: i64,
    /// Who adopted it.
    pub applied_by: &'a str,
}

/// One audit record.
pub struct AuditEntry<'a> {
    /// Namespace.
    pub namespace: &'a str,
    /// Version text.
    pub version: &'a str,
    /// `stamp`, `accept-checksum`, `clear-dirty`, `forget`.
    pub action: &'a str,
    /// The operator's reason.
    pub reason: &'a str,
    /// Extra detail (old and new checksum…).
    pub detail: Option<String>,
    /// Who.
    pub performed_by: &'a str,
}

/// A server error outside any migration script, as a configuration-level error.
pub(crate) fn database_error(db: &Db, doing: &str, err: &tokio_postgres::Error) -> Error {
    let detail = match err.as_db_error() {
        Some(db_err) => format!("{} ({})", db_err.message(), db_err.code().code()),
        None => super::connect::error_chain(err),
    };
    // A server shutting down or restarting (SQLSTATE class 57) is as gone as
    // a closed socket.
    let shutting_down = err.code().is_some_and(|c| c.code().starts_with("57"));
    let code = if err.as_db_error().is_some() && !shutting_down {
        Code::DatabaseError
    } else {
        Code::DatabaseUnreachable
    };
    let hint = match err.code() {
        Some(c) if *c == SqlState::INSUFFICIENT_PRIVILEGE => {
            "the database role lacks a privilege this step needs; nothing was changed. Run migsafe as the role that owns the migrated schemas (and the history schema), or grant it, e.g. `GRANT USAGE, CREATE ON SCHEMA <history_schema> TO <role>`"
        }
        _ if code == Code::DatabaseUnreachable => {
            "the server went away; nothing more was changed. Run `migsafe status` when it is back to see where things stand"
        }
        _ => {
            "nothing more was changed; the server's message above says why. Run `migsafe status` to see where things stand"
        }
    };
    Error::Config {
        reason: ReasonCode::new(code),
        message: super::scrub(&format!("cannot {doing} on {}: {detail}", db.target)),
        hint: Some(hint.into()),
        source: err
            .code()
            .map(|c| Box::new(crate::error::ServerCode(c.clone())) as crate::error::Source),
    }
}

/// The parameter types of [`History::rerun_sql`].
pub(crate) const RERUN_TYPES: &[Type] = &[
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::BOOL,
];

/// `osuser@hostname`, for `applied_by`.
pub fn operator() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| {
            nix::unistd::User::from_uid(nix::unistd::geteuid())
                .ok()
                .flatten()
                .map_or_else(|| "unknown".to_string(), |u| u.name)
        });
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown-host".to_string());
    format!("{user}@{host}")
}
