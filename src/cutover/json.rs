//! The canonical form of a JSON value, for verify's hash: the text
//! PostgreSQL itself prints for it as `jsonb` (`jsonb_out`, and the binary
//! COPY form after its version byte), made from the SQLite text without a
//! server.
//!
//! `jsonb` keeps the meaning of a document, not its text: whitespace goes,
//! object members are reordered, strings are stored decoded (and printed
//! with PostgreSQL's own escapes), numbers are `numeric` (`1e2` prints as
//! `100`; `1.50` stays `1.50`, not `1.5`: numeric keeps its scale). This
//! module writes what `jsonb_out` writes:
//!
//! - `", "` between elements and members, `": "` after a key, nothing else;
//! - object members ordered as jsonb orders them, shorter (decoded) keys
//!   first, then by their bytes; a key given twice is noted (the load
//!   refuses such a value, jsonb would keep only the last);
//! - strings decoded (`\u00e9` is `é`), then escaped as `escape_json` does:
//!   `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, other control characters as
//!   `\u00XX` (lowercase), everything else as it is;
//! - numbers as `numeric_out` prints them: exact, never through a float, no
//!   exponent, the display scale `numeric` keeps (the fraction's digits less
//!   the exponent, at least 0): `1e2` is `100`, `1.5e1` `15`, `1e-3`
//!   `0.001`, `-0.0` `0.0`.
//!
//! So the target side of verify hashes the server's bytes as they come, and
//! only the SQLite side is parsed. It is one pass over the bytes without
//! building a tree. Text that is not JSON is returned as `None`: the caller
//! hashes it as it is. A test loads awkward documents into a real server and
//! compares its output with this one.

/// Nesting deeper than this is not canonicalised (PostgreSQL's own limit
/// is the stack; serde_json's is 128).
const MAX_DEPTH: usize = 512;

/// `numeric` (so jsonb) keeps at most this many digits before the point…
const NUMERIC_MAX_WEIGHT_DIGITS: i64 = 131_072;
/// …and this many after it (`NUMERIC_DSCALE_MAX`).
const NUMERIC_MAX_SCALE: i64 = 16_383;
/// `numeric_in` refuses an exponent from here on (`INT_MAX / 2`).
const NUMERIC_MAX_EXPONENT: i64 = 1_073_741_823;

/// Appends the canonical form of `text` to `out`; `None` (and `out` as it
/// was) when `text` is not one JSON value.
pub fn canonical(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    canonical_noting(text, out).ok().map(|_| ())
}

/// Why a text was not read as JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unread {
    /// Not JSON (PostgreSQL's `json` refuses it too).
    NotJson,
    /// Nested deeper than migsafe reads ([`MAX_DEPTH`]); it may be valid.
    TooDeep,
}

impl Unread {
    /// For a misfit: the problem, and what to say beyond its name.
    pub fn problem(self) -> (&'static str, Option<String>) {
        match self {
            Unread::NotJson => ("invalid_json", None),
            Unread::TooDeep => (
                "json_too_deep",
                Some(format!(
                    "nested deeper than {MAX_DEPTH} levels, which migsafe does not read; it may be valid JSON"
                )),
            ),
        }
    }
}

/// What [`canonical`] met on the way that `jsonb` would not keep as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Noted {
    /// The first key given twice in one object (jsonb keeps only the last
    /// of them), decoded.
    pub duplicate_key: Option<String>,
    /// A `\u0000` escape (jsonb refuses it).
    pub nul_escape: bool,
    /// Something else `json` keeps but `jsonb` refuses: a number beyond
    /// numeric's range, a lone UTF-16 surrogate escape.
    pub jsonb_refuses: Option<&'static str>,
}

impl Noted {
    /// Whether jsonb stores this document as it means.
    pub fn fits_jsonb(&self) -> bool {
        self.duplicate_key.is_none() && !self.nul_escape && self.jsonb_refuses.is_none()
    }
}

