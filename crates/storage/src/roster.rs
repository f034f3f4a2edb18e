//! [`RosterStore`] on [`Storage`]: roster items and their groups, roster
//! versioning with tombstones for removed items, and pending inbound
//! subscription requests.
//!
//! # Versioning
//!
//! `roster_versions` holds one counter per account. Every mutation starts by
//! bumping it (an upsert, so the first change creates the row), stamps the
//! item row it writes with the new value, and commits both together. Being
//! the first statement, the bump is also the lock that serializes roster
//! writers of one account: a row lock on PostgreSQL, the write lock on
//! SQLite (taken before any read, so a concurrent commit cannot leave the
//! transaction with a stale snapshot it may not upgrade). So versions
//! commit in increasing order, and once version V is visible every change
//! up to V is too.
//!
//! A removal deletes the item and records a tombstone `(jid, version)`; a
//! later re-add deletes the tombstone, because the item row then carries the
//! newer version. A delta since version v is every item row and tombstone
//! above v, which is exact as long as no tombstone above v was forgotten.
//! Tombstones are capped at [`ROSTER_REMOVALS_KEPT`] per account: pruning
//! the oldest raises the account's `horizon` to the highest version pruned,
//! and a delta is only given for versions at or above the horizon.
//!
//! # Consistent reads
//!
//! Each read is a single statement, because a single statement sees one
//! snapshot on both backends, whereas a multi-statement read transaction
//! would not on PostgreSQL's default READ COMMITTED. So the roster comes
//! back as one row per (item, group) joined with the version, never as a
//! version read after the items (which could claim a version whose change
//! is missing from the items, and a client would cache that forever).

use std::collections::HashSet;

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::time::{from_micros, now_micros};
use crate::{
    PendingSubscription, Roster, RosterChange, RosterItem, RosterStore, Storage, StorageError,
    Subscription,
};

/// How many removals per account are remembered as tombstones. A client
/// whose cached roster predates the oldest remembered removal gets the whole
/// roster instead of a delta. Removals are rare next to logins, so this
/// keeps deltas available for months of ordinary use while bounding what a
/// user who churns through contacts leaves behind.
pub const ROSTER_REMOVALS_KEPT: u32 = 256;

// The bump: creates the counter at 1 or increments it, and yields the
// account id for the statements that follow. No row (the account does not
// exist) means nothing to lock and nothing to change. The SELECT needs its
// WHERE for SQLite to parse the upsert (see "parsing ambiguity" in its docs).
const BUMP_VERSION: &str = "INSERT INTO roster_versions (account_id, version, horizon) \
     SELECT id, 1, 0 FROM accounts WHERE localpart = $1 AND domain = $2 \
     ON CONFLICT (account_id) DO UPDATE SET version = roster_versions.version + 1 \
     RETURNING account_id, version";
const UPSERT_ITEM: &str = "INSERT INTO roster_items \
     (account_id, jid, name, subscription, ask, approved, version) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (account_id, jid) DO UPDATE SET name = excluded.name, \
     subscription = excluded.subscription, ask = excluded.ask, \
     approved = excluded.approved, version = excluded.version";
const DELETE_GROUPS: &str = "DELETE FROM roster_groups WHERE account_id = $1 AND jid = $2";
const INSERT_GROUP: &str =
    "INSERT INTO roster_groups (account_id, jid, ordinal, name) VALUES ($1, $2, $3, $4)";
const DELETE_TOMBSTONE: &str = "DELETE FROM roster_tombstones WHERE account_id = $1 AND jid = $2";
const DELETE_ITEM: &str = "DELETE FROM roster_items WHERE account_id = $1 AND jid = $2";
const UPSERT_TOMBSTONE: &str = "INSERT INTO roster_tombstones (account_id, jid, version) \
     VALUES ($1, $2, $3) \
     ON CONFLICT (account_id, jid) DO UPDATE SET version = excluded.version";
// The version of the newest tombstone beyond the ones kept, if there are
// more than that.
const PRUNE_BOUNDARY: &str = "SELECT version FROM roster_tombstones WHERE account_id = $1 \
     ORDER BY version DESC LIMIT 1 OFFSET $2";
const PRUNE_TOMBSTONES: &str =
    "DELETE FROM roster_tombstones WHERE account_id = $1 AND version <= $2";
const RAISE_HORIZON: &str = "UPDATE roster_versions SET horizon = $2 WHERE account_id = $1";

