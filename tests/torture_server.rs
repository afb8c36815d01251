//! Reliability: the server crashes (`pg_ctl restart -m immediate`) at a random
//! moment of a 50-migration apply. migsafe must exit 2 with a clear connection
//! error (or 0 if it finished first) and never hang; the history must match the
//! schema; the next apply must converge to the clean schema. Its own test binary:
//! it restarts the sandbox under everything else.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{TestDb, migsafe_bin, sandbox};

#[test]
fn crashed_server() {
    let rounds: usize = std::env::var("TORTURE_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(2);
    let project = common::fifty();
    let reference = {
        let db = TestDb::new();
        project.run(&db, &["-q", "apply", "--skip-backup"], 0);
        common::checksum(&project, &db)
    };
    let (mut clean_exit, mut hangs, mut consistent, mut converged) = (0, 0, 0, 0);
    for _ in 0..rounds {
        let db = TestDb::new();
        let child = Command::new(migsafe_bin())
            .current_dir(project.path())
            .env("DATABASE_URL", &db.url)
            .args(["apply", "--skip-backup"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(fastrand::u64(50..900)));
        sandbox()
            .pg_ctl(&["-m", "immediate", "-w", "-t", "60", "restart"])
            .unwrap();
        let started = Instant::now();
        let output = child.wait_with_output().unwrap();
        if started.elapsed() > Duration::from_secs(30) {
            hangs += 1;
        }
        let text = common::text(&output);
        match output.status.code() {
            Some(0) => clean_exit += 1,
            Some(2)
                if text.contains("connection")
                    || text.contains("DATABASE_UNREACHABLE")
                    || text.contains("MIGRATION_") =>
            {
                clean_exit += 1
            }
            // The crash hit migsafe's first connection: nothing had started.
            Some(5) if text.contains("error[DATABASE_UNREACHABLE]: cannot connect") => {
                clean_exit += 1
            }
            other => eprintln!("unexpected exit {other:?}:\n{text}"),
        }
        assert!(!text.contains(sandbox().password()));
        if common::history_matches_tables(&db) {
            consistent += 1;
        }
        let next = project
            .migsafe(&db)
            .args(["-q", "apply", "--skip-backup"])
            .output()
            .unwrap();
        if next.status.success() && common::checksum(&project, &db) == reference {
            converged += 1;
        } else {
            eprintln!("{}", common::text(&next));
        }
    }
    println!(
        "crashed server: {rounds} run(s) with an immediate server restart at a random moment: migsafe exited with a clear connection error (2, or 5 when it hit the first connect; 0 when it finished first) in {clean_exit}/{rounds}, hung in {hangs}; history matched the schema in {consistent}/{rounds}; the next apply converged in {converged}/{rounds}"
    );
    assert_eq!(
        (clean_exit, hangs, consistent, converged),
        (rounds, 0, rounds, rounds)
    );
}
