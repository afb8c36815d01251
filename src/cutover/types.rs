//! How a SQLite value becomes a PostgreSQL value (the type mapping of
//! `docs/cutover.md`), and the canonical form both sides are hashed in.
//!
//! SQLite stores a storage class per *value*, not per column, so the mapping
//! is decided by the target column's type: an INTEGER 1 becomes `true` in a
//! boolean column and `1` in an integer one. A value that cannot become the
//! target type exactly is a [`Misfit`], never a silent change: the precheck
//! reports every misfit and `run` refuses to load until there are none.
//!
//! The same [`convert`] runs in precheck, run and verify, so what precheck
//! predicts is what run loads and what verify expects to find.

use std::error::Error as StdError;

use bytes::{BufMut, BytesMut};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use rusqlite::types::ValueRef;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

/// What a target column is, as far as the copy is concerned.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// `boolean`.
    Bool,
    /// `smallint`.
    Int2,
    /// `integer`.
    Int4,
    /// `bigint`.
    Int8,
    /// `real`.
    Float4,
    /// `double precision`.
    Float8,
    /// `numeric(precision, scale)`.
    Numeric {
        /// Total digits allowed, when declared.
        precision: Option<u32>,
        /// Fraction digits kept, when declared.
        scale: Option<u32>,
    },
    /// `text`, `varchar(n)`, `char(n)`, `citext`, `name`.
    Text {
        /// The declared length, when there is one.
        max_chars: Option<usize>,
        /// `char(n)`: trailing spaces are insignificant.
        padded: bool,
    },
    /// `bytea`.
    Bytea,
    /// `timestamp(p)` without time zone.
    Timestamp {
        /// Fraction digits kept (6 unless declared).
        precision: u32,
        /// How numbers in the column are read.
        epoch: Epoch,
    },
    /// `timestamptz(p)`.
    TimestampTz {
        /// Fraction digits kept (6 unless declared).
        precision: u32,
        /// How numbers in the column are read.
        epoch: Epoch,
    },
    /// `date`.
    Date {
        /// How numbers in the column are read.
        epoch: Epoch,
    },
    /// `time` without time zone.
    Time,
    /// `uuid`.
    Uuid,
    /// `json`.
    Json,
    /// `jsonb`.
    Jsonb,
    /// An enum type, with its labels.
    Enum {
        /// The labels the type accepts.
        labels: Vec<String>,
    },
}

impl Kind {
    /// The kind of a column from its (domain-resolved) type name, `typtype`
    /// and `atttypmod`; `None` for types the copy does not convert.
    pub fn from_catalog(
        typname: &str,
        typtype: &str,
        typmod: i32,
        labels: &[String],
    ) -> Option<Kind> {
        if typtype == "e" {
            return Some(Kind::Enum {
                labels: labels.to_vec(),
            });
        }
        let modifier = (typmod >= 4).then(|| typmod - 4);
        let precision_of = |default: u32| {
            if typmod >= 0 {
                u32::try_from(typmod).unwrap_or(default)
            } else {
                default
            }
        };
        Some(match typname {
            "bool" => Kind::Bool,
            "int2" => Kind::Int2,
            "int4" => Kind::Int4,
            "int8" => Kind::Int8,
            "float4" => Kind::Float4,
            "float8" => Kind::Float8,
            "numeric" => Kind::Numeric {
                precision: modifier.map(|m| ((m >> 16) & 0xffff) as u32),
                scale: modifier.map(|m| (m & 0xffff) as u32),
            },
            "text" | "citext" | "name" => Kind::Text {
                max_chars: None,
                padded: false,
            },
            "varchar" => Kind::Text {
                max_chars: modifier.and_then(|m| usize::try_from(m).ok()),
                padded: false,
            },
            "bpchar" => Kind::Text {
                max_chars: modifier.and_then(|m| usize::try_from(m).ok()),
                padded: true,
            },
            "bytea" => Kind::Bytea,
            "timestamp" => Kind::Timestamp {
                precision: precision_of(6),
                epoch: Epoch::default(),
            },
            "timestamptz" => Kind::TimestampTz {
                precision: precision_of(6),
                epoch: Epoch::default(),
            },
            "date" => Kind::Date {
                epoch: Epoch::default(),
            },
            "time" => Kind::Time,
            "uuid" => Kind::Uuid,
            "json" => Kind::Json,
            "jsonb" => Kind::Jsonb,
            _ => return None,
        })
    }
}

impl Kind {
    /// How numbers are read, for the date kinds.
    pub fn epoch(&self) -> Option<Epoch> {
        match self {
            Kind::Timestamp { epoch, .. }
            | Kind::TimestampTz { epoch, .. }
            | Kind::Date { epoch } => Some(*epoch),
            _ => None,
        }
    }

    /// The same kind reading numbers as `new` (no change for other kinds).
    pub fn with_epoch(&self, new: Epoch) -> Kind {
        let mut kind = self.clone();
        match &mut kind {
            Kind::Timestamp { epoch, .. }
            | Kind::TimestampTz { epoch, .. }
            | Kind::Date { epoch } => {
                *epoch = new;
            }
            _ => {}
        }
        kind
    }
}

/// A unit numbers in a date column can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum EpochUnit {
    /// Unix time in seconds.
    #[serde(rename = "s")]
    Seconds,
    /// Unix time in milliseconds (JavaScript's `Date.now()`, Java's
    /// `System.currentTimeMillis()`).
    #[serde(rename = "ms")]
    Millis,
    /// Unix time in microseconds.
    #[serde(rename = "us")]
    Micros,
    /// A Julian day number (SQLite's `julianday()`).
    #[serde(rename = "julian")]
    Julian,
}

impl EpochUnit {
    /// The Unix-time units, coarsest first.
    pub const UNIX: [EpochUnit; 3] = [EpochUnit::Seconds, EpochUnit::Millis, EpochUnit::Micros];

    /// The units an integer can be told apart in, in the order they are
    /// tried (see [`EpochUnit::natural`]) and preferred on a tie.
    pub const CANDIDATES: [EpochUnit; 4] = [
        EpochUnit::Julian,
        EpochUnit::Seconds,
        EpochUnit::Millis,
        EpochUnit::Micros,
    ];

    /// The spelling of `--epoch-unit`.
    pub fn as_str(self) -> &'static str {
        match self {
            EpochUnit::Seconds => "s",
            EpochUnit::Millis => "ms",
            EpochUnit::Micros => "us",
            EpochUnit::Julian => "julian",
        }
    }

    /// For people: `seconds`, `milliseconds`…
    pub fn describe(self) -> &'static str {
        match self {
            EpochUnit::Seconds => "Unix time in seconds",
            EpochUnit::Millis => "Unix time in milliseconds",
            EpochUnit::Micros => "Unix time in microseconds",
            EpochUnit::Julian => "Julian day numbers",
        }
    }

    /// Reads `s`, `ms`, `us`, `julian` (and their long names).
    pub fn parse(text: &str) -> Option<EpochUnit> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "s" | "sec" | "seconds" => EpochUnit::Seconds,
            "ms" | "millis" | "milliseconds" => EpochUnit::Millis,
            "us" | "µs" | "micros" | "microseconds" => EpochUnit::Micros,
            "julian" | "jd" | "julianday" => EpochUnit::Julian,
            _ => return None,
        })
    }

    /// Its short name: `seconds`, `milliseconds`…
    pub fn name(self) -> &'static str {
        match self {
            EpochUnit::Seconds => "seconds",
            EpochUnit::Millis => "milliseconds",
            EpochUnit::Micros => "microseconds",
            EpochUnit::Julian => "Julian days",
        }
    }

    /// Microseconds per unit (Unix units).
    fn micros(self) -> i128 {
        match self {
            EpochUnit::Seconds => 1_000_000,
            EpochUnit::Millis => 1_000,
            EpochUnit::Micros | EpochUnit::Julian => 1,
        }
    }

    /// `[low, high)`: the integers that land in 1900–2200 in this unit.
    pub fn integer_range(self) -> (i128, i128) {
        match self {
            EpochUnit::Julian => (JULIAN_1900.ceil() as i128, JULIAN_2200.ceil() as i128),
            unit => (
                i128::from(UNIX_1900) * 1_000_000 / unit.micros(),
                i128::from(UNIX_2200) * 1_000_000 / unit.micros(),
            ),
        }
    }

    /// The instant `value` stands for in this unit. A Julian day is rounded
    /// to the millisecond exactly as SQLite's date functions do
    /// (`iJD = (i64)(jd * 86400000.0 + 0.5)`): a double near 2.46 million
    /// days carries no more than that, and `datetime(2460312.51)` is
    /// `00:14:24`, not `00:14:23.999981`. Unix time keeps the microsecond.
    fn instant(self, value: f64) -> Option<DateTime<Utc>> {
        if !value.is_finite() {
            return None;
        }
        let micros = match self {
            EpochUnit::Julian => {
                ((value * 86_400_000.0 + 0.5).floor() - UNIX_EPOCH_JULIAN_MS) * 1000.0
            }
            unit => (value * unit.micros() as f64).round(),
        };
        if micros.abs() < 9.2e18 {
            DateTime::from_timestamp_micros(micros as i64)
        } else {
            None
        }
    }

    /// The instant an integer stands for in this unit, exactly.
    fn instant_of_integer(self, value: i64) -> Option<DateTime<Utc>> {
        match self {
            EpochUnit::Julian => self.instant(value as f64),
            unit => i64::try_from(i128::from(value) * unit.micros())
                .ok()
                .and_then(DateTime::from_timestamp_micros),
        }
    }

    /// What a plain integer in a date column most likely is: a whole Julian
    /// day of 1900–2200 (as seconds it would be a moment of 28–30 January
    /// 1970; SQLite's NUMERIC affinity turns a REAL Julian day such as
    /// `2460312.0` into exactly such an integer), else the coarsest Unix unit
    /// in which it lands in 1900–2200.
    pub fn natural(value: i64) -> Option<EpochUnit> {
        EpochUnit::CANDIDATES.into_iter().find(|unit| {
            let (low, high) = unit.integer_range();
            (low..high).contains(&i128::from(value))
        })
    }
}

