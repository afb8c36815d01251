//! Flyway's `${name}` placeholders, replaced as Flyway replaces them.
//!
//! Flyway replaces every `${name}` in a script (strings and function bodies
//! included) before it runs it, with values from `flyway.placeholders.name`
//! in `flyway.conf`, `FLYWAY_PLACEHOLDERS_NAME` in the environment, and its
//! built-ins (`${flyway:defaultSchema}`, `${flyway:filename}`, …); a name
//! without a value stops the run. Its checksum is of the file as written
//! for a versioned script, and of the replaced text for a repeatable (a
//! new value runs it again).
//! migsafe does the same: values come from the project's `flyway.toml` or
//! `flyway.conf` ([`FlywayConf::find`]), then `placeholders` in `migsafe.toml` (top level,
//! then the namespace's), then the environment, each overriding the one before;
//! names compare without regard to case (Flyway lowercases the names it
//! reads from the environment). A name left without a value is refused
//! before anything runs (`execute::check_script`).

use std::borrow::Cow;
use std::path::Path;

use crate::source::directives::UnresolvedPlaceholder;
use crate::source::layout::Layout;
use crate::source::migration::MigrationSet;

/// The Flyway settings migsafe reads from a `flyway.conf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlywayConf {
    /// `flyway.placeholders.<name>=<value>`, in file order.
    pub placeholders: Vec<(String, String)>,
    /// `flyway.placeholderReplacement=false`: `${…}` is literal everywhere.
    pub literal: bool,
    /// `flyway.defaultSchema`, else the first of `flyway.schemas`.
    pub default_schema: Option<String>,
    /// `flyway.table`: Flyway's history table (`${flyway:table}`).
    pub table: Option<String>,
    /// The schemas Flyway manages, the default one first: Flyway creates
    /// the missing ones and runs each migration with the default schema
    /// first in `search_path` ([`FlywayConf::with_schemas`]).
    pub schemas: Vec<String>,
    /// `flyway.createSchemas` (true unless set false): Flyway creates the
    /// missing ones of `schemas` before it migrates.
    pub create_schemas: bool,
}

impl Default for FlywayConf {
    fn default() -> Self {
        FlywayConf {
            placeholders: Vec::new(),
            literal: false,
            default_schema: None,
            table: None,
            schemas: Vec::new(),
            create_schemas: true,
        }
    }
}

impl FlywayConf {
    /// The configuration of the Flyway project whose migrations are in
    /// `dir`: the nearest in `dir` or up to three directories above it
    /// (beside migsafe.toml, where Flyway projects keep it, or beside the
    /// migrations). In one directory, Flyway 10's `flyway.toml` (and
    /// `flyway.user.toml` over it, [`super::flyway_toml`]) comes before a
    /// `flyway.conf`, and that before `conf/flyway.conf`; the defaults when
    /// there is none.
    pub fn find(dir: &Path) -> Result<FlywayConf, String> {
        use super::flyway_toml;
        for here in dir.ancestors().take(4) {
            if here.join(flyway_toml::PROJECT_FILE).is_file()
                || here.join(flyway_toml::USER_FILE).is_file()
            {
                return flyway_toml::read(here);
            }
            for conf in [here.to_path_buf(), here.join("conf")] {
                if conf.join("flyway.conf").is_file() {
                    return FlywayConf::read(&conf);
                }
            }
        }
        Ok(FlywayConf::default())
    }

    /// Reads `dir/flyway.conf` when there is one.
    pub fn read(dir: &Path) -> Result<FlywayConf, String> {
        let path = dir.join("flyway.conf");
        match std::fs::read_to_string(&path) {
            Ok(text) => FlywayConf::parse(&text, |name| std::env::var(name).ok())
                .map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FlywayConf::default()),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Flyway's own reading of its configuration file: a key ends at the
    /// first `=`, `:` or white space (`split_setting`), `#` comments, a
    /// backslash is itself (`C:\\dir`, `^\\d+$`), a trailing `\\` joins the next
    /// line unless that one starts a `flyway.` setting, and `${VAR}` in a
    /// value is the environment variable (empty when it is not set).
    /// Settings other than the ones above are ignored (the URL, user and
    /// password are migsafe's own to set).
    pub fn parse(
        text: &str,
        environment: impl Fn(&str) -> Option<String>,
    ) -> Result<FlywayConf, String> {
        let mut conf = FlywayConf::default();
        let mut schemas: Option<String> = None;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (line_number, line) in logical_lines(text) {
            let (key, value) = split_setting(&line);
            let value = expand_environment(value, &environment);
            let flag = || match value.to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(format!("line {line_number}: {key} must be true or false")),
            };
            match key {
                "flyway.placeholderReplacement" => conf.literal = !flag()?,
                // Another prefix or suffix: `${` would no longer be what is
                // replaced, and what is would reach the server as written.
                "flyway.placeholderPrefix" | "flyway.placeholderSuffix"
                    if value != "${" && value != "}" =>
                {
                    return Err(format!(
                        "line {line_number}: {key}={value} — migsafe replaces only `${{name}}` placeholders; write the migrations with `${{` and `}}`, or replace the values in them"
                    ));
                }
                "flyway.defaultSchema" if !value.is_empty() => conf.default_schema = Some(value),
                "flyway.schemas" if !value.is_empty() => schemas = Some(value),
                "flyway.table" if !value.is_empty() => conf.table = Some(value),
                "flyway.createSchemas" => conf.create_schemas = flag()?,
                _ => {
                    if let Some(name) = key.strip_prefix("flyway.placeholders.") {
                        conf.placeholders.push((name.to_string(), value));
                    }
                }
            }
        }
        let listed: Vec<String> = schemas
            .iter()
            .flat_map(|s| s.split(','))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        Ok(conf.with_schemas(listed))
    }

