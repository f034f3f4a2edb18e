//! [`ClientStore`] on [`Storage`]: the clients each account logs in with
//! (XEP-0388 `<user-agent/>`) and their FAST tokens (XEP-0484), two slots
//! per client as XEP-0484 §6.1 suggests, so that rotation survives a lost
//! `<success/>` without an unbounded list of live tokens. What is stored
//! as a token's `hash` is whatever the caller gives (c2s seals it).

use std::time::SystemTime;

use sqlx::Row;

use crate::time::{from_micros, now_micros, to_micros};
use crate::{ClientRecord, ClientStore, FastToken, Storage, StorageError, TokenSlot};

/// The account's id, as a subselect on the first two parameters.
macro_rules! account {
    () => {
        "(SELECT id FROM accounts WHERE localpart = $1 AND domain = $2)"
    };
}

// The SELECT needs its WHERE for SQLite to parse the upsert.
const SEEN: &str =
    "INSERT INTO clients (account_id, client_id, software, device, first_seen, last_seen) \
     SELECT id, $3, $4, $5, $6, $6 FROM accounts WHERE localpart = $1 AND domain = $2 \
     ON CONFLICT (account_id, client_id) DO UPDATE SET software = excluded.software, \
     device = excluded.device, last_seen = excluded.last_seen";

const TRIM: &str = concat!(
    "DELETE FROM clients WHERE account_id = ",
    account!(),
    " AND client_id NOT IN (SELECT client_id FROM clients WHERE account_id = ",
    account!(),
    " ORDER BY last_seen DESC, client_id LIMIT $3)"
);

const CLIENTS: &str = concat!(
    "SELECT c.client_id, c.software, c.device, c.first_seen, c.last_seen, \
     (SELECT MAX(t.expires) FROM fast_tokens t WHERE t.account_id = c.account_id \
     AND t.client_id = c.client_id) AS token_expires \
     FROM clients c WHERE c.account_id = ",
    account!(),
    " ORDER BY c.last_seen DESC, c.client_id"
);

const TOKENS: &str = concat!(
    "SELECT slot, mechanism, hash, expires, count FROM fast_tokens WHERE account_id = ",
    account!(),
    " AND client_id = $3 ORDER BY slot"
);

// Only for a recorded client: the foreign key would refuse others, as
// an error; the SELECT makes it a quiet no-op instead.
const ISSUE: &str = concat!(
    "INSERT INTO fast_tokens (account_id, client_id, slot, mechanism, hash, expires, count) \
     SELECT account_id, client_id, 'new', $4, $5, $6, 0 FROM clients WHERE account_id = ",
    account!(),
    " AND client_id = $3 ON CONFLICT (account_id, client_id, slot) DO UPDATE SET \
     mechanism = excluded.mechanism, hash = excluded.hash, expires = excluded.expires, count = 0"
);

const DELETE_SLOT: &str = concat!(
    "DELETE FROM fast_tokens WHERE account_id = ",
    account!(),
    " AND client_id = $3 AND slot = $4"
);

// Each use is one conditional write, the authority on whether the token
// still counts: the row must hold the hash that was verified and not have
// expired, so a revocation or rotation that lands between the read and the
// use wins.
const PROMOTE: &str = concat!(
    "UPDATE fast_tokens SET slot = 'current', count = $4 WHERE account_id = ",
    account!(),
    " AND client_id = $3 AND slot = 'new' AND hash = $5 AND expires > $6"
);

const COUNT: &str = concat!(
    "UPDATE fast_tokens SET count = CASE WHEN $4 > count THEN $4 ELSE count END \
     WHERE account_id = ",
    account!(),
    " AND client_id = $3 AND slot = 'current' AND hash = $5 AND expires > $6 \
     AND ($4 = 0 OR count < $4)"
);

const REVOKE_ONE: &str = concat!(
    "DELETE FROM fast_tokens WHERE account_id = ",
    account!(),
    " AND client_id = $3"
);

const REVOKE_ALL: &str = concat!("DELETE FROM fast_tokens WHERE account_id = ", account!());

fn count_i64(count: u64) -> Result<i64, StorageError> {
    i64::try_from(count).map_err(|_| StorageError::InvalidInput("counter out of range".into()))
}

