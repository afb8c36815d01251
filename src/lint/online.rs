//! What `--online` (SPEC 15) changes about a finding: a statement that runs
//! in its online form under `apply --online` is not flagged there, and a
//! finding elsewhere says that `--online` would make the statement safe, or
//! why it cannot (docs/online.md).

use pg_query::NodeEnum;

use super::context::Context;

/// Rules whose statements `--online` rewrites.
const REWRITTEN: &[&str] = &[
    "require-concurrent-index",
    "constraint-without-not-valid",
    "set-not-null-without-check",
    "add-unique-without-index",
];

/// Rules whose statements no online form helps, with the reason.
const NO_ONLINE_FORM: &[(&str, &str)] = &[
    (
        "alter-column-type",
        "`--online` has no online form for a type change that rewrites: add a new column, fill it with `-- migsafe:backfill`, then switch over",
    ),
    (
        "volatile-default",
        "`--online` has no online form for it: add the column without the default, then fill it with `-- migsafe:backfill`",
    ),
];

/// What becomes of one hit.
pub enum Verdict {
    /// Not a finding: the statement runs online.
    Drop,
    /// Still a finding, with this added to its message.
    Note(String),
    /// Unchanged.
    Keep,
}

/// The verdict on a hit of `rule` on `node`; `online`: the script runs online.
pub fn judge(rule: &str, node: &NodeEnum, context: &Context, online: bool) -> Verdict {
    if REWRITTEN.contains(&rule) {
        return match crate::online::explain(node, context) {
            Some(Ok(())) if online => Verdict::Drop,
            Some(Ok(())) => Verdict::Note(
                "; `apply --online` (or `-- migsafe:online`) runs it in its online form, which does not block writes (docs/online.md)".into(),
            ),
            Some(Err(reason)) => Verdict::Note(format!("; `--online` cannot rewrite it: {reason}")),
            None => Verdict::Keep,
        };
    }
    match NO_ONLINE_FORM.iter().find(|(id, _)| *id == rule) {
        Some((_, why)) => Verdict::Note(format!("; {why}")),
        None => Verdict::Keep,
    }
}
