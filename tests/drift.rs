//! Drift is judged per namespace, over the schemas its migrations create or
//! change (or its `schemas = [...]`), never over another project's tables or
//! another migsafe history schema in the same database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Project, TestDb};

fn billing() -> Project {
    Project::new(&[
        (
            "migsafe.toml",
            "history_schema = \"hist_billing\"\n[namespaces.billing]\ndir = \"migrations\"\n",
        ),
        (
            "migrations/0001_invoices.up.sql",
            "CREATE SCHEMA billing;\nCREATE TABLE billing.invoices (id bigint PRIMARY KEY);\n",
        ),
        (
            "migrations/0001_invoices.down.sql",
            "DROP SCHEMA billing CASCADE;\n",
        ),
    ])
}

fn catalog() -> Project {
    Project::new(&[
        (
            "migsafe.toml",
            "history_schema = \"hist_catalog\"\n[namespaces.catalog]\ndir = \"migrations\"\n",
        ),
        (
            "migrations/0001_items.up.sql",
            "CREATE SCHEMA catalog;\nCREATE TABLE catalog.items (id bigint PRIMARY KEY);\n",
        ),
        (
            "migrations/0001_items.down.sql",
            "DROP SCHEMA catalog CASCADE;\n",
        ),
    ])
}

#[test]
fn two_projects_and_another_app_share_a_database_without_drift() {
    let db = TestDb::new();
    let (billing, catalog) = (billing(), catalog());
    billing.run(&db, &["apply", "--skip-backup"], 0);
    catalog.run(&db, &["apply", "--skip-backup"], 0);
    // Another application's tables, outside both projects.
    db.query("CREATE TABLE public.sessions (id int); CREATE SCHEMA reporting; CREATE TABLE reporting.daily (d date);");

    billing.write(
        "migrations/0002_amount.up.sql",
        b"ALTER TABLE billing.invoices ADD COLUMN amount numeric;\n",
    );
    billing.write(
        "migrations/0002_amount.down.sql",
        b"ALTER TABLE billing.invoices DROP COLUMN amount;\n",
    );
    let out = billing.run(&db, &["apply", "--skip-backup"], 0);
    assert!(!out.contains("SCHEMA_DRIFT"), "{out}");
    assert!(out.contains("billing: applied 1 migration(s)"), "{out}");

    catalog.write(
        "migrations/0002_name.up.sql",
        b"ALTER TABLE catalog.items ADD COLUMN name text;\n",
    );
    catalog.write(
        "migrations/0002_name.down.sql",
        b"ALTER TABLE catalog.items DROP COLUMN name;\n",
    );
    let out = catalog.run(&db, &["apply", "--skip-backup"], 0);
    assert!(!out.contains("SCHEMA_DRIFT"), "{out}");

    // A change by hand inside billing's schema is drift for billing only.
    db.query("ALTER TABLE billing.invoices ADD COLUMN hacked int;");
    billing.write(
        "migrations/0003_due.up.sql",
        b"ALTER TABLE billing.invoices ADD COLUMN due date;\n",
    );
    let out = billing.run(&db, &["apply", "--skip-backup"], 1);
    assert!(out.contains("SCHEMA_DRIFT:billing"), "{out}");
    assert!(out.contains("billing.invoices.hacked"), "{out}");
    let out = catalog.run(&db, &["preflight"], 0);
    assert!(!out.contains("SCHEMA_DRIFT"), "{out}");
}

#[test]
fn configured_schemas_decide_what_drift_looks_at() {
    let db = TestDb::new();
    let project = Project::new(&[
        (
            "migrations/0001_app.up.sql",
            "CREATE SCHEMA app;\nCREATE TABLE app.users (id bigint PRIMARY KEY);\nCREATE TABLE audit_log (at timestamptz);\n",
        ),
        (
            "migrations/0001_app.down.sql",
            "DROP TABLE audit_log;\nDROP SCHEMA app CASCADE;\n",
        ),
    ]);
    project.run(&db, &["apply", "--skip-backup"], 0);
    // Another app creates a table in public, which this project also uses.
    db.query("CREATE TABLE public.other_app (id int);");
    project.write(
        "migrations/0002_email.up.sql",
        b"ALTER TABLE app.users ADD COLUMN email text;\n",
    );
    let out = project.run(&db, &["plan"], 1);
    assert!(out.contains("SCHEMA_DRIFT:default"), "{out}");
    assert!(out.contains("public.other_app"), "{out}");
    // The team says its schema is `app` only.
    project.write(
        "migsafe.toml",
        b"[namespaces.default]\ndir = \"migrations\"\nschemas = [\"app\"]\n",
    );
    let out = project.run(&db, &["apply", "--skip-backup"], 0);
    assert!(!out.contains("SCHEMA_DRIFT"), "{out}");
}
