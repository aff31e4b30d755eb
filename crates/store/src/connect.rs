//! Connecting to SQLite (embedded default) or PostgreSQL, with timeouts, pragmas and migrations.

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, DatabaseBackend, DatabaseConnection};

use sportello_migrations::{Migrator, MigratorTrait};

use crate::error::StoreError;

/// Connection settings beyond the URL.
#[derive(Clone, Debug)]
pub struct DbOptions {
    /// Largest pool size (PostgreSQL, and SQLite readers).
    pub max_connections: u32,
    /// How long to wait for a connection before giving up with a clear error.
    pub connect_timeout: Duration,
    /// Run pending migrations after connecting.
    pub migrate: bool,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            max_connections: 16,
            connect_timeout: Duration::from_secs(5),
            migrate: true,
        }
    }
}

/// The application's database handles.
///
/// On SQLite every write goes through one connection (`write`) while reads use a pool
/// (`read`): SQLite allows one writer at a time, and a single writer connection avoids
/// lock contention and `SQLITE_BUSY` under load while WAL keeps readers unblocked. On
/// PostgreSQL both handles are the same pool.
#[derive(Clone, Debug)]
pub struct Database {
    pub write: DatabaseConnection,
    pub read: DatabaseConnection,
}

impl Database {
    pub fn backend(&self) -> DatabaseBackend {
        self.write.get_database_backend()
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.read.ping().await.map_err(StoreError::from)
    }

    pub async fn close(self) {
        let _ = self.write.close().await;
        let _ = self.read.close().await;
    }
}

/// The URL with any password replaced, safe to show in messages and logs.
pub fn redact_url(url: &str) -> String {
    // scheme://user:password@host/... → scheme://user:***@host/...
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((creds, host)) = rest.split_once('@')
        && let Some((user, _)) = creds.split_once(':')
    {
        return format!("{scheme}://{user}:***@{host}");
    }
    url.to_owned()
}

/// Connects, applies SQLite pragmas, and runs migrations when asked.
pub async fn connect(url: &str, opts: &DbOptions) -> Result<Database, StoreError> {
    let target = redact_url(url);
    let fail = |reason: String| StoreError::Connect {
        target: target.clone(),
        reason,
    };
    let db = if url.starts_with("sqlite:") {
        ensure_sqlite_dir(url).map_err(&fail)?;
        let write = open(url, 1, opts).await.map_err(|e| fail(e.to_string()))?;
        let read = open(url, opts.max_connections.clamp(1, 8), opts)
            .await
            .map_err(|e| fail(e.to_string()))?;
        Database { write, read }
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let pool = open(url, opts.max_connections, opts)
            .await
            .map_err(|e| fail(e.to_string()))?;
        Database {
            write: pool.clone(),
            read: pool,
        }
    } else {
        return Err(fail(
            "unsupported URL scheme: use sqlite://PATH?mode=rwc or postgres://USER@HOST/DB".into(),
        ));
    };
    if opts.migrate {
        Migrator::up(&db.write, None)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))?;
    }
    Ok(db)
}

/// Pages of its own changes a SQLite transaction may hold in memory before writing them to the
/// WAL early (see `open`).
const CACHE_SPILL_PAGES: i64 = 65_000;

async fn open(url: &str, max: u32, opts: &DbOptions) -> Result<DatabaseConnection, sea_orm::DbErr> {
    let mut o = ConnectOptions::new(url);
    o.max_connections(max)
        .min_connections(0)
        .connect_timeout(opts.connect_timeout)
        .acquire_timeout(opts.connect_timeout)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o: SqliteConnectOptions| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
                .pragma("temp_store", "memory")
                .pragma("cache_size", "-32000")
                // A transaction keeps the pages it changed in memory up to about 250 MiB
                // (65,000 pages of 4 KiB) instead of writing them to the WAL as soon as they
                // outgrow the 32 MB cache: a CDR import batch changes about 50 MB of pages,
                // and spilling them mid-transaction wrote many pages twice and read them
                // back (a quarter of the import's time, docs/benchmarks.md). The pages are
                // freed back to the cache's size at commit. Beyond the threshold (a migration
                // over a very large table) SQLite spills as before. SQLite also reads the
                // number as on/off by its lowest byte, so a multiple of 256 would turn
                // spilling off altogether (the test below reads the setting back).
                .pragma("cache_spill", CACHE_SPILL_PAGES.to_string())
        });
    sea_orm::Database::connect(o).await
}

/// Creates the directory of a file-backed SQLite URL, so a fresh checkout can start.
fn ensure_sqlite_dir(url: &str) -> Result<(), String> {
    let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    if let Some(dir) = std::path::Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact_url("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(
            redact_url("sqlite://data/a.db?mode=rwc"),
            "sqlite://data/a.db?mode=rwc"
        );
    }

    #[tokio::test]
    async fn sqlite_keeps_a_transactions_pages_in_memory() {
        let dir = std::env::temp_dir().join(format!("sportello-spill-{}", uuid::Uuid::now_v7()));
        let url = format!("sqlite://{}/t.db?mode=rwc", dir.display());
        let opts = DbOptions {
            migrate: false,
            ..Default::default()
        };
        let db = connect(&url, &opts).await.unwrap();
        use sea_orm::ConnectionTrait;
        for conn in [&db.write, &db.read] {
            let row = conn
                .query_one_raw(sea_orm::Statement::from_string(
                    db.backend(),
                    "PRAGMA cache_spill",
                ))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(row.try_get_by_index::<i64>(0).unwrap(), CACHE_SPILL_PAGES);
        }
        db.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn unreachable_postgres_fails_fast_naming_the_database() {
        let opts = DbOptions {
            connect_timeout: Duration::from_secs(2),
            ..Default::default()
        };
        let started = std::time::Instant::now();
        let err = connect("postgres://nobody:pw@127.0.0.1:1/nothing", &opts)
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("127.0.0.1:1/nothing"), "{msg}");
        assert!(!msg.contains("pw@"), "password leaked: {msg}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