    /// Sets `schemas` from `flyway.schemas` (and `default_schema` from its
    /// first when none was given): the default one first, each once.
    pub fn with_schemas(mut self, listed: Vec<String>) -> FlywayConf {
        if self.default_schema.is_none() {
            self.default_schema = listed.first().cloned();
        }
        let mut schemas: Vec<String> = self.default_schema.iter().cloned().collect();
        for schema in listed {
            if !schemas.contains(&schema) {
                schemas.push(schema);
            }
        }
        self.schemas = schemas;
        self
    }
}

/// The lines of flyway.conf with continuations joined, without comments
/// and blank lines: (1-based line where each starts, text).
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut continues = false;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let joined = continues && !line.starts_with("flyway.");
        continues = false;
        if !joined && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        let line = match line.strip_suffix('\\') {
            Some(rest) => {
                continues = true;
                rest
            }
            None => line,
        };
        match out.last_mut() {
            Some((_, text)) if joined => text.push_str(line),
            _ => out.push((index + 1, line.to_string())),
        }
    }
    out
}

/// A line's key and value as `java.util.Properties` splits them (Flyway
/// loads the file with it, its backslashes doubled first, so none escapes):
/// the key ends at the first `=`, `:` or white space; then white space, one
/// `=` or `:`, and white space again are skipped.
fn split_setting(line: &str) -> (&str, &str) {
    let end = line
        .find(|c: char| c == '=' || c == ':' || c.is_whitespace())
        .unwrap_or(line.len());
    let (key, rest) = line.split_at(end);
    let rest = rest.trim_start();
    let rest = rest
        .strip_prefix('=')
        .or_else(|| rest.strip_prefix(':'))
        .unwrap_or(rest);
    (key, rest.trim())
}

/// `${VAR}` in a configuration value, for a name of letters, digits and
/// `_`: the environment variable, empty when it is not set (as Flyway reads
/// it); any other `${…}` stays as written.
fn expand_environment(value: &str, environment: impl Fn(&str) -> Option<String>) -> String {
    replace(value, |name| {
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
            .then(|| environment(name).unwrap_or_default())
    })
    .into_owned()
}

/// Placeholder values by name, compared without regard to case; a later
/// value for a name replaces an earlier one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placeholders {
    values: Vec<(String, String)>,
}

impl Placeholders {
    pub fn set(&mut self, name: &str, value: &str) {
        match self
            .values
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(slot) => slot.1 = value.to_string(),
            None => self.values.push((name.to_string(), value.to_string())),
        }
    }

    /// Each name and value, in the order they were first set.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `FLYWAY_PLACEHOLDERS_<NAME>` variables of `environment`.
    pub fn add_environment(&mut self, environment: impl Iterator<Item = (String, String)>) {
        for (key, value) in environment {
            if let Some(name) = key.strip_prefix("FLYWAY_PLACEHOLDERS_")
                && !name.is_empty()
            {
                self.set(&name.to_ascii_lowercase(), &value);
            }
        }
    }

    /// The values whose name says they are a secret (`appPassword`,
    /// `api_token`): kept out of every output ([`crate::db::scrub`]).
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        const SECRET: [&str; 9] = [
            "password",
            "passwd",
            "pwd",
            "secret",
            "token",
            "credential",
            "apikey",
            "passphrase",
            "privatekey",
        ];
        self.values
            .iter()
            .filter(|(name, _)| {
                let name = name.to_ascii_lowercase().replace(['_', '-', '.'], "");
                SECRET.iter().any(|s| name.contains(s))
            })
            .map(|(_, value)| value.as_str())
    }
}

