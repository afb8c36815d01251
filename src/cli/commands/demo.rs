//! `migsafe demo`: the whole pipeline on the bundled example (compiled in)
//! against a sandbox, each step run as `migsafe …` with the exit code it
//! must end with. Runs without a config.

use std::path::Path;

use migsafe::error::{Error, Result};

use super::Context;
use super::sandbox::start;
use crate::cli::output::{BOLD, GREEN, RED, err, out, paint};

/// `demo` takes no flags of its own.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// The bundled example, compiled in so `migsafe demo` works from anywhere.
const EXAMPLE: &[(&str, &str)] = &[
    (
        "migsafe.toml",
        include_str!("../../../examples/migsafe.toml"),
    ),
    (
        "migrations/app/20260101090000_create_accounts.up.sql",
        include_str!("../../../examples/migrations/app/20260101090000_create_accounts.up.sql"),
    ),
    (
        "migrations/app/20260101090000_create_accounts.down.sql",
        include_str!("../../../examples/migrations/app/20260101090000_create_accounts.down.sql"),
    ),
    (
        "migrations/app/20260102090000_add_account_email.up.sql",
        include_str!("../../../examples/migrations/app/20260102090000_add_account_email.up.sql"),
    ),
    (
        "migrations/app/20260102090000_add_account_email.down.sql",
        include_str!("../../../examples/migrations/app/20260102090000_add_account_email.down.sql"),
    ),
    (
        "migrations/app/20260103090000_index_accounts_email.up.sql",
        include_str!("../../../examples/migrations/app/20260103090000_index_accounts_email.up.sql"),
    ),
    (
        "migrations/app/20260103090000_index_accounts_email.down.sql",
        include_str!(
            "../../../examples/migrations/app/20260103090000_index_accounts_email.down.sql"
        ),
    ),
    (
        "migrations/audit/0001_create_audit_log.sql",
        include_str!("../../../examples/migrations/audit/0001_create_audit_log.sql"),
    ),
    (
        "migrations/audit/0002_add_actor.sql",
        include_str!("../../../examples/migrations/audit/0002_add_actor.sql"),
    ),
];

/// Replaced by the sandbox URL in the demo steps.
const SCRATCH: &str = "{sandbox-url}";

/// The demo steps: arguments and the exit code each must end with.
const STEPS: &[(&[&str], i32, &str)] = &[
    (
        &["status"],
        0,
        "nothing applied yet: every migration is pending",
    ),
    (
        &["lint"],
        0,
        "the pending migrations, read with the PostgreSQL grammar and the live catalog",
    ),
    (
        &["verify", "--scratch-url", SCRATCH],
        0,
        "every migration up, down, up on a scratch database (created, then dropped)",
    ),
    (
        &["plan"],
        0,
        "what apply would run, with each migration's transaction mode",
    ),
    (
        &["apply"],
        0,
        "apply both namespaces under their advisory locks",
    ),
    (&["status"], 0, "everything applied"),
    (
        &["rollback", "--target", "app", "--steps", "2"],
        0,
        "undo the last two `app` migrations (one is no-transaction)",
    ),
    (
        &["rollback", "--target", "audit"],
        4,
        "`audit` is forward-only: rollback is refused with DOWN_SCRIPT_MISSING",
    ),
    (
        &["status", "--target", "app"],
        0,
        "two `app` migrations pending again",
    ),
    (
        &["apply"],
        0,
        "apply again: only the rolled-back migrations run",
    ),
    (
        &["history", "--target", "app"],
        0,
        "the history, with durations and who applied",
    ),
    (
        &["backup", "list"],
        0,
        "the verified pg_dump backups taken before each apply and rollback",
    ),
    (
        &[
            "cutover",
            "sqlite",
            "precheck",
            "--from",
            "legacy.db",
            "--target",
            "app",
        ],
        0,
        "moving off SQLite: the old file's every value and key checked against the `app` schema",
    ),
    (
        &[
            "cutover",
            "sqlite",
            "run",
            "--from",
            "legacy.db",
            "--target",
            "app",
        ],
        0,
        "copy it (online backup of the file, binary COPY, identity set past the copied ids), then verify row by row",
    ),
];

