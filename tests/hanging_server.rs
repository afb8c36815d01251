//! A server that accepts the connection and never answers (a stuck proxy, an
//! overloaded pooler): every command and the library give up within
//! `connect_timeout`, `wait --timeout` is kept to the second, and the first
//! SIGTERM ends a wait at once. Timings are asserted with generous upper
//! bounds only: they prove "bounded", not "exact".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Project, migsafe_bin, migsafe_command, two_tables};

/// What the fake server does with each connection.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Accepts and never reads or writes.
    Silent,
    /// Completes the startup handshake (no TLS, no password), then never
    /// answers a query: a pooler with no server connection to give.
    SilentAfterLogin,
}

/// A local TCP server that holds every connection it accepts; returns its port.
fn hanging_server(behaviour: Behaviour) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            match behaviour {
                Behaviour::Silent => held.push(stream),
                Behaviour::SilentAfterLogin => {
                    std::thread::spawn(move || log_in_then_hang(stream));
                }
            }
        }
    });
    port
}

fn log_in_then_hang(mut stream: TcpStream) {
    loop {
        let mut length = [0u8; 4];
        if stream.read_exact(&mut length).is_err() {
            return;
        }
        let mut body = vec![0u8; (u32::from_be_bytes(length) as usize).saturating_sub(4)];
        if stream.read_exact(&mut body).is_err() {
            return;
        }
        // SSLRequest (80877103): "no TLS here", then the startup message comes.
        if body == [0x04, 0xd2, 0x16, 0x2f] {
            stream.write_all(b"N").unwrap();
            continue;
        }
        // AuthenticationOk, then ReadyForQuery (idle).
        stream
            .write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 0, b'Z', 0, 0, 0, 5, b'I'])
            .unwrap();
        break;
    }
    // Read whatever comes and never answer.
    let mut sink = [0u8; 1024];
    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
}

fn url(port: u16, params: &str) -> String {
    format!("postgres://app:Hang1ng-pw@127.0.0.1:{port}/db{params}")
}

/// Runs migsafe in `project` against `url`; returns the exit code, output
/// and how long it took.
fn timed(project: &Project, url: &str, args: &[&str]) -> (i32, String, Duration) {
    let started = Instant::now();
    let output = migsafe_command()
        .current_dir(project.path())
        .env("DATABASE_URL", url)
        .args(args)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let took = started.elapsed();
    let all = common::text(&output);
    assert!(!all.contains("Hang1ng-pw"), "{all}");
    (output.status.code().unwrap_or(-1), all, took)
}

#[test]
fn apply_and_status_give_up_after_connect_timeout() {
    let project = two_tables();
    for behaviour in [Behaviour::Silent, Behaviour::SilentAfterLogin] {
        let port = hanging_server(behaviour);
        let url = url(port, "?connect_timeout=2");
        for args in [&["apply"][..], &["status"], &["history"], &["plan"]] {
            let (code, out, took) = timed(&project, &url, args);
            assert_eq!(code, 5, "{args:?}: {out}");
            assert!(
                out.contains("error[DATABASE_UNREACHABLE]"),
                "{args:?}: {out}"
            );
            assert!(
                out.contains("within 2s (connect_timeout)"),
                "{args:?}: {out}"
            );
            assert!(
                took >= Duration::from_millis(1900) && took < Duration::from_secs(8),
                "{args:?} took {took:?}"
            );
        }
        if let Behaviour::SilentAfterLogin = behaviour {
            let (_, out, _) = timed(&project, &url, &["status"]);
            assert!(out.contains("the first query got no answer"), "{out}");
        }
    }
}

