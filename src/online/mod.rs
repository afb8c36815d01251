//! Online schema changes and backfills (SPEC 15, 16): risky statements
//! written the plain way run in steps that never hold a blocking lock for
//! long, and one `UPDATE` runs in short primary-key batches.
//!
//! - [`mod@rewrite`] turns one parsed statement into its online steps;
//! - this module turns a whole script into an [`OnlinePlan`];
//! - [`progress`] records, in the history schema, which step (or batch) is
//!   committed, so an interrupted migration resumes where it stopped;
//! - [`run`] executes a plan, [`backfill`] a backfill, [`pause`] is where a
//!   batch waits for the database to be quiet; [`psql`] writes the steps as
//!   a psql script for `apply --sql --online`.
//!
//! An online migration gets its history row only when its last step is
//! committed, together with the removal of its progress row: until then it
//! is pending, and `apply` resumes it from its progress instead of starting
//! again (it is never left dirty: every step either committed or did not).

pub mod backfill;
pub mod pause;
pub mod progress;
pub mod psql;
pub mod rewrite;
pub mod run;

use serde::Serialize;

use crate::source::{Migration, Script, statements};
pub use rewrite::{Online, rewrite};

/// An index a step builds concurrently: if the build is interrupted, it is
/// left INVALID and must be dropped before the step runs again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuiltIndex {
    /// The schema written on the table (the index lives there), if any.
    pub schema: Option<String>,
    /// The index name.
    pub name: String,
}

impl BuiltIndex {
    /// The quoted, possibly qualified name.
    pub fn qualified(&self) -> String {
        crate::db::catalog::qualified(self.schema.as_deref(), &self.name)
    }
}

/// One step of an online migration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// The SQL of the step (one or a few statements, without a final `;`).
    pub sql: String,
    /// Runs in a transaction of its own (false: outside any transaction).
    pub transaction: bool,
    /// The index it builds concurrently, when it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<BuiltIndex>,
    /// The lock it takes, and for how long.
    pub locks: &'static str,
    /// A step about a constraint written without a name (PostgreSQL names it).
    #[serde(skip)]
    pub unnamed: Option<Unnamed>,
}

/// How a step deals with a constraint PostgreSQL names itself
/// (`ADD FOREIGN KEY …` without `CONSTRAINT name`).
#[derive(Debug, Clone, PartialEq)]
pub enum Unnamed {
    /// The step adds it: the name PostgreSQL chose is read back in the
    /// step's transaction and recorded with its progress.
    Records(pg_query::protobuf::RangeVar),
    /// The step validates it: its SQL is built, when it runs, from the name
    /// the step before recorded.
    Validates(pg_query::protobuf::RangeVar),
}

/// A step with where it comes from.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedStep {
    /// The step.
    #[serde(flatten)]
    pub step: Step,
    /// 1-based line of the statement it comes from, in the file.
    pub line: usize,
    /// True when the step is part of an online form (false: as written).
    pub rewritten: bool,
}

/// A script in its online form.
#[derive(Debug, Clone, Serialize)]
pub struct OnlinePlan {
    /// The steps, in order.
    pub steps: Vec<PlannedStep>,
}

/// Whether a migration runs online in this run: `apply --online`,
/// `[defaults] online = true`, or `-- migsafe:online` in its header.
pub fn requested(requested: bool, config: &crate::config::Config, migration: &Migration) -> bool {
    requested || config.defaults.online || migration.up.directives.online
}

/// The steps `plan` shows for a migration: its online form when this run
/// asks for one and it has one (a backfill has no steps).
pub fn planned_steps(
    online: bool,
    config: &crate::config::Config,
    migration: &Migration,
) -> Option<Vec<PlannedStep>> {
    // A changed runOnChange changeset reruns as a whole.
    if migration.up.directives.backfill.is_some()
        || migration.rerun_of.is_some()
        || !requested(online, config, migration)
    {
        return None;
    }
    plan(&migration.up).map(|plan| plan.steps)
}

/// How `plan` names the way a migration runs, when it is not the usual
/// `transaction` / `no-transaction`: `backfill` or `online`.
pub fn mode(
    online: bool,
    config: &crate::config::Config,
    migration: &Migration,
) -> Option<&'static str> {
    if migration.up.directives.backfill.is_some() && migration.rerun_of.is_none() {
        return Some("backfill");
    }
    planned_steps(online, config, migration).map(|_| "online")
}

/// The online form of a script, or `None` when nothing in it needs one
/// (it then runs as usual), or it cannot be split into statements, or it
/// manages its own transaction blocks.
pub fn plan(script: &Script) -> Option<OnlinePlan> {
    let transactional = !script.no_transaction();
    let runnable = script.runnable_sql();
    let parts = statements::split(&runnable).ok()?;
    if parts.iter().any(|p| p.opens || p.closes) {
        return None;
    }
    let mut context = crate::lint::Context::default();
    let mut steps: Vec<PlannedStep> = Vec::new();
    let mut rewritten_any = false;
    // In a transactional script, the statements between online steps stay
    // together in one transaction, as they were written.
    let mut group: Option<PlannedStep> = None;
    let line_of = |offset: usize| runnable[..offset.min(runnable.len())].matches('\n').count();
    for part in &parts {
        let parsed = pg_query::parse(&part.text, 0).ok()?;
        let node = parsed
            .protobuf
            .stmts
            .first()
            .and_then(|raw| raw.stmt.as_ref())
            .and_then(|n| n.node.as_ref())?;
        let line = line_of(part.offset) + script.first_line;
        let online = rewrite(node, &|table| context.is_new(table));
        context.learn(node);
        match online {
            Online::Steps(own) => {
                rewritten_any = true;
                steps.extend(group.take());
                steps.extend(own.into_iter().map(|step| PlannedStep {
                    step,
                    line,
                    rewritten: true,
                }));
            }
            Online::Plain | Online::Cannot(_) => {
                if !transactional {
                    steps.push(PlannedStep {
                        step: Step {
                            sql: part.text.clone(),
                            transaction: false,
                            unnamed: None,
                            index: part.concurrent_index.as_ref().and_then(|i| {
                                i.name.as_ref().map(|name| BuiltIndex {
                                    schema: i.schema.clone(),
                                    name: name.clone(),
                                })
                            }),
                            locks: "as written",
                        },
                        line,
                        rewritten: false,
                    });
                    continue;
                }
                match group.as_mut() {
                    Some(open) => {
                        open.step.sql.push_str(";\n");
                        open.step.sql.push_str(&part.text);
                    }
                    None => {
                        group = Some(PlannedStep {
                            step: Step {
                                sql: part.text.clone(),
                                transaction: true,
                                unnamed: None,
                                index: None,
                                locks: "as written",
                            },
                            line,
                            rewritten: false,
                        });
                    }
                }
            }
        }
    }
    steps.extend(group);
    rewritten_any.then_some(OnlinePlan { steps })
}

/// What `--online` makes of one statement, for lint: `Some(Ok(()))` it
/// has an online form, `Some(Err(reason))` it would need one but cannot have
/// it, `None` nothing to rewrite.
pub fn explain(
    node: &pg_query::NodeEnum,
    context: &crate::lint::Context,
) -> Option<Result<(), String>> {
    match rewrite(node, &|table| context.is_new(table)) {
        Online::Plain => None,
        Online::Steps(_) => Some(Ok(())),
        Online::Cannot(reason) => Some(Err(reason)),
    }
}
