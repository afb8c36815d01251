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
        let value = value.unwrap_or(0);
        if whole == 0 { 0 } else { (value.saturating_mul(100) / whole).min(100) }
    });
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
