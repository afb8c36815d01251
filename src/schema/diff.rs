//! Structural difference between two snapshots: which objects (table,
//! column, index, constraint, function…) were added, removed or changed.

use serde::Serialize;

use super::snapshot::Snapshot;

/// What happened to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// Only in the second snapshot.
    Added,
    /// Only in the first snapshot.
    Removed,
    /// In both, described differently.
    Changed,
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Added, removed or changed.
    pub kind: ChangeKind,
    /// The object key (`column app.users.email`).
    pub object: String,
    /// Its description in the first snapshot.
    pub before: Option<String>,
    /// Its description in the second snapshot.
    pub after: Option<String>,
}

/// The differences from `before` to `after`, in key order.
pub fn diff(before: &Snapshot, after: &Snapshot) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut left = before.objects.iter().peekable();
    let mut right = after.objects.iter().peekable();
    loop {
        match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some((key, value)), None) => {
                changes.push(removed(key, value));
                left.next();
            }
            (None, Some((key, value))) => {
                changes.push(added(key, value));
                right.next();
            }
            (Some((lk, lv)), Some((rk, rv))) => match lk.cmp(rk) {
                std::cmp::Ordering::Less => {
                    changes.push(removed(lk, lv));
                    left.next();
                }
                std::cmp::Ordering::Greater => {
                    changes.push(added(rk, rv));
                    right.next();
                }
                std::cmp::Ordering::Equal => {
                    if lv != rv {
                        changes.push(Change {
                            kind: ChangeKind::Changed,
                            object: (*lk).clone(),
                            before: Some((*lv).clone()),
                            after: Some((*rv).clone()),
                        });
                    }
                    left.next();
                    right.next();
                }
            },
        }
    }
    changes
}

fn added(key: &str, value: &str) -> Change {
    Change {
        kind: ChangeKind::Added,
        object: key.to_string(),
        before: None,
        after: Some(value.to_string()),
    }
}

fn removed(key: &str, value: &str) -> Change {
    Change {
        kind: ChangeKind::Removed,
        object: key.to_string(),
        before: Some(value.to_string()),
        after: None,
    }
}

/// Human text: `+ object: description`, `- object…`, `~ object` with both sides.
pub fn render(changes: &[Change]) -> String {
    let mut out = String::new();
    for change in changes {
        let indent = |text: &str| text.replace('\n', "\n      ");
        match change.kind {
            ChangeKind::Added => {
                out.push_str(&format!(
                    "+ {}: {}\n",
                    change.object,
                    indent(change.after.as_deref().unwrap_or(""))
                ));
            }
            ChangeKind::Removed => {
                out.push_str(&format!(
                    "- {}: {}\n",
                    change.object,
                    indent(change.before.as_deref().unwrap_or(""))
                ));
            }
            ChangeKind::Changed => {
                out.push_str(&format!(
                    "~ {}\n    was: {}\n    now: {}\n",
                    change.object,
                    indent(change.before.as_deref().unwrap_or("")),
                    indent(change.after.as_deref().unwrap_or(""))
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(pairs: &[(&str, &str)]) -> Snapshot {
        Snapshot {
            objects: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn finds_added_removed_and_changed_objects() {
        let a = snapshot(&[
            ("column s.t.a", "#1 integer"),
            ("column s.t.b", "#2 text"),
            ("table s.t", "table"),
        ]);
        let b = snapshot(&[
            ("column s.t.a", "#1 bigint"),
            ("index s.t_a", "CREATE INDEX"),
            ("table s.t", "table"),
        ]);
        let changes = diff(&a, &b);
        let kinds: Vec<_> = changes
            .iter()
            .map(|c| (c.kind, c.object.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                (ChangeKind::Changed, "column s.t.a"),
                (ChangeKind::Removed, "column s.t.b"),
                (ChangeKind::Added, "index s.t_a")
            ]
        );
        assert!(diff(&a, &a).is_empty());
        assert!(
            render(&changes).contains("~ column s.t.a\n    was: #1 integer\n    now: #1 bigint")
        );
    }
}
