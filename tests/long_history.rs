//! A realistic multi-year history of our own writing — 160 migrations mixing
//! what real histories hold: functions and triggers shared between
//! migrations, enums, partitions, materialized views, DO blocks, dollar
//! quotes, renames, scripts wrapped in BEGIN/COMMIT, several transaction
//! blocks, CONCURRENTLY without a directive, up/down named differently —
//! written out in every layout migsafe claims to read. For each layout, the
//! full default pipeline applies it to an empty database (and again as a
//! no-op) and gives the same schema as psql running the files one by one;
//! verify passes where there are down scripts, and names a planted bug.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Project, TestDb};

/// One migration: name, up, down.
struct Step {
    name: String,
    up: String,
    down: String,
}

/// The history. `planted`: the version whose down script forgets an index.
fn history(planted: Option<usize>) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    fn add(steps: &mut Vec<Step>, name: String, up: String, down: String) {
        steps.push(Step { name, up, down });
    }
    add(
        &mut steps,
        "shared_functions".into(),
        "CREATE FUNCTION touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n  NEW.updated_at := now();\n  RETURN NEW;\nEND\n$$;\n".into(),
        "DROP FUNCTION touch_updated_at();\n".into(),
    );
    let mut i = 1;
    while steps.len() < 160 {
        let t = format!("t{i}");
        match i % 10 {
            // A plain table with the shared trigger.
            0 | 5 => add(
                &mut steps,
                format!("create_{t}"),
                format!(
                    "CREATE TABLE {t} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());\nCREATE TRIGGER {t}_touch BEFORE UPDATE ON {t} FOR EACH ROW EXECUTE FUNCTION touch_updated_at();\n"
                ),
                format!("DROP TABLE {t};\n"),
            ),
            // Created under one name, renamed, then indexed (plain, in the same plan).
            1 => {
                add(
                    &mut steps,
                    format!("create_{t}_old"),
                    format!("CREATE TABLE {t}_old (id bigint PRIMARY KEY, kind text);\n"),
                    format!("DROP TABLE {t}_old;\n"),
                );
                add(
                    &mut steps,
                    format!("rename_{t}"),
                    format!(
                        "ALTER TABLE {t}_old RENAME TO {t};\nCREATE INDEX {t}_kind_idx ON {t} (kind);\n"
                    ),
                    format!("DROP INDEX {t}_kind_idx;\nALTER TABLE {t} RENAME TO {t}_old;\n"),
                );
            }
            // An enum, and a value added later.
            2 => {
                add(
                    &mut steps,
                    format!("enum_{t}"),
                    format!(
                        "CREATE TYPE {t}_state AS ENUM ('new', 'done');\nCREATE TABLE {t} (id bigint PRIMARY KEY, state {t}_state NOT NULL DEFAULT 'new');\n"
                    ),
                    format!("DROP TABLE {t};\nDROP TYPE {t}_state;\n"),
                );
                add(
                    &mut steps,
                    format!("enum_{t}_value"),
                    format!("ALTER TYPE {t}_state ADD VALUE 'failed';\n"),
                    // An enum value cannot be dropped: the down rebuilds the type.
                    format!(
                        "ALTER TABLE {t} ALTER COLUMN state DROP DEFAULT;\nALTER TYPE {t}_state RENAME TO {t}_state_old;\nCREATE TYPE {t}_state AS ENUM ('new', 'done');\nALTER TABLE {t} ALTER COLUMN state TYPE {t}_state USING state::text::{t}_state;\nALTER TABLE {t} ALTER COLUMN state SET DEFAULT 'new';\nDROP TYPE {t}_state_old;\n"
                    ),
                );
            }
            // A partitioned table with a partition and an index.
            3 => add(
                &mut steps,
                format!("partitioned_{t}"),
                format!(
                    "CREATE TABLE {t} (id bigint, at date NOT NULL) PARTITION BY RANGE (at);\nCREATE TABLE {t}_2026 PARTITION OF {t} FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');\nCREATE INDEX {t}_at_idx ON {t} (at);\n"
                ),
                format!("DROP TABLE {t};\n"),
            ),
            // A materialized view over an earlier table, indexed.
            4 => add(
                &mut steps,
                format!("matview_{t}"),
                format!(
                    "CREATE TABLE {t} (id bigint PRIMARY KEY, amount numeric(12, 2));\nCREATE MATERIALIZED VIEW {t}_totals AS SELECT count(*) AS n, sum(amount) AS total FROM {t};\nCREATE UNIQUE INDEX {t}_totals_idx ON {t}_totals (n);\n"
                ),
                format!("DROP MATERIALIZED VIEW {t}_totals;\nDROP TABLE {t};\n"),
            ),
            // A DO block with nested dollar quotes.
            6 => add(
                &mut steps,
                format!("do_block_{t}"),
                format!(
                    "DO $do$\nBEGIN\n  IF NOT EXISTS (SELECT 1 FROM pg_class WHERE relname = '{t}') THEN\n    EXECUTE $sql$CREATE TABLE {t} (id bigint PRIMARY KEY, note text DEFAULT 'it''s; fine')$sql$;\n  END IF;\nEND\n$do$;\n"
                ),
                format!("DROP TABLE IF EXISTS {t};\n"),
            ),
            // Wrapped in its own BEGIN/COMMIT.
            7 => add(
                &mut steps,
                format!("wrapped_{t}"),
                format!(
                    "BEGIN;\nCREATE TABLE {t} (id bigint PRIMARY KEY, payload jsonb);\nCOMMENT ON TABLE {t} IS 'wrapped';\nCOMMIT;\n"
                ),
                format!("BEGIN;\nDROP TABLE {t};\nCOMMIT;\n"),
            ),
            // A table, then an index built CONCURRENTLY without a directive.
            8 => {
                add(
                    &mut steps,
                    format!("create_{t}"),
                    format!("CREATE TABLE {t} (id bigint PRIMARY KEY, email text);\n"),
                    format!("DROP TABLE {t};\n"),
                );
                add(
                    &mut steps,
                    format!("index_{t}_email"),
                    format!("CREATE INDEX CONCURRENTLY {t}_email_idx ON {t} (email);\n"),
                    format!("DROP INDEX CONCURRENTLY IF EXISTS {t}_email_idx;\n"),
                );
            }
            // Several transaction blocks in one file, and a function replaced.
            _ => add(
                &mut steps,
                format!("blocks_{t}"),
                format!(
                    "BEGIN;\nCREATE TABLE {t} (id bigint PRIMARY KEY);\nCOMMIT;\nBEGIN;\nCREATE OR REPLACE FUNCTION {t}_count() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM {t} $$;\nCOMMIT;\n"
                ),
                format!("DROP FUNCTION IF EXISTS {t}_count();\nDROP TABLE IF EXISTS {t};\n"),
            ),
        }
        i += 1;
    }
    steps.truncate(160);
    if let Some(n) = planted {
        // The down script forgets the index its up script made.
        let step = &mut steps[n - 1];
        step.up
            .push_str(&format!("CREATE INDEX planted_{n}_idx ON t1 (kind);\n"));
    }
    steps
}