/// [`canonical`], also saying what it met that jsonb refuses or changes:
/// the SQLite side of verify checks a value and writes its canonical form
/// in one pass.
pub fn canonical_noting(text: &[u8], out: &mut Vec<u8>) -> Result<Noted, Unread> {
    let start = out.len();
    // The parser's stacks are kept per thread: verify calls this for every
    // JSON value, and allocating them each time was a tenth of its work.
    let (members, keys, scratch) = SPARE.with(|spare| std::mem::take(&mut *spare.borrow_mut()));
    let mut parser = Parser {
        text,
        at: 0,
        noted: Noted::default(),
        members,
        keys,
        scratch,
        too_deep: false,
    };
    let done = parser.value(out, 0).and_then(|()| {
        parser.skip_space();
        (parser.at == text.len()).then(|| std::mem::take(&mut parser.noted))
    });
    if done.is_none() {
        out.truncate(start);
    }
    let done = done.ok_or(if parser.too_deep {
        Unread::TooDeep
    } else {
        Unread::NotJson
    });
    let Parser {
        mut members,
        mut keys,
        mut scratch,
        ..
    } = parser;
    members.clear();
    keys.clear();
    scratch.clear();
    // A huge document's copy is not kept for the rest of the run.
    if scratch.capacity() > 1 << 20 {
        scratch = Vec::new();
    }
    SPARE.with(|spare| *spare.borrow_mut() = (members, keys, scratch));
    done
}

type Stacks = (Vec<Member>, Vec<u8>, Vec<u8>);

thread_local! {
    static SPARE: std::cell::RefCell<Stacks> = const { std::cell::RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
}

/// A member of an object being read.
#[derive(Clone, Copy)]
struct Member {
    /// Where it starts and ends in `out` (`"key": value`).
    begin: usize,
    end: usize,
    /// Where its decoded key is in `Parser::keys`.
    key: (usize, usize),
}

struct Parser<'a> {
    text: &'a [u8],
    at: usize,
    noted: Noted,
    /// The members of the objects being read (nested objects push theirs
    /// above and take them off before returning).
    members: Vec<Member>,
    /// Their keys, decoded: what jsonb orders by.
    keys: Vec<u8>,
    /// An object's members as written, while they are put in order.
    scratch: Vec<u8>,
    /// Given up for nesting, not for syntax.
    too_deep: bool,
}

