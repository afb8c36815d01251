//! The cutover commands of [`Migrator`] (SPEC 10): precheck, run, verify.
//! They resolve the namespace and its database like every other command,
//! and write their reports next to the others in the log directory. They
//! live here, with the rest of cutover, as an `impl Migrator` block: the
//! façade keeps one entry point while cutover keeps one home.

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::Utc;
use serde::Serialize;

use crate::cutover::copy::{LoadOptions, LoadPlan, TableCopy};
use crate::cutover::precheck::{self, PrecheckReport, blocking};
use crate::cutover::target::TargetSchema;
use crate::cutover::verify::{self, VerifyReport};
use crate::cutover::{self, CutoverOptions, Problem, sqlite};
use crate::db::history::History;
use crate::error::{Code, Error, ReasonCode, Result};
use crate::events::{Event, NoEvents, millis};
use crate::migrator::{Loaded, Migrator};
use crate::pipeline::Env;
use crate::pipeline::apply::ApplyOptions;
use crate::pipeline::guarded::Opened;
use crate::report::{Status, write_private_json};

/// How `cutover sqlite run` works.
#[derive(Debug, Clone)]
pub struct CutoverRunOptions {
    /// Source, schema, exclusions, parallelism.
    pub cutover: CutoverOptions,
    /// Empty the target tables first instead of refusing non-empty ones.
    pub truncate: bool,
    /// End with `cutover sqlite verify` (on by default).
    pub verify: bool,
    /// Skip the pg_dump backup of the target before its migrations run.
    pub skip_backup: bool,
}

/// The report of `cutover sqlite run` (`logs/cutover-report-<timestamp>.json`).
#[derive(Debug, Clone, Serialize)]
pub struct CutoverReport {
    /// Format version.
    pub schema_version: u32,
    /// The SQLite file named with --from (only read).
    pub source: String,
    /// The online backup the rows were loaded from.
    pub backup: String,
    /// The target database (no password).
    pub target: String,
    /// The target schema.
    pub schema: String,
    /// When it started.
    pub started_at: chrono::DateTime<Utc>,
    /// Wall time of the whole run.
    pub duration_ms: u64,
    /// Migrations applied to the target first.
    pub migrations_applied: Vec<String>,
    /// Warnings of the precheck (a failing precheck stops the run).
    pub warnings: Vec<Problem>,
    /// Per table: rows, bytes, seconds, sequences.
    pub tables: Vec<TableCopy>,
    /// All rows copied.
    pub rows: u64,
    /// All bytes sent.
    pub bytes: u64,
    /// Wall time of the load alone.
    pub load_seconds: f64,
    /// The verify at the end, unless --no-verify.
    pub verify: Option<VerifyReport>,
    /// `pass`, `warn` (precheck warnings) or `fail` (verify mismatch).
    pub result: Status,
}

fn stamp() -> String {
    crate::report::file_stamp(Utc::now())
}

/// Samples printed per problem (the report keeps up to 100).
const SAMPLES_SHOWN: usize = 5;

/// The problems for people, failures first, at most `limit` problems and
/// five samples each, and how many rows each is about when that is more.
pub fn describe_problems(problems: &[Problem], limit: usize) -> String {
    let mut out = String::new();
    for problem in problems.iter().take(limit) {
        out.push_str(&format!("  {} {}\n", problem.reason, problem.detail));
        for sample in problem.samples.iter().take(SAMPLES_SHOWN) {
            out.push_str(&format!("      {sample}\n"));
        }
        let kept = problem.samples.len() as u64;
        let shown = kept.min(SAMPLES_SHOWN as u64);
        match (kept > shown, problem.count > kept) {
            (true, true) => out.push_str(&format!(
                "      … {} rows in all: the report names {kept} of them\n",
                problem.count
            )),
            (true, false) => {
                out.push_str(&format!("      … {} more in the report\n", kept - shown))
            }
            (false, true) if kept > 0 => {
                out.push_str(&format!("      … {} rows in all\n", problem.count));
            }
            (false, _) => {}
        }
    }
    if problems.len() > limit {
        out.push_str(&format!("  … and {} more\n", problems.len() - limit));
    }
    out
}

