//! `repair`: the explicit, audited ways to change the history by hand after
//! an operator has looked at the database — accept an edited file's checksum,
//! mark an interrupted migration as finished, or forget it. Each needs a
//! reason, which goes to the audit table and the event log.

use serde::Serialize;

use super::{Env, Target, with_namespace_lock};
use crate::db::history::{AuditEntry, History, operator};
use crate::error::{Code, Error, ReasonCode, Result};
use crate::events::Event;
use crate::source::Version;

/// What to repair.
#[derive(Debug, Clone)]
pub enum RepairAction {
    /// Record the file's current checksum for an applied version.
    AcceptChecksum(Version),
    /// Mark a dirty version as finished (its statements were completed by hand).
    ClearDirty(Version),
    /// Delete the history row (the migration was undone by hand).
    Forget(Version),
}

impl RepairAction {
    fn version(&self) -> &Version {
        match self {
            RepairAction::AcceptChecksum(v)
            | RepairAction::ClearDirty(v)
            | RepairAction::Forget(v) => v,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            RepairAction::AcceptChecksum(_) => "accept-checksum",
            RepairAction::ClearDirty(_) => "clear-dirty",
            RepairAction::Forget(_) => "forget",
        }
    }
}

/// What a repair changed.
#[derive(Debug, Clone, Serialize)]
pub struct Repaired {
    /// Namespace.
    pub namespace: String,
    /// Version.
    pub version: String,
    /// Action.
    pub action: String,
    /// Detail (old and new checksum…).
    pub detail: Option<String>,
}

/// Repairs one history row.
pub async fn repair(
    env: &Env<'_>,
    target: &Target<'_>,
    action: &RepairAction,
    reason: &str,
) -> Result<Repaired> {
    let namespace = target.name();
    if reason.trim().is_empty() {
        return Err(Error::config(
            Code::Usage,
            "repair needs --reason \"…\": it is kept in the audit log",
        ));
    }
    let version = action.version();
    let db = target.settings.connect().await?;
    let history = History::new(&env.config.history_schema);
    with_namespace_lock(env, target, &db, &history, || async {
        let rows = history.read(&db, namespace).await?;
        let Some(row) = rows.iter().find(|r| &r.version == version) else {
            return Err(Error::Config {
                reason: ReasonCode::migration(Code::VersionUnknown, namespace, version),
                message: format!("namespace `{namespace}` has no history row for version {version}"),
                hint: Some("see `migsafe history`".into()),
             source: None, });
        };
        let recorded = row.version.as_str();
        let detail = match action {
            RepairAction::AcceptChecksum(_) => {
                let Some(migration) = target.sources.get(version) else {
                    return Err(Error::Config {
                        reason: ReasonCode::migration(Code::MigrationFileMissing, namespace, version),
                        message: format!("version {version} has no file to take the checksum from"),
                        hint: None,
                     source: None, });
                };
                let down = migration.down.as_ref().map(|d| d.checksum.as_str());
                history
                    .set_checksum(&db, namespace, recorded, &migration.up.checksum, down)
                    .await?;
                Some(format!("checksum {} -> {}", row.checksum, migration.up.checksum))
            }
            RepairAction::ClearDirty(_) => {
                if !row.dirty {
                    return Err(Error::Config {
                        reason: ReasonCode::migration(Code::Usage, namespace, version),
                        message: format!("version {version} of namespace `{namespace}` is not dirty; nothing to clear"),
                        hint: None,
                     source: None, });
                }
                history.clear_dirty(&db, namespace, recorded).await?;
                None
            }
            RepairAction::Forget(_) => {
                history.forget(&db, namespace, recorded).await?;
                Some(format!("row deleted (was dirty: {})", row.dirty))
            }
        };
        let by = operator();
        history
            .audit(
                &db,
                &AuditEntry {
                    namespace,
                    version: recorded,
                    action: action.name(),
                    reason,
                    detail: detail.clone(),
                    performed_by: &by,
                },
            )
            .await?;
        env.events.emit(&Event::Repaired {
            namespace: namespace.to_string(),
            version: recorded.to_string(),
            action: action.name().to_string(),
            reason: reason.to_string(),
        });
        Ok(Repaired {
            namespace: namespace.to_string(),
            version: recorded.to_string(),
            action: action.name().to_string(),
            detail,
        })
    })
    .await
}
