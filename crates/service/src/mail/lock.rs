//! One fetcher per mailbox across instances: on PostgreSQL a session advisory lock per mailbox,
//! held on a connection of its own for as long as the fetcher runs; on SQLite (one process)
//! no lock is needed.
//!
//! An instance that does not get the lock waits and tries again, so it takes over when the
//! holder stops. The holder checks its lock connection periodically: if the connection is gone
//! the server has released the lock, and the fetcher is stopped before another instance's
//! starts in earnest. Should both briefly import at once, the Message-ID uniqueness of stored
//! mail keeps every message single.

use std::time::Duration;

use sea_orm::DatabaseBackend;
use sea_orm::sqlx::{self, Connection, PgConnection};
use sha2::{Digest, Sha256};
use sportello_mail::ImapFetcher;
use sportello_mail::imap::MailboxConfig;
use tokio_util::sync::CancellationToken;

use crate::App;

/// How often a standby instance tries to take a mailbox.
const STANDBY_RETRY: Duration = Duration::from_secs(5);
/// How often the holder checks that its lock connection is alive.
const LOCK_CHECK: Duration = Duration::from_secs(20);

/// The advisory-lock key of a mailbox: stable across instances and versions.
pub(crate) fn lock_key(mailbox: &str) -> i64 {
    let d = Sha256::digest(format!("sportello.mailbox:{mailbox}").as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    i64::from_be_bytes(b)
}

/// Tries to take the mailbox's lock on a connection taken out of the pool for good.
async fn try_lock(app: &App, mailbox: &str) -> Result<Option<PgConnection>, sqlx::Error> {
    let pool = app.db().write.get_postgres_connection_pool();
    let mut conn = pool.acquire().await?.detach();
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(lock_key(mailbox))
        .fetch_one(&mut conn)
        .await?;
    if locked {
        Ok(Some(conn))
    } else {
        let _ = conn.close().await;
        Ok(None)
    }
}

async fn unlock(conn: PgConnection, mailbox: &str) {
    let mut conn = conn;
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(lock_key(mailbox))
        .execute(&mut conn)
        .await;
    let _ = conn.close().await;
}

/// Runs a mailbox's fetcher while this instance may, until `cancel` fires.
pub(crate) async fn supervise(app: App, mailbox: MailboxConfig, cancel: CancellationToken) {
    let name = mailbox.name.clone();
    let pg = app.db().backend() == DatabaseBackend::Postgres;
    loop {
        if cancel.is_cancelled() {
            break;
        }
        let mut guard = None;
        if pg {
            match try_lock(&app, &name).await {
                Ok(Some(conn)) => guard = Some(conn),
                Ok(None) => {
                    app.mail().set_slot(&name, "standby", None);
                    tracing::debug!(mailbox = %name, "another instance fetches this mailbox");
                    tokio::select! {
                        _ = tokio::time::sleep(STANDBY_RETRY) => continue,
                        _ = cancel.cancelled() => break,
                    }
                }
                Err(e) => {
                    tracing::warn!(mailbox = %name, "cannot take the mailbox lock: {e}");
                    tokio::select! {
                        _ = tokio::time::sleep(STANDBY_RETRY) => continue,
                        _ = cancel.cancelled() => break,
                    }
                }
            }
        }
        let fetcher = ImapFetcher::new(mailbox.clone(), app.mail_sink());
        app.mail()
            .set_slot(&name, "running", Some(fetcher.status()));
        let child = cancel.child_token();
        let mut handle = fetcher.spawn(child.clone());
        let mut lost = false;
        loop {
            tokio::select! {
                _ = &mut handle => break,
                _ = tokio::time::sleep(LOCK_CHECK), if guard.is_some() => {
                    let alive = match guard.as_mut() {
                        Some(conn) => conn.ping().await.is_ok(),
                        None => true,
                    };
                    if !alive {
                        tracing::warn!(mailbox = %name, "lost the mailbox lock connection: stopping the fetcher");
                        lost = true;
                        child.cancel();
                    }
                }
            }
        }
        if let Some(conn) = guard.take()
            && !lost
        {
            unlock(conn, &name).await;
        }
        if cancel.is_cancelled() {
            break;
        }
    }
    app.mail().set_slot(&name, "stopped", None);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_are_stable_and_distinct() {
        assert_eq!(lock_key("welfare"), lock_key("welfare"));
        assert_ne!(lock_key("welfare"), lock_key("disabilita"));
    }
}
