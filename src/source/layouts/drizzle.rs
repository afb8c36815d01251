//! Drizzle: `meta/_journal.json` decides which migrations exist and in which
//! order; each entry's `tag` names `<tag>.sql` beside `meta/`. A `.sql` file
//! that the journal does not list is never applied by Drizzle, so migsafe
//! ignores it too and lists it in `status -v`. Statements are separated by
//! `--> statement-breakpoint` comments for Drizzle's own splitter; migsafe
//! reads statements with the PostgreSQL grammar, where those lines are
//! comments. Each migration runs in one transaction (inferred otherwise for
//! a script that cannot, as for any script).
//!
//! A migration's version is the number its tag starts with (`0003` of
//! `0003_add_orders`, as `drizzle-kit generate` names them); the journal's
//! order must agree with it.

use std::path::Path;

use super::super::version::Version;

/// The journal's path relative to the migrations directory.
pub const JOURNAL: &str = "meta/_journal.json";

/// One journal entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The migration's version, from the tag's leading digits.
    pub version: Version,
    /// The name after the version (the tag without its number).
    pub name: String,
    /// The file name, `<tag>.sql`.
    pub file: String,
    /// Drizzle's `when` (milliseconds since the epoch): what its history records.
    pub when: i64,
}

/// True when `dir` holds a Drizzle journal.
pub fn is_drizzle(dir: &Path) -> bool {
    dir.join(JOURNAL).is_file()
}

/// Reads the journal's entries in journal order; errors say what is wrong
/// with which entry.
pub fn read_journal(text: &str) -> Result<Vec<Entry>, String> {
    #[derive(serde::Deserialize)]
    struct Journal {
        dialect: Option<String>,
        entries: Vec<RawEntry>,
    }
    #[derive(serde::Deserialize)]
    struct RawEntry {
        idx: Option<u64>,
        when: Option<i64>,
        tag: Option<String>,
    }
    let journal: Journal =
        serde_json::from_str(text).map_err(|e| format!("is not a Drizzle journal: {e}"))?;
    if let Some(dialect) = journal.dialect.as_deref()
        && !matches!(dialect, "postgresql" | "postgres" | "pg")
    {
        return Err(format!(
            "is a journal for the `{dialect}` dialect, not postgresql; these migrations were written for another database"
        ));
    }
    let mut entries: Vec<Entry> = Vec::with_capacity(journal.entries.len());
    for (position, raw) in journal.entries.into_iter().enumerate() {
        let at = format!("entry {position}");
        let tag = raw
            .tag
            .filter(|t| !t.is_empty())
            .ok_or_else(|| format!("{at} has no `tag` naming its file"))?;
        if tag.contains(['/', '\\']) || tag.starts_with('.') {
            return Err(format!(
                "{at}: the tag `{tag}` is not a file name in this directory"
            ));
        }
        if let Some(idx) = raw.idx
            && idx != position as u64
        {
            return Err(format!(
                "{at} (`{tag}`) says idx {idx}; the journal is out of order"
            ));
        }
        let digits: String = tag.chars().take_while(char::is_ascii_digit).collect();
        let version = Version::parse(&digits).map_err(|_| {
            format!("{at}: the tag `{tag}` does not start with a number, which migsafe uses as the version")
        })?;
        if let Some(previous) = entries.last()
            && previous.version >= version
        {
            return Err(format!(
                "{at}: `{tag}` comes after `{}` in the journal but its number is not greater",
                previous.file.trim_end_matches(".sql")
            ));
        }
        let name = tag[digits.len()..].trim_start_matches('_').to_string();
        entries.push(Entry {
            version,
            name: if name.is_empty() { tag.clone() } else { name },
            file: format!("{tag}.sql"),
            when: raw.when.unwrap_or(0),
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_entries_in_journal_order() {
        let text = r#"{"version":"7","dialect":"postgresql","entries":[
            {"idx":0,"version":"7","when":1700000000000,"tag":"0000_init","breakpoints":true},
            {"idx":1,"version":"7","when":1700000001000,"tag":"0001_orders","breakpoints":true}]}"#;
        let entries = read_journal(text).unwrap();
        assert_eq!(entries[1].file, "0001_orders.sql");
        assert_eq!(entries[1].name, "orders");
        assert_eq!(entries[0].when, 1_700_000_000_000);
    }

    #[test]
    fn refuses_bad_journals() {
        assert!(read_journal("{").is_err());
        assert!(read_journal(r#"{"entries":[{"idx":0}]}"#).is_err());
        assert!(read_journal(r#"{"dialect":"mysql","entries":[]}"#).is_err());
        assert!(read_journal(r#"{"entries":[{"tag":"init"}]}"#).is_err());
        assert!(read_journal(r#"{"entries":[{"tag":"0001_a"},{"tag":"0001_b"}]}"#).is_err());
        assert!(read_journal(r#"{"entries":[{"tag":"../x"}]}"#).is_err());
    }
}
