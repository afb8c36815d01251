//! Migrations on disk: finding files, pairing up and down scripts, reading them.
//!
//! `source` knows nothing of the database. It turns one namespace directory into
//! a [`MigrationSet`], or into an error that lists every unusable file with its
//! path, so an operator fixes them all in one pass.

pub mod checksum;
pub mod directives;
pub mod embed;
pub mod layout;
pub mod layouts;
pub mod migration;
#[cfg(feature = "engine")]
pub mod scaffold;
#[cfg(feature = "engine")]
pub mod statements;
pub mod version;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Code, Error, FileProblem, ReasonCode, Result};
use layout::{Layout, Role};
pub use migration::{Migration, MigrationSet, Script};
pub use version::Version;

/// A script file before pairing.
struct Part {
    name: String,
    layout: Layout,
    role: Role,
    path: PathBuf,
    no_transaction_from_metadata: bool,
    /// ory/pop: the dialect in the file name.
    dialect: Option<String>,
    /// What `layout = "…"` in the config says, if anything.
    forced: Option<Layout>,
}

#[derive(Default)]
struct Slot {
    ups: Vec<Part>,
    downs: Vec<Part>,
}

/// Loads every migration of `namespace` from `dir`, detecting its layout.
pub fn load(namespace: &str, dir: &Path) -> Result<MigrationSet> {
    load_as(namespace, dir, None)
}

