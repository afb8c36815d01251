//! Rows out of a `COPY … TO STDOUT (FORMAT binary)` stream, read in place.
//!
//! Verify reads every row of the target once and only looks at each field's
//! bytes, so the rows are parsed straight out of the messages the server
//! sends: no allocation per row (tokio-postgres' `BinaryCopyOutStream`
//! makes two), and a row split across messages is put back together.

/// The 11 bytes a binary COPY stream starts with.
const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// Why a stream is not the binary COPY verify asked for.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Malformed(pub String);

/// One row: its fields as the server sent them (`None` for NULL).
pub(super) struct Fields<'a> {
    data: &'a [u8],
    spans: &'a [Option<(usize, usize)>],
}

impl<'a> Fields<'a> {
    pub(super) fn len(&self) -> usize {
        self.spans.len()
    }

    pub(super) fn get(&self, index: usize) -> Option<&'a [u8]> {
        self.spans[index].map(|(start, end)| &self.data[start..end])
    }

    /// All of them, for the rare passes that keep rows.
    pub(super) fn to_vec(&self) -> Vec<Option<&'a [u8]>> {
        (0..self.len()).map(|i| self.get(i)).collect()
    }
}

/// Reads a binary COPY stream message by message.
pub(super) struct CopyRows {
    columns: usize,
    header_read: bool,
    ended: bool,
    /// The start of a row the last message did not finish.
    carry: Vec<u8>,
    spans: Vec<Option<(usize, usize)>>,
}

impl CopyRows {
    pub(super) fn new(columns: usize) -> CopyRows {
        CopyRows {
            columns,
            header_read: false,
            ended: false,
            carry: Vec::new(),
            spans: Vec::with_capacity(columns),
        }
    }

