//! Webhook notices (SPEC 18): the bodies posted on start, success, failure
//! and rollback to a local HTTP server started here, a server that is down
//! and one that never answers (warnings, the run goes on), and no password
//! in any body.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

use common::{Project, TestDb, expect_exit, two_tables};

/// A webhook on 127.0.0.1 that records every body posted to it.
struct Hook {
    url: String,
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
    /// Sending on it lets a holding hook answer.
    release: Option<mpsc::Sender<()>>,
}

impl Hook {
    /// Answers 200 at once.
    fn answering() -> Hook {
        Hook::start(false)
    }

    /// Reads the notice, then holds the answer until the hook is dropped.
    fn holding() -> Hook {
        Hook::start(true)
    }

    fn start(hold: bool) -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://127.0.0.1:{}/services/T000/B000/hook-secret",
            listener.local_addr().unwrap().port()
        );
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let (release, released) = mpsc::channel::<()>();
        let released = Arc::new(Mutex::new(released));
        let seen = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let seen = seen.clone();
                let released = released.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut length = 0usize;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':')
                            && name.eq_ignore_ascii_case("content-length")
                        {
                            length = value.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    seen.lock()
                        .unwrap()
                        .push(serde_json::from_slice(&body).unwrap());
                    if hold {
                        let _ = released.lock().unwrap().recv();
                    }
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    );
                });
            }
        });
        Hook {
            url,
            bodies,
            release: Some(release),
        }
    }

    fn bodies(&self) -> Vec<serde_json::Value> {
        self.bodies.lock().unwrap().clone()
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        drop(self.release.take());
    }
}

/// A URL where nothing listens (a port bound, then closed).
fn down_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/hook")
}

fn notifying(project: &Project) {
    project.write(
        "migsafe.toml",
        b"[notify]\nwebhook_url_env = \"TEST_WEBHOOK\"\n\n[defaults]\nlock_timeout = \"200ms\"\n",
    );
}

fn run(project: &Project, db: &TestDb, url: &str, args: &[&str], code: i32) -> String {
    let output = project
        .migsafe(db)
        .env("TEST_WEBHOOK", url)
        .args(args)
        .output()
        .unwrap();
    expect_exit(&output, code)
}

fn no_password_in(bodies: &[serde_json::Value]) {
    let password = common::sandbox().password();
    for body in bodies {
        assert!(
            !body.to_string().contains(password),
            "a notice holds the password: {body}"
        );
    }
}

#[test]
fn start_and_success_notices_carry_the_fields_and_the_database_without_its_password() {
    let db = TestDb::new();
    let project = two_tables();
    notifying(&project);
    let hook = Hook::answering();
    run(&project, &db, &hook.url, &["apply", "--skip-backup"], 0);
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    let (start, success) = (&bodies[0], &bodies[1]);
    assert_eq!(start["event"], "start");
    assert_eq!(success["event"], "success");
    for body in &bodies {
        assert_eq!(body["namespace"], "default");
        assert_eq!(body["versions"], serde_json::json!(["0001", "0002"]));
        assert_eq!(body["reason"], serde_json::Value::Null);
        assert_eq!(body["command"], "apply");
        let database = body["database"].as_str().unwrap();
        assert!(
            database.contains("****") && database.contains(&db.name),
            "{body}"
        );
        let text = body["text"].as_str().unwrap();
        assert!(text.contains("default") && text.contains("0002"), "{text}");
    }
    no_password_in(&bodies);

    // Nothing pending: no notice (deploys run apply on every release).
    run(&project, &db, &hook.url, &["apply", "--skip-backup"], 0);
    assert_eq!(hook.bodies().len(), 2, "{:?}", hook.bodies());
}

#[test]
fn a_failing_migration_sends_a_failure_notice_with_its_reason_code() {
    let db = TestDb::new();
    let project = two_tables();
    notifying(&project);
    project.write(
        "migrations/0003_broken.up.sql",
        b"ALTER TABLE users ADD COLUMN nope integer NOT NULL DEFAULT 'x';\n",
    );
    project.write("migrations/0003_broken.down.sql", b"SELECT 1;\n");
    let hook = Hook::answering();
    run(&project, &db, &hook.url, &["apply", "--skip-backup"], 2);
    let bodies = hook.bodies();
    let failure = bodies
        .iter()
        .find(|b| b["event"] == "failure")
        .unwrap_or_else(|| panic!("no failure notice: {bodies:?}"));
    assert_eq!(failure["namespace"], "default");
    let reason = failure["reason"].as_str().unwrap();
    assert!(reason.ends_with(":default:0003"), "{reason}");
    assert!(
        failure["text"].as_str().unwrap().contains(reason),
        "{failure}"
    );
    assert_eq!(
        failure["versions"],
        serde_json::json!(["0001", "0002", "0003"])
    );
    assert!(
        failure["text"]
            .as_str()
            .unwrap()
            .contains("after 2 committed (0001, 0002)"),
        "what landed before the failure is said: {failure}"
    );
    assert!(bodies.iter().all(|b| b["event"] != "success"), "{bodies:?}");
    no_password_in(&bodies);
}

