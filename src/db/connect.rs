//! Connecting: URL parsing, TLS mode, and keeping the password out of every
//! output.
//!
//! [`ConnectionSettings`] is the only holder of a parsed database URL; its
//! `Display` and `Debug` show `postgres://user:****@host:port/db`. Every password
//! seen is also registered with [`scrub`], which every output path of the CLI
//! and the event log runs text through, so that a server or driver message
//! quoting a connection string cannot leak it either.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::tls::{self, RootCerts, SslMode};
use crate::error::{Code, Error, ReasonCode, Result};
use crate::events::Interrupt;

/// How long setting up a connection may take when the URL sets no
/// `connect_timeout` (or sets 0, which libpq reads as "forever": a migration
/// runner that waits forever on a stuck proxy is never what is wanted).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Sent once on every new connection, inside the connect bound: a pooler
/// completes authentication itself and may then queue the first real query
/// for minutes while it has no server connection to give.
const FIRST_QUERY: &str = "SELECT 1";

static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Remembers a secret so that [`scrub`] removes it from any text.
pub fn register_secret(secret: &str) {
    // Very short secrets would mangle ordinary words; they are also not secrets.
    if secret.chars().count() < 3 {
        return;
    }
    let mut secrets = SECRETS.lock().unwrap_or_else(PoisonError::into_inner);
    let mut add = |s: String| {
        if !secrets.contains(&s) {
            secrets.push(s);
        }
    };
    add(secret.to_string());
    let encoded = percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    add(encoded);
}

/// Names that are public wherever they appear (namespace and database
/// names, the history schema, `postgres`, `public`, `migsafe`): a secret
/// equal to one is not masked in free text,
/// where masking would rewrite reason codes, namespaces and URL schemes
/// and hide nothing the name itself does not show. (A URL's password is
/// masked by the URL's display regardless.)
static PUBLIC: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Names that are never secrets, whatever else is.
const ALWAYS_PUBLIC: [&str; 4] = ["postgres", "postgresql", "public", "migsafe"];

/// Remembers a name that is public (a namespace, a database): see `PUBLIC`.
pub fn register_public_word(word: &str) {
    let mut public = PUBLIC.lock().unwrap_or_else(PoisonError::into_inner);
    if !public.iter().any(|w| w.eq_ignore_ascii_case(word)) {
        public.push(word.to_string());
    }
}

fn is_public(secret: &str) -> bool {
    ALWAYS_PUBLIC.iter().any(|w| w.eq_ignore_ascii_case(secret))
        || PUBLIC
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|w| w.eq_ignore_ascii_case(secret))
}

/// Pieces of secrets that are masked wherever they appear: see
/// [`register_secret_in_sql`].
static FRAGMENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// How long a piece of a secret [`register_secret_in_sql`] masks is.
const FRAGMENT_CHARS: usize = 6;

/// Remembers a secret that goes into SQL (a placeholder's value): the
/// server's messages may quote part of it (`Token "S3cr3tPw" is invalid`,
/// a context cut at 50 characters), so besides the whole value every run of
/// six of its characters is masked too. At most five characters of it can
/// then show; a value shorter than six is masked whole only.
pub fn register_secret_in_sql(secret: &str) {
    // The server folds an unquoted identifier to lower case, and quotes it
    // so; a migration may print it through upper() or initcap().
    for variant in [
        secret.to_string(),
        secret.to_lowercase(),
        secret.to_uppercase(),
    ] {
        register_secret(&variant);
        let chars: Vec<char> = variant.chars().collect();
        if chars.len() <= FRAGMENT_CHARS {
            continue;
        }
        let mut fragments = FRAGMENTS.lock().unwrap_or_else(PoisonError::into_inner);
        for window in chars.windows(FRAGMENT_CHARS) {
            // Compared without regard to ASCII case: `initcap()` and any
            // other casing of the value.
            let piece: String = window.iter().collect::<String>().to_ascii_lowercase();
            if !fragments.contains(&piece) {
                fragments.push(piece);
            }
        }
    }
}

/// Secrets shorter than this are masked only where they stand as a word of
/// their own: a password `app` is masked in `app:****@host` and `'app'`, but
/// `applied` and `"app_name"` (a JSON key) stay as they are.
const WHOLE_WORD_BELOW: usize = 8;

/// Whether `c` continues a word (an identifier, a JSON key).
fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `text` with each occurrence of a short `secret` that is not part of a
/// longer word replaced by `****`.
fn replace_whole_words(text: &str, secret: &str) -> String {
    let (Some(first), Some(last)) = (secret.chars().next(), secret.chars().last()) else {
        return text.to_string();
    };
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (at, _) in text.match_indices(secret) {
        // Overlapping occurrences: the first one masked wins.
        if at < copied {
            continue;
        }
        let end = at + secret.len();
        let before = text[..at].chars().next_back();
        let after = text[end..].chars().next();
        let joined_before = is_word(first) && before.is_some_and(is_word);
        let joined_after = is_word(last) && after.is_some_and(is_word);
        if joined_before || joined_after {
            continue;
        }
        out.push_str(&text[copied..at]);
        out.push_str("****");
        copied = end;
    }
    out.push_str(&text[copied..]);
    out
}

