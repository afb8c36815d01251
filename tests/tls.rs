//! TLS against a real server with its own CA: every sslmode connects or fails
//! the way libpq would, and failures carry DATABASE_TLS_FAILED.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Project, expect_exit, migsafe_command, sandbox};
use migsafe::db::ConnectionSettings;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

/// A CA, a server certificate for `localhost` only (not for 127.0.0.1), a
/// second unrelated CA; TLS turned on in the sandbox.
fn setup() -> &'static Pki {
    static PKI: std::sync::OnceLock<Pki> = std::sync::OnceLock::new();
    PKI.get_or_init(|| {
        let (ca_pem, issuer) = ca("migsafe test CA");
        let (other_pem, _) = ca("somebody else's CA");
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        sandbox()
            .enable_tls(&cert.pem(), &key.serialize_pem())
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_pem).unwrap();
        std::fs::write(dir.path().join("other-ca.pem"), other_pem).unwrap();
        Pki { dir }
    })
}

fn url(host: &str, sslmode: &str, rootcert: Option<&str>) -> String {
    let s = sandbox();
    let mut url = format!(
        "host={host} hostaddr=127.0.0.1 port={} user=postgres password={} dbname=postgres sslmode={sslmode}",
        s.port(),
        s.password()
    );
    if let Some(root) = rootcert {
        url.push_str(&format!(" sslrootcert={root}"));
    }
    url
}

/// Connects with the library and says whether the session is encrypted.
fn encrypted(url: &str) -> Result<bool, migsafe::Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = ConnectionSettings::parse(url)?.client().await?;
        let row = client
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .unwrap();
        Ok(row.get::<_, bool>(0))
    })
}

#[test]
fn every_sslmode_behaves_like_libpq() {
    let pki = setup();
    let ca = pki.path("ca.pem");
    let other = pki.path("other-ca.pem");

    assert!(!encrypted(&url("127.0.0.1", "disable", None)).unwrap());
    assert!(encrypted(&url("127.0.0.1", "allow", None)).unwrap());
    assert!(encrypted(&url("127.0.0.1", "prefer", None)).unwrap());
    // require: encrypted, the certificate is not checked…
    assert!(encrypted(&url("127.0.0.1", "require", None)).unwrap());
    // …unless a root certificate is given: then it is verify-ca.
    assert_eq!(
        encrypted(&url("127.0.0.1", "require", Some(&other)))
            .unwrap_err()
            .reason()
            .to_string(),
        "DATABASE_TLS_FAILED"
    );
    // verify-ca: the chain must lead to the CA; the name does not matter.
    assert!(encrypted(&url("127.0.0.1", "verify-ca", Some(&ca))).unwrap());
    assert_eq!(
        encrypted(&url("127.0.0.1", "verify-ca", Some(&other)))
            .unwrap_err()
            .reason()
            .to_string(),
        "DATABASE_TLS_FAILED"
    );
    // verify-full: the chain and the name.
    assert!(encrypted(&url("localhost", "verify-full", Some(&ca))).unwrap());
    let err = encrypted(&url("127.0.0.1", "verify-full", Some(&ca))).unwrap_err();
    assert_eq!(err.reason().to_string(), "DATABASE_TLS_FAILED", "{err}");
    assert_eq!(
        encrypted(&url("localhost", "verify-full", Some(&other)))
            .unwrap_err()
            .reason()
            .to_string(),
        "DATABASE_TLS_FAILED"
    );
    // A missing root file is a clear error too.
    let err = encrypted(&url(
        "localhost",
        "verify-full",
        Some("/nonexistent/ca.pem"),
    ))
    .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}

#[test]
fn the_cli_applies_over_verified_tls_and_reports_failures() {
    let pki = setup();
    let project = Project::new(&[("migrations/0001_t.up.sql", "CREATE TABLE tls_t (id int);")]);
    let good = url("localhost", "verify-full", Some(&pki.path("ca.pem")));
    let output = migsafe_command()
        .current_dir(project.path())
        .args(["apply", "--database-url", &good])
        .output()
        .unwrap();
    expect_exit(&output, 0);
    let bad = url("localhost", "verify-full", Some(&pki.path("other-ca.pem")));
    let output = migsafe_command()
        .current_dir(project.path())
        .args(["status", "--database-url", &bad])
        .output()
        .unwrap();
    let out = expect_exit(&output, 5);
    assert!(out.contains("error[DATABASE_TLS_FAILED]"), "{out}");
    assert!(out.contains("sslmode=verify-full"), "{out}");
    common::assert_no_secret(&project, &output, sandbox().password());
}
