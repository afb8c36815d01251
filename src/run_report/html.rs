//! `report-<timestamp>.html`: the [`RunReport`] rendered as one
//! self-contained page (styles inline, a Content-Security-Policy that lets
//! it load nothing else, no script), with minijinja, which escapes every
//! value for HTML because the template's name ends in `.html`: a migration
//! named `<script>` shows as text.

use minijinja::{Environment, Value, context};

use super::RunReport;
use crate::config::format_duration;
use crate::error::{Code, Error, Result};

const TEMPLATE: &str = include_str!("report.html");

/// The page for `report`, secrets not yet scrubbed (the writer does that).
pub fn render(report: &RunReport) -> Result<String> {
    let mut env = Environment::new();
    env.add_filter("ms", |value: Option<u64>| {
        value.map_or_else(String::new, |ms| {
            format_duration(std::time::Duration::from_millis(ms))
        })
    });
    env.add_filter("bytes", |value: u64| {
        crate::pipeline::preflight::human_bytes(value)
    });
    env.add_filter("percent_of", |value: Option<u64>, whole: u64| {
        value
            .unwrap_or(0)
            .saturating_mul(100)
            .checked_div(whole)
            .unwrap_or(0)
            .min(100)
    });
    // `2026-12-02T06:15:39.730664283Z` → `06:15:39.730`: the date is in
    // the header, and a timeline reads by the clock.
    env.add_filter("clock", |value: String| {
        value
            .split_once('T')
            .map(|(_, time)| time.trim_end_matches('Z').chars().take(12).collect())
            .unwrap_or(value)
    });
    env.add_filter("day", |value: String| {
        value
            .split_once('T')
            .map(|(day, time)| format!("{day} {} UTC", time.chars().take(8).collect::<String>()))
            .unwrap_or(value)
    });
    env.add_filter("summary", |value: String| super::summary(&value));
    env.add_template("report.html", TEMPLATE)
        .map_err(|e| failed(&e))?;
    let longest_ms = report
        .timeline
        .iter()
        .filter_map(|m| m.duration_ms)
        .max()
        .unwrap_or(0);
    let template = env.get_template("report.html").map_err(|e| failed(&e))?;
    template
        .render(context! {
            r => Value::from(minijinja::value::Serde(report)),
            longest_ms => longest_ms,
            tool_version => env!("CARGO_PKG_VERSION"),
        })
        .map_err(|e| failed(&e))
}

fn failed(err: &minijinja::Error) -> Error {
    Error::config(Code::Io, format!("cannot render the HTML report: {err}"))
}

#[cfg(test)]
mod tests {
    use super::render;
    use crate::db::notices::ServerNotice;
    use crate::report::{Check, PhaseReport};
    use crate::run_report::{Recorder, TimelineEntry};

    /// A migration's name, its SQL in an error and a check's detail can
    /// hold anything a file holds: they show as text, never as markup.
    #[test]
    fn hostile_names_and_sql_are_escaped() {
        let hostile = "<script>alert('x')</script><img src=x onerror=alert(1)>";
        let mut report = Recorder::new().report("apply", chrono::Utc::now());
        report.timeline.push(TimelineEntry {
            namespace: format!("ns{hostile}"),
            version: "0001".into(),
            name: hostile.into(),
            direction: crate::events::Direction::Up,
            started_at: chrono::Utc::now(),
            duration_ms: Some(3),
            outcome: "failed".into(),
            reason: Some("MIGRATION_FAILED:ns:0001".into()),
            message: Some(format!("syntax error at {hostile}")),
            retries: Vec::new(),
            // What a migration raises is text too.
            notices: vec![ServerNotice {
                severity: "NOTICE".into(),
                message: format!("said {hostile}"),
                detail: Some(hostile.into()),
                hint: None,
            }],
            notices_dropped: 3,
        });
        report.preflight.push(PhaseReport::new(
            "preflight",
            chrono::Utc::now(),
            "postgres://app:****@db/app",
            vec![Check::pass("lint", hostile)],
        ));
        report.message = Some(hostile.into());
        let page = render(&report).unwrap_or_else(|e| panic!("{e}"));
        assert!(!page.contains("<script"), "{page}");
        assert!(!page.contains("<img"), "{page}");
        assert!(page.contains("&lt;script&gt;"), "{page}");
        assert!(
            page.contains("DB NOTICE:</span> said &lt;script&gt;")
                && page.contains("3 earlier server notice(s) not kept"),
            "{page}"
        );
        assert!(
            page.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{page}"
        );
    }
}
