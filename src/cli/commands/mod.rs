//! One file per command, as in cargo's `src/bin/cargo/commands/`: each has
//! its `Args` (flags and help text), an `exec` that calls the library and
//! renders the result, and the rendering only it uses. A new command is a
//! new file here and a variant of [`Command`], never a new arm of a long
//! function.

pub mod adopt;
pub mod apply;
pub mod backup;
pub mod check;
pub mod cutover;
pub mod demo;
pub mod fleet;
pub mod history;
pub mod init;
pub mod lint;
pub mod new;
pub mod plan;
pub mod postflight;
pub mod preflight;
pub mod repair;
pub mod rollback;
pub mod sandbox;
pub mod schema;
pub mod stamp;
pub mod status;
pub mod verify;
pub mod wait;

use std::path::PathBuf;
use std::sync::Arc;

use migsafe::error::Result;
use migsafe::events::{EventSink, Fanout, Interrupt};
use migsafe::report::EventLog;
use migsafe::{Config, Migrator};

use super::args::{Command, Format, Global};
use super::progress;

/// What every command gets: the global flags, the working directory and
/// the Ctrl-C flag. The [`Migrator`] is built on demand because `init`,
/// `sandbox` and `demo` must run without a config file, and because only
/// commands that write keep an event log.
pub struct Context<'a> {
    /// `--config`, `--target`, `--format`… as given.
    pub global: &'a Global,
    /// Where migsafe.toml is looked for.
    pub cwd: PathBuf,
    /// Set by the first Ctrl-C or SIGTERM.
    pub interrupt: Interrupt,
}

impl Context<'_> {
    /// `--format json`: one JSON document on stdout.
    pub fn json(&self) -> bool {
        self.global.format == Format::Json
    }

    /// `--target`.
    pub fn target(&self) -> Option<&str> {
        self.global.target.as_deref()
    }

    /// Loads the config and builds the library's entry point; `writes`
    /// commands also append their events to the JSONL log.
    pub fn migrator(&self, writes: bool) -> Result<Migrator> {
        let g = self.global;
        let config = Config::load(g.config.as_deref(), &self.cwd)?;
        let mut sinks: Vec<Arc<dyn EventSink>> = vec![Arc::new(crate::cli::output::CommittedRuns)];
        if !g.quiet {
            sinks.push(Arc::new(progress::HumanProgress::new()));
        }
        if writes {
            sinks.push(Arc::new(EventLog::open(&g.log_dir)?));
        }
        Ok(Migrator::new(config)
            .with_database_url(g.database_url.clone())
            .with_events(Arc::new(Fanout(sinks)))
            .with_interrupt(self.interrupt.clone())
            .with_log_dir(g.log_dir.clone())
            .with_backups(true))
    }
}

/// Runs one command; returns its exit code.
pub async fn exec(command: &Command, ctx: &Context<'_>) -> Result<i32> {
    match command {
        Command::Init(args) => init::exec(args, ctx).await,
        Command::New(args) => new::exec(args, ctx).await,
        Command::Status(args) => status::exec(args, ctx).await,
        Command::History(args) => history::exec(args, ctx).await,
        Command::Plan(args) => plan::exec(args, ctx).await,
        Command::Apply(args) => apply::exec(args, ctx).await,
        Command::Rollback(args) => rollback::exec(args, ctx).await,
        Command::Preflight(args) => preflight::exec(args, ctx).await,
        Command::Postflight(args) => postflight::exec(args, ctx).await,
        Command::Stamp(args) => stamp::exec(args, ctx).await,
        Command::Adopt(args) => adopt::exec(args, ctx).await,
        Command::Fleet(args) => fleet::exec(args, ctx).await,
        Command::Repair(args) => repair::exec(args, ctx).await,
        Command::Lint(args) => lint::exec(args, ctx).await,
        Command::Verify(args) => verify::exec(args, ctx).await,
        Command::Schema(args) => schema::exec(args, ctx).await,
        Command::Backup(args) => backup::exec(args, ctx).await,
        Command::Cutover(args) => cutover::exec(args, ctx).await,
        Command::Check(args) => check::exec(args, ctx).await,
        Command::Wait(args) => wait::exec(args, ctx).await,
        Command::Sandbox(args) => sandbox::exec(args, ctx).await,
        Command::Demo(args) => demo::exec(args, ctx).await,
    }
}

/// The name of a command for JSON documents and messages.
pub fn name(command: &Command) -> &'static str {
    match command {
        Command::Init(_) => "init",
        Command::New(_) => "new",
        Command::Status(_) => "status",
        Command::History(_) => "history",
        Command::Plan(_) => "plan",
        Command::Apply(_) => "apply",
        Command::Rollback(_) => "rollback",
        Command::Stamp(_) => "stamp",
        Command::Adopt(_) => "adopt",
        Command::Fleet(_) => "fleet",
        Command::Repair(_) => "repair",
        Command::Schema(_) => "schema",
        Command::Preflight(_) => "preflight",
        Command::Postflight(_) => "postflight",
        Command::Backup(_) => "backup",
        Command::Verify(_) => "verify",
        Command::Cutover(_) => "cutover",
        Command::Lint(_) => "lint",
        Command::Wait(_) => "wait",
        Command::Check(_) => "check",
        Command::Sandbox(_) => "sandbox",
        Command::Demo(_) => "demo",
    }
}
