//! The JSONL event log (`logs/migrations.jsonl`, SPEC 12a) and the helpers
//! every report file uses: owner-only permissions and secrets scrubbed.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{SecondsFormat, Utc};
use serde::Serialize;

use crate::db::scrub;
use crate::error::{Error, Result};
use crate::events::{Event, EventSink};

/// The event log file name inside the log directory.
pub const EVENT_LOG: &str = "migrations.jsonl";

/// Appends one JSON object per event to `<log dir>/migrations.jsonl`.
pub struct EventLog {
    path: PathBuf,
    file: Mutex<File>,
}

#[derive(Serialize)]
struct Line<'a> {
    ts: String,
    tool_version: &'static str,
    #[serde(flatten)]
    event: &'a Event,
}

impl EventLog {
    /// Opens (creating with mode 0600, in a 0700 directory) the event log.
    pub fn open(log_dir: &Path) -> Result<EventLog> {
        create_private_dir(log_dir)?;
        let path = log_dir.join(EVENT_LOG);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(&path, "open the event log", &e))?;
        Ok(EventLog {
            path,
            file: Mutex::new(file),
        })
    }

    /// Where the log is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl EventSink for EventLog {
    fn emit(&self, event: &Event) {
        let line = Line {
            ts: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            tool_version: env!("CARGO_PKG_VERSION"),
            event,
        };
        let Ok(mut text) = serde_json::to_string(&line) else {
            return;
        };
        text = scrub(&text);
        text.push('\n');
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // One write per line with O_APPEND: concurrent runners never interleave lines.
        if let Err(err) = file.write_all(text.as_bytes()) {
            tracing::warn!("cannot write the event log {}: {err}", self.path.display());
        }
    }
}

/// Creates a directory (and parents) readable only by its owner.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(dir, "create the directory", &e))
}
