//! `migsafe plan` (alias `dry-run`): what apply would run, in order, with
//! each migration's transaction mode and timeouts, and whether apply would
//! refuse. Takes no lock and writes nothing; exit 1 when apply would refuse.

use serde::Serialize;

use migsafe::config::format_duration;
use migsafe::error::Result;

use super::Context;
use crate::cli::output::{BOLD, DIM, RED, YELLOW, json, out, paint, render_finding};
use crate::cli::selection::{Selection, apply_options};

/// `plan` options: which pending migrations.
pub type Args = Selection;

/// Plans every selected namespace and prints the plans.
pub async fn exec(args: &Args, ctx: &Context<'_>) -> Result<i32> {
    let migrator = ctx.migrator(false)?;
    let plans = migrator.plan(ctx.target(), &apply_options(args)?).await?;
    let refused = plans.iter().any(|p| p.refused.is_some());
    if ctx.json() {
        #[derive(Serialize)]
        struct Body<'a> {
            namespaces: &'a [migsafe::migrator::NamespacePlan],
        }
        json("plan", &Body { namespaces: &plans });
    } else {
        for plan in &plans {
            render_plan(plan);
        }
    }
    Ok(if refused { 1 } else { 0 })
}

fn render_plan(plan: &migsafe::migrator::NamespacePlan) {
    for version in &plan.recover {
        out(&format!(
            "{}: {} {version} is dirty; after preflight and the backup, apply rolls it back with its down script and applies it again",
            paint(BOLD, &plan.namespace),
            paint(YELLOW, "recover:")
        ));
    }
    if plan.migrations.is_empty() {
        out(&format!(
            "{}: nothing to apply",
            paint(BOLD, &plan.namespace)
        ));
    } else {
        out(&format!(
            "{}: {} migration(s) to apply, in this order:",
            paint(BOLD, &plan.namespace),
            plan.migrations.len()
        ));
        for m in &plan.migrations {
            let timeout = if m.statement_timeout_ms > 0 {
                format!(
                    ", statement_timeout {}",
                    format_duration(std::time::Duration::from_millis(m.statement_timeout_ms))
                )
            } else {
                String::new()
            };
            out(&format!(
                "  {:<16} {:<36} {}",
                m.version,
                m.name,
                paint(
                    DIM,
                    format!(
                        "{}{}{}, lock_timeout {}{timeout}{}{}",
                        if m.reruns {
                            "runs again (changed since it ran, runOnChange), "
                        } else {
                            ""
                        },
                        m.mode,
                        m.inferred
                            .map(|why| format!(" (inferred: {why})"))
                            .unwrap_or_default(),
                        format_duration(std::time::Duration::from_millis(m.lock_timeout_ms)),
                        if m.reversible { "" } else { ", no down script" },
                        m.preconditions
                            .as_ref()
                            .map(|p| format!(", precondition checked first ({p})"))
                            .unwrap_or_default()
                    )
                )
            ));
            for (index, step) in m.online.iter().flatten().enumerate() {
                out(&format!(
                    "    {} {}",
                    paint(BOLD, format!("step {}:", index + 1)),
                    step.step.sql.replace('\n', "\n            ")
                ));
                out(&format!(
                    "            {}",
                    paint(
                        DIM,
                        format!(
                            "{}, line {}{}: {}",
                            if step.step.transaction {
                                "own transaction"
                            } else {
                                "no transaction"
                            },
                            step.line,
                            if step.rewritten { "" } else { ", as written" },
                            step.step.locks
                        )
                    )
                ));
            }
        }
    }
    for finding in &plan.findings {
        render_finding(finding);
    }
    if let Some(refused) = &plan.refused {
        out(&format!(
            "  {} {}: {}",
            paint(RED, "apply would refuse:"),
            refused.reason,
            refused.message
        ));
        if let Some(hint) = &refused.hint {
            out(&format!("  {} {hint}", paint(BOLD, "next:")));
        }
    }
}
