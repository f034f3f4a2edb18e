//! [`OfflineStore`] on [`Storage`]: messages kept for accounts with no
//! available resource.
//!
//! Message ids come from a per-account counter in `offline_sequences`
//! rather than from an identity column, for two reasons. Bumping the
//! counter is the first statement of [`store_offline`](OfflineStore::store_offline),
//! so it is also the per-account lock under which the quota is counted and
//! the message inserted (a row lock on PostgreSQL, the write lock on
//! SQLite): concurrent senders cannot both see room for one more. And ids
//! are handed out under that lock, so they commit in increasing order: a
//! reader that sees message N has seen every message below N that will ever
//! exist, and "delete up to N" can never take a message it did not fetch.
//! An identity column gives neither guarantee on PostgreSQL, where a lower
//! id can commit after a higher one.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::time::{from_micros, now_micros};
use crate::{OfflineMessage, OfflineStore, OfflineStored, Storage, StorageError};

// The SELECT needs its WHERE for SQLite to parse the upsert.
const NEXT_ID: &str = "INSERT INTO offline_sequences (account_id, last_id) \
     SELECT id, 1 FROM accounts WHERE localpart = $1 AND domain = $2 \
     ON CONFLICT (account_id) DO UPDATE SET last_id = offline_sequences.last_id + 1 \
     RETURNING account_id, last_id";
const COUNT_FOR_ID: &str = "SELECT COUNT(*) FROM offline_messages WHERE account_id = $1";
const INSERT_MESSAGE: &str = "INSERT INTO offline_messages (account_id, id, stored_at, stanza) \
     VALUES ($1, $2, $3, $4)";
const SELECT_MESSAGES: &str = "SELECT m.id, m.stored_at, m.stanza \
     FROM offline_messages m JOIN accounts a ON a.id = m.account_id \
     WHERE a.localpart = $1 AND a.domain = $2 ORDER BY m.id LIMIT $3";
const DELETE_UP_TO: &str = "DELETE FROM offline_messages WHERE id <= $3 AND account_id IN \
     (SELECT id FROM accounts WHERE localpart = $1 AND domain = $2)";
const COUNT_MESSAGES: &str = "SELECT COUNT(*) FROM offline_messages m \
     JOIN accounts a ON a.id = m.account_id WHERE a.localpart = $1 AND a.domain = $2";

impl OfflineStore for Storage {
    async fn store_offline(
        &self,
        localpart: &str,
        domain: &str,
        stanza: &str,
        quota: u32,
    ) -> Result<OfflineStored, StorageError> {
        let stored_at = now_micros()?;
        let mut tx = self.pool.begin().await?;
        let next: Option<(i64, i64)> = sqlx::query_as(NEXT_ID)
            .bind(localpart)
            .bind(domain)
            .fetch_optional(&mut *tx)
            .await?;
        let Some((account_id, id)) = next else {
            tx.rollback().await?;
            return Err(StorageError::NotFound);
        };
        let held: i64 = sqlx::query_scalar(COUNT_FOR_ID)
            .bind(account_id)
            .fetch_one(&mut *tx)
            .await?;
        if held >= i64::from(quota) {
            // Also undoes the id bump: the next message gets this id.
            tx.rollback().await?;
            return Ok(OfflineStored::QuotaExceeded);
        }
        sqlx::query(INSERT_MESSAGE)
            .bind(account_id)
            .bind(id)
            .bind(stored_at)
            .bind(stanza)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(OfflineStored::Stored(id))
    }

    async fn offline_messages(
        &self,
        localpart: &str,
        domain: &str,
        limit: u32,
    ) -> Result<Vec<OfflineMessage>, StorageError> {
        let rows = sqlx::query(SELECT_MESSAGES)
            .bind(localpart)
            .bind(domain)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(message_from_row).collect()
    }

    async fn delete_offline_up_to(
        &self,
        localpart: &str,
        domain: &str,
        up_to_id: i64,
    ) -> Result<u64, StorageError> {
        let done = sqlx::query(DELETE_UP_TO)
            .bind(localpart)
            .bind(domain)
            .bind(up_to_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn count_offline(&self, localpart: &str, domain: &str) -> Result<u64, StorageError> {
        let count: i64 = sqlx::query_scalar(COUNT_MESSAGES)
            .bind(localpart)
            .bind(domain)
            .fetch_one(&self.pool)
            .await?;
        u64::try_from(count)
            .map_err(|_| StorageError::Database(format!("negative message count {count}")))
    }
}

fn message_from_row(row: &AnyRow) -> Result<OfflineMessage, StorageError> {
    Ok(OfflineMessage {
        id: row.try_get("id")?,
        stored_at: from_micros(row.try_get("stored_at")?)?,
        stanza: row.try_get("stanza")?,
    })
}
