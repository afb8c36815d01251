//! `stamp <V>`: record versions up to V as applied without running them —
//! the baseline step when migsafe takes over a database that already has
//! the schema. Every stamped row is also written to the audit table.

use super::{Env, Target, with_namespace_lock};
use crate::db::history::{AuditEntry, History, StampRow, operator};
use crate::error::{Code, Error, ReasonCode, Result};
use crate::events::Event;
use crate::plan::{State, unknown_version};
use crate::source::Version;

/// Stamps one namespace; returns the versions recorded.
pub async fn stamp(env: &Env<'_>, target: &Target<'_>, version: &Version) -> Result<Vec<String>> {
    let namespace = target.name();
    if target.sources.get(version).is_none() {
        return Err(unknown_version(namespace, version));
    }
    let db = target.settings.connect().await?;
    let history = History::new(&env.config.history_schema);
    with_namespace_lock(env, target, &db, &history, || async {
        let state = target.state(&db, &history).await?;
        if let Some(dirty) = state.in_state(State::Dirty).next() {
            return Err(Error::Refused {
                reason: ReasonCode::migration(Code::MigrationDirty, namespace, &dirty.version),
                message: format!(
                    "namespace `{namespace}` is dirty at {}; repair it before stamping",
                    dirty.version
                ),
                hint: None,
                source: None,
            });
        }
        let by = operator();
        let mut stamped = Vec::new();
        for entry in state.pending().filter(|e| e.version <= *version) {
            let Some(migration) = &entry.migration else {
                continue;
            };
            history
                .insert_stamped(
                    &db,
                    &StampRow {
                        namespace,
                        version: migration.version.as_str(),
                        name: &migration.name,
                        checksum: &migration.up.checksum,
                        down_checksum: migration.down.as_ref().map(|d| d.checksum.as_str()),
                        applied_by: &by,
                    },
                )
                .await?;
            history
                .audit(
                    &db,
                    &AuditEntry {
                        namespace,
                        version: migration.version.as_str(),
                        action: "stamp",
                        reason: "recorded as applied without running (baseline)",
                        detail: None,
                        performed_by: &by,
                    },
                )
                .await?;
            env.events.emit(&Event::Stamped {
                namespace: namespace.to_string(),
                version: migration.version.to_string(),
            });
            stamped.push(migration.version.to_string());
        }
        Ok(stamped)
    })
    .await
}
