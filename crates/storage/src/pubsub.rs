//! [`PubsubStore`] on [`Storage`]: publish-subscribe nodes (XEP-0060) with
//! their items, affiliations and subscriptions, for PEP (XEP-0163) and for
//! hosted services alike. A node is named by its service's JID and its
//! node id; configurations and subscription options are the text the
//! module serialized, payloads the XML it serialized.

use sqlx::Row;

use crate::{PubsubItem, PubsubNode, PubsubStore, PubsubSubscription, Storage, StorageError};

const SELECT_NODE: &str = "SELECT node, config FROM pubsub_nodes WHERE service = $1 AND node = $2";
const SELECT_NODES: &str = "SELECT node, config FROM pubsub_nodes WHERE service = $1 ORDER BY node";
const INSERT_PEP_NODE: &str = "INSERT INTO pubsub_nodes (service, node, account_id, config) \
     SELECT $1, $2, id, $5 FROM accounts WHERE localpart = $3 AND domain = $4";
const INSERT_NODE: &str =
    "INSERT INTO pubsub_nodes (service, node, account_id, config) VALUES ($1, $2, NULL, $3)";
const UPDATE_CONFIG: &str = "UPDATE pubsub_nodes SET config = $3 WHERE service = $1 AND node = $2";
const DELETE_NODE: &str = "DELETE FROM pubsub_nodes WHERE service = $1 AND node = $2";

// One statement that writes first, so a SQLite transaction takes the write
// lock at once. Republishing an id replaces the item and moves it last.
const UPSERT_ITEM: &str = "INSERT INTO pubsub_items (node_id, item_id, publisher, payload, seq) \
     SELECT n.id, $3, $4, $5, \
     COALESCE((SELECT MAX(i.seq) FROM pubsub_items i WHERE i.node_id = n.id), 0) + 1 \
     FROM pubsub_nodes n WHERE n.service = $1 AND n.node = $2 \
     ON CONFLICT (node_id, item_id) DO UPDATE SET \
     publisher = excluded.publisher, payload = excluded.payload, seq = excluded.seq";
const TRIM_ITEMS: &str = "DELETE FROM pubsub_items WHERE node_id = (SELECT id FROM pubsub_nodes \
     WHERE service = $1 AND node = $2) AND item_id NOT IN (SELECT i.item_id FROM pubsub_items i \
     JOIN pubsub_nodes n ON n.id = i.node_id WHERE n.service = $1 AND n.node = $2 \
     ORDER BY i.seq DESC LIMIT $3)";
const DELETE_ITEM: &str = "DELETE FROM pubsub_items WHERE node_id = (SELECT id FROM pubsub_nodes \
     WHERE service = $1 AND node = $2) AND item_id = $3";
const PURGE_ITEMS: &str = "DELETE FROM pubsub_items WHERE node_id = (SELECT id FROM pubsub_nodes \
     WHERE service = $1 AND node = $2)";
const SELECT_ITEMS: &str = "SELECT i.item_id, i.publisher, i.payload FROM pubsub_items i \
     JOIN pubsub_nodes n ON n.id = i.node_id WHERE n.service = $1 AND n.node = $2 \
     ORDER BY i.seq DESC";
const SELECT_ITEM: &str = "SELECT i.item_id, i.publisher, i.payload FROM pubsub_items i \
     JOIN pubsub_nodes n ON n.id = i.node_id \
     WHERE n.service = $1 AND n.node = $2 AND i.item_id = $3";

const SELECT_AFFILIATIONS: &str = "SELECT a.jid, a.affiliation FROM pubsub_affiliations a \
     JOIN pubsub_nodes n ON n.id = a.node_id WHERE n.service = $1 AND n.node = $2 ORDER BY a.jid";
const SELECT_AFFILIATIONS_OF: &str = "SELECT n.node, a.affiliation FROM pubsub_affiliations a \
     JOIN pubsub_nodes n ON n.id = a.node_id WHERE n.service = $1 AND a.jid = $2 ORDER BY n.node";
const UPSERT_AFFILIATION: &str = "INSERT INTO pubsub_affiliations (node_id, jid, affiliation) \
     SELECT id, $3, $4 FROM pubsub_nodes WHERE service = $1 AND node = $2 \
     ON CONFLICT (node_id, jid) DO UPDATE SET affiliation = excluded.affiliation";