/// 1900-01-01T00:00:00Z and 2200-01-01T00:00:00Z as Unix seconds: a number
/// that lands outside them in its unit is not a date anyone meant.
const UNIX_1900: i64 = -2_208_988_800;
const UNIX_2200: i64 = 7_258_118_400;
/// The same two instants as Julian day numbers.
const JULIAN_1900: f64 = 2_415_020.5;
const JULIAN_2200: f64 = 2_524_593.5;

/// How numbers in one date column become instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch {
    /// The unit of INTEGER values.
    pub integer: EpochUnit,
    /// The unit of REAL values.
    pub real: EpochUnit,
    /// Chosen with `--epoch-unit` (else detected from the values). Either
    /// way a number outside 1900–2200 in its unit is a misfit, and so is an
    /// integer whose size says another Unix unit (seconds among
    /// milliseconds would land in January 1970).
    pub decided: bool,
}

impl Default for Epoch {
    /// SQLite's own conventions: INTEGER as Unix seconds, REAL as a Julian day.
    fn default() -> Self {
        Epoch {
            integer: EpochUnit::Seconds,
            real: EpochUnit::Julian,
            decided: false,
        }
    }
}

impl Epoch {
    /// Every number read as `unit`, as the operator decided.
    pub fn decided(unit: EpochUnit) -> Epoch {
        Epoch {
            integer: unit,
            real: unit,
            decided: true,
        }
    }
}

/// One converted value, ready for binary COPY.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// boolean.
    Bool(bool),
    /// smallint.
    I16(i16),
    /// integer.
    I32(i32),
    /// bigint.
    I64(i64),
    /// real.
    F32(f32),
    /// double precision.
    F64(f64),
    /// numeric.
    Numeric(Decimal),
    /// text-like and enum labels.
    Text(String),
    /// bytea.
    Bytes(Vec<u8>),
    /// timestamp.
    Timestamp(NaiveDateTime),
    /// timestamptz.
    TimestampTz(DateTime<Utc>),
    /// date.
    Date(NaiveDate),
    /// time.
    Time(NaiveTime),
    /// uuid.
    Uuid(uuid::Uuid),
    /// json (the source text, unchanged).
    Json(String),
    /// jsonb (the source text, unchanged).
    Jsonb(String),
}

impl Cell {
    /// Roughly how many bytes this value puts on the wire (for progress and
    /// the report; batching uses it to bound memory).
    pub fn size(&self) -> usize {
        match self {
            Cell::Null => 0,
            Cell::Bool(_) => 1,
            Cell::I16(_) => 2,
            Cell::I32(_) | Cell::F32(_) | Cell::Date(_) => 4,
            Cell::I64(_)
            | Cell::F64(_)
            | Cell::Timestamp(_)
            | Cell::TimestampTz(_)
            | Cell::Time(_) => 8,
            Cell::Uuid(_) => 16,
            Cell::Numeric(d) => 8 + d.int_digits.len() / 2 + d.frac_digits.len() / 2,
            Cell::Text(s) | Cell::Json(s) | Cell::Jsonb(s) => s.len(),
            Cell::Bytes(b) => b.len(),
        }
    }
}

impl ToSql for Cell {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self {
            Cell::Null => Ok(IsNull::Yes),
            Cell::Bool(v) => v.to_sql(ty, out),
            Cell::I16(v) => v.to_sql(ty, out),
            Cell::I32(v) => v.to_sql(ty, out),
            Cell::I64(v) => v.to_sql(ty, out),
            Cell::F32(v) => v.to_sql(ty, out),
            Cell::F64(v) => v.to_sql(ty, out),
            Cell::Numeric(v) => {
                v.encode(out);
                Ok(IsNull::No)
            }
            // text, varchar, bpchar, citext, enum labels and json all travel
            // as their UTF-8 bytes in binary COPY.
            Cell::Text(v) | Cell::Json(v) => {
                out.put_slice(v.as_bytes());
                Ok(IsNull::No)
            }
            Cell::Jsonb(v) => {
                out.put_u8(1); // jsonb binary format version
                out.put_slice(v.as_bytes());
                Ok(IsNull::No)
            }
            Cell::Bytes(v) => {
                out.put_slice(v);
                Ok(IsNull::No)
            }
            Cell::Timestamp(v) => v.to_sql(ty, out),
            Cell::TimestampTz(v) => v.to_sql(ty, out),
            Cell::Date(v) => v.to_sql(ty, out),
            Cell::Time(v) => v.to_sql(ty, out),
            Cell::Uuid(v) => v.to_sql(ty, out),
        }
    }

    // The conversion already chose the cell for the column's type.
    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A value that cannot become the target type exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misfit {
    /// Stable short name of the problem (`text_in_integer_column`…).
    pub problem: &'static str,
    /// The value, shortened, for people.
    pub detail: String,
}

fn misfit(problem: &'static str, detail: impl Into<String>) -> Misfit {
    Misfit {
        problem,
        detail: detail.into(),
    }
}

/// A short, printable rendering of a SQLite value for messages.
pub fn show(value: ValueRef<'_>) -> String {
    const MAX: usize = 40;
    match value {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => format!("{f:?}"),
        ValueRef::Text(bytes) => {
            let text = String::from_utf8_lossy(bytes);
            let short: String = text.chars().take(MAX).collect();
            let more = if text.chars().count() > MAX {
                "…"
            } else {
                ""
            };
            format!("{:?}{more}", short)
        }
        ValueRef::Blob(bytes) => format!("blob of {} bytes", bytes.len()),
    }
}