/// Replaces every registered secret in `text` with `****`.
pub fn scrub(text: &str) -> String {
    let secrets = SECRETS.lock().unwrap_or_else(PoisonError::into_inner);
    let mut out = text.to_string();
    for secret in secrets.iter() {
        if out.contains(secret.as_str()) && !is_public(secret) {
            out = if secret.chars().count() < WHOLE_WORD_BELOW {
                replace_whole_words(&out, secret)
            } else {
                out.replace(secret.as_str(), "****")
            };
        }
    }
    drop(secrets);
    let fragments = FRAGMENTS.lock().unwrap_or_else(PoisonError::into_inner);
    if fragments.is_empty() {
        return out;
    }
    // Every byte any piece covers, overlapping pieces included, so that no
    // run of six characters of a secret is left between two masks.
    let mut covered = vec![false; out.len()];
    // Same byte offsets as `out`: only ASCII letters change.
    let folded = out.to_ascii_lowercase();
    for piece in fragments.iter() {
        for (at, _) in folded.match_indices(piece.as_str()) {
            covered[at..at + piece.len()].fill(true);
        }
    }
    if !covered.contains(&true) {
        return out;
    }
    let mut masked = String::with_capacity(out.len());
    let mut inside = false;
    for (at, c) in out.char_indices() {
        if covered[at] {
            if !inside {
                masked.push_str("****");
            }
            inside = true;
        } else {
            inside = false;
            masked.push(c);
        }
    }
    masked
}

/// A parsed database URL (libpq URL or key=value string) with its TLS mode.
#[derive(Clone)]
pub struct ConnectionSettings {
    config: tokio_postgres::Config,
    ssl_mode: SslMode,
    roots: RootCerts,
    root_given: bool,
    shown: String,
    /// A stop request that ends a connection attempt in progress.
    interrupt: Option<Interrupt>,
    /// The service's own TLS configuration, used instead of `ssl_mode`'s.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Asked for the password before every connection (credential rotation).
    password: Option<PasswordSource>,
}

/// The future a [`PasswordSource`] returns.
pub type PasswordFuture = Pin<
    Box<
        dyn Future<Output = std::result::Result<String, Box<dyn std::error::Error + Send + Sync>>>
            + Send,
    >,
>;

/// Gives the password (or token: RDS IAM, Vault, a rotated secret) for the
/// next connection; called before each one, within its `connect_timeout`.
pub type PasswordSource = Arc<dyn Fn() -> PasswordFuture + Send + Sync>;

impl fmt::Display for ConnectionSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for ConnectionSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnectionSettings({})", self.shown)
    }
}

/// A live connection and what is needed to cancel its running statement.
pub(crate) struct Db {
    /// The client.
    pub client: Client,
    tls: Option<MakeRustlsConnect>,
    /// What it is connected to, for messages (no password).
    pub target: String,
    /// The connect bound, which also bounds the cancel request (a new
    /// connection to the same server).
    connect_limit: Duration,
    /// What the server said besides answers (`RAISE NOTICE`, warnings).
    notices: super::notices::Notices,
}

impl Db {
    /// The server's notices since the last call, and how many older ones
    /// were not kept.
    pub fn take_notices(&self) -> (Vec<super::notices::ServerNotice>, usize) {
        self.notices.take()
    }

    /// Returns once the server has sent a notice since the last time it
    /// returned.
    pub async fn notice_arrived(&self) {
        self.notices.arrived().await;
    }

    /// Asks the server to cancel whatever this connection is running.
    pub async fn cancel_running(&self) {
        let token = self.client.cancel_token();
        let cancel = async {
            match &self.tls {
                Some(tls) => token.cancel_query(tls.clone()).await,
                None => token.cancel_query(NoTls).await,
            }
        };
        match tokio::time::timeout(self.connect_limit, cancel).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(
                "could not send the cancel request: {}",
                scrub(&err.to_string())
            ),
            Err(_) => tracing::warn!(
                "could not send the cancel request: the server did not answer within {}",
                crate::config::format_duration(self.connect_limit)
            ),
        }
    }
}

/// The TLS-related parameters, which tokio-postgres does not understand in full.
#[derive(Default)]
struct TlsParams {
    sslmode: Option<String>,
    sslrootcert: Option<String>,
}

const TLS_KEYS: [&str; 2] = ["sslmode", "sslrootcert"];

