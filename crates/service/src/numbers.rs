//! Ticket numbers: unique across instances without a round trip per ticket.
//!
//! Each instance reserves a block of the year's sequence (`number_block` values) in a short
//! transaction of its own, then hands numbers out from memory. Two instances never get the same
//! block because the reservation is one atomic `UPDATE … RETURNING` on the year's counter row;
//! numbers of a block an instance did not use before stopping are skipped (gaps are allowed).

use chrono::{Datelike, Utc};
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement, TransactionTrait};
use sportello_domain::TicketNumber;
use tokio::sync::Mutex;

use crate::ServiceError;

pub struct NumberAllocator {
    prefix: String,
    block: u32,
    state: Mutex<Block>,
}

#[derive(Default)]
struct Block {
    year: i32,
    next: i64,
    end: i64,
}

impl NumberAllocator {
    pub fn new(prefix: String, block: u32) -> Self {
        NumberAllocator {
            prefix,
            block: block.max(1),
            state: Mutex::new(Block::default()),
        }
    }

    /// The next number for the current year.
    ///
    /// Must be called outside any open write transaction: on SQLite the reservation needs the
    /// single writer connection.
    pub async fn next(&self, db: &DatabaseConnection) -> Result<TicketNumber, ServiceError> {
        let year = Utc::now().year();
        let mut b = self.state.lock().await;
        if b.year != year || b.next >= b.end {
            let end = reserve(db, year, i64::from(self.block)).await?;
            *b = Block {
                year,
                next: end - i64::from(self.block),
                end,
            };
        }
        let seq = b.next;
        b.next += 1;
        Ok(TicketNumber::new(&self.prefix, year, seq as u64))
    }
}

/// Reserves `[end - block, end)` of the year's sequence and returns `end`.
async fn reserve(db: &DatabaseConnection, year: i32, block: i64) -> Result<i64, ServiceError> {
    let backend = db.get_database_backend();
    let (insert, update) = match backend {
        DatabaseBackend::Postgres => (
            "INSERT INTO ticket_counters (year, next_value) VALUES ($1, 1) ON CONFLICT (year) DO NOTHING",
            "UPDATE ticket_counters SET next_value = next_value + $1 WHERE year = $2 RETURNING next_value",
        ),
        _ => (
            "INSERT INTO ticket_counters (year, next_value) VALUES (?, 1) ON CONFLICT (year) DO NOTHING",
            "UPDATE ticket_counters SET next_value = next_value + ? WHERE year = ? RETURNING next_value",
        ),
    };
    let txn = db.begin().await?;
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        insert,
        [year.into()],
    ))
    .await?;
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            update,
            [block.into(), year.into()],
        ))
        .await?
        .ok_or_else(|| ServiceError::Internal("ticket counter row vanished".into()))?;
    let end: i64 = row.try_get("", "next_value")?;
    txn.commit().await?;
    Ok(end)
}
