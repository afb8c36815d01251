//! The canonical form of a JSON value, for verify's hash: what the SQLite
//! text and PostgreSQL's `jsonb` output of it have in common.
//!
//! `jsonb` keeps the meaning of a document, not its text: whitespace goes,
//! object members are reordered, strings are stored decoded (and printed
//! with PostgreSQL's own escapes), numbers are `numeric` (`1e2` prints as
//! `100`; `1.50` stays `1.50`, not `1.5`: numeric keeps its scale). The
//! canonical form drops exactly those differences and nothing else:
//!
//! - no whitespace; object members ordered by their (canonical) key,
//!   shorter keys first as jsonb orders them, a key that appears twice
//!   kept twice, in order;
//! - strings decoded (`\u00e9` is `é`), then written with only `"` and `\`
//!   escaped;
//! - numbers as their exact decimal value, never through a float (so no
//!   two different numbers meet): the significant digits and the power of
//!   ten of the point before them (`1e2` and `100` are both `1e3`,
//!   0.1 × 10³), then the digits after the point that `numeric` shows
//!   (its display scale: the fraction's digits less the exponent, at least
//!   0), so `100.00`, shown as `100.00`, is `1e3s2`, and `1.0` is not `1`.
//!
//! It is one pass over the bytes without building a tree (verify runs it
//! on every JSON value of both sides). Text that is not JSON is returned as
//! `None`: the caller hashes it as it is.

use std::io::Write as _;

/// Nesting deeper than this is not canonicalised (PostgreSQL's own limit
/// is the stack; serde_json's is 128).
const MAX_DEPTH: usize = 512;

/// Appends the canonical form of `text` to `out`; `None` (and `out` as it
/// was) when `text` is not one JSON value.
pub fn canonical(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    canonical_noting(text, out).map(|_| ())
}

/// What [`canonical`] met on the way that `jsonb` would not keep as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Noted {
    /// An object with one key twice (jsonb keeps only the last).
    pub duplicate_key: bool,
    /// A `\u0000` escape (jsonb refuses it).
    pub nul_escape: bool,
}

/// [`canonical`], also saying what it met that jsonb refuses or changes:
/// the SQLite side of verify checks a value and writes its canonical form
/// in one pass.
pub fn canonical_noting(text: &[u8], out: &mut Vec<u8>) -> Option<Noted> {
    let start = out.len();
    let mut parser = Parser {
        text,
        at: 0,
        noted: Noted::default(),
        members: Vec::new(),
        scratch: Vec::new(),
    };
    let done = parser.value(out, 0).and_then(|()| {
        parser.skip_space();
        (parser.at == text.len()).then_some(parser.noted)
    });
    if done.is_none() {
        out.truncate(start);
    }
    done
}

struct Parser<'a> {
    text: &'a [u8],
    at: usize,
    noted: Noted,
    /// Per member of the objects being read: where it starts in `out`,
    /// where its key ends, where it ends.
    members: Vec<(usize, usize, usize)>,
    /// An object's members as written, while they are put in order.
    scratch: Vec<u8>,
}