/// Loads every migration of `namespace` from `dir`; `forced` (the
/// namespace's `layout = "…"`) overrides detection where a directory could be
/// read two ways: a file with `-- +goose Up` under `layout = "up-only"` is one
/// up-only script whose markers are comments, and a directory with a Drizzle
/// journal under any other layout is read file by file.
pub fn load_as(namespace: &str, dir: &Path, forced: Option<Layout>) -> Result<MigrationSet> {
    if forced == Some(Layout::Drizzle) || (forced.is_none() && layouts::drizzle::is_drizzle(dir)) {
        return load_drizzle(namespace, dir);
    }
    if forced == Some(Layout::Sqitch)
        || (forced.is_none() && dir.join(layouts::sqitch::PLAN).is_file())
    {
        return load_sqitch(namespace, dir);
    }
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Config {
                reason: ReasonCode::about(Code::MigrationDirMissing, namespace),
                message: format!(
                    "the migrations directory of namespace `{namespace}` does not exist: {}",
                    dir.display()
                ),
                hint: Some(
                    "create it (`migsafe init` makes one) or fix `dir` in migsafe.toml".into(),
                ),
                source: None,
            });
        }
        Err(err) => return Err(Error::io(dir, "read the directory", &err)),
    };
    let mut names: Vec<(String, PathBuf)> = Vec::new();
    let mut kinds = std::collections::HashMap::new();
    let mut problems = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|err| Error::io(dir, "read the directory", &err))?;
        let path = entry.path();
        if let Ok(kind) = entry.file_type() {
            kinds.insert(path.clone(), kind);
        }
        match entry.file_name().into_string() {
            Ok(name) => names.push((name, path)),
            Err(_) => problems.push(problem(
                namespace,
                &path,
                "the file name is not valid UTF-8; rename it",
            )),
        }
    }
    // Flyway scans its locations recursively (`db/migration/views/R__x.sql`):
    // a plain folder holding Flyway files gives them to the namespace.
    if forced.is_none_or(|f| f == Layout::Flyway) {
        let mut nested = Vec::new();
        names.retain(|(name, path)| {
            let plain_folder = is_dir_entry(path, kinds.get(path).copied())
                && !layout::is_leftover(name)
                && matches!(layout::parse_dir_name(name), Ok(None));
            if !plain_folder {
                return true;
            }
            let found = flyway_files(path);
            let keep = found.is_empty();
            nested.extend(found);
            keep
        });
        names.extend(nested);
    }
    names.sort();
    if forced == Some(Layout::Liquibase)
        || (forced.is_none() && names.iter().any(|(name, path)| looks_liquibase(name, path)))
    {
        return load_liquibase(namespace, names, problems);
    }

    let mut slots: BTreeMap<Version, Slot> = BTreeMap::new();
    let mut repeatables: Vec<Migration> = Vec::new();
    let mut flyway_confs: BTreeMap<PathBuf, layouts::flyway::ScriptConf> = BTreeMap::new();
    let mut ignored = Vec::new();
    let mut why_ignored = BTreeMap::new();
    for (name, path) in names {
        let is_dir = is_dir_entry(&path, kinds.get(&path).copied());
        if is_dir {
            match layout::parse_dir_name(&name) {
                Ok(None) => ignored.push(path),
                Ok(Some((version, migration_name)))
                    if forced.is_none_or(|f| f == Layout::Prisma)
                        && layouts::prisma::is_migration_dir(&path) =>
                {
                    slots.entry(version).or_default().ups.push(Part {
                        name: migration_name,
                        layout: Layout::Prisma,
                        role: Role::Up,
                        path: path.join(layouts::prisma::SCRIPT),
                        no_transaction_from_metadata: false,
                        dialect: None,
                        forced,
                    });
                }
                Ok(Some((version, migration_name))) => match read_diesel_dir(&path) {
                    Ok(parts) => {
                        let slot = slots.entry(version).or_default();
                        let no_tx = parts.no_transaction;
                        slot.ups.push(Part {
                            name: migration_name.clone(),
                            layout: Layout::Diesel,
                            role: Role::Up,
                            path: path.join("up.sql"),
                            no_transaction_from_metadata: no_tx,
                            dialect: None,
                            forced,
                        });
                        if parts.has_down {
                            slot.downs.push(Part {
                                name: migration_name,
                                layout: Layout::Diesel,
                                role: Role::Down,
                                path: path.join("down.sql"),
                                no_transaction_from_metadata: no_tx,
                                dialect: None,
                                forced,
                            });
                        }
                    }
                    Err(message) => problems.push(problem(namespace, &path, &message)),
                },
                Err(message) => problems.push(problem(namespace, &path, &message)),
            }
            continue;
        }
        if name == layouts::prisma::LOCK_FILE {
            match fs::read_to_string(&path)
                .map_err(|e| format!("cannot be read: {e}"))
                .and_then(|text| layouts::prisma::check_lock(&text))
            {
                Ok(()) => {
                    why_ignored.insert(path.clone(), "Prisma's provider lock".to_string());
                    ignored.push(path);
                }
                Err(message) => problems.push(problem(namespace, &path, &message)),
            }
            continue;
        }
        // Flyway's per-script settings (`V3__x.sql.conf`), read with their script.
        if let Some(script_name) = name.strip_suffix(layouts::flyway::CONF_SUFFIX)
            && matches!(layout::parse_file_name(script_name), Ok(Some(ref p)) if p.layout == Layout::Flyway)
        {
            match fs::read(&path)
                .map_err(|e| format!("cannot be read: {e}"))
                .and_then(|bytes| checksum::normalize(&bytes))
                .and_then(|text| layouts::flyway::ScriptConf::parse(&text))
            {
                Ok(conf) => {
                    flyway_confs.insert(path.with_file_name(script_name), conf);
                }
                Err(message) => problems.push(problem(namespace, &path, &message)),
            }
            continue;
        }
        match layout::parse_file_name(&name).or_else(|err| sql_migrate_bare(&name, &path, err)) {
            Ok(None) => ignored.push(path),
            Ok(Some(parsed)) if parsed.role == Role::Repeatable => {
                match read_file(namespace, &path)
                    .map_err(|p| vec![p])
                    .and_then(|bytes| script(namespace, &path, bytes, 1, false))
                {
                    Ok(up) => repeatables.push(Migration {
                        version: parsed.version,
                        name: parsed.name,
                        layout: Layout::Flyway,
                        up,
                        down: None,
                        verify: None,
                        rerun_of: None,
                    }),
                    Err(mut found) => problems.append(&mut found),
                }
            }
            Ok(Some(parsed)) => {
                let slot = slots.entry(parsed.version.clone()).or_default();
                let no_transaction_from_metadata = parsed.autocommit;
                let part = Part {
                    name: parsed.name,
                    layout: parsed.layout,
                    role: parsed.role,
                    path,
                    no_transaction_from_metadata,
                    dialect: parsed.dialect,
                    forced,
                };
                match parsed.role {
                    Role::Down => slot.downs.push(part),
                    Role::Up | Role::Plain | Role::Repeatable => slot.ups.push(part),
                }
            }
            Err(message) => problems.push(problem(namespace, &path, &message)),
        }
    }

    // What a script's `.sql.conf` says: no transaction comes before reading
    // the script (as a metadata flag, like diesel's), the rest after.
    for part in slots
        .values_mut()
        .flat_map(|s| s.ups.iter_mut().chain(s.downs.iter_mut()))
    {
        if flyway_confs
            .get(&part.path)
            .is_some_and(|c| c.no_transaction)
        {
            part.no_transaction_from_metadata = true;
        }
    }
    let pop = slots
        .values()
        .flat_map(|slot| slot.ups.iter().chain(&slot.downs))
        .any(|part| part.layout == Layout::Pop);
    if pop {
        for slot in slots.values_mut() {
            for parts in [&mut slot.ups, &mut slot.downs] {
                choose_pop_files(parts, &mut ignored, &mut why_ignored);
            }
        }
        slots.retain(|_, slot| !slot.ups.is_empty() || !slot.downs.is_empty());
    }

    let mut migrations = Vec::with_capacity(slots.len());
    let configure = |script: &mut Script| {
        if let Some(conf) = flyway_confs.get(&script.path) {
            script.directives.no_transaction |= conf.no_transaction;
            script.directives.literal_placeholders = conf.literal_placeholders;
            if conf.unsupported.is_some() {
                script.directives.unsupported.clone_from(&conf.unsupported);
            }
        }
    };
    for repeatable in &mut repeatables {
        configure(&mut repeatable.up);
    }
    for result in assemble_all(namespace, slots.into_iter().collect()) {
        match result {
            Ok(mut migration) => {
                configure(&mut migration.up);
                if let Some(down) = migration.down.as_mut() {
                    configure(down);
                }
                if pop && migration.layout == Layout::Reversible {
                    migration.layout = Layout::Pop;
                }
                if migration.layout == Layout::Pop {
                    // pop writes empty files for versions that need nothing on a dialect.
                    migration.up.directives.empty_ok = true;
                }
                migrations.push(migration);
            }
            Err(mut found) => problems.append(&mut found),
        }
    }
    if !problems.is_empty() {
        let reason = problems[0].reason.clone();
        return Err(Error::Source { reason, problems });
    }
    if migrations.is_empty()
        && repeatables.is_empty()
        && let Some(unknown) = unknown_layout(namespace, dir, &ignored)
    {
        return Err(unknown);
    }
    ignored.sort();
    repeatables.sort_by(|a, b| a.version.cmp(&b.version));
    // Flyway refuses two repeatables of one description (in two folders).
    if let Some(pair) = repeatables
        .windows(2)
        .find(|w| w[0].version == w[1].version)
    {
        return Err(Error::Source {
            reason: ReasonCode::migration(
                Code::MigrationVersionDuplicate,
                namespace,
                &pair[0].version,
            ),
            problems: vec![FileProblem {
                reason: ReasonCode::migration(
                    Code::MigrationVersionDuplicate,
                    namespace,
                    &pair[0].version,
                ),
                path: pair[1].up.path.clone(),
                message: format!(
                    "the repeatable {} is in two files: {} and {}; keep one",
                    pair[0].version,
                    pair[0].up.path.display(),
                    pair[1].up.path.display()
                ),
            }],
        });
    }
    Ok(MigrationSet {
        migrations,
        repeatables,
        ignored,
        why_ignored,
        named_schemas: std::sync::OnceLock::new(),
    })
}

