//! Which unit the numbers in each date column are in.
//!
//! SQLite has no date type: applications store Unix time in seconds,
//! milliseconds (JavaScript, Java) or microseconds, or Julian days (SQLite's
//! own `julianday()`), and nothing in the file says which. Reading
//! milliseconds as seconds puts `1704164645123` in the year 55972 — and the
//! verify cannot notice, because it reads both sides through the same
//! conversion. So the unit is decided per column, before anything converts:
//! by `--epoch-unit TABLE.COLUMN=UNIT` when the operator says, else from the
//! values themselves. Each INTEGER votes for the unit it most likely is in
//! ([`EpochUnit::natural`]: a whole Julian day of 1900–2200, else the
//! coarsest Unix unit that puts it in 1900–2200); the unit with most votes
//! wins (seconds on a tie).
//! REAL values are Julian days unless decided otherwise. Precheck reports the
//! unit of every date column that holds numbers; a value that does not fit
//! the unit (outside 1900–2200 in it, or sized like another unit: seconds
//! among milliseconds would land in January 1970) is a misfit
//! ([`super::types::convert`]); the census that decides
//! counts them too, so `run` refuses them before it loads anything.
//! Precheck, run and verify all decide here, from the same file, so they
//! agree.

use std::path::Path;
use std::str::FromStr;

use super::types::{Epoch, EpochUnit};
use super::{Mapping, Problem, ranges, sqlite};
use crate::error::{Code, Error, Result};
use crate::report::Status;

/// `--epoch-unit [TABLE.]COLUMN=UNIT`: the operator's decision for a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochChoice {
    /// The SQLite (or target) table; `None`: that column in every table.
    pub table: Option<String>,
    /// The column.
    pub column: String,
    /// How its numbers are read.
    pub unit: EpochUnit,
}

impl FromStr for EpochChoice {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, Self::Err> {
        let (name, unit) = text.rsplit_once('=').ok_or_else(|| {
            format!("`{text}` is not COLUMN=UNIT (for example events.created_at=ms)")
        })?;
        let unit = EpochUnit::parse(unit)
            .ok_or_else(|| format!("`{unit}` is not a unit: use s, ms, us or julian"))?;
        let (table, column) = match name.trim().rsplit_once('.') {
            Some((table, column)) => (Some(table.trim().to_string()), column.trim().to_string()),
            None => (None, name.trim().to_string()),
        };
        if column.is_empty() || table.as_deref().is_some_and(str::is_empty) {
            return Err(format!(
                "`{text}` names no column (for example events.created_at=ms)"
            ));
        }
        Ok(EpochChoice {
            table,
            column,
            unit,
        })
    }
}

impl EpochChoice {
    fn matches(&self, table: &super::TableMap, column: &super::ColumnMap) -> bool {
        let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        (same(&self.column, &column.source) || same(&self.column, &column.target))
            && self
                .table
                .as_deref()
                .is_none_or(|t| same(t, &table.source) || same(t, &table.target))
    }

    fn shown(&self) -> String {
        match &self.table {
            Some(table) => format!("{table}.{}={}", self.column, self.unit.as_str()),
            None => format!("{}={}", self.column, self.unit.as_str()),
        }
    }
}

/// What the numbers of one date column look like.
#[derive(Debug, Default)]
struct Census {
    integers: u64,
    /// Integers by the unit they most likely are in, in
    /// [`EpochUnit::CANDIDATES`] order (Julian days, seconds, ms, µs).
    natural: [u64; 4],
    reals: u64,
    /// REALs that are Julian days of 1900–2200.
    julian: u64,
    /// REALs that are not, but are Unix seconds of 1900–2200.
    real_seconds: u64,
    /// REALs by the unit they most likely are in, as [`Census::natural`]:
    /// a decided unit must fit them too.
    real_natural: [u64; 4],
}

/// Refuses choices that name no column of the SQLite file at all: `run`
/// checks this before it writes anything (whether the column is a date
/// column is known once the target schema is).
pub fn check_names(choices: &[EpochChoice], tables: &[sqlite::SourceTable]) -> Result<()> {
    for choice in choices {
        let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        let found = tables.iter().any(|t| {
            choice
                .table
                .as_deref()
                .is_none_or(|name| same(name, &t.name))
                && t.columns.iter().any(|c| same(c, &choice.column))
        });
        if !found {
            return Err(Error::config(
                Code::Usage,
                format!(
                    "--epoch-unit {} names no column of the SQLite file",
                    choice.shown()
                ),
            ));
        }
    }
    Ok(())
}

