//! `migsafe status`: per namespace, every migration's state (applied,
//! pending, dirty, edited, missing, out of order); `-v` adds the files
//! that were ignored and down scripts paired by version only.

use serde::Serialize;

use migsafe::error::Result;
use migsafe::plan::{RepeatableState, State};

use super::Context;
use crate::cli::output::{BOLD, DIM, GREEN, RED, YELLOW, json, out, paint};

/// `status` takes no flags of its own.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Reads files and history tables; prints each namespace's state.
pub async fn exec(_args: &Args, ctx: &Context<'_>) -> Result<i32> {
    let migrator = ctx.migrator(false)?;
    let states = migrator.status(ctx.target()).await?;
    if ctx.json() {
        #[derive(Serialize)]
        struct Body<'a> {
            namespaces: &'a [migsafe::NamespaceStatus],
        }
        json(
            "status",
            &Body {
                namespaces: &states,
            },
        );
    } else {
        for status in &states {
            render_status(status, ctx.global.verbose > 0);
        }
    }
    Ok(0)
}

fn render_status(status: &migsafe::NamespaceStatus, verbose: bool) {
    let (state, sources) = (&status.state, &status.sources);
    let count = |s: State| state.in_state(s).count();
    let pending = count(State::Pending) + count(State::OutOfOrder);
    let mut summary = format!(
        "{} applied, {pending} pending",
        // A dirty migration is not applied: it stopped part-way.
        count(State::Applied)
            + count(State::Changed)
            + count(State::ChecksumMismatch)
            + count(State::FileMissing)
            + count(State::NewerApplied)
    );
    for (s, label) in [
        (State::Dirty, "dirty"),
        (State::Changed, "changed, to run again"),
        (State::Excluded, "not for this database"),
        (State::ChecksumMismatch, "edited after apply"),
        (State::FileMissing, "file missing"),
        (State::NewerApplied, "applied by a newer release"),
        (State::OutOfOrder, "out of order"),
    ] {
        if count(s) > 0 {
            summary.push_str(&format!(", {} {label}", count(s)));
        }
    }
    if !state.repeatables.is_empty() {
        let to_run = state.pending_repeatables().count();
        summary.push_str(&format!(
            ", {} repeatable ({to_run} to run)",
            state.repeatables.len()
        ));
    }
    let mode = if state.forward_only {
        ", forward-only"
    } else {
        ""
    };
    out(&format!(
        "{} ({summary}{mode})",
        paint(BOLD, &state.namespace)
    ));
    // Before the list: `apply` refuses until this is done.
    if let Some(adopt) = &status.adopt_required {
        out(&format!(
            "  {} {}: {}",
            paint(YELLOW, "warning:"),
            adopt.reason,
            adopt.message
        ));
        out(&format!(
            "  {} `{}` takes that history over (docs/adopt.md); until then apply refuses",
            paint(BOLD, "next:"),
            adopt.hint
        ));
    }
    if status.standby {
        out(&format!(
            "  {} DATABASE_IS_STANDBY: this is a standby in recovery: what it shows may lag the primary, and apply refuses it; run status against the primary",
            paint(YELLOW, "warning:")
        ));
    }
    if let Some(drift) = &status.drift {
        out(&format!(
            "  {} {}",
            paint(YELLOW, "warning:"),
            drift.coded().replace('\n', "\n    ")
        ));
    }
    for entry in &state.entries {
        let (label, style) = match entry.state {
            State::Applied => ("applied", GREEN),
            State::Pending => ("pending", YELLOW),
            State::OutOfOrder => ("OUT OF ORDER", RED),
            State::Dirty => ("DIRTY", RED),
            State::ChecksumMismatch => ("EDITED", RED),
            // Liquibase runOnChange: apply runs it again in place.
            State::Changed => ("changed", YELLOW),
            // Its Liquibase context or labels are not this database's.
            State::Excluded => ("excluded", DIM),
            State::FileMissing => ("FILE MISSING", RED),
            State::NewerApplied => ("newer", YELLOW),
        };
        let when = entry
            .applied
            .as_ref()
            .map(|r| format!("  {}", r.applied_at.format("%Y-%m-%d %H:%M:%S UTC")))
            .unwrap_or_default();
        let excluded = entry
            .migration
            .as_ref()
            .and_then(|m| m.up.directives.excluded.as_deref())
            .filter(|_| entry.state == State::Excluded);
        let notes = match excluded {
            Some(why) => format!("  not for this database: {why}"),
            None if entry.no_transaction => "  no-transaction".to_string(),
            None => String::new(),
        };
        let line = format!(
            "  {} {:<16} {:<36}{}{}",
            // Padded before painting: escape codes must not count as width.
            paint(style, format!("{label:<12}")),
            entry.version.as_str(),
            entry.name,
            paint(DIM, when),
            paint(DIM, notes)
        );
        out(line.trim_end());
    }
    let held_back = state.repeatables.iter().filter(|e| e.is_pending()).count()
        - state.pending_repeatables().count()
        + state.in_state(State::Changed).count()
        - state.to_run().filter(|e| e.state == State::Changed).count();
    if held_back > 0 {
        out(&format!(
            "  {} {held_back} changed or new repeatable(s) or runOnChange changeset(s) wait: a newer release applied versions this one has no file for, and its text is the one to keep",
            paint(DIM, format!("{:<12}", "note"))
        ));
    }
    for entry in &state.repeatables {
        let (label, style) = match entry.state {
            RepeatableState::Applied => ("applied", GREEN),
            RepeatableState::Pending => ("pending", YELLOW),
            RepeatableState::Changed => ("changed", YELLOW),
            RepeatableState::FileMissing => ("file removed", DIM),
        };
        let when = entry
            .applied
            .as_ref()
            .map(|r| {
                format!(
                    "  {} (run {}×)",
                    r.applied_at.format("%Y-%m-%d %H:%M:%S UTC"),
                    r.runs
                )
            })
            .unwrap_or_default();
        let line = format!(
            "  {} {:<16} {:<36}{}",
            paint(style, format!("{label:<12}")),
            entry.version.as_str(),
            "(repeatable)",
            paint(DIM, when),
        );
        out(line.trim_end());
    }
    if verbose {
        if !sources.layouts.is_empty() {
            out(&format!(
                "  {} {}",
                paint(DIM, format!("{:<12}", "layout")),
                sources.layouts.join(", ")
            ));
        }
        for entry in &state.entries {
            let Some(down) = entry.migration.as_ref().and_then(|m| m.down.as_ref()) else {
                continue;
            };
            let file = down
                .path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            // A Liquibase changeset's rollback is in its own file.
            let same_file = Some(&down.path) == entry.migration.as_ref().map(|m| &m.up.path);
            if !same_file && !file.contains(&entry.name) && !file.starts_with("down.") {
                out(&format!(
                    "  {} {} pairs by version with {file}",
                    paint(DIM, format!("{:<12}", "note")),
                    entry.version.as_str()
                ));
            }
        }
        for file in &sources.ignored {
            out(&format!(
                "  {} {} ({})",
                paint(DIM, format!("{:<12}", "ignored")),
                file.path.display(),
                file.reason
            ));
        }
    }
}