/// The Flyway files under `dir` ([`layout::is_flyway_file`]: scripts, their
/// `.sql.conf`, callbacks, misnamed ones to refuse), at any depth, as (file
/// name, path). Other files there are not migrations.
fn flyway_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if layout::is_leftover(&name) {
            continue;
        }
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(flyway_files(&path));
        } else if layout::is_flyway_file(&name) {
            out.push((name, path));
        }
    }
    out
}

/// sql-migrate also allows a bare `<ver>.sql`; such a name is a migration
/// when the file has `-- +migrate` markers, and stays an error otherwise.
fn sql_migrate_bare(
    name: &str,
    path: &Path,
    err: String,
) -> std::result::Result<Option<layout::MigrationName>, String> {
    let Some(stem) = name.strip_suffix(".sql") else {
        return Err(err);
    };
    if stem.is_empty() || !stem.chars().all(|c| c.is_ascii_digit()) {
        return Err(err);
    }
    let text = fs::read(path)
        .ok()
        .and_then(|bytes| checksum::normalize(&bytes).ok())
        .unwrap_or_default();
    if !layouts::sql_migrate::is_sql_migrate(&text) {
        return Err(err);
    }
    let version = Version::parse(stem).map_err(|e| e.to_string())?;
    Ok(Some(layout::MigrationName {
        version,
        name: stem.to_string(),
        role: Role::Plain,
        layout: Layout::UpOnly,
        dialect: None,
        autocommit: false,
    }))
}

/// Keeps, among one version's pop files of one direction, the one for
/// PostgreSQL; the others are ignored with the reason.
fn choose_pop_files(
    parts: &mut Vec<Part>,
    ignored: &mut Vec<PathBuf>,
    why_ignored: &mut BTreeMap<PathBuf, String>,
) {
    let dialects: Vec<Option<&str>> = parts.iter().map(|p| p.dialect.as_deref()).collect();
    let choices = layouts::pop::choose(&dialects);
    let mut kept = Vec::with_capacity(parts.len());
    for (part, choice) in parts.drain(..).zip(choices) {
        match choice {
            layouts::pop::Choice::Use => kept.push(part),
            layouts::pop::Choice::Ignore(why) => {
                why_ignored.insert(part.path.clone(), why);
                ignored.push(part.path);
            }
        }
    }
    *parts = kept;
}