/// Converts one SQLite value for a column of `kind`.
pub fn convert(value: ValueRef<'_>, kind: &Kind, not_null: bool) -> Result<Cell, Misfit> {
    if let ValueRef::Null = value {
        return if not_null {
            Err(misfit("null_in_not_null_column", "NULL"))
        } else {
            Ok(Cell::Null)
        };
    }
    match kind {
        Kind::Bool => to_bool(value),
        Kind::Int2 => to_integer(value).and_then(|i| {
            i16::try_from(i)
                .map(Cell::I16)
                .map_err(|_| misfit("out_of_range", format!("{i} does not fit smallint")))
        }),
        Kind::Int4 => to_integer(value).and_then(|i| {
            i32::try_from(i)
                .map(Cell::I32)
                .map_err(|_| misfit("out_of_range", format!("{i} does not fit integer")))
        }),
        Kind::Int8 => to_integer(value).map(Cell::I64),
        Kind::Float4 => to_float(value).and_then(|f| to_real(value, f)),
        Kind::Float8 => to_float(value).map(Cell::F64),
        Kind::Numeric { precision, scale } => to_numeric(value, *precision, *scale),
        Kind::Text { max_chars, .. } => to_text(value, kind).and_then(|s| match max_chars {
            Some(max) if s.chars().count() > *max => Err(misfit(
                "too_long",
                format!("{} characters, the column allows {max}", s.chars().count()),
            )),
            _ => Ok(Cell::Text(s)),
        }),
        Kind::Bytea => match value {
            ValueRef::Blob(b) | ValueRef::Text(b) => Ok(Cell::Bytes(b.to_vec())),
            other => Err(misfit("number_in_bytea_column", show(other))),
        },
        Kind::Timestamp { precision, epoch } => to_instant(value, epoch).and_then(|t| {
            check_precision(t.naive_utc(), *precision)?;
            Ok(Cell::Timestamp(t.naive_utc()))
        }),
        Kind::TimestampTz { precision, epoch } => to_instant(value, epoch).and_then(|t| {
            check_precision(t.naive_utc(), *precision)?;
            Ok(Cell::TimestampTz(t))
        }),
        Kind::Date { epoch } => to_instant(value, epoch).and_then(|t| {
            if t.time() == NaiveTime::MIN {
                Ok(Cell::Date(t.date_naive()))
            } else {
                Err(misfit(
                    "time_in_date_column",
                    format!("{} has a time of day a date column would drop", show(value)),
                ))
            }
        }),
        Kind::Time => {
            let text = utf8_text(value, kind)?;
            NaiveTime::parse_from_str(&text, "%H:%M:%S%.f")
                .or_else(|_| NaiveTime::parse_from_str(&text, "%H:%M"))
                .map(Cell::Time)
                .map_err(|_| misfit("not_a_time", show(value)))
        }
        Kind::Uuid => match value {
            ValueRef::Blob(b) if b.len() == 16 => uuid::Uuid::from_slice(b)
                .map(Cell::Uuid)
                .map_err(|_| misfit("not_a_uuid", show(value))),
            ValueRef::Text(_) => {
                let text = utf8_text(value, kind)?;
                uuid::Uuid::parse_str(&text)
                    .map(Cell::Uuid)
                    .map_err(|_| misfit("not_a_uuid", show(value)))
            }
            other => Err(misfit("not_a_uuid", show(other))),
        },
        Kind::Json | Kind::Jsonb => {
            let text = to_text(value, kind)?;
            // PostgreSQL's own grammar (numbers of any size, as numeric),
            // not serde_json's (which refuses `1e400` as out of range).
            let noted = match super::json::canonical_noting(text.as_bytes(), &mut Vec::new()) {
                Ok(noted) => noted,
                Err(unread) => {
                    let (problem, why) = unread.problem();
                    let detail = match why {
                        Some(why) => format!("{} ({why})", show(value)),
                        None => show(value),
                    };
                    return Err(misfit(problem, detail));
                }
            };
            // SQLite's json functions read the first of two equal keys,
            // jsonb keeps the last: the value would change meaning.
            if let (Some(key), Kind::Jsonb) = (&noted.duplicate_key, kind) {
                return Err(misfit(
                    "duplicate_json_key",
                    format!(
                        "{} (key {key:?} twice; jsonb keeps only the last)",
                        show(value)
                    ),
                ));
            }
            if *kind == Kind::Jsonb {
                // jsonb refuses the NUL escape that json and SQLite accept.
                if noted.nul_escape {
                    return Err(misfit("nul_in_jsonb", show(value)));
                }
                if let Some(why) = noted.jsonb_refuses {
                    return Err(misfit("jsonb_refuses", format!("{} ({why})", show(value))));
                }
                Ok(Cell::Jsonb(text))
            } else {
                Ok(Cell::Json(text))
            }
        }
        Kind::Enum { labels } => {
            let text = utf8_text(value, kind)?;
            if labels.contains(&text) {
                Ok(Cell::Text(text))
            } else {
                Err(misfit("unknown_enum_label", show(value)))
            }
        }
    }
}

/// Text that is valid UTF-8 without NUL bytes (PostgreSQL text cannot hold
/// NUL), for a column of `kind`: a blob or number is named after the
/// column it cannot go into.
fn utf8_text(value: ValueRef<'_>, kind: &Kind) -> Result<String, Misfit> {
    match value {
        ValueRef::Text(bytes) => text_of(bytes),
        other => Err(not_text(other, kind)),
    }
}

/// A SQLite text value as PostgreSQL text: valid UTF-8, no NUL byte.
fn text_of(bytes: &[u8]) -> Result<String, Misfit> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        misfit(
            "invalid_utf8",
            format!("invalid UTF-8 at byte {}", e.valid_up_to()),
        )
    })?;
    if text.contains('\0') {
        return Err(misfit("nul_byte_in_text", show(ValueRef::Text(bytes))));
    }
    Ok(text.to_string())
}

/// A blob or number where a column of `kind` reads text.
fn not_text(value: ValueRef<'_>, kind: &Kind) -> Misfit {
    let blob = matches!(value, ValueRef::Blob(_));
    let problem = match (kind, blob) {
        (Kind::Json | Kind::Jsonb, true) => "blob_in_json_column",
        (Kind::Time, true) => "blob_in_time_column",
        (Kind::Time, false) => "number_in_time_column",
        (Kind::Enum { .. }, true) => "blob_in_enum_column",
        (Kind::Enum { .. }, false) => "number_in_enum_column",
        (_, true) => "blob_in_text_column",
        (_, false) => "number_in_text_column",
    };
    misfit(problem, show(value))
}

fn to_text(value: ValueRef<'_>, kind: &Kind) -> Result<String, Misfit> {
    match value {
        ValueRef::Integer(i) => Ok(i.to_string()),
        // `{:?}` keeps the `.0` of whole numbers and round-trips every double.
        ValueRef::Real(f) => Ok(format!("{f:?}")),
        other => utf8_text(other, kind),
    }
}

fn to_bool(value: ValueRef<'_>) -> Result<Cell, Misfit> {
    match value {
        ValueRef::Integer(0) => Ok(Cell::Bool(false)),
        ValueRef::Integer(1) => Ok(Cell::Bool(true)),
        ValueRef::Real(0.0) => Ok(Cell::Bool(false)),
        ValueRef::Real(1.0) => Ok(Cell::Bool(true)),
        ValueRef::Text(bytes) => {
            let text = text_of(bytes)?;
            // PostgreSQL's own boolean spellings.
            match text.trim().to_ascii_lowercase().as_str() {
                "t" | "true" | "y" | "yes" | "on" | "1" => Ok(Cell::Bool(true)),
                "f" | "false" | "n" | "no" | "off" | "0" => Ok(Cell::Bool(false)),
                _ => Err(misfit("not_a_boolean", show(value))),
            }
        }
        other => Err(misfit("not_a_boolean", show(other))),
    }
}

fn to_integer(value: ValueRef<'_>) -> Result<i64, Misfit> {
    match value {
        ValueRef::Integer(i) => Ok(i),
        ValueRef::Real(f) => {
            // 2^63 is exactly representable; anything at or beyond it is not an i64.
            if f.fract() == 0.0
                && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f)
            {
                Ok(f as i64)
            } else {
                Err(misfit("fraction_in_integer_column", show(value)))
            }
        }
        ValueRef::Text(bytes) => {
            let text = text_of(bytes)?;
            text.parse::<i64>()
                .map_err(|_| misfit("text_in_integer_column", show(value)))
        }
        ValueRef::Blob(_) => Err(misfit("blob_in_integer_column", show(value))),
        ValueRef::Null => Err(misfit("null_in_not_null_column", "NULL")),
    }
}

fn to_float(value: ValueRef<'_>) -> Result<f64, Misfit> {
    match value {
        ValueRef::Integer(i) => {
            let f = i as f64;
            // i64::MAX rounds up to 2^63, which saturates back to i64::MAX:
            // compare in i128 to see the rounding.
            if f as i128 == i128::from(i) {
                Ok(f)
            } else {
                Err(misfit(
                    "integer_loses_precision",
                    format!("{i} has no exact double precision value"),
                ))
            }
        }
        ValueRef::Real(f) => Ok(f),
        ValueRef::Text(bytes) => {
            let text = text_of(bytes)?;
            let trimmed = text.trim();
            // Rust's parser takes "NaN", "inf", "Infinity" (any case) and
            // exponents, which are PostgreSQL's float spellings too.
            let f = trimmed
                .parse::<f64>()
                .map_err(|_| misfit("text_in_float_column", show(value)))?;
            // Rust rounds "1e400" to infinity and "1e-400" to zero where
            // PostgreSQL's float8in refuses both as out of range.
            if f.is_infinite() && !spells_infinity(trimmed) {
                return Err(misfit(
                    "out_of_range",
                    format!("{} does not fit double precision", show(value)),
                ));
            }
            if f == 0.0 && has_nonzero_digit(trimmed) {
                return Err(misfit(
                    "out_of_range",
                    format!("{} is too small for double precision", show(value)),
                ));
            }
            Ok(f)
        }
        other => Err(misfit("blob_in_float_column", show(other))),
    }
}

/// A double stored in `real` only when it comes back the same: `0.1` (typed
/// with a few digits) does, `0.123456789` or 16777217 would be rounded.
fn to_real(value: ValueRef<'_>, f: f64) -> Result<Cell, Misfit> {
    if f.is_finite() && f.abs() > f64::from(f32::MAX) {
        return Err(misfit("out_of_range", format!("{f:?} does not fit real")));
    }
    let narrow = f as f32;
    if f.is_nan() {
        return Ok(Cell::F32(narrow));
    }
    if f != 0.0 && narrow == 0.0 {
        return Err(misfit(
            "out_of_range",
            format!("{} is too small for real", show(value)),
        ));
    }
    // The shortest decimal of the f32, read back as a double: equal when
    // the value had no more digits than real keeps.
    let same = match value {
        ValueRef::Integer(i) => narrow as i128 == i128::from(i),
        _ => format!("{narrow}").parse::<f64>().ok() == Some(f),
    };
    if same {
        Ok(Cell::F32(narrow))
    } else {
        let problem = if matches!(value, ValueRef::Integer(_)) {
            "integer_loses_precision"
        } else {
            "loses_precision"
        };
        Err(misfit(
            problem,
            format!(
                "{} has no exact real value (real keeps 6 to 9 digits)",
                show(value)
            ),
        ))
    }
}

