//! Flyway 10's project file, `flyway.toml` (with the developer's own
//! `flyway.user.toml` over it), read for what migsafe takes from a Flyway
//! configuration ([`FlywayConf`]): placeholders, whether they are replaced,
//! the default schema and the history table.
//!
//! Settings live under `[flyway]` (`[flyway.placeholders]` for the
//! values); the selected environment (`flyway.environment`, `default`
//! unless set, or `flyway_environment` in the process environment, as
//! Flyway reads it) may override them under
//! `[environments.<name>.flyway]`, and give `schemas` of its own. Values may
//! use Flyway's environment-variable resolver, `${env.NAME}`; another
//! resolver (`${vault.…}`, `${localSecret.…}`) is refused where migsafe
//! needs the value, with where to give it instead.

use std::path::Path;

use super::flyway_placeholders::FlywayConf;

/// Flyway's project file.
pub const PROJECT_FILE: &str = "flyway.toml";
/// The developer's own settings, over the project's (not in version control).
pub const USER_FILE: &str = "flyway.user.toml";

/// Reads `dir/flyway.toml`, and `dir/flyway.user.toml` over it.
pub fn read(dir: &Path) -> Result<FlywayConf, String> {
    let mut merged = toml::Table::new();
    for name in [PROJECT_FILE, USER_FILE] {
        let path = dir.join(name);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let text = text.trim_start_matches('\u{feff}');
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e
                .span()
                .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
            match line {
                Some(line) => format!("{}:{line}: {}", path.display(), e.message()),
                None => format!("{}: {}", path.display(), e.message()),
            }
        })?;
        merge(&mut merged, table);
    }
    let environment = std::env::var("flyway_environment").ok();
    parse(&merged, environment.as_deref(), |name| {
        std::env::var(name).ok()
    })
    .map_err(|e| format!("{}: {e}", dir.join(PROJECT_FILE).display()))
}

/// `over`'s settings over `base`'s, table by table.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(mine)), toml::Value::Table(theirs)) => merge(mine, theirs),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// The settings of a parsed (and merged) flyway.toml. `selected`: the
/// environment named outside the file, if any.
pub fn parse(
    file: &toml::Table,
    selected: Option<&str>,
    environment: impl Fn(&str) -> Option<String>,
) -> Result<FlywayConf, String> {
    let flyway = table_at(file, &["flyway"])?;
    let (name, named) = match selected {
        Some(name) => (name.to_string(), "flyway_environment in the environment"),
        None => match flyway.and_then(|f| f.get("environment")) {
            Some(toml::Value::String(value)) => (
                resolve(value, "flyway.environment", &environment)?,
                "flyway.environment",
            ),
            Some(_) => return Err("flyway.environment must be a string".into()),
            None => ("default".to_string(), ""),
        },
    };
    let env_path = ["environments", name.as_str()];
    let chosen = table_at(file, &env_path)?;
    // A typo in the environment's name would drop its every override
    // silently, as Flyway refuses to.
    if chosen.is_none() && !named.is_empty() {
        let known: Vec<&str> = table_at(file, &["environments"])?
            .map(|t| t.keys().map(String::as_str).collect())
            .unwrap_or_default();
        return Err(format!(
            "{named} names the environment `{name}`, which has no [environments.{name}] (it has: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ));
    }
    let overrides = table_at(file, &["environments", name.as_str(), "flyway"])?;
    let env_key = format!("environments.{name}");

    let mut conf = FlywayConf::default();
    // Each setting: the environment's override, else the project's.
    let setting = |key: &str| -> Option<(String, &toml::Value)> {
        overrides
            .and_then(|t| t.get(key))
            .map(|v| (format!("{env_key}.flyway.{key}"), v))
            .or_else(|| {
                flyway
                    .and_then(|t| t.get(key))
                    .map(|v| (format!("flyway.{key}"), v))
            })
    };
    if let Some((key, value)) = setting("placeholderReplacement") {
        conf.literal = !value
            .as_bool()
            .ok_or_else(|| format!("{key} must be true or false"))?;
    }
    for affix in ["placeholderPrefix", "placeholderSuffix"] {
        if let Some((key, value)) = setting(affix) {
            let value = text(value, &key, &environment)?;
            if value != "${" && value != "}" {
                return Err(format!(
                    "{key} = {value:?} — migsafe replaces only `${{name}}` placeholders; write the migrations with `${{` and `}}`, or replace the values in them"
                ));
            }
        }
    }
    for source in [
        flyway.map(|t| (t, "flyway".to_string())),
        overrides.map(|t| (t, format!("{env_key}.flyway"))),
    ]
    .into_iter()
    .flatten()
    {
        let (table, prefix) = source;
        let Some(values) = table.get("placeholders") else {
            continue;
        };
        let values = values
            .as_table()
            .ok_or_else(|| format!("{prefix}.placeholders must be a table of name = value"))?;
        for (placeholder, value) in values {
            let key = format!("{prefix}.placeholders.{placeholder}");
            // From a resolver migsafe does not read (a vault): no value
            // here. migsafe.toml or FLYWAY_PLACEHOLDERS_<NAME> may give
            // one; a script that needs it without one is refused, named.
            if value.as_str().is_some_and(uses_other_resolver) {
                conf.placeholders
                    .retain(|(n, _)| !n.eq_ignore_ascii_case(placeholder));
                continue;
            }
            let value = text(value, &key, &environment)?;
            match conf
                .placeholders
                .iter_mut()
                .find(|(n, _)| n.eq_ignore_ascii_case(placeholder))
            {
                Some(slot) => slot.1 = value,
                None => conf.placeholders.push((placeholder.clone(), value)),
            }
        }
    }
    if let Some((key, value)) = setting("defaultSchema") {
        conf.default_schema = Some(text(value, &key, &environment)?).filter(|s| !s.is_empty());
    }
    // `schemas`: the environment's own, else flyway's; the first is the
    // default unless `defaultSchema` says otherwise.
    let schemas = chosen
        .and_then(|t| t.get("schemas"))
        .map(|v| (format!("{env_key}.schemas"), v))
        .or_else(|| setting("schemas"));
    let mut listed = Vec::new();
    if let Some((key, value)) = schemas {
        let items = match value {
            toml::Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for item in items {
            // A string is read as flyway.conf's comma-separated list.
            let schemas = text(item, &key, &environment)?;
            listed.extend(
                schemas
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty()),
            );
        }
    }
    if let Some((key, value)) = setting("createSchemas") {
        conf.create_schemas = value
            .as_bool()
            .ok_or_else(|| format!("{key} must be true or false"))?;
    }
    if let Some((key, value)) = setting("table") {
        conf.table = Some(text(value, &key, &environment)?).filter(|s| !s.is_empty());
    }
    Ok(conf.with_schemas(listed))
}

/// The table at `path`, if there is one; an error when something else is.
fn table_at<'a>(file: &'a toml::Table, path: &[&str]) -> Result<Option<&'a toml::Table>, String> {
    let mut here = file;
    for (depth, key) in path.iter().enumerate() {
        match here.get(*key) {
            None => return Ok(None),
            Some(toml::Value::Table(next)) => here = next,
            Some(_) => return Err(format!("{} must be a table", path[..=depth].join("."))),
        }
    }
    Ok(Some(here))
}

