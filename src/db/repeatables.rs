//! The record of Flyway repeatable migrations (`R__<name>.sql`):
//! `<history_schema>.repeatable_migrations`, one row per namespace and
//! repeatable with the checksum it last ran with.
//!
//! A table of its own, beside `schema_migrations`, because a repeatable has
//! no version: an older migsafe reading the history (a rolling deploy, the
//! previous release restarting) never meets a row it cannot parse. It is
//! created only when a namespace first runs a repeatable, so a role without
//! CREATE on the history schema keeps working for teams that have none.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::types::Type;

use super::Db;
use super::history::{History, database_error, not_created_yet};
use super::quote_ident;
use crate::error::Result;
use crate::source::Version;

/// One repeatable as recorded: the checksum of its last successful run.
#[derive(Debug, Clone, Serialize)]
pub struct RepeatableRow {
    /// Its name (`views` for `R__views.sql`), as [`Version::repeatable`] takes it.
    pub name: String,
    /// The up script's checksum at its last run.
    pub checksum: String,
    /// When it last ran.
    pub applied_at: DateTime<Utc>,
    /// How long its last run took.
    pub execution_ms: i64,
    /// Who ran it last (`osuser@host`).
    pub applied_by: String,
    /// migsafe version of the last run.
    pub tool_version: String,
    /// How many times it ran.
    pub runs: i64,
}

impl RepeatableRow {
    /// The name migsafe knows it by (`R__views`).
    pub fn version(&self) -> Version {
        Version::repeatable(&self.name)
    }
}

/// The repeatables table of one history schema.
pub struct Repeatables {
    schema: String,
    table: String,
}

/// The columns of an upsert, in order: namespace, name, checksum,
/// applied_by, tool_version.
pub const UPSERT_TYPES: &[Type] = &[Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT];

impl Repeatables {
    /// The table beside `history`'s.
    pub fn of(history: &History) -> Repeatables {
        Repeatables {
            schema: history.schema().to_string(),
            table: format!("{}.repeatable_migrations", quote_ident(history.schema())),
        }
    }

    /// The quoted table name, for scripts.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The DDL that creates the table when missing.
    pub fn create_sql(&self) -> String {
        format!(
            "{create_schema}
CREATE TABLE IF NOT EXISTS {table} (
    namespace     text        NOT NULL,
    name          text        NOT NULL,
    checksum      text        NOT NULL,
    applied_at    timestamptz NOT NULL DEFAULT now(),
    execution_ms  bigint      NOT NULL DEFAULT 0,
    applied_by    text        NOT NULL,
    tool_version  text        NOT NULL,
    runs          bigint      NOT NULL DEFAULT 1,
    PRIMARY KEY (namespace, name)
);
COMMENT ON TABLE {table} IS 'migsafe: Flyway repeatable migrations (R__), with the checksum each last ran with.';",
            create_schema = super::create_schema_if_missing_sql(&self.schema),
            table = self.table,
        )
    }

    /// Creates the table if it does not exist. Call with the lock held.
    pub(crate) async fn ensure(&self, db: &Db) -> Result<()> {
        let exists: bool = db
            .client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&self.table])
            .await
            .map_err(|e| database_error(db, "check the repeatable migrations table", &e))?
            .get(0);
        if exists {
            return Ok(());
        }
        db.client
            .batch_execute(&self.create_sql())
            .await
            .map_err(|e| {
                database_error(db, "create the repeatable migrations table", &e).with_hint(format!(
                    "the role needs CREATE on schema {} to record repeatable (R__) migrations",
                    quote_ident(&self.schema)
                ))
            })
    }

    /// The rows of one namespace, in the order repeatables run. A missing
    /// table: no repeatable ran yet.
    pub(crate) async fn read(&self, db: &Db, namespace: &str) -> Result<Vec<RepeatableRow>> {
        let sql = format!(
            "SELECT name, checksum, applied_at, execution_ms, applied_by, tool_version, runs \
             FROM {} WHERE namespace = $1",
            self.table
        );
        let rows = match db
            .client
            .query_typed(&sql, &[(&namespace, Type::TEXT)])
            .await
        {
            Ok(rows) => rows,
            Err(err) if not_created_yet(&err) => return Ok(Vec::new()),
            Err(err) => return Err(database_error(db, "read the repeatable migrations", &err)),
        };
        let mut out: Vec<RepeatableRow> = rows
            .into_iter()
            .map(|row| RepeatableRow {
                name: row.get(0),
                checksum: row.get(1),
                applied_at: row.get(2),
                execution_ms: row.get(3),
                applied_by: row.get(4),
                tool_version: row.get(5),
                runs: row.get(6),
            })
            .collect();
        out.sort_by_key(RepeatableRow::version);
        Ok(out)
    }

    /// Records a run, in the run's transaction: the server measures its
    /// execution time from the transaction start, as for a migration.
    /// Parameters: [`UPSERT_TYPES`].
    pub fn upsert_sql(&self) -> String {
        self.upsert_with(
            "(extract(epoch FROM clock_timestamp() - now()) * 1000)::bigint",
            "$1",
            "$2",
            "$3",
            "$4",
            "$5",
        )
    }

    /// The upsert with literal values, for `apply --sql`.
    pub fn upsert_literal(&self, namespace: &str, name: &str, checksum: &str, by: &str) -> String {
        use super::quote_literal as q;
        self.upsert_with(
            "(extract(epoch FROM clock_timestamp() - now()) * 1000)::bigint",
            &q(namespace),
            &q(name),
            &q(checksum),
            &q(by),
            &q(env!("CARGO_PKG_VERSION")),
        )
    }

    fn upsert_with(
        &self,
        execution_ms: &str,
        namespace: &str,
        name: &str,
        checksum: &str,
        by: &str,
        tool: &str,
    ) -> String {
        format!(
            "INSERT INTO {t} AS r (namespace, name, checksum, applied_at, execution_ms, applied_by, tool_version, runs) \
             VALUES ({namespace}, {name}, {checksum}, now(), {execution_ms}, {by}, {tool}, 1) \
             ON CONFLICT (namespace, name) DO UPDATE SET checksum = EXCLUDED.checksum, \
             applied_at = EXCLUDED.applied_at, execution_ms = EXCLUDED.execution_ms, \
             applied_by = EXCLUDED.applied_by, tool_version = EXCLUDED.tool_version, runs = r.runs + 1",
            t = self.table
        )
    }

    /// Records a repeatable another tool ran (adopt), with that tool's time
    /// and the checksum to compare the file with: the file's own when it is
    /// unchanged since, another value when the file changed (so that the
    /// next `apply` runs it again, as the other tool would have).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn insert_adopted(
        &self,
        db: &Db,
        namespace: &str,
        name: &str,
        checksum: &str,
        applied_at: DateTime<Utc>,
        execution_ms: i64,
        applied_by: &str,
    ) -> Result<()> {
        let sql = format!(
            "INSERT INTO {} (namespace, name, checksum, applied_at, execution_ms, applied_by, tool_version, runs) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 1)",
            self.table
        );
        db.client
            .execute(
                &sql,
                &[
                    &namespace,
                    &name,
                    &checksum,
                    &applied_at,
                    &execution_ms,
                    &applied_by,
                    &env!("CARGO_PKG_VERSION"),
                ],
            )
            .await
            .map(|_| ())
            .map_err(|e| database_error(db, "write the repeatable migrations table", &e))
    }
}
