//! Whether a text value fits the target database's encoding.
//!
//! migsafe sends text as UTF-8 and the server converts it to its own
//! encoding; a character that encoding has no place for fails the load
//! ("character with byte sequence … has no equivalent in encoding LATIN1"),
//! which then rolls back whole. Precheck finds those values first, for the
//! encodings whose repertoire is plain: LATIN1 holds U+0000–U+00FF, and
//! SQL_ASCII stores any bytes but refuses jsonb's `\u` escapes beyond ASCII.
//! Other encodings are not checked value by value (precheck warns).

use super::types::Cell;

/// A server encoding whose repertoire precheck checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// ISO 8859-1: the first 256 code points.
    Latin1,
    /// No conversion at all; only jsonb's `\u` escapes must be ASCII.
    SqlAscii,
}

impl Charset {
    /// For a `server_encoding`; `None` for UTF8 (holds everything) and for
    /// the encodings not checked.
    pub fn of(encoding: &str) -> Option<Charset> {
        match encoding {
            "LATIN1" => Some(Charset::Latin1),
            "SQL_ASCII" => Some(Charset::SqlAscii),
            _ => None,
        }
    }

    /// The encoding's name, as `server_encoding` says it.
    pub fn name(self) -> &'static str {
        match self {
            Charset::Latin1 => "LATIN1",
            Charset::SqlAscii => "SQL_ASCII",
        }
    }

    /// The first character of a converted value the database cannot hold,
    /// and whether it was written as a jsonb `\u` escape.
    pub fn refused(self, cell: &Cell) -> Option<(char, bool)> {
        let (text, jsonb) = match cell {
            Cell::Text(text) | Cell::Json(text) => (text, false),
            Cell::Jsonb(text) => (text, true),
            _ => return None,
        };
        if self == Charset::Latin1
            && let Some(c) = text.chars().find(|c| u32::from(*c) > 0xFF)
        {
            return Some((c, false));
        }
        if jsonb {
            let limit = match self {
                Charset::Latin1 => 0xFF,
                Charset::SqlAscii => 0x7F,
            };
            return escapes(text)
                .find(|c| u32::from(*c) > limit)
                .map(|c| (c, true));
        }
        None
    }
}

/// A refused character for people: `'€' (U+20AC)`, or `the jsonb escape
/// for '€' (U+20AC)` when it was written as one.
pub fn shown(c: char, escaped: bool) -> String {
    let how = if escaped { "the jsonb escape for " } else { "" };
    format!("{how}{c:?} (U+{:04X})", u32::from(c))
}

/// The characters written as `\uXXXX` escapes (pairs of surrogates put
/// together) in JSON text that has already been validated.
fn escapes(text: &str) -> impl Iterator<Item = char> + '_ {
    let bytes = text.as_bytes();
    let mut at = 0;
    std::iter::from_fn(move || {
        while at + 1 < bytes.len() {
            if bytes[at] != b'\\' {
                at += 1;
                continue;
            }
            // Any escape is two characters; `\u` has four hex digits more.
            if bytes[at + 1] != b'u' {
                at += 2;
                continue;
            }
            let unit = hex4(bytes, at + 2);
            at += 6;
            let Some(high) = unit else { continue };
            if (0xD800..0xDC00).contains(&high)
                && bytes.get(at..at + 2) == Some(b"\\u")
                && let Some(low) = hex4(bytes, at + 2).filter(|l| (0xDC00..0xE000).contains(l))
            {
                at += 6;
                let code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                return char::from_u32(code);
            }
            // A lone surrogate stands for no character; jsonb refuses it
            // anyway (`jsonb_refuses`): shown as the replacement character.
            return Some(char::from_u32(high).unwrap_or(char::REPLACEMENT_CHARACTER));
        }
        None
    })
}

fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = std::str::from_utf8(bytes.get(at..at + 4)?).ok()?;
    u32::from_str_radix(digits, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_holds_the_first_256_code_points() {
        let latin1 = Charset::Latin1;
        assert_eq!(latin1.refused(&Cell::Text("café ÿ".into())), None);
        assert_eq!(
            latin1.refused(&Cell::Text("5 €".into())),
            Some(('€', false))
        );
        assert_eq!(
            latin1.refused(&Cell::Json("\"🎉\"".into())),
            Some(('🎉', false))
        );
        // A json column keeps its escapes as text; jsonb converts them.
        assert_eq!(latin1.refused(&Cell::Json(r#""\u20ac""#.into())), None);
        assert_eq!(latin1.refused(&Cell::Jsonb(r#""\u00e9""#.into())), None);
        assert_eq!(
            latin1.refused(&Cell::Jsonb(r#""\u20ac""#.into())),
            Some(('€', true))
        );
        assert_eq!(
            latin1.refused(&Cell::Jsonb(r#"{"a": "\\u20ac \ud83c\udf89"}"#.into())),
            Some(('🎉', true))
        );
        assert_eq!(latin1.refused(&Cell::I64(7)), None);
    }

    #[test]
    fn sql_ascii_refuses_only_jsonb_escapes_beyond_ascii() {
        let ascii = Charset::SqlAscii;
        assert_eq!(ascii.refused(&Cell::Text("€ 🎉".into())), None);
        assert_eq!(ascii.refused(&Cell::Jsonb("\"é\"".into())), None);
        assert_eq!(
            ascii.refused(&Cell::Jsonb(r#""\u0041\u007f""#.into())),
            None
        );
        assert_eq!(
            ascii.refused(&Cell::Jsonb(r#""\u00e9""#.into())),
            Some(('é', true))
        );
        assert_eq!(Charset::of("UTF8"), None);
        assert_eq!(Charset::of("WIN1252"), None);
    }
}