impl ConnectionSettings {
    /// True when a connection made with `other` would be the same session
    /// as one made with these settings: same server, database, role and
    /// credentials, same `options` (a `search_path`) and application name,
    /// same TLS. What the display shows is not enough to say so.
    pub fn same_session(&self, other: &ConnectionSettings) -> bool {
        let (a, b) = (&self.config, &other.config);
        a.get_hosts() == b.get_hosts()
            && a.get_ports() == b.get_ports()
            && a.get_dbname() == b.get_dbname()
            && a.get_user() == b.get_user()
            && a.get_password() == b.get_password()
            && a.get_options() == b.get_options()
            && a.get_application_name() == b.get_application_name()
            && self.ssl_mode == other.ssl_mode
            && self.root_given == other.root_given
            && self.shown == other.shown
            && match (&self.tls, &other.tls) {
                (None, None) => true,
                (Some(x), Some(y)) => Arc::ptr_eq(x, y),
                _ => false,
            }
            && match (&self.password, &other.password) {
                (None, None) => true,
                (Some(x), Some(y)) => Arc::ptr_eq(x, y),
                _ => false,
            }
    }

    /// Parses a libpq-style URL (`postgres://…`) or key=value string. When the
    /// string has no password, `PGPASSWORD` is used; `PGSSLMODE` and
    /// `PGSSLROOTCERT` fill in what the string does not say.
    pub fn parse(url: &str) -> Result<ConnectionSettings> {
        let invalid = |detail: String| {
            Error::Config {
            reason: ReasonCode::new(Code::DatabaseUrlInvalid),
            message: format!("the database URL cannot be used: {detail}"),
            hint: Some(
                "write it as postgres://user:password@host:5432/dbname?sslmode=require or as key=value pairs"
                    .into(),
            ),
         source: None, }
        };
        let trimmed = url.trim();
        register_possible_secrets(trimmed);
        let (rest, params) =
            if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
                split_url_params(trimmed)
            } else {
                split_keyword_params(trimmed)
            };
        let mut config = tokio_postgres::Config::from_str(&rest)
            .map_err(|e| invalid(scrub(&error_chain(&e))))?;
        if let Some(dbname) = config.get_dbname() {
            register_public_word(dbname);
        }
        if let Some(password) = config.get_password() {
            register_secret(&String::from_utf8_lossy(password));
        } else if let Ok(password) = std::env::var("PGPASSWORD") {
            register_secret(&password);
            config.password(password);
        }
        if config.get_hosts().is_empty() {
            return Err(invalid("it names no host".into()));
        }
        let mode_text = params.sslmode.or_else(|| std::env::var("PGSSLMODE").ok());
        let ssl_mode = match mode_text.as_deref() {
            None => SslMode::Prefer,
            Some(text) => SslMode::parse(text).ok_or_else(|| {
                invalid(format!(
                    "sslmode={text} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                ))
            })?,
        };
        let root_text = params
            .sslrootcert
            .or_else(|| std::env::var("PGSSLROOTCERT").ok());
        let root_given = root_text.is_some();
        let roots = match root_text.as_deref() {
            None => RootCerts::Default,
            Some("system") => RootCerts::System,
            Some(path) => RootCerts::File(PathBuf::from(path)),
        };
        config.ssl_mode(ssl_mode.negotiation());
        Ok(Self::settled(config, ssl_mode, roots, root_given))
    }

    /// migsafe's defaults on a parsed or given configuration, the same for
    /// a URL and for a service's own `tokio_postgres::Config`.
    fn settled(
        mut config: tokio_postgres::Config,
        ssl_mode: SslMode,
        roots: RootCerts,
        root_given: bool,
    ) -> ConnectionSettings {
        if config.get_application_name().is_none() {
            config.application_name("migsafe");
        }
        // tokio-postgres leaves it unset for connect_timeout=0 too.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        config.keepalives(true);
        let shown = describe(&config, ssl_mode);
        ConnectionSettings {
            config,
            ssl_mode,
            roots,
            root_given,
            shown,
            interrupt: None,
            tls: None,
            password: None,
        }
    }

    /// Settings from a service's own `tokio_postgres::Config` (built in code,
    /// from its secret store). Its `ssl_mode` maps to libpq's `disable`,
    /// `prefer` or `require` (no certificate check, as in libpq); give
    /// [`Self::with_tls`] for a verified connection. The application name
    /// defaults to `migsafe`, `connect_timeout` to 10 s, as for a URL.
    pub fn from_config(config: tokio_postgres::Config) -> Result<ConnectionSettings> {
        if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
            return Err(Error::Config {
                reason: ReasonCode::new(Code::DatabaseUrlInvalid),
                message: "the connection configuration names no host".into(),
                hint: Some("call `host(…)` on the tokio_postgres::Config".into()),
                source: None,
            });
        }
        if let Some(password) = config.get_password() {
            register_secret(&String::from_utf8_lossy(password));
        }
        let ssl_mode = match config.get_ssl_mode() {
            tokio_postgres::config::SslMode::Disable => SslMode::Disable,
            tokio_postgres::config::SslMode::Require => SslMode::Require,
            _ => SslMode::Prefer,
        };
        Ok(Self::settled(config, ssl_mode, RootCerts::Default, false))
    }

    /// Uses the service's own rustls configuration (its roots, client
    /// certificate, verifier) for every connection, pg_dump excepted, which
    /// follows `sslmode` and `sslrootcert` as libpq does. TLS is then
    /// required unless the settings say `disable`.
    pub fn with_tls(mut self, tls: Arc<rustls::ClientConfig>) -> ConnectionSettings {
        if self.ssl_mode != SslMode::Disable {
            self.ssl_mode = SslMode::Require;
            self.config.ssl_mode(self.ssl_mode.negotiation());
            self.shown = describe(&self.config, self.ssl_mode);
        }
        self.tls = Some(tls);
        self
    }

