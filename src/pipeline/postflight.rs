//! Postflight (SPEC 6): read-only checks after migrating, each a pass / warn /
//! fail with a reason code, and the canonical schema checksum.
//!
//! The cheap catalog checks are pipelined on one connection; the orphan
//! anti-joins, which scan tables, run on up to four other connections at once.

use std::time::Duration;

use chrono::Utc;

use super::apply::NamespaceRun;
use crate::config::{Config, format_duration};
use crate::db::catalog::{self, ForeignKey};
use crate::db::history::History;
use crate::db::{ConnectionSettings, Db};
use crate::error::{Code, Error, ReasonCode, Result};
use crate::report::{Check, PhaseReport, Status};
use crate::schema::{self, Snapshot};

/// Orphans are counted up to this many per foreign key.
const ORPHAN_CAP: i64 = 10_000;
/// Connections used for the orphan scans.
const ORPHAN_CONNECTIONS: usize = 4;

/// What postflight checks beyond the defaults.
#[derive(Debug, Clone, Default)]
pub struct PostflightOptions {
    /// Look for orphaned rows behind every foreign key, not only NOT VALID ones.
    pub deep: bool,
}

/// Runs every postflight check. `runs` are this run's migrations (for the
/// time budget); empty for a standalone `migsafe postflight`.
pub(crate) async fn postflight(
    config: &Config,
    settings: &ConnectionSettings,
    db: &Db,
    runs: &[NamespaceRun],
    options: &PostflightOptions,
) -> Result<(PhaseReport, Snapshot)> {
    let started = Utc::now();
    let history = History::new(&config.history_schema);
    let (dirty, not_valid, invalid, fks, snapshot) = tokio::join!(
        history.dirty_rows(db),
        catalog::not_valid_constraints(db),
        catalog::invalid_indexes(db),
        catalog::foreign_keys(db, options.deep),
        schema::read(db, &config.history_schema),
    );
    let (dirty, not_valid, invalid, fks, snapshot) =
        (dirty?, not_valid?, invalid?, fks?, snapshot?);
    let orphans = count_orphans(settings, db, &fks).await?;

    let mut checks = Vec::new();
    if dirty.is_empty() {
        checks.push(Check::pass("dirty_rows", "no dirty migration"));
    }
    for (namespace, version) in &dirty {
        checks.push(Check::fail(
            "dirty_rows",
            ReasonCode::migration(Code::MigrationDirty, namespace, version),
            format!("{namespace} {version} is dirty: an interrupted no-transaction migration"),
        ));
    }
    if not_valid.is_empty() {
        checks.push(Check::pass(
            "not_valid_constraints",
            "every foreign key and check constraint is validated",
        ));
    }
    for constraint in &not_valid {
        let code = if constraint.kind == "FOREIGN KEY" {
            Code::FkNotValidated
        } else {
            Code::CheckNotValidated
        };
        let detail = format!(
            "{} is NOT VALID ({}); validate it in a later migration: ALTER TABLE … VALIDATE CONSTRAINT …",
            constraint.name, constraint.definition
        );
        let reason = ReasonCode::about(code, &constraint.name);
        checks.push(if config.defaults.not_valid == "warn" {
            Check::warn("not_valid_constraints", reason, detail)
        } else {
            Check::fail("not_valid_constraints", reason, detail)
        });
    }
    let scope = if options.deep {
        "every foreign key"
    } else {
        "NOT VALID foreign keys"
    };
    if orphans.iter().all(|(_, n)| *n == 0) {
        checks.push(Check::pass(
            "orphaned_rows",
            format!(
                "no orphaned rows behind {scope} ({} checked)",
                orphans.len()
            ),
        ));
    }
    for (fk, count) in orphans.iter().filter(|(_, n)| *n > 0) {
        let shown = if *count >= ORPHAN_CAP {
            format!("at least {count}")
        } else {
            count.to_string()
        };
        checks.push(Check::fail(
            "orphaned_rows",
            ReasonCode::about(Code::FkOrphanedRows, &fk.name),
            format!(
                "{shown} row(s) behind {} point at no parent{}; fix or delete them before validating",
                fk.name,
                if fk.validated { " although it is validated" } else { "" }
            ),
        ));
    }
    if invalid.is_empty() {
        checks.push(Check::pass("invalid_indexes", "no INVALID index"));
    }
    for index in &invalid {
        checks.push(Check::fail(
            "invalid_indexes",
            ReasonCode::about(Code::IndexInvalid, index),
            format!("{index} is INVALID (a failed CREATE INDEX CONCURRENTLY?); DROP INDEX CONCURRENTLY {index}; and build it again"),
        ));
    }
    let budget = config.defaults.migration_time_budget;
    let slow: Vec<_> = runs
        .iter()
        .flat_map(|run| run.ran.iter().map(move |ran| (run, ran)))
        .filter(|(_, ran)| !budget.is_zero() && Duration::from_millis(ran.duration_ms) > budget)
        .collect();
    if slow.is_empty() {
        checks.push(Check::pass(
            "time_budget",
            format!("every migration within {}", format_duration(budget)),
        ));
    }
    for (run, ran) in slow {
        checks.push(Check::warn(
            "time_budget",
            ReasonCode::migration(Code::MigrationOverBudget, &run.namespace, &ran.version),
            format!(
                "{} {} took {}, over the budget of {}",
                ran.version,
                ran.name,
                format_duration(Duration::from_millis(ran.duration_ms)),
                format_duration(budget)
            ),
        ));
    }
    checks.push(Check::pass(
        "schema_checksum",
        format!(
            "{} ({} objects)",
            snapshot.checksum(),
            snapshot.objects.len()
        ),
    ));
    let mut report = PhaseReport::new("postflight", started, &settings.to_string(), checks);
    report.schema_checksum = Some(snapshot.checksum());
    Ok((report, snapshot))
}

