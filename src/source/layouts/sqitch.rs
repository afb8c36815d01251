//! Sqitch: `sqitch.plan` decides the order; each change has
//! `deploy/<name>.sql`, and optionally `revert/<name>.sql` (the down script)
//! and `verify/<name>.sql` (run after the deploy script, see
//! `Migration::verify`). A change reworked after a tag appears again in the
//! plan; its older instance's scripts are `deploy/<name>@<tag>.sql` for the
//! first tag after that instance that has such a file, as Sqitch resolves them.
//!
//! Plan lines: `%pragma=value`, `# comments`, blank lines, change lines
//! `name [dependencies] 2024-01-01T00:00:00Z Planner <email> # note` and tag
//! lines `@tag 2024-01-01T00:00:00Z Planner <email> # note`. A change's migsafe
//! version is its position among the plan's changes (1, 2, 3 …) and its name the
//! change name. **Transactions**: Sqitch scripts carry their own
//! `BEGIN; … COMMIT;`, which runs as migsafe's transaction (SPEC section 2).

/// The plan file's name.
pub const PLAN: &str = "sqitch.plan";

/// One change of the plan, with its scripts resolved (paths relative to the
/// directory holding the plan).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The change name.
    pub name: String,
    /// 1-based position among the plan's changes: the migsafe version.
    pub position: u64,
    /// 1-based line of the plan.
    pub line: usize,
    /// `deploy/<name>[@<tag>].sql`.
    pub deploy: String,
    /// `revert/…`, when that file exists.
    pub revert: Option<String>,
    /// `verify/…`, when that file exists.
    pub verify: Option<String>,
}

enum Item {
    Change { name: String, line: usize },
    Tag(String),
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(['@', '#', '%', '[', ':'])
        && !name.contains([':', '@', '#', '\\'])
        && !name.chars().any(char::is_whitespace)
}

/// Reads the plan, resolving each change's scripts with `exists` (is this
/// path, relative to the plan, a file?). Errors name the plan line.
pub fn read_plan(text: &str, exists: impl Fn(&str) -> bool) -> Result<Vec<Change>, String> {
    let mut items = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('%') {
            continue;
        }
        let body = line.split_once(" #").map_or(line, |(b, _)| b);
        let mut words: Vec<&str> = body.split_whitespace().collect();
        let first = words.remove(0);
        // Dependencies come in brackets right after the name.
        if words.first().is_some_and(|w| w.starts_with('[')) {
            let Some(end) = words.iter().position(|w| w.ends_with(']')) else {
                return Err(format!(
                    "line {number}: `[` of the dependencies is never closed"
                ));
            };
            words.drain(..=end);
        }
        let stamped = words
            .first()
            .is_some_and(|w| w.len() >= 20 && w.ends_with('Z') && w.contains('T'));
        let planner = words.iter().any(|w| w.starts_with('<') && w.ends_with('>'));
        if !stamped || !planner {
            return Err(format!(
                "line {number}: `{line}` is not a Sqitch plan line (`name [deps] 2024-01-01T00:00:00Z Planner <email> # note`)"
            ));
        }
        if let Some(tag) = first.strip_prefix('@') {
            if !valid_name(tag) {
                return Err(format!("line {number}: `@{tag}` is not a valid tag name"));
            }
            items.push(Item::Tag(tag.to_string()));
        } else {
            let name = first.trim_start_matches(['+', '-']);
            if !valid_name(name) {
                return Err(format!(
                    "line {number}: `{first}` is not a valid change name"
                ));
            }
            items.push(Item::Change {
                name: name.to_string(),
                line: number,
            });
        }
    }
    let mut changes = Vec::new();
    for (at, item) in items.iter().enumerate() {
        let Item::Change { name, line } = item else {
            continue;
        };
        let reworked_later = items[at + 1..]
            .iter()
            .any(|i| matches!(i, Item::Change { name: n, .. } if n == name));
        let stem = if reworked_later {
            let tag = items[at + 1..]
                .iter()
                .filter_map(|i| match i {
                    Item::Tag(tag) => Some(tag),
                    Item::Change { .. } => None,
                })
                .find(|tag| exists(&format!("deploy/{name}@{tag}.sql")));
            match tag {
                Some(tag) => format!("{name}@{tag}"),
                None => {
                    return Err(format!(
                        "line {line}: `{name}` is reworked later in the plan, but no `deploy/{name}@<tag>.sql` exists for a tag after this line"
                    ));
                }
            }
        } else {
            name.clone()
        };
        let deploy = format!("deploy/{stem}.sql");
        if !exists(&deploy) {
            return Err(format!("line {line}: the change `{name}` has no {deploy}"));
        }
        let optional = |dir: &str| {
            let path = format!("{dir}/{stem}.sql");
            exists(&path).then_some(path)
        };
        changes.push(Change {
            name: name.clone(),
            position: changes.len() as u64 + 1,
            line: *line,
            deploy,
            revert: optional("revert"),
            verify: optional("verify"),
        });
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN_TEXT: &str = "%syntax-version=1.0.0\n%project=shop\n\nusers 2024-01-01T10:00:00Z Ana <ana@example.com> # Users\nflips [users] 2024-01-02T10:00:00Z Ana <ana@example.com>\n@v1.0 2024-01-03T10:00:00Z Ana <ana@example.com> # Tag v1.0\n@v1.1 2024-01-04T10:00:00Z Ana <ana@example.com>\nflips [flips@v1.0] 2024-01-05T10:00:00Z Ana <ana@example.com> # Reworked\n";

    #[test]
    fn reworked_changes_take_the_first_tag_with_a_file() {
        let files = [
            "deploy/users.sql",
            "deploy/flips.sql",
            "deploy/flips@v1.1.sql",
            "revert/flips@v1.1.sql",
            "verify/users.sql",
        ];
        let changes = read_plan(PLAN_TEXT, |p| files.contains(&p)).unwrap();
        assert_eq!(changes.len(), 3);
        assert_eq!(changes[1].deploy, "deploy/flips@v1.1.sql");
        assert_eq!(changes[1].revert.as_deref(), Some("revert/flips@v1.1.sql"));
        assert_eq!(changes[2].deploy, "deploy/flips.sql");
        assert_eq!(changes[0].verify.as_deref(), Some("verify/users.sql"));
        assert_eq!(changes[2].position, 3);
    }

    #[test]
    fn malformed_lines_and_missing_files_name_the_line() {
        let err = read_plan("users\n", |_| true).unwrap_err();
        assert!(err.starts_with("line 1:"), "{err}");
        let err = read_plan("a [b 2024-01-01T10:00:00Z A <a@b>\n", |_| true).unwrap_err();
        assert!(err.contains("never closed"), "{err}");
        let err = read_plan(PLAN_TEXT, |p| {
            p != "deploy/flips@v1.1.sql" && p != "deploy/flips@v1.0.sql"
        })
        .unwrap_err();
        assert!(
            err.starts_with("line 5:") && err.contains("reworked"),
            "{err}"
        );
    }
}
