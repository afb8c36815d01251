//! The command line's top level: the global flags and the list of commands.
//! Each command's own flags, with their help text, sit in its file in
//! `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::commands;

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
    /// Whether `--database-url` was on the command line (not only
    /// `DATABASE_URL` in the environment): `fleet`, which takes its
    /// databases from a file, refuses the flag and ignores the variable.
    #[arg(skip)]
    pub database_url_given: bool,
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

/// The commands. Each variant wraps the `Args` of its file in
/// `commands/`, where its flags, its library call and its rendering live.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented migsafe.toml and a migrations/ directory.
    Init(commands::init::Args),
    /// Create the next migration's files (up and down, or one file when forward-only).
    New(commands::new::Args),
    /// Per namespace: applied, pending, dirty, edited and missing migrations.
    Status(commands::status::Args),
    /// Applied migrations with time, duration and who ran them.
    History(commands::history::Args),
    /// What apply would run, in order, and whether it would refuse (no lock, no writes).
    #[command(alias = "dry-run")]
    Plan(commands::plan::Args),
    /// Apply pending migrations under the namespace lock.
    Apply(commands::apply::Args),
    /// Read-only checks before applying: history, drift, long transactions, blocking locks, lint,
    /// backup space; report in the log directory; exit 1 on a failure.
    Preflight(commands::preflight::Args),
    /// Read-only checks of the database after migrating: dirty rows, NOT VALID constraints,
    /// orphaned rows, INVALID indexes, time budget; exit 3 on a failure.
    Postflight(commands::postflight::Args),
    /// Lint migrations (files or namespaces; pending ones by default when a database is given).
    Lint(commands::lint::Args),
    /// Check a readiness profile (`[profiles.<name>]`): every unmet rule with its reason code; exit 7.
    Check(commands::check::Args),
    /// Wait until the database accepts connections (and, with --migrated, is fully migrated).
    Wait(commands::wait::Args),
    /// Prove on a scratch database that every migration reverses cleanly: each
    /// migration up, down (must restore the schema before it), up again.
    Verify(commands::verify::Args),
    /// Move a service's data from SQLite into PostgreSQL, verified row by row.
    Cutover(commands::cutover::Args),
    /// pg_dump backups: create, list, verify, restore.
    Backup(commands::backup::Args),
    /// Run down scripts, newest first.
    Rollback(commands::rollback::Args),
    /// Record versions up to VERSION as applied without running them (baseline).
    Stamp(commands::stamp::Args),
    /// Take over another tool's history (golang-migrate, Flyway, sqlx, Prisma…): record what it applied, run nothing.
    Adopt(commands::adopt::Args),
    /// The same migrations over many databases (a file of URLs): canary first, --parallel at a
    /// time, stop after --max-failures; `fleet status` shows each database's state.
    Fleet(commands::fleet::Args),
    /// Change the history by hand after checking the database; needs --reason.
    Repair(commands::repair::Args),
    /// The canonical schema: dump it, checksum it, or diff two databases.
    Schema(commands::schema::Args),
    /// Start a throwaway PostgreSQL and print its URL; with `-- CMD`, run CMD against it.
    Sandbox(commands::sandbox::Args),
    /// Run the whole pipeline on the bundled example against a sandbox.
    Demo(commands::demo::Args),
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
