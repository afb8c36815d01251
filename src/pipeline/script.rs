//! `apply --sql`: the psql-runnable script of what `apply` would do, for teams
//! whose change process runs reviewed SQL by hand. The script takes the same
//! advisory lock, creates the history table if needed, and writes the same
//! history rows, so migsafe and the script see each other's work.

use std::fmt::Write;

use crate::config::Defaults;
use crate::db::history::{History, operator};
use crate::db::repeatables::Repeatables;
use crate::db::{lock, quote_ident, quote_literal};
use crate::source::Migration;
use crate::source::statements;

/// Renders the psql script applying `migrations` to `namespace`; with
/// `online` (or `[defaults] online`, or a file's `-- migsafe:online`) risky
/// statements are written in their online steps (SPEC 15).
pub fn render(
    history: &History,
    defaults: &Defaults,
    namespace: &str,
    migrations: &[&Migration],
    online: bool,
) -> String {
    let key = lock::key(history.schema(), namespace);
    let table = history.table();
    let by = quote_literal(&format!("{} (psql script)", operator()));
    let tool = quote_literal(env!("CARGO_PKG_VERSION"));
    let ns = quote_literal(namespace);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "-- migsafe {} apply script for namespace {}\n-- Run it with: psql -X -v ON_ERROR_STOP=1 -f <this file>\n\\set ON_ERROR_STOP on\nSET standard_conforming_strings = on;\nDO $$ BEGIN PERFORM pg_advisory_lock({key}); END $$;\n{}\n",
        env!("CARGO_PKG_VERSION"),
        quote_ident(namespace),
        history.create_sql()
    );
    let mut repeatables_created = false;
    for migration in migrations {
        let script = &migration.up;
        let lock_timeout = script
            .directives
            .lock_timeout
            .unwrap_or(defaults.lock_timeout)
            .as_millis();
        let statement_timeout = script
            .directives
            .statement_timeout
            .unwrap_or(defaults.statement_timeout)
            .as_millis();
        let version = quote_literal(migration.version.as_str());
        let name = quote_literal(&migration.name);
        let checksum = quote_literal(&script.checksum);
        let down = migration
            .down
            .as_ref()
            .map_or_else(|| "NULL".to_string(), |d| quote_literal(&d.checksum));
        // Sqitch's verify script, as the runner sends it: under a savepoint
        // in the migration's transaction (a script the runner would refuse
        // is shown as such; `apply` checks every script before the first).
        let verify = migration.verify.as_ref().map(|verify| {
            let shown = crate::db::execute::verify_sql(namespace, migration, verify)
                .unwrap_or_else(|err| {
                    format!("-- refused: {}", err.to_string().replace('\n', "\n-- "))
                });
            format!("-- verify: {}\n{shown};\n", verify.path.display())
        });
        let _ = writeln!(
            out,
            "-- {} {} ({}){}",
            migration.version,
            migration.name,
            script.path.display(),
            if migration.rerun_of.is_some() {
                ": runs again, it changed since it ran (runOnChange); its history row is rewritten"
            } else {
                ""
            }
        );
        // A Flyway project's schemas, set up as Flyway (and apply) does.
        let flyway_schemas = script.flyway_schema_sql();
        if let Some((before, _)) = &flyway_schemas {
            let _ = write!(out, "{before}");
        }
        let reset = flyway_schemas.as_ref().map_or("", |(_, after)| *after);
        // A repeatable (Flyway `R__`) rewrites its one record in its
        // transaction; it never runs outside one (`apply` refuses that).
        if migration.version.is_repeatable() {
            let repeatables = Repeatables::of(history);
            if !repeatables_created {
                let _ = writeln!(out, "{}", repeatables.create_sql());
                repeatables_created = true;
            }
            let _ = writeln!(
                out,
                "BEGIN;\nSET LOCAL lock_timeout = {lock_timeout};\nSET LOCAL statement_timeout = {statement_timeout};\n{}\n;\n{};\nCOMMIT;\n",
                script.runnable_sql().trim_end(),
                repeatables.upsert_literal(
                    namespace,
                    &migration.name,
                    &script.checksum,
                    &format!("{} (psql script)", operator())
                )
            );
            let _ = write!(out, "{reset}");
            continue;
        }
        let columns = "(namespace, version, name, checksum, down_checksum, applied_at, execution_ms, applied_by, tool_version, dirty)";
        // Its history row: inserted, or rewritten for a changed runOnChange
        // changeset that runs again in place.
        let record = |execution_ms: &str, dirty: bool| {
            if migration.rerun_of.is_some() {
                format!(
                    "UPDATE {table} SET name = {name}, checksum = {checksum}, down_checksum = {down}, applied_at = now(), execution_ms = {execution_ms}, applied_by = {by}, tool_version = {tool}, dirty = {dirty} WHERE namespace = {ns} AND version = {version};"
                )
            } else {
                format!(
                    "INSERT INTO {table} {columns} VALUES ({ns}, {version}, {name}, {checksum}, {down}, now(), {execution_ms}, {by}, {tool}, {dirty});"
                )
            }
        };
        // A rerun runs as a whole, as `apply` runs it.
        let online_plan = (online || defaults.online || script.directives.online)
            .then(|| crate::online::plan(script))
            .flatten()
            .filter(|_| migration.rerun_of.is_none());
        if let Some(plan) = online_plan {
            let _ = writeln!(
                out,
                "-- online (SPEC 15): {} steps; the history row is written after the last",
                plan.steps.len()
            );
            crate::online::psql::render(&mut out, &plan, lock_timeout, statement_timeout);
            let _ = writeln!(out, "{}\n", record("0", false));
        } else if script.no_transaction() {
            let _ = writeln!(
                out,
                "{}\nSET lock_timeout = {lock_timeout};\nSET statement_timeout = {statement_timeout};",
                record("0", true)
            );
            match statements::split(&script.sql) {
                Ok(parts) => {
                    for statement in parts {
                        let _ = writeln!(out, "{}\n;", statement.text);
                    }
                }
                Err(_) => {
                    let _ = writeln!(out, "{}\n;", script.sql.trim_end());
                }
            }
            if let Some(verify) = &verify {
                let _ = writeln!(out, "BEGIN;\n{verify}ROLLBACK;");
            }
            let _ = writeln!(
                out,
                "UPDATE {table} SET dirty = false WHERE namespace = {ns} AND version = {version};\nRESET lock_timeout;\nRESET statement_timeout;\n"
            );
        } else {
            let _ = writeln!(
                out,
                "BEGIN;\nSET LOCAL lock_timeout = {lock_timeout};\nSET LOCAL statement_timeout = {statement_timeout};\n{}\n;\n{}{}\nCOMMIT;\n",
                script.runnable_sql().trim_end(),
                verify.as_deref().unwrap_or(""),
                record(
                    "(extract(epoch FROM clock_timestamp() - now()) * 1000)::bigint",
                    false
                )
            );
        }
        let _ = write!(out, "{reset}");
    }
    let _ = writeln!(
        out,
        "DO $$ BEGIN PERFORM pg_advisory_unlock({key}); END $$;"
    );
    out
}