/// True for a `.sql` file whose name is in no other layout (or is a plain
/// `<ver>_<name>.sql`) and whose first line is `--liquibase formatted sql`.
fn looks_liquibase(name: &str, path: &Path) -> bool {
    if !name.ends_with(".sql") || layout::is_leftover(name) {
        return false;
    }
    if let Ok(Some(parsed)) = layout::parse_file_name(name)
        && parsed.role != Role::Plain
    {
        return false;
    }
    use std::io::Read;
    let mut head = [0u8; 128];
    let read = fs::File::open(path).and_then(|mut file| file.read(&mut head));
    read.is_ok_and(|n| layouts::liquibase::is_formatted(&String::from_utf8_lossy(&head[..n])))
}

/// A directory of Liquibase formatted SQL files: files by name, changesets
/// in file order, versions by position (see `layouts::liquibase`).
fn load_liquibase(
    namespace: &str,
    names: Vec<(String, PathBuf)>,
    mut problems: Vec<FileProblem>,
) -> Result<MigrationSet> {
    let mut ignored = Vec::new();
    let mut why_ignored = BTreeMap::new();
    let mut migrations = Vec::new();
    let mut position: u64 = 0;
    for (name, path) in names {
        let text = if name.ends_with(".sql") && path.is_file() && !layout::is_leftover(&name) {
            match read_file(namespace, &path).map(|b| checksum::normalize(&b)) {
                Ok(Ok(text)) => Some(text),
                Ok(Err(message)) => {
                    problems.push(problem(namespace, &path, &message));
                    continue;
                }
                Err(found) => {
                    problems.push(found);
                    continue;
                }
            }
        } else {
            None
        };
        let Some(text) = text.filter(|t| layouts::liquibase::is_formatted(t)) else {
            why_ignored.insert(path.clone(), "not Liquibase formatted SQL".to_string());
            ignored.push(path);
            continue;
        };
        let changesets = match layouts::liquibase::parse(&text) {
            Ok(changesets) => changesets,
            Err(message) => {
                problems.push(problem(namespace, &path, &message));
                continue;
            }
        };
        for changeset in changesets {
            position += 1;
            let label = format!("{}:{}", changeset.author, changeset.id);
            if let Some(dbms) = &changeset.other_dbms {
                let at = PathBuf::from(format!("{}#{label}", path.display()));
                why_ignored.insert(at.clone(), format!("changeset for dbms {dbms}"));
                ignored.push(at);
                continue;
            }
            let version = Version::parse(&position.to_string()).map_err(|e| Error::Config {
                reason: ReasonCode::about(Code::MigrationFileInvalid, namespace),
                message: e.to_string(),
                hint: None,
                source: None,
            })?;
            let up = script_from_text(
                namespace,
                &path,
                changeset.up.text.clone(),
                changeset.up.first_line,
                changeset.up.no_transaction,
            )
            .map(|mut up| {
                changeset.direct(&mut up.directives);
                up
            });
            let down = changeset
                .down
                .filter(|d| checksum::has_sql(&d.text))
                .map(|d| script_from_text(namespace, &path, d.text, d.first_line, d.no_transaction))
                .transpose();
            match (up, down) {
                (Ok(up), Ok(down)) => migrations.push(Migration {
                    version,
                    name: label,
                    layout: Layout::Liquibase,
                    up,
                    down,
                    verify: None,
                    rerun_of: None,
                }),
                (Err(mut found), _) | (_, Err(mut found)) => problems.append(&mut found),
            }
        }
    }
    if !problems.is_empty() {
        let reason = problems[0].reason.clone();
        return Err(Error::Source { reason, problems });
    }
    Ok(MigrationSet {
        migrations,
        repeatables: Vec::new(),
        ignored,
        why_ignored,
        named_schemas: std::sync::OnceLock::new(),
    })
}

