//! A scratch database for work that must never touch the real one (verify,
//! cutover precheck of a schema that is not applied yet): a uniquely named
//! database on `--scratch-url`'s server, dropped when done, or a sandbox
//! that removes itself.

use crate::db::{ConnectionSettings, Db, quote_ident};
use crate::error::{Code, Error, ReasonCode, Result};
use crate::sandbox::Sandbox;

/// A scratch database; call [`Scratch::remove`] when done (also on failure).
pub struct Scratch {
    /// Where to connect.
    pub settings: ConnectionSettings,
    /// For reports: the server without password, or `sandbox`.
    pub shown: String,
    owner: Owner,
}

enum Owner {
    Server { admin: Db, name: String },
    Sandbox(Sandbox),
}

impl Scratch {
    /// Creates `migsafe_<purpose>_<pid>_<random>` on the server of `url`, or
    /// starts a sandbox when there is no URL.
    pub async fn create(url: Option<&str>, purpose: &str) -> Result<Scratch> {
        match url {
            Some(url) => {
                let server = ConnectionSettings::parse(url)?;
                let admin = server.connect().await?;
                let name = format!(
                    "migsafe_{purpose}_{}_{}",
                    std::process::id(),
                    fastrand::u32(..)
                );
                admin
                    .client
                    .batch_execute(&format!("CREATE DATABASE {}", quote_ident(&name)))
                    .await
                    .map_err(|e| {
                        crate::db::history::database_error(
                            &admin,
                            "create the scratch database",
                            &e,
                        )
                    })?;
                Ok(Scratch {
                    settings: server.with_dbname(&name),
                    shown: server.to_string(),
                    owner: Owner::Server { admin, name },
                })
            }
            None => {
                let sandbox =
                    tokio::task::spawn_blocking(Sandbox::start)
                        .await
                        .map_err(|e| Error::Sandbox {
                            reason: ReasonCode::new(Code::SandboxFailed),
                            message: format!("the sandbox start-up task failed: {e}"),
                            source: None,
                        })??;
                Ok(Scratch {
                    settings: ConnectionSettings::parse(&sandbox.url("postgres"))?,
                    shown: "sandbox".into(),
                    owner: Owner::Sandbox(sandbox),
                })
            }
        }
    }

    /// Drops the scratch database (FORCE ends leftover sessions) or stops
    /// the sandbox. Failing to drop is logged, not an error of the run.
    pub async fn remove(self) {
        match self.owner {
            Owner::Server { admin, name } => {
                let drop = format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    quote_ident(&name)
                );
                if let Err(err) = admin.client.batch_execute(&drop).await {
                    tracing::warn!("could not drop the scratch database {name}: {err}");
                }
            }
            Owner::Sandbox(sandbox) => {
                let _ = tokio::task::spawn_blocking(move || drop(sandbox)).await;
            }
        }
    }
}
