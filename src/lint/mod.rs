//! Migration lint (SPEC 7): reads the SQL with the PostgreSQL grammar and, when
//! it has a database, the live catalog, and says which statements take locks
//! that stall production, rewrite tables, or break the running application —
//! with the lock, the table size, and the safe alternative.

pub mod ast;
pub mod context;
pub mod docs;
pub mod engine;
pub mod online;
pub mod rules;

pub use context::{Context, TableSize};
pub use engine::{Finding, Script, Severity, lint};
