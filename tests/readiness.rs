//! `migsafe wait`: for start-up ordering in containers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{TestDb, expect_exit, migsafe_command, two_tables};

#[test]
fn wait_times_out_with_a_clear_message_when_nothing_listens() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let output = migsafe_command()
        .args([
            "wait",
            "--timeout",
            "1s",
            "--database-url",
            &format!("postgres://app:Sekr1t-pw@127.0.0.1:{closed}/db"),
        ])
        .output()
        .unwrap();
    let out = expect_exit(&output, 7);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waits the whole timeout"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        out.contains("error[WAIT_TIMEOUT]") && out.contains("Connection refused"),
        "{out}"
    );
    assert!(!out.contains("Sekr1t-pw"), "{out}");
}

#[test]
fn wait_migrated_waits_for_pending_migrations_then_succeeds() {
    let db = TestDb::new();
    let project = two_tables();
    let out = project.run(&db, &["wait", "--timeout", "2s"], 0);
    assert!(out.starts_with("ready after"), "{out}");
    let out = project.run(&db, &["wait", "--migrated", "--timeout", "1s"], 7);
    assert!(out.contains("2 pending migration(s)"), "{out}");
    // Another process applies while wait is waiting.
    let waiter = std::process::Command::new(common::migsafe_bin())
        .current_dir(project.path())
        .env("DATABASE_URL", &db.url)
        .args(["wait", "--migrated", "--timeout", "30s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    project.run(&db, &["apply", "--skip-backup"], 0);
    let out = expect_exit(&waiter.wait_with_output().unwrap(), 0);
    assert!(out.contains("ready and fully migrated"), "{out}");
}