impl ClientStore for Storage {
    async fn client_seen(
        &self,
        localpart: &str,
        domain: &str,
        id: &str,
        software: &str,
        device: &str,
        keep: u32,
    ) -> Result<(), StorageError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(SEEN)
            .bind(localpart)
            .bind(domain)
            .bind(id)
            .bind(software)
            .bind(device)
            .bind(now_micros()?)
            .execute(&mut *tx)
            .await?;
        sqlx::query(TRIM)
            .bind(localpart)
            .bind(domain)
            .bind(i64::from(keep.max(1)))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn clients(
        &self,
        localpart: &str,
        domain: &str,
    ) -> Result<Vec<ClientRecord>, StorageError> {
        let rows = sqlx::query(CLIENTS)
            .bind(localpart)
            .bind(domain)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let expires: Option<i64> = r.try_get("token_expires")?;
                Ok(ClientRecord {
                    id: r.try_get("client_id")?,
                    software: r.try_get("software")?,
                    device: r.try_get("device")?,
                    first_seen: from_micros(r.try_get("first_seen")?)?,
                    last_seen: from_micros(r.try_get("last_seen")?)?,
                    token_expires: expires.map(from_micros).transpose()?,
                })
            })
            .collect()
    }

    async fn fast_tokens(
        &self,
        localpart: &str,
        domain: &str,
        client: &str,
    ) -> Result<Vec<FastToken>, StorageError> {
        let rows = sqlx::query(TOKENS)
            .bind(localpart)
            .bind(domain)
            .bind(client)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let slot: String = r.try_get("slot")?;
                let count: i64 = r.try_get("count")?;
                Ok(FastToken {
                    slot: if slot == "new" {
                        TokenSlot::New
                    } else {
                        TokenSlot::Current
                    },
                    mechanism: r.try_get("mechanism")?,
                    hash: r.try_get("hash")?,
                    expires: from_micros(r.try_get("expires")?)?,
                    count: u64::try_from(count).unwrap_or(0),
                })
            })
            .collect()
    }

    async fn fast_issue(
        &self,
        localpart: &str,
        domain: &str,
        client: &str,
        mechanism: &str,
        hash: &[u8],
        expires: SystemTime,
    ) -> Result<bool, StorageError> {
        let done = sqlx::query(ISSUE)
            .bind(localpart)
            .bind(domain)
            .bind(client)
            .bind(mechanism)
            .bind(hash)
            .bind(to_micros(expires)?)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn fast_used(
        &self,
        localpart: &str,
        domain: &str,
        client: &str,
        slot: TokenSlot,
        hash: &[u8],
        count: Option<u64>,
    ) -> Result<bool, StorageError> {
        let count = count_i64(count.unwrap_or(0))?;
        let now = now_micros()?;
        match slot {
            TokenSlot::New => {
                // A client that never counted starts at 0, as the stored
                // count does; one that counts must start above it.
                let mut tx = self.pool.begin().await?;
                sqlx::query(DELETE_SLOT)
                    .bind(localpart)
                    .bind(domain)
                    .bind(client)
                    .bind(TokenSlot::Current.as_str())
                    .execute(&mut *tx)
                    .await?;
                let done = sqlx::query(PROMOTE)
                    .bind(localpart)
                    .bind(domain)
                    .bind(client)
                    .bind(count)
                    .bind(hash)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() != 1 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                tx.commit().await?;
                Ok(true)
            }
            TokenSlot::Current => {
                let done = sqlx::query(COUNT)
                    .bind(localpart)
                    .bind(domain)
                    .bind(client)
                    .bind(count)
                    .bind(hash)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }
        }
    }

    async fn fast_revoke(
        &self,
        localpart: &str,
        domain: &str,
        client: Option<&str>,
    ) -> Result<u64, StorageError> {
        let done = match client {
            Some(c) => {
                sqlx::query(REVOKE_ONE)
                    .bind(localpart)
                    .bind(domain)
                    .bind(c)
                    .execute(&self.pool)
                    .await?
            }
            None => {
                sqlx::query(REVOKE_ALL)
                    .bind(localpart)
                    .bind(domain)
                    .execute(&self.pool)
                    .await?
            }
        };
        Ok(done.rows_affected())
    }
}