fn spells_infinity(text: &str) -> bool {
    let digits = text.trim_start_matches(['+', '-']);
    digits.eq_ignore_ascii_case("inf") || digits.eq_ignore_ascii_case("infinity")
}

/// A mantissa digit other than zero: "1e-400" is not zero, "0.0e5" is.
fn has_nonzero_digit(text: &str) -> bool {
    let mantissa = text.split(['e', 'E']).next().unwrap_or(text);
    mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b))
}

fn to_numeric(
    value: ValueRef<'_>,
    precision: Option<u32>,
    scale: Option<u32>,
) -> Result<Cell, Misfit> {
    let decimal = match value {
        ValueRef::Integer(i) => Decimal::parse(&i.to_string()),
        ValueRef::Real(f) if f.is_nan() => Some(Decimal::special(Special::NaN)),
        ValueRef::Real(f) if f.is_infinite() => Some(Decimal::special(if f > 0.0 {
            Special::Infinity
        } else {
            Special::NegInfinity
        })),
        // Display never uses an exponent and gives the shortest exact digits.
        ValueRef::Real(f) => Decimal::parse(&format!("{f}")),
        ValueRef::Text(bytes) => Decimal::parse(text_of(bytes)?.trim()),
        _ => None,
    }
    .ok_or_else(|| misfit("text_in_numeric_column", show(value)))?;
    if decimal.special.is_none() {
        let fraction = decimal.frac_digits.trim_end_matches('0').len();
        if let Some(scale) = scale
            && fraction > scale as usize
        {
            return Err(misfit(
                "would_round",
                format!(
                    "{} has {fraction} decimal places, the column keeps {scale}",
                    show(value)
                ),
            ));
        }
        if let (Some(precision), Some(scale)) = (precision, scale) {
            let allowed = precision.saturating_sub(scale) as usize;
            if decimal.int_digits.len() > allowed {
                return Err(misfit(
                    "out_of_range",
                    format!("{} does not fit numeric({precision},{scale})", show(value)),
                ));
            }
        }
    }
    Ok(Cell::Numeric(decimal))
}

/// Microsecond digits beyond the column's precision would be rounded away.
fn check_precision(t: NaiveDateTime, precision: u32) -> Result<(), Misfit> {
    if precision >= 6 {
        return Ok(());
    }
    let micros = t.nanosecond() / 1_000;
    if !micros.is_multiple_of(10u32.pow(6 - precision)) {
        return Err(misfit(
            "would_round",
            format!("{t} has more than {precision} fraction digits"),
        ));
    }
    Ok(())
}

/// The Unix epoch as SQLite's integer Julian milliseconds (2440587.5 days).
const UNIX_EPOCH_JULIAN_MS: f64 = 210_866_760_000_000.0;

/// The three date storages SQLite documents: TEXT as ISO-8601, REAL as a
/// Julian day number, INTEGER as Unix time — in the column's [`Epoch`]
/// (seconds unless detected or decided otherwise). Text without an offset is
/// UTC, as SQLite's own date functions read it. A number that lands outside
/// 1900–2200 in its unit is a misfit: that is how milliseconds read as
/// seconds (the year 55972) are caught instead of loaded.
fn to_instant(value: ValueRef<'_>, epoch: &Epoch) -> Result<DateTime<Utc>, Misfit> {
    let (parsed, unit) = match value {
        ValueRef::Integer(number) => {
            // Seconds among milliseconds land in January 1970, inside the
            // range: an integer whose size says another unit is refused too.
            if let Some(natural) = EpochUnit::natural(number)
                && natural != epoch.integer
            {
                return Err(misfit(
                    "epoch_unit_mismatch",
                    format!(
                        "{number} looks like {} but this column's integers are read as {}",
                        natural.describe(),
                        epoch.integer.describe()
                    ),
                ));
            }
            (
                epoch.integer.instant_of_integer(number),
                Some(epoch.integer),
            )
        }
        ValueRef::Real(number) => (epoch.real.instant(number), Some(epoch.real)),
        ValueRef::Text(bytes) => (parse_datetime(&text_of(bytes)?), None),
        _ => (None, None),
    };
    if let Some(unit) = unit {
        let low = DateTime::from_timestamp(UNIX_1900, 0);
        let high = DateTime::from_timestamp(UNIX_2200, 0);
        let inside = parsed.is_some_and(|t| Some(t) >= low && Some(t) < high);
        if !inside {
            let lands = parsed.map_or_else(
                || "far outside 1900-2200".to_string(),
                |t| format!("the year {}, outside 1900-2200", t.year()),
            );
            return Err(misfit(
                "date_out_of_range",
                format!(
                    "{} read as {} is {lands}; say which unit it is with --epoch-unit",
                    show(value),
                    unit.describe()
                ),
            ));
        }
    }
    let instant = parsed.ok_or_else(|| misfit("not_a_date", show(value)))?;
    // Nanoseconds PostgreSQL cannot keep would be rounded away.
    if instant.nanosecond() % 1_000 != 0 {
        return Err(misfit(
            "would_round",
            format!("{} has more than 6 fraction digits", show(value)),
        ));
    }
    Ok(instant)
}

fn parse_datetime(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    // Without an offset first, the most common spelling in SQLite files
    // (`datetime('now')`): each format must match the whole text, so at
    // most one of these and the ones with an offset can.
    let stripped = text.strip_suffix('Z').unwrap_or(text);
    let naive = [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ];
    for format in naive {
        if let Ok(t) = NaiveDateTime::parse_from_str(stripped, format) {
            return Some(t.and_utc());
        }
    }
    let with_offset = [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M%:z",
        "%Y-%m-%dT%H:%M%:z",
        "%Y-%m-%d %H:%M:%S%.f%#z",
    ];
    for format in with_offset {
        if let Ok(t) = DateTime::parse_from_str(text, format) {
            return Some(t.with_timezone(&Utc));
        }
    }
    NaiveDate::parse_from_str(stripped, "%Y-%m-%d")
        .ok()
        .map(|d| d.and_time(NaiveTime::MIN).and_utc())
}

/// numeric's special values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    /// NaN.
    NaN,
    /// +Infinity (PostgreSQL 14 and later).
    Infinity,
    /// -Infinity (PostgreSQL 14 and later).
    NegInfinity,
}

/// An exact decimal as digits, for numeric columns of any size (1e308
/// included): no floating point on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal {
    negative: bool,
    /// Integer digits without leading zeros ("" for zero).
    int_digits: String,
    /// Fraction digits as written (their count is the display scale).
    frac_digits: String,
    special: Option<Special>,
}

impl Decimal {
    fn special(special: Special) -> Decimal {
        Decimal {
            negative: false,
            int_digits: String::new(),
            frac_digits: String::new(),
            special: Some(special),
        }
    }

    /// Parses PostgreSQL's numeric input syntax: sign, digits, point,
    /// exponent, `NaN`, `Infinity`.
    pub fn parse(text: &str) -> Option<Decimal> {
        match text.to_ascii_lowercase().as_str() {
            "nan" => return Some(Decimal::special(Special::NaN)),
            "infinity" | "+infinity" | "inf" | "+inf" => {
                return Some(Decimal::special(Special::Infinity));
            }
            "-infinity" | "-inf" => return Some(Decimal::special(Special::NegInfinity)),
            _ => {}
        }
        let (negative, rest) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(at) => (&rest[..at], rest[at + 1..].parse::<i32>().ok()?),
            None => (rest, 0),
        };
        let (int_part, frac_part) = match mantissa.split_once('.') {
            Some((i, f)) => (i, f),
            None => (mantissa, ""),
        };
        if (int_part.is_empty() && frac_part.is_empty())
            || !int_part.bytes().all(|b| b.is_ascii_digit())
            || !frac_part.bytes().all(|b| b.is_ascii_digit())
            || exponent.unsigned_abs() > 1000
        {
            return None;
        }
        // Move the point by the exponent, over the digits as a whole.
        let digits = format!("{int_part}{frac_part}");
        let point = i64::try_from(int_part.len()).ok()? + i64::from(exponent);
        let (int_digits, frac_digits) = if point <= 0 {
            (
                String::new(),
                format!("{}{digits}", "0".repeat(point.unsigned_abs() as usize)),
            )
        } else if point as usize >= digits.len() {
            (
                format!("{digits}{}", "0".repeat(point as usize - digits.len())),
                String::new(),
            )
        } else {
            (
                digits[..point as usize].to_string(),
                digits[point as usize..].to_string(),
            )
        };
        let int_digits = int_digits.trim_start_matches('0').to_string();
        let zero = int_digits.is_empty() && frac_digits.bytes().all(|b| b == b'0');
        Some(Decimal {
            negative: negative && !zero,
            int_digits,
            frac_digits,
            special: None,
        })
    }

    /// PostgreSQL's binary numeric: base-10000 digits around the point.
    fn encode(&self, out: &mut BytesMut) {
        let sign: u16 = match self.special {
            Some(Special::NaN) => 0xC000,
            Some(Special::Infinity) => 0xD000,
            Some(Special::NegInfinity) => 0xF000,
            None if self.negative => 0x4000,
            None => 0x0000,
        };
        let dscale = u16::try_from(self.frac_digits.len()).unwrap_or(u16::MAX);
        let mut int = self.int_digits.clone();
        while !int.len().is_multiple_of(4) {
            int.insert(0, '0');
        }
        let mut frac = self.frac_digits.clone();
        while !frac.len().is_multiple_of(4) {
            frac.push('0');
        }
        let group = |s: &str| -> Vec<i16> {
            s.as_bytes()
                .chunks(4)
                .map(|c| c.iter().fold(0i16, |acc, d| acc * 10 + i16::from(d - b'0')))
                .collect()
        };
        let mut digits: Vec<i16> = group(&int);
        let mut weight = i32::try_from(digits.len()).unwrap_or(0) - 1;
        digits.extend(group(&frac));
        // Normalise as the server does: no leading or trailing zero groups.
        let leading = digits.iter().take_while(|d| **d == 0).count();
        digits.drain(..leading);
        weight -= i32::try_from(leading).unwrap_or(0);
        while digits.last() == Some(&0) {
            digits.pop();
        }
        if digits.is_empty() || self.special.is_some() {
            digits.clear();
            weight = 0;
        }
        out.put_i16(i16::try_from(digits.len()).unwrap_or(i16::MAX));
        out.put_i16(i16::try_from(weight).unwrap_or(0));
        out.put_u16(sign);
        out.put_u16(if self.special.is_some() { 0 } else { dscale });
        for digit in digits {
            out.put_i16(digit);
        }
    }
}