    /// Asks `source` for the password before every connection, so a rotated
    /// credential or a short-lived token is always current; what it returns
    /// is never shown in any output.
    pub fn with_password_source(mut self, source: PasswordSource) -> ConnectionSettings {
        self.password = Some(source);
        self.shown = describe_with_password(&self.config, self.ssl_mode, true);
        self
    }

    /// These settings with the password the source gives now (the settings
    /// themselves when there is no source).
    pub(crate) async fn current(&self) -> Result<ConnectionSettings> {
        let Some(source) = &self.password else {
            return Ok(self.clone());
        };
        let password = source().await.map_err(|e| Error::Config {
            reason: ReasonCode::new(Code::DatabaseAuthFailed),
            message: format!(
                "cannot connect to {}: the password source failed: {}",
                self.shown,
                scrub(&error_chain(e.as_ref()))
            ),
            hint: Some("check the service's credential source (secret store, token issuer)".into()),
            source: None,
        })?;
        register_secret(&password);
        let mut copy = self.clone();
        copy.config.password(password);
        Ok(copy)
    }

    /// The same settings, whose connection attempts end at once (with
    /// `INTERRUPTED`, exit 130) when `interrupt` fires while they wait for
    /// the server. Attempts started after it fired (cleanup after a stop)
    /// still run, bounded by `connect_timeout`.
    pub fn with_interrupt(mut self, interrupt: &Interrupt) -> ConnectionSettings {
        self.interrupt = Some(interrupt.clone());
        self
    }

    /// How long one connection setup may take: `connect_timeout` (default
    /// 10 s) per host the URL names, as libpq tries them in turn. It covers
    /// everything up to a usable connection: TCP, TLS, authentication and a
    /// first query.
    pub fn connect_limit(&self) -> Duration {
        let per_host = self
            .config
            .get_connect_timeout()
            .copied()
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let hosts = self
            .config
            .get_hosts()
            .len()
            .max(self.config.get_hostaddrs().len())
            .max(1);
        per_host.saturating_mul(u32::try_from(hosts).unwrap_or(u32::MAX))
    }

    /// The same server and credentials, another database.
    pub fn with_dbname(&self, dbname: &str) -> ConnectionSettings {
        let mut copy = self.clone();
        copy.config.dbname(dbname);
        copy.shown = describe(&copy.config, copy.ssl_mode);
        copy
    }

    /// The database name.
    pub fn dbname(&self) -> Option<&str> {
        self.config.get_dbname()
    }

