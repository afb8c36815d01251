//! The HTML run report (SPEC 18): written by every apply, rollback and
//! verify beside the JSON reports, 0600, self-contained, escaped, and
//! rendered by headless Chromium without a console error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Project, TestDb, expect_exit, two_tables};

/// The report files of a kind (`report-…html`, `run-report-…json`), oldest first.
fn files(project: &Project, prefix: &str, ext: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(project.path().join("logs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(prefix) && name.ends_with(ext)
        })
        .collect();
    found.sort();
    found
}

fn newest_html(project: &Project) -> (PathBuf, String) {
    let path = files(project, "report-", ".html")
        .pop()
        .expect("an HTML report");
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

/// Chromium: Debian's `chromium` (scripts/test installs it), or
/// `MIGSAFE_CHROMIUM`.
fn chromium() -> String {
    if let Ok(path) = std::env::var("MIGSAFE_CHROMIUM") {
        return path;
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if std::process::Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return name.to_string();
        }
    }
    panic!("no chromium: install Debian's `chromium` (scripts/test does) or set MIGSAFE_CHROMIUM");
}

/// The DOM Chromium built from `page`, and its console messages.
fn render_in_chromium(page: &Path) -> (String, Vec<String>) {
    let profile = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--enable-logging=stderr",
            "--v=0",
            &format!("--user-data-dir={}", profile.path().display()),
            "--dump-dom",
        ])
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(output.status.success(), "chromium failed: {output:?}");
    let console = String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|l| l.contains("CONSOLE"))
        .map(str::to_string)
        .collect();
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        console,
    )
}

/// What must hold for every HTML report: 0600, nothing loaded from
/// elsewhere, no script, and the JSON it was rendered from beside it.
fn self_contained(path: &Path, text: &str) {
    let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", path.display());
    let lower = text.to_lowercase();
    for outside in ["<script", "<link", "src=", "href=", "@import", "url("] {
        assert!(!lower.contains(outside), "{outside} in {}", path.display());
    }
    let stamp = path
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("report-")
        .trim_end_matches(".html")
        .to_string();
    assert!(
        path.with_file_name(format!("run-report-{stamp}.json"))
            .exists(),
        "the JSON the page was rendered from"
    );
}

fn wait_for(project: &Project, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if project.event_log().contains(needle) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no {needle} in the event log: {}", project.event_log());
}

/// A run with a lock retry (a session of this test holds the table), a
/// lint warning and a failing migration whose error quotes hostile text.
#[test]
fn a_run_with_a_retry_a_lint_warning_and_a_failure_is_one_page_that_chromium_renders() {
    let db = TestDb::new();
    let project = two_tables();
    project.write(
        "migsafe.toml",
        b"[defaults]\nlock_timeout = \"200ms\"\nlock_retries = 50\nlock_retry_delay = \"100ms\"\n",
    );
    project.run(&db, &["apply", "--skip-backup"], 0);
    project.write(
        "migrations/0003_add_seen.up.sql",
        b"ALTER TABLE users ADD COLUMN seen_at timestamp;\n",
    );
    project.write(
        "migrations/0003_add_seen.down.sql",
        b"ALTER TABLE users DROP COLUMN seen_at;\n",
    );
    project.write(
        "migrations/0004_break.up.sql",
        b"SELECT '<script>alert(1)</script>'::integer;\n",
    );
    project.write("migrations/0004_break.down.sql", b"SELECT 1;\n");

    let (release, handle) = common::hold_lock(&db, "LOCK TABLE users IN ACCESS SHARE MODE;");
    // --force: preflight sees the blocking session (and fails on it).
    let child = project.spawn(&db, &["apply", "--force"]);
    wait_for(&project, "\"event\":\"migration_retried\"");
    release.send(()).unwrap();
    handle.join().unwrap();
    let output = child.wait_with_output().unwrap();
    let out = expect_exit(&output, 2);
    assert!(out.contains("report: "), "{out}");

    let (path, html) = newest_html(&project);
    self_contained(&path, &html);
    for version in ["0003", "0004"] {
        assert!(html.contains(version), "{version}");
    }
    assert!(html.contains("add_seen") && html.contains("break"));
    assert!(html.contains("LOCK_TIMEOUT:default:0003"), "the retry");
    assert!(html.contains("blocker"), "the blocking session");
    assert!(html.contains("prefer-timestamptz"), "the lint warning");
    assert!(
        html.contains("MIGRATION_FAILED:default:0004"),
        "the failure"
    );
    assert!(html.contains("backup-"), "the backup");
    assert!(html.contains("column public.users.seen_at") || html.contains("seen_at"));
    assert!(
        html.contains("&lt;script&gt;alert(1)") && !html.contains("<script>alert"),
        "the hostile text, escaped"
    );

    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(files(&project, "run-report-", ".json").pop().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(json["result"], "failure");
    assert_eq!(json["timeline"][0]["version"], "0003");
    assert!(
        !json["timeline"][0]["retries"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(json["timeline"][1]["outcome"], "failed");

    let (dom, console) = render_in_chromium(&path);
    assert!(console.is_empty(), "console messages: {console:?}");
    for version in ["0003", "0004"] {
        assert!(
            dom.contains(&format!("<code class=\"version\">{version}</code>")),
            "{version} not shown"
        );
    }
    assert!(
        !dom.contains("<script>alert"),
        "the hostile text ran as markup"
    );
}

#[test]
fn apply_rollback_and_verify_each_write_a_page() {
    let db = TestDb::new();
    let project = two_tables();
    project.run(&db, &["apply", "--skip-backup"], 0);
    assert_eq!(files(&project, "report-", ".html").len(), 1);
    let (_, applied) = newest_html(&project);
    assert!(applied.contains("0001") && applied.contains("0002"));
    assert!(applied.contains("table public.users"), "the schema diff");

    project.run(&db, &["rollback", "--skip-backup"], 0);
    let (path, rolled) = newest_html(&project);
    self_contained(&path, &rolled);
    assert!(rolled.contains("migsafe rollback"), "{rolled}");
    assert!(
        rolled.contains("removed"),
        "the schema diff: orders is gone"
    );

    let scratch = common::sandbox().url("postgres");
    project.run(&db, &["verify", "--scratch-url", &scratch], 0);
    let (path, verified) = newest_html(&project);
    self_contained(&path, &verified);
    assert!(verified.contains("migsafe verify"));
    assert!(verified.contains("0001") && verified.contains("0002"));
    assert_eq!(files(&project, "report-", ".html").len(), 3);
    let (dom, console) = render_in_chromium(&path);
    assert!(console.is_empty(), "console messages: {console:?}");
    assert!(dom.contains("<code class=\"version\">0002</code>"));
}