/// numeric's binary form as canonical text: value only, no display scale
/// (`1.50` and `1.5` are the same number), `-0` is `0`.
pub fn numeric_text(raw: &[u8]) -> Option<String> {
    let field = |at: usize| -> Option<i32> {
        raw.get(at..at + 2)
            .map(|b| i32::from(i16::from_be_bytes([b[0], b[1]])))
    };
    let ndigits = usize::try_from(field(0)?).ok()?;
    let weight = field(2)?;
    let sign = u16::from_be_bytes([*raw.get(4)?, *raw.get(5)?]);
    match sign {
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        _ => {}
    }
    let mut int = String::new();
    let mut frac = String::new();
    for index in 0..ndigits {
        let digit = field(8 + 2 * index)?;
        let text = format!("{digit:04}");
        let position = weight - i32::try_from(index).ok()?;
        if position >= 0 {
            int.push_str(&text);
        } else {
            frac.push_str(&text);
        }
    }
    // Groups between the last integer digit and the point are zeros.
    let last_int_position = weight - i32::try_from(ndigits).ok()? + 1;
    if weight >= 0 && last_int_position > 0 {
        for _ in 0..last_int_position {
            int.push_str("0000");
        }
    }
    // Zero groups between the point and the first fraction digit.
    if weight < -1 {
        frac.insert_str(0, &"0000".repeat(usize::try_from(-weight - 1).ok()?));
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let body = match (int.is_empty(), frac.is_empty()) {
        (true, true) => return Some("0".into()),
        (true, false) => format!("0.{frac}"),
        (false, true) => int.to_string(),
        (false, false) => format!("{int}.{frac}"),
    };
    Some(if sign == 0x4000 {
        format!("-{body}")
    } else {
        body
    })
}

/// Appends a field's canonical form to a row's hash input: the binary COPY
/// bytes, with what PostgreSQL does not consider part of the value removed
/// (numeric display scale, `char(n)` padding; jsonb as the server prints
/// it, see `cutover::json`; `json` keeps its text).
pub fn canonical(kind: &Kind, raw: Option<&[u8]>, out: &mut Vec<u8>) {
    let Some(raw) = raw else {
        out.push(0);
        return;
    };
    let owned;
    let bytes: &[u8] = match kind {
        Kind::Numeric { .. } => {
            owned = numeric_text(raw).map(String::into_bytes);
            owned.as_deref().unwrap_or(raw)
        }
        Kind::Text { padded: true, .. } => {
            let end = raw.iter().rposition(|b| *b != b' ').map_or(0, |p| p + 1);
            &raw[..end]
        }
        // `json` keeps its text as written (whitespace, key order, `1e2`,
        // duplicate keys): the application reads back those bytes, so they
        // are compared as they are, like text. Only `jsonb` is normalised.
        Kind::Jsonb => {
            let text = if raw.first() == Some(&1) {
                &raw[1..]
            } else {
                raw
            };
            // Written in place: the length goes in front once it is known.
            out.push(1);
            let at = out.len();
            out.extend_from_slice(&[0; 8]);
            if super::json::canonical(text, out).is_none() {
                out.extend_from_slice(text);
            }
            let length = (out.len() - at - 8) as u64;
            out[at..at + 8].copy_from_slice(&length.to_le_bytes());
            return;
        }
        Kind::Float8
            if raw.len() == 8 && f64::from_be_bytes(raw.try_into().unwrap_or([0; 8])).is_nan() =>
        {
            b"NaN"
        }
        Kind::Float4
            if raw.len() == 4 && f32::from_be_bytes(raw.try_into().unwrap_or([0; 4])).is_nan() =>
        {
            b"NaN"
        }
        _ => raw,
    };
    out.push(1);
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// [`canonical`] of a field as the server sent it. The same bytes, but a
/// `jsonb` value is taken as it is: the server printed it, and
/// `cutover::json`'s canonical form is that very text, so it is not parsed
/// a second time (a third of verify's CPU on JSON-heavy tables).
pub fn canonical_from_server(kind: &Kind, raw: Option<&[u8]>, out: &mut Vec<u8>) {
    match (kind, raw) {
        (Kind::Jsonb, Some([1, text @ ..])) => {
            out.push(1);
            out.extend_from_slice(&(text.len() as u64).to_le_bytes());
            out.extend_from_slice(text);
        }
        _ => canonical(kind, raw, out),
    }
}

/// The canonical form of a SQLite value without the way round its binary
/// form, for the kinds where that way costs most (NULL, plain text, jsonb:
/// no `String`, no second JSON parse); appends to `out` and says `true`, or
/// appends nothing and says `false` when the value needs [`convert`] (to
/// be refused, or converted otherwise). The same bytes as [`canonical`] of
/// [`encode`] of [`convert`] (a unit test holds them together).
pub fn canonical_of_sqlite(kind: &Kind, value: ValueRef<'_>, out: &mut Vec<u8>) -> bool {
    match (kind, value) {
        (_, ValueRef::Null) => {
            out.push(0);
            true
        }
        (
            Kind::Text {
                max_chars: None,
                padded: false,
            },
            ValueRef::Text(bytes),
        ) => {
            if std::str::from_utf8(bytes).is_err() || bytes.contains(&0) {
                return false;
            }
            out.push(1);
            out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            out.extend_from_slice(bytes);
            true
        }
        // Integers and doubles as they are: the binary form is the value's
        // big-endian bytes (a double that is NaN takes the long way).
        (Kind::Int8, ValueRef::Integer(i)) => fixed(&i.to_be_bytes(), out),
        (Kind::Int4, ValueRef::Integer(i)) => match i32::try_from(i) {
            Ok(i) => fixed(&i.to_be_bytes(), out),
            Err(_) => false,
        },
        (Kind::Int2, ValueRef::Integer(i)) => match i16::try_from(i) {
            Ok(i) => fixed(&i.to_be_bytes(), out),
            Err(_) => false,
        },
        (Kind::Float8, ValueRef::Real(f)) if !f.is_nan() => fixed(&f.to_be_bytes(), out),
        (Kind::Bool, ValueRef::Integer(i @ (0 | 1))) => fixed(&[i as u8], out),
        (Kind::Jsonb, ValueRef::Text(bytes)) => {
            if std::str::from_utf8(bytes).is_err() {
                return false;
            }
            let start = out.len();
            out.push(1);
            out.extend_from_slice(&[0; 8]);
            match super::json::canonical_noting(bytes, out) {
                Ok(noted) if noted.fits_jsonb() => {
                    let length = (out.len() - start - 9) as u64;
                    out[start + 1..start + 9].copy_from_slice(&length.to_le_bytes());
                    true
                }
                _ => {
                    out.truncate(start);
                    false
                }
            }
        }
        _ => false,
    }
}

/// A field of fixed width in its canonical form; always `true`.
fn fixed(bytes: &[u8], out: &mut Vec<u8>) -> bool {
    out.push(1);
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
    true
}

/// The marker verify puts in place of a SQLite value that does not
/// convert, so that its row differs (followed by the misfit's detail).
pub const UNCONVERTIBLE: &[u8] = b"\xffunconvertible:";

/// A value for people, from its binary COPY form (either side's): text, a
/// number, an instant, never raw bytes; long values shortened.
pub fn display_value(kind: &Kind, raw: Option<&[u8]>) -> String {
    const MAX: usize = 40;
    let Some(raw) = raw else {
        return "NULL".into();
    };
    if let Some(detail) = raw.strip_prefix(UNCONVERTIBLE) {
        return format!("unconvertible ({})", String::from_utf8_lossy(detail));
    }
    let text = |bytes: &[u8]| match std::str::from_utf8(bytes) {
        Ok(text) => {
            let short: String = text.chars().take(MAX).collect();
            let more = if text.chars().count() > MAX {
                "…"
            } else {
                ""
            };
            format!("{short:?}{more}")
        }
        Err(_) => bytes_shown(bytes),
    };
    let be8 = |raw: &[u8]| <[u8; 8]>::try_from(raw).ok().map(i64::from_be_bytes);
    // PostgreSQL counts days and microseconds from 2000-01-01.
    let since_2000 = |micros: i64| {
        DateTime::from_timestamp(946_684_800, 0)
            .and_then(|base| base.checked_add_signed(chrono::TimeDelta::microseconds(micros)))
    };
    let infinite = match (kind, be8(raw)) {
        (Kind::Timestamp { .. } | Kind::TimestampTz { .. }, Some(i64::MAX)) => Some("infinity"),
        (Kind::Timestamp { .. } | Kind::TimestampTz { .. }, Some(i64::MIN)) => Some("-infinity"),
        _ => None,
    };
    if let Some(infinite) = infinite {
        return infinite.to_string();
    }
    let shown = match kind {
        Kind::Bool if raw.len() == 1 => Some((raw[0] != 0).to_string()),
        Kind::Int2 if raw.len() == 2 => Some(i16::from_be_bytes([raw[0], raw[1]]).to_string()),
        Kind::Int4 => <[u8; 4]>::try_from(raw)
            .ok()
            .map(|b| i32::from_be_bytes(b).to_string()),
        Kind::Int8 => be8(raw).map(|i| i.to_string()),
        Kind::Float4 => <[u8; 4]>::try_from(raw)
            .ok()
            .map(|b| format!("{:?}", f32::from_be_bytes(b))),
        Kind::Float8 => be8(raw).map(|i| format!("{:?}", f64::from_bits(i as u64))),
        Kind::Numeric { .. } => numeric_text(raw),
        Kind::Uuid => uuid::Uuid::from_slice(raw).ok().map(|u| u.to_string()),
        Kind::Text { .. } | Kind::Enum { .. } | Kind::Json => Some(text(raw)),
        Kind::Jsonb => Some(text(raw.strip_prefix(&[1]).unwrap_or(raw))),
        Kind::Bytea => Some(bytes_shown(raw)),
        Kind::Timestamp { .. } => be8(raw)
            .and_then(since_2000)
            .map(|t| t.naive_utc().format("%Y-%m-%d %H:%M:%S%.f").to_string()),
        Kind::TimestampTz { .. } => be8(raw)
            .and_then(since_2000)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S%.f+00").to_string()),
        Kind::Date { .. } => <[u8; 4]>::try_from(raw).ok().and_then(|b| {
            NaiveDate::from_ymd_opt(2000, 1, 1)
                .and_then(|d| {
                    d.checked_add_signed(chrono::TimeDelta::days(i64::from(i32::from_be_bytes(b))))
                })
                .map(|d| d.to_string())
        }),
        Kind::Time => be8(raw).map(|micros| {
            NaiveTime::MIN
                .overflowing_add_signed(chrono::TimeDelta::microseconds(micros))
                .0
                .format("%H:%M:%S%.f")
                .to_string()
        }),
        _ => None,
    };
    shown.unwrap_or_else(|| bytes_shown(raw))
}

/// `\x0102… (N bytes)`: the start of a binary value and its size.
fn bytes_shown(raw: &[u8]) -> String {
    const MAX: usize = 16;
    if raw.len() <= MAX {
        format!("\\x{}", hex::encode(raw))
    } else {
        format!("\\x{}… ({} bytes)", hex::encode(&raw[..MAX]), raw.len())
    }
}

/// Encodes a cell the way binary COPY sends it (for hashing the source side).
pub fn encode(cell: &Cell, ty: &Type, buf: &mut BytesMut) -> Option<usize> {
    buf.clear();
    match cell.to_sql(ty, buf) {
        Ok(IsNull::No) => Some(buf.len()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_json_key_twice_in_one_object_is_found() {
        // Valid for PostgreSQL, out of a double's range: not refused.
        assert!(convert(ValueRef::Text(b"[1e3000, 1e-400]"), &Kind::Jsonb, false).is_ok());
        let dup = |t: &str| {
            crate::cutover::json::canonical_noting(t.as_bytes(), &mut Vec::new())
                .ok()
                .unwrap()
                .duplicate_key
        };
        assert_eq!(dup(r#"{"a":1,"a":2}"#).as_deref(), Some("a"));
        assert_eq!(dup(r#"[{"x":{"b":1,"b":2}}]"#).as_deref(), Some("b"));
        assert_eq!(dup(r#"{"a":{"a":1},"b":[{"a":2}]}"#), None);
        assert_eq!(dup("1e2"), None);
    }

    use super::*;

    fn text(s: &str) -> ValueRef<'_> {
        ValueRef::Text(s.as_bytes())
    }

    fn roundtrip(text: &str) -> String {
        let mut buf = BytesMut::new();
        if let Some(d) = Decimal::parse(text) {
            d.encode(&mut buf);
        }
        numeric_text(&buf).unwrap_or_default()
    }

    #[test]
    fn the_short_way_to_the_canonical_form_is_the_long_way() {
        let plain = Kind::Text {
            max_chars: None,
            padded: false,
        };
        let cases: Vec<(Kind, Type, ValueRef<'_>, bool)> = vec![
            (plain.clone(), Type::TEXT, text("naïve café 👩‍👩‍👧‍👦"), true),
            (plain.clone(), Type::TEXT, text(""), true),
            (plain.clone(), Type::TEXT, ValueRef::Null, true),
            (plain.clone(), Type::TEXT, ValueRef::Text(b"a\0b"), false),
            (plain.clone(), Type::TEXT, ValueRef::Text(b"\xff"), false),
            (plain.clone(), Type::TEXT, ValueRef::Integer(7), false),
            (
                Kind::Jsonb,
                Type::JSONB,
                text(r#"{"b": [1, 2.50, 1e308], "a": {"y": null, "x": "\u00e9"}}"#),
                true,
            ),
            (Kind::Jsonb, Type::JSONB, text(r#""tab\tquote\" é""#), true),
            (Kind::Jsonb, Type::JSONB, text(r#"{"a": 1, "a": 2}"#), false),
            (Kind::Jsonb, Type::JSONB, text(r#"["x\u0000"]"#), false),
            (Kind::Jsonb, Type::JSONB, text("{"), false),
            (Kind::Jsonb, Type::JSONB, ValueRef::Null, true),
            (Kind::Int8, Type::INT8, ValueRef::Integer(i64::MIN), true),
            (Kind::Int8, Type::INT8, ValueRef::Integer(-1), true),
            (Kind::Int8, Type::INT8, ValueRef::Real(2.0), false),
            (
                Kind::Int4,
                Type::INT4,
                ValueRef::Integer(i64::from(i32::MAX)),
                true,
            ),
            (
                Kind::Int4,
                Type::INT4,
                ValueRef::Integer(i64::from(i32::MAX) + 1),
                false,
            ),
            (Kind::Int2, Type::INT2, ValueRef::Integer(-32768), true),
            (Kind::Int2, Type::INT2, ValueRef::Integer(40_000), false),
            (Kind::Float8, Type::FLOAT8, ValueRef::Real(1e308), true),
            (Kind::Float8, Type::FLOAT8, ValueRef::Real(-0.0), true),
            (Kind::Float8, Type::FLOAT8, ValueRef::Real(5e-324), true),
            (Kind::Float8, Type::FLOAT8, ValueRef::Real(f64::NAN), false),
            (Kind::Float8, Type::FLOAT8, ValueRef::Integer(3), false),
            (Kind::Bool, Type::BOOL, ValueRef::Integer(0), true),
            (Kind::Bool, Type::BOOL, ValueRef::Integer(1), true),
            (Kind::Bool, Type::BOOL, ValueRef::Integer(2), false),
        ];
        for (kind, ty, value, short) in cases {
            let mut ours = Vec::new();
            assert_eq!(
                canonical_of_sqlite(&kind, value, &mut ours),
                short,
                "{value:?}"
            );
            if !short {
                assert!(ours.is_empty(), "{value:?}");
                continue;
            }
            let mut buf = BytesMut::new();
            let cell = convert(value, &kind, false).unwrap();
            let field = encode(&cell, &ty, &mut buf).map(|_| &buf[..]);
            let mut theirs = Vec::new();
            canonical(&kind, field, &mut theirs);
            assert_eq!(ours, theirs, "{value:?}");
        }
    }

    #[test]
    fn jsonb_as_the_server_prints_it_is_its_canonical_form() {
        // Input as SQLite holds it, and what PostgreSQL 15 printed for it
        // (`SELECT $1::jsonb::text`, by hand; tests/cutover.rs checks the
        // same against the sandbox's server).
        let cases = [
            (
                "{\"a\":{\"b\":[1,{\"c\":2}], \"\":1},\"aa\":[], \"x\":{}, \"\u{e9}\":\"\\u0001\\u001F\u{7f}\\t\\\\\\/\", \"n\":[1e2, 1.50, -0, -0.0, 0.00000e2, 1e-3, 1.5e1, 12345678901234567890.123e-5]}",
                "{\"a\": {\"\": 1, \"b\": [1, {\"c\": 2}]}, \"n\": [100, 1.50, 0, 0.0, 0.000, 0.001, 15, 123456789012345.67890123], \"x\": {}, \"aa\": [], \"\u{e9}\": \"\\u0001\\u001f\u{7f}\\t\\\\/\"}",
            ),
            ("\"a\"", "\"a\""),
            ("-0.0", "0.0"),
        ];
        for (input, printed) in cases {
            let mut ours = Vec::new();
            assert!(
                canonical_of_sqlite(&Kind::Jsonb, ValueRef::Text(input.as_bytes()), &mut ours),
                "{input}"
            );
            let mut field = vec![1u8];
            field.extend_from_slice(printed.as_bytes());
            let mut theirs = Vec::new();
            canonical_from_server(&Kind::Jsonb, Some(&field), &mut theirs);
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&theirs),
                "{input}"
            );
        }
    }

    #[test]
    fn numerics_survive_the_binary_form_exactly() {
        for (input, expected) in [
            ("0", "0"),
            ("-0.000", "0"),
            ("1", "1"),
            ("10000", "10000"),
            ("12345678.9", "12345678.9"),
            ("-0.00012", "-0.00012"),
            ("1.50", "1.5"),
            ("1e5", "100000"),
            ("2.5E-3", "0.0025"),
            (
                "123456789012345678901234567890",
                "123456789012345678901234567890",
            ),
            ("0.0000000001", "0.0000000001"),
            ("NaN", "NaN"),
            ("-Infinity", "-Infinity"),
        ] {
            assert_eq!(roundtrip(input), expected, "{input}");
        }
        let big = format!("{}", 1e308f64);
        assert_eq!(roundtrip(&big), big);
        assert!(Decimal::parse("1.2.3").is_none());
        assert!(Decimal::parse("abc").is_none());
        assert!(Decimal::parse("").is_none());
    }

    #[test]
    fn integers_convert_only_when_exact() {
        assert_eq!(
            convert(ValueRef::Integer(7), &Kind::Int4, false),
            Ok(Cell::I32(7))
        );
        assert_eq!(
            convert(ValueRef::Real(7.0), &Kind::Int8, false),
            Ok(Cell::I64(7))
        );
        assert_eq!(
            convert(ValueRef::Integer(i64::MIN), &Kind::Int8, false),
            Ok(Cell::I64(i64::MIN))
        );
        let misfit = |v, k: &Kind| convert(v, k, false).err().map(|m| m.problem);
        assert_eq!(
            misfit(ValueRef::Integer(1 << 40), &Kind::Int4),
            Some("out_of_range")
        );
        assert_eq!(
            misfit(text("abc"), &Kind::Int8),
            Some("text_in_integer_column")
        );
        assert_eq!(
            misfit(ValueRef::Real(1.5), &Kind::Int8),
            Some("fraction_in_integer_column")
        );
        assert_eq!(
            misfit(ValueRef::Real(9.3e18), &Kind::Int8),
            Some("fraction_in_integer_column")
        );
        assert_eq!(
            misfit(ValueRef::Integer(i64::MAX), &Kind::Float8),
            Some("integer_loses_precision")
        );
        assert_eq!(misfit(ValueRef::Null, &Kind::Int4), None);
        assert_eq!(
            convert(ValueRef::Null, &Kind::Int4, true)
                .err()
                .map(|m| m.problem),
            Some("null_in_not_null_column")
        );
    }

    #[test]
    fn floats_convert_only_when_the_column_keeps_the_value() {
        let problem = |v, k: &Kind| convert(v, k, false).err().map(|m| m.problem);
        assert_eq!(
            convert(ValueRef::Real(0.1), &Kind::Float4, false),
            Ok(Cell::F32(0.1))
        );
        assert_eq!(
            convert(ValueRef::Integer(16_777_216), &Kind::Float4, false),
            Ok(Cell::F32(16_777_216.0))
        );
        assert_eq!(
            problem(ValueRef::Real(0.123_456_789), &Kind::Float4),
            Some("loses_precision")
        );
        assert_eq!(
            problem(ValueRef::Integer(16_777_217), &Kind::Float4),
            Some("integer_loses_precision")
        );
        assert_eq!(
            problem(ValueRef::Real(1e300), &Kind::Float4),
            Some("out_of_range")
        );
        assert_eq!(
            problem(ValueRef::Real(1e-300), &Kind::Float4),
            Some("out_of_range")
        );
        for kind in [Kind::Float4, Kind::Float8] {
            assert_eq!(problem(text("1e400"), &kind), Some("out_of_range"));
            assert_eq!(problem(text("-1e400"), &kind), Some("out_of_range"));
            assert_eq!(problem(text("1e-400"), &kind), Some("out_of_range"));
            assert_eq!(problem(text("0.0e5"), &kind), None);
            assert_eq!(problem(text("-Infinity"), &kind), None);
            assert_eq!(problem(text("inf"), &kind), None);
            assert_eq!(problem(text("NaN"), &kind), None);
        }
        assert_eq!(
            convert(text("0.25"), &Kind::Float8, false),
            Ok(Cell::F64(0.25))
        );
    }

    #[test]
    fn text_must_be_utf8_without_nul() {
        let misfit = |v| {
            convert(
                v,
                &Kind::Text {
                    max_chars: None,
                    padded: false,
                },
                false,
            )
            .err()
            .map(|m| m.problem)
        };
        assert_eq!(misfit(ValueRef::Text(b"ok\xff")), Some("invalid_utf8"));
        assert_eq!(misfit(ValueRef::Text(b"a\0b")), Some("nul_byte_in_text"));
        assert_eq!(misfit(ValueRef::Blob(b"x")), Some("blob_in_text_column"));
        // Named after the column it cannot go into.
        let into = |v, kind: Kind| convert(v, &kind, false).err().map(|m| m.problem);
        assert_eq!(
            into(ValueRef::Blob(b"{}"), Kind::Jsonb),
            Some("blob_in_json_column")
        );
        assert_eq!(
            into(ValueRef::Blob(b"{}"), Kind::Json),
            Some("blob_in_json_column")
        );
        assert_eq!(
            into(ValueRef::Integer(3), Kind::Time),
            Some("number_in_time_column")
        );
        assert_eq!(
            into(ValueRef::Blob(b"x"), Kind::Time),
            Some("blob_in_time_column")
        );
        let labels = Kind::Enum {
            labels: vec!["a".into()],
        };
        assert_eq!(
            into(ValueRef::Integer(1), labels.clone()),
            Some("number_in_enum_column")
        );
        assert_eq!(
            into(ValueRef::Blob(b"a"), labels),
            Some("blob_in_enum_column")
        );
        assert_eq!(misfit(text("héllo 🎉")), None);
        let short = Kind::Text {
            max_chars: Some(3),
            padded: false,
        };
        assert_eq!(
            convert(text("abcd"), &short, false)
                .err()
                .map(|m| m.problem),
            Some("too_long")
        );
        assert_eq!(
            convert(text("äöü"), &short, false),
            Ok(Cell::Text("äöü".into()))
        );
    }

    #[test]
    fn dates_in_sqlite_s_three_storages() {
        let tz = Kind::TimestampTz {
            precision: 6,
            epoch: Epoch::default(),
        };
        let at = |v| match convert(v, &tz, false) {
            Ok(Cell::TimestampTz(t)) => t.to_rfc3339(),
            other => format!("{other:?}"),
        };
        assert_eq!(at(text("2024-02-29")), "2024-02-29T00:00:00+00:00");
        assert_eq!(at(text("2024-02-29 13:45")), "2024-02-29T13:45:00+00:00");
        assert_eq!(
            at(text("2024-02-29T13:45:12.5Z")),
            "2024-02-29T13:45:12.500+00:00"
        );
        assert_eq!(
            at(text("2024-02-29 13:45:12+02:00")),
            "2024-02-29T11:45:12+00:00"
        );
        assert_eq!(at(ValueRef::Integer(0)), "1970-01-01T00:00:00+00:00");
        assert_eq!(at(ValueRef::Real(2_440_588.0)), "1970-01-01T12:00:00+00:00");
        assert!(convert(text("yesterday"), &tz, false).is_err());
        assert_eq!(
            convert(
                text("2024-01-01 10:00"),
                &Kind::Date {
                    epoch: Epoch::default()
                },
                false
            )
            .err()
            .map(|m| m.problem),
            Some("time_in_date_column")
        );
    }

    #[test]
    fn numbers_in_date_columns_are_read_in_their_unit_or_refused() {
        let at = |value, epoch: Epoch| {
            let kind = Kind::TimestampTz {
                precision: 6,
                epoch,
            };
            match convert(value, &kind, false) {
                Ok(Cell::TimestampTz(t)) => t.to_rfc3339(),
                Ok(other) => format!("{other:?}"),
                Err(misfit) => misfit.problem.to_string(),
            }
        };
        let millis = 1_704_164_645_123i64;
        // Read as seconds it would be the year 55972: refused, never loaded.
        assert_eq!(
            at(ValueRef::Integer(millis), Epoch::default()),
            "epoch_unit_mismatch"
        );
        assert_eq!(
            at(
                ValueRef::Integer(millis),
                Epoch::decided(EpochUnit::Seconds)
            ),
            "epoch_unit_mismatch"
        );
        assert_eq!(
            at(
                ValueRef::Integer(100_000_000_000_000_000),
                Epoch::decided(EpochUnit::Millis)
            ),
            "date_out_of_range"
        );
        let detected = Epoch {
            integer: EpochUnit::Millis,
            ..Epoch::default()
        };
        assert_eq!(
            at(ValueRef::Integer(millis), detected),
            "2024-01-02T03:04:05.123+00:00"
        );
        // Seconds among milliseconds: it would land in January 1970.
        assert_eq!(
            at(ValueRef::Integer(1_704_164_645), detected),
            "epoch_unit_mismatch"
        );
        // Decided or detected, seconds among milliseconds are refused.
        assert_eq!(
            at(
                ValueRef::Integer(1_704_164_645),
                Epoch::decided(EpochUnit::Millis)
            ),
            "epoch_unit_mismatch"
        );
        assert_eq!(
            at(
                ValueRef::Integer(1_704_164_645_123_456),
                Epoch::decided(EpochUnit::Micros)
            ),
            "2024-01-02T03:04:05.123456+00:00"
        );
        // REAL: a Julian day unless decided; Unix seconds with a fraction when told.
        assert_eq!(
            at(ValueRef::Real(2_460_311.5), Epoch::default()),
            "2024-01-02T00:00:00+00:00"
        );
        // As SQLite's datetime() reads it: whole milliseconds.
        assert_eq!(
            at(ValueRef::Real(2_460_312.51), Epoch::default()),
            "2024-01-03T00:14:24+00:00"
        );
        assert_eq!(
            at(ValueRef::Real(1_704_164_645.25), Epoch::default()),
            "date_out_of_range"
        );
        assert_eq!(
            at(
                ValueRef::Real(1_704_164_645.25),
                Epoch::decided(EpochUnit::Seconds)
            ),
            "2024-01-02T03:04:05.250+00:00"
        );
        assert_eq!(
            at(
                ValueRef::Integer(2_460_311),
                Epoch::decided(EpochUnit::Julian)
            ),
            "2024-01-01T12:00:00+00:00"
        );
        // A whole Julian day (SQLite's NUMERIC affinity makes 2460312.0 an
        // integer) is not a moment of January 1970.
        assert_eq!(EpochUnit::natural(2_460_312), Some(EpochUnit::Julian));
        assert_eq!(
            at(ValueRef::Integer(2_460_312), Epoch::default()),
            "epoch_unit_mismatch"
        );
        let julian = Epoch {
            integer: EpochUnit::Julian,
            ..Epoch::default()
        };
        assert_eq!(
            at(ValueRef::Integer(2_460_312), julian),
            "2024-01-02T12:00:00+00:00"
        );
        assert_eq!(EpochUnit::natural(millis), Some(EpochUnit::Millis));
        assert_eq!(EpochUnit::natural(0), Some(EpochUnit::Seconds));
        assert_eq!(EpochUnit::natural(i64::MAX), None);
        assert_eq!(
            at(ValueRef::Integer(i64::MIN), Epoch::default()),
            "date_out_of_range"
        );
    }

    #[test]
    fn values_are_shown_as_text_never_as_raw_bytes() {
        let shown = |kind: &Kind, value: ValueRef<'_>| {
            let cell = convert(value, kind, false).unwrap_or(Cell::Null);
            let mut buf = BytesMut::new();
            let size = encode(&cell, &Type::TEXT, &mut buf);
            display_value(kind, size.map(|_| &buf[..]))
        };
        let tz = Kind::TimestampTz {
            precision: 6,
            epoch: Epoch::default(),
        };
        assert_eq!(
            shown(&tz, text("2024-01-02 03:04:05.5")),
            "2024-01-02 03:04:05.500+00"
        );
        assert_eq!(
            shown(
                &Kind::Date {
                    epoch: Epoch::default()
                },
                text("1999-12-31")
            ),
            "1999-12-31"
        );
        assert_eq!(shown(&Kind::Bool, ValueRef::Integer(1)), "true");
        assert_eq!(shown(&Kind::Float8, ValueRef::Real(0.1)), "0.1");
        assert_eq!(shown(&Kind::Time, text("13:45")), "13:45:00");
        assert_eq!(
            shown(&Kind::Bytea, ValueRef::Blob(&[0xde, 0xad])),
            "\\xdead"
        );
        assert_eq!(
            shown(&Kind::Bytea, ValueRef::Blob(&[7; 100])),
            format!("\\x{}… (100 bytes)", "07".repeat(16))
        );
        assert_eq!(shown(&Kind::Int4, ValueRef::Null), "NULL");
        let mut marked = UNCONVERTIBLE.to_vec();
        marked.extend_from_slice(b"\"abc\"");
        assert_eq!(
            display_value(&Kind::Int4, Some(&marked)),
            "unconvertible (\"abc\")"
        );
    }

    proptest::proptest! {
        #[test]
        fn every_integer_and_double_survives_numeric(i in proptest::num::i64::ANY, f in proptest::num::f64::NORMAL) {
            proptest::prop_assert_eq!(roundtrip(&i.to_string()), i.to_string());
            // The digits Display gives are the exact shortest decimal of the double.
            let text = format!("{f}");
            let back: f64 = roundtrip(&text).parse().unwrap_or(f64::NAN);
            proptest::prop_assert_eq!(back, f);
        }

        #[test]
        fn no_input_makes_the_conversion_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let kinds = [
                Kind::Bool, Kind::Int2, Kind::Int8, Kind::Float4, Kind::Float8,
                Kind::Numeric { precision: Some(5), scale: Some(2) }, Kind::Numeric { precision: None, scale: None },
                Kind::Text { max_chars: Some(3), padded: true }, Kind::Bytea,
                Kind::Timestamp { precision: 0, epoch: Epoch::default() },
                Kind::TimestampTz { precision: 6, epoch: Epoch::decided(EpochUnit::Millis) },
                Kind::Date { epoch: Epoch::default() }, Kind::Time,
                Kind::Uuid, Kind::Json, Kind::Jsonb, Kind::Enum { labels: vec!["a".into()] },
            ];
            for kind in &kinds {
                for value in [ValueRef::Text(&bytes), ValueRef::Blob(&bytes)] {
                    if let Ok(cell) = convert(value, kind, true) {
                        let mut buf = BytesMut::new();
                        let mut out = Vec::new();
                        let size = encode(&cell, &Type::TEXT, &mut buf);
                        canonical(kind, size.map(|_| &buf[..]), &mut out);
                    }
                }
            }
        }
    }

    #[test]
    fn canonical_forms_ignore_what_postgres_ignores() {
        let canon = |kind: &Kind, raw: &[u8]| {
            let mut out = Vec::new();
            canonical(kind, Some(raw), &mut out);
            out
        };
        let padded = Kind::Text {
            max_chars: Some(5),
            padded: true,
        };
        assert_eq!(canon(&padded, b"ab   "), canon(&padded, b"ab"));
        // jsonb ignores whitespace and key order; json keeps its text.
        assert_eq!(
            canon(&Kind::Jsonb, b"\x01{\"b\": 1, \"a\": [1, 2]}"),
            canon(&Kind::Jsonb, b"\x01{\"a\":[1,2],\"b\":1}")
        );
        assert_ne!(
            canon(&Kind::Json, b"{\"b\": 1, \"a\": [1, 2]}"),
            canon(&Kind::Json, b"{\"a\":[1,2],\"b\":1}")
        );
        assert_ne!(
            canon(&Kind::Json, b"{\"a\":1e2}"),
            canon(&Kind::Json, b"{\"a\":100}")
        );
        let mut null = Vec::new();
        canonical(&Kind::Int4, None, &mut null);
        assert_ne!(
            null,
            canon(
                &Kind::Text {
                    max_chars: None,
                    padded: false
                },
                b""
            )
        );
    }
}
