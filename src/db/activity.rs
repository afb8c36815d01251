//! Other sessions: who blocks a migration, who holds a namespace lock.
//! Queries are shown with their constants replaced (`$1`), never raw.

use serde::Serialize;

use super::connect::Db;
use crate::source::statements::redact_query;

/// Another session, as seen in `pg_stat_activity`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Session {
    /// Backend pid.
    pub pid: i32,
    /// Role name.
    pub user: Option<String>,
    /// `application_name`.
    pub application: Option<String>,
    /// Client address, when connected over TCP.
    pub client: Option<String>,
    /// `active`, `idle in transaction`…
    pub state: Option<String>,
    /// How long its transaction has been open, in seconds.
    pub transaction_secs: Option<f64>,
    /// Its current or last query, constants replaced by placeholders.
    pub query: Option<String>,
}

impl Session {
    /// One line for logs: `pid 4242 (psql, app@10.0.0.5, idle in transaction 73s): LOCK TABLE …`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(app) = self.application.as_deref().filter(|a| !a.is_empty()) {
            parts.push(app.to_string());
        }
        match (&self.user, &self.client) {
            (Some(user), Some(client)) => parts.push(format!("{user}@{client}")),
            (Some(user), None) => parts.push(user.clone()),
            _ => {}
        }
        if let Some(state) = &self.state {
            match self.transaction_secs {
                Some(secs) => parts.push(format!("{state}, transaction open {secs:.0}s")),
                None => parts.push(state.clone()),
            }
        }
        let mut line = format!("pid {}", self.pid);
        if !parts.is_empty() {
            line.push_str(&format!(" ({})", parts.join(", ")));
        }
        if let Some(query) = &self.query {
            line.push_str(": ");
            line.push_str(&one_line(&without_comments(query), QUERY_SHOWN_CHARS));
        }
        line
    }
}

/// How much of a session's query a message shows.
const QUERY_SHOWN_CHARS: usize = 160;

/// `query` without its comments (read by the scanner, so `--` in a string
/// stays), and with runs of `;` folded: on one line, a `--` comment would
/// make the rest of the line read as commented out.
fn without_comments(query: &str) -> String {
    let Ok(scanned) = pg_query::scan(query) else {
        return query.to_string();
    };
    let mut out = String::with_capacity(query.len());
    let mut last = 0;
    for token in &scanned.tokens {
        let comment = token.token == pg_query::protobuf::Token::SqlComment as i32
            || token.token == pg_query::protobuf::Token::CComment as i32;
        if !comment {
            continue;
        }
        let (start, end) = (
            usize::try_from(token.start).unwrap_or(0),
            usize::try_from(token.end).unwrap_or(0),
        );
        if let Some(before) = query.get(last..start) {
            out.push_str(before);
            out.push(' ');
        }
        last = end.max(last);
    }
    out.push_str(query.get(last..).unwrap_or(""));
    let mut folded = String::with_capacity(out.len());
    for c in out.chars() {
        if c == ';' && folded.trim_end().ends_with(';') {
            continue;
        }
        folded.push(c);
    }
    folded
}

/// A query on one line (whitespace runs folded to one space), cut at
/// `max` characters with `…`: a message line must stay a line.
pub fn one_line(query: &str, max: usize) -> String {
    let folded = query.split_whitespace().collect::<Vec<_>>().join(" ");
    if folded.chars().count() <= max {
        return folded;
    }
    let mut cut: String = folded.chars().take(max).collect();
    cut.push('…');
    cut
}

const SESSION_COLUMNS: &str = "a.pid, a.usename::text, a.application_name, host(a.client_addr), a.state, \
     extract(epoch FROM now() - a.xact_start)::float8, left(a.query, 4000)";

/// Sessions blocking `pid` (what `pg_blocking_pids` says).
pub(crate) async fn blockers_of(db: &Db, pid: i32) -> Result<Vec<Session>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM pg_stat_activity a WHERE a.pid = ANY (pg_blocking_pids($1)) ORDER BY a.pid"
    );
    let rows = db.client.query(&sql, &[&pid]).await?;
    Ok(rows.iter().map(session_from_row).collect())
}

