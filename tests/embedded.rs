//! Migrations compiled into an application (`migsafe::source::embed`): the
//! generated code stays current, the embedded migrator and the CLI share one
//! history, and a tampered or misplaced embedding is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::{Project, TestDb, expect_exit};
use migsafe::source::embed::{Embedded, EmbeddedMigration, EmbeddedScript, generate};

static APP: Embedded = include!("../examples/embedded/app.rs");
static AUDIT: Embedded = include!("../examples/embedded/audit.rs");

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The example project (its migsafe.toml and migrations) in a temporary directory.
fn example_project() -> Project {
    let project = Project::new(&[]);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for entry in walk(&root) {
        let relative = entry.strip_prefix(&root).unwrap();
        if relative.starts_with("migrations") || relative == Path::new("migsafe.toml") {
            project.write(relative.to_str().unwrap(), &std::fs::read(&entry).unwrap());
        }
    }
    project
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn migrator(project: &Project, db: &TestDb) -> migsafe::Migrator {
    let config = migsafe::Config::load(None, project.path()).unwrap();
    migsafe::Migrator::new(config)
        .with_database_url(Some(db.url.clone()))
        .with_log_dir(project.path().join("logs"))
        .with_embedded(&APP)
        .unwrap()
        .with_embedded(&AUDIT)
        .unwrap()
}

#[test]
fn the_checked_in_generated_code_is_current() {
    // Regenerate with: cargo test --test embedded -- --ignored regenerate
    for namespace in ["app", "audit"] {
        let dir = format!("examples/migrations/{namespace}");
        let code = generate(namespace, Path::new(&dir)).unwrap();
        let file = format!("examples/embedded/{namespace}.rs");
        let checked_in = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            code == checked_in,
            "{file} is stale: run `cargo test --test embedded -- --ignored regenerate`"
        );
    }
}

#[test]
#[ignore = "writes examples/embedded/*.rs"]
fn regenerate() {
    for namespace in ["app", "audit"] {
        let code = generate(
            namespace,
            Path::new(&format!("examples/migrations/{namespace}")),
        )
        .unwrap();
        std::fs::write(format!("examples/embedded/{namespace}.rs"), code).unwrap();
    }
}

#[test]
fn the_embedded_migrator_and_the_cli_share_one_history() {
    let project = example_project();
    // The directories are not read: remove them.
    std::fs::remove_dir_all(project.path().join("migrations")).unwrap();
    let db = TestDb::new();
    let rt = runtime();
    let options = migsafe::pipeline::apply::ApplyOptions {
        skip_backup: true,
        ..Default::default()
    };
    let report = rt
        .block_on(migrator(&project, &db).apply(None, &options))
        .unwrap();
    let ran: usize = report.namespaces.iter().map(|n| n.ran.len()).sum();
    assert_eq!(ran, APP.migrations.len() + AUDIT.migrations.len());
    rt.block_on(migrator(&project, &db).require_up_to_date(None))
        .unwrap();

    // The CLI, reading the same files from disk, sees them applied with the
    // same checksums, and can roll one back.
    let cli = example_project();
    let output = cli.migsafe(&db).args(["status"]).output().unwrap();
    let text = expect_exit(&output, 0);
    assert!(text.contains("app (3 applied, 0 pending)"), "{text}");
    assert!(text.contains("audit (2 applied, 0 pending"), "{text}");
    assert!(
        !text.contains("CHECKSUM") && !text.contains("edited"),
        "{text}"
    );
    cli.run(&db, &["rollback", "--target", "app", "--skip-backup"], 0);
    let err = rt
        .block_on(migrator(&project, &db).require_up_to_date(None))
        .unwrap_err();
    let newest = APP.migrations.last().unwrap().version;
    assert_eq!(
        err.reason().to_string(),
        format!("MIGRATION_PENDING:app:{newest}")
    );
    assert_eq!(err.exit_code(), 7);

    // The embedded migrator applies it again under the same lock and history.
    rt.block_on(migrator(&project, &db).apply(Some("app"), &options))
        .unwrap();
    let text = cli.run(&db, &["status"], 0);
    assert!(text.contains("app (3 applied, 0 pending)"), "{text}");
}

#[test]
fn a_tampered_or_unconfigured_embedding_is_refused() {
    static UP: EmbeddedScript = EmbeddedScript {
        path: "app/0001_a.up.sql",
        sql: "CREATE TABLE a (id int);\n",
        first_line: 1,
        no_transaction: false,
        checksum: "0000000000000000000000000000000000000000000000000000000000000000",
        unsupported: None,
        literal_placeholders: false,
    };
    static TAMPERED: Embedded = Embedded {
        namespace: "app",
        migrations: &[EmbeddedMigration {
            version: "0001",
            name: "a",
            layout: "reversible",
            up: UP,
            down: None,
            verify: None,
        }],
    };
    let project = example_project();
    let config = migsafe::Config::load(None, project.path()).unwrap();
    let Err(err) = migsafe::Migrator::new(config.clone()).with_embedded(&TAMPERED) else {
        panic!("a checksum that differs from build time must be refused");
    };
    assert_eq!(err.reason().to_string(), "MIGRATION_FILE_INVALID:app");
    assert!(err.to_string().contains("build time"), "{err}");
    assert_eq!(err.exit_code(), 5);

    static ELSEWHERE: Embedded = Embedded {
        namespace: "billing",
        migrations: &[],
    };
    let Err(err) = migsafe::Migrator::new(config).with_embedded(&ELSEWHERE) else {
        panic!("an embedding for an unconfigured namespace must be refused");
    };
    assert_eq!(err.reason().to_string(), "NAMESPACE_UNKNOWN:billing");
}