// One row per (item, group), items in JID order and groups in their order;
// an item without groups has one row with a NULL group, and an account
// without items one row with a NULL jid, which still carries the version.
const SELECT_ROSTER: &str = "SELECT COALESCE(v.version, 0) AS roster_version, \
     i.jid, i.name, i.subscription, i.ask, i.approved, g.name AS grp \
     FROM accounts a \
     LEFT JOIN roster_versions v ON v.account_id = a.id \
     LEFT JOIN roster_items i ON i.account_id = a.id \
     LEFT JOIN roster_groups g ON g.account_id = i.account_id AND g.jid = i.jid \
     WHERE a.localpart = $1 AND a.domain = $2 \
     ORDER BY i.jid, g.ordinal";
const SELECT_VERSION: &str = "SELECT v.version FROM roster_versions v \
     JOIN accounts a ON a.id = v.account_id WHERE a.localpart = $1 AND a.domain = $2";
const SELECT_ITEM: &str = "SELECT i.jid, i.name, i.subscription, i.ask, i.approved, \
     g.name AS grp \
     FROM roster_items i JOIN accounts a ON a.id = i.account_id \
     LEFT JOIN roster_groups g ON g.account_id = i.account_id AND g.jid = i.jid \
     WHERE a.localpart = $1 AND a.domain = $2 AND i.jid = $3 \
     ORDER BY g.ordinal";
// The version counter and horizon, then every item row (one per group) and
// tombstone above $3, ordered by version: each version belongs to one JID,
// so an item's group rows stay together. One row with NULL change columns
// when nothing changed; no row when the account does not exist. Each arm
// filters on the account itself so neither scans other accounts' rows.
const SELECT_CHANGES: &str = "WITH acct AS \
     (SELECT id FROM accounts WHERE localpart = $1 AND domain = $2) \
     SELECT COALESCE(v.version, 0) AS roster_version, COALESCE(v.horizon, 0) AS horizon, \
     c.jid, c.name, c.subscription, c.ask, c.approved, c.version, c.grp, c.removed \
     FROM acct \
     LEFT JOIN roster_versions v ON v.account_id = acct.id \
     LEFT JOIN ( \
       SELECT i.jid, i.name, i.subscription, i.ask, i.approved, i.version, \
         g.ordinal, g.name AS grp, 0 AS removed \
       FROM roster_items i \
       LEFT JOIN roster_groups g ON g.account_id = i.account_id AND g.jid = i.jid \
       WHERE i.account_id = (SELECT id FROM acct) AND i.version > $3 \
       UNION ALL \
       SELECT t.jid, NULL, NULL, NULL, NULL, t.version, NULL, NULL, 1 \
       FROM roster_tombstones t \
       WHERE t.account_id = (SELECT id FROM acct) AND t.version > $3 \
     ) c ON 1 = 1 \
     ORDER BY c.version, c.ordinal";

const UPSERT_PENDING: &str = "INSERT INTO roster_pending_in \
     (account_id, jid, stanza, received_at) \
     SELECT id, $3, $4, $5 FROM accounts WHERE localpart = $1 AND domain = $2 \
     ON CONFLICT (account_id, jid) DO UPDATE SET stanza = excluded.stanza, \
     received_at = excluded.received_at";
const SELECT_PENDING_ONE: &str = "SELECT p.jid, p.stanza, p.received_at \
     FROM roster_pending_in p JOIN accounts a ON a.id = p.account_id \
     WHERE a.localpart = $1 AND a.domain = $2 AND p.jid = $3";
const SELECT_PENDING_ALL: &str = "SELECT p.jid, p.stanza, p.received_at \
     FROM roster_pending_in p JOIN accounts a ON a.id = p.account_id \
     WHERE a.localpart = $1 AND a.domain = $2 ORDER BY p.received_at, p.jid";
const DELETE_PENDING: &str = "DELETE FROM roster_pending_in WHERE jid = $3 AND account_id IN \
     (SELECT id FROM accounts WHERE localpart = $1 AND domain = $2)";

impl RosterStore for Storage {
    async fn roster(&self, localpart: &str, domain: &str) -> Result<Roster, StorageError> {
        let rows = sqlx::query(SELECT_ROSTER)
            .bind(localpart)
            .bind(domain)
            .fetch_all(&self.pool)
            .await?;
        let version = match rows.first() {
            Some(row) => version_from(row.try_get("roster_version")?)?,
            None => 0,
        };
        let mut items: Vec<RosterItem> = Vec::new();
        for row in &rows {
            // The one row of an empty roster has no item.
            if let Some(jid) = row.try_get::<Option<String>, _>("jid")? {
                fold_item_row(&mut items, jid, row)?;
            }
        }
        Ok(Roster { version, items })
    }

