//! Script text normalisation and checksums (SPEC section 2).
//!
//! A Windows checkout (CRLF, BOM) must not look "modified": the checksum is the
//! SHA-256 of the text after removing a UTF-8 BOM and turning CRLF into LF, and
//! the same normalised text is what runs on the server.

use sha2::{Digest, Sha256};

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Decodes script bytes into normalised text, or says where the first byte that
/// is not UTF-8 is (1-based line, 0-based byte offset in the file).
pub fn normalize(bytes: &[u8]) -> Result<String, String> {
    let body = bytes.strip_prefix(BOM).unwrap_or(bytes);
    match std::str::from_utf8(body) {
        Ok(text) => Ok(if text.contains("\r\n") {
            text.replace("\r\n", "\n")
        } else {
            text.to_string()
        }),
        Err(err) => {
            let offset = err.valid_up_to();
            let line = body[..offset].iter().filter(|b| **b == b'\n').count() + 1;
            let file_offset = offset + (bytes.len() - body.len());
            Err(format!(
                "is not valid UTF-8 (first invalid byte at line {line}, byte offset {file_offset}); save it as UTF-8"
            ))
        }
    }
}

/// SHA-256 (lower-case hex) of normalised script text.
pub fn checksum(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// True when the text has something besides whitespace and `--` comment lines.
pub fn has_sql(text: &str) -> bool {
    text.lines().any(|line| {
        let line = line.trim();
        !line.is_empty() && !line.starts_with("--")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bom_and_crlf_do_not_change_the_checksum() {
        let unix = normalize(b"CREATE TABLE t (id int);\nSELECT 1;\n").unwrap();
        let windows = normalize(b"\xEF\xBB\xBFCREATE TABLE t (id int);\r\nSELECT 1;\r\n").unwrap();
        assert_eq!(checksum(&unix), checksum(&windows));
        assert_eq!(unix, windows);
    }

    #[test]
    fn checksum_is_sha256_hex() {
        assert_eq!(
            checksum(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn non_utf8_names_the_position() {
        let err = normalize(b"SELECT 1;\nSELECT '\xff';\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn comment_only_text_has_no_sql() {
        assert!(!has_sql("\n-- nothing here\n   \n"));
        assert!(has_sql("-- x\nSELECT 1;"));
    }
}
