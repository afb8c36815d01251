//! `migsafe sandbox` always removes its server and directory: on Ctrl-C, and
//! (through its watchdog) when migsafe itself is killed with SIGKILL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn start_sandbox(base: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(common::migsafe_bin())
        .arg("sandbox")
        .env("MIGSAFE_SANDBOX_DIR", base)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().to_string();
    assert!(url.starts_with("postgres://postgres:"), "{url}");
    (child, url)
}

fn accepts(url: &str) -> bool {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        match tokio_postgres::connect(url, tokio_postgres::NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                client.simple_query("SELECT 1").await.is_ok()
            }
            Err(_) => false,
        }
    })
}

fn wait_until_gone(url: &str, base: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let empty = std::fs::read_dir(base).unwrap().next().is_none();
        if empty && !accepts(url) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the sandbox outlived its process"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn ctrl_c_stops_and_removes_the_sandbox() {
    let base = tempfile::tempdir().unwrap();
    let (child, url) = start_sandbox(base.path());
    assert!(accepts(&url));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    wait_until_gone(&url, base.path());
}

#[test]
fn sigkill_of_migsafe_still_removes_the_sandbox() {
    let base = tempfile::tempdir().unwrap();
    let (mut child, url) = start_sandbox(base.path());
    assert!(accepts(&url));
    child.kill().unwrap();
    child.wait().unwrap();
    wait_until_gone(&url, base.path());
}

#[test]
fn the_demo_runs_every_step_against_its_own_sandbox() {
    let output = common::migsafe_command()
        .arg("demo")
        .timeout(std::time::Duration::from_secs(300))
        .output()
        .unwrap();
    let text = common::expect_exit(&output, 0);
    assert!(text.contains("demo complete"), "{text}");
    assert!(text.contains("DOWN_SCRIPT_MISSING"), "{text}");
    assert!(
        text.contains("verify passed: every table is identical"),
        "{text}"
    );
}

/// `sandbox --standbys 1`: a primary and a hot standby streaming from it,
/// both removed (servers and directories) when migsafe is killed.
#[test]
fn standbys_stream_and_go_with_the_sandbox_even_on_sigkill() {
    let base = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::migsafe_bin())
        .args(["sandbox", "--standbys", "1"])
        .env("MIGSAFE_SANDBOX_DIR", base.path())
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let primary = lines.next().unwrap().unwrap();
    let standby = lines.next().unwrap().unwrap();
    assert_ne!(primary, standby);
    assert_eq!(
        common::query(&standby, "SELECT pg_is_in_recovery()::text")[0][0].as_deref(),
        Some("true")
    );
    assert_eq!(
        common::query(
            &primary,
            "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'standby1'"
        )[0][0]
            .as_deref(),
        Some("1")
    );
    child.kill().unwrap();
    child.wait().unwrap();
    wait_until_gone(&primary, base.path());
    wait_until_gone(&standby, base.path());
}
