//! Files + history → the state of a namespace, and what `apply` or
//! `rollback` would run.
//!
//! Pure: no database, no disk. Everything that must stop a run before it
//! changes anything (dirty rows, edited files, vanished files, out-of-order
//! versions) is decided here, with its reason code.
//!
//! An applied version without a file is not always a vanished file: when it
//! is newer than every migration this release has, a newer release applied
//! it, and this (previous) release is starting again — a rolling deploy, an
//! old replica restarting, a redeploy of the previous version. That is
//! [`State::NewerApplied`]: noted, not refused (unless
//! `allow_newer_applied = false`). A missing version older than the newest
//! file is still [`State::FileMissing`], and pending files older than the
//! newer versions are still out of order, so nothing runs below them.

use serde::Serialize;

use crate::db::history::HistoryRow;
use crate::db::repeatables::RepeatableRow;
use crate::error::{Code, Error, ReasonCode, Result};
use crate::source::{Migration, MigrationSet, Version};

/// The state of one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Applied, file unchanged.
    Applied,
    /// Not applied yet.
    Pending,
    /// Not applied yet, but older than the newest applied version.
    OutOfOrder,
    /// An interrupted no-transaction migration.
    Dirty,
    /// Applied, but the file changed since.
    ChecksumMismatch,
    /// Applied, the file changed since, and it is one that runs again when
    /// it changes (Liquibase `runOnChange:true`): `apply` runs it again in
    /// place, in its order.
    Changed,
    /// Applied, but its file is gone.
    FileMissing,
    /// Applied, no file, and newer than every file: applied by a newer
    /// release than this one.
    NewerApplied,
    /// Not for this database: a Liquibase changeset whose context or labels
    /// the configured filter excludes. Nothing runs it, as Liquibase would
    /// not: not applied, or applied (another filter, Liquibase itself) and
    /// a `runOnChange` one that changed since, which is not run again.
    Excluded,
}

/// One version of a namespace: its file, its history row, or both.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Version.
    #[serde(serialize_with = "version_text")]
    pub version: Version,
    /// Name (from the file, else from history).
    pub name: String,
    /// State.
    pub state: State,
    /// The migration on disk.
    #[serde(skip)]
    pub migration: Option<Migration>,
    /// The history row.
    pub applied: Option<HistoryRow>,
    /// Whether it runs outside a transaction.
    pub no_transaction: bool,
    /// Whether a down script exists.
    pub reversible: bool,
}

fn version_text<S: serde::Serializer>(v: &Version, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(v.as_str())
}

/// The state of one Flyway repeatable migration (`R__<name>.sql`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RepeatableState {
    /// Never ran: runs after the versioned migrations.
    Pending,
    /// Ran, and its file changed since: runs again.
    Changed,
    /// Ran with this file's checksum.
    Applied,
    /// Ran once, and its file is gone: nothing runs (what it made stays).
    FileMissing,
}

/// A repeatable: its file, its record, or both.
#[derive(Debug, Clone, Serialize)]
pub struct RepeatableEntry {
    /// `R__<name>`.
    #[serde(serialize_with = "version_text")]
    pub version: Version,
    /// Its name.
    pub name: String,
    /// State.
    pub state: RepeatableState,
    /// The file.
    #[serde(skip)]
    pub migration: Option<Migration>,
    /// Its record.
    pub applied: Option<RepeatableRow>,
}

impl RepeatableEntry {
    /// True when `apply` runs it (new, or changed since it last ran).
    pub fn is_pending(&self) -> bool {
        matches!(
            self.state,
            RepeatableState::Pending | RepeatableState::Changed
        )
    }
}

/// What `apply` may tolerate.
#[derive(Debug, Clone, Default)]
pub struct Tolerance {
    /// Apply pending versions older than the newest applied one.
    pub allow_out_of_order: bool,
    /// Go on although applied versions have no file.
    pub ignore_missing: bool,
    /// Dirty migrations that have a down script will be recovered
    /// (`recovery = "auto"`): not a reason to refuse.
    pub recover_dirty: bool,
    /// `apply --recover`: recovery may run a down script that destroys rows
    /// written after the interruption (they are in the backup taken first).
    pub recover: bool,
    /// Strict: refuse versions applied by a newer release as
    /// `MIGRATION_FILE_MISSING`, as for any vanished file
    /// (`[defaults] allow_newer_applied = false`).
    pub refuse_newer_applied: bool,
}

