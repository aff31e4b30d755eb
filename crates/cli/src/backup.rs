//! `sportello backup`: a consistent copy of the SQLite database, taken while the server runs.
//!
//! `VACUUM INTO` copies the database as one read transaction sees it, so the copy holds every
//! transaction committed before it began and nothing half-written, whatever the server writes
//! meanwhile (in WAL mode readers and the writer do not block each other). The copy is written
//! to a temporary file beside the target, checked with `PRAGMA integrity_check`, flushed to disk
//! and only then renamed into place, so an interrupted backup never leaves a truncated file
//! under the target name. PostgreSQL is backed up with its own tools (docs/ADMIN.md).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};

/// What a finished backup holds.
#[derive(Debug)]
pub struct BackupSummary {
    pub path: PathBuf,
    pub bytes: u64,
    pub tickets: i64,
}

/// The file of a `sqlite:` URL; `None` for other databases.
pub fn sqlite_path(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    Some(path.to_owned())
}

async fn open(path: &Path, mode: &str) -> anyhow::Result<DatabaseConnection> {
    let url = format!("sqlite://{}?mode={mode}", path.display());
    let mut opts = ConnectOptions::new(url);
    opts.max_connections(1)
        .min_connections(1)
        .connect_timeout(std::time::Duration::from_secs(10))
        .sqlx_logging(false);
    let db = Database::connect(opts)
        .await
        .with_context(|| format!("cannot open the SQLite database {}", path.display()))?;
    // The server may hold the write lock for a moment; wait rather than fail.
    exec(&db, "PRAGMA busy_timeout = 10000").await?;
    Ok(db)
}

async fn exec(db: &DatabaseConnection, sql: &str) -> anyhow::Result<()> {
    db.execute_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .with_context(|| format!("SQLite refused: {sql}"))?;
    Ok(())
}

/// Copies the database at `url` to `output`; refuses to replace an existing file unless `force`.
pub async fn run(url: &str, output: &Path, force: bool) -> anyhow::Result<BackupSummary> {
    let Some(source) = sqlite_path(url) else {
        bail!(
            "sportello backup copies the embedded SQLite database; this configuration uses \
             PostgreSQL ({}). Back it up with PostgreSQL's own tools, e.g.\n  \
             pg_dump --format=custom --file=sportello.dump \"$DATABASE_URL\"\n\
             and restore with pg_restore; docs/ADMIN.md (\"Backup and restore\") walks through it.",
            sportello_store::connect::redact_url(url)
        );
    };
    if source.is_empty() || source.starts_with(":memory:") || source.contains("mode=memory") {
        bail!("the database {url} is in memory: there is nothing to back up");
    }
    let source = PathBuf::from(source);
    if !source.is_file() {
        bail!("the database file {} does not exist", source.display());
    }
    if output.exists() && !force {
        bail!(
            "{} already exists; choose another file or give --force to replace it",
            output.display()
        );
    }
    let name = output
        .file_name()
        .with_context(|| format!("{} is not a file name", output.display()))?
        .to_string_lossy()
        .into_owned();
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        bail!("the directory {} does not exist", dir.display());
    }
    let partial = dir.join(format!(".{name}.partial-{}", std::process::id()));
    let _ = std::fs::remove_file(&partial);

    let result = copy_and_check(&source, &partial).await;
    let tickets = match result {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    // On disk before it takes the target's name, and the name change itself made durable.
    std::fs::File::open(&partial)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot flush {}", partial.display()))?;
    std::fs::rename(&partial, output)
        .with_context(|| format!("cannot move the copy to {}", output.display()))?;
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    let bytes = std::fs::metadata(output).map(|m| m.len()).unwrap_or(0);
    Ok(BackupSummary {
        path: output.to_path_buf(),
        bytes,
        tickets,
    })
}

/// Writes the copy and checks it; returns how many tickets it holds.
async fn copy_and_check(source: &Path, partial: &Path) -> anyhow::Result<i64> {
    let db = open(source, "rw").await?;
    let target = partial.display().to_string().replace('\'', "''");
    exec(&db, &format!("VACUUM INTO '{target}'"))
        .await
        .context("copying the database")?;
    db.close().await.ok();

    let copy = open(partial, "ro").await?;
    let rows = copy
        .query_all_raw(Statement::from_string(
            copy.get_database_backend(),
            "PRAGMA integrity_check",
        ))
        .await
        .context("checking the copy")?;
    let verdict: Vec<String> = rows
        .iter()
        .filter_map(|r| r.try_get_by_index::<String>(0).ok())
        .collect();
    if verdict != ["ok"] {
        bail!(
            "the copy failed SQLite's integrity check: {}",
            verdict.join("; ")
        );
    }
    let tickets = copy
        .query_one_raw(Statement::from_string(
            copy.get_database_backend(),
            "SELECT COUNT(*) FROM tickets",
        ))
        .await
        .ok()
        .flatten()
        .and_then(|r| r.try_get_by_index::<i64>(0).ok())
        .unwrap_or(0);
    copy.close().await.ok();
    Ok(tickets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(
            sqlite_path("sqlite://data/sportello.db?mode=rwc").as_deref(),
            Some("data/sportello.db")
        );
        assert_eq!(
            sqlite_path("sqlite:///var/lib/sportello/sportello.db").as_deref(),
            Some("/var/lib/sportello/sportello.db")
        );
        assert_eq!(sqlite_path("postgres://u@h/db"), None);
    }
}
