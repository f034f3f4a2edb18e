//! [`PrivateStore`] (XEP-0049) and [`VcardStore`] (XEP-0054) on
//! [`Storage`]: per-account XML kept as the text the caller serialized.
//!
//! Both are one upsert or one plain statement each; no transaction is
//! needed. Writes select the account id inside the INSERT, so a missing
//! account shows up as no row written rather than as a foreign-key error.

use sqlx::Row;

use crate::{PrivateFragment, PrivateStore, Storage, StorageError, VcardStore};

// The SELECT needs its WHERE for SQLite to parse the upsert.
const UPSERT_PRIVATE: &str = "INSERT INTO private_xml (account_id, name, namespace, xml) \
     SELECT id, $3, $4, $5 FROM accounts WHERE localpart = $1 AND domain = $2 \
     ON CONFLICT (account_id, namespace, name) DO UPDATE SET xml = excluded.xml";
const SELECT_PRIVATE: &str = "SELECT p.xml FROM private_xml p \
     JOIN accounts a ON a.id = p.account_id \
     WHERE a.localpart = $1 AND a.domain = $2 AND p.name = $3 AND p.namespace = $4";
// The key columns sort byte-wise on both backends, so exports are stable.
const SELECT_PRIVATE_ALL: &str = "SELECT p.name, p.namespace, p.xml FROM private_xml p \
     JOIN accounts a ON a.id = p.account_id \
     WHERE a.localpart = $1 AND a.domain = $2 ORDER BY p.namespace, p.name";

const UPSERT_VCARD: &str = "INSERT INTO vcards (account_id, vcard) \
     SELECT id, $3 FROM accounts WHERE localpart = $1 AND domain = $2 \
     ON CONFLICT (account_id) DO UPDATE SET vcard = excluded.vcard";
const SELECT_VCARD: &str = "SELECT v.vcard FROM vcards v JOIN accounts a ON a.id = v.account_id \
     WHERE a.localpart = $1 AND a.domain = $2";
const DELETE_VCARD: &str = "DELETE FROM vcards WHERE account_id IN \
     (SELECT id FROM accounts WHERE localpart = $1 AND domain = $2)";

impl PrivateStore for Storage {
    async fn private_xml(
        &self,
        localpart: &str,
        domain: &str,
        name: &str,
        namespace: &str,
    ) -> Result<Option<String>, StorageError> {
        Ok(sqlx::query_scalar(SELECT_PRIVATE)
            .bind(localpart)
            .bind(domain)
            .bind(name)
            .bind(namespace)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn set_private_xml(
        &self,
        localpart: &str,
        domain: &str,
        name: &str,
        namespace: &str,
        xml: &str,
    ) -> Result<(), StorageError> {
        let done = sqlx::query(UPSERT_PRIVATE)
            .bind(localpart)
            .bind(domain)
            .bind(name)
            .bind(namespace)
            .bind(xml)
            .execute(&self.pool)
            .await?;
        written_or_not_found(done.rows_affected())
    }

    async fn private_fragments(
        &self,
        localpart: &str,
        domain: &str,
    ) -> Result<Vec<PrivateFragment>, StorageError> {
        let rows = sqlx::query(SELECT_PRIVATE_ALL)
            .bind(localpart)
            .bind(domain)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(PrivateFragment {
                    name: row.try_get("name")?,
                    namespace: row.try_get("namespace")?,
                    xml: row.try_get("xml")?,
                })
            })
            .collect()
    }
}

impl VcardStore for Storage {
    async fn vcard(&self, localpart: &str, domain: &str) -> Result<Option<String>, StorageError> {
        Ok(sqlx::query_scalar(SELECT_VCARD)
            .bind(localpart)
            .bind(domain)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn set_vcard(
        &self,
        localpart: &str,
        domain: &str,
        vcard: &str,
    ) -> Result<(), StorageError> {
        let done = sqlx::query(UPSERT_VCARD)
            .bind(localpart)
            .bind(domain)
            .bind(vcard)
            .execute(&self.pool)
            .await?;
        written_or_not_found(done.rows_affected())
    }

    async fn delete_vcard(&self, localpart: &str, domain: &str) -> Result<bool, StorageError> {
        let done = sqlx::query(DELETE_VCARD)
            .bind(localpart)
            .bind(domain)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

/// An upsert writes one row whether it inserts or updates; none means its
/// SELECT found no account.
fn written_or_not_found(rows_affected: u64) -> Result<(), StorageError> {
    if rows_affected == 0 {
        return Err(StorageError::NotFound);
    }
    Ok(())
}
