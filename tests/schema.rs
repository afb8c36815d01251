//! The canonical schema snapshot against real databases: deterministic,
//! complete enough to catch every kind of object, and diffable.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Project, TestDb, expect_exit};

/// One schema with every kind of object the snapshot covers, as statements
/// that can run in either order (dependencies are kept within each part).
const PARTS: [&str; 4] = [
    "CREATE EXTENSION IF NOT EXISTS pgcrypto;
     CREATE SCHEMA app;
     CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'happy');
     CREATE DOMAIN app.email AS text NOT NULL CHECK (VALUE LIKE '%@%');
     CREATE TYPE app.pair AS (a integer, b text);
     CREATE TABLE app.users (
         id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
         email app.email,
         name text COLLATE \"C\" DEFAULT 'anon',
         mood app.mood,
         name_upper text GENERATED ALWAYS AS (upper(name)) STORED,
         CONSTRAINT users_email_key UNIQUE (email)
     );
     ALTER TABLE app.users ADD CONSTRAINT users_name_len CHECK (length(name) < 100) NOT VALID;
     CREATE INDEX users_lower_name ON app.users (lower(name)) WHERE mood <> 'sad';
     ALTER TABLE app.users ENABLE ROW LEVEL SECURITY;
     CREATE POLICY own_rows ON app.users FOR SELECT USING (name = current_user);
     CREATE VIEW app.happy_users AS SELECT id, name FROM app.users WHERE mood = 'happy';",
    "CREATE SCHEMA audit;
     CREATE UNLOGGED TABLE audit.scratch (k text);
     CREATE TABLE audit.events (at timestamptz NOT NULL, kind text) PARTITION BY RANGE (at);
     CREATE TABLE audit.events_2026 PARTITION OF audit.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
     CREATE SEQUENCE audit.ticket START 100 INCREMENT 5;
     CREATE MATERIALIZED VIEW audit.kinds AS SELECT DISTINCT kind FROM audit.events;",
    "CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.kind := lower(NEW.kind); RETURN NEW; END $$;
     CREATE PROCEDURE public.noop(n integer) LANGUAGE sql AS $$ SELECT 1 $$;
     CREATE TABLE public.things (id int PRIMARY KEY, kind text);
     CREATE TRIGGER things_touch BEFORE INSERT ON public.things FOR EACH ROW EXECUTE FUNCTION public.touch();",
    "CREATE TABLE public.parents (id int PRIMARY KEY);
     CREATE TABLE public.children (id int PRIMARY KEY, parent_id int);
     ALTER TABLE public.children ADD CONSTRAINT children_parent_id_fkey FOREIGN KEY (parent_id) REFERENCES public.parents (id) NOT VALID;
     DO $$ BEGIN CREATE ROLE migsafe_reader; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
     GRANT SELECT ON public.parents TO migsafe_reader;",
];

fn snapshot(db: &TestDb) -> String {
    let project = Project::new(&[]);
    let output = project
        .migsafe(db)
        .args(["schema", "dump"])
        .output()
        .unwrap();
    expect_exit(&output, 0);
    String::from_utf8(output.stdout).unwrap()
}