/// Every `${name}` in `text`: its byte span and the name. A name is
/// letters, digits, `_`, `.`, `:` and `-` (`${flyway:defaultSchema}`).
pub fn occurrences(text: &str) -> impl Iterator<Item = (usize, usize, &str)> + '_ {
    let mut from = 0;
    std::iter::from_fn(move || {
        while let Some(found) = text[from..].find("${") {
            let start = from + found;
            let after = &text[start + 2..];
            let length = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')))
                .unwrap_or(after.len());
            if length > 0 && after[length..].starts_with('}') {
                let end = start + 2 + length + 1;
                from = end;
                return Some((start, end, &after[..length]));
            }
            from = start + 2;
        }
        None
    })
}

/// The first placeholder in `sql`: its 1-based line and the placeholder.
pub fn placeholder(sql: &str) -> Option<(usize, String)> {
    occurrences(sql).next().map(|(start, _, name)| {
        let line = sql[..start].matches('\n').count() + 1;
        (line, format!("${{{name}}}"))
    })
}

/// `sql` with each placeholder `value` knows replaced; the others are left
/// as written (to be refused, named, before anything runs).
pub fn replace<'a>(sql: &'a str, value: impl Fn(&str) -> Option<String>) -> Cow<'a, str> {
    let mut out = String::new();
    let mut last = 0;
    for (start, end, name) in occurrences(sql) {
        if let Some(found) = value(name) {
            out.push_str(&sql[last..start]);
            out.push_str(&found);
            last = end;
        }
    }
    if last == 0 {
        return Cow::Borrowed(sql);
    }
    out.push_str(&sql[last..]);
    Cow::Owned(out)
}

/// Flyway's own placeholders (`${flyway:<name>}`), as far as migsafe knows
/// them when it reads the migrations.
#[derive(Debug, Clone, Default)]
pub struct Builtins {
    /// `defaultSchema`: the namespace's first schema, else flyway.conf's.
    pub default_schema: Option<String>,
    /// `user` and `database`: from the namespace's database URL.
    pub user: Option<String>,
    pub database: Option<String>,
    /// `table`: Flyway's history table (`flyway_schema_history` unless
    /// flyway.conf says otherwise).
    pub table: String,
    /// `workingDirectory`.
    pub working_directory: String,
    /// `timestamp`: when the migrations were read (`yyyy-MM-dd HH:mm:ss`).
    pub timestamp: String,
}

impl Builtins {
    fn get(&self, name: &str, file_name: &str) -> Option<String> {
        let (prefix, name) = name.split_at_checked(7)?;
        if !prefix.eq_ignore_ascii_case("flyway:") {
            return None;
        }
        match name.to_ascii_lowercase().as_str() {
            "defaultschema" => self.default_schema.clone(),
            "user" => self.user.clone(),
            "database" => self.database.clone(),
            "table" => Some(self.table.clone()),
            "workingdirectory" => Some(self.working_directory.clone()),
            "timestamp" => Some(self.timestamp.clone()),
            "filename" => Some(file_name.to_string()),
            _ => None,
        }
    }
}

