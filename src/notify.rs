//! Webhook notices (SPEC 18): `[notify] webhook_url_env = "NAME"` posts a
//! JSON notice on start, success, failure and rollback of `apply` and
//! `rollback`, Slack-compatible (`text`) with structured fields.
//!
//! The notices are made from events, like every other output of the
//! library: [`Notifier`] is an [`EventSink`] the [`crate::Migrator`] adds for
//! the length of a run, so a service embedding migsafe (with the `notify`
//! feature) sends the same notices as the CLI.
//!
//! A notice must never fail or hold up a migration: they are posted in
//! order by one thread of their own (blocking HTTP over rustls, ureq), each
//! within [`NOTICE_TIMEOUT`]; one that fails or is late is a warning (a
//! [`Event::NoticeFailed`] event), and at the end of the run the migrator
//! waits for what is still queued at most [`NOTICE_TIMEOUT`], then goes on.
//! The URL, which carries the webhook's secret in its path, is registered
//! as a secret, so no message or log shows it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;

use crate::db::scrub;
use crate::events::{Direction, Event, EventSink};

/// The longest a notice may take, and the longest the end of a run waits
/// for the notices still queued.
pub const NOTICE_TIMEOUT: Duration = Duration::from_secs(5);

/// The JSON document posted to the webhook.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Notice {
    /// One line for people (what Slack shows).
    pub text: String,
    /// `start`, `success`, `failure` or `rollback`.
    pub event: String,
    /// Namespace.
    pub namespace: String,
    /// The versions run (or about to run), in order.
    pub versions: Vec<String>,
    /// The failure's reason code; null otherwise.
    pub reason: Option<String>,
    /// The database, without its password.
    pub database: String,
    /// `apply` or `rollback`.
    pub command: String,
    /// The migsafe version.
    pub tool_version: &'static str,
}

struct Job {
    notice: Notice,
}

/// Sends notices for the events of one run (see the module docs).
pub struct Notifier {
    sender: Mutex<Option<Sender<Job>>>,
    /// Notices queued or in flight.
    pending: Arc<AtomicUsize>,
    drained: Arc<tokio::sync::Notify>,
    /// Namespace → its database as shown (no password).
    databases: BTreeMap<String, String>,
    /// Versions announced per namespace (`plan` events), for the failure
    /// notice of a namespace that stopped half way.
    planned: Mutex<HashMap<String, (Direction, Vec<String>)>>,
    warnings: Arc<dyn EventSink>,
    /// The URL was not there: said once, nothing sent.
    missing: Option<String>,
    warned_missing: Mutex<bool>,
}

impl Notifier {
    /// A notifier posting to the URL in the environment variable `env_name`
    /// (a missing variable is a warning at the first notice, not an error).
    /// `databases` gives each namespace's database as shown; warnings go to
    /// `warnings`.
    pub fn from_env(
        env_name: &str,
        databases: BTreeMap<String, String>,
        warnings: Arc<dyn EventSink>,
    ) -> Notifier {
        match std::env::var(env_name) {
            Ok(url) if !url.trim().is_empty() => Notifier::new(url.trim(), databases, warnings),
            _ => Notifier {
                sender: Mutex::new(None),
                pending: Arc::new(AtomicUsize::new(0)),
                drained: Arc::new(tokio::sync::Notify::new()),
                databases,
                planned: Mutex::new(HashMap::new()),
                warnings,
                missing: Some(format!(
                    "[notify] webhook_url_env names {env_name}, which is not set or empty: no notice sent"
                )),
                warned_missing: Mutex::new(false),
            },
        }
    }

