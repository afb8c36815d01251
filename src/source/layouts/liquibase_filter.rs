//! Liquibase's context and label filters, as `liquibase update --contexts …
//! --label-filter …` applies them to formatted-SQL changesets.
//!
//! - A changeset's `context:` (or `contextFilter:`) is an expression over
//!   context names; the run gives a list of contexts. The changeset runs
//!   when the run gives none, when it has none, or when its expression holds
//!   with the run's contexts true and every other name false.
//! - A changeset's `labels:` is a list of names; the run gives an
//!   expression. The changeset runs when the run gives none, when it has no
//!   labels, or when the run's expression holds with its labels true.
//! - Expressions: names, `!` / `not`, `and`, `or`, `,` (or, loosest),
//!   parentheses; names and operators in any letter case. A leading `@` on a
//!   name (Liquibase's "must be given") is read as the name.

#[cfg(feature = "engine")]
use crate::config::LiquibaseFilter;

/// True when a changeset with context `expression` runs for `contexts`.
pub fn context_matches(expression: &str, contexts: &[String]) -> Result<bool, String> {
    if contexts.is_empty() || expression.trim().is_empty() {
        return Ok(true);
    }
    evaluate(expression, &|name| {
        contexts.iter().any(|c| c.eq_ignore_ascii_case(name))
    })
}

/// True when a changeset with `labels` runs for the label `filter`.
pub fn labels_match(filter: &str, labels: &[String]) -> Result<bool, String> {
    if filter.trim().is_empty() || labels.is_empty() {
        return Ok(true);
    }
    evaluate(filter, &|name| {
        labels.iter().any(|l| l.eq_ignore_ascii_case(name))
    })
}

/// The names of a comma-separated list (`--contexts prod,eu`, `labels:a,b`).
pub fn names(list: &str) -> Vec<String> {
    list.split(',')
        .map(|n| n.trim().trim_start_matches('@').to_string())
        .filter(|n| !n.is_empty())
        .collect()
}

/// Decides, for every Liquibase changeset of `set` with a context or
/// labels, whether it is for this database ([`LiquibaseFilter`]): excluded
/// ([`Directives::excluded`](crate::source::directives::Directives::excluded)),
/// kept, or, with no filter configured, refused if it is to run (never run
/// everywhere by default). An expression that cannot be read is an error
/// naming the changeset.
#[cfg(feature = "engine")]
pub(crate) fn select(
    namespace: &str,
    filter: &LiquibaseFilter,
    set: &mut crate::source::MigrationSet,
) -> crate::error::Result<()> {
    use crate::error::{Code, Error, ReasonCode};
    for migration in &mut set.migrations {
        if migration.layout != crate::source::layout::Layout::Liquibase {
            continue;
        }
        let directives = &migration.up.directives;
        let mut excluded = Vec::new();
        let mut refused = Vec::new();
        let unreadable = |why: String| {
            Error::Config {
            reason: ReasonCode::migration(Code::MigrationFileInvalid, namespace, &migration.version),
            message: format!(
                "{}:{}: changeset {}: {why}",
                migration.up.path.display(),
                migration.up.first_line,
                migration.name
            ),
            hint: Some("write the expression as Liquibase reads it: names, `!`, `and`, `or`, `,` and parentheses".into()),
            source: None,
        }
        };
        if let Some(context) = &directives.liquibase_context {
            if let Some(given) = &filter.contexts {
                check_contexts(given)?;
            }
            match &filter.contexts {
                None => refused.push(format!(
                    "`context:{context}`: no Liquibase contexts are set for this database, and migsafe does not run it everywhere (Liquibase without --contexts would); set them with `contexts = \"…\"` under [liquibase] in migsafe.toml, the namespace's `liquibase_contexts`, or LIQUIBASE_COMMAND_CONTEXTS (\"\" runs every changeset)"
                )),
                Some(given) => {
                    if !context_matches(context, &names(given)).map_err(unreadable)? {
                        excluded.push(format!("its context `{context}` (this database's: `{given}`)"));
                    }
                }
            }
        }
        if let Some(labels) = &directives.liquibase_labels {
            match &filter.label_filter {
                None => refused.push(format!(
                    "`labels:{labels}`: no Liquibase label filter is set for this database, and migsafe does not run it everywhere (Liquibase without --label-filter would); set it with `label_filter = \"…\"` under [liquibase] in migsafe.toml, the namespace's `liquibase_label_filter`, or LIQUIBASE_COMMAND_LABEL_FILTER (\"\" runs every changeset)"
                )),
                Some(wanted) => {
                    if !labels_match(wanted, &names(labels)).map_err(|why| {
                        Error::Config {
                            reason: ReasonCode::new(Code::ConfigInvalid),
                            message: format!("the Liquibase label filter: {why}"),
                            hint: Some("write it as `liquibase --label-filter` reads it: names, `!`, `and`, `or`, `,` and parentheses".into()),
                            source: None,
                        }
                    })? {
                        excluded.push(format!("its labels `{labels}` (this database's filter: `{wanted}`)"));
                    }
                }
            }
        }
        let directives = &mut migration.up.directives;
        if !excluded.is_empty() {
            directives.excluded = Some(excluded.join(" and "));
        } else if !refused.is_empty() {
            refused.extend(directives.unsupported.take());
            directives.unsupported = Some(refused.join("; "));
        }
    }
    Ok(())
}