    async fn roster_version(&self, localpart: &str, domain: &str) -> Result<u64, StorageError> {
        let version: Option<i64> = sqlx::query_scalar(SELECT_VERSION)
            .bind(localpart)
            .bind(domain)
            .fetch_optional(&self.pool)
            .await?;
        version.map_or(Ok(0), version_from)
    }

    async fn roster_changes_since(
        &self,
        localpart: &str,
        domain: &str,
        version: u64,
    ) -> Result<Option<Vec<RosterChange>>, StorageError> {
        // A version beyond i64 was never handed out; it is simply unknown.
        let Ok(since) = i64::try_from(version) else {
            return Ok(None);
        };
        let rows = sqlx::query(SELECT_CHANGES)
            .bind(localpart)
            .bind(domain)
            .bind(since)
            .fetch_all(&self.pool)
            .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let current: i64 = first.try_get("roster_version")?;
        let horizon: i64 = first.try_get("horizon")?;
        if since > current || since < horizon {
            return Ok(None);
        }

        let mut changes: Vec<RosterChange> = Vec::new();
        for row in &rows {
            // The one row of an empty delta has no change.
            let Some(jid) = row.try_get::<Option<String>, _>("jid")? else {
                continue;
            };
            let at = version_from(row.try_get("version")?)?;
            let removed: i64 = row.try_get("removed")?;
            if removed != 0 {
                changes.push(RosterChange::Removed { version: at, jid });
                continue;
            }
            match changes.last_mut() {
                // Another group of the item just read.
                Some(RosterChange::Updated { version, item }) if *version == at => {
                    item.groups.extend(row.try_get::<Option<String>, _>("grp")?);
                }
                _ => changes.push(RosterChange::Updated {
                    version: at,
                    item: item_from_row(jid, row)?,
                }),
            }
        }
        Ok(Some(changes))
    }

    async fn roster_item(
        &self,
        localpart: &str,
        domain: &str,
        jid: &str,
    ) -> Result<Option<RosterItem>, StorageError> {
        let rows = sqlx::query(SELECT_ITEM)
            .bind(localpart)
            .bind(domain)
            .bind(jid)
            .fetch_all(&self.pool)
            .await?;
        let mut items = Vec::with_capacity(1);
        for row in &rows {
            fold_item_row(&mut items, row.try_get("jid")?, row)?;
        }
        Ok(items.pop())
    }

