//! The canonical schema model: a snapshot read from the catalogs, its text
//! and SHA-256 checksum, and the structural diff of two snapshots. Used by
//! `migsafe schema`, drift detection, postflight and verify.

pub mod diff;
pub mod scope;
pub mod snapshot;

pub use diff::{Change, ChangeKind, diff};
pub use scope::Scope;
pub(crate) use snapshot::read;
pub use snapshot::{Reader, Snapshot};
