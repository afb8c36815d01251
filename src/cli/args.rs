//! Every command-line flag, with its help text, in one place.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Safe PostgreSQL schema migrations: applied exactly once, in order, under a
/// lock, with an honest history and a reason code for every failure.
#[derive(Debug, Parser)]
#[command(
    name = "migsafe",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Options accepted before or after the subcommand.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Text for people (colour on a terminal).
    Human,
    /// One JSON document on stdout.
    Json,
    /// GitHub Actions workflow annotations (`lint`; others print human text).
    Github,
}

/// Global options.
#[derive(Debug, Args)]
pub struct Global {
    /// Config file [default: ./migsafe.toml when present].
    #[arg(long, global = true, env = "MIGSAFE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Database URL (postgres://… or key=value); the password is never printed.
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub database_url: Option<String>,
    /// Namespace to work on, or `all` [default: all, in config order].
    #[arg(long, global = true, value_name = "NAMESPACE")]
    pub target: Option<String>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Where the JSONL event log and reports go.
    #[arg(long, global = true, default_value = "logs", value_name = "DIR")]
    pub log_dir: PathBuf,
    /// Print only results and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More detail (`status -v` lists ignored files; -vv shows debug logs).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented migsafe.toml and a migrations/ directory.
    Init,
    /// Create the next migration's files (up and down, or one file when forward-only).
    New {
        /// What the migration does, e.g. add_email_to_users.
        name: String,
    },
    /// Per namespace: applied, pending, dirty, edited and missing migrations.
    Status,
    /// Applied migrations with time, duration and who ran them.
    History,
    /// What apply would run, in order, and whether it would refuse (no lock, no writes).
    #[command(alias = "dry-run")]
    Plan(Selection),
    /// Apply pending migrations under the namespace lock.
    Apply(ApplyArgs),
    /// Read-only checks before applying: history, drift, long transactions, blocking locks, lint,
    /// backup space; report in the log directory; exit 1 on a failure.
    Preflight(Selection),
    /// Read-only checks of the database after migrating: dirty rows, NOT VALID constraints,
    /// orphaned rows, INVALID indexes, time budget; exit 3 on a failure.
    Postflight {
        /// Look for orphaned rows behind every foreign key, not only NOT VALID ones.
        #[arg(long)]
        deep: bool,
    },
    /// Lint migrations (files or namespaces; pending ones by default when a database is given).
    Lint {
        /// SQL files or namespace names [default: the selected namespaces].
        paths: Vec<String>,
        /// Print docs/lint.md, generated from the rules.
        #[arg(long, hide = true)]
        rules_doc: bool,
    },
    /// Check a readiness profile (`[profiles.<name>]`): every unmet rule with its reason code; exit 7.
    Check {
        /// The profile, `[profiles.<name>]` in migsafe.toml.
        #[arg(long)]
        profile: String,
        /// Also require every namespace applied, clean and unedited.
        #[arg(long)]
        check_migrations: bool,
    },
    /// Wait until the database accepts connections (and, with --migrated, is fully migrated).
    Wait {
        /// Give up after this long (exit 7).
        #[arg(long, default_value = "60s", value_parser = parse_duration_arg)]
        timeout: std::time::Duration,
        /// Also wait until every namespace is fully applied, clean and unedited.
        #[arg(long)]
        migrated: bool,
    },
    /// Prove on a scratch database that every migration reverses cleanly: each
    /// migration up, down (must restore the schema before it), up again.
    Verify {
        /// A server where verify creates (and always drops) a scratch database;
        /// without it, a sandbox is started. Never the production database.
        #[arg(long, value_name = "URL")]
        scratch_url: Option<String>,
        /// The default (each migration up, down, up); accepted so older scripts keep working.
        #[arg(long, conflicts_with = "quick")]
        stepwise: bool,
        /// Only all up, all down, all up: faster but weaker — a down script that
        /// forgets something a later down script removes (a column of a table
        /// dropped later) passes.
        #[arg(long)]
        quick: bool,
        /// Warnings fail the run (exit 6): migrations over `migration_time_budget`, and
        /// migrations without a down script in a namespace that has down scripts.
        #[arg(long)]
        strict: bool,
    },
    /// Move a service's data from SQLite into PostgreSQL, verified row by row.
    Cutover {
        /// Where the data comes from.
        #[command(subcommand)]
        source: CutoverSource,
    },
    /// pg_dump backups: create, list, verify, restore.
    Backup {
        /// What to do.
        #[command(subcommand)]
        action: BackupAction,
    },
    /// Run down scripts, newest first.
    Rollback(RollbackArgs),
    /// Record versions up to VERSION as applied without running them (baseline).
    Stamp {
        /// The newest version to record.
        #[arg(value_name = "VERSION")]
        up_to: String,
    },
    /// Change the history by hand after checking the database; needs --reason.
    Repair(RepairArgs),
    /// The canonical schema: dump it, checksum it, or diff two databases.
    Schema {
        /// What to do.
        #[command(subcommand)]
        action: SchemaAction,
    },
    /// Start a throwaway PostgreSQL and print its URL; with `-- CMD`, run CMD against it.
    Sandbox {
        /// A command to run with DATABASE_URL set; the server stops when it ends.
        #[arg(last = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Run the whole pipeline on the bundled example against a sandbox.
    Demo,
}

fn parse_duration_arg(text: &str) -> Result<std::time::Duration, String> {
    migsafe::config::parse_duration(text)
}

/// `backup` subcommands.
#[derive(Debug, Subcommand)]
pub enum BackupAction {
    /// Write a verified pg_dump (custom format) into the backup directory.
    Create,
    /// List the backups, newest first.
    List,
    /// Check that a backup can be read back (pg_restore --list).
    Verify {
        /// The backup file.
        file: PathBuf,
    },
    /// Restore a backup into the database (pg_restore --clean, in one
    /// transaction), after a verified safety backup of the database as it is.
    Restore {
        /// The backup file.
        file: PathBuf,
        /// Confirm: this replaces the objects in the backup, and migsafe's history.
        #[arg(long)]
        yes: bool,
        /// Do not back up the current database first (you have another copy).
        #[arg(long)]
        no_safety_backup: bool,
    },
}

/// `schema` subcommands.
#[derive(Debug, Subcommand)]
pub enum SchemaAction {
    /// Print the canonical schema (one `object: definition` line each, sorted).
    Dump,
    /// Print the SHA-256 of the canonical schema.
    Checksum,
    /// Show what differs between two databases' schemas.
    Diff {
        /// The first database (the "before" side).
        #[arg(value_name = "URL-A")]
        url_a: String,
        /// The second database (the "after" side).
        #[arg(value_name = "URL-B")]
        url_b: String,
        /// Exit 6 when the schemas differ.
        #[arg(long)]
        exit_code: bool,
    },
}

/// Which pending migrations.
#[derive(Debug, Args, Clone, Default)]
pub struct Selection {
    /// Only the first N pending migrations.
    #[arg(long, value_name = "N")]
    pub steps: Option<usize>,
    /// Only up to and including this version.
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
    /// Apply pending versions older than the newest applied one.
    #[arg(long)]
    pub allow_out_of_order: bool,
    /// Go on although applied versions have no file.
    #[arg(long)]
    pub ignore_missing: bool,
    /// Let recovery of an interrupted migration run its down script even
    /// though that destroys rows written after the interruption (they are in
    /// the backup taken first).
    #[arg(long)]
    pub recover: bool,
}

/// `apply` options.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Which migrations.
    #[command(flatten)]
    pub selection: Selection,
    /// Print a psql-runnable script (with history inserts) instead of running.
    #[arg(long)]
    pub sql: bool,
    /// Go on although preflight fails (recorded in the report; never overrides
    /// dirty or edited migrations).
    #[arg(long)]
    pub force: bool,
    /// Do not take a pg_dump backup first.
    #[arg(long)]
    pub skip_backup: bool,
    /// Do not run the postflight checks (the schema checksum is still recorded).
    #[arg(long)]
    pub no_postflight: bool,
    /// Postflight looks for orphaned rows behind every foreign key.
    #[arg(long)]
    pub deep: bool,
}

