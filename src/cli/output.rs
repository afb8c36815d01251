//! Rendering results for people (colour on a terminal) and programs (one
//! JSON document on stdout). Everything printed passes through `scrub`.

use anstyle::{AnsiColor, Style};
use serde::Serialize;

use migsafe::db::scrub;
use migsafe::error::Error;

/// Bump when a JSON document changes incompatibly.
pub const SCHEMA_VERSION: u32 = 1;

pub const GREEN: Style = AnsiColor::Green.on_default();
pub const YELLOW: Style = AnsiColor::Yellow.on_default();
pub const RED: Style = AnsiColor::Red.on_default().bold();
pub const DIM: Style = Style::new().dimmed();
pub const BOLD: Style = Style::new().bold();

/// Wraps text in a style (stripped by anstream when not on a terminal).
pub fn paint(style: Style, text: impl std::fmt::Display) -> String {
    format!("{style}{text}{style:#}")
}

/// Prints a result line on stdout.
pub fn out(text: &str) {
    anstream::println!("{}", scrub(text));
}

/// Prints a diagnostic line on stderr.
pub fn err(text: &str) {
    anstream::eprintln!("{}", scrub(text));
}

#[derive(Serialize)]
struct Document<'a, T: Serialize> {
    schema_version: u32,
    command: &'a str,
    #[serde(flatten)]
    body: &'a T,
}

/// Prints the one JSON document of a command.
pub fn json<T: Serialize>(command: &str, body: &T) {
    let document = Document {
        schema_version: SCHEMA_VERSION,
        command,
        body,
    };
    match serde_json::to_string_pretty(&document) {
        Ok(text) => println!("{}", scrub(&text)),
        Err(e) => eprintln!("cannot render JSON: {e}"),
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorJson<'a>,
}

#[derive(Serialize)]
struct ErrorJson<'a> {
    reason: String,
    message: String,
    hint: Option<&'a str>,
    exit_code: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    problems: Option<&'a [migsafe::error::FileProblem]>,
}

/// Prints a failure: `error[REASON]: message` and the hint on stderr, or the
/// JSON error document on stdout.
pub fn error(command: &str, error: &Error, json_format: bool) {
    if json_format {
        let problems = match error {
            Error::Source { problems, .. } => Some(problems.as_slice()),
            _ => None,
        };
        json(
            command,
            &ErrorBody {
                error: ErrorJson {
                    reason: error.reason().to_string(),
                    message: error.to_string(),
                    hint: error.hint(),
                    exit_code: error.exit_code(),
                    problems,
                },
            },
        );
        return;
    }
    let head = paint(RED, format!("error[{}]", error.reason()));
    let message = error.to_string();
    let mut lines = message.lines();
    err(&format!("{head}: {}", lines.next().unwrap_or("")));
    for line in lines {
        err(&format!("  {line}"));
    }
    if let Some(hint) = error.hint() {
        err(&format!("  {} {hint}", paint(BOLD, "next:")));
    }
}