/// Refuses contexts that are not a list of names: `prod and` would be one
/// name that matches nothing, and exclude every changeset meant for prod.
#[cfg(feature = "engine")]
fn check_contexts(given: &str) -> crate::error::Result<()> {
    use crate::error::{Code, Error, ReasonCode};
    let odd = names(given).into_iter().find(|name| {
        name.contains(|c: char| c.is_whitespace() || "()!".contains(c))
            || ["and", "or", "not"].contains(&name.to_ascii_lowercase().as_str())
    });
    match odd {
        None => Ok(()),
        Some(name) => Err(Error::Config {
            reason: ReasonCode::new(Code::ConfigInvalid),
            message: format!(
                "the Liquibase contexts of this database, `{given}`, are not a list of names (`{name}`); nothing ran"
            ),
            hint: Some("give them as `liquibase --contexts` takes them: names separated by commas (`prod,eu`); expressions belong on the changesets".into()),
            source: None,
        }),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Name(String),
    Not,
    And,
    Or,
    Open,
    Close,
}

fn tokens(expression: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<Token>| {
        if word.is_empty() {
            return;
        }
        out.push(match word.to_ascii_lowercase().as_str() {
            "and" => Token::And,
            "or" => Token::Or,
            "not" => Token::Not,
            _ => Token::Name(word.trim_start_matches('@').to_string()),
        });
        word.clear();
    };
    for c in expression.chars() {
        match c {
            '(' | ')' | ',' => {
                flush(&mut word, &mut out);
                out.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    _ => Token::Or,
                });
            }
            '!' if word.is_empty() => out.push(Token::Not),
            c if c.is_whitespace() => flush(&mut word, &mut out),
            c => word.push(c),
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Evaluates `expression` with `is_true` for its names.
fn evaluate(expression: &str, is_true: &dyn Fn(&str) -> bool) -> Result<bool, String> {
    struct Parser<'a> {
        tokens: Vec<Token>,
        at: usize,
        is_true: &'a dyn Fn(&str) -> bool,
    }
    impl Parser<'_> {
        fn peek(&self) -> Option<&Token> {
            self.tokens.get(self.at)
        }
        fn any(&mut self) -> Result<bool, String> {
            let mut value = self.all()?;
            while self.peek() == Some(&Token::Or) {
                self.at += 1;
                value |= self.all()?;
            }
            Ok(value)
        }
        fn all(&mut self) -> Result<bool, String> {
            let mut value = self.one()?;
            while self.peek() == Some(&Token::And) {
                self.at += 1;
                value &= self.one()?;
            }
            Ok(value)
        }
        fn one(&mut self) -> Result<bool, String> {
            let token = self.peek().cloned();
            self.at += 1;
            match token {
                Some(Token::Not) => Ok(!self.one()?),
                Some(Token::Open) => {
                    let value = self.any()?;
                    if self.peek() != Some(&Token::Close) {
                        return Err("a `(` is not closed".into());
                    }
                    self.at += 1;
                    Ok(value)
                }
                Some(Token::Name(name)) => Ok((self.is_true)(&name)),
                Some(other) => Err(format!("{other:?} where a name was expected")),
                None => Err("it ends where a name was expected".into()),
            }
        }
    }
    let mut parser = Parser {
        tokens: tokens(expression),
        at: 0,
        is_true,
    };
    let value = parser
        .any()
        .map_err(|why| format!("cannot read `{expression}`: {why}"))?;
    if parser.at < parser.tokens.len() {
        return Err(format!(
            "cannot read `{expression}`: something follows where it should end"
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_string()).collect()
    }

    #[test]
    fn contexts_are_matched_as_liquibase_matches_them() {
        let prod = list(&["prod"]);
        assert!(context_matches("prod", &prod).unwrap());
        assert!(context_matches("PROD", &prod).unwrap());
        assert!(!context_matches("test", &prod).unwrap());
        assert!(context_matches("test, prod", &prod).unwrap());
        assert!(context_matches("!test", &prod).unwrap());
        assert!(!context_matches("not prod", &prod).unwrap());
        assert!(!context_matches("prod and eu", &prod).unwrap());
        assert!(context_matches("prod and eu", &list(&["eu", "prod"])).unwrap());
        assert!(context_matches("test or (prod and !eu)", &prod).unwrap());
        assert!(context_matches("@prod", &prod).unwrap());
        // No contexts given, or none on the changeset: it runs.
        assert!(context_matches("test", &[]).unwrap());
        assert!(context_matches("", &prod).unwrap());
        assert!(context_matches("(prod", &prod).is_err());
        assert!(context_matches("prod and", &prod).is_err());
        assert!(context_matches("prod test", &prod).is_err());
    }

    #[test]
    fn labels_are_matched_by_the_filter() {
        let labels = names("v1, billing");
        assert_eq!(labels, ["v1", "billing"]);
        assert!(labels_match("v1", &labels).unwrap());
        assert!(!labels_match("v2", &labels).unwrap());
        assert!(labels_match("v1 and !test", &labels).unwrap());
        assert!(!labels_match("!billing", &labels).unwrap());
        // No filter, or no labels on the changeset: it runs.
        assert!(labels_match("", &labels).unwrap());
        assert!(labels_match("v2", &[]).unwrap());
    }
}
