//! ory/pop (fizz SQL): `<ver>_<name>[.<dialect>][.autocommit].(up|down).sql`.
//! A history carries one copy per database dialect; per version and direction
//! the `.postgres.` file wins over a dialect-less one, and other dialects'
//! files (`.mysql.`, `.sqlite3.`, `.cockroach.` …) are ignored and listed by
//! `status -v`. `.autocommit` runs the file without a transaction; an empty
//! file is a valid no-op (pop writes them for versions one dialect skips).
//! The names themselves are read in `layout`.

use super::super::layout::is_postgres_dialect;

/// What to do with one pop file among the files of its version and direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// This file is the script.
    Use,
    /// Not for PostgreSQL, or a PostgreSQL-specific file replaces it: why.
    Ignore(String),
}

/// Chooses among the dialects of the files of one version and direction
/// (`None`: a dialect-less file).
pub fn choose(dialects: &[Option<&str>]) -> Vec<Choice> {
    let postgres = dialects.iter().any(|d| d.is_some_and(is_postgres_dialect));
    dialects
        .iter()
        .map(|dialect| match dialect {
            Some(d) if is_postgres_dialect(d) => Choice::Use,
            Some(d) => Choice::Ignore(format!("pop migration for the `{d}` dialect")),
            None if postgres => Choice::Ignore(
                "pop: the `.postgres.` file of this version replaces the dialect-less one".into(),
            ),
            None => Choice::Use,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_wins_and_other_dialects_are_ignored() {
        let c = choose(&[None, Some("postgres"), Some("mysql")]);
        assert!(matches!(c[0], Choice::Ignore(_)));
        assert_eq!(c[1], Choice::Use);
        assert!(matches!(&c[2], Choice::Ignore(why) if why.contains("mysql")));
        assert_eq!(choose(&[None, Some("sqlite3")])[0], Choice::Use);
    }
}
