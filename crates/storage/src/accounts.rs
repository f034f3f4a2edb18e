//! [`AccountStore`] on [`Storage`]: accounts and their SCRAM credentials.
//!
//! Every statement here is the same text on SQLite and PostgreSQL: `$N`
//! placeholders (which sqlx's SQLite driver binds by number), no
//! dialect-only functions, and only the value types the `Any` driver
//! carries (TEXT, BIGINT, BLOB/BYTEA).

use std::collections::HashSet;

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::{AccountStore, Storage, StorageError, StoredCredentials};

const INSERT_ACCOUNT: &str =
    "INSERT INTO accounts (localpart, domain) VALUES ($1, $2) RETURNING id";
const DELETE_ACCOUNT: &str = "DELETE FROM accounts WHERE localpart = $1 AND domain = $2";
const REVOKE_FAST_TOKENS: &str = "DELETE FROM fast_tokens WHERE account_id = $1";
const ACCOUNT_ID: &str = "SELECT id FROM accounts WHERE localpart = $1 AND domain = $2";
const INSERT_CREDENTIALS: &str = "INSERT INTO scram_credentials \
     (account_id, hash, salt, iterations, stored_key, server_key) \
     VALUES ($1, $2, $3, $4, $5, $6)";
// A write before any read, so that on SQLite the transaction takes the write
// lock first and waits for it under the busy timeout; reading first would
// make it a reader that cannot upgrade if another writer committed meanwhile.
const DELETE_CREDENTIALS: &str = "DELETE FROM scram_credentials WHERE account_id IN \
     (SELECT id FROM accounts WHERE localpart = $1 AND domain = $2)";
const SELECT_CREDENTIALS: &str = "SELECT c.hash, c.salt, c.iterations, c.stored_key, c.server_key \
     FROM scram_credentials c JOIN accounts a ON a.id = c.account_id \
     WHERE a.localpart = $1 AND a.domain = $2 AND c.hash = $3";
// The name columns sort byte-wise on both backends (BINARY on SQLite,
// COLLATE "C" in the PostgreSQL schema), so the order is the same everywhere.
const LIST_ALL: &str = "SELECT localpart, domain FROM accounts ORDER BY domain, localpart";
const LIST_DOMAIN: &str =
    "SELECT localpart, domain FROM accounts WHERE domain = $1 ORDER BY localpart";
const COUNT_ALL: &str = "SELECT COUNT(*) FROM accounts";
const COUNT_DOMAIN: &str = "SELECT COUNT(*) FROM accounts WHERE domain = $1";

impl AccountStore for Storage {
    async fn create_account(
        &self,
        localpart: &str,
        domain: &str,
        creds: &[StoredCredentials],
    ) -> Result<(), StorageError> {
        check_distinct_hashes(creds)?;
        let mut tx = self.pool.begin().await?;
        // A unique violation here (the name is taken, possibly by a racing
        // transaction that committed first) becomes AlreadyExists.
        let id: i64 = sqlx::query_scalar(INSERT_ACCOUNT)
            .bind(localpart)
            .bind(domain)
            .fetch_one(&mut *tx)
            .await?;
        insert_credentials(&mut tx, id, creds).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_account(&self, localpart: &str, domain: &str) -> Result<bool, StorageError> {
        self.cache.invalidate(localpart, domain);
        let r: Result<bool, StorageError> = async {
            // Rows in other tables go with it through ON DELETE CASCADE.
            let done = sqlx::query(DELETE_ACCOUNT)
                .bind(localpart)
                .bind(domain)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected() > 0)
        }
        .await;
        self.cache.invalidate(localpart, domain);
        r
    }

    async fn set_credentials(
        &self,
        localpart: &str,
        domain: &str,
        creds: &[StoredCredentials],
    ) -> Result<bool, StorageError> {
        check_distinct_hashes(creds)?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(DELETE_CREDENTIALS)
            .bind(localpart)
            .bind(domain)
            .execute(&mut *tx)
            .await?;
        let id: Option<i64> = sqlx::query_scalar(ACCOUNT_ID)
            .bind(localpart)
            .bind(domain)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(id) = id else {
            tx.rollback().await?;
            return Ok(false);
        };
        insert_credentials(&mut tx, id, creds).await?;
        // A new password ends every FAST token (XEP-0484 §7: tokens are
        // as good as the password they were issued under).
        sqlx::query(REVOKE_FAST_TOKENS)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn credentials(
        &self,
        localpart: &str,
        domain: &str,
        hash: &str,
    ) -> Result<Option<StoredCredentials>, StorageError> {
        let row = sqlx::query(SELECT_CREDENTIALS)
            .bind(localpart)
            .bind(domain)
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(credentials_from_row).transpose()
    }

    async fn account_exists(&self, localpart: &str, domain: &str) -> Result<bool, StorageError> {
        let id: Option<i64> = sqlx::query_scalar(ACCOUNT_ID)
            .bind(localpart)
            .bind(domain)
            .fetch_optional(&self.pool)
            .await?;
        Ok(id.is_some())
    }

    async fn list_accounts(
        &self,
        domain: Option<&str>,
    ) -> Result<Vec<(String, String)>, StorageError> {
        let query = match domain {
            Some(domain) => sqlx::query_as(LIST_DOMAIN).bind(domain),
            None => sqlx::query_as(LIST_ALL),
        };
        Ok(query.fetch_all(&self.pool).await?)
    }

    async fn count_accounts(&self, domain: Option<&str>) -> Result<u64, StorageError> {
        let query = match domain {
            Some(domain) => sqlx::query_scalar(COUNT_DOMAIN).bind(domain),
            None => sqlx::query_scalar(COUNT_ALL),
        };
        let count: i64 = query.fetch_one(&self.pool).await?;
        u64::try_from(count)
            .map_err(|_| StorageError::Database(format!("negative account count {count}")))
    }
}

/// Rejects two credential sets for one hash up front: the primary key would
/// reject them too, but as a unique violation, which reads as AlreadyExists.
pub(crate) fn check_distinct_hashes(creds: &[StoredCredentials]) -> Result<(), StorageError> {
    let mut seen = HashSet::with_capacity(creds.len());
    for c in creds {
        if !seen.insert(c.hash.as_str()) {
            return Err(StorageError::InvalidInput(format!(
                "two credential sets for hash {}",
                c.hash
            )));
        }
    }
    Ok(())
}

async fn insert_credentials(
    tx: &mut Transaction<'static, Any>,
    account_id: i64,
    creds: &[StoredCredentials],
) -> Result<(), StorageError> {
    for c in creds {
        sqlx::query(INSERT_CREDENTIALS)
            .bind(account_id)
            .bind(c.hash.as_str())
            .bind(c.salt.as_slice())
            .bind(i64::from(c.iterations))
            .bind(c.stored_key.as_slice())
            .bind(c.server_key.as_slice())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

fn credentials_from_row(row: &AnyRow) -> Result<StoredCredentials, StorageError> {
    let iterations: i64 = row.try_get("iterations")?;
    Ok(StoredCredentials {
        hash: row.try_get("hash")?,
        salt: row.try_get("salt")?,
        // The column is BIGINT because neither backend has an unsigned
        // 32-bit type; only this crate writes it, from a u32.
        iterations: u32::try_from(iterations).map_err(|_| {
            StorageError::Database(format!("stored iteration count {iterations} is not a u32"))
        })?,
        stored_key: row.try_get("stored_key")?,
        server_key: row.try_get("server_key")?,
    })
}
