//! [`BlockStore`] on [`Storage`]: XEP-0191 block lists.
//!
//! Entries are stored exactly as given (normalized by the caller);
//! matching a stanza's JID against them happens in the query, by looking up
//! each entry form that would cover it (XEP-0191 §6, which defers to the
//! JID matching rules of XEP-0016 §2.1).

use std::sync::Arc;

use crate::{BlockStore, Storage, StorageError};

// The SELECT needs its WHERE for SQLite to parse the upsert.
const INSERT_BLOCK: &str = "INSERT INTO blocked_jids (account_id, jid) \
     SELECT id, $3 FROM accounts WHERE localpart = $1 AND domain = $2 \
     ON CONFLICT (account_id, jid) DO NOTHING";
const ACCOUNT_ID: &str = "SELECT id FROM accounts WHERE localpart = $1 AND domain = $2";
const DELETE_BLOCK: &str = "DELETE FROM blocked_jids WHERE jid = $3 AND account_id IN \
     (SELECT id FROM accounts WHERE localpart = $1 AND domain = $2)";
const DELETE_ALL: &str = "DELETE FROM blocked_jids WHERE account_id IN \
     (SELECT id FROM accounts WHERE localpart = $1 AND domain = $2)";
// Byte-wise on both backends: BINARY on SQLite, COLLATE "C" on PostgreSQL.
const SELECT_LIST: &str = "SELECT b.jid FROM blocked_jids b \
     JOIN accounts a ON a.id = b.account_id \
     WHERE a.localpart = $1 AND a.domain = $2 ORDER BY b.jid";

impl BlockStore for Storage {
    async fn blocklist(&self, localpart: &str, domain: &str) -> Result<Vec<String>, StorageError> {
        Ok(sqlx::query_scalar(SELECT_LIST)
            .bind(localpart)
            .bind(domain)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn block(
        &self,
        localpart: &str,
        domain: &str,
        jids: &[&str],
    ) -> Result<u64, StorageError> {
        self.cache.invalidate(localpart, domain);
        let r: Result<u64, StorageError> = async {
            let mut tx = self.pool.begin().await?;
            let mut added = 0;
            // Writes first, so on SQLite the transaction holds the write lock
            // before it reads (see accounts.rs).
            for jid in jids {
                let done = sqlx::query(INSERT_BLOCK)
                    .bind(localpart)
                    .bind(domain)
                    .bind(*jid)
                    .execute(&mut *tx)
                    .await?;
                added += done.rows_affected();
            }
            if added == 0 {
                // Nothing inserted: all were blocked already, or there is no
                // account to block for.
                let id: Option<i64> = sqlx::query_scalar(ACCOUNT_ID)
                    .bind(localpart)
                    .bind(domain)
                    .fetch_optional(&mut *tx)
                    .await?;
                if id.is_none() {
                    tx.rollback().await?;
                    return Err(StorageError::NotFound);
                }
            }
            tx.commit().await?;
            Ok(added)
        }
        .await;
        self.cache.invalidate(localpart, domain);
        r
    }

    async fn unblock(
        &self,
        localpart: &str,
        domain: &str,
        jids: &[&str],
    ) -> Result<u64, StorageError> {
        self.cache.invalidate(localpart, domain);
        let r: Result<u64, StorageError> = async {
            let mut tx = self.pool.begin().await?;
            let mut removed = 0;
            for jid in jids {
                let done = sqlx::query(DELETE_BLOCK)
                    .bind(localpart)
                    .bind(domain)
                    .bind(*jid)
                    .execute(&mut *tx)
                    .await?;
                removed += done.rows_affected();
            }
            tx.commit().await?;
            Ok(removed)
        }
        .await;
        self.cache.invalidate(localpart, domain);
        r
    }

    async fn unblock_all(&self, localpart: &str, domain: &str) -> Result<u64, StorageError> {
        self.cache.invalidate(localpart, domain);
        let r: Result<u64, StorageError> = async {
            let done = sqlx::query(DELETE_ALL)
                .bind(localpart)
                .bind(domain)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected())
        }
        .await;
        self.cache.invalidate(localpart, domain);
        r
    }

    async fn is_blocked(
        &self,
        localpart: &str,
        domain: &str,
        jid: &str,
    ) -> Result<bool, StorageError> {
        let list = match self.cache.blocks(localpart, domain) {
            Some(list) => list,
            None => {
                let generation = self.cache.generation();
                let list = Arc::new(self.blocklist(localpart, domain).await?);
                self.cache
                    .put_blocks(localpart, domain, generation, list.clone());
                list
            }
        };
        // The list is ordered byte-wise (SELECT_LIST), as binary_search needs.
        Ok(covering_entries(jid).iter().any(|e| {
            list.binary_search_by(|x| x.as_bytes().cmp(e.as_bytes()))
                .is_ok()
        }))
    }
}

/// The block-list entries that would cover `jid`: the JID itself, its bare
/// JID, its domain with its resource, and its domain (XEP-0016 §2.1). Forms
/// `jid` lacks repeat one it has, which the `IN` list does not mind.
///
/// The resource is everything after the first `/` (it may itself hold `/`
/// and `@`); the localpart is what precedes an `@` before that (RFC 7622
/// §3.1).
fn covering_entries(jid: &str) -> [&str; 4] {
    let (bare, resource) = match jid.split_once('/') {
        Some((bare, resource)) => (bare, Some(resource)),
        None => (jid, None),
    };
    let domain = bare.split_once('@').map_or(bare, |(_, domain)| domain);
    let domain_resource = match resource {
        // `domain/resource` is the tail of `jid` from where the domain
        // starts (`bare` is a prefix of `jid` ending with the domain), so it
        // can be borrowed rather than built.
        Some(_) => jid.get(bare.len() - domain.len()..).unwrap_or(domain),
        None => domain,
    };
    [jid, bare, domain_resource, domain]
}

#[cfg(test)]
mod tests {
    use super::covering_entries;

    #[test]
    fn full_jid_is_covered_by_every_form() {
        assert_eq!(
            covering_entries("juliet@capulet.example/balcony"),
            [
                "juliet@capulet.example/balcony",
                "juliet@capulet.example",
                "capulet.example/balcony",
                "capulet.example",
            ]
        );
    }

    #[test]
    fn resource_may_hold_slash_and_at() {
        assert_eq!(
            covering_entries("a@b.example/c@d/e"),
            [
                "a@b.example/c@d/e",
                "a@b.example",
                "b.example/c@d/e",
                "b.example"
            ]
        );
    }

    #[test]
    fn shorter_forms_repeat_what_they_have() {
        assert_eq!(
            covering_entries("romeo@montague.example"),
            [
                "romeo@montague.example",
                "romeo@montague.example",
                "montague.example",
                "montague.example",
            ]
        );
        assert_eq!(
            covering_entries("montague.example/host"),
            [
                "montague.example/host",
                "montague.example",
                "montague.example/host",
                "montague.example",
            ]
        );
        assert_eq!(
            covering_entries("montague.example"),
            ["montague.example"; 4]
        );
    }
}