/// The SQLite file the demo moves into PostgreSQL: the `accounts` of an
/// older version of the app, with the awkward values real files have.
fn write_legacy_sqlite(path: &Path) -> Result<()> {
    let fail = |e: rusqlite::Error| {
        Error::config(
            migsafe::error::Code::Io,
            format!(
                "cannot write the demo's SQLite file {}: {e}",
                path.display()
            ),
        )
    };
    let db = rusqlite::Connection::open(path).map_err(fail)?;
    db.execute_batch(
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT NOT NULL, created_at DATETIME NOT NULL, email TEXT);
         WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 5000)
         INSERT INTO accounts SELECT i,
             CASE i % 3 WHEN 0 THEN 'Zoë ' || i WHEN 1 THEN '山田 ' || i ELSE 'account ' || i END,
             CASE i % 2 WHEN 0 THEN printf('2021-%02d-%02d 09:30:00', 1 + i % 12, 1 + i % 28) ELSE 1600000000 + i * 3600 END,
             CASE WHEN i % 10 = 0 THEN NULL ELSE 'user' || i || '@example.org' END
         FROM s;",
    )
    .map_err(fail)
}

/// Runs every step in a temporary directory against a fresh sandbox.
pub async fn exec(_args: &Args, ctx: &Context<'_>) -> Result<i32> {
    let interrupt = &ctx.interrupt;
    let workdir = tempfile::Builder::new()
        .prefix("migsafe-demo-")
        .tempdir()
        .map_err(|e| Error::io(Path::new("/tmp"), "create a temporary directory", &e))?;
    for (path, text) in EXAMPLE {
        let target = workdir.path().join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, "create", &e))?;
        }
        std::fs::write(&target, text).map_err(|e| Error::io(&target, "write", &e))?;
    }
    write_legacy_sqlite(&workdir.path().join("legacy.db"))?;
    err("starting a throwaway PostgreSQL for the demo…");
    let mut sandbox = start().await?;
    let url = sandbox.url("postgres");
    let exe = std::env::current_exe()
        .map_err(|e| Error::io(Path::new("migsafe"), "find the running", &e))?;
    out(&format!(
        "{} the bundled example (namespaces `app` and `audit`) in {}\n",
        paint(BOLD, "migsafe demo:"),
        workdir.path().display()
    ));
    let mut failed = None;
    for (args, expected, why) in STEPS {
        if interrupt.is_triggered() {
            failed = Some("interrupted".to_string());
            break;
        }
        let args: Vec<&str> = args
            .iter()
            .map(|a| if *a == SCRATCH { url.as_str() } else { a })
            .collect();
        let shown: Vec<&str> = args
            .iter()
            .map(|a| {
                if *a == url.as_str() {
                    "<sandbox URL>"
                } else {
                    a
                }
            })
            .collect();
        out(&format!(
            "{} {}",
            paint(BOLD, "$ migsafe"),
            paint(BOLD, shown.join(" "))
        ));
        out(&format!("  # {why}"));
        let status = tokio::process::Command::new(&exe)
            .args(&args)
            .current_dir(workdir.path())
            .env("DATABASE_URL", &url)
            .env_remove("MIGSAFE_CONFIG")
            .status()
            .await
            .map_err(|e| Error::io(&exe, "run", &e))?;
        let code = status.code().unwrap_or(-1);
        if code != *expected {
            failed = Some(format!(
                "`migsafe {}` exited {code}, expected {expected}",
                shown.join(" ")
            ));
            break;
        }
        out("");
    }
    let log = workdir.path().join("logs").join(migsafe::report::EVENT_LOG);
    let events = std::fs::read_to_string(&log)
        .map(|t| t.lines().count())
        .unwrap_or(0);
    tokio::task::spawn_blocking(move || sandbox.stop())
        .await
        .ok();
    match failed {
        None => {
            out(&format!(
                "{} {events} events were logged to logs/migrations.jsonl; the sandbox is stopped and removed.",
                paint(GREEN, "demo complete:")
            ));
            Ok(0)
        }
        Some(what) => {
            err(&format!("{} {what}", paint(RED, "demo failed:")));
            Ok(2)
        }
    }
}