/// Decides the unit of every date column of the mapping (in place) and
/// says what was decided, per column holding numbers. A choice that names
/// no date column is a usage error: a typo must not go unnoticed.
pub fn decide(path: &Path, mapping: &mut Mapping, choices: &[EpochChoice]) -> Result<Vec<Problem>> {
    for choice in choices {
        let mut matched = false;
        for table in &mapping.tables {
            for column in &table.columns {
                if choice.matches(table, column) {
                    matched = true;
                    if column.kind.epoch().is_none() {
                        return Err(Error::config(
                            Code::Usage,
                            format!(
                                "--epoch-unit {}: `{}.{}` is a {} column, not a date column",
                                choice.shown(),
                                table.source,
                                column.source,
                                column.type_display
                            ),
                        ));
                    }
                }
            }
        }
        if !matched {
            let dates: Vec<String> = mapping
                .tables
                .iter()
                .flat_map(|t| {
                    t.columns
                        .iter()
                        .filter(|c| c.kind.epoch().is_some())
                        .map(move |c| format!("{}.{}", t.source, c.source))
                })
                .collect();
            return Err(Error::config(
                Code::Usage,
                format!(
                    "--epoch-unit {} names no date column of the cutover (its date columns: {})",
                    choice.shown(),
                    if dates.is_empty() {
                        "none".to_string()
                    } else {
                        dates.join(", ")
                    }
                ),
            ));
        }
    }
    let db = sqlite::open(path)?;
    let mut problems = Vec::new();
    for table in &mut mapping.tables {
        let dates: Vec<usize> = (0..table.columns.len())
            .filter(|&i| table.columns[i].kind.epoch().is_some())
            .collect();
        if dates.is_empty() {
            continue;
        }
        let censuses = census(&db, path, table, &dates)?;
        for (&index, census) in dates.iter().zip(censuses) {
            let choice = choices
                .iter()
                .rev()
                .find(|c| c.matches(table, &table.columns[index]));
            let column = &mut table.columns[index];
            let epoch = match choice {
                Some(choice) => Epoch::decided(choice.unit),
                None => Epoch {
                    integer: detected(&census),
                    ..Epoch::default()
                },
            };
            column.kind = column.kind.with_epoch(epoch);
            if census.integers + census.reals == 0 {
                continue;
            }
            let (status, detail) = describe(&table.source, &column.source, &census, epoch);
            let mut problem = Problem::about(
                Code::CutoverEpochUnit,
                status,
                &table.source,
                Some(&column.source),
                "epoch_unit",
                detail,
            );
            problem.count = census.integers + census.reals;
            problems.push(problem);
        }
    }
    Ok(problems)
}

/// The unit most integers fit; on a tie seconds, then the finer Unix
/// units, then Julian days; seconds when none fits.
fn detected(census: &Census) -> EpochUnit {
    let votes = |unit: EpochUnit| {
        EpochUnit::CANDIDATES
            .iter()
            .position(|u| *u == unit)
            .map_or(0, |i| census.natural[i])
    };
    let mut best = (EpochUnit::Seconds, 0);
    for unit in [
        EpochUnit::Seconds,
        EpochUnit::Millis,
        EpochUnit::Micros,
        EpochUnit::Julian,
    ] {
        if votes(unit) > best.1 {
            best = (unit, votes(unit));
        }
    }
    best.0
}

