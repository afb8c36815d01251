//! The layouts of other tools (SPEC section 2a), one file each: what marks a
//! file or directory as that tool's, and how its files become up and down
//! scripts. Only file structure is read here (marker comment lines, file and
//! folder names, the tool's own plan or journal); the SQL itself is read with
//! the PostgreSQL grammar in `statements`, like every other script.

pub mod drizzle;
pub mod flyway;
pub mod flyway_placeholders;
pub mod flyway_toml;
pub mod goose;
pub mod liquibase;
pub mod liquibase_filter;
pub mod pop;
pub mod prisma;
pub mod sqitch;
pub mod sql_migrate;

/// One direction of a file with marked sections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The section's text: from its first marker line to its last line, with
    /// the lines of other sections in between left blank, so that a server
    /// error's line number plus `first_line` is the file's line.
    pub text: String,
    /// 1-based line of the file where `text` starts.
    pub first_line: usize,
    /// A marker of this direction asked for no transaction.
    pub no_transaction: bool,
}

/// The up and down sections of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sections {
    /// The up section.
    pub up: Section,
    /// The down section, when the file has one.
    pub down: Option<Section>,
}

/// What a marker line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// The lines after it, up to the next section marker, are up script.
    Up {
        /// The marker asks for no transaction.
        no_transaction: bool,
    },
    /// The lines after it are down script.
    Down {
        /// The marker asks for no transaction.
        no_transaction: bool,
    },
}

/// Splits `text` into its up and down sections at the lines `marker` names.
/// Several sections of one direction are concatenated in file order (as
/// sql-migrate does); lines before the first marker belong to neither.
pub fn split_sections(
    text: &str,
    tool: &str,
    marker: impl Fn(&str) -> Option<Marker>,
) -> Result<Sections, String> {
    #[derive(Clone, Copy, PartialEq)]
    enum In {
        None,
        Up,
        Down,
    }
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut owner = Vec::with_capacity(lines.len());
    let (mut current, mut up_no_tx, mut down_no_tx) = (In::None, false, false);
    for line in &lines {
        match marker(line.trim()) {
            Some(Marker::Up { no_transaction }) => {
                current = In::Up;
                up_no_tx |= no_transaction;
            }
            Some(Marker::Down { no_transaction }) => {
                current = In::Down;
                down_no_tx |= no_transaction;
            }
            None => {}
        }
        owner.push(current);
    }
    let section = |wanted: In, no_transaction: bool| -> Option<Section> {
        let first = owner.iter().position(|o| *o == wanted)?;
        let last = owner.iter().rposition(|o| *o == wanted)?;
        let mut text = String::new();
        for index in first..=last {
            if owner[index] == wanted {
                text.push_str(lines[index]);
            } else {
                text.push('\n');
            }
        }
        Some(Section {
            text,
            first_line: first + 1,
            no_transaction,
        })
    };
    let Some(up) = section(In::Up, up_no_tx) else {
        return Err(format!(
            "has {tool} markers but no up section; add the `Up` marker above the up script"
        ));
    };
    Ok(Sections {
        up,
        down: section(In::Down, down_no_tx),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(line: &str) -> Option<Marker> {
        match line {
            "-- up" => Some(Marker::Up {
                no_transaction: false,
            }),
            "-- up nt" => Some(Marker::Up {
                no_transaction: true,
            }),
            "-- down" => Some(Marker::Down {
                no_transaction: false,
            }),
            _ => None,
        }
    }

    #[test]
    fn sections_keep_file_lines_and_concatenate_in_order() {
        let text = "-- head\n-- up\nA;\n-- down\nB;\n-- up nt\nC;\n";
        let s = split_sections(text, "t", marker).unwrap();
        assert_eq!(s.up.text, "-- up\nA;\n\n\n-- up nt\nC;\n");
        assert_eq!(s.up.first_line, 2);
        assert!(s.up.no_transaction);
        let down = s.down.unwrap();
        assert_eq!((down.text.as_str(), down.first_line), ("-- down\nB;\n", 4));
        assert!(!down.no_transaction);
        assert!(split_sections("-- down\nB;\n", "t", marker).is_err());
    }
}