    /// A notifier posting to `url`.
    pub fn new(
        url: &str,
        databases: BTreeMap<String, String>,
        warnings: Arc<dyn EventSink>,
    ) -> Notifier {
        register_url(url);
        let (sender, receiver) = channel::<Job>();
        let pending = Arc::new(AtomicUsize::new(0));
        let drained = Arc::new(tokio::sync::Notify::new());
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(NOTICE_TIMEOUT))
            .http_status_as_error(true)
            .user_agent(concat!("migsafe/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let url = url.to_string();
        let (left, done, warn) = (pending.clone(), drained.clone(), warnings.clone());
        let spawned = std::thread::Builder::new()
            .name("migsafe-notify".into())
            .spawn(move || {
                for job in receiver {
                    // Scrubbed like every other output: a failure message
                    // quoting a URL never carries its password.
                    let body = scrub(&serde_json::to_string(&job.notice).unwrap_or_default());
                    let posted = agent
                        .post(&url)
                        .header("content-type", "application/json")
                        .send(body.as_str());
                    if let Err(err) = posted {
                        warn.emit(&Event::NoticeFailed {
                            notice: job.notice.event.clone(),
                            namespace: job.notice.namespace.clone(),
                            message: scrub(&describe(&err)),
                        });
                    }
                    left.fetch_sub(1, Ordering::SeqCst);
                    done.notify_waiters();
                }
            });
        let sender = match spawned {
            Ok(_) => Some(sender),
            Err(err) => {
                tracing::warn!("cannot start the notice thread: {err}");
                None
            }
        };
        Notifier {
            sender: Mutex::new(sender),
            pending,
            drained,
            databases,
            planned: Mutex::new(HashMap::new()),
            warnings,
            missing: None,
            warned_missing: Mutex::new(false),
        }
    }

    fn send(&self, mut notice: Notice) {
        notice.text = slack_escaped(&notice.text);
        if let Some(message) = &self.missing {
            let mut warned = self
                .warned_missing
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !*warned {
                *warned = true;
                self.warnings.emit(&Event::NoticeFailed {
                    notice: notice.event,
                    namespace: notice.namespace,
                    message: message.clone(),
                });
            }
            return;
        }
        let sender = self.sender.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = sender.as_ref() {
            self.pending.fetch_add(1, Ordering::SeqCst);
            if sender.send(Job { notice }).is_err() {
                self.pending.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// Waits (at most [`NOTICE_TIMEOUT`]) for the notices still queued; the
    /// ones not sent by then are warnings and are given up.
    pub async fn finish(&self) {
        // No new notice after this: the thread ends when its queue is empty.
        drop(
            self.sender
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let drained = async {
            loop {
                let notified = self.drained.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.pending.load(Ordering::SeqCst) == 0 {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(NOTICE_TIMEOUT, drained).await.is_err() {
            self.warnings.emit(&Event::NoticeFailed {
                notice: "*".into(),
                namespace: String::new(),
                message: format!(
                    "{} notice(s) not delivered within {}s; the run did not wait longer",
                    self.pending.load(Ordering::SeqCst),
                    NOTICE_TIMEOUT.as_secs()
                ),
            });
        }
    }

    fn notice(&self, event: &str, command: &str, namespace: &str, versions: &[String]) -> Notice {
        let database = self.databases.get(namespace).cloned().unwrap_or_default();
        Notice {
            text: String::new(),
            event: event.to_string(),
            namespace: namespace.to_string(),
            versions: versions.to_vec(),
            reason: None,
            database,
            command: command.to_string(),
            tool_version: env!("CARGO_PKG_VERSION"),
        }
    }
}

impl EventSink for Notifier {
    fn emit(&self, event: &Event) {
        match event {
            Event::Plan {
                namespace,
                direction,
                versions,
            } => {
                self.planned
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(namespace.clone(), (*direction, versions.clone()));
                let command = match direction {
                    Direction::Up => "apply",
                    Direction::Down => "rollback",
                };
                let mut notice = self.notice("start", command, namespace, versions);
                notice.text = format!(
                    "migsafe: {namespace}: {} {} migration(s) ({}) on {}",
                    match direction {
                        Direction::Up => "applying",
                        Direction::Down => "rolling back",
                    },
                    versions.len(),
                    versions.join(", "),
                    notice.database
                );
                self.send(notice);
            }
            Event::RunFinished {
                command,
                namespace,
                versions,
                succeeded,
                reason,
                message,
                duration_ms,
            } => {
                let took = crate::config::format_duration(Duration::from_millis(*duration_ms));
                let notice = if *succeeded {
                    let kind = if command == "rollback" {
                        "rollback"
                    } else {
                        "success"
                    };
                    let mut notice = self.notice(kind, command, namespace, versions);
                    notice.text = format!(
                        "migsafe: {namespace}: {} {} migration(s) ({}) on {} in {took}",
                        if command == "rollback" {
                            "rolled back"
                        } else {
                            "applied"
                        },
                        versions.len(),
                        versions.join(", "),
                        notice.database
                    );
                    notice
                } else {
                    let planned = self
                        .planned
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get(namespace)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_else(|| versions.clone());
                    let mut notice = self.notice("failure", command, namespace, &planned);
                    notice.reason = reason.clone();
                    notice.text = format!(
                        "migsafe: {namespace}: {command} FAILED on {}{}{}{}",
                        notice.database,
                        reason
                            .as_deref()
                            .map(|r| format!(" ({r})"))
                            .unwrap_or_default(),
                        if versions.is_empty() {
                            String::new()
                        } else {
                            format!(
                                " after {} committed ({})",
                                versions.len(),
                                versions.join(", ")
                            )
                        },
                        message
                            .as_deref()
                            .map(|m| format!(": {}", crate::run_report::summary(m)))
                            .unwrap_or_default()
                    );
                    notice
                };
                self.send(notice);
            }
            _ => {}
        }
    }
}

/// `text` as Slack reads it literally: `&`, `<` and `>` are its markup
/// (`<!channel>` mentions everyone, `<url|label>` disguises a link), and a
/// migration name or a server message may hold them.
fn slack_escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The error of one post, for people: the URL left out (ureq's messages
/// may name it), its host kept when there is one.
fn describe(err: &ureq::Error) -> String {
    match err {
        ureq::Error::StatusCode(code) => format!("the webhook answered HTTP {code}"),
        ureq::Error::Timeout(_) => format!(
            "the webhook did not answer within {}s",
            NOTICE_TIMEOUT.as_secs()
        ),
        ureq::Error::Io(io) => format!("cannot reach the webhook: {io}"),
        other => format!("the notice failed: {other}"),
    }
}

/// Registers the URL and its path as secrets (Slack's is all path).
fn register_url(url: &str) {
    crate::db::register_secret(url);
    if let Some(rest) = url.split_once("://").map(|(_, rest)| rest)
        && let Some((_, path)) = rest.split_once('/')
        && !path.is_empty()
    {
        crate::db::register_secret(&format!("/{path}"));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn slack_markup_in_a_name_is_sent_as_text() {
        assert_eq!(
            super::slack_escaped("0001 <!channel> & <http://x|click>"),
            "0001 &lt;!channel&gt; &amp; &lt;http://x|click&gt;"
        );
    }
}