/// A Sqitch project: the plan lists the changes, in order.
fn load_sqitch(namespace: &str, dir: &Path) -> Result<MigrationSet> {
    let plan_path = dir.join(layouts::sqitch::PLAN);
    let invalid = |message: String| Error::Source {
        reason: ReasonCode::about(Code::MigrationFileInvalid, namespace),
        problems: vec![problem(namespace, &plan_path, &message)],
    };
    let text = fs::read(&plan_path)
        .map_err(|e| format!("cannot be read: {e}"))
        .and_then(|bytes| checksum::normalize(&bytes))
        .map_err(invalid)?;
    let changes = layouts::sqitch::read_plan(&text, |relative| dir.join(relative).is_file())
        .map_err(invalid)?;
    let mut used: BTreeSet<PathBuf> = BTreeSet::new();
    let mut problems = Vec::new();
    let mut migrations = Vec::with_capacity(changes.len());
    for change in &changes {
        let version = Version::parse(&change.position.to_string())
            .map_err(|e| invalid(format!("line {}: {e}", change.line)))?;
        let read = |relative: &str| {
            let path = dir.join(relative);
            read_file(namespace, &path)
                .map_err(|p| vec![p])
                .and_then(|bytes| script(namespace, &path, bytes, 1, false))
        };
        let up = read(&change.deploy);
        let down = change.revert.as_deref().map(read).transpose();
        let verify = change.verify.as_deref().map(read).transpose();
        for relative in [
            Some(&change.deploy),
            change.revert.as_ref(),
            change.verify.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            used.insert(dir.join(relative));
        }
        match (up, down, verify) {
            (Ok(up), Ok(down), Ok(verify)) => migrations.push(Migration {
                version,
                name: change.name.clone(),
                layout: Layout::Sqitch,
                up,
                down,
                verify,
                rerun_of: None,
            }),
            (Err(mut found), _, _) | (_, Err(mut found), _) | (_, _, Err(mut found)) => {
                problems.append(&mut found);
            }
        }
    }
    if !problems.is_empty() {
        let reason = problems[0].reason.clone();
        return Err(Error::Source { reason, problems });
    }
    let mut ignored = Vec::new();
    let mut why_ignored = BTreeMap::new();
    let mut note = |path: PathBuf, why: &str| {
        why_ignored.insert(path.clone(), why.to_string());
        ignored.push(path);
    };
    for entry in fs::read_dir(dir).map_err(|err| Error::io(dir, "read the directory", &err))? {
        let entry = entry.map_err(|err| Error::io(dir, "read the directory", &err))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        match name.as_str() {
            "deploy" | "revert" | "verify" => {
                let Ok(inner) = fs::read_dir(&path) else {
                    continue;
                };
                for file in inner.flatten() {
                    let file = file.path();
                    if !used.contains(&file) {
                        note(file, "not a script of a change in sqitch.plan");
                    }
                }
            }
            layouts::sqitch::PLAN => note(path, "Sqitch's plan, read for the order"),
            _ => note(path, "not part of the Sqitch plan"),
        }
    }
    ignored.sort();
    if migrations.is_empty() {
        // A plan without changes beside SQL files would apply nothing.
        let telling: Vec<PathBuf> = ignored
            .iter()
            .filter(|p| !p.ends_with(layouts::sqitch::PLAN) && !p.ends_with("sqitch.conf"))
            .cloned()
            .collect();
        if let Some(unknown) = unknown_layout(namespace, dir, &telling) {
            return Err(unknown);
        }
    }
    Ok(MigrationSet {
        migrations,
        repeatables: Vec::new(),
        ignored,
        why_ignored,
        named_schemas: std::sync::OnceLock::new(),
    })
}

/// A Drizzle directory: the journal lists the migrations, in order.
fn load_drizzle(namespace: &str, dir: &Path) -> Result<MigrationSet> {
    let journal_path = dir.join(layouts::drizzle::JOURNAL);
    let text = fs::read(&journal_path)
        .map_err(|e| format!("cannot be read: {e}"))
        .and_then(|bytes| checksum::normalize(&bytes));
    let entries = text.and_then(|text| layouts::drizzle::read_journal(&text));
    let entries = entries.map_err(|message| Error::Source {
        reason: ReasonCode::about(Code::MigrationFileInvalid, namespace),
        problems: vec![problem(namespace, &journal_path, &message)],
    })?;
    let listed: BTreeSet<&str> = entries.iter().map(|e| e.file.as_str()).collect();
    let mut ignored = Vec::new();
    let mut why_ignored = BTreeMap::new();
    let read = fs::read_dir(dir).map_err(|err| Error::io(dir, "read the directory", &err))?;
    for entry in read {
        let entry = entry.map_err(|err| Error::io(dir, "read the directory", &err))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if listed.contains(name.as_str()) {
            continue;
        }
        let why = if name == "meta" {
            "Drizzle's journal and schema snapshots"
        } else if name.ends_with(".sql") && !layout::is_leftover(&name) {
            "not in meta/_journal.json: Drizzle never applies it"
        } else {
            "not a Drizzle migration"
        };
        why_ignored.insert(entry.path(), why.to_string());
        ignored.push(entry.path());
    }
    ignored.sort();
    if entries.is_empty() {
        let telling: Vec<PathBuf> = ignored
            .iter()
            .filter(|p| !p.ends_with("meta"))
            .cloned()
            .collect();
        if let Some(unknown) = unknown_layout(namespace, dir, &telling) {
            return Err(unknown);
        }
    }
    let mut problems = Vec::new();
    let mut migrations = Vec::with_capacity(entries.len());
    for entry in entries {
        let path = dir.join(&entry.file);
        let result = read_file(namespace, &path)
            .map_err(|p| vec![p])
            .and_then(|bytes| script(namespace, &path, bytes, 1, false));
        match result {
            Ok(up) => migrations.push(Migration {
                version: entry.version,
                name: entry.name,
                layout: Layout::Drizzle,
                up,
                down: None,
                verify: None,
                rerun_of: None,
            }),
            Err(mut found) => {
                for p in &mut found {
                    if !path.exists() {
                        p.message = format!(
                            "is listed in {} but does not exist; restore it or remove its journal entry",
                            layouts::drizzle::JOURNAL
                        );
                    }
                }
                problems.append(&mut found);
            }
        }
    }
    if !problems.is_empty() {
        let reason = problems[0].reason.clone();
        return Err(Error::Source { reason, problems });
    }
    Ok(MigrationSet {
        migrations,
        repeatables: Vec::new(),
        ignored,
        why_ignored,
        named_schemas: std::sync::OnceLock::new(),
    })
}