    async fn put_roster_item(
        &self,
        localpart: &str,
        domain: &str,
        item: &RosterItem,
    ) -> Result<u64, StorageError> {
        check_distinct_groups(&item.groups)?;
        let mut tx = self.pool.begin().await?;
        let Some((account_id, version)) = bump_version(&mut tx, localpart, domain).await? else {
            tx.rollback().await?;
            return Err(StorageError::NotFound);
        };
        sqlx::query(UPSERT_ITEM)
            .bind(account_id)
            .bind(item.jid.as_str())
            .bind(item.name.as_deref())
            .bind(item.subscription.as_str())
            .bind(i16::from(item.ask))
            .bind(i16::from(item.approved))
            .bind(version)
            .execute(&mut *tx)
            .await?;
        sqlx::query(DELETE_GROUPS)
            .bind(account_id)
            .bind(item.jid.as_str())
            .execute(&mut *tx)
            .await?;
        for (ordinal, group) in (0_i64..).zip(&item.groups) {
            sqlx::query(INSERT_GROUP)
                .bind(account_id)
                .bind(item.jid.as_str())
                .bind(ordinal)
                .bind(group.as_str())
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(DELETE_TOMBSTONE)
            .bind(account_id)
            .bind(item.jid.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        version_from(version)
    }

    async fn remove_roster_item(
        &self,
        localpart: &str,
        domain: &str,
        jid: &str,
    ) -> Result<Option<u64>, StorageError> {
        let mut tx = self.pool.begin().await?;
        let Some((account_id, version)) = bump_version(&mut tx, localpart, domain).await? else {
            tx.rollback().await?;
            return Ok(None);
        };
        // The groups go with the item (ON DELETE CASCADE).
        let deleted = sqlx::query(DELETE_ITEM)
            .bind(account_id)
            .bind(jid)
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            // Undoes the bump: nothing changed, so the version must not.
            tx.rollback().await?;
            return Ok(None);
        }
        sqlx::query(UPSERT_TOMBSTONE)
            .bind(account_id)
            .bind(jid)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        let boundary: Option<i64> = sqlx::query_scalar(PRUNE_BOUNDARY)
            .bind(account_id)
            .bind(i64::from(ROSTER_REMOVALS_KEPT))
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(boundary) = boundary {
            sqlx::query(PRUNE_TOMBSTONES)
                .bind(account_id)
                .bind(boundary)
                .execute(&mut *tx)
                .await?;
            sqlx::query(RAISE_HORIZON)
                .bind(account_id)
                .bind(boundary)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        version_from(version).map(Some)
    }

    async fn add_pending_subscription(
        &self,
        localpart: &str,
        domain: &str,
        jid: &str,
        stanza: &str,
    ) -> Result<(), StorageError> {
        let done = sqlx::query(UPSERT_PENDING)
            .bind(localpart)
            .bind(domain)
            .bind(jid)
            .bind(stanza)
            .bind(now_micros()?)
            .execute(&self.pool)
            .await?;
        // The upsert writes a row whether it inserts or updates; none means
        // the SELECT found no account.
        if done.rows_affected() == 0 {
            return Err(StorageError::NotFound);
        }
        Ok(())
    }

    async fn pending_subscription(
        &self,
        localpart: &str,
        domain: &str,
        jid: &str,
    ) -> Result<Option<PendingSubscription>, StorageError> {
        let row = sqlx::query(SELECT_PENDING_ONE)
            .bind(localpart)
            .bind(domain)
            .bind(jid)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(pending_from_row).transpose()
    }

    async fn pending_subscriptions(
        &self,
        localpart: &str,
        domain: &str,
    ) -> Result<Vec<PendingSubscription>, StorageError> {
        let rows = sqlx::query(SELECT_PENDING_ALL)
            .bind(localpart)
            .bind(domain)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(pending_from_row).collect()
    }

    async fn remove_pending_subscription(
        &self,
        localpart: &str,
        domain: &str,
        jid: &str,
    ) -> Result<bool, StorageError> {
        let done = sqlx::query(DELETE_PENDING)
            .bind(localpart)
            .bind(domain)
            .bind(jid)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

/// Bumps the account's roster version; `(account id, new version)`, or
/// `None` if the account does not exist.
async fn bump_version(
    tx: &mut Transaction<'static, Any>,
    localpart: &str,
    domain: &str,
) -> Result<Option<(i64, i64)>, StorageError> {
    Ok(sqlx::query_as(BUMP_VERSION)
        .bind(localpart)
        .bind(domain)
        .fetch_optional(&mut **tx)
        .await?)
}

/// Rejects a group listed twice before the UNIQUE constraint would, which
/// would surface as AlreadyExists.
fn check_distinct_groups(groups: &[String]) -> Result<(), StorageError> {
    let mut seen = HashSet::with_capacity(groups.len());
    for group in groups {
        if !seen.insert(group.as_str()) {
            return Err(StorageError::InvalidInput(format!(
                "roster group {group:?} listed twice"
            )));
        }
    }
    Ok(())
}

/// Folds one (item, group) row into `items`: another group of the last
/// item if the JID matches (the queries keep an item's rows together), a
/// new item otherwise.
fn fold_item_row(
    items: &mut Vec<RosterItem>,
    jid: String,
    row: &AnyRow,
) -> Result<(), StorageError> {
    match items.last_mut() {
        Some(last) if last.jid == jid => {
            last.groups.extend(row.try_get::<Option<String>, _>("grp")?)
        }
        _ => items.push(item_from_row(jid, row)?),
    }
    Ok(())
}

/// The item on an (item, group) row, with that row's group if it has one.
fn item_from_row(jid: String, row: &AnyRow) -> Result<RosterItem, StorageError> {
    let subscription: String = row.try_get("subscription")?;
    let ask: i64 = row.try_get("ask")?;
    let approved: i64 = row.try_get("approved")?;
    Ok(RosterItem {
        jid,
        name: row.try_get("name")?,
        subscription: Subscription::parse(&subscription).ok_or_else(|| {
            StorageError::Database(format!("stored subscription {subscription:?} is unknown"))
        })?,
        ask: ask != 0,
        approved: approved != 0,
        groups: row
            .try_get::<Option<String>, _>("grp")?
            .into_iter()
            .collect(),
    })
}

fn pending_from_row(row: &AnyRow) -> Result<PendingSubscription, StorageError> {
    Ok(PendingSubscription {
        jid: row.try_get("jid")?,
        stanza: row.try_get("stanza")?,
        received_at: from_micros(row.try_get("received_at")?)?,
    })
}

/// A stored version as the API's u64. Versions start at 1 and only grow, so
/// a negative one means a corrupted row.
fn version_from(stored: i64) -> Result<u64, StorageError> {
    u64::try_from(stored)
        .map_err(|_| StorageError::Database(format!("negative roster version {stored}")))
}
