//! ory/pop: `schema_migration (version varchar(14) NOT NULL)` with the
//! unique index `schema_migration_version_idx`, as pop's migrator creates it
//! (`migrator.go`, `CreateSchemaMigrations`; ory's fork widens it to
//! `varchar(48)` and adds `version_self`). One row per applied version; no
//! time, no checksum.

use super::{Record, Tool};
use crate::db::Db;
use crate::error::Result;

/// The table's name.
pub const TABLE: &str = "schema_migration";

/// Every applied version.
const READ: &str = "SELECT version::text FROM \"schema_migration\"";

/// Reads the applied versions.
pub(crate) async fn read(db: &Db) -> Result<Record> {
    super::versions_only(db, Tool::Pop, READ).await
}