    /// Hands each complete row of `message` (with what earlier ones left)
    /// to `each`. `each` may stop the read with its own error.
    pub(super) fn feed<E>(
        &mut self,
        message: &[u8],
        mut each: impl FnMut(Fields<'_>) -> Result<(), E>,
    ) -> Result<(), Stop<E>> {
        let mut carry = std::mem::take(&mut self.carry);
        let data: &[u8] = if carry.is_empty() {
            message
        } else {
            carry.extend_from_slice(message);
            &carry
        };
        let mut at = 0;
        if !self.header_read {
            match header_length(data).map_err(Stop::Malformed)? {
                Some(length) => {
                    at = length;
                    self.header_read = true;
                }
                None => {
                    self.carry = data.to_vec();
                    return Ok(());
                }
            }
        }
        while at < data.len() {
            if self.ended {
                return Err(Stop::Malformed(Malformed(
                    "data after the end of the COPY stream".into(),
                )));
            }
            match self.row(data, at).map_err(Stop::Malformed)? {
                Parsed::Row(next) => {
                    each(Fields {
                        data,
                        spans: &self.spans,
                    })
                    .map_err(Stop::Stopped)?;
                    at = next;
                }
                Parsed::End(next) => {
                    self.ended = true;
                    at = next;
                }
                Parsed::Partial => break,
            }
        }
        let rest = &data[at..];
        if !rest.is_empty() {
            let rest = rest.to_vec();
            carry.clear();
            self.carry = rest;
        } else {
            carry.clear();
            // Keep the buffer's capacity for the next split row.
            self.carry = carry;
        }
        Ok(())
    }

    /// Whether the stream ended as a binary COPY stream does: with its
    /// trailer, and no row cut short.
    pub(super) fn finish(&self) -> Result<(), Malformed> {
        if self.ended && self.carry.is_empty() {
            Ok(())
        } else {
            Err(Malformed(
                "the COPY stream ended in the middle of a row".into(),
            ))
        }
    }

    fn row(&mut self, data: &[u8], mut at: usize) -> Result<Parsed, Malformed> {
        let Some(count) = read_i16(data, at) else {
            return Ok(Parsed::Partial);
        };
        at += 2;
        if count == -1 {
            return Ok(Parsed::End(at));
        }
        if usize::try_from(count).ok() != Some(self.columns) {
            return Err(Malformed(format!(
                "a row of {count} fields where {} were asked for",
                self.columns
            )));
        }
        self.spans.clear();
        for _ in 0..self.columns {
            let Some(length) = read_i32(data, at) else {
                return Ok(Parsed::Partial);
            };
            at += 4;
            if length == -1 {
                self.spans.push(None);
                continue;
            }
            let Ok(length) = usize::try_from(length) else {
                return Err(Malformed(format!("a field of length {length}")));
            };
            if data.len() - at < length {
                return Ok(Parsed::Partial);
            }
            self.spans.push(Some((at, at + length)));
            at += length;
        }
        Ok(Parsed::Row(at))
    }
}

/// Why [`CopyRows::feed`] stopped.
pub(super) enum Stop<E> {
    Malformed(Malformed),
    Stopped(E),
}

enum Parsed {
    /// A row, and where the next one starts.
    Row(usize),
    /// The trailer, and where it ends.
    End(usize),
    /// The row goes on in the next message.
    Partial,
}

/// The length of the header at the start of `data`; `None` while it is
/// not all there yet.
fn header_length(data: &[u8]) -> Result<Option<usize>, Malformed> {
    let fixed = SIGNATURE.len() + 8;
    if data.len() < fixed {
        return if SIGNATURE.starts_with(&data[..data.len().min(SIGNATURE.len())]) {
            Ok(None)
        } else {
            Err(Malformed("not a binary COPY stream".into()))
        };
    }
    if &data[..SIGNATURE.len()] != SIGNATURE {
        return Err(Malformed("not a binary COPY stream".into()));
    }
    let flags = read_i32(data, SIGNATURE.len()).unwrap_or(0);
    if flags & (1 << 16) != 0 {
        return Err(Malformed("the COPY stream carries OIDs".into()));
    }
    let extension = read_i32(data, SIGNATURE.len() + 4).unwrap_or(0);
    let Ok(extension) = usize::try_from(extension) else {
        return Err(Malformed(format!(
            "a header extension of {extension} bytes"
        )));
    };
    if data.len() < fixed + extension {
        return Ok(None);
    }
    Ok(Some(fixed + extension))
}

fn read_i16(data: &[u8], at: usize) -> Option<i16> {
    let bytes = data.get(at..at + 2)?;
    Some(i16::from_be_bytes([bytes[0], bytes[1]]))
}

fn read_i32(data: &[u8], at: usize) -> Option<i32> {
    let bytes = data.get(at..at + 4)?;
    Some(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn stream(rows: &[Vec<Option<&[u8]>>]) -> Vec<u8> {
        let mut out = SIGNATURE.to_vec();
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&3i32.to_be_bytes());
        out.extend_from_slice(b"ext");
        for row in rows {
            out.extend_from_slice(&(row.len() as i16).to_be_bytes());
            for field in row {
                match field {
                    None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                    Some(bytes) => {
                        out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
                        out.extend_from_slice(bytes);
                    }
                }
            }
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out
    }

    fn read(messages: &[&[u8]], columns: usize) -> Result<Vec<Vec<Option<Vec<u8>>>>, Malformed> {
        let mut rows = CopyRows::new(columns);
        let mut out = Vec::new();
        for message in messages {
            rows.feed::<()>(message, |fields| {
                out.push(
                    (0..fields.len())
                        .map(|i| fields.get(i).map(<[u8]>::to_vec))
                        .collect(),
                );
                Ok(())
            })
            .map_err(|stop| match stop {
                Stop::Malformed(m) => m,
                Stop::Stopped(()) => Malformed("stopped".into()),
            })?;
        }
        rows.finish()?;
        Ok(out)
    }

    #[test]
    fn rows_come_out_whatever_the_messages_are_cut_into() {
        let rows: Vec<Vec<Option<&[u8]>>> = vec![
            vec![Some(b"1"), None, Some(b"")],
            vec![Some(b"22"), Some(b"a longer field"), None],
            vec![None, None, None],
        ];
        let whole = stream(&rows);
        let expected: Vec<Vec<Option<Vec<u8>>>> = rows
            .iter()
            .map(|r| r.iter().map(|f| f.map(<[u8]>::to_vec)).collect())
            .collect();
        assert_eq!(read(&[&whole], 3).unwrap(), expected);
        // Every place a message boundary can fall, and one byte at a time.
        for cut in 0..=whole.len() {
            let (a, b) = whole.split_at(cut);
            assert_eq!(read(&[a, b], 3).unwrap(), expected, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = whole.chunks(1).collect();
        assert_eq!(read(&bytes, 3).unwrap(), expected);
    }

    #[test]
    fn what_is_not_the_stream_asked_for_is_refused() {
        let whole = stream(&[vec![Some(b"1"), None]]);
        assert!(
            read(&[&whole], 3)
                .unwrap_err()
                .0
                .contains("2 fields where 3")
        );
        assert!(
            read(&[&whole[..whole.len() - 1]], 2)
                .unwrap_err()
                .0
                .contains("middle of a row")
        );
        assert!(
            read(&[b"COPY 1\n"], 2)
                .unwrap_err()
                .0
                .contains("not a binary COPY")
        );
        let mut after = whole.clone();
        after.extend_from_slice(&1i16.to_be_bytes());
        assert!(read(&[&after], 2).unwrap_err().0.contains("after the end"));
        let mut oids = stream(&[]);
        oids[SIGNATURE.len() + 1] = 1;
        assert!(read(&[&oids], 2).unwrap_err().0.contains("OIDs"));
    }
}