fn describe(table: &str, column: &str, census: &Census, epoch: Epoch) -> (Status, String) {
    let switch = format!("--epoch-unit {table}.{column}=s|ms|us|julian");
    let mut status = Status::Pass;
    let mut parts = Vec::new();
    if census.integers > 0 {
        let how = if epoch.decided {
            "--epoch-unit".to_string()
        } else {
            let votes: Vec<String> = EpochUnit::CANDIDATES
                .iter()
                .zip(&census.natural)
                .filter(|(_, n)| **n > 0)
                .map(|(unit, n)| format!("{n} look like {}", unit.name()))
                .collect();
            let fitting: u64 = census.natural.iter().sum();
            let mut how = format!(
                "detected from the values: {}",
                if votes.is_empty() {
                    "none is a date of 1900-2200 in any unit".to_string()
                } else {
                    votes.join(", ")
                },
            );
            if census.integers > fitting {
                how.push_str(&format!(", {} fit no unit", census.integers - fitting));
            }
            how
        };
        let mut text = format!(
            "{} INTEGER value(s) read as {} ({how})",
            census.integers,
            epoch.integer.describe(),
        );
        let fitting = EpochUnit::CANDIDATES
            .iter()
            .position(|u| *u == epoch.integer)
            .map_or(census.integers, |i| census.natural[i]);
        if fitting < census.integers {
            status = Status::Fail;
            text.push_str(&format!(
                "; {} of them do not fit it (misfits)",
                census.integers - fitting
            ));
        }
        parts.push(text);
    }
    if census.reals > 0 {
        if epoch.decided {
            let mut text = format!(
                "{} REAL value(s) read as {} (--epoch-unit)",
                census.reals,
                epoch.real.describe()
            );
            // A REAL sized like another unit (a Julian day read as ms lands
            // in 1970) is a misfit, as an INTEGER would be.
            let fitting = match EpochUnit::CANDIDATES.iter().position(|u| *u == epoch.real) {
                Some(0) => census.julian,
                Some(i) => census.real_natural[i],
                None => census.reals,
            };
            if fitting < census.reals {
                status = Status::Fail;
                text.push_str(&format!(
                    "; {} of them do not fit it (misfits: sized like another unit, or not a date of 1900-2200)",
                    census.reals - fitting
                ));
            }
            parts.push(text);
        } else {
            let mut text = format!(
                "{} REAL value(s) read as Julian day numbers (SQLite's julianday())",
                census.reals
            );
            if census.julian < census.reals {
                status = Status::Fail;
                text.push_str(&format!(
                    "; {} of them are not a day of 1900-2200 that way",
                    census.reals - census.julian
                ));
                if census.real_seconds > 0 {
                    text.push_str(&format!(
                        ", {} look like Unix seconds: --epoch-unit {table}.{column}=s reads them so",
                        census.real_seconds
                    ));
                }
            }
            parts.push(text);
        }
    }
    let mut detail = parts.join("; ");
    if status == Status::Fail && epoch.decided {
        detail.push_str(". Fix those values in the SQLite file");
    } else if status == Status::Fail {
        detail.push_str(&format!(". Fix those values, or decide with {switch}"));
    } else if !epoch.decided {
        detail.push_str(&format!(". {switch} decides otherwise"));
    }
    (status, detail)
}

/// Counts the numbers of the date columns `dates` of `table`: one read of
/// just those columns (in rowid slices on threads for a big table), each
/// value sorted into its ranges here. Counting in SQL instead (a dozen
/// CASE sums per row) cost more than the verify's whole hash of the table.
fn census(
    db: &rusqlite::Connection,
    path: &Path,
    table: &super::TableMap,
    dates: &[usize],
) -> Result<Vec<Census>> {
    let columns = dates
        .iter()
        .map(|&i| sqlite::quote(&table.columns[i].source))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!("SELECT {columns} FROM {}", sqlite::quote(&table.source));
    let read_error = sqlite::read_error(&table.source, path);
    let count = |db: &rusqlite::Connection, sql: &str, bounds: Option<(i64, i64)>| {
        let mut statement = db.prepare(sql).map_err(&read_error)?;
        let mut rows = match bounds {
            Some((first, last)) => statement.query([first, last]),
            None => statement.query([]),
        }
        .map_err(&read_error)?;
        let mut censuses: Vec<Census> = dates.iter().map(|_| Census::default()).collect();
        while let Some(row) = rows.next().map_err(&read_error)? {
            for (index, census) in censuses.iter_mut().enumerate() {
                census.count(row.get_ref(index).map_err(&read_error)?);
            }
        }
        Ok::<_, Error>(censuses)
    };
    let slices = match table.rowid {
        Some(rowid) => ranges::source_slices(db, &table.source, rowid, ranges::threads())
            .map_err(&read_error)?
            .map(|slices| (rowid, slices)),
        None => None,
    };
    let Some((rowid, slices)) = slices else {
        return count(db, &sql, None);
    };
    let sliced = format!("{sql} WHERE {rowid} BETWEEN ?1 AND ?2");
    let parts = ranges::on_threads(path, &slices, |db, slice| {
        count(db, &sliced, Some((slice.first, slice.last)))
    });
    let mut sums: Vec<Census> = dates.iter().map(|_| Census::default()).collect();
    for part in parts {
        for (sum, census) in sums.iter_mut().zip(part?) {
            sum.add(&census);
        }
    }
    Ok(sums)
}