    /// The server as `host:port` (the first one when several are given),
    /// for saying where a backup came from; never holds the password.
    pub fn server(&self) -> Option<String> {
        use tokio_postgres::config::Host;
        let host = match self.config.get_hosts().first()? {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        Some(format!("{host}:{port}"))
    }

    /// The parsed tokio-postgres configuration (holds the password).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The libpq environment for a child process (pg_dump, pg_restore, psql):
    /// every setting, the password included, goes through the environment —
    /// never through argv, where any user can read it.
    pub fn libpq_env(&self) -> Vec<(&'static str, String)> {
        use tokio_postgres::config::Host;
        let mut env = Vec::new();
        if let Some(host) = self.config.get_hosts().first() {
            env.push((
                "PGHOST",
                match host {
                    Host::Tcp(name) => name.clone(),
                    Host::Unix(path) => path.display().to_string(),
                },
            ));
        }
        if let Some(addr) = self.config.get_hostaddrs().first() {
            env.push(("PGHOSTADDR", addr.to_string()));
        }
        if let Some(port) = self.config.get_ports().first() {
            env.push(("PGPORT", port.to_string()));
        }
        if let Some(user) = self.config.get_user() {
            env.push(("PGUSER", user.to_string()));
        }
        if let Some(db) = self.config.get_dbname().or(self.config.get_user()) {
            env.push(("PGDATABASE", db.to_string()));
        }
        if let Some(password) = self.config.get_password() {
            env.push(("PGPASSWORD", String::from_utf8_lossy(password).to_string()));
        }
        env.push(("PGSSLMODE", self.ssl_mode.as_str().to_string()));
        match &self.roots {
            RootCerts::File(path) => env.push(("PGSSLROOTCERT", path.display().to_string())),
            RootCerts::System => env.push(("PGSSLROOTCERT", "system".to_string())),
            RootCerts::Default => {}
        }
        env.push(("PGAPPNAME", "migsafe".to_string()));
        let per_host = self
            .config
            .get_connect_timeout()
            .copied()
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        env.push(("PGCONNECT_TIMEOUT", per_host.as_secs().max(1).to_string()));
        env
    }

    /// The TLS mode.
    pub fn ssl_mode(&self) -> SslMode {
        self.ssl_mode
    }

    /// Opens a connection; failures carry a reason code and say what to check.
    ///
    /// The whole setup — TCP, TLS, authentication and a first query — is
    /// bounded by [`Self::connect_limit`]: tokio-postgres bounds only the TCP
    /// connect, and a server (or proxy, or pooler) that accepts the socket and
    /// never answers would otherwise hold the caller forever.
    pub(crate) async fn connect(&self) -> Result<Db> {
        let limit = self.connect_limit();
        let started = tokio::time::Instant::now();
        let attempt = async {
            let db = match tokio::time::timeout(limit, self.handshake()).await {
                Ok(result) => result?,
                Err(_) => return Err(self.no_answer(limit, Stage::Handshake)),
            };
            let left = limit.saturating_sub(started.elapsed());
            match tokio::time::timeout(left, db.client.simple_query(FIRST_QUERY)).await {
                Ok(Ok(_)) => Ok(db),
                Ok(Err(e)) => Err(self.connect_error(e)),
                Err(_) => Err(self.no_answer(limit, Stage::FirstQuery)),
            }
        };
        match &self.interrupt {
            Some(interrupt) if !interrupt.is_triggered() => {
                tokio::select! {
                    biased;
                    () = interrupt.wait() => Err(self.interrupted(started.elapsed())),
                    result = attempt => result,
                }
            }
            _ => attempt.await,
        }
    }

    /// A client on a connection opened the way migsafe opens its own
    /// (bounded setup, TLS as the URL says, the stop request honoured), for
    /// an application that wants one more, or a test that looks at one.
    pub async fn client(&self) -> Result<tokio_postgres::Client> {
        Ok(self.connect().await?.client)
    }

    /// TCP, TLS and authentication (tokio-postgres's `connect`).
    async fn handshake(&self) -> Result<Db> {
        let connect_limit = self.connect_limit();
        let current = self.current().await?;
        if self.ssl_mode == SslMode::Disable {
            let (client, connection) = current
                .config
                .connect(NoTls)
                .await
                .map_err(|e| self.connect_error(e))?;
            let notices = super::notices::Notices::default();
            super::notices::drive(connection, notices.clone());
            return Ok(Db {
                client,
                tls: None,
                target: self.shown.clone(),
                connect_limit,
                notices,
            });
        }
        let connector = match &self.tls {
            Some(own) => MakeRustlsConnect::new(own.as_ref().clone()),
            None => {
                let client_config = tls::client_config(self.ssl_mode, &self.roots, self.root_given)
                    .map_err(|message| Error::Config {
                        reason: ReasonCode::new(Code::DatabaseTlsFailed),
                        message: format!("{}: {message}", self.shown),
                        hint: None,
                        source: None,
                    })?;
                MakeRustlsConnect::new(client_config)
            }
        };
        let (client, connection) = current
            .config
            .connect(connector.clone())
            .await
            .map_err(|e| self.connect_error(e))?;
        let notices = super::notices::Notices::default();
        super::notices::drive(connection, notices.clone());
        Ok(Db {
            client,
            tls: Some(connector),
            target: self.shown.clone(),
            connect_limit,
            notices,
        })
    }

    /// The connect bound ran out.
    fn no_answer(&self, limit: Duration, stage: Stage) -> Error {
        let (what, hint) = match stage {
            Stage::Handshake => (
                "the connection was not set up",
                "the server, or a proxy or pooler in front of it, accepts connections but does not answer (stuck, overloaded, or not PostgreSQL): check it, or raise connect_timeout in the URL",
            ),
            Stage::FirstQuery => (
                "connected, but the first query got no answer",
                "a pooler in front of the server may have no server connection to give (pgbouncer queues queries up to query_wait_timeout): check the pool and the server, or raise connect_timeout in the URL",
            ),
        };
        Error::Config {
            reason: ReasonCode::new(Code::DatabaseUnreachable),
            message: format!(
                "cannot connect to {}: {what} within {} (connect_timeout)",
                self.shown,
                crate::config::format_duration(limit)
            ),
            hint: Some(hint.to_string()),
            source: None,
        }
    }

    /// A stop request ended the attempt.
    fn interrupted(&self, waited: Duration) -> Error {
        Error::Refused {
            reason: ReasonCode::new(Code::Interrupted),
            message: format!(
                "interrupted after waiting {} for {} to answer: nothing was started and nothing changed",
                crate::config::format_duration(waited),
                self.shown
            ),
            hint: Some("run the command again once the database answers".into()),
            source: None,
        }
    }

    fn connect_error(&self, err: tokio_postgres::Error) -> Error {
        let detail = scrub(&error_chain(&err));
        let (code, hint) = match err.as_db_error().map(|db| db.code().clone()) {
            Some(SqlState::INVALID_PASSWORD)
            | Some(SqlState::INVALID_AUTHORIZATION_SPECIFICATION) => (
                Code::DatabaseAuthFailed,
                "check the user and password in the URL, and the server's pg_hba.conf entry for this client",
            ),
            Some(SqlState::INVALID_CATALOG_NAME) => (
                Code::DatabaseNotFound,
                "check the database name in the URL, or create the database first",
            ),
            Some(SqlState::CANNOT_CONNECT_NOW) => (
                Code::DatabaseUnreachable,
                "the server is starting up, shutting down or in recovery; retry when it is up",
            ),
            Some(SqlState::TOO_MANY_CONNECTIONS) => (
                Code::DatabaseUnreachable,
                "the server has no free connection slots; retry later or raise max_connections",
            ),
            Some(_) => (Code::DatabaseError, "see the server's message above"),
            None if detail.contains("password missing") => (
                Code::DatabaseAuthFailed,
                "the server asks for a password: put it in the URL or in PGPASSWORD",
            ),
            None if detail.to_lowercase().contains("tls") || detail.contains("certificate") => (
                Code::DatabaseTlsFailed,
                "check sslmode and sslrootcert; the server's certificate must chain to the root certificate (and name the host for verify-full)",
            ),
            None => (
                Code::DatabaseUnreachable,
                "check the host and port, that the server is running, and that it accepts TCP connections from here",
            ),
        };
        Error::Config {
            reason: ReasonCode::new(code),
            message: format!("cannot connect to {}: {detail}", self.shown),
            hint: Some(hint.to_string()),
            // The driver's error: it names host and user, never the password.
            source: Some(Box::new(err)),
        }
    }
}

/// Where a connection setup ran out of time.
#[derive(Clone, Copy)]
enum Stage {
    /// TCP, TLS, authentication.
    Handshake,
    /// The first query on the new connection.
    FirstQuery,
}

/// Registers everything in a database URL or key=value string that may be a
/// password, before anything parses it, so that neither a parse error nor
/// the URL shown in a message can carry it.
///
/// This must not depend on the text parsing as intended: a mistyped URL
/// (`postgres://app?s3cret@host`, `u:p@ss@host`, a missing `@`, a `#` or `?`
/// in the password, an unterminated quote in `password='…`) is exactly the one
/// an operator pastes in a hurry. When the part between the scheme and the
/// last `@` is not a clean `user[:password]`, all of it counts as secret.
fn register_possible_secrets(text: &str) {
    for secret in possible_secrets(text) {
        let decoded = percent_encoding::percent_decode_str(&secret)
            .decode_utf8_lossy()
            .to_string();
        register_secret(&secret);
        register_secret(&decoded);
    }
}

/// Characters that end a piece of a mistyped userinfo.
const USERINFO_SEPARATORS: [char; 8] = [':', '?', '#', '/', '@', '&', '=', ' '];

/// What in `text` may be a password; longest first, so that scrubbing
/// replaces a whole region before its parts.
fn possible_secrets(text: &str) -> Vec<String> {
    let text = text.trim();
    let mut found = keyword_passwords(text);
    if let Some(rest) = after_scheme(text) {
        match rest.rfind('@') {
            Some(at) => {
                let region = &rest[..at];
                let clean =
                    !region.contains(['/', '?', '#', '@', ' ']) && region.matches(':').count() <= 1;
                if clean {
                    if let Some((_, password)) = region.split_once(':') {
                        found.push(password.to_string());
                    }
                } else {
                    found.push(region.to_string());
                    if let Some(first) = region.find(USERINFO_SEPARATORS) {
                        found.push(region[first + 1..].to_string());
                    }
                    found.extend(
                        region
                            .split(USERINFO_SEPARATORS)
                            .skip(1)
                            .map(str::to_string),
                    );
                }
            }
            None => {
                // No `@`: `user:password` where `host:port` should be shows
                // up as a port that is not a number.
                let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
                for entry in authority.split(',') {
                    if entry.starts_with('[') {
                        continue;
                    }
                    if let Some((_, after)) = entry.split_once(':')
                        && !after.bytes().all(|b| b.is_ascii_digit())
                    {
                        found.push(after.to_string());
                        found.extend(after.split(':').map(str::to_string));
                    }
                }
            }
        }
    }
    found.retain(|s| !s.is_empty() && !s.bytes().all(|b| b.is_ascii_digit()));
    found.sort_by_key(|s| std::cmp::Reverse(s.len()));
    found.dedup();
    found
}

/// The text after `scheme:` and its slashes, when `text` starts like a URL
/// (any scheme: `postgress://` is a typo too), however malformed the rest.
fn after_scheme(text: &str) -> Option<&str> {
    let colon = text.find(':')?;
    let scheme = &text[..colon];
    let looks_like_scheme = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    looks_like_scheme.then(|| text[colon + 1..].trim_start_matches('/'))
}

/// Every `password=VALUE` (key=value strings, and `?password=` in a URL),
/// quoted or not, terminated or not.
fn keyword_passwords(text: &str) -> Vec<String> {
    let lower = text.to_ascii_lowercase();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = lower[from..].find("password") {
        let start = from + at + "password".len();
        from = start;
        let rest = text[start..].trim_start();
        let Some(rest) = rest.strip_prefix('=') else {
            continue;
        };
        let rest = rest.trim_start();
        if let Some(quoted) = rest.strip_prefix('\'') {
            let mut value = String::new();
            let mut chars = quoted.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '\'' => break,
                    other => value.push(other),
                }
            }
            found.push(value);
            // Unterminated or not, whatever follows the quote may be it too.
            found.push(quoted.to_string());
        } else {
            let value: String = rest
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '&' && *c != '#')
                .collect();
            found.push(value);
        }
    }
    found
}

