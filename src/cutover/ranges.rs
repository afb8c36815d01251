//! How verify cuts one table into slices that are hashed at the same time.
//!
//! A table's content hash is a sum of row hashes (mod 2^128) and its key
//! buckets are sums too, so the hash of a table is the sum of the hashes of
//! any slices that together hold each row exactly once. The two sides are
//! cut independently, each where cutting is cheap and exact:
//!
//! - SQLite by rowid (`WHERE rowid BETWEEN ?1 AND ?2`, a range walk of the
//!   table's b-tree); the first slice starts at `i64::MIN` and the last ends
//!   at `i64::MAX`, so every row is in exactly one whatever the file holds.
//!   A `WITHOUT ROWID` table is read in one stream.
//! - PostgreSQL by heap block (`WHERE ctid >= '(a,0)' AND ctid < '(b,0)'`, a
//!   TID range scan: each slice reads only its own blocks, with no index and
//!   whatever the key). The last slice has no end, so rows in blocks added
//!   after the size was read are still counted once. Only ordinary tables
//!   are cut (a partitioned table's blocks are its partitions').
//!
//! The cut points are even over the rowid span and the heap's blocks: a
//! file whose rowids cluster at the ends gets uneven slices, never wrong ones.

/// Rows below which a SQLite table is read in one stream.
pub const MIN_SLICE_ROWS: u64 = 100_000;
/// Heap blocks (8 kB each) below which a target table is read in one stream.
pub const MIN_SLICE_BLOCKS: u64 = 1_024;

/// The target table's heap size in blocks, for an ordinary table (`None`
/// for anything else: partitioned tables, views), and only on PostgreSQL 14
/// and later: before 14 there is no TID range scan, and each block slice
/// would read the whole table.
pub const TARGET_BLOCKS: &str = "
SELECT pg_relation_size(c.oid) / current_setting('block_size')::bigint
FROM pg_class c
WHERE c.oid = $1::text::regclass AND c.relkind = 'r'
  AND current_setting('server_version_num')::int >= 140000";

/// A slice of a SQLite table by rowid, both bounds included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowidSlice {
    /// First rowid of the slice.
    pub first: i64,
    /// Last rowid of the slice.
    pub last: i64,
}

/// A slice of a target table's heap: blocks `start..end`, to the end of
/// the table when `end` is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSlice {
    /// First block.
    pub start: u64,
    /// Block after the last one, or the end of the table.
    pub end: Option<u64>,
}

/// How many slices a table of `size` gets: one per `minimum`, at most `most`.
pub fn slices(size: u64, minimum: u64, most: usize) -> usize {
    let wanted = usize::try_from(size / minimum.max(1)).unwrap_or(usize::MAX);
    wanted.clamp(1, most.max(1))
}

/// `parts` rowid slices that cover every possible rowid, cut evenly
/// between the table's smallest and largest rowid.
pub fn rowid_slices(min: i64, max: i64, parts: usize) -> Vec<RowidSlice> {
    let parts = parts.max(1);
    let (min, max) = (i128::from(min.min(max)), i128::from(max.max(min)));
    let span = max - min + 1;
    let mut out = Vec::with_capacity(parts);
    let mut first = i64::MIN;
    for i in 1..parts {
        // i128: no overflow whatever the rowids.
        let cut = min + span * i as i128 / parts as i128;
        let Ok(cut) = i64::try_from(cut) else { break };
        if cut <= first {
            continue;
        }
        out.push(RowidSlice {
            first,
            last: cut - 1,
        });
        first = cut;
    }
    out.push(RowidSlice {
        first,
        last: i64::MAX,
    });
    out
}

/// `parts` block slices of a heap of `blocks` blocks, the last one open.
pub fn block_slices(blocks: u64, parts: usize) -> Vec<BlockSlice> {
    let parts = parts.max(1) as u64;
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..parts {
        let cut = blocks * i / parts;
        if cut <= start {
            continue;
        }
        out.push(BlockSlice {
            start,
            end: Some(cut),
        });
        start = cut;
    }
    out.push(BlockSlice { start, end: None });
    out
}

/// The smallest and largest rowid of a SQLite table (`None` when empty).
/// Two subqueries, each answered from the end of the b-tree: SQLite only
/// does that for a lone `min()` or `max()`, and `SELECT min(r), max(r)`
/// reads the whole table (half a second on a 1.1 M-row table).
pub fn rowid_bounds(
    db: &rusqlite::Connection,
    table: &str,
    rowid: &str,
) -> rusqlite::Result<(Option<i64>, Option<i64>)> {
    let table = super::sqlite::quote(table);
    db.query_row(
        &format!("SELECT (SELECT min({rowid}) FROM {table}), (SELECT max({rowid}) FROM {table})"),
        [],
        |r| Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, Option<i64>>(1)?)),
    )
}