impl Migrator {
    /// `logs/cutover-<kind>-<timestamp>.json`, owner-only.
    /// Nothing without a log directory (library use that did not ask).
    fn write_cutover_report<T: Serialize>(
        &self,
        kind: &str,
        report: &T,
    ) -> Result<Option<PathBuf>> {
        let Some(dir) = &self.log_dir else {
            return Ok(None);
        };
        let path = dir.join(format!("cutover-{kind}-{}.json", stamp()));
        write_private_json(&path, report)?;
        crate::report::prune_reports(dir, &format!("cutover-{kind}"), self.config.logs.keep);
        Ok(Some(path))
    }

    fn cutover_namespace(&self, target: Option<&str>, command: &str) -> Result<Loaded> {
        self.single(target, command)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::config(Code::Usage, "no namespace is configured"))
    }

    /// The target schema as the namespace's migrations build it: read from
    /// the target when nothing is pending, else from a scratch database the
    /// migrations are applied to (the target is never written by precheck).
    /// The scratch database is returned too, still there: precheck compares
    /// keys on it; the caller removes it.
    async fn cutover_schema(
        &self,
        loaded: &Loaded,
        schema: &str,
        scratch_url: Option<&str>,
    ) -> Result<(TargetSchema, &'static str, Option<crate::scratch::Scratch>)> {
        let db = loaded.settings.connect().await?;
        let history = History::new(&self.config.history_schema);
        let state = loaded.target().state(&db, &history).await?;
        if state.pending().next().is_none() {
            return Ok((TargetSchema::read(&db, schema).await?, "target", None));
        }
        let scratch = crate::scratch::Scratch::create(scratch_url, "cutover").await?;
        let built = async {
            let logs = tempfile::tempdir()
                .map_err(|e| Error::io(Path::new("(temporary directory)"), "create", &e))?;
            let env = Env {
                config: &self.config,
                events: &NoEvents,
                interrupt: &self.interrupt,
                log_dir: Some(logs.path()),
            };
            let target = crate::pipeline::Target {
                namespace: &loaded.namespace,
                sources: &loaded.sources,
                settings: &scratch.settings,
            };
            let opened = [Opened {
                db: std::sync::Arc::new(scratch.settings.connect().await?),
                target,
            }];
            let options = ApplyOptions {
                skip_backup: true,
                skip_postflight: true,
                force: true,
                ..ApplyOptions::default()
            };
            crate::pipeline::guarded::apply(&env, &opened, &options).await?;
            let mut built = TargetSchema::read(&opened[0].db, schema).await?;
            // The scratch database is UTF-8; the load goes to the target.
            built.encoding = cutover::target::server_encoding(&db).await?;
            Ok::<_, Error>(built)
        }
        .await;
        match built {
            Ok(built) => Ok((built, "scratch", Some(scratch))),
            Err(err) => {
                scratch.remove().await;
                // Ctrl-C while the scratch schema was built: a cutover
                // interruption, nothing of the target was touched.
                if err.reason().code() == Code::MigrationCancelled {
                    return Err(precheck::interrupted());
                }
                Err(err)
            }
        }
    }

    /// `cutover sqlite precheck`: read-only on both sides; writes
    /// `logs/cutover-precheck-<timestamp>.json`.
    pub async fn cutover_precheck(
        &self,
        target: Option<&str>,
        options: &CutoverOptions,
        scratch_url: Option<&str>,
    ) -> Result<PrecheckReport> {
        let loaded = self.cutover_namespace(target, "cutover sqlite precheck")?;
        open_source(&options.from).await?;
        let (schema, from, scratch) = self
            .cutover_schema(&loaded, &options.schema, scratch_url)
            .await?;
        let keys_on = scratch.as_ref().map_or(&loaded.settings, |s| &s.settings);
        let checked = precheck::precheck(
            &options.from,
            &schema,
            keys_on,
            options,
            true,
            &self.interrupt,
        )
        .await;
        if let Some(scratch) = scratch {
            scratch.remove().await;
        }
        let (_, tables, problems) = checked?;
        let report = precheck::report(
            &options.from,
            loaded.settings.to_string(),
            options,
            from,
            tables,
            problems,
        );
        self.write_cutover_report("precheck", &report)?;
        Ok(report)
    }

    /// `cutover sqlite run`: SQLite backup → migrations → precheck → load →
    /// verify; writes `logs/cutover-report-<timestamp>.json`.
    pub async fn cutover_run(
        &self,
        target: Option<&str>,
        options: &CutoverRunOptions,
    ) -> Result<CutoverReport> {
        let started_at = Utc::now();
        let started = Instant::now();
        let cutover = &options.cutover;
        let loaded = self.cutover_namespace(target, "cutover sqlite run")?;
        open_source(&cutover.from).await?;
        // What can be refused before the backup of the SQLite file is
        // written, is: a typo in --epoch-unit, a target that cannot be
        // reached, target tables that already hold rows.
        let (sources, virtual_tables) = {
            let (from, choices) = (cutover.from.clone(), cutover.epoch_units.clone());
            blocking(move || {
                let db = sqlite::open(&from)?;
                let (tables, virtual_tables) = sqlite::tables(&db, &from)?;
                cutover::epoch::check_names(&choices, &tables)?;
                Ok((tables, virtual_tables))
            })
            .await?
        };
        let db = loaded.settings.connect().await?;
        if !options.truncate {
            // A refused run changes nothing: the load would refuse these
            // rows too, but only after the pending migrations had run. The
            // tables the migrations have yet to create are empty; the load
            // still asks again, inside its transaction.
            let existing = TargetSchema::read(&db, &cutover.schema).await?;
            let mapping = cutover::map(&sources, &virtual_tables, &existing, cutover);
            crate::cutover::copy::refuse_rows(&db, &mapping.tables).await?;
        }
        drop(db);

        let backup = {
            let from = cutover.from.clone();
            let dir = self.config.backup.sqlite_dir.clone();
            let began = Instant::now();
            let path = blocking(move || sqlite::backup(&from, &dir)).await?;
            self.events.emit(&Event::SourceBackupWritten {
                path: path.display().to_string(),
                bytes: std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
                duration_ms: millis(began.elapsed()),
            });
            path
        };

        let keep = self.config.backup.keep;
        let kept = {
            let (from, dir) = (cutover.from.clone(), self.config.backup.sqlite_dir.clone());
            blocking(move || sqlite::prune(&from, &dir, keep)).await
        };
        if let Err(err) = kept {
            tracing::warn!("{err}");
        }
        let result = self
            .cutover_from_backup(&loaded, options, &backup, started_at, started)
            .await;
        // Refused before anything was loaded from it (precheck, rows in the
        // target, a refused migration, a bad option): the copy is of no use,
        // and retries must not pile copies up.
        match result {
            Err(err @ (Error::Refused { .. } | Error::Config { .. })) => {
                if std::fs::remove_file(&backup).is_err() {
                    return Err(err);
                }
                let hint = match err.hint() {
                    Some(hint) => format!(
                        "{hint} (the backup {} was removed again: nothing was loaded from it)",
                        backup.display()
                    ),
                    None => format!(
                        "the backup {} was removed again: nothing was loaded from it",
                        backup.display()
                    ),
                };
                Err(err.with_hint(hint))
            }
            other => other,
        }
    }

    /// `cutover sqlite run` once the SQLite backup is written: migrations →
    /// precheck → load → verify, from the backup.
    async fn cutover_from_backup(
        &self,
        loaded: &Loaded,
        options: &CutoverRunOptions,
        backup: &Path,
        started_at: chrono::DateTime<Utc>,
        started: Instant,
    ) -> Result<CutoverReport> {
        let applied = self
            .apply(
                Some(&loaded.namespace.name),
                &ApplyOptions {
                    skip_backup: options.skip_backup,
                    ..ApplyOptions::default()
                },
            )
            .await?;
        let migrations_applied = applied
            .namespaces
            .iter()
            .flat_map(|n| n.ran.iter().map(|r| r.version.clone()))
            .collect::<Vec<String>>();
        self.cutover_load(
            loaded,
            options,
            backup,
            (started_at, started),
            migrations_applied.clone(),
        )
        .await
        .map_err(|err| after_migrations(err, &migrations_applied, backup))
    }

    /// `cutover sqlite run` once the migrations ran: precheck → load →
    /// verify, from the backup.
    async fn cutover_load(
        &self,
        loaded: &Loaded,
        options: &CutoverRunOptions,
        backup: &Path,
        (started_at, started): (chrono::DateTime<Utc>, Instant),
        migrations_applied: Vec<String>,
    ) -> Result<CutoverReport> {
        let cutover = &options.cutover;
        let db = loaded.settings.connect().await?;
        let schema = TargetSchema::read(&db, &cutover.schema).await?;
        let (mapping, rows, problems) = precheck::precheck(
            backup,
            &schema,
            &loaded.settings,
            cutover,
            false,
            &self.interrupt,
        )
        .await?;
        if cutover::result_of(&problems) == Status::Fail {
            let report = precheck::report(
                &cutover.from,
                loaded.settings.to_string(),
                cutover,
                "target",
                rows,
                problems.clone(),
            );
            let path = self.write_cutover_report("precheck", &report)?;
            let failures: Vec<Problem> = problems
                .into_iter()
                .filter(|p| p.status == Status::Fail)
                .collect();
            return Err(Error::Refused {
                reason: ReasonCode::new(Code::CutoverPrecheckFailed),
                message: format!(
                    "the copy could not be exact; nothing was loaded ({} problem(s)):\n{}",
                    failures.len(),
                    describe_problems(&failures, 10).trim_end()
                ),
                hint: Some(match path {
                    Some(path) => format!(
                        "fix the SQLite data or the schema and run again; the full list is in {}",
                        path.display()
                    ),
                    None => "fix the SQLite data or the schema and run again; `cutover sqlite precheck` lists every problem".into(),
                }),
             source: None, });
        }
        let warnings = problems;

        let totals: Vec<u64> = rows.iter().map(|r| r.rows).collect();
        let load_started = Instant::now();
        let tables = crate::cutover::copy::load(
            &loaded.settings,
            &LoadPlan {
                source: backup,
                tables: &mapping.tables,
                keys: &schema.foreign_keys,
                totals: &totals,
                charset: cutover::charset::Charset::of(&schema.encoding),
            },
            &LoadOptions {
                truncate: options.truncate,
                lock_timeout: self.config.defaults.lock_timeout,
            },
            self.events.as_ref(),
            &self.interrupt,
        )
        .await
        .map_err(|e| e.during_run(false))?;
        let load_seconds = load_started.elapsed().as_secs_f64();

        let verify = if options.verify {
            let began = Instant::now();
            let rows: u64 = tables.iter().map(|t| t.rows).sum();
            let compared = verify::verify(
                &loaded.settings,
                backup,
                &mapping.tables,
                cutover.jobs,
                &self.interrupt,
            )
            .await
            .map_err(|e| {
                let hint = format!(
                    "the load itself finished: {rows} rows are committed. Check them with `migsafe cutover sqlite verify --from {}`",
                    backup.display()
                );
                match e {
                    Error::Refused { reason, .. } if reason.code() == Code::CutoverCancelled => {
                        Error::Migration {
                            reason,
                            message: "interrupted during the verify that ends the run".into(),
                            hint: Some(hint),
                         source: None, }
                    }
                    other => other.with_hint(hint),
                }
            })?;
            Some(VerifyReport {
                schema_version: cutover::REPORT_VERSION,
                source: backup.display().to_string(),
                target: loaded.settings.to_string(),
                schema: cutover.schema.clone(),
                duration_ms: millis(began.elapsed()),
                result: verify::result_of(&compared),
                tables: compared,
                problems: Vec::new(),
            })
        } else {
            None
        };
        let result = match &verify {
            Some(v) if v.result == Status::Fail => Status::Fail,
            _ => cutover::result_of(&warnings),
        };
        let report = CutoverReport {
            schema_version: cutover::REPORT_VERSION,
            source: cutover.from.display().to_string(),
            backup: backup.display().to_string(),
            target: loaded.settings.to_string(),
            schema: cutover.schema.clone(),
            started_at,
            duration_ms: millis(started.elapsed()),
            migrations_applied,
            warnings,
            rows: tables.iter().map(|t| t.rows).sum(),
            bytes: tables.iter().map(|t| t.bytes).sum(),
            load_seconds,
            tables,
            verify,
            result,
        };
        self.write_cutover_report("report", &report)?;
        Ok(report)
    }

    /// `cutover sqlite verify`: compares every table of the SQLite file with
    /// the target; writes `logs/cutover-verify-<timestamp>.json`.
    pub async fn cutover_verify(
        &self,
        target: Option<&str>,
        options: &CutoverOptions,
    ) -> Result<VerifyReport> {
        let began = Instant::now();
        let loaded = self.cutover_namespace(target, "cutover sqlite verify")?;
        let from: PathBuf = options.from.clone();
        let (tables, virtual_tables) = blocking(move || {
            let db = sqlite::open(&from)?;
            sqlite::tables(&db, &from)
        })
        .await?;
        let db = loaded.settings.connect().await?;
        let schema = TargetSchema::read(&db, &options.schema).await?;
        let mut mapping = cutover::map(&tables, &virtual_tables, &schema, options);
        // The same units as precheck and run decide, from the same file.
        let mapping = {
            let path = options.from.clone();
            let choices = options.epoch_units.clone();
            blocking(move || {
                cutover::epoch::decide(&path, &mut mapping, &choices)?;
                Ok(mapping)
            })
            .await?
        };
        let compared = verify::verify(
            &loaded.settings,
            &options.from,
            &mapping.tables,
            options.jobs,
            &self.interrupt,
        )
        .await?;
        // A table or column the target lacks is data that is not there.
        let missing: Vec<Problem> = mapping
            .problems
            .into_iter()
            .filter(|p| p.status == Status::Fail)
            .collect();
        let result = if missing.is_empty() {
            verify::result_of(&compared)
        } else {
            Status::Fail
        };
        let report = VerifyReport {
            schema_version: cutover::REPORT_VERSION,
            source: options.from.display().to_string(),
            target: loaded.settings.to_string(),
            schema: options.schema.clone(),
            duration_ms: millis(began.elapsed()),
            tables: compared,
            problems: missing,
            result,
        };
        self.write_cutover_report("verify", &report)?;
        Ok(report)
    }
}