/// The error and its sources, joined: tokio-postgres puts the useful part
/// ("Connection refused") in the source.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

fn describe(config: &tokio_postgres::Config, mode: SslMode) -> String {
    describe_with_password(config, mode, false)
}

/// As [`describe`]; `password_from_source`: a password comes at connect time.
fn describe_with_password(
    config: &tokio_postgres::Config,
    mode: SslMode,
    password_from_source: bool,
) -> String {
    use tokio_postgres::config::Host;
    // A user name that holds a registered secret (a password typed where
    // the user goes) is shown scrubbed.
    let user = scrub(config.get_user().unwrap_or(""));
    let user = user.as_str();
    let password = if config.get_password().is_some() || password_from_source {
        ":****"
    } else {
        ""
    };
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(index, host)| {
            let name = match host {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            };
            let port = ports.get(index).or(ports.first()).copied().unwrap_or(5432);
            format!("{name}:{port}")
        })
        .collect();
    let dbname = config.get_dbname().unwrap_or(user);
    let at = if user.is_empty() {
        String::new()
    } else {
        format!("{user}{password}@")
    };
    let mut shown = format!("postgres://{at}{}/{dbname}", hosts.join(","));
    if mode != SslMode::Prefer {
        shown.push_str("?sslmode=");
        shown.push_str(mode.as_str());
    }
    shown
}