/// Files that say "these are migrations" (SQL, folders, other tools' plans),
/// found in a directory where no migration was recognised: an empty result
/// would be a silent success that applies nothing.
fn unknown_layout(namespace: &str, dir: &Path, ignored: &[PathBuf]) -> Option<Error> {
    const MARKERS: [&str; 4] = [
        "sqitch.plan",
        "migration_lock.toml",
        "_journal.json",
        "changelog.xml",
    ];
    let telling: Vec<String> = ignored
        .iter()
        .filter(|path| {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let hidden = name.starts_with('.');
            !hidden
                && (path
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("sql"))
                    || MARKERS.contains(&name.as_str())
                    || path.is_dir())
        })
        .filter_map(|path| path.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    if telling.is_empty() {
        return None;
    }
    let shown: Vec<&str> = telling.iter().take(8).map(String::as_str).collect();
    Some(Error::Config {
        reason: ReasonCode::about(Code::MigrationLayoutUnknown, namespace),
        message: format!(
            "{} holds {} file(s) or folder(s) ({}{}), but none in a layout migsafe reads, so it would apply nothing",
            dir.display(),
            telling.len(),
            shown.join(", "),
            if telling.len() > shown.len() { ", …" } else { "" }
        ),
        hint: Some(
            "name files like `0001_create_users.up.sql` / `.down.sql`, `V1__name.sql` (Flyway), `<version>_<name>/up.sql` (diesel) or `<version>_<name>.sql` (dbmate, up-only); docs/migrations.md lists the layouts migsafe reads".into(),
        ),
     source: None, })
}

/// The directory entry's type says whether it is a directory without another
/// system call; only symlinks need a `stat`.
fn is_dir_entry(path: &Path, kind: Option<fs::FileType>) -> bool {
    match kind {
        Some(kind) if !kind.is_symlink() => kind.is_dir(),
        _ => fs::metadata(path).map(|m| m.is_dir()).unwrap_or(false),
    }
}

