//! [`AdminStore`] on [`Storage`]: disabled accounts and each domain's
//! message of the day (XEP-0133), one indexed statement per call. The
//! disabled check runs at every login, so it is a single keyed read.

use std::time::SystemTime;

use crate::time::{now_micros, to_micros};
use crate::{AdminStore, Storage, StorageError};

// The SELECT needs its WHERE for SQLite to parse the upsert.
const DISABLE: &str = "INSERT INTO account_disabled (account_id, reason, at) \
     SELECT id, $3, $4 FROM accounts WHERE localpart = $1 AND domain = $2 \
     ON CONFLICT (account_id) DO UPDATE SET reason = excluded.reason, at = excluded.at";
const ENABLE: &str = "DELETE FROM account_disabled WHERE account_id IN \
     (SELECT id FROM accounts WHERE localpart = $1 AND domain = $2)";
const DISABLED: &str = "SELECT d.reason FROM account_disabled d \
     JOIN accounts a ON a.id = d.account_id WHERE a.localpart = $1 AND a.domain = $2";
const SET_MOTD: &str = "INSERT INTO motd (domain, text, at) VALUES ($1, $2, $3) \
     ON CONFLICT (domain) DO UPDATE SET text = excluded.text, at = excluded.at";
const MOTD: &str = "SELECT text FROM motd WHERE domain = $1";
const DELETE_MOTD: &str = "DELETE FROM motd WHERE domain = $1";

impl AdminStore for Storage {
    async fn disable_account(
        &self,
        localpart: &str,
        domain: &str,
        reason: &str,
        at: SystemTime,
    ) -> Result<bool, StorageError> {
        let done = sqlx::query(DISABLE)
            .bind(localpart)
            .bind(domain)
            .bind(reason)
            .bind(to_micros(at)?)
            .execute(&self.pool)
            .await?;
        // One row inserted or updated when the account exists, none when
        // the SELECT found no account.
        Ok(done.rows_affected() > 0)
    }

    async fn enable_account(&self, localpart: &str, domain: &str) -> Result<bool, StorageError> {
        let done = sqlx::query(ENABLE)
            .bind(localpart)
            .bind(domain)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn account_disabled(
        &self,
        localpart: &str,
        domain: &str,
    ) -> Result<Option<String>, StorageError> {
        Ok(sqlx::query_scalar(DISABLED)
            .bind(localpart)
            .bind(domain)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn set_motd(&self, domain: &str, text: &str) -> Result<(), StorageError> {
        sqlx::query(SET_MOTD)
            .bind(domain)
            .bind(text)
            .bind(now_micros()?)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn motd(&self, domain: &str) -> Result<Option<String>, StorageError> {
        Ok(sqlx::query_scalar(MOTD)
            .bind(domain)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn delete_motd(&self, domain: &str) -> Result<bool, StorageError> {
        let done = sqlx::query(DELETE_MOTD)
            .bind(domain)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
