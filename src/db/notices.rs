//! What the server says besides answers: `RAISE NOTICE` in a migration,
//! `NOTICE: relation "x" already exists, skipping`, a `WARNING`.
//!
//! Each connection's task keeps them (`drive`) and says when one arrives;
//! the migration running on it turns them into events while it runs
//! (Flyway prints them as `DB:` lines; a migration that reports its
//! progress with `RAISE NOTICE` should be heard as it goes, not at its end). The server sends a notice before the answer to the statement
//! that raised it, and the task reads messages in order, so a statement's
//! notices are kept by the time its answer arrives.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::{AsyncMessage, Connection};

/// Notices kept per connection; older ones are counted, not kept (a loop
/// that raises one per row must not fill the memory).
const KEPT: usize = 200;

/// One notice, as the server worded it (also how the run report keeps it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServerNotice {
    /// `NOTICE`, `WARNING`, `INFO`…
    pub severity: String,
    /// The message.
    pub message: String,
    /// Its DETAIL, when it has one.
    pub detail: Option<String>,
    /// Its HINT, when it has one.
    pub hint: Option<String>,
}

/// The notices of one connection, shared with its task.
#[derive(Debug, Clone, Default)]
pub(crate) struct Notices {
    inner: Arc<Mutex<Kept>>,
    arrived: Arc<tokio::sync::Notify>,
}

#[derive(Debug, Default)]
struct Kept {
    notices: VecDeque<ServerNotice>,
    dropped: usize,
}

impl Notices {
    fn push(&self, notice: ServerNotice) {
        let mut kept = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.notices.len() == KEPT {
            kept.notices.pop_front();
            kept.dropped += 1;
        }
        kept.notices.push_back(notice);
        drop(kept);
        // A permit is kept when nobody waits: no notice goes unannounced.
        self.arrived.notify_one();
    }

    /// Returns once a notice has arrived since the last time it returned.
    pub(crate) async fn arrived(&self) {
        self.arrived.notified().await;
    }

    /// The notices since the last call, and how many older ones were not
    /// kept.
    pub(crate) fn take(&self) -> (Vec<ServerNotice>, usize) {
        let mut kept = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let dropped = std::mem::take(&mut kept.dropped);
        (kept.notices.drain(..).collect(), dropped)
    }
}

/// Runs `connection` until it closes, keeping its notices in `notices`.
pub(crate) fn drive<S, T>(connection: Connection<S, T>, notices: Notices)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut connection = connection;
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notice(notice)) => {
                    tracing::info!(
                        target: "migsafe::db",
                        "server {}: {}",
                        notice.severity(),
                        notice.message()
                    );
                    notices.push(ServerNotice {
                        severity: notice.severity().to_string(),
                        message: notice.message().to_string(),
                        detail: notice.detail().map(str::to_string),
                        hint: notice.hint().map(str::to_string),
                    });
                }
                Ok(_) => {}
                // The connection is gone; the client's next call says so.
                Err(_) => break,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_latest_are_kept_and_the_rest_counted() {
        let notices = Notices::default();
        for i in 0..KEPT + 5 {
            notices.push(ServerNotice {
                severity: "NOTICE".into(),
                message: format!("row {i}"),
                detail: None,
                hint: None,
            });
        }
        let (kept, dropped) = notices.take();
        assert_eq!((kept.len(), dropped), (KEPT, 5));
        assert_eq!(kept[0].message, "row 5");
        assert_eq!(notices.take(), (Vec::new(), 0));
    }
}