fn checksum(db: &TestDb) -> String {
    let project = Project::new(&[]);
    let output = project
        .migsafe(db)
        .args(["schema", "checksum"])
        .output()
        .unwrap();
    expect_exit(&output, 0);
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

#[test]
fn the_same_schema_built_in_two_orders_has_the_same_checksum() {
    let forward = TestDb::new();
    for part in PARTS {
        forward.query(part);
    }
    let backward = TestDb::new();
    // Unrelated objects first in the other order, and noise that is dropped again.
    backward.query("CREATE TABLE public.noise (x int); DROP TABLE public.noise;");
    for part in PARTS.iter().rev() {
        backward.query(part);
    }
    let text = snapshot(&forward);
    for expected in [
        "schema app",
        "extension pgcrypto: schema public",
        "table app.users: table, row level security",
        "column app.users.id: #1 bigint not null generated always as identity",
        "column app.users.name: #3 text default 'anon'::text collate \"C\"",
        "column app.users.name_upper: #5 text generated always as (upper(name)) stored",
        "constraint app.users.users_name_len: CHECK ((length(name) < 100)) NOT VALID",
        "constraint public.children.children_parent_id_fkey: FOREIGN KEY (parent_id) REFERENCES parents(id) NOT VALID",
        "index app.users_lower_name: CREATE INDEX users_lower_name ON app.users USING btree (lower(name))",
        "enum app.mood: ('sad', 'ok', 'happy')",
        "domain app.email: text not null",
        "type app.pair: (a integer, b text)",
        "policy app.users.own_rows: permissive for select to public using",
        "view app.happy_users:",
        "materialized view audit.kinds:",
        "table audit.scratch: table, unlogged",
        "table audit.events: partitioned, partition by RANGE (at)",
        "table audit.events_2026: table, partition of audit.events FOR VALUES FROM",
        "sequence audit.ticket: bigint start 100 increment 5",
        "function public.touch():",
        "procedure public.noop(IN n integer)",
        "trigger public.things.things_touch: CREATE TRIGGER things_touch BEFORE INSERT",
        "grants migsafe_reader=r/",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
    assert!(
        !text.contains("gen_random_uuid"),
        "extension members are left out"
    );
    assert_eq!(text, snapshot(&backward));
    assert_eq!(checksum(&forward), checksum(&backward));
    assert_eq!(checksum(&forward).len(), 64);
}

#[test]
fn the_history_tables_are_not_part_of_the_schema() {
    let db = TestDb::new();
    let project = Project::new(&[("migrations/0001_t.up.sql", "CREATE TABLE t (id int);")]);
    let before = checksum(&db);
    project.run(&db, &["apply"], 0);
    let text = snapshot(&db);
    assert!(
        !text.contains("schema_migrations")
            && !text.contains("history_audit")
            && !text.contains("schema migsafe"),
        "{text}"
    );
    assert!(text.contains("table public.t"));
    assert_ne!(before, checksum(&db));
}

#[test]
fn diff_names_what_differs_and_exit_code_gives_6() {
    let a = TestDb::new();
    let b = TestDb::new();
    for db in [&a, &b] {
        db.query("CREATE TABLE t (id int PRIMARY KEY, name text); CREATE INDEX t_name ON t (name); CREATE TYPE color AS ENUM ('red');");
    }
    let project = Project::new(&[]);
    let out = project.run(&a, &["schema", "diff", &a.url, &b.url, "--exit-code"], 0);
    assert!(out.contains("identical schemas"), "{out}");

    b.query("ALTER TABLE t ALTER COLUMN name TYPE varchar(20); DROP INDEX t_name; ALTER TABLE t ADD COLUMN email text; ALTER TYPE color ADD VALUE 'blue'; CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';");
    let output = project
        .migsafe(&a)
        .args(["schema", "diff", &a.url, &b.url, "--exit-code"])
        .output()
        .unwrap();
    let out = expect_exit(&output, 6);
    assert!(out.contains("~ column public.t.name"), "{out}");
    assert!(out.contains("now: #2 character varying(20)"), "{out}");
    assert!(out.contains("- index public.t_name"), "{out}");
    assert!(out.contains("+ column public.t.email"), "{out}");
    assert!(out.contains("~ enum public.color"), "{out}");
    assert!(out.contains("+ function public.f()"), "{out}");
    assert!(!out.contains(common::sandbox().password()));
    let output = project
        .migsafe(&a)
        .args(["schema", "diff", &a.url, &b.url, "--format", "json"])
        .output()
        .unwrap();
    expect_exit(&output, 0);
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["identical"], false);
    assert_eq!(doc["changes"].as_array().unwrap().len(), 5);
}
