//! [`LastActivityStore`] (XEP-0012) on [`Storage`]: the last logout of each
//! account, one upsert to write and one read to answer a query.

use std::time::SystemTime;

use sqlx::Row;

use crate::time::{from_micros, to_micros};
use crate::{LastActivityStore, Storage, StorageError};

// The SELECT needs its WHERE for SQLite to parse the upsert.
const UPSERT: &str = "INSERT INTO last_activity (account_id, at, status) \
     SELECT id, $3, $4 FROM accounts WHERE localpart = $1 AND domain = $2 \
     ON CONFLICT (account_id) DO UPDATE SET at = excluded.at, status = excluded.status";
const SELECT: &str = "SELECT l.at, l.status FROM last_activity l \
     JOIN accounts a ON a.id = l.account_id WHERE a.localpart = $1 AND a.domain = $2";

impl LastActivityStore for Storage {
    async fn set_last_activity(
        &self,
        localpart: &str,
        domain: &str,
        at: SystemTime,
        status: &str,
    ) -> Result<(), StorageError> {
        sqlx::query(UPSERT)
            .bind(localpart)
            .bind(domain)
            .bind(to_micros(at)?)
            .bind(status)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn last_activity(
        &self,
        localpart: &str,
        domain: &str,
    ) -> Result<Option<(SystemTime, String)>, StorageError> {
        let row = sqlx::query(SELECT)
            .bind(localpart)
            .bind(domain)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => Ok(Some((from_micros(r.try_get("at")?)?, r.try_get("status")?))),
            None => Ok(None),
        }
    }
}