/// `rollback` options.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// How many applied migrations to undo [default: 1].
    #[arg(long, value_name = "N", conflicts_with = "to")]
    pub steps: Option<usize>,
    /// Undo every applied migration newer than VERSION.
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
    /// Do not take a pg_dump backup first.
    #[arg(long)]
    pub skip_backup: bool,
}

/// `repair` options: exactly one action, and a reason.
#[derive(Debug, Args)]
pub struct RepairArgs {
    /// Record the file's current checksum for an applied VERSION (cosmetic edits only).
    #[arg(long, value_name = "VERSION", conflicts_with_all = ["clear_dirty", "forget"])]
    pub accept_checksum: Option<String>,
    /// Mark a dirty VERSION as finished (you completed its statements by hand).
    #[arg(long, value_name = "VERSION", conflicts_with = "forget")]
    pub clear_dirty: Option<String>,
    /// Delete VERSION's history row (you undid it by hand; it becomes pending).
    #[arg(long, value_name = "VERSION")]
    pub forget: Option<String>,
    /// Why; kept in the audit table and the event log.
    #[arg(long, required = true)]
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}

/// Where a cutover's data comes from.
#[derive(Debug, Subcommand)]
pub enum CutoverSource {
    /// A SQLite file (only ever read; `run` loads from an online backup of it).
    Sqlite {
        /// The step.
        #[command(subcommand)]
        step: CutoverStep,
    },
}

/// The steps of a cutover.
#[derive(Debug, Subcommand)]
pub enum CutoverStep {
    /// What would stop an exact copy: missing tables or columns, values that do
    /// not fit their column, rows whose parent is missing. Exit 1 when any.
    Precheck {
        /// Source, schema, exclusions.
        #[command(flatten)]
        common: CutoverArgs,
        /// When the target still has pending migrations, build the schema on a
        /// scratch database on this server (default: a sandbox).
        #[arg(long, value_name = "URL")]
        scratch_url: Option<String>,
    },
    /// Back up the file, apply the migrations, load every table by binary COPY,
    /// set sequences, verify. All or nothing.
    Run {
        /// Source, schema, exclusions.
        #[command(flatten)]
        common: CutoverArgs,
        /// Empty the target tables first (default: refuse tables that hold rows).
        #[arg(long)]
        truncate: bool,
        /// Do not end with a verify.
        #[arg(long)]
        no_verify: bool,
        /// Skip the pg_dump backup of the target before its migrations run.
        #[arg(long)]
        skip_backup: bool,
    },
    /// Compare every table: row counts and a content hash on both sides.
    Verify {
        /// Source, schema, exclusions.
        #[command(flatten)]
        common: CutoverArgs,
        /// Exit 6 when any table differs (default: report only).
        #[arg(long)]
        fail_on_mismatch: bool,
    },
}

/// Options of every cutover step.
#[derive(Debug, Args)]
pub struct CutoverArgs {
    /// The SQLite database file.
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,
    /// The PostgreSQL schema holding the target tables.
    #[arg(long, default_value = "public", value_name = "SCHEMA")]
    pub schema: String,
    /// A SQLite table to leave out (repeatable).
    #[arg(long, value_name = "TABLE")]
    pub exclude: Vec<String>,
    /// Tables copied or compared at once, each on its own connection.
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
}