#[derive(Clone, Copy, Debug)]
enum Layout {
    Native,
    UpOnly,
    Diesel,
    Dbmate,
    Flyway,
}

/// Writes the history into `project` in `layout`; returns the up files in
/// order (for psql).
fn write(project: &Project, layout: Layout, steps: &[Step]) -> Vec<std::path::PathBuf> {
    let mut ups = Vec::new();
    for (index, step) in steps.iter().enumerate() {
        let n = index + 1;
        let ts = format!(
            "2024{:02}{:02}{:06}",
            1 + index / 28 % 12,
            1 + index % 28,
            n
        );
        let name = &step.name;
        let up_path = match layout {
            Layout::Native => {
                // golang-migrate pairs by version: some downs are named differently.
                let down_name = if n % 7 == 0 {
                    format!("undo_{name}")
                } else {
                    name.clone()
                };
                project.write(
                    &format!("migrations/{n:04}_{down_name}.down.sql"),
                    step.down.as_bytes(),
                );
                let path = format!("migrations/{n:04}_{name}.up.sql");
                project.write(&path, step.up.as_bytes());
                path
            }
            Layout::UpOnly => {
                let path = format!("migrations/{ts}_{name}.sql");
                project.write(&path, step.up.as_bytes());
                path
            }
            Layout::Diesel => {
                let dir = format!(
                    "migrations/2024-{:02}-{:02}-{:06}_{name}",
                    1 + index / 28 % 12,
                    1 + index % 28,
                    n
                );
                project.write(&format!("{dir}/down.sql"), step.down.as_bytes());
                let path = format!("{dir}/up.sql");
                project.write(&path, step.up.as_bytes());
                path
            }
            Layout::Dbmate => {
                let path = format!("migrations/{ts}_{name}.sql");
                let text = format!("-- migrate:up\n{}\n-- migrate:down\n{}", step.up, step.down);
                project.write(&path, text.as_bytes());
                // psql runs the up section only.
                let up = format!("psql/{n:04}.sql");
                project.write(&up, step.up.as_bytes());
                up
            }
            Layout::Flyway => {
                project.write(
                    &format!("migrations/U{n}__{name}.sql"),
                    step.down.as_bytes(),
                );
                let path = format!("migrations/V{n}__{name}.sql");
                project.write(&path, step.up.as_bytes());
                path
            }
        };
        ups.push(project.path().join(up_path));
    }
    ups
}