/// A setting's value as text (a placeholder may be a number or a boolean,
/// as Flyway allows), with `${env.NAME}` resolved.
fn text(
    value: &toml::Value,
    key: &str,
    environment: &impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let raw = match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        _ => return Err(format!("{key} must be a string, a number or a boolean")),
    };
    resolve(&raw, key, environment)
}

/// Whether `raw` takes a value from a resolver other than `env`.
fn uses_other_resolver(raw: &str) -> bool {
    let mut rest = raw;
    while let Some(start) = rest.find("${") {
        let Some(length) = rest[start + 2..].find('}') else {
            return false;
        };
        if let Some((resolver, _)) = rest[start + 2..start + 2 + length].split_once('.')
            && resolver != "env"
        {
            return true;
        }
        rest = &rest[start + 3 + length..];
    }
    false
}

/// `${env.NAME}` replaced by the variable; any other `${resolver.…}` refused.
fn resolve(
    raw: &str,
    key: &str,
    environment: &impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find("${") {
        let Some(length) = rest[start + 2..].find('}') else {
            break;
        };
        let inner = &rest[start + 2..start + 2 + length];
        let Some((resolver, name)) = inner.split_once('.') else {
            // Not a resolver (`${x}` is a placeholder left for later).
            out.push_str(&rest[..start + 3 + length]);
            rest = &rest[start + 3 + length..];
            continue;
        };
        out.push_str(&rest[..start]);
        if resolver != "env" {
            return Err(format!(
                "{key} uses Flyway's `{resolver}` resolver (`${{{inner}}}`), which migsafe does not read; give the value in migsafe.toml (`[placeholders]`) or as FLYWAY_PLACEHOLDERS_<NAME> in the environment"
            ));
        }
        let value = environment(name).ok_or_else(|| {
            format!("{key} takes `${{env.{name}}}`, and the environment variable {name} is not set")
        })?;
        out.push_str(&value);
        rest = &rest[start + 3 + length..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn conf(text: &str, selected: Option<&str>) -> Result<FlywayConf, String> {
        let file: toml::Table = text.parse().unwrap();
        parse(&file, selected, |name| {
            (name == "APP_SCHEMA").then(|| "tenant_a".to_string())
        })
    }

    #[test]
    fn settings_come_from_flyway_and_the_chosen_environment() {
        let text = r#"
[flyway]
locations = ["filesystem:migrations"]
schemas = ["app", "audit"]
table = "schema_history"

[flyway.placeholders]
appName = "Shop"
maxRetries = 3
owner = "app_owner"

[environments.default]
url = "jdbc:postgresql://localhost/shop"

[environments.prod]
url = "${vault.url}"
schemas = ["${env.APP_SCHEMA}"]

[environments.prod.flyway.placeholders]
owner = "prod_owner"
"#;
        let default = conf(text, None).unwrap();
        assert_eq!(
            default.placeholders,
            vec![
                ("appName".to_string(), "Shop".to_string()),
                ("maxRetries".to_string(), "3".to_string()),
                ("owner".to_string(), "app_owner".to_string()),
            ]
        );
        assert_eq!(default.default_schema.as_deref(), Some("app"));
        assert_eq!(default.table.as_deref(), Some("schema_history"));
        assert!(!default.literal);

        // The prod environment: its own owner and schemas (through the
        // environment resolver); its URL's vault resolver is not read.
        let prod = conf(text, Some("prod")).unwrap();
        assert_eq!(prod.placeholders[2].1, "prod_owner");
        assert_eq!(prod.default_schema.as_deref(), Some("tenant_a"));
        let chosen_in_file = format!("[flyway]\nenvironment = \"prod\"\n{}", &text[9..]);
        assert_eq!(conf(&chosen_in_file, None).unwrap(), prod);
    }

    #[test]
    fn what_migsafe_cannot_honour_is_refused_by_setting() {
        let refused = |text: &str| conf(text, None).unwrap_err();
        assert!(
            refused("[flyway]\nplaceholderPrefix = \"#[\"\n")
                .starts_with("flyway.placeholderPrefix = \"#[\" — migsafe replaces only")
        );
        assert!(
            refused("[flyway]\ndefaultSchema = \"${localSecret.schema}\"\n").contains(
                "flyway.defaultSchema uses Flyway's `localSecret` resolver (`${localSecret.schema}`)"
            )
        );
        // A placeholder from a vault has no value here (migsafe.toml or
        // the environment may give it one), and overrides one before it.
        let vault = conf(
            "[flyway.placeholders]\ntoken = \"plain\"\n[environments.default.flyway.placeholders]\ntoken = \"${vault.token}\"\n",
            None,
        )
        .unwrap();
        assert!(vault.placeholders.is_empty(), "{vault:?}");
        // An environment that is not there.
        assert!(
            refused("[flyway]\nenvironment = \"prdo\"\n[environments.prod]\nurl = \"x\"\n")
                .contains("flyway.environment names the environment `prdo`, which has no [environments.prdo] (it has: prod)")
        );
        assert!(
            refused("[flyway]\nenvironment = 5\n").contains("flyway.environment must be a string")
        );
        assert!(
            conf("[flyway]\n", Some("staging"))
                .unwrap_err()
                .contains("flyway_environment in the environment names the environment `staging`")
        );
        assert!(
            refused("[flyway.placeholders]\nschema = \"${env.NOT_SET_HERE}\"\n")
                .contains("the environment variable NOT_SET_HERE is not set")
        );
        assert!(
            refused("[flyway]\nplaceholderReplacement = \"no\"\n")
                .contains("flyway.placeholderReplacement must be true or false")
        );
        assert!(refused("flyway = 3\n").contains("flyway must be a table"));
        // Replacement off for the whole project; defaultSchema over schemas.
        let off = conf(
            "[flyway]\nplaceholderReplacement = false\ndefaultSchema = \"x\"\nschemas = [\"y\"]\n",
            None,
        )
        .unwrap();
        assert!(off.literal);
        assert_eq!(off.default_schema.as_deref(), Some("x"));
        // One string: flyway.conf's comma-separated list.
        let listed = conf("[flyway]\nschemas = \"app, audit\"\n", None).unwrap();
        assert_eq!(listed.schemas, ["app", "audit"]);
        assert_eq!(listed.default_schema.as_deref(), Some("app"));
    }

    #[test]
    fn the_user_file_is_read_over_the_project_file() {
        let dir = std::env::temp_dir().join(format!("migsafe-flyway-toml-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(PROJECT_FILE),
            "[flyway.placeholders]\nowner = \"team\"\nregion = \"eu\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.join(USER_FILE),
            "[flyway.placeholders]\nowner = \"me\"\n",
        )
        .unwrap();
        let conf = read(&dir).unwrap();
        assert_eq!(
            conf.placeholders,
            vec![
                ("owner".to_string(), "me".to_string()),
                ("region".to_string(), "eu".to_string()),
            ]
        );
        std::fs::write(dir.join(USER_FILE), "# mine\n[flyway.placeholders\n").unwrap();
        assert!(read(&dir).unwrap_err().contains("flyway.user.toml:2: "));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