impl Tolerance {
    /// This tolerance with what the configuration decides: dirty recovery
    /// (`recovery = "auto"`) and versions applied by a newer release
    /// (`allow_newer_applied`).
    pub fn with_defaults(mut self, defaults: &crate::config::Defaults) -> Tolerance {
        self.recover_dirty = defaults.recovery == "auto";
        self.refuse_newer_applied |= !defaults.allow_newer_applied;
        self
    }
}

/// A namespace's versions in order, with their states.
#[derive(Debug, Clone, Serialize)]
pub struct NamespaceState {
    /// Namespace.
    pub namespace: String,
    /// Every version in order.
    pub entries: Vec<Entry>,
    /// Forward-only namespace.
    pub forward_only: bool,
    /// Flyway repeatable migrations, in the order they run.
    pub repeatables: Vec<RepeatableEntry>,
}

impl NamespaceState {
    /// Joins files and history.
    pub fn build(
        namespace: &str,
        forward_only: bool,
        set: &MigrationSet,
        history: Vec<HistoryRow>,
        repeatable_rows: Vec<RepeatableRow>,
    ) -> Self {
        let newest_applied = history.iter().map(|r| r.version.clone()).max();
        // With no file at all, nothing says this is an older release.
        let newest_file = set.migrations.iter().map(|m| &m.version).max().cloned();
        let mut entries: Vec<Entry> = Vec::with_capacity(set.migrations.len().max(history.len()));
        let mut rows = history.into_iter().peekable();
        let mut files = set.migrations.iter().peekable();
        loop {
            let take_row = match (files.peek(), rows.peek()) {
                (None, None) => break,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some(file), Some(row)) => row.version <= file.version,
            };
            if take_row {
                let Some(row) = rows.next() else { break };
                let file = files.next_if(|f| f.version == row.version);
                let state = match &file {
                    _ if row.dirty => State::Dirty,
                    None if newest_file.as_ref().is_some_and(|f| row.version > *f) => {
                        State::NewerApplied
                    }
                    None => State::FileMissing,
                    // Not for this database: not run again (Liquibase
                    // filters by context before it looks at runOnChange).
                    Some(f)
                        if f.up.checksum != row.checksum
                            && f.up.directives.run_on_change
                            && f.up.directives.excluded.is_some() =>
                    {
                        State::Excluded
                    }
                    Some(f) if f.up.checksum != row.checksum && f.up.directives.run_on_change => {
                        State::Changed
                    }
                    Some(f) if f.up.checksum != row.checksum => State::ChecksumMismatch,
                    Some(_) => State::Applied,
                };
                let migration = file.map(|f| Migration {
                    rerun_of: (state == State::Changed).then(|| row.checksum.clone()),
                    ..f.clone()
                });
                entries.push(Entry {
                    version: row.version.clone(),
                    name: file.map_or_else(|| row.name.clone(), |f| f.name.clone()),
                    state,
                    no_transaction: file.is_some_and(|f| f.up.no_transaction()),
                    reversible: file.is_some_and(|f| f.down.is_some()),
                    migration,
                    applied: Some(row),
                });
            } else {
                let Some(file) = files.next() else { break };
                let state = match &newest_applied {
                    _ if file.up.directives.excluded.is_some() => State::Excluded,
                    Some(newest) if file.version < *newest => State::OutOfOrder,
                    _ => State::Pending,
                };
                entries.push(Entry {
                    version: file.version.clone(),
                    name: file.name.clone(),
                    state,
                    no_transaction: file.up.no_transaction(),
                    reversible: file.down.is_some(),
                    migration: Some(file.clone()),
                    applied: None,
                });
            }
        }
        NamespaceState {
            namespace: namespace.to_string(),
            entries,
            forward_only: forward_only || set.forward_only(),
            repeatables: repeatable_entries(set, repeatable_rows),
        }
    }

    /// Repeatables `apply` runs: new or changed ones, in their order. None
    /// when a newer release applied versions this one has no file for: this
    /// is the previous release starting again, and its older `R__` files
    /// must not put back what the newer release replaced.
    pub fn pending_repeatables(&self) -> impl Iterator<Item = &RepeatableEntry> {
        let older_release = self.newer_applied().next().is_some();
        self.repeatables
            .iter()
            .filter(move |e| !older_release && e.is_pending())
    }

    /// Dirty entries that `recovery = "auto"` can roll back and retry.
    pub fn recoverable(&self) -> impl Iterator<Item = &Entry> {
        self.in_state(State::Dirty)
            .filter(|e| e.migration.as_ref().is_some_and(|m| m.down.is_some()))
    }

    /// Entries in a given state.
    pub fn in_state(&self, state: State) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(move |e| e.state == state)
    }

    /// Versions applied by a newer release (no file, newer than every file).
    pub fn newer_applied(&self) -> impl Iterator<Item = &Entry> {
        self.in_state(State::NewerApplied)
    }

    /// The note that versions applied by a newer release were allowed, when
    /// there are any.
    pub fn newer_applied_note(&self) -> Option<crate::events::Event> {
        let versions: Vec<String> = self
            .newer_applied()
            .map(|e| e.version.to_string())
            .collect();
        let newest = self.newer_applied().last()?;
        Some(crate::events::Event::NewerApplied {
            namespace: self.namespace.clone(),
            reason: ReasonCode::migration(
                Code::MigrationNewerThanRelease,
                &self.namespace,
                &newest.version,
            )
            .to_string(),
            known: self.newest_file().map_or("-", Version::as_str).to_string(),
            versions,
        })
    }

    /// The newest version this release has a file for.
    pub fn newest_file(&self) -> Option<&Version> {
        self.entries
            .iter()
            .filter(|e| e.migration.is_some())
            .map(|e| &e.version)
            .max()
    }

    /// Versions not applied yet (pending and out-of-order), in order.
    pub fn pending(&self) -> impl Iterator<Item = &Entry> {
        self.entries
            .iter()
            .filter(|e| matches!(e.state, State::Pending | State::OutOfOrder))
    }

    /// Versions `apply` runs, in order: those not applied yet and those that
    /// run again because they changed ([`State::Changed`]). None of the
    /// latter when a newer release applied versions this one has no file
    /// for: its older text must not put back what the newer one replaced.
    pub fn to_run(&self) -> impl Iterator<Item = &Entry> {
        let older_release = self.newer_applied().next().is_some();
        self.entries.iter().filter(move |e| match e.state {
            State::Pending | State::OutOfOrder => true,
            State::Changed => !older_release,
            _ => false,
        })
    }

    /// Refuses, with the most serious problem's code, when the namespace must
    /// not move: dirty rows, edited or vanished applied files, out-of-order
    /// pending versions (unless tolerated). Versions applied by a newer
    /// release refuse only when strict ([`Tolerance::refuse_newer_applied`]).
    pub fn check_can_move(&self, tolerance: &Tolerance) -> Result<()> {
        let ns = &self.namespace;
        let recoverable = |e: &&Entry| {
            tolerance.recover_dirty && e.migration.as_ref().is_some_and(|m| m.down.is_some())
        };
        if let Some(entry) = self.in_state(State::Dirty).find(|e| !recoverable(e)) {
            let since = entry
                .applied
                .as_ref()
                .map(|r| r.applied_at.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or_default();
            return Err(Error::Refused {
                reason: ReasonCode::migration(Code::MigrationDirty, ns, &entry.version),
                message: format!(
                    "namespace `{ns}` is dirty: {} {} was interrupted (started {since}) and may be half applied",
                    entry.version, entry.name
                ),
                hint: Some(format!(
                    "check the schema by hand and finish or undo that migration's statements, then record it: `migsafe repair --target {ns} --clear-dirty {v} --reason \"…\"` (finished) or `migsafe repair --target {ns} --forget {v} --reason \"…\"` (undone)",
                    v = entry.version
                )),
                source: None,
            });
        }
        if let Some(entry) = self.in_state(State::ChecksumMismatch).next() {
            let (recorded, current) = (
                entry
                    .applied
                    .as_ref()
                    .map(|r| short(&r.checksum))
                    .unwrap_or_default(),
                entry
                    .migration
                    .as_ref()
                    .map(|m| short(&m.up.checksum))
                    .unwrap_or_default(),
            );
            let path = entry
                .migration
                .as_ref()
                .map(|m| m.up.path.display().to_string())
                .unwrap_or_default();
            return Err(Error::Refused {
                reason: ReasonCode::migration(
                    Code::PostgresMigrationChecksumMismatch,
                    ns,
                    &entry.version,
                ),
                message: format!(
                    "{path} was edited after it was applied to namespace `{ns}` (checksum {recorded}… when applied, {current}… now); the database does not have what the file says"
                ),
                hint: Some(format!(
                    "restore the file as it was applied (git log -p {path}) and put the change in a new migration; if the edit is only cosmetic: `migsafe repair --target {ns} --accept-checksum {} --reason \"…\"`",
                    entry.version
                )),
                source: None,
            });
        }
        if !tolerance.ignore_missing
            && let Some(entry) = self.in_state(State::FileMissing).next()
        {
            return Err(Error::Refused {
                reason: ReasonCode::migration(Code::MigrationFileMissing, ns, &entry.version),
                message: format!(
                    "{} {} is recorded as applied in namespace `{ns}` but its file is gone",
                    entry.version, entry.name
                ),
                hint: Some("restore the file (a branch that is behind?), or pass --ignore-missing if it was removed on purpose".into()),
             source: None, });
        }
        if tolerance.refuse_newer_applied
            && !tolerance.ignore_missing
            && let Some(entry) = self.newer_applied().next()
        {
            return Err(Error::Refused {
                reason: ReasonCode::migration(Code::MigrationFileMissing, ns, &entry.version),
                message: format!(
                    "{} {} is recorded as applied in namespace `{ns}` but this release has no file for it: it is newer than {}, the newest this release knows (applied by a newer release?)",
                    entry.version,
                    entry.name,
                    self.newest_file().map_or("-", Version::as_str)
                ),
                hint: Some("deploy the release that has it; or, when this release runs correctly on that schema, set `allow_newer_applied = true` under [defaults] (the default)".into()),
             source: None, });
        }
        if !tolerance.allow_out_of_order
            && let Some(entry) = self.in_state(State::OutOfOrder).next()
        {
            return Err(Error::Refused {
                reason: ReasonCode::migration(Code::MigrationOutOfOrder, ns, &entry.version),
                message: format!(
                    "pending {} {} sorts before versions already applied to namespace `{ns}` (merged late?)",
                    entry.version, entry.name
                ),
                hint: Some("give it a newer version (rename the file), or pass --allow-out-of-order if it is independent of the newer ones".into()),
             source: None, });
        }
        Ok(())
    }

    /// The migrations `apply` would run: every pending one, the first
    /// `steps`, or those up to and including `to`.
    pub fn select_up(&self, steps: Option<usize>, to: Option<&Version>) -> Result<Vec<&Migration>> {
        if let Some(target) = to
            && !self.entries.iter().any(|e| &e.version == target)
        {
            return Err(unknown_version(&self.namespace, target));
        }
        let selected = self
            .to_run()
            .filter(|e| to.is_none_or(|t| e.version <= *t))
            .filter_map(|e| e.migration.as_ref());
        let mut chosen: Vec<&Migration> = match steps {
            Some(n) => selected.take(n).collect(),
            None => selected.collect(),
        };
        // Repeatables run last, once no versioned migration stays pending
        // (Flyway: "after all pending versioned migrations"): a view written
        // for the newest tables must not run against older ones.
        if chosen.len() == self.to_run().count() {
            chosen.extend(
                self.pending_repeatables()
                    .filter_map(|e| e.migration.as_ref()),
            );
        }
        Ok(chosen)
    }

    /// What `rollback` would undo, newest first: `steps` (default 1) applied
    /// migrations, or every applied one newer than `to`. Refused as a whole
    /// when any of them has no down script, so a rollback never stops half way
    /// for want of a file.
    pub fn select_down(
        &self,
        steps: Option<usize>,
        to: Option<&Version>,
    ) -> Result<Vec<(&Entry, &Migration)>> {
        let ns = &self.namespace;
        let applied = self.entries.iter().rev().filter(|e| e.applied.is_some());
        let chosen: Vec<&Entry> = match to {
            Some(target) => applied.filter(|e| e.version > *target).collect(),
            None => applied.take(steps.unwrap_or(1)).collect(),
        };
        let mut out = Vec::with_capacity(chosen.len());
        for entry in chosen {
            if self.forward_only {
                return Err(Error::Refused {
                    reason: ReasonCode::migration(Code::DownScriptMissing, ns, &entry.version),
                    message: format!("namespace `{ns}` is forward-only: rollback is refused"),
                    hint: Some(
                        "write a new migration that undoes the change, or restore from a backup"
                            .into(),
                    ),
                    source: None,
                });
            }
            let Some(migration) = entry.migration.as_ref() else {
                let (message, hint) = if entry.state == State::NewerApplied {
                    (
                        format!(
                            "{} {} was applied by a newer release, which this one has no file for, so it cannot be rolled back from here",
                            entry.version, entry.name
                        ),
                        "roll it back with the release that has its down script",
                    )
                } else {
                    (
                        format!(
                            "{} {} has no file any more, so it cannot be rolled back",
                            entry.version, entry.name
                        ),
                        "restore the file first",
                    )
                };
                return Err(Error::Refused {
                    reason: ReasonCode::migration(Code::MigrationFileMissing, ns, &entry.version),
                    message,
                    hint: Some(hint.into()),
                    source: None,
                });
            };
            if migration.down.is_none() {
                return Err(Error::Refused {
                    reason: ReasonCode::migration(Code::DownScriptMissing, ns, &entry.version),
                    message: format!(
                        "{} {} has no down script; nothing was rolled back",
                        entry.version, entry.name
                    ),
                    hint: Some(format!(
                        "add the down script next to {} or write a new forward migration",
                        migration.up.path.display()
                    )),
                    source: None,
                });
            }
            out.push((entry, migration));
        }
        Ok(out)
    }
}