fn psql_runs(db: &TestDb, files: &[std::path::PathBuf]) {
    for file in files {
        let output = std::process::Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &db.url, "-f"])
            .arg(file)
            .output()
            .expect("psql");
        assert!(
            output.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn checksum(db: &TestDb) -> String {
    let output = common::migsafe_command()
        .args(["schema", "checksum", "--database-url", &db.url])
        .output()
        .unwrap();
    common::expect_exit(&output, 0).trim().to_string()
}

#[test]
fn every_layout_applies_the_long_history_like_psql_and_verifies() {
    let steps = history(None);
    assert_eq!(steps.len(), 160);
    for layout in [
        Layout::Native,
        Layout::UpOnly,
        Layout::Diesel,
        Layout::Dbmate,
        Layout::Flyway,
    ] {
        let project = Project::new(&[]);
        let ups = write(&project, layout, &steps);
        let (db, reference) = (TestDb::new(), TestDb::new());
        psql_runs(&reference, &ups);
        // The full default pipeline on an empty database, then again as a no-op.
        let out = project.run(&db, &["apply"], 0);
        assert!(
            out.contains("preflight passed") && out.contains("postflight passed"),
            "{layout:?}: {out}"
        );
        let out = project.run(&db, &["apply"], 0);
        assert!(out.contains("up to date"), "{layout:?}: {out}");
        assert_eq!(
            checksum(&db),
            checksum(&reference),
            "{layout:?}: migsafe and psql built different schemas"
        );
        let out = project.run(&db, &["verify"], 0);
        match layout {
            Layout::UpOnly => assert!(out.contains("forward-only"), "{layout:?}: {out}"),
            _ => assert!(
                out.contains("160 migration(s) verified"),
                "{layout:?}: {out}"
            ),
        }
    }
}

#[test]
fn verify_names_the_broken_step_planted_in_the_long_history() {
    let project = Project::new(&[]);
    write(&project, Layout::Native, &history(Some(120)));
    let db = TestDb::new();
    let out = project.run(&db, &["verify"], 6);
    assert!(out.contains("0120"), "{out}");
    assert!(out.contains("planted_120_idx"), "{out}");
}