#[test]
fn wait_keeps_its_timeout_against_a_server_that_never_answers() {
    let project = two_tables();
    let port = hanging_server(Behaviour::Silent);
    // connect_timeout (default 10s) is longer than the wait: the wait wins.
    for args in [
        &["wait", "--timeout", "3s"][..],
        &["wait", "--migrated", "--timeout", "3s"],
    ] {
        let (code, out, took) = timed(&project, &url(port, ""), args);
        assert_eq!(code, 7, "{out}");
        assert!(out.contains("error[WAIT_TIMEOUT]"), "{out}");
        assert!(out.contains("no answer yet"), "{out}");
        assert!(
            took >= Duration::from_millis(2900) && took < Duration::from_secs(6),
            "{args:?} took {took:?}"
        );
    }
}

/// Starts migsafe and sends it SIGTERM after a second; returns the exit
/// code, output and how long it took to end after the signal.
fn terminated(project: &Project, url: &str, args: &[&str]) -> (Option<i32>, String, Duration) {
    let child = Command::new(migsafe_bin())
        .current_dir(project.path())
        .env("DATABASE_URL", url)
        .env("NO_COLOR", "1")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let signalled = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        common::text(&output),
        signalled.elapsed(),
    )
}

#[test]
fn the_first_sigterm_ends_a_wait_at_once() {
    let project = two_tables();
    let port = hanging_server(Behaviour::Silent);
    // Waiting for a server that never answers.
    let (code, out, took) = terminated(&project, &url(port, ""), &["wait", "--timeout", "60s"]);
    assert_eq!(code, Some(130), "{out}");
    assert!(out.contains("error[INTERRUPTED]"), "{out}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    // Between two looks at a server that refuses.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, out, took) = terminated(&project, &url(closed, ""), &["wait", "--timeout", "60s"]);
    assert_eq!(code, Some(130), "{out}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    // A command still connecting.
    let (code, out, took) = terminated(&project, &url(port, "?connect_timeout=30"), &["apply"]);
    assert_eq!(code, Some(130), "{out}");
    assert!(out.contains("error[INTERRUPTED]"), "{out}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn the_library_bounds_every_connection_and_honours_the_interrupt() {
    let project = two_tables();
    let port = hanging_server(Behaviour::Silent);
    let migrator = |url: String| {
        let config = migsafe::Config::load(None, project.path()).unwrap();
        migsafe::Migrator::new(config)
            .with_database_url(Some(url))
            .with_log_dir(project.path().join("logs"))
    };
    let rt = runtime();

    let started = Instant::now();
    let err = rt
        .block_on(migrator(url(port, "?connect_timeout=2")).status(None))
        .unwrap_err();
    assert_eq!(err.reason().to_string(), "DATABASE_UNREACHABLE");
    assert_eq!(err.exit_code(), 5);
    assert!(started.elapsed() < Duration::from_secs(8));

    let started = Instant::now();
    let err = rt
        .block_on(migrator(url(port, "?connect_timeout=2")).require_up_to_date(None))
        .unwrap_err();
    assert_eq!(err.reason().to_string(), "DATABASE_UNREACHABLE");
    assert!(started.elapsed() < Duration::from_secs(8));

    let started = Instant::now();
    let err = rt
        .block_on(
            migrator(url(port, "?connect_timeout=2"))
                .apply(None, &migsafe::pipeline::apply::ApplyOptions::default()),
        )
        .unwrap_err();
    assert_eq!(err.reason().to_string(), "DATABASE_UNREACHABLE");
    assert!(started.elapsed() < Duration::from_secs(8));

    // A service shutting down stops a connection attempt at once.
    let interrupt = migsafe::Interrupt::new();
    let stopper = interrupt.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        stopper.trigger();
    });
    let started = Instant::now();
    let err = rt
        .block_on(
            migrator(url(port, "?connect_timeout=30"))
                .with_interrupt(interrupt)
                .require_up_to_date(None),
        )
        .unwrap_err();
    assert_eq!(err.reason().to_string(), "INTERRUPTED");
    assert_eq!(err.exit_code(), 130);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn a_plain_refused_connection_still_fails_fast() {
    let project = two_tables();
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, out, took) = timed(&project, &url(closed, ""), &["status"]);
    assert_eq!(code, 5, "{out}");
    assert!(out.contains("Connection refused"), "{out}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}