/// `[low, high)` of a unit as doubles: every bound is below 2^53, so the
/// comparisons are as exact as SQLite's own between a REAL and an INTEGER.
fn real_range(unit: EpochUnit) -> (f64, f64) {
    let (low, high) = unit.integer_range();
    (low as f64, high as f64)
}

/// Julian days of 1900–2200 as REALs (the integer range starts at the
/// first whole day).
const REAL_JULIAN: (f64, f64) = (2_415_020.5, 2_524_593.5);

impl Census {
    /// Counts one value: numbers only (text timestamps are parsed, not
    /// counted). The ranges nest (Julian days in seconds in ms in µs): each
    /// number counts for the first that holds it, as
    /// [`EpochUnit::natural`] decides.
    fn count(&mut self, value: rusqlite::types::ValueRef<'_>) {
        use rusqlite::types::ValueRef;
        let within = |(low, high): (f64, f64), v: f64| v >= low && v < high;
        let natural = |inside: [bool; 4]| {
            [
                inside[0],
                !inside[0] && inside[1],
                !inside[1] && inside[2],
                !inside[2] && inside[3],
            ]
        };
        let add = |counts: &mut [u64; 4], hits: [bool; 4]| {
            for (count, hit) in counts.iter_mut().zip(hits) {
                *count += u64::from(hit);
            }
        };
        match value {
            ValueRef::Integer(i) => {
                self.integers += 1;
                let inside = EpochUnit::CANDIDATES.map(|unit| {
                    let (low, high) = unit.integer_range();
                    (low..high).contains(&i128::from(i))
                });
                add(&mut self.natural, natural(inside));
            }
            ValueRef::Real(v) => {
                self.reals += 1;
                let julian = within(REAL_JULIAN, v);
                let inside = EpochUnit::CANDIDATES.map(|unit| within(real_range(unit), v));
                self.julian += u64::from(julian);
                self.real_seconds += u64::from(!julian && inside[1]);
                add(&mut self.real_natural, natural(inside));
            }
            _ => {}
        }
    }

