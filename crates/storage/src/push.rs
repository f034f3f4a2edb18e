//! [`PushStore`] on [`Storage`]: XEP-0357 push registrations, one row per
//! (account, app server, node), capped per account by evicting the oldest.

use std::time::SystemTime;

use sqlx::Row;

use crate::time::to_micros;
use crate::{PushRegistration, PushStore, Storage, StorageError};

// The SELECT needs its WHERE for SQLite to parse the upsert.
const UPSERT: &str = "INSERT INTO push_registrations \
     (account_id, service, node, options, enabled_at) \
     SELECT id, $3, $4, $5, $6 FROM accounts WHERE localpart = $1 AND domain = $2 \
     ON CONFLICT (account_id, service, node) \
     DO UPDATE SET options = excluded.options, enabled_at = excluded.enabled_at";
// Newest first; the key breaks ties so the order is the same everywhere.
const SELECT: &str = "SELECT p.service, p.node, p.options FROM push_registrations p \
     JOIN accounts a ON a.id = p.account_id WHERE a.localpart = $1 AND a.domain = $2 \
     ORDER BY p.enabled_at DESC, p.service, p.node";
const DELETE_ONE: &str = "DELETE FROM push_registrations WHERE service = $3 AND node = $4 \
     AND account_id IN (SELECT id FROM accounts WHERE localpart = $1 AND domain = $2)";
const DELETE_SERVICE: &str = "DELETE FROM push_registrations WHERE service = $3 \
     AND account_id IN (SELECT id FROM accounts WHERE localpart = $1 AND domain = $2)";

fn registration(row: &sqlx::any::AnyRow) -> Result<PushRegistration, StorageError> {
    Ok(PushRegistration {
        service: row.try_get("service")?,
        node: row.try_get("node")?,
        options: row.try_get("options")?,
    })
}

impl PushStore for Storage {
    async fn push_enable(
        &self,
        localpart: &str,
        domain: &str,
        registration: &PushRegistration,
        max: u32,
    ) -> Result<Vec<PushRegistration>, StorageError> {
        let mut tx = self.pool.begin().await?;
        // The write first, so that on SQLite the transaction holds the write
        // lock before it reads (see accounts.rs).
        let done = sqlx::query(UPSERT)
            .bind(localpart)
            .bind(domain)
            .bind(registration.service.as_str())
            .bind(registration.node.as_str())
            .bind(registration.options.as_str())
            .bind(to_micros(SystemTime::now())?)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Err(StorageError::NotFound);
        }
        let rows = sqlx::query(SELECT)
            .bind(localpart)
            .bind(domain)
            .fetch_all(&mut *tx)
            .await?;
        let mut evicted = Vec::new();
        for row in rows.iter().skip(max.max(1) as usize) {
            let old = self::registration(row)?;
            // The one just enabled is the newest, so it is never evicted,
            // unless the clock went back; then keep it all the same.
            if old.service == registration.service && old.node == registration.node {
                continue;
            }
            sqlx::query(DELETE_ONE)
                .bind(localpart)
                .bind(domain)
                .bind(old.service.as_str())
                .bind(old.node.as_str())
                .execute(&mut *tx)
                .await?;
            evicted.push(old);
        }
        tx.commit().await?;
        Ok(evicted)
    }

    async fn push_disable(
        &self,
        localpart: &str,
        domain: &str,
        service: &str,
        node: Option<&str>,
    ) -> Result<u64, StorageError> {
        let query = match node {
            Some(node) => sqlx::query(DELETE_ONE)
                .bind(localpart)
                .bind(domain)
                .bind(service)
                .bind(node),
            None => sqlx::query(DELETE_SERVICE)
                .bind(localpart)
                .bind(domain)
                .bind(service),
        };
        Ok(query.execute(&self.pool).await?.rows_affected())
    }

    async fn push_registrations(
        &self,
        localpart: &str,
        domain: &str,
    ) -> Result<Vec<PushRegistration>, StorageError> {
        let rows = sqlx::query(SELECT)
            .bind(localpart)
            .bind(domain)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(registration).collect()
    }
}