/// Reads and checksums every migration, on a few threads when there are many
/// (a thousand small files is mostly system calls), keeping version order.
fn assemble_all(
    namespace: &str,
    slots: Vec<(Version, Slot)>,
) -> Vec<Result<Migration, Vec<FileProblem>>> {
    const PER_THREAD: usize = 128;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4);
    if slots.len() < 2 * PER_THREAD || threads < 2 {
        return slots
            .into_iter()
            .map(|(v, slot)| assemble(namespace, &v, slot))
            .collect();
    }
    let chunk = slots.len().div_ceil(threads);
    let mut chunks: Vec<Vec<(Version, Slot)>> = Vec::new();
    let mut rest = slots.into_iter().peekable();
    while rest.peek().is_some() {
        chunks.push(rest.by_ref().take(chunk).collect());
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|part| {
                scope.spawn(move || {
                    part.into_iter()
                        .map(|(v, slot)| assemble(namespace, &v, slot))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

fn problem(namespace: &str, path: &Path, message: &str) -> FileProblem {
    FileProblem {
        reason: ReasonCode::about(Code::MigrationFileInvalid, namespace),
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

struct DieselDir {
    has_down: bool,
    no_transaction: bool,
}

fn read_diesel_dir(dir: &Path) -> Result<DieselDir, String> {
    if !dir.join("up.sql").is_file() {
        return Err("a diesel migration directory needs an up.sql".into());
    }
    let metadata = dir.join("metadata.toml");
    let no_transaction = if metadata.is_file() {
        #[derive(serde::Deserialize)]
        struct Metadata {
            run_in_transaction: Option<bool>,
        }
        let text =
            fs::read_to_string(&metadata).map_err(|e| format!("cannot read metadata.toml: {e}"))?;
        let parsed: Metadata = toml::from_str(&text)
            .map_err(|e| format!("metadata.toml is not valid: {}", e.message()))?;
        parsed.run_in_transaction == Some(false)
    } else {
        false
    };
    Ok(DieselDir {
        has_down: dir.join("down.sql").is_file(),
        no_transaction,
    })
}

fn assemble(
    namespace: &str,
    version: &Version,
    mut slot: Slot,
) -> Result<Migration, Vec<FileProblem>> {
    let duplicate = |parts: &[Part]| FileProblem {
        reason: ReasonCode::migration(Code::MigrationVersionDuplicate, namespace, version),
        path: parts[1].path.clone(),
        message: format!(
            "version {version} is used by more than one file: {}; give each migration its own version",
            parts
                .iter()
                .map(|p| p.path.display().to_string())
                .collect::<Vec<_>>()
                .join(" and ")
        ),
    };
    if slot.ups.len() > 1 {
        return Err(vec![duplicate(&slot.ups)]);
    }
    if slot.downs.len() > 1 {
        return Err(vec![duplicate(&slot.downs)]);
    }
    let Some(up_part) = slot.ups.pop() else {
        let down = &slot.downs[0];
        return Err(vec![problem(
            namespace,
            &down.path,
            "a down script without an up script; add the up script or remove this file",
        )]);
    };
    let down_part = slot.downs.pop();
    // Up and down pair by version alone, as golang-migrate does:
    // `30_add_x.up.sql` and `30_drop_x.down.sql` are one migration (named
    // after the up script; `status -v` shows the pairing).
    if let Some(down) = &down_part
        && up_part.role == Role::Plain
    {
        return Err(vec![problem(
            namespace,
            &down.path,
            &format!(
                "a down script for the up-only file {}; rename the up file to `.up.sql`",
                up_part.path.display()
            ),
        )]);
    }

    let up_bytes = read_file(namespace, &up_part.path).map_err(|p| vec![p])?;
    let mut layout = up_part.layout;
    let content = if up_part.role == Role::Plain {
        content_layout(&up_bytes, up_part.forced)
    } else {
        Layout::UpOnly
    };
    let (up, down) = if content == Layout::Dbmate {
        layout = Layout::Dbmate;
        split_dbmate(namespace, &up_part.path, &up_bytes)?
    } else if matches!(content, Layout::Goose | Layout::SqlMigrate) {
        layout = content;
        split_marked(namespace, &up_part.path, &up_bytes, content)?
    } else {
        let up = script(
            namespace,
            &up_part.path,
            up_bytes,
            1,
            up_part.no_transaction_from_metadata,
        )?;
        let down = match &down_part {
            Some(part) => {
                let bytes = read_file(namespace, &part.path).map_err(|p| vec![p])?;
                Some(script(
                    namespace,
                    &part.path,
                    bytes,
                    1,
                    part.no_transaction_from_metadata,
                )?)
            }
            None => None,
        };
        (up, down)
    };
    Ok(Migration {
        version: version.clone(),
        name: up_part.name,
        layout,
        up,
        down,
        verify: None,
        rerun_of: None,
    })
}

fn read_file(namespace: &str, path: &Path) -> Result<Vec<u8>, FileProblem> {
    fs::read(path).map_err(|e| problem(namespace, path, &format!("cannot be read: {e}")))
}

fn script(
    namespace: &str,
    path: &Path,
    bytes: Vec<u8>,
    first_line: usize,
    no_transaction: bool,
) -> Result<Script, Vec<FileProblem>> {
    let sql = checksum::normalize(&bytes).map_err(|m| vec![problem(namespace, path, &m)])?;
    script_from_text(namespace, path, sql, first_line, no_transaction)
}

pub(crate) fn script_from_text(
    namespace: &str,
    path: &Path,
    sql: String,
    first_line: usize,
    no_transaction: bool,
) -> Result<Script, Vec<FileProblem>> {
    let mut directives = directives::parse(&sql).map_err(|m| vec![problem(namespace, path, &m)])?;
    directives.no_transaction |= no_transaction;
    // Reading what the SQL itself says about transactions needs the grammar;
    // a build script (no `engine`) checks the files and leaves this to the
    // runtime, which rebuilds every script through here.
    #[cfg(feature = "engine")]
    if !directives.no_transaction {
        match statements::transaction_mode(&sql) {
            statements::TransactionMode::Plain => {}
            statements::TransactionMode::Wrapped => {
                directives.wrapped = true;
                directives.inferred = Some("its own BEGIN … COMMIT, run as migsafe's transaction");
            }
            statements::TransactionMode::NoTransaction(why) => {
                directives.no_transaction = true;
                directives.inferred = Some(why);
            }
        }
    }
    Ok(Script {
        path: path.to_path_buf(),
        checksum: checksum::checksum(&sql),
        sql,
        directives,
        first_line,
    })
}

const DBMATE_UP: &str = "-- migrate:up";
const DBMATE_DOWN: &str = "-- migrate:down";

/// Which tool's sections a plain `<ver>_<name>.sql` file has: dbmate,
/// goose, sql-migrate, or none (`UpOnly`). A forced layout reads the file
/// that way only.
fn content_layout(bytes: &[u8], forced: Option<Layout>) -> Layout {
    let text = || String::from_utf8_lossy(bytes);
    let wanted = |layout: Layout| forced.is_none_or(|f| f == layout);
    if wanted(Layout::Dbmate) && is_dbmate(bytes) {
        Layout::Dbmate
    } else if wanted(Layout::Goose) && layouts::goose::is_goose(&text()) {
        Layout::Goose
    } else if wanted(Layout::SqlMigrate) && layouts::sql_migrate::is_sql_migrate(&text()) {
        Layout::SqlMigrate
    } else {
        Layout::UpOnly
    }
}

/// Splits a goose or sql-migrate file into its up and down scripts, each
/// checksummed on its own, like dbmate's sections.
fn split_marked(
    namespace: &str,
    path: &Path,
    bytes: &[u8],
    layout: Layout,
) -> Result<(Script, Option<Script>), Vec<FileProblem>> {
    let text = checksum::normalize(bytes).map_err(|m| vec![problem(namespace, path, &m)])?;
    let sections = if layout == Layout::Goose {
        layouts::goose::split(&text)
    } else {
        layouts::sql_migrate::split(&text)
    }
    .map_err(|m| vec![problem(namespace, path, &m)])?;
    let up = script_from_text(
        namespace,
        path,
        sections.up.text,
        sections.up.first_line,
        sections.up.no_transaction,
    )?;
    let down = match sections.down {
        Some(section) => {
            let down = script_from_text(
                namespace,
                path,
                section.text,
                section.first_line,
                section.no_transaction,
            )?;
            checksum::has_sql(&down.sql).then_some(down)
        }
        None => None,
    };
    Ok((up, down))
}

fn is_dbmate(bytes: &[u8]) -> bool {
    bytes.split(|b| *b == b'\n').any(|line| {
        let line = line.trim_ascii();
        line.starts_with(DBMATE_UP.as_bytes()) || line.starts_with(DBMATE_DOWN.as_bytes())
    })
}

/// Splits a dbmate file into its up and down sections; each section starts at
/// its marker line, so the marker's options (`transaction:false`) are read as
/// directives and error positions keep their file line numbers.
fn split_dbmate(
    namespace: &str,
    path: &Path,
    bytes: &[u8],
) -> Result<(Script, Option<Script>), Vec<FileProblem>> {
    let text = checksum::normalize(bytes).map_err(|m| vec![problem(namespace, path, &m)])?;
    let mut up_start = None;
    let mut down_start = None;
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with(DBMATE_UP) && up_start.is_none() {
            up_start = Some((offset, index + 1));
        } else if trimmed.starts_with(DBMATE_DOWN) && down_start.is_none() {
            down_start = Some((offset, index + 1));
        }
        offset += line.len();
    }
    let Some((up_offset, up_line)) = up_start else {
        return Err(vec![problem(
            namespace,
            path,
            "has a `-- migrate:down` section but no `-- migrate:up` section",
        )]);
    };
    let up_end = match down_start {
        Some((down_offset, _)) if down_offset > up_offset => down_offset,
        Some(_) => {
            return Err(vec![problem(
                namespace,
                path,
                "`-- migrate:down` comes before `-- migrate:up`; put the up section first",
            )]);
        }
        None => text.len(),
    };
    let up = script_from_text(
        namespace,
        path,
        text[up_offset..up_end].to_string(),
        up_line,
        false,
    )?;
    let down = match down_start {
        Some((down_offset, down_line)) => {
            let mut down = script_from_text(
                namespace,
                path,
                text[down_offset..].to_string(),
                down_line,
                false,
            )?;
            // dbmate's transaction option is per file: the up marker's applies to both.
            down.directives.no_transaction |= up.directives.no_transaction;
            checksum::has_sql(&down.sql).then_some(down)
        }
        None => None,
    };
    Ok((up, down))
}
