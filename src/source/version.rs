//! Migration versions: digits with `.` between components, compared numerically
//! component by component, whatever their width (SPEC section 2).
//!
//! `-` is punctuation and dropped, so diesel's `2019-01-01-000000` reads as the
//! timestamp `20190101000000` and sorts among plain timestamps. Components are
//! kept as digit strings: a timestamp with a suffix can exceed `u64`.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

/// A parsed migration version. Equality and order are numeric: `0001` equals
/// `1`, `9` < `10`, `1.9` < `1.10`, and trailing zero components do not count
/// (`1.0` equals `1`).
///
/// A Flyway repeatable migration (`R__<name>.sql`) has no version; it is
/// named `R__<name>` ([`Version::repeatable`]) so that messages and reason
/// codes name its file, and it sorts after every version, repeatables among
/// themselves by Flyway's description (the name with `_` read as a space).
#[derive(Debug, Clone)]
pub struct Version {
    text: String,
    /// Empty for a repeatable: [`Version::parse`] never makes an empty one.
    components: Vec<String>,
}

/// Why a version could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionError(pub String);

impl fmt::Display for VersionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Version {
    /// Parses a version as written in a file name (`20240101120000`,
    /// `2019-01-01-000000`, `1.2.3`). Flyway's `1_2_3` is turned into `1.2.3`
    /// by the layout code before it gets here.
    pub fn parse(raw: &str) -> Result<Version, VersionError> {
        if raw.is_empty() {
            return Err(VersionError("the version is empty".into()));
        }
        let mut text = String::with_capacity(raw.len());
        for ch in raw.chars() {
            match ch {
                '0'..='9' | '.' => text.push(ch),
                '-' => {}
                other => {
                    return Err(VersionError(format!(
                        "`{other}` is not allowed in a version (digits, with `.` between components and `-` as punctuation)"
                    )));
                }
            }
        }
        let mut components = Vec::new();
        for part in text.split('.') {
            if part.is_empty() {
                return Err(VersionError(format!(
                    "`{raw}` has an empty component (a leading, trailing or doubled `.`)"
                )));
            }
            let trimmed = part.trim_start_matches('0');
            components.push(if trimmed.is_empty() {
                "0".to_string()
            } else {
                trimmed.to_string()
            });
        }
        while components.len() > 1 && components.last().is_some_and(|c| c == "0") {
            components.pop();
        }
        Ok(Version { text, components })
    }

    /// The name of the Flyway repeatable migration `R__<name>.sql`.
    pub fn repeatable(name: &str) -> Version {
        Version {
            text: format!("R__{name}"),
            components: Vec::new(),
        }
    }

    /// True for a Flyway repeatable migration's name ([`Version::repeatable`]).
    pub fn is_repeatable(&self) -> bool {
        self.components.is_empty()
    }

    /// A repeatable's name without its `R__`.
    fn repeatable_name(&self) -> &str {
        self.text.strip_prefix("R__").unwrap_or(&self.text)
    }

    /// The version as written (dashes dropped), used in history rows and codes.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when the version is a single component of up to 4 digits, the
    /// "sequence number" style (`0001`), rather than a timestamp.
    pub fn is_sequential(&self) -> bool {
        self.components.len() == 1 && self.text.len() <= 6
    }

    /// The numeric value of a single-component version, when it fits.
    pub fn as_u64(&self) -> Option<u64> {
        if self.components.len() == 1 {
            self.components[0].parse().ok()
        } else {
            None
        }
    }
}

fn compare_digits(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.is_repeatable(), other.is_repeatable()) {
            // Flyway applies repeatables "in the alphanumeric order of their
            // description", and the description reads `_` as a space.
            (true, true) => {
                let description = |v: &Version| v.repeatable_name().replace('_', " ");
                return description(self)
                    .cmp(&description(other))
                    .then_with(|| self.text.cmp(&other.text));
            }
            (true, false) => return Ordering::Greater,
            (false, true) => return Ordering::Less,
            (false, false) => {}
        }
        for (a, b) in self.components.iter().zip(&other.components) {
            match compare_digits(a, b) {
                Ordering::Equal => {}
                unequal => return unequal,
            }
        }
        self.components.len().cmp(&other.components.len())
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        if self.is_repeatable() || other.is_repeatable() {
            return self.is_repeatable() && other.is_repeatable() && self.text == other.text;
        }
        self.components == other.components
    }
}

impl Eq for Version {}

impl Hash for Version {
    fn hash<H: Hasher>(&self, state: &mut H) {
        if self.is_repeatable() {
            self.text.hash(state);
        }
        self.components.hash(state);
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Version {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Version::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn repeatables_sort_after_versions_by_description() {
        let views = Version::repeatable("views");
        assert!(views.is_repeatable());
        assert!(!v("1").is_repeatable());
        assert!(views > v("99999999999999999999"));
        assert_eq!(views, Version::repeatable("views"));
        assert_ne!(views, Version::repeatable("functions"));
        assert_ne!(Version::repeatable("1"), v("1"));
        // "a b" < "aB" as descriptions, though `_` sorts after `B` as bytes.
        assert!(Version::repeatable("a_b") < Version::repeatable("aB"));
        assert_eq!(views.as_str(), "R__views");
    }

    #[test]
    fn orders_numerically_by_component() {
        assert!(v("9") < v("10"));
        assert!(v("1.9") < v("1.10"));
        assert!(v("1.2") < v("1.2.1"));
        assert_eq!(v("0001"), v("1"));
        assert_eq!(v("1.0"), v("1"));
        assert!(v("20140924113530") < v("2019-01-01-000000"));
        assert!(v("2019-01-01-000000") < v("2026-07-30-140000-0000"));
        assert_eq!(v("2019-01-01-000000").as_str(), "20190101000000");
    }

    #[test]
    fn rejects_what_is_not_a_version() {
        assert!(Version::parse("").is_err());
        assert!(Version::parse("1..2").is_err());
        assert!(Version::parse(".1").is_err());
        assert!(Version::parse("1a").is_err());
        assert!(Version::parse("1.").is_err());
    }

    proptest! {
        #[test]
        fn order_matches_integer_order(a in 0u64..u64::MAX, b in 0u64..u64::MAX, pad in 0usize..4) {
            let left = v(&format!("{:0width$}", a, width = pad + 1));
            let right = v(&b.to_string());
            prop_assert_eq!(left.cmp(&right), a.cmp(&b));
        }

        #[test]
        fn order_matches_component_order(a in proptest::collection::vec(0u32..1000, 1..4),
                                         b in proptest::collection::vec(0u32..1000, 1..4)) {
            let text = |parts: &[u32]| parts.iter().map(u32::to_string).collect::<Vec<_>>().join(".");
            let trim = |parts: &[u32]| {
                let mut p = parts.to_vec();
                while p.len() > 1 && p.last() == Some(&0) { p.pop(); }
                p
            };
            prop_assert_eq!(v(&text(&a)).cmp(&v(&text(&b))), trim(&a).cmp(&trim(&b)));
        }

        #[test]
        fn never_panics(raw in ".*") {
            let _ = Version::parse(&raw);
        }

        #[test]
        fn dashes_are_punctuation(digits in "[0-9]{1,30}", cut in 0usize..30) {
            let cut = cut.min(digits.len());
            let dashed = format!("{}-{}", &digits[..cut], &digits[cut..]);
            prop_assert_eq!(v(&dashed), v(&digits));
        }
    }
}