/// Replaces the placeholders of every Flyway script of `set` (not the ones
/// whose `.sql.conf` says `placeholderReplacement=false`; all of them are
/// literal when `literal`). Checksums are Flyway's: a versioned script's of
/// the file as written, a repeatable's of the replaced text.
pub fn apply(set: &mut MigrationSet, values: &Placeholders, builtins: &Builtins, literal: bool) {
    for migration in set.migrations.iter_mut().chain(set.repeatables.iter_mut()) {
        if migration.layout != Layout::Flyway {
            continue;
        }
        let repeatable = migration.version.is_repeatable();
        for script in std::iter::once(&mut migration.up).chain(migration.down.as_mut()) {
            if literal {
                script.directives.literal_placeholders = true;
            }
            if script.directives.literal_placeholders {
                continue;
            }
            let file_name = script
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let value = |name: &str| {
                values
                    .get(name)
                    .map(str::to_string)
                    .or_else(|| builtins.get(name, &file_name))
            };
            // Named by where they are in the file, before any value (which
            // may hold `${…}` or newlines of its own) goes in.
            script.directives.unresolved_placeholders = occurrences(&script.sql)
                .filter(|(_, _, name)| value(name).is_none())
                .map(|(start, _, name)| {
                    let before = &script.sql[..start];
                    let line_start = before.rfind('\n').map_or(0, |at| at + 1);
                    UnresolvedPlaceholder {
                        line: before.matches('\n').count() + script.first_line,
                        column: before[line_start..].chars().count() + 1,
                        name: format!("${{{name}}}"),
                    }
                })
                .collect();
            if let Cow::Owned(sql) = replace(&script.sql, value) {
                script.sql = sql;
                script.directives.placeholders_replaced = true;
                // Flyway checksums a repeatable after replacement, so that
                // a new value runs it again; a versioned file as written.
                if repeatable {
                    script.checksum = crate::source::checksum::checksum(&script.sql);
                }
            }
        }
    }
    // Read again from the replaced text when asked.
    set.named_schemas = std::sync::OnceLock::new();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn finds_placeholders_where_flyway_replaces_them() {
        assert_eq!(
            placeholder("SELECT 1;\nCREATE TABLE ${schema}.t (id int);"),
            Some((2, "${schema}".to_string()))
        );
        assert_eq!(
            placeholder(
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT count(*) FROM ${flyway:defaultSchema}.t $$;"
            ),
            Some((1, "${flyway:defaultSchema}".to_string()))
        );
        assert_eq!(placeholder("SELECT '${}' , $${x $$;"), None);
        assert_eq!(placeholder("SELECT $1, $$ { $$;"), None);
    }

    #[test]
    fn replaces_the_names_it_has_values_for_and_leaves_the_rest() {
        let mut values = Placeholders::default();
        values.set("schema", "app");
        values.set("appRole", "app_rw");
        values.set("APPROLE", "app_ro");
        let sql = "CREATE TABLE ${schema}.t ();\nGRANT SELECT ON ${Schema}.t TO ${approle};\nSELECT '${unknown}', '$${x}';";
        let replaced = replace(sql, |name| values.get(name).map(str::to_string));
        assert_eq!(
            replaced,
            "CREATE TABLE app.t ();\nGRANT SELECT ON app.t TO app_ro;\nSELECT '${unknown}', '$${x}';"
        );
        assert_eq!(placeholder(&replaced), Some((3, "${unknown}".into())));
        assert!(matches!(replace("SELECT 1", |_| None), Cow::Borrowed(_)));
    }

    #[test]
    fn reads_flyway_conf_as_flyway_does() {
        let environment = |name: &str| (name == "ROLE_FROM_ENV").then(|| "from_env".to_string());
        let conf = FlywayConf::parse(
            "\u{feff}flyway.placeholders.first=1\n# comment\nflyway.url=jdbc:postgresql://db/app\nflyway.placeholders.schema = app\nflyway.placeholders.role=${ROLE_FROM_ENV}\nflyway.placeholders.unset=[${NOT_SET}]\nflyway.placeholders.long=a,\\\n    b\nflyway.placeholders.path=C:\\dir\\x\nflyway.placeholders.ends=with\\\nflyway.placeholders.next=2\nflyway.placeholders.eq=x=y\nflyway.schemas=first, second\nflyway.table=history\nflyway.placeholders.colon:key=v\nflyway.placeholders.spaced value here\nflyway.placeholders.kept=${flyway:user}|${my-var}\n",
            environment,
        )
        .unwrap();
        let got: Vec<(&str, &str)> = conf
            .placeholders
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("first", "1"),
                ("schema", "app"),
                ("role", "from_env"),
                ("unset", "[]"),
                ("long", "a,b"),
                ("path", "C:\\dir\\x"),
                ("ends", "with"),
                ("next", "2"),
                ("eq", "x=y"),
                ("colon", "key=v"),
                ("spaced", "value here"),
                ("kept", "${flyway:user}|${my-var}"),
            ]
        );
        assert_eq!(conf.default_schema.as_deref(), Some("first"));
        assert_eq!(conf.table.as_deref(), Some("history"));
        assert!(!conf.literal);
        let parse = |text: &str| FlywayConf::parse(text, |_| None);
        assert!(
            parse("flyway.placeholderReplacement=false")
                .unwrap()
                .literal
        );
        assert!(
            parse("flyway.placeholderPrefix=#(")
                .unwrap_err()
                .contains("only `${name}`")
        );
        assert!(parse("flyway.placeholderSuffix=}").is_ok());
    }

    #[test]
    fn environment_names_are_flyways() {
        let mut values = Placeholders::default();
        values.set("schema", "from_file");
        values.add_environment(
            [
                (
                    "FLYWAY_PLACEHOLDERS_SCHEMA".to_string(),
                    "from_env".to_string(),
                ),
                (
                    "FLYWAY_PLACEHOLDERS_APPPASSWORD".to_string(),
                    "hunter22".to_string(),
                ),
                ("FLYWAY_URL".to_string(), "x".to_string()),
            ]
            .into_iter(),
        );
        assert_eq!(values.get("schema"), Some("from_env"));
        assert_eq!(values.get("appPassword"), Some("hunter22"));
        assert_eq!(values.get("url"), None);
        assert_eq!(values.secrets().collect::<Vec<_>>(), vec!["hunter22"]);
    }
}