/// The rowid slices of a big SQLite table, `most` at most, for work that
/// adds up over slices (counts, sums); `None` when one stream will do.
pub fn source_slices(
    db: &rusqlite::Connection,
    table: &str,
    rowid: &str,
    most: usize,
) -> rusqlite::Result<Option<Vec<RowidSlice>>> {
    let (Some(min), Some(max)) = rowid_bounds(db, table, rowid)? else {
        return Ok(None);
    };
    let span = u64::try_from(i128::from(max) - i128::from(min) + 1).unwrap_or(u64::MAX);
    let parts = slices(span, MIN_SLICE_ROWS, most);
    Ok((parts > 1).then(|| rowid_slices(min, max, parts)))
}

/// Runs `work` on every slice, each on its own thread with its own
/// connection to the SQLite file at `path`: the results in slice order.
pub fn on_threads<T: Send>(
    path: &std::path::Path,
    slices: &[RowidSlice],
    work: impl Fn(&rusqlite::Connection, RowidSlice) -> crate::error::Result<T> + Sync,
) -> Vec<crate::error::Result<T>> {
    std::thread::scope(|scope| {
        let running: Vec<_> = slices
            .iter()
            .map(|slice| {
                let work = &work;
                scope.spawn(move || work(&super::sqlite::open(path)?, *slice))
            })
            .collect();
        running
            .into_iter()
            .map(|thread| {
                thread.join().unwrap_or_else(|_| {
                    Err(crate::error::Error::config(
                        crate::error::Code::Io,
                        "a SQLite reader thread failed",
                    ))
                })
            })
            .collect()
    })
}

/// Threads for slices of SQLite work: the cores, at most four.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// The `WHERE` of a SQLite slice, with its bounds as `?1` and `?2`.
pub fn rowid_filter(rowid: &str) -> String {
    format!(" WHERE {rowid} BETWEEN ?1 AND ?2")
}

/// The `WHERE` of a target slice (block numbers are integers: nothing to
/// quote), or nothing for the whole table.
pub fn block_filter(slice: &BlockSlice) -> String {
    match (slice.start, slice.end) {
        (0, None) => String::new(),
        (0, Some(end)) => format!(" WHERE ctid < '({end},0)'::tid"),
        (start, None) => format!(" WHERE ctid >= '({start},0)'::tid"),
        (start, Some(end)) => {
            format!(" WHERE ctid >= '({start},0)'::tid AND ctid < '({end},0)'::tid")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rowid_slices_cover_every_rowid_once() {
        for (min, max, parts) in [
            (1, 1_000_000, 4),
            (1, 3, 8),
            (5, 5, 4),
            (i64::MIN, i64::MAX, 3),
            (-10, 10, 2),
            (1, 1_000, 1),
        ] {
            let slices = rowid_slices(min, max, parts);
            assert!(slices.len() <= parts, "{min} {max} {parts}: {slices:?}");
            assert_eq!(slices[0].first, i64::MIN);
            assert_eq!(slices[slices.len() - 1].last, i64::MAX);
            for pair in slices.windows(2) {
                assert!(pair[0].first <= pair[0].last, "{slices:?}");
                assert_eq!(pair[0].last + 1, pair[1].first, "{slices:?}");
            }
        }
        assert_eq!(
            rowid_slices(1, 100, 2),
            [
                RowidSlice {
                    first: i64::MIN,
                    last: 50
                },
                RowidSlice {
                    first: 51,
                    last: i64::MAX
                }
            ]
        );
    }

    #[test]
    fn block_slices_cover_every_block_once() {
        assert_eq!(
            block_slices(0, 4),
            [BlockSlice {
                start: 0,
                end: None
            }]
        );
        let cut = block_slices(10_000, 4);
        assert_eq!(cut.len(), 4);
        assert_eq!(cut[0].start, 0);
        assert_eq!(cut[3].end, None);
        for pair in cut.windows(2) {
            assert_eq!(pair[0].end, Some(pair[1].start));
        }
        assert_eq!(block_filter(&cut[0]), " WHERE ctid < '(2500,0)'::tid");
        assert_eq!(block_filter(&cut[3]), " WHERE ctid >= '(7500,0)'::tid");
        assert_eq!(slices(50, MIN_SLICE_BLOCKS, 4), 1);
        assert_eq!(slices(1_000_000, 100_000, 4), 4);
        assert_eq!(slices(250_000, 100_000, 4), 2);
    }
}
