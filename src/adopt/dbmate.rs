//! dbmate: `schema_migrations (version varchar(128) PRIMARY KEY)`, as its
//! postgres driver creates it (`pkg/driver/postgres/postgres.go`,
//! `CreateMigrationsTable`). One row per applied version (the digits before
//! the file name's first `_`); no time, no checksum.

use super::{Record, Tool};
use crate::db::Db;
use crate::error::Result;

/// Every applied version.
const READ: &str = "SELECT version::text FROM \"schema_migrations\"";

/// Reads the applied versions.
pub(crate) async fn read(db: &Db) -> Result<Record> {
    super::versions_only(db, Tool::Dbmate, READ).await
}