/// The order of object members: shorter keys first, then by their bytes.
/// Any order that depends only on the key would do; this is `jsonb`'s own
/// (for keys without `"` or `\`), so PostgreSQL's output is already in it.
fn key_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn literal(&mut self, word: &[u8], out: &mut Vec<u8>) -> Option<()> {
        if self.text[self.at..].starts_with(word) {
            self.at += word.len();
            out.extend_from_slice(word);
            Some(())
        } else {
            None
        }
    }

    fn value(&mut self, out: &mut Vec<u8>, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.skip_space();
        match self.peek()? {
            b'{' => self.object(out, depth),
            b'[' => self.array(out, depth),
            b'"' => self.string(out),
            b't' => self.literal(b"true", out),
            b'f' => self.literal(b"false", out),
            b'n' => self.literal(b"null", out),
            b'-' | b'0'..=b'9' => self.number(out),
            _ => None,
        }
    }

    fn array(&mut self, out: &mut Vec<u8>, depth: usize) -> Option<()> {
        self.at += 1;
        out.push(b'[');
        self.skip_space();
        if self.peek() == Some(b']') {
            self.at += 1;
            out.push(b']');
            return Some(());
        }
        loop {
            self.value(out, depth + 1)?;
            self.skip_space();
            match self.peek()? {
                b',' => {
                    self.at += 1;
                    out.push(b',');
                }
                b']' => {
                    self.at += 1;
                    out.push(b']');
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn object(&mut self, out: &mut Vec<u8>, depth: usize) -> Option<()> {
        self.at += 1;
        out.push(b'{');
        let body = out.len();
        // This object's members are the top of the shared stack (nested
        // objects push theirs above and take them off before returning).
        let base = self.members.len();
        self.skip_space();
        if self.peek() == Some(b'}') {
            self.at += 1;
            out.push(b'}');
            return Some(());
        }
        loop {
            self.skip_space();
            if self.peek()? != b'"' {
                return None;
            }
            let begin = out.len();
            self.string(out)?;
            let key_end = out.len();
            self.skip_space();
            if self.peek()? != b':' {
                return None;
            }
            self.at += 1;
            out.push(b':');
            self.value(out, depth + 1)?;
            self.members.push((begin, key_end, out.len()));
            self.skip_space();
            match self.peek()? {
                b',' => {
                    self.at += 1;
                    out.push(b',');
                }
                b'}' => {
                    self.at += 1;
                    break;
                }
                _ => return None,
            }
        }
        let mut members = std::mem::take(&mut self.members);
        let mine = &mut members[base..];
        let key = |m: &(usize, usize, usize)| &out[m.0..m.1];
        let sorted = mine
            .windows(2)
            .all(|w| key_order(key(&w[0]), key(&w[1])).is_le());
        if !sorted {
            // Stable: a key given twice keeps its order.
            mine.sort_by(|a, b| key_order(key(a), key(b)));
        }
        // Sorted, a key given twice is next to itself.
        self.noted.duplicate_key |= mine.windows(2).any(|w| key(&w[0]) == key(&w[1]));
        if !sorted {
            self.scratch.clear();
            self.scratch.extend_from_slice(&out[body..]);
            out.truncate(body);
            for (i, (begin, _, end)) in mine.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(&self.scratch[begin - body..end - body]);
            }
        }
        members.truncate(base);
        self.members = members;
        out.push(b'}');
        Some(())
    }

    /// A string, decoded, written back with only `"` and `\` escaped.
    fn string(&mut self, out: &mut Vec<u8>) -> Option<()> {
        self.at += 1;
        out.push(b'"');
        loop {
            // Copy the plain run in one go.
            let run = self.text[self.at..]
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
            out.extend_from_slice(&self.text[self.at..self.at + run]);
            self.at += run;
            match self.text[self.at] {
                b'"' => {
                    self.at += 1;
                    out.push(b'"');
                    return Some(());
                }
                b'\\' => {
                    let escape = *self.text.get(self.at + 1)?;
                    self.at += 2;
                    let decoded = match escape {
                        b'"' | b'\\' => {
                            out.extend_from_slice(&[b'\\', escape]);
                            continue;
                        }
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let decoded = self.unicode()?;
                            self.noted.nul_escape |= decoded == '\0';
                            decoded
                        }
                        _ => return None,
                    };
                    if decoded == '"' || decoded == '\\' {
                        out.push(b'\\');
                    }
                    let mut utf8 = [0u8; 4];
                    out.extend_from_slice(decoded.encode_utf8(&mut utf8).as_bytes());
                }
                // A raw control character: not JSON.
                _ => return None,
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.text.get(self.at..self.at + 4)?;
        self.at += 4;
        let text = std::str::from_utf8(digits).ok()?;
        u32::from_str_radix(text, 16).ok()
    }

    /// The code point of `\uXXXX` (after the `u`), surrogate pairs joined.
    fn unicode(&mut self) -> Option<char> {
        let first = self.hex4()?;
        if (0xD800..0xDC00).contains(&first) {
            if self.text.get(self.at..self.at + 2)? != b"\\u" {
                return None;
            }
            self.at += 2;
            let second = self.hex4()?;
            if !(0xDC00..0xE000).contains(&second) {
                return None;
            }
            char::from_u32(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))
        } else {
            char::from_u32(first)
        }
    }

    /// A number as its significant digits and the power of ten of the
    /// point before them, then its display scale when not 0: `-12.50` is
    /// `-125e2s2`, `0.003` `3e-2s3`, `1e2` `1e3`, zero `0` (`0.00` `0s2`).
    fn number(&mut self, out: &mut Vec<u8>) -> Option<()> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.at += 1;
        }
        let int_start = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        let int = &self.text[int_start..self.at];
        if int.is_empty() || (int.len() > 1 && int[0] == b'0') {
            return None;
        }
        let mut frac: &[u8] = &[];
        if self.peek() == Some(b'.') {
            self.at += 1;
            let start = self.at;
            while let Some(b'0'..=b'9') = self.peek() {
                self.at += 1;
            }
            frac = &self.text[start..self.at];
            if frac.is_empty() {
                return None;
            }
        }
        let mut exponent: i64 = 0;
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            let minus = match self.peek() {
                Some(b'-') => {
                    self.at += 1;
                    true
                }
                Some(b'+') => {
                    self.at += 1;
                    false
                }
                _ => false,
            };
            let start = self.at;
            while let Some(digit @ b'0'..=b'9') = self.peek() {
                exponent = exponent
                    .saturating_mul(10)
                    .saturating_add(i64::from(digit - b'0'));
                self.at += 1;
            }
            if self.at == start {
                return None;
            }
            if minus {
                exponent = -exponent;
            }
        }
        let leading = int.iter().chain(frac).take_while(|&&d| d == b'0').count();
        let total = int.len() + frac.len();
        let trailing = int
            .iter()
            .chain(frac)
            .rev()
            .take_while(|&&d| d == b'0')
            .count();
        // numeric's display scale: what `numeric_out`, so jsonb, prints
        // after the point (`1.0` stays `1.0`; `1.5e1` is `15.0`).
        let scale = (frac.len() as i64).saturating_sub(exponent).max(0);
        let write_scale = |out: &mut Vec<u8>| {
            if scale > 0 {
                out.push(b's');
                let _ = write!(out, "{scale}");
            }
        };
        if leading == total {
            out.push(b'0');
            write_scale(out);
            return Some(());
        }
        if negative {
            out.push(b'-');
        }
        // The significant digits, from the integer part and the fraction.
        let (from, to) = (leading, total - trailing);
        out.extend_from_slice(&int[from.min(int.len())..to.min(int.len())]);
        out.extend_from_slice(&frac[from.saturating_sub(int.len())..to.saturating_sub(int.len())]);
        let point = (int.len() as i64)
            .saturating_add(exponent)
            .saturating_sub(leading as i64);
        out.push(b'e');
        // Into the Vec itself: writing to a Vec cannot fail.
        let _ = write!(out, "{point}");
        write_scale(out);
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(text: &str) -> Option<String> {
        let mut out = Vec::new();
        canonical(text.as_bytes(), &mut out).map(|()| String::from_utf8(out).unwrap_or_default())
    }

    #[test]
    fn what_jsonb_changes_is_the_same_and_nothing_else_is() {
        let same = |a: &str, b: &str| {
            assert_eq!(canon(a), canon(b), "{a} vs {b}");
            assert!(canon(a).is_some(), "{a}");
        };
        let differ = |a: &str, b: &str| assert_ne!(canon(a), canon(b), "{a} vs {b}");
        same(r#"{"b": 1, "a": [1, 2]}"#, r#"{"a":[1,2],"b":1}"#);
        same(r#"{"aa": 1, "b": 2}"#, r#"{"b": 2, "aa": 1}"#);
        same("1e2", "100");
        same("1E+2", "100");
        same("1.50e1", "15.0");
        same("2.5E-3", "0.0025");
        same("-0", "0");
        same("-0.00", "0.00");
        same("0e5", "0");
        same("0.000", "0.00000e2");
        same(&format!("{}", 1e308), &format!("1{}", "0".repeat(308)));
        same(r#""caf\u00e9 \ud83c\udf89""#, "\"café 🎉\"");
        same(r#""tab\tquote\" é""#, "\"tab\\u0009quote\\\" \u{e9}\"");
        same(r#""a\/b""#, r#""a/b""#);
        same(r#""\u0022\u005c""#, r#""\"\\""#);
        same(" [ true , false , null ] ", "[true,false,null]");
        same(
            r#"{"theme": "x", "nested": {"y": 1e308, "x": null}}"#,
            &format!(
                r#"{{"nested": {{"x": null, "y": 1{}}}, "theme": "x"}}"#,
                "0".repeat(308)
            ),
        );
        // jsonb keeps numeric's scale: `SELECT '1.50'::jsonb` is `1.50`.
        differ("1.50", "1.5");
        differ("1.0", "1");
        differ("100.00", "100");
        differ("0.000", "0");
        differ("1", "10");
        differ("0.1", "0.10000000000000001");
        differ("-1", "1");
        differ(r#"{"a": 1}"#, r#"{"a": "1"}"#);
        differ(r#"["a", "b"]"#, r#"["b", "a"]"#);
        differ(r#""a\"b""#, r#""a\\b""#);
        differ(r#"{"a": 1, "a": 2}"#, r#"{"a": 2}"#);
        for bad in [
            "",
            "{",
            "[1,]",
            "01",
            "1.",
            "tru",
            "\"a",
            "{\"a\" 1}",
            "\"\u{1}\"",
            "1 2",
        ] {
            assert_eq!(canon(bad), None, "{bad:?}");
        }
        assert_eq!(canon("-12.50").as_deref(), Some("-125e2s2"));
        assert_eq!(canon("0.003").as_deref(), Some("3e-2s3"));
        assert_eq!(canon("1e2").as_deref(), Some("1e3"));
    }

    #[test]
    fn keys_given_twice_and_nul_escapes_are_noted() {
        let noted = |t: &str| canonical_noting(t.as_bytes(), &mut Vec::new());
        let twice = |t: &str| noted(t).map(|n| n.duplicate_key);
        assert_eq!(twice(r#"{"a":1,"a":2}"#), Some(true));
        assert_eq!(twice(r#"{"b":1,"a":2,"b":3}"#), Some(true));
        assert_eq!(twice(r#"[{"x":{"b":1,"b":2}}]"#), Some(true));
        // The same key once escaped and once not.
        assert_eq!(twice(r#"{"a":1,"\u0061":2}"#), Some(true));
        assert_eq!(twice(r#"{"a":{"a":1},"b":[{"a":2}]}"#), Some(false));
        assert_eq!(twice(r#"{"ab":1,"a":2,"b":3}"#), Some(false));
        assert_eq!(twice("1e2"), Some(false));
        let nul = |t: &str| noted(t).map(|n| n.nul_escape);
        assert_eq!(nul(r#"{"a":"x\u0000y"}"#), Some(true));
        assert_eq!(nul(r#"["\\u0000"]"#), Some(false));
        assert_eq!(nul(r#""\u0001""#), Some(false));
        assert_eq!(noted("{"), None);
    }
}
