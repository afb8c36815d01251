//! Migrations on disk: finding files, pairing up and down scripts, reading them.
//!
//! `source` knows nothing of the database. It turns one namespace directory into
//! a [`MigrationSet`], or into an error that lists every unusable file with its
//! path, so an operator fixes them all in one pass.

pub mod checksum;
pub mod directives;
pub mod embed;
pub mod layout;
pub mod migration;
#[cfg(feature = "engine")]
pub mod scaffold;
#[cfg(feature = "engine")]
pub mod statements;
pub mod version;

use std::collections::BTreeMap;
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
}

#[derive(Default)]
struct Slot {
    ups: Vec<Part>,
    downs: Vec<Part>,
}

/// Loads every migration of `namespace` from `dir`.
pub fn load(namespace: &str, dir: &Path) -> Result<MigrationSet> {
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
    names.sort();

    let mut slots: BTreeMap<Version, Slot> = BTreeMap::new();
    let mut ignored = Vec::new();
    for (name, path) in names {
        let is_dir = is_dir_entry(&path, kinds.get(&path).copied());
        if is_dir {
            match layout::parse_dir_name(&name) {
                Ok(None) => ignored.push(path),
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
                        });
                        if parts.has_down {
                            slot.downs.push(Part {
                                name: migration_name,
                                layout: Layout::Diesel,
                                role: Role::Down,
                                path: path.join("down.sql"),
                                no_transaction_from_metadata: no_tx,
                            });
                        }
                    }
                    Err(message) => problems.push(problem(namespace, &path, &message)),
                },
                Err(message) => problems.push(problem(namespace, &path, &message)),
            }
            continue;
        }
        match layout::parse_file_name(&name) {
            Ok(None) => ignored.push(path),
            Ok(Some(parsed)) => {
                let slot = slots.entry(parsed.version.clone()).or_default();
                let part = Part {
                    name: parsed.name,
                    layout: parsed.layout,
                    role: parsed.role,
                    path,
                    no_transaction_from_metadata: false,
                };
                match parsed.role {
                    Role::Down => slot.downs.push(part),
                    Role::Up | Role::Plain => slot.ups.push(part),
                }
            }
            Err(message) => problems.push(problem(namespace, &path, &message)),
        }
    }

    let mut migrations = Vec::with_capacity(slots.len());
    for result in assemble_all(namespace, slots.into_iter().collect()) {
        match result {
            Ok(migration) => migrations.push(migration),
            Err(mut found) => problems.append(&mut found),
        }
    }
    if !problems.is_empty() {
        let reason = problems[0].reason.clone();
        return Err(Error::Source { reason, problems });
    }
    if migrations.is_empty()
        && let Some(unknown) = unknown_layout(namespace, dir, &ignored)
    {
        return Err(unknown);
    }
    Ok(MigrationSet {
        migrations,
        ignored,
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
    let (up, down) = if up_part.role == Role::Plain && is_dbmate(&up_bytes) {
        layout = Layout::Dbmate;
        split_dbmate(namespace, &up_part.path, &up_bytes)?
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