/// A run that reached the server and failed there before any migration (a
/// catalog read behind another session's lock) is a failure people hear of.
#[test]
fn a_run_failing_at_the_server_before_any_migration_sends_a_failure_notice() {
    let db = TestDb::new();
    let project = two_tables();
    notifying(&project);
    project.run(&db, &["apply", "--skip-backup", "--steps", "1"], 0);
    let (release, holder) = common::hold_lock(&db, "LOCK TABLE users IN ACCESS EXCLUSIVE MODE");
    let hook = Hook::answering();
    let output = project
        .migsafe(&db)
        .env("TEST_WEBHOOK", &hook.url)
        .args(["apply", "--skip-backup"])
        .output()
        .unwrap();
    release.send(()).unwrap();
    holder.join().unwrap();
    let text = common::text(&output);
    assert_ne!(output.status.code(), Some(0), "{text}");
    let bodies = hook.bodies();
    assert!(
        bodies.iter().any(|b| b["event"] == "failure"),
        "no failure notice: {bodies:?}\n{text}"
    );
}

#[test]
fn a_rollback_sends_a_rollback_notice() {
    let db = TestDb::new();
    let project = two_tables();
    notifying(&project);
    let hook = Hook::answering();
    run(&project, &db, &hook.url, &["apply", "--skip-backup"], 0);
    run(&project, &db, &hook.url, &["rollback", "--skip-backup"], 0);
    let bodies = hook.bodies();
    let events: Vec<&str> = bodies
        .iter()
        .map(|b| b["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        ["start", "success", "start", "rollback"],
        "{bodies:?}"
    );
    let rollback = &bodies[3];
    assert_eq!(rollback["command"], "rollback");
    assert_eq!(rollback["versions"], serde_json::json!(["0002"]));
    assert_eq!(bodies[2]["command"], "rollback");
    no_password_in(&bodies);
}

#[test]
fn a_webhook_that_is_down_is_a_warning_and_the_run_succeeds() {
    let db = TestDb::new();
    let project = two_tables();
    notifying(&project);
    let out = run(&project, &db, &down_url(), &["apply", "--skip-backup"], 0);
    assert!(
        out.contains("warning: notice `start` not delivered"),
        "{out}"
    );
    assert!(out.contains("cannot reach the webhook"), "{out}");
    let log = project.event_log();
    assert!(log.contains("\"event\":\"notice_failed\""), "{log}");
    assert_eq!(db.history("default").len(), 2);
}

#[test]
fn a_webhook_that_never_answers_does_not_hold_the_run() {
    let db = TestDb::new();
    let project = two_tables();
    notifying(&project);
    let hook = Hook::holding();
    let started = Instant::now();
    // The hook answers only once dropped, after the run: the run ends on its
    // own bound (5 s a notice), not on the server. assert_cmd's 120 s
    // timeout fails it otherwise.
    let out = run(&project, &db, &hook.url, &["apply", "--skip-backup"], 0);
    eprintln!(
        "apply with a webhook that never answers took {:?}",
        started.elapsed()
    );
    assert!(out.contains("not delivered"), "{out}");
    assert!(
        !out.contains("hook-secret"),
        "the webhook URL is a secret: {out}"
    );
    assert!(
        !project.event_log().contains("hook-secret"),
        "the webhook URL is a secret"
    );
    assert_eq!(db.history("default").len(), 2);
    // The start notice reached it (it was read, never answered).
    assert_eq!(hook.bodies()[0]["event"], "start");
    drop(hook);
}

#[test]
fn an_unset_webhook_variable_is_a_warning() {
    let db = TestDb::new();
    let project = two_tables();
    notifying(&project);
    let output = project
        .migsafe(&db)
        .env_remove("TEST_WEBHOOK")
        .args(["apply", "--skip-backup"])
        .output()
        .unwrap();
    let out = expect_exit(&output, 0);
    assert!(out.contains("TEST_WEBHOOK, which is not set"), "{out}");
}