    /// Adds the census of another slice of the same column.
    fn add(&mut self, other: &Census) {
        self.integers += other.integers;
        self.reals += other.reals;
        self.julian += other.julian;
        self.real_seconds += other.real_seconds;
        for (mine, theirs) in self.natural.iter_mut().zip(other.natural) {
            *mine += theirs;
        }
        for (mine, theirs) in self.real_natural.iter_mut().zip(other.real_natural) {
            *mine += theirs;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The census as SQLite's own comparisons count it: the oracle for
    /// [`Census::count`] (each bound is compared by SQLite, REAL against
    /// INTEGER exactly).
    fn census_by_sqlite(db: &rusqlite::Connection) -> Census {
        let range = |unit: EpochUnit| {
            let (low, high) = unit.integer_range();
            format!("(+v >= {low} AND +v < {high})")
        };
        let julian = "(+v >= 2415020.5 AND +v < 2524593.5)";
        let (jd, s, ms, us) = (
            range(EpochUnit::Julian),
            range(EpochUnit::Seconds),
            range(EpochUnit::Millis),
            range(EpochUnit::Micros),
        );
        let int = "typeof(v) = 'integer'";
        let real = "typeof(v) = 'real'";
        let sums = [
            (int, "1".to_string()),
            (int, jd.clone()),
            (int, format!("NOT {jd} AND {s}")),
            (int, format!("NOT {s} AND {ms}")),
            (int, format!("NOT {ms} AND {us}")),
            (real, "1".to_string()),
            (real, julian.to_string()),
            (real, format!("NOT {julian} AND {s}")),
            (real, jd.clone()),
            (real, format!("NOT {jd} AND {s}")),
            (real, format!("NOT {s} AND {ms}")),
            (real, format!("NOT {ms} AND {us}")),
        ]
        .map(|(class, condition)| {
            format!("coalesce(sum(CASE WHEN {class} THEN ({condition}) ELSE 0 END), 0)")
        })
        .join(", ");
        let n: Vec<u64> = db
            .query_row(&format!("SELECT {sums} FROM t"), [], |row| {
                (0..12)
                    .map(|i| row.get::<_, i64>(i))
                    .collect::<rusqlite::Result<Vec<i64>>>()
            })
            .unwrap()
            .into_iter()
            .map(|v| v as u64)
            .collect();
        Census {
            integers: n[0],
            natural: [n[1], n[2], n[3], n[4]],
            reals: n[5],
            julian: n[6],
            real_seconds: n[7],
            real_natural: [n[8], n[9], n[10], n[11]],
        }
    }

    #[test]
    fn the_census_counts_as_sqlite_compares() {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        db.execute_batch("CREATE TABLE t (v)").unwrap();
        // Every bound of every unit, one either side, as INTEGER and REAL.
        let mut bounds: Vec<f64> = vec![2_415_020.5, 2_524_593.5, 0.0, -1.0, 1e300, -1e300];
        for unit in EpochUnit::CANDIDATES {
            let (low, high) = unit.integer_range();
            bounds.extend([low as f64, high as f64]);
        }
        let mut insert = db.prepare("INSERT INTO t VALUES (?1)").unwrap();
        for bound in bounds {
            for delta in [-1.0, -0.5, -1e-9, 0.0, 1e-9, 0.5, 1.0] {
                let v = bound + delta;
                insert.execute([v]).unwrap();
                if v.fract() == 0.0 && v.abs() < 9e18 {
                    insert.execute([v as i64]).unwrap();
                }
            }
        }
        for v in [i64::MIN, i64::MAX, 1_704_067_200_000, 1_704_067_200_000_000] {
            insert.execute([v]).unwrap();
        }
        insert.execute(["2024-01-01 00:00:00"]).unwrap();
        insert.execute([rusqlite::types::Null]).unwrap();
        insert.execute([vec![1u8, 2]]).unwrap();
        drop(insert);
        let mut ours = Census::default();
        let mut statement = db.prepare("SELECT v FROM t").unwrap();
        let mut rows = statement.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            ours.count(row.get_ref(0).unwrap());
        }
        let theirs = census_by_sqlite(&db);
        assert!(ours.integers > 20 && ours.reals > 50, "{ours:?}");
        assert_eq!(format!("{ours:?}"), format!("{theirs:?}"));
    }

    #[test]
    fn choices_parse_with_or_without_a_table() {
        assert_eq!(
            "events.created_at=ms".parse::<EpochChoice>(),
            Ok(EpochChoice {
                table: Some("events".into()),
                column: "created_at".into(),
                unit: EpochUnit::Millis
            })
        );
        assert_eq!(
            "at=julian"
                .parse::<EpochChoice>()
                .map(|c| (c.table, c.unit)),
            Ok((None, EpochUnit::Julian))
        );
        assert!("at".parse::<EpochChoice>().is_err());
        assert!("at=hours".parse::<EpochChoice>().is_err());
        assert!(".at=s".parse::<EpochChoice>().is_err());
    }

    #[test]
    fn a_decided_unit_must_fit_the_reals_too() {
        // A REAL Julian day (2460312.5) in a column decided to be ms.
        let census = Census {
            reals: 1,
            julian: 1,
            real_natural: [1, 0, 0, 0],
            ..Census::default()
        };
        let (status, detail) = describe("e", "at", &census, Epoch::decided(EpochUnit::Millis));
        assert_eq!(status, Status::Fail, "{detail}");
        assert!(detail.contains("misfits"), "{detail}");
        let fits = Census {
            reals: 1,
            real_natural: [0, 0, 1, 0],
            ..Census::default()
        };
        let (status, detail) = describe("e", "at", &fits, Epoch::decided(EpochUnit::Millis));
        assert_eq!(status, Status::Pass, "{detail}");
    }

    #[test]
    fn the_unit_most_values_fit_wins_coarsest_first() {
        let census = |natural| Census {
            integers: 10,
            natural,
            ..Census::default()
        };
        // [Julian days, seconds, ms, µs]
        assert_eq!(detected(&census([0, 0, 0, 0])), EpochUnit::Seconds);
        assert_eq!(detected(&census([0, 3, 7, 0])), EpochUnit::Millis);
        assert_eq!(detected(&census([0, 5, 5, 0])), EpochUnit::Seconds);
        assert_eq!(detected(&census([0, 0, 1, 9])), EpochUnit::Micros);
        assert_eq!(detected(&census([8, 2, 0, 0])), EpochUnit::Julian);
        assert_eq!(detected(&census([5, 5, 0, 0])), EpochUnit::Seconds);
    }
}