const DELETE_AFFILIATION: &str = "DELETE FROM pubsub_affiliations WHERE node_id = \
     (SELECT id FROM pubsub_nodes WHERE service = $1 AND node = $2) AND jid = $3";

const SUBSCRIPTION_COLUMNS: &str = "n.node, s.jid, s.subid, s.state, s.options";
const UPSERT_SUBSCRIPTION: &str =
    "INSERT INTO pubsub_subscriptions (node_id, jid, subid, state, options) \
     SELECT id, $3, $4, $5, $6 FROM pubsub_nodes WHERE service = $1 AND node = $2 \
     ON CONFLICT (node_id, jid, subid) DO UPDATE SET \
     state = excluded.state, options = excluded.options";
const DELETE_SUBSCRIPTION: &str = "DELETE FROM pubsub_subscriptions WHERE node_id = \
     (SELECT id FROM pubsub_nodes WHERE service = $1 AND node = $2) AND jid = $3 AND subid = $4";

fn node_from(row: &sqlx::any::AnyRow) -> Result<PubsubNode, StorageError> {
    Ok(PubsubNode {
        node: row.try_get(0)?,
        config: row.try_get(1)?,
    })
}

fn item_from(row: &sqlx::any::AnyRow) -> Result<PubsubItem, StorageError> {
    Ok(PubsubItem {
        id: row.try_get(0)?,
        publisher: row.try_get(1)?,
        payload: row.try_get(2)?,
    })
}

fn subscription_from(row: &sqlx::any::AnyRow) -> Result<PubsubSubscription, StorageError> {
    Ok(PubsubSubscription {
        node: row.try_get(0)?,
        jid: row.try_get(1)?,
        subid: row.try_get(2)?,
        state: row.try_get(3)?,
        options: row.try_get(4)?,
    })
}

fn found(rows_affected: u64) -> Result<(), StorageError> {
    if rows_affected == 0 {
        return Err(StorageError::NotFound);
    }
    Ok(())
}

impl PubsubStore for Storage {
    async fn pubsub_node(
        &self,
        service: &str,
        node: &str,
    ) -> Result<Option<PubsubNode>, StorageError> {
        let row = sqlx::query(SELECT_NODE)
            .bind(service)
            .bind(node)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(node_from).transpose()
    }

    async fn pubsub_nodes(&self, service: &str) -> Result<Vec<PubsubNode>, StorageError> {
        let rows = sqlx::query(SELECT_NODES)
            .bind(service)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(node_from).collect()
    }

