//! The `migsafe` binary: parse flags, build the runtime, run the command,
//! turn an error into its message and exit code (docs/reason-codes.md).

mod cli;

use clap::{CommandFactory as _, FromArgMatches as _};

use cli::args::{Cli, Format};
use migsafe::events::Interrupt;

fn main() {
    // Usage errors exit 5 (SPEC 11), not clap's default 2, which means
    // "migration failed" here.
    let parsed = Cli::command().try_get_matches().and_then(|matches| {
        let mut cli = Cli::from_arg_matches(&matches)?;
        cli.global.database_url_given =
            matches.value_source("database_url") == Some(clap::parser::ValueSource::CommandLine);
        Ok(cli)
    });
    let cli = match parsed {
        Ok(cli) => cli,
        Err(error) => {
            if !error.use_stderr() {
                let _ = error.print();
                std::process::exit(0);
            }
            // clap quotes the argument it could not place, which may be a
            // database URL given without its flag: no password in the message.
            for arg in std::env::args().skip(1) {
                let value = arg
                    .split_once('=')
                    .filter(|(k, _)| k.starts_with("--"))
                    .map_or(arg.as_str(), |(_, v)| v);
                if let Ok(settings) = migsafe::ConnectionSettings::parse(value)
                    && let Some(password) = settings.config().get_password()
                {
                    migsafe::db::register_secret(&String::from_utf8_lossy(password));
                }
            }
            // Coded like every other failure (SPEC 12): `error[USAGE]: …`.
            let rendered = error.render().to_string();
            let coded = match rendered.strip_prefix("error: ") {
                Some(rest) => format!("error[USAGE]: {rest}"),
                None => rendered,
            };
            eprint!("{}", migsafe::db::scrub(&coded));
            std::process::exit(5);
        }
    };
    let level = match cli.global.verbose {
        0 | 1 => "warn",
        2 => "info",
        _ => "debug",
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MIGSAFE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(|| ScrubbedStderr)
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        );
    // A warning among the run's own lines reads as one of them; time and
    // module are for those who asked for more (-vv, MIGSAFE_LOG).
    if cli.global.verbose < 2 && std::env::var_os("MIGSAFE_LOG").is_none() {
        logs.without_time().with_target(false).init();
    } else {
        logs.init();
    }
    // One thread: the connection task and the migration run side by side
    // without cross-thread wake-ups, which matter at one round trip each.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error[IO_ERROR]: cannot start the async runtime: {e}");
            std::process::exit(5);
        }
    };
    let json_format = cli.global.format == Format::Json;
    let command = cli::command_name(&cli.command);
    let code = runtime.block_on(async move {
        let interrupt = Interrupt::new();
        tokio::spawn(watch_signals(interrupt.clone()));
        match cli::run(cli, interrupt).await {
            Ok(code) => code,
            Err(error) => {
                cli::output::error(command, &error, json_format);
                error.exit_code()
            }
        }
    });
    // Leave at once: a background connection task must not hold the exit.
    std::process::exit(code);
}

/// Log lines go to stderr without a secret in them: a server notice
/// (`-vv`) may quote a password a migration was given.
struct ScrubbedStderr;

impl std::io::Write for ScrubbedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // The log formatter hands over one whole line at a time.
        let text = migsafe::db::scrub(&String::from_utf8_lossy(buf));
        std::io::stderr().write_all(text.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// First Ctrl-C or SIGTERM: cancel the running statement on the server and
/// stop after it (the history stays true). Second one: leave now.
async fn watch_signals(interrupt: Interrupt) {
    use tokio::signal::unix::{SignalKind, signal};
    // SIGHUP too: a dropped ssh session must stop as gently as Ctrl-C.
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return;
    };
    let mut received = 0;
    loop {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
        received += 1;
        if received == 1 {
            interrupt.trigger();
            match migsafe::pipeline::child::runs_to_end() {
                Some(note) => cli::output::err(&format!(
                    "interrupted: {note}; press Ctrl-C again to stop it there and leave"
                )),
                None => cli::output::err(
                    "interrupted: stopping (a statement running on the server is cancelled there); press Ctrl-C again to leave at once",
                ),
            }
        } else {
            // pg_dump and pg_restore first: left running, a restore would
            // commit after this process said it left.
            let restoring = migsafe::pipeline::child::runs_to_end().is_some();
            let stopped = migsafe::pipeline::child::stop_all();
            if restoring {
                cli::output::err(
                    "left at once: pg_restore was told to stop, and its one transaction is rolled back unless it had already committed; `migsafe history` shows whether the history is now the dump's",
                );
            } else {
                cli::output::err(&format!(
                    "left at once, without cleaning up{}: a no-transaction migration may be left DIRTY; the server rolls back any open transaction (a migration's, a cutover's whole load); `migsafe status` shows where things stand",
                    if stopped > 0 {
                        " (pg_dump was told to stop)"
                    } else {
                        ""
                    }
                ));
            }
            std::process::exit(130);
        }
    }
}
