//! `docs/lint.md`, generated from the rules so the two never disagree (a test
//! fails when the file is stale; `migsafe lint --rules-doc > docs/lint.md`
//! writes it).

use std::fmt::Write;

use super::rules;

/// The markdown of docs/lint.md.
pub fn markdown() -> String {
    let mut out = String::from(
        "# Lint rules\n\n<!-- Generated from src/lint/rules/*.rs by `migsafe lint --rules-doc`; do not edit. -->\n\n\
`migsafe lint` reads migrations with the PostgreSQL grammar (pg_query). With a database \
it also reads live table sizes: findings name the table, its size and its rows (`reltuples`; \
for a table never analyzed, estimated from its pages and column widths, and said so), and rules whose \
severity depends on size are errors for tables of at least `[lint] large_table` \
(default 10 MB) and warnings below. Suppress a finding for one file with \
`-- migsafe:allow <rule> -- <reason>` in its header; a suppression without a reason is \
itself a finding (`allow-without-reason`). A statement the grammar cannot read is a \
[`syntax-error`](#syntax-error) finding at the line and column where the grammar stopped, \
and the rest of the file is still linted. Flyway scripts are linted with their `${name}` \
placeholders replaced ([migrations.md](migrations.md#flyway-placeholders)), also when a file \
is named on the command line; a placeholder without a value is one `placeholder-without-value` \
error per placeholder, at its line, and the script is not linted further (it cannot run as it \
is).\n\n| rule | severity | flags |\n|---|---|---|\n",
    );
    for rule in rules::all() {
        let _ = writeln!(
            out,
            "| [`{}`](#{}) | {:?} | {} |",
            rule.id(),
            rule.id(),
            rule.severity(),
            rule.summary()
        );
    }
    for rule in rules::all() {
        let _ = write!(
            out,
            "\n## {}\n\n**{:?}** — {}.\n\n{}\n\nFix: {}.\n",
            rule.id(),
            rule.severity(),
            rule.summary(),
            rule.doc(),
            rule.help()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn docs_lint_md_is_up_to_date() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/lint.md");
        let written = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            written == super::markdown(),
            "docs/lint.md is stale: run `cargo run -q -- lint --rules-doc > docs/lint.md`"
        );
    }
}