/// Counts orphans behind each foreign key on a few extra connections.
async fn count_orphans(
    settings: &ConnectionSettings,
    db: &Db,
    fks: &[ForeignKey],
) -> Result<Vec<(ForeignKey, i64)>> {
    if fks.is_empty() {
        return Ok(Vec::new());
    }
    if fks.len() == 1 {
        let count = catalog::orphan_count(db, &fks[0], ORPHAN_CAP).await?;
        return Ok(vec![(fks[0].clone(), count)]);
    }
    let workers = fks.len().min(ORPHAN_CONNECTIONS);
    let shares: Vec<Vec<ForeignKey>> = (0..workers)
        .map(|w| fks.iter().skip(w).step_by(workers).cloned().collect())
        .collect();
    let results = futures_util::future::join_all(shares.into_iter().map(|share| async move {
        let conn = settings.connect().await?;
        let mut counted = Vec::with_capacity(share.len());
        for fk in share {
            let count = catalog::orphan_count(&conn, &fk, ORPHAN_CAP).await?;
            counted.push((fk, count));
        }
        Ok::<_, Error>(counted)
    }))
    .await;
    let mut all = Vec::with_capacity(fks.len());
    for result in results {
        all.extend(result?);
    }
    all.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    Ok(all)
}

/// The error for a failed postflight (exit 3): the migrations are applied.
pub fn failed(report: &PhaseReport) -> Error {
    let (reason, lines) = report.failure_summary(Code::PostflightFailed);
    Error::Postflight {
        reason,
        message: format!(
            "postflight found {} problem(s) after migrating:\n{}",
            lines.len(),
            lines.join("\n")
        ),
        hint: Some(format!(
            "the migrations are applied and recorded; fix the problems above (report: {})",
            report
                .path
                .as_ref()
                .map_or_else(|| "not written".to_string(), |p| p.display().to_string())
        )),
    }
}

/// True when the report holds a failure.
pub fn has_failures(report: &PhaseReport) -> bool {
    report.result == Status::Fail
}