/// Removes `sslmode`/`sslrootcert` from a URL's query string.
fn split_url_params(url: &str) -> (String, TlsParams) {
    let mut params = TlsParams::default();
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), params);
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_encoding::percent_decode_str(value)
            .decode_utf8_lossy()
            .to_string();
        match key {
            "sslmode" => params.sslmode = Some(value),
            "sslrootcert" => params.sslrootcert = Some(value),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (rest, params)
}

/// Removes `sslmode`/`sslrootcert` from a key=value string, honouring libpq's
/// quoting (`key = 'a value with \' and spaces'`).
fn split_keyword_params(text: &str) -> (String, TlsParams) {
    let mut params = TlsParams::default();
    let mut kept = String::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        let start = i;
        while i < chars.len() && chars[i] != '=' && !chars[i].is_whitespace() {
            i += 1;
        }
        let key: String = chars[start..i].iter().collect();
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i >= chars.len() || chars[i] != '=' {
            // Not key=value: leave the whole text to tokio-postgres to report.
            return (text.to_string(), TlsParams::default());
        }
        i += 1;
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        let quoted = i < chars.len() && chars[i] == '\'';
        if quoted {
            i += 1;
        }
        while i < chars.len() {
            let c = chars[i];
            if c == '\\' && i + 1 < chars.len() {
                value.push(chars[i + 1]);
                i += 2;
                continue;
            }
            if (quoted && c == '\'') || (!quoted && c.is_whitespace()) {
                i += 1;
                break;
            }
            value.push(c);
            i += 1;
        }
        let raw: String = chars[start..i.min(chars.len())].iter().collect();
        if TLS_KEYS.contains(&key.as_str()) {
            if key == "sslmode" {
                params.sslmode = Some(value);
            } else {
                params.sslrootcert = Some(value);
            }
        } else {
            if key == "password" {
                register_secret(&value);
            }
            kept.push_str(raw.trim_end());
            kept.push(' ');
        }
    }
    (kept.trim_end().to_string(), params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_shared_only_by_the_same_settings() {
        let parse = |url: &str| ConnectionSettings::parse(url).unwrap();
        let plain = parse("postgres://app:pw@db:5432/orders");
        assert!(plain.same_session(&parse("postgres://app:pw@db:5432/orders")));
        // The display is the same for all of these; the sessions are not.
        for other in [
            "postgres://app:pw@db:5432/orders?options=-c%20search_path%3Dbilling",
            "postgres://app:other@db:5432/orders",
            "postgres://app:pw@db:5432/orders?application_name=billing",
        ] {
            let other = parse(other);
            assert_eq!(other.to_string(), plain.to_string());
            assert!(!plain.same_session(&other), "{other:?}");
        }
    }

    #[test]
    fn display_hides_the_password() {
        let settings = ConnectionSettings::parse("postgres://app:s3cr3t-pw@db.example:6432/orders?sslmode=verify-full&sslrootcert=/etc/ca.pem").unwrap();
        let shown = settings.to_string();
        assert_eq!(
            shown,
            "postgres://app:****@db.example:6432/orders?sslmode=verify-full"
        );
        assert!(!format!("{settings:?}").contains("s3cr3t"));
        assert_eq!(settings.ssl_mode(), SslMode::VerifyFull);
        assert_eq!(settings.roots, RootCerts::File("/etc/ca.pem".into()));
        assert!(scrub("oops postgres://app:s3cr3t-pw@x").contains("app:****@x"));
    }

    #[test]
    fn a_short_secret_is_masked_where_it_is_a_word_not_inside_others() {
        register_secret("qzv7");
        assert_eq!(
            scrub("postgres://u:qzv7@h 'qzv7' qzv7"),
            "postgres://u:****@h '****' ****"
        );
        // Inside longer words and keys it is not the secret, and stays.
        assert_eq!(
            scrub("{\"qzv7_count\": 1, \"xqzv7\": \"qzv7s\"}"),
            "{\"qzv7_count\": 1, \"xqzv7\": \"qzv7s\"}"
        );
        // A secret that begins or ends with a sign is masked next to words.
        register_secret("#k9!");
        assert_eq!(scrub("a#k9!b"), "a****b");
        // Long ones are masked everywhere, inside words too.
        register_secret("Wq8rLm3ZpT");
        assert_eq!(scrub("xWq8rLm3ZpTy"), "x****y");
        // A password that is also a namespace's name (or `postgres`) is not
        // masked in free text: reason codes and JSON stay whole.
        register_public_word("nsq8");
        register_secret("nsq8");
        register_secret("postgres");
        assert_eq!(
            scrub("MIGRATION_FAILED:nsq8:0001 postgres://u@h/x"),
            "MIGRATION_FAILED:nsq8:0001 postgres://u@h/x"
        );
    }

    #[test]
    fn a_secret_in_sql_is_masked_in_upper_case_too() {
        register_secret_in_sql("tokQWERTY12345");
        let shown = scrub(
            "upper TOKQWERTY12345, lower tokqwerty12345, initcap Tokqwerty12345, mixed tOkQwErTy12345",
        );
        assert!(
            !shown.contains("QWERTY") && !shown.to_lowercase().contains("qwerty"),
            "{shown}"
        );
    }

    #[test]
    fn keyword_strings_work_with_quotes_and_tls_keys() {
        let settings =
            ConnectionSettings::parse("host=localhost port=5433 user=app password='p w\\'d' dbname=x sslmode=verify-ca sslrootcert=system").unwrap();
        assert_eq!(settings.ssl_mode(), SslMode::VerifyCa);
        assert_eq!(settings.roots, RootCerts::System);
        assert_eq!(settings.config().get_password(), Some(&b"p w'd"[..]));
        assert_eq!(
            settings.to_string(),
            "postgres://app:****@localhost:5433/x?sslmode=verify-ca"
        );
    }

    #[test]
    fn bad_urls_are_config_errors_without_the_password() {
        let err =
            ConnectionSettings::parse("postgres://u:hunter22@h/db?sslmode=sometimes").unwrap_err();
        assert_eq!(err.reason().to_string(), "DATABASE_URL_INVALID");
        assert_eq!(err.exit_code(), 5);
        assert!(!err.to_string().contains("hunter22"));
        assert!(ConnectionSettings::parse("postgres://u@h/db?nonsense_option=1").is_err());
    }

    #[test]
    fn mistyped_urls_never_show_their_password() {
        for (url, secret) in [
            (
                "postgres://app1?Typo-Secret-1@db.example/app",
                "Typo-Secret-1",
            ),
            (
                "postgres://app#Typo-Secret-2@db.example/app",
                "Typo-Secret-2",
            ),
            ("postgres://app:Typo/Secret3@db.example/app", "Typo/Secret3"),
            ("postgres://app:Typo@Secret4@db.example/app", "Typo@Secret4"),
            (
                "postgres://app:Typo-Secret-5db.example:5432/app",
                "Typo-Secret-5db.example",
            ),
            (
                "postgres:/app:Typo-Secret-6@db.example/app",
                "Typo-Secret-6",
            ),
            (
                "postgress://app:Typo-Secret-7@db.example/app",
                "Typo-Secret-7",
            ),
            (
                "postgres://db.example/app?password=Typo-Secret-8&x=1",
                "Typo-Secret-8",
            ),
            (
                "host=db.example user=app password=Typo-Secret-9 dbname",
                "Typo-Secret-9",
            ),
            ("host=db.example password='Typo Secret 10", "Typo Secret 10"),
            (
                "host=db.example password = 'Typo\\'Secret11' dbname=x",
                "Typo'Secret11",
            ),
        ] {
            let shown = match ConnectionSettings::parse(url) {
                Ok(settings) => format!("{settings} {settings:?}"),
                Err(err) => format!("{err} {:?}", err.hint()),
            };
            assert!(!shown.contains(secret), "{url}: {shown}");
            let echoed = scrub(&format!("cannot use {url}"));
            assert!(!echoed.contains(secret), "{url}: {echoed}");
        }
        // Ordinary user names, hosts and ports stay readable.
        let settings =
            ConnectionSettings::parse("postgres://app:pw-123@db.example:6432/app").unwrap();
        assert_eq!(
            settings.to_string(),
            "postgres://app:****@db.example:6432/app"
        );
    }
}