/// The session holding the advisory lock `key` in this database.
pub(crate) async fn advisory_lock_holder(
    db: &Db,
    key: i64,
) -> Result<Option<Session>, tokio_postgres::Error> {
    let bits = key as u64;
    let classid = (bits >> 32) as u32;
    let objid = (bits & 0xFFFF_FFFF) as u32;
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1 AND l.objid = $2 \
           AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         LIMIT 1"
    );
    let rows = db.client.query(&sql, &[&classid, &objid]).await?;
    Ok(rows.first().map(session_from_row))
}

fn session_from_row(row: &tokio_postgres::Row) -> Session {
    let query: Option<String> = row.get(6);
    Session {
        pid: row.get(0),
        user: row.get(1),
        application: row.get(2),
        client: row.get(3),
        state: row.get(4),
        transaction_secs: row.get(5),
        query: query
            .filter(|q| !q.trim().is_empty())
            .map(|q| redact_query(&q)),
    }
}

/// Sessions whose transaction has been open longer than `threshold`.
pub(crate) async fn long_transactions(
    db: &Db,
    threshold: std::time::Duration,
) -> Result<Vec<Session>, tokio_postgres::Error> {
    let secs = threshold.as_secs_f64();
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM pg_stat_activity a WHERE a.xact_start < now() - make_interval(secs => $1) \
         AND a.pid <> pg_backend_pid() AND a.backend_type = 'client backend' ORDER BY a.xact_start"
    );
    let rows = db.client.query(&sql, &[&secs]).await?;
    Ok(rows.iter().map(session_from_row).collect())
}

/// Sessions of this database waiting for a lock right now (a lock queue in
/// another database of the server is not one this migration joins).
pub(crate) async fn lock_waiters(db: &Db) -> Result<Vec<Session>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM pg_stat_activity a WHERE a.wait_event_type = 'Lock' AND a.pid <> pg_backend_pid() \
         AND a.datname = current_database() ORDER BY a.pid"
    );
    let rows = db.client.query(&sql, &[]).await?;
    Ok(rows.iter().map(session_from_row).collect())
}

/// Other sessions holding a lock on any of `relations` (names as written in
/// SQL; those that do not exist yet are skipped), with the relation and mode.
pub(crate) async fn lock_holders(
    db: &Db,
    relations: &[String],
) -> Result<Vec<(Session, String, String)>, tokio_postgres::Error> {
    if relations.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {SESSION_COLUMNS}, l.relation::regclass::text, l.mode FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.granted AND l.pid <> pg_backend_pid() AND l.locktype = 'relation' \
           AND l.relation IN (SELECT to_regclass(r) FROM unnest($1::text[]) r WHERE to_regclass(r) IS NOT NULL) \
         ORDER BY a.pid"
    );
    let rows = db.client.query(&sql, &[&relations]).await?;
    Ok(rows
        .iter()
        .map(|row| (session_from_row(row), row.get(7), row.get(8)))
        .collect())
}

/// Other sessions holding ACCESS EXCLUSIVE on a committed relation of this
/// database (temporary tables left out): while one does, reading that
/// relation's definition waits for it.
pub(crate) async fn exclusive_holders(
    db: &Db,
) -> Result<Vec<(Session, String, String)>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT {SESSION_COLUMNS}, quote_ident(n.nspname) || '.' || quote_ident(c.relname), l.mode \
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE l.granted AND l.pid <> pg_backend_pid() AND l.locktype = 'relation' \
           AND l.mode = 'AccessExclusiveLock' \
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%' \
         ORDER BY a.pid, 8"
    );
    let rows = db.client.query(&sql, &[]).await?;
    Ok(rows
        .iter()
        .map(|row| (session_from_row(row), row.get(7), row.get(8)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::{Session, one_line};

    #[test]
    fn a_multi_line_query_is_shown_on_one_line_and_cut() {
        assert_eq!(
            one_line("SELECT *\n  FROM t\n\tWHERE a = $1", 100),
            "SELECT * FROM t WHERE a = $1"
        );
        let long = format!("SELECT {}", "x, ".repeat(200));
        let shown = one_line(&long, 20);
        assert_eq!(shown.chars().count(), 21);
        assert!(shown.ends_with('…'));
        let session = Session {
            pid: 7,
            user: None,
            application: None,
            client: None,
            state: None,
            transaction_secs: None,
            query: Some("UPDATE t\nSET a = $1\nWHERE b = $2".into()),
        };
        assert_eq!(
            session.describe(),
            "pid 7: UPDATE t SET a = $1 WHERE b = $2"
        );
    }
}
