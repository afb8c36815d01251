//! Flyway's files (`V<ver>__<name>.sql`, `U…`, `R__<name>.sql`) are named by
//! `source::layout`; what is Flyway's own here is its placeholders.
//!
//! Flyway replaces `${name}` in every script before it runs (placeholder
//! replacement is on by default: `flyway.placeholders.name=…` and built-ins
//! such as `${flyway:defaultSchema}`), and computes the checksum over the
//! file as written. migsafe sends the text as it is, so a placeholder would
//! reach the server unreplaced: a syntax error at best, and inside a string
//! or a function body (`$$ … FROM ${schema}.orders … $$`) a migration that
//! succeeds and is wrong. Such a script is named before anything runs.

/// The first placeholder in `sql`: its 1-based line and the placeholder.
pub fn placeholder(sql: &str) -> Option<(usize, String)> {
    for (index, line) in sql.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("${") {
            let after = &rest[at + 2..];
            let name_len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')))
                .unwrap_or(after.len());
            if name_len > 0 && after[name_len..].starts_with('}') {
                return Some((index + 1, format!("${{{}}}", &after[..name_len])));
            }
            rest = after;
        }
    }
    None
}

#[cfg(test)]
mod tests {
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
}
