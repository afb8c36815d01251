//! Flyway's files (`V<ver>__<name>.sql`, `U…`, `R__<name>.sql`) are named by
//! `source::layout`; what is Flyway's own here: its placeholders, its script
//! configuration files (`V1__x.sql.conf`) and its callbacks (`afterMigrate.sql`).
//!
//! Flyway replaces `${name}` in every script before it runs (placeholder
//! replacement is on by default: `flyway.placeholders.name=…` and built-ins
//! such as `${flyway:defaultSchema}`), and computes the checksum over the
//! file as written. migsafe replaces them the same way
//! ([`super::flyway_placeholders`]); one left without a value would reach
//! the server unreplaced — a syntax error at best, and inside a string or a
//! function body (`$$ … FROM ${schema}.orders … $$`) a migration that
//! succeeds and is wrong — so such a script is named before anything runs.

pub use super::flyway_placeholders::placeholder;

/// What a script configuration file (`<script>.sql.conf`, Flyway's
/// per-script settings) says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScriptConf {
    /// `executeInTransaction=false`.
    pub no_transaction: bool,
    /// `placeholderReplacement=false`: `${…}` is meant literally.
    pub literal_placeholders: bool,
    /// Settings migsafe does not honour, to refuse the script by.
    pub unsupported: Option<String>,
}

/// The suffix of a script configuration file.
pub const CONF_SUFFIX: &str = ".conf";

impl ScriptConf {
    /// Reads `key=value` lines (`#` comments) as Flyway does.
    pub fn parse(text: &str) -> Result<ScriptConf, String> {
        let mut conf = ScriptConf::default();
        let mut unsupported = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| format!("line {}: expected `key=value`", index + 1))?;
            let (key, value) = (key.trim(), value.trim());
            let flag = || match value.to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(format!("line {}: {key} must be true or false", index + 1)),
            };
            match key {
                "executeInTransaction" => conf.no_transaction = !flag()?,
                "placeholderReplacement" => conf.literal_placeholders = !flag()?,
                "encoding"
                    if value.eq_ignore_ascii_case("UTF-8")
                        || value.eq_ignore_ascii_case("UTF8") => {}
                other => unsupported.push(format!("`{other}={value}`")),
            }
        }
        if !unsupported.is_empty() {
            conf.unsupported = Some(format!(
                "its Flyway script configuration sets {}, which migsafe does not honour",
                unsupported.join(", ")
            ));
        }
        Ok(conf)
    }
}

/// Flyway's callback events, whose `<event>[__<name>].sql` files Flyway runs
/// around its commands (`afterMigrate.sql` granting on every new table).
const CALLBACKS: &[&str] = &[
    "beforeMigrate",
    "beforeRepeatables",
    "beforeEachMigrate",
    "beforeEachMigrateStatement",
    "afterEachMigrateStatement",
    "afterEachMigrateStatementError",
    "afterEachMigrate",
    "afterEachMigrateError",
    "afterMigrate",
    "afterMigrateApplied",
    "afterVersioned",
    "afterMigrateError",
    "beforeUndo",
    "beforeEachUndo",
    "beforeEachUndoStatement",
    "afterEachUndoStatement",
    "afterEachUndoStatementError",
    "afterEachUndo",
    "afterEachUndoError",
    "afterUndo",
    "afterUndoError",
    "beforeClean",
    "afterClean",
    "afterCleanError",
    "beforeInfo",
    "afterInfo",
    "afterInfoError",
    "beforeValidate",
    "afterValidate",
    "afterValidateError",
    "beforeBaseline",
    "afterBaseline",
    "afterBaselineError",
    "beforeRepair",
    "afterRepair",
    "afterRepairError",
    "beforeCreateSchema",
    "createSchema",
    "beforeConnect",
    "afterConnect",
];

/// The callback event a file name is for (`afterMigrate__grants.sql`).
pub fn callback(file_name: &str) -> Option<&'static str> {
    let stem = file_name.strip_suffix(".sql")?;
    let event = stem.split_once("__").map_or(stem, |(event, _)| event);
    CALLBACKS.iter().copied().find(|c| *c == event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_script_configuration_and_callbacks() {
        let conf =
            ScriptConf::parse("# CONCURRENTLY below\nexecuteInTransaction=false\nencoding=UTF-8\n")
                .unwrap();
        assert!(conf.no_transaction && !conf.literal_placeholders && conf.unsupported.is_none());
        let conf =
            ScriptConf::parse("placeholderReplacement = false\nshouldExecute=${env}==prod\n")
                .unwrap();
        assert!(conf.literal_placeholders);
        assert!(conf.unsupported.unwrap().contains("shouldExecute"));
        assert!(ScriptConf::parse("executeInTransaction=maybe").is_err());
        assert_eq!(callback("afterMigrate.sql"), Some("afterMigrate"));
        assert_eq!(callback("afterMigrate__grants.sql"), Some("afterMigrate"));
        assert_eq!(callback("after_migrate.sql"), None);
        assert_eq!(callback("V1__afterMigrate.sql"), None);
    }
}