/// Joins repeatable files and their records, in the order they run.
fn repeatable_entries(set: &MigrationSet, rows: Vec<RepeatableRow>) -> Vec<RepeatableEntry> {
    let mut rows: std::collections::BTreeMap<Version, RepeatableRow> =
        rows.into_iter().map(|r| (r.version(), r)).collect();
    let mut out: Vec<RepeatableEntry> = set
        .repeatables
        .iter()
        .map(|file| {
            let applied = rows.remove(&file.version);
            let state = match &applied {
                None => RepeatableState::Pending,
                Some(row) if row.checksum != file.up.checksum => RepeatableState::Changed,
                Some(_) => RepeatableState::Applied,
            };
            RepeatableEntry {
                version: file.version.clone(),
                name: file.name.clone(),
                state,
                migration: Some(file.clone()),
                applied,
            }
        })
        .collect();
    out.extend(rows.into_iter().map(|(version, row)| RepeatableEntry {
        version,
        name: row.name.clone(),
        state: RepeatableState::FileMissing,
        migration: None,
        applied: Some(row),
    }));
    out.sort_by(|a, b| a.version.cmp(&b.version));
    out
}

fn short(checksum: &str) -> String {
    checksum.chars().take(12).collect()
}

/// `VERSION_UNKNOWN` for a version given on the command line.
pub fn unknown_version(namespace: &str, version: &Version) -> Error {
    Error::Config {
        reason: ReasonCode::migration(Code::VersionUnknown, namespace, version),
        message: format!("namespace `{namespace}` has no migration with version {version}"),
        hint: Some("see `migsafe status` for the versions".into()),
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Script;
    use crate::source::directives::Directives;
    use crate::source::layout::Layout;
    use chrono::Utc;

    fn migration(version: &str, sql: &str, down: bool) -> Migration {
        let script = |text: &str| Script {
            path: format!("{version}.sql").into(),
            sql: text.to_string(),
            checksum: crate::source::checksum::checksum(text),
            directives: Directives::default(),
            first_line: 1,
        };
        Migration {
            version: Version::parse(version).unwrap(),
            name: format!("m{version}"),
            layout: Layout::Reversible,
            up: script(sql),
            down: down.then(|| script("DROP TABLE x;")),
            verify: None,
            rerun_of: None,
        }
    }

    fn row(version: &str, sql: &str, dirty: bool) -> HistoryRow {
        HistoryRow {
            namespace: "app".into(),
            version: Version::parse(version).unwrap(),
            name: format!("m{version}"),
            checksum: crate::source::checksum::checksum(sql),
            down_checksum: None,
            applied_at: Utc::now(),
            execution_ms: 1,
            applied_by: "t".into(),
            tool_version: "0".into(),
            dirty,
            schema_checksum: None,
        }
    }

    fn set(migrations: Vec<Migration>) -> MigrationSet {
        MigrationSet {
            migrations,
            repeatables: Vec::new(),
            ignored: vec![],
            ..MigrationSet::default()
        }
    }

    #[test]
    fn joins_files_and_history_into_states() {
        let files = set(vec![
            migration("1", "a", true),
            migration("2", "b-edited", true),
            migration("3", "c", true),
            migration("5", "e", true),
        ]);
        let history = vec![
            row("1", "a", false),
            row("2", "b", false),
            row("4", "d", false),
        ];
        let state = NamespaceState::build("app", false, &files, history, vec![]);
        let states: Vec<_> = state
            .entries
            .iter()
            .map(|e| (e.version.as_str().to_string(), e.state))
            .collect();
        assert_eq!(
            states,
            vec![
                ("1".into(), State::Applied),
                ("2".into(), State::ChecksumMismatch),
                ("3".into(), State::OutOfOrder),
                ("4".into(), State::FileMissing),
                ("5".into(), State::Pending),
            ]
        );
        let err = state.check_can_move(&Tolerance::default()).unwrap_err();
        assert_eq!(
            err.reason().to_string(),
            "POSTGRES_MIGRATION_CHECKSUM_MISMATCH:app:2"
        );
        assert_eq!(err.exit_code(), 1);
    }

    #[test]
    fn an_edited_run_on_change_migration_runs_again_in_its_order() {
        let mut view = migration("2", "CREATE OR REPLACE VIEW v AS SELECT 2", true);
        view.up.directives.run_on_change = true;
        let files = set(vec![
            migration("1", "a", true),
            view,
            migration("3", "c", true),
        ]);
        let recorded = row("2", "CREATE OR REPLACE VIEW v AS SELECT 1", false);
        let history = vec![row("1", "a", false), recorded.clone()];
        let state = NamespaceState::build("app", false, &files, history, vec![]);
        assert_eq!(state.entries[1].state, State::Changed);
        state.check_can_move(&Tolerance::default()).unwrap();
        let chosen = state.select_up(None, None).unwrap();
        let versions: Vec<&str> = chosen.iter().map(|m| m.version.as_str()).collect();
        assert_eq!(versions, ["2", "3"]);
        assert_eq!(
            chosen[0].rerun_of.as_deref(),
            Some(recorded.checksum.as_str())
        );
        assert!(chosen[1].rerun_of.is_none());
        assert_eq!(state.select_up(Some(1), None).unwrap().len(), 1);

        // Not from an older release: the newer one's text is the one to keep.
        let files = set(vec![migration("1", "a", true), {
            let mut view = migration("2", "CREATE OR REPLACE VIEW v AS SELECT 2", true);
            view.up.directives.run_on_change = true;
            view
        }]);
        let history = vec![row("1", "a", false), recorded, row("3", "c", false)];
        let state = NamespaceState::build("app", false, &files, history, vec![]);
        assert_eq!(state.entries[1].state, State::Changed);
        assert!(state.select_up(None, None).unwrap().is_empty());
    }

    #[test]
    fn versions_applied_by_a_newer_release_are_allowed_unless_strict() {
        // This release has 1-2; a newer one applied 3 and 4.
        let files = set(vec![migration("1", "a", true), migration("2", "b", true)]);
        let history = vec![
            row("1", "a", false),
            row("2", "b", false),
            row("3", "c", false),
            row("4", "d", false),
        ];
        let state = NamespaceState::build("app", false, &files, history.clone(), vec![]);
        let states: Vec<_> = state.entries.iter().map(|e| e.state).collect();
        assert_eq!(
            states,
            vec![
                State::Applied,
                State::Applied,
                State::NewerApplied,
                State::NewerApplied
            ]
        );
        state.check_can_move(&Tolerance::default()).unwrap();
        assert!(state.select_up(None, None).unwrap().is_empty());
        let Some(crate::events::Event::NewerApplied {
            versions,
            known,
            reason,
            ..
        }) = state.newer_applied_note()
        else {
            panic!("the newer versions must be noted");
        };
        assert_eq!(versions, vec!["3", "4"]);
        assert_eq!(known, "2");
        assert_eq!(reason, "MIGRATION_NEWER_THAN_RELEASE:app:4");
        let strict = Tolerance {
            refuse_newer_applied: true,
            ..Tolerance::default()
        };
        let err = state.check_can_move(&strict).unwrap_err();
        assert_eq!(err.reason().to_string(), "MIGRATION_FILE_MISSING:app:3");
        assert_eq!(err.exit_code(), 1);
        // Rolling back from here cannot reach them.
        let err = state.select_down(Some(1), None).unwrap_err();
        assert_eq!(err.reason().to_string(), "MIGRATION_FILE_MISSING:app:4");

        // A missing version older than the newest file still refuses.
        let gap = set(vec![migration("1", "a", true), migration("3", "c", true)]);
        let state = NamespaceState::build("app", false, &gap, history.clone(), vec![]);
        assert_eq!(state.entries[1].state, State::FileMissing);
        assert_eq!(state.entries[3].state, State::NewerApplied);
        let err = state.check_can_move(&Tolerance::default()).unwrap_err();
        assert_eq!(err.reason().to_string(), "MIGRATION_FILE_MISSING:app:2");

        // A file of this release newer than what was applied is pending
        // only above the newest applied version; below, out of order.
        let hotfix = set(vec![
            migration("1", "a", true),
            migration("2", "b", true),
            migration("2.5", "hotfix", true),
        ]);
        let state = NamespaceState::build("app", false, &hotfix, history.clone(), vec![]);
        assert_eq!(state.entries[2].state, State::OutOfOrder);
        assert_eq!(
            state
                .check_can_move(&Tolerance::default())
                .unwrap_err()
                .reason()
                .to_string(),
            "MIGRATION_OUT_OF_ORDER:app:2.5"
        );

        // No file at all says nothing about releases: missing, refused.
        let state = NamespaceState::build("app", false, &set(vec![]), history, vec![]);
        assert!(state.entries.iter().all(|e| e.state == State::FileMissing));
        assert!(state.check_can_move(&Tolerance::default()).is_err());
    }

    #[test]
    fn dirty_comes_first_and_refuses() {
        let files = set(vec![migration("1", "a", true), migration("2", "b", true)]);
        let state = NamespaceState::build("app", false, &files, vec![row("1", "a", true)], vec![]);
        let err = state.check_can_move(&Tolerance::default()).unwrap_err();
        assert_eq!(err.reason().to_string(), "MIGRATION_DIRTY:app:1");
    }

    #[test]
    fn selects_steps_and_targets() {
        let files = set(vec![
            migration("1", "a", true),
            migration("2", "b", true),
            migration("3", "c", false),
        ]);
        let state = NamespaceState::build("app", false, &files, vec![], vec![]);
        assert_eq!(state.select_up(Some(2), None).unwrap().len(), 2);
        assert_eq!(
            state
                .select_up(None, Some(&Version::parse("2").unwrap()))
                .unwrap()
                .len(),
            2
        );
        assert!(
            state
                .select_up(None, Some(&Version::parse("9").unwrap()))
                .is_err()
        );

        let applied = NamespaceState::build(
            "app",
            false,
            &files,
            vec![
                row("1", "a", false),
                row("2", "b", false),
                row("3", "c", false),
            ],
            vec![],
        );
        let err = applied.select_down(Some(1), None).unwrap_err();
        assert_eq!(err.reason().to_string(), "DOWN_SCRIPT_MISSING:app:3");
        assert_eq!(err.exit_code(), 4);
        let down = applied
            .select_down(None, Some(&Version::parse("3").unwrap()))
            .unwrap();
        assert!(down.is_empty());
        let forward_only =
            NamespaceState::build("app", true, &files, vec![row("1", "a", false)], vec![]);
        assert_eq!(
            forward_only
                .select_down(None, None)
                .unwrap_err()
                .reason()
                .to_string(),
            "DOWN_SCRIPT_MISSING:app:1"
        );
    }
}