    async fn pubsub_create_node(
        &self,
        service: &str,
        node: &str,
        account: Option<(&str, &str)>,
        config: &str,
        owner: &str,
    ) -> Result<(), StorageError> {
        let mut tx = self.pool.begin().await?;
        let created = match account {
            Some((localpart, domain)) => {
                sqlx::query(INSERT_PEP_NODE)
                    .bind(service)
                    .bind(node)
                    .bind(localpart)
                    .bind(domain)
                    .bind(config)
                    .execute(&mut *tx)
                    .await?
            }
            None => {
                sqlx::query(INSERT_NODE)
                    .bind(service)
                    .bind(node)
                    .bind(config)
                    .execute(&mut *tx)
                    .await?
            }
        };
        found(created.rows_affected())?;
        sqlx::query(UPSERT_AFFILIATION)
            .bind(service)
            .bind(node)
            .bind(owner)
            .bind("owner")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn pubsub_configure_node(
        &self,
        service: &str,
        node: &str,
        config: &str,
    ) -> Result<(), StorageError> {
        let done = sqlx::query(UPDATE_CONFIG)
            .bind(service)
            .bind(node)
            .bind(config)
            .execute(&self.pool)
            .await?;
        found(done.rows_affected())
    }

    async fn pubsub_delete_node(&self, service: &str, node: &str) -> Result<bool, StorageError> {
        let done = sqlx::query(DELETE_NODE)
            .bind(service)
            .bind(node)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn pubsub_publish(
        &self,
        service: &str,
        node: &str,
        item: &PubsubItem,
        keep: Option<u64>,
    ) -> Result<(), StorageError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(UPSERT_ITEM)
            .bind(service)
            .bind(node)
            .bind(item.id.as_str())
            .bind(item.publisher.as_str())
            .bind(item.payload.as_str())
            .execute(&mut *tx)
            .await?;
        found(done.rows_affected())?;
        if let Some(keep) = keep {
            sqlx::query(TRIM_ITEMS)
                .bind(service)
                .bind(node)
                .bind(i64::try_from(keep).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn pubsub_retract(
        &self,
        service: &str,
        node: &str,
        item_id: &str,
    ) -> Result<bool, StorageError> {
        let done = sqlx::query(DELETE_ITEM)
            .bind(service)
            .bind(node)
            .bind(item_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn pubsub_purge(&self, service: &str, node: &str) -> Result<(), StorageError> {
        sqlx::query(PURGE_ITEMS)
            .bind(service)
            .bind(node)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn pubsub_items(
        &self,
        service: &str,
        node: &str,
        ids: &[String],
        newest: Option<u64>,
    ) -> Result<Vec<PubsubItem>, StorageError> {
        let mut items = Vec::new();
        if ids.is_empty() {
            let sql = match newest {
                Some(n) => format!("{SELECT_ITEMS} LIMIT {n}"),
                None => SELECT_ITEMS.to_owned(),
            };
            let rows = sqlx::query(&sql)
                .bind(service)
                .bind(node)
                .fetch_all(&self.pool)
                .await?;
            for row in &rows {
                items.push(item_from(row)?);
            }
            // Newest first from the query; publication order for the caller.
            items.reverse();
        } else {
            for id in ids {
                let row = sqlx::query(SELECT_ITEM)
                    .bind(service)
                    .bind(node)
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                if let Some(row) = row {
                    items.push(item_from(&row)?);
                }
            }
        }
        Ok(items)
    }

    async fn pubsub_affiliations(
        &self,
        service: &str,
        node: &str,
    ) -> Result<Vec<(String, String)>, StorageError> {
        let rows = sqlx::query(SELECT_AFFILIATIONS)
            .bind(service)
            .bind(node)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    async fn pubsub_affiliations_of(
        &self,
        service: &str,
        jid: &str,
    ) -> Result<Vec<(String, String)>, StorageError> {
        let rows = sqlx::query(SELECT_AFFILIATIONS_OF)
            .bind(service)
            .bind(jid)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    async fn pubsub_set_affiliation(
        &self,
        service: &str,
        node: &str,
        jid: &str,
        affiliation: Option<&str>,
    ) -> Result<(), StorageError> {
        match affiliation {
            Some(a) => {
                let done = sqlx::query(UPSERT_AFFILIATION)
                    .bind(service)
                    .bind(node)
                    .bind(jid)
                    .bind(a)
                    .execute(&self.pool)
                    .await?;
                found(done.rows_affected())
            }
            None => {
                sqlx::query(DELETE_AFFILIATION)
                    .bind(service)
                    .bind(node)
                    .bind(jid)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
        }
    }

    async fn pubsub_subscriptions(
        &self,
        service: &str,
        node: Option<&str>,
        jid: Option<&str>,
    ) -> Result<Vec<PubsubSubscription>, StorageError> {
        let mut sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM pubsub_subscriptions s \
             JOIN pubsub_nodes n ON n.id = s.node_id WHERE n.service = $1"
        );
        let mut next = 2;
        if node.is_some() {
            sql.push_str(&format!(" AND n.node = ${next}"));
            next += 1;
        }
        if jid.is_some() {
            sql.push_str(&format!(" AND s.jid = ${next}"));
        }
        sql.push_str(" ORDER BY n.node, s.jid, s.subid");
        let mut q = sqlx::query(&sql).bind(service);
        if let Some(node) = node {
            q = q.bind(node);
        }
        if let Some(jid) = jid {
            q = q.bind(jid);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(subscription_from).collect()
    }

    async fn pubsub_set_subscription(
        &self,
        service: &str,
        subscription: &PubsubSubscription,
    ) -> Result<(), StorageError> {
        let done = sqlx::query(UPSERT_SUBSCRIPTION)
            .bind(service)
            .bind(subscription.node.as_str())
            .bind(subscription.jid.as_str())
            .bind(subscription.subid.as_str())
            .bind(subscription.state.as_str())
            .bind(subscription.options.as_str())
            .execute(&self.pool)
            .await?;
        found(done.rows_affected())
    }

    async fn pubsub_remove_subscription(
        &self,
        service: &str,
        node: &str,
        jid: &str,
        subid: &str,
    ) -> Result<bool, StorageError> {
        let done = sqlx::query(DELETE_SUBSCRIPTION)
            .bind(service)
            .bind(node)
            .bind(jid)
            .bind(subid)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