/// jsonb's order of object members: shorter keys first, then by their
/// bytes (`lengthCompareJsonbString`), on the decoded keys.
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
        if depth >= MAX_DEPTH {
            self.too_deep = true;
            return None;
        }
        self.skip_space();
        match self.peek()? {
            b'{' => self.object(out, depth),
            b'[' => self.array(out, depth),
            b'"' => self.string(out, false),
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
                    out.extend_from_slice(b", ");
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
        let base = self.members.len();
        let keys_base = self.keys.len();
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
            let key_start = self.keys.len();
            self.string(out, true)?;
            let key = (key_start, self.keys.len());
            self.skip_space();
            if self.peek()? != b':' {
                return None;
            }
            self.at += 1;
            out.extend_from_slice(b": ");
            self.value(out, depth + 1)?;
            self.members.push(Member {
                begin,
                end: out.len(),
                key,
            });
            self.skip_space();
            match self.peek()? {
                b',' => {
                    self.at += 1;
                    out.extend_from_slice(b", ");
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
        let keys = &self.keys;
        let key = |m: &Member| &keys[m.key.0..m.key.1];
        let sorted = mine
            .windows(2)
            .all(|w| key_order(key(&w[0]), key(&w[1])).is_le());
        if !sorted {
            // Stable: a key given twice keeps its order.
            mine.sort_by(|a, b| key_order(key(a), key(b)));
        }
        // Sorted, a key given twice is next to itself.
        if self.noted.duplicate_key.is_none()
            && let Some(w) = mine.windows(2).find(|w| key(&w[0]) == key(&w[1]))
        {
            self.noted.duplicate_key = Some(String::from_utf8_lossy(key(&w[0])).into_owned());
        }
        if !sorted {
            self.scratch.clear();
            self.scratch.extend_from_slice(&out[body..]);
            out.truncate(body);
            for (i, member) in mine.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                out.extend_from_slice(&self.scratch[member.begin - body..member.end - body]);
            }
        }
        members.truncate(base);
        self.members = members;
        self.keys.truncate(keys_base);
        out.push(b'}');
        Some(())
    }

    /// A string, decoded, written back with `escape_json`'s escapes; a key
    /// is also kept decoded in `keys`.
    fn string(&mut self, out: &mut Vec<u8>, key: bool) -> Option<()> {
        self.at += 1;
        out.push(b'"');
        loop {
            // Copy the plain run in one go.
            let run = self.text[self.at..]
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
            let plain = &self.text[self.at..self.at + run];
            out.extend_from_slice(plain);
            if key {
                self.keys.extend_from_slice(plain);
            }
            self.at += run;
            match self.text[self.at] {
                b'"' => {
                    self.at += 1;
                    out.push(b'"');
                    return Some(());
                }
                b'\\' => {
                    let escape_at = self.at;
                    let escape = *self.text.get(self.at + 1)?;
                    self.at += 2;
                    let decoded = match escape {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => match self.unicode()? {
                            Some(decoded) => {
                                self.noted.nul_escape |= decoded == '\0';
                                decoded
                            }
                            // A lone surrogate: `json` keeps it as written,
                            // jsonb refuses it (so it is never compared).
                            None => {
                                self.noted.jsonb_refuses.get_or_insert(
                                    "a lone UTF-16 surrogate escape (\\uD800-\\uDFFF without its pair)",
                                );
                                let written = &self.text[escape_at..self.at];
                                out.extend_from_slice(written);
                                if key {
                                    self.keys.extend_from_slice(written);
                                }
                                continue;
                            }
                        },
                        _ => return None,
                    };
                    let mut utf8 = [0u8; 4];
                    let bytes = decoded.encode_utf8(&mut utf8).as_bytes();
                    if key {
                        self.keys.extend_from_slice(bytes);
                    }
                    escape_char(decoded, bytes, out);
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

    /// The code point of `\uXXXX` (after the `u`), surrogate pairs joined;
    /// `Some(None)` for a surrogate without its pair (valid `json`, not
    /// valid `jsonb`), `None` for what is not an escape at all.
    fn unicode(&mut self) -> Option<Option<char>> {
        let first = self.hex4()?;
        if (0xD800..0xDC00).contains(&first) {
            let after = self.at;
            if self.text.get(self.at..self.at + 2) == Some(b"\\u") {
                self.at += 2;
                if let Some(second) = self.hex4()
                    && (0xDC00..0xE000).contains(&second)
                {
                    return Some(char::from_u32(
                        0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00),
                    ));
                }
            }
            // Not a pair: the next escape is read on its own.
            self.at = after;
            Some(None)
        } else {
            Some(char::from_u32(first))
        }
    }

    /// A number as `numeric_out` prints it: `-12.50` stays `-12.50`,
    /// `1e2` is `100`, `2.5E-3` `0.0025`, `-0` `0`, `0.00000e2` `0.000`.
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
        let written = &self.text[if negative { int_start - 1 } else { int_start }..self.at];
        // Valid JSON that numeric cannot hold: `json` keeps it, jsonb
        // refuses it (and it is never written out digit by digit).
        let beyond = |parser: &mut Self, out: &mut Vec<u8>| {
            parser.noted.jsonb_refuses.get_or_insert(
                "a number beyond numeric's range (131,072 digits before the point, 16,383 after)",
            );
            out.extend_from_slice(written);
            Some(())
        };
        if exponent.abs() >= NUMERIC_MAX_EXPONENT {
            return beyond(self, out);
        }
        // No exponent, no scale to work out: already as numeric prints it
        // (`-0` and `-0.0` aside, numeric has no negative zero).
        if exponent == 0 && !(negative && int.iter().chain(frac).all(|&d| d == b'0')) {
            if negative {
                out.push(b'-');
            }
            out.extend_from_slice(int);
            if !frac.is_empty() {
                out.push(b'.');
                out.extend_from_slice(frac);
            }
            return Some(());
        }
        // numeric's display scale: the digits it prints after the point.
        let scale = (frac.len() as i64).saturating_sub(exponent).max(0);
        if scale > NUMERIC_MAX_SCALE {
            return beyond(self, out);
        }
        let scale = scale as usize;
        // The significant digits (integer part and fraction, leading zeros
        // off) and where the point goes among them.
        let digits: Vec<u8> = int.iter().chain(frac).copied().collect();
        let leading = digits.iter().take_while(|&&d| d == b'0').count();
        let digits = &digits[leading..];
        if digits.is_empty() {
            out.push(b'0');
            if scale > 0 {
                out.push(b'.');
                out.resize(out.len() + scale, b'0');
            }
            return Some(());
        }
        // The value is 0.digits × 10^point.
        let point = int.len() as i64 + exponent - leading as i64;
        if point > NUMERIC_MAX_WEIGHT_DIGITS {
            return beyond(self, out);
        }
        if negative {
            out.push(b'-');
        }
        let digit_at = |i: i64| {
            usize::try_from(i)
                .ok()
                .and_then(|i| digits.get(i).copied())
                .unwrap_or(b'0')
        };
        if point <= 0 {
            out.push(b'0');
        } else {
            for i in 0..point {
                out.push(digit_at(i));
            }
        }
        if scale > 0 {
            out.push(b'.');
            for i in 0..scale as i64 {
                out.push(digit_at(point + i));
            }
        }
        Some(())
    }
}

/// One decoded character of a string as `escape_json` writes it.
fn escape_char(c: char, utf8: &[u8], out: &mut Vec<u8>) {
    match c {
        '"' => out.extend_from_slice(b"\\\""),
        '\\' => out.extend_from_slice(b"\\\\"),
        '\u{8}' => out.extend_from_slice(b"\\b"),
        '\u{c}' => out.extend_from_slice(b"\\f"),
        '\n' => out.extend_from_slice(b"\\n"),
        '\r' => out.extend_from_slice(b"\\r"),
        '\t' => out.extend_from_slice(b"\\t"),
        c if (c as u32) < 0x20 => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let n = c as usize;
            out.extend_from_slice(b"\\u00");
            out.push(HEX[n >> 4]);
            out.push(HEX[n & 15]);
        }
        _ => out.extend_from_slice(utf8),
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
        assert_eq!(canon("-12.50").as_deref(), Some("-12.50"));
        assert_eq!(canon("0.003").as_deref(), Some("0.003"));
        assert_eq!(canon("1e2").as_deref(), Some("100"));
        assert_eq!(canon("-0.0").as_deref(), Some("0.0"));
        assert_eq!(canon("0.00000e2").as_deref(), Some("0.000"));
        assert_eq!(canon("1.5e1").as_deref(), Some("15"));
        assert_eq!(canon("1e-3").as_deref(), Some("0.001"));
        // Beyond numeric: valid JSON, noted as refused by jsonb.
        let refused = |t: &str| {
            canonical_noting(t.as_bytes(), &mut Vec::new()).map(|n| n.jsonb_refuses.is_some())
        };
        assert_eq!(refused("1e-16384"), Ok(true));
        assert_eq!(refused("0e-16384"), Ok(true));
        assert_eq!(refused("1.5e-16383"), Ok(true));
        assert_eq!(refused("1e2147483648"), Ok(true));
        assert_eq!(refused("0e131073"), Ok(false));
        assert_eq!(refused("0.0000001e131078"), Ok(false));
        assert_eq!(refused("1e-16383"), Ok(false));
        assert_eq!(refused(r#"{"name": "\ud800"}"#), Ok(true));
        assert_eq!(refused(r#""\udc00\u0041""#), Ok(true));
        assert_eq!(refused(r#""\ud83c\udf89""#), Ok(false));
        let deep = format!("{}{}", "[".repeat(600), "]".repeat(600));
        assert_eq!(
            canonical_noting(deep.as_bytes(), &mut Vec::new()),
            Err(Unread::TooDeep)
        );
        assert_eq!(
            canonical_noting(b"[1,]", &mut Vec::new()),
            Err(Unread::NotJson)
        );
        assert_eq!(canon("1e3").as_deref(), Some("1000"));
        assert_eq!(
            canon("12345678901234567890.123e-5").as_deref(),
            Some("123456789012345.67890123")
        );
    }

    #[test]
    fn keys_given_twice_and_nul_escapes_are_noted() {
        let noted = |t: &str| canonical_noting(t.as_bytes(), &mut Vec::new()).ok();
        let twice = |t: &str| noted(t).map(|n| n.duplicate_key.is_some());
        assert_eq!(twice(r#"{"a":1,"a":2}"#), Some(true));
        assert_eq!(twice(r#"{"b":1,"a":2,"b":3}"#), Some(true));
        assert_eq!(twice(r#"[{"x":{"b":1,"b":2}}]"#), Some(true));
        // The same key once escaped and once not.
        assert_eq!(twice(r#"{"a":1,"\u0061":2}"#), Some(true));
        assert_eq!(twice(r#"{"a":{"a":1},"b":[{"a":2}]}"#), Some(false));
        assert_eq!(twice(r#"{"ab":1,"a":2,"b":3}"#), Some(false));
        assert_eq!(twice("1e2"), Some(false));
        assert_eq!(
            noted(r#"{"b":1,"\u0061":2,"a":3}"#).and_then(|n| n.duplicate_key),
            Some("a".to_string())
        );
        let nul = |t: &str| noted(t).map(|n| n.nul_escape);
        assert_eq!(nul(r#"{"a":"x\u0000y"}"#), Some(true));
        assert_eq!(nul(r#"["\\u0000"]"#), Some(false));
        assert_eq!(nul(r#""\u0001""#), Some(false));
        assert_eq!(noted("{"), None);
    }
}