/// Fails early (exit 5) when the SQLite file is missing or not SQLite.
/// An error once the pending migrations ran: a Ctrl-C there is no longer
/// "nothing changed", and whoever reads any refusal learns the migrations
/// stay applied.
fn after_migrations(err: Error, applied: &[String], backup: &Path) -> Error {
    let ran = if applied.is_empty() {
        "no migration was pending".to_string()
    } else {
        format!(
            "{} pending migration(s) ran and stay applied ({})",
            applied.len(),
            applied.join(", ")
        )
    };
    let code = err.reason().code();
    if matches!(err, Error::Refused { .. })
        && matches!(code, Code::Interrupted | Code::CutoverCancelled)
    {
        return Error::Migration {
            reason: ReasonCode::new(Code::CutoverCancelled),
            message: format!("interrupted before the load: {ran}; no row was loaded"),
            hint: Some(format!(
                "the target has the new schema and empty tables; the SQLite backup {} is kept. Run `migsafe cutover sqlite run` again to load",
                backup.display()
            )),
            source: None,
        };
    }
    if applied.is_empty() {
        return err;
    }
    let hint = match err.hint() {
        Some(hint) => format!("{hint} ({ran})"),
        None => ran,
    };
    err.with_hint(hint)
}

async fn open_source(path: &Path) -> Result<()> {
    let path = path.to_path_buf();
    blocking(move || sqlite::open(&path).map(|_| ())).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::error::Code;

    fn problem(count: u64, kept: usize) -> Problem {
        let mut problem = Problem::about(
            Code::CutoverValueMisfit,
            crate::report::Status::Fail,
            "events",
            Some("amount"),
            "text_in_real_column",
            "text where a number goes".into(),
        );
        problem.count = count;
        problem.samples = (0..kept).map(|i| format!("(id)=({i}): 'x'")).collect();
        problem
    }

    #[test]
    fn the_terminal_says_how_many_rows_beyond_its_examples() {
        let text = describe_problems(&[problem(3, 3)], 10);
        assert_eq!(text.lines().count(), 4, "{text}");
        let text = describe_problems(&[problem(40, 40)], 10);
        assert!(text.contains("      … 35 more in the report\n"), "{text}");
        let text = describe_problems(&[problem(12_345, 100)], 10);
        assert!(
            text.contains("      … 12345 rows in all: the report names 100 of them\n"),
            "{text}"
        );
        let text = describe_problems(&[problem(4, 2)], 10);
        assert!(text.contains("      … 4 rows in all\n"), "{text}");
    }
}
