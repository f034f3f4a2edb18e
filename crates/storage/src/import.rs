//! [`ImportStore`] on [`Storage`]: whole accounts created in batches, for
//! XEP-0227 version 1.1 (PIEFXIS) imports.
//!
//! Two costs dominate a naive import, and both are paid once per batch
//! here instead of once per row:
//! - the commit: one transaction per batch, since a commit costs an fsync
//!   on SQLite and a round trip plus a WAL flush on PostgreSQL;
//! - the statement: rows go in multi-row `INSERT ... VALUES (...), (...)`
//!   statements of [`ROWS`] rows, because each statement is a round trip
//!   to PostgreSQL or a hop to sqlx's SQLite worker thread, which for the
//!   ten or so rows of an account cost more than the rows themselves.
//!
//! Each multi-row statement is built once, at first use, from the same
//! text on both backends (`$N` placeholders, no dialect functions), and
//! rows that do not fill one go through the single-row form. The rows
//! written are exactly those the per-store methods would write for the same
//! data, so nothing downstream can tell an imported account from one built
//! up by hand: roster items carry distinct versions (roster deltas rely on
//! one JID per version), and the offline sequence starts past the imported
//! messages' ids.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, Row, Transaction};

use crate::accounts::check_distinct_hashes;
use crate::time::to_micros;
use crate::{ImportOutcome, ImportStore, ImportedAccount, Storage, StorageError};

/// Rows per multi-row statement: the largest (roster items, 7 columns)
/// binds 448 values, far below SQLite's 32766 and PostgreSQL's 65535.
const ROWS: usize = 64;

/// `head VALUES row, row, ...` with `rows` copies of `row`, whose `?`s
/// become `$1`, `$2`... in order.
fn values(head: &str, row: &str, rows: usize) -> String {
    let mut sql = format!("{head} VALUES ");
    let mut n = 0;
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        for c in row.chars() {
            if c == '?' {
                n += 1;
                sql.push_str(&format!("${n}"));
            } else {
                sql.push(c);
            }
        }
    }
    sql
}

/// One table's insert, in its single-row and [`ROWS`]-row forms.
struct Insert {
    one: LazyLock<String>,
    many: LazyLock<String>,
}

macro_rules! insert {
    ($head:expr, $row:expr) => {
        Insert {
            one: LazyLock::new(|| values($head, $row, 1)),
            many: LazyLock::new(|| values($head, $row, ROWS)),
        }
    };
    ($head:expr, $row:expr, $tail:expr) => {
        Insert {
            one: LazyLock::new(|| format!("{} {}", values($head, $row, 1), $tail)),
            many: LazyLock::new(|| format!("{} {}", values($head, $row, ROWS), $tail)),
        }
    };
}

// No conflict target: the only unique key on accounts besides the id is
// (domain, localpart), and this form parses on both backends. Accounts
// that exist come back as no row.
static ACCOUNTS: Insert = insert!(
    "INSERT INTO accounts (localpart, domain)",
    "(?, ?)",
    "ON CONFLICT DO NOTHING RETURNING id, localpart, domain"
);
static CREDENTIALS: Insert = insert!(
    "INSERT INTO scram_credentials \
     (account_id, hash, salt, iterations, stored_key, server_key)",
    "(?, ?, ?, ?, ?, ?)"
);
static ROSTER_VERSIONS: Insert = insert!(
    "INSERT INTO roster_versions (account_id, version, horizon)",
    "(?, ?, 0)"
);
static ROSTER_ITEMS: Insert = insert!(
    "INSERT INTO roster_items \
     (account_id, jid, name, subscription, ask, approved, version)",
    "(?, ?, ?, ?, ?, ?, ?)"
);
static ROSTER_GROUPS: Insert = insert!(
    "INSERT INTO roster_groups (account_id, jid, ordinal, name)",
    "(?, ?, ?, ?)"
);
static VCARDS: Insert = insert!("INSERT INTO vcards (account_id, vcard)", "(?, ?)");
static PRIVATE: Insert = insert!(
    "INSERT INTO private_xml (account_id, name, namespace, xml)",
    "(?, ?, ?, ?)"
);
static OFFLINE_SEQUENCES: Insert = insert!(
    "INSERT INTO offline_sequences (account_id, last_id)",
    "(?, ?)"
);
static OFFLINE: Insert = insert!(
    "INSERT INTO offline_messages (account_id, id, stored_at, stanza)",
    "(?, ?, ?, ?)"
);
// The IN list has ROWS slots; a shorter list repeats its last name.
static EXISTING: LazyLock<String> = LazyLock::new(|| {
    let slots: Vec<String> = (2..ROWS + 2).map(|n| format!("${n}")).collect();
    format!(
        "SELECT localpart FROM accounts WHERE domain = $1 AND localpart IN ({})",
        slots.join(", ")
    )
});

type AnyQuery<'q> = Query<'q, Any, AnyArguments<'q>>;

/// Runs `insert` for every row, [`ROWS`] at a time, the rest one by one.
async fn insert_rows<'q, R>(
    tx: &mut Transaction<'static, Any>,
    insert: &'static Insert,
    rows: &'q [R],
    bind: impl Fn(AnyQuery<'q>, &'q R) -> AnyQuery<'q>,
) -> Result<(), StorageError> {
    let mut chunks = rows.chunks_exact(ROWS);
    for chunk in &mut chunks {
        let mut query = sqlx::query(insert.many.as_str());
        for row in chunk {
            query = bind(query, row);
        }
        query.execute(&mut **tx).await?;
    }
    for row in chunks.remainder() {
        bind(sqlx::query(insert.one.as_str()), row)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

impl ImportStore for Storage {
    async fn import_accounts(
        &self,
        accounts: &[ImportedAccount],
    ) -> Result<Vec<ImportOutcome>, StorageError> {
        self.cache.clear();
        let r: Result<Vec<ImportOutcome>, StorageError> = async {
            // Everything that would fail half-way through is checked before the
            // transaction starts, so a bad account cannot cost the batch a
            // rollback after thousands of rows.
            for account in accounts {
                check(account)?;
            }
            // The first appearance of a name is the one created.
            let mut seen = HashSet::with_capacity(accounts.len());
            let firsts: Vec<&ImportedAccount> = accounts
                .iter()
                .filter(|a| seen.insert((a.localpart.as_str(), a.domain.as_str())))
                .collect();

            let mut tx = self.pool.begin().await?;
            let mut ids: HashMap<(String, String), i64> = HashMap::with_capacity(firsts.len());
            {
                let mut chunks = firsts.chunks_exact(ROWS);
                let mut take = |rows: Vec<sqlx::any::AnyRow>| -> Result<(), StorageError> {
                    for row in rows {
                        ids.insert(
                            (row.try_get("localpart")?, row.try_get("domain")?),
                            row.try_get("id")?,
                        );
                    }
                    Ok(())
                };
                for chunk in &mut chunks {
                    let mut query = sqlx::query(ACCOUNTS.many.as_str());
                    for a in chunk {
                        query = query.bind(a.localpart.as_str()).bind(a.domain.as_str());
                    }
                    take(query.fetch_all(&mut *tx).await?)?;
                }
                for a in chunks.remainder() {
                    let query = sqlx::query(ACCOUNTS.one.as_str())
                        .bind(a.localpart.as_str())
                        .bind(a.domain.as_str());
                    take(query.fetch_all(&mut *tx).await?)?;
                }
            }

            // Everything else, table by table, for the accounts just created.
            let mut created: Vec<(i64, &ImportedAccount)> = Vec::with_capacity(firsts.len());
            for a in &firsts {
                if let Some(id) = ids.remove(&(a.localpart.clone(), a.domain.clone())) {
                    created.push((id, a));
                }
            }
            let mut credentials = Vec::new();
            let mut versions = Vec::new();
            let mut items = Vec::new();
            let mut groups = Vec::new();
            let mut vcards = Vec::new();
            let mut private = Vec::new();
            let mut sequences = Vec::new();
            let mut offline = Vec::new();
            for &(id, a) in &created {
                credentials.extend(a.credentials.iter().map(|c| (id, c)));
                for (item, version) in a.roster.iter().zip(1_i64..) {
                    items.push((id, item, version));
                    groups.extend((0_i64..).zip(&item.groups).map(|(o, g)| (id, item, o, g)));
                }
                if !a.roster.is_empty() {
                    versions.push((id, a.roster.len() as i64));
                }
                vcards.extend(a.vcard.iter().map(|v| (id, v)));
                private.extend(a.private.iter().map(|f| (id, f)));
                for (m, n) in a.offline.iter().zip(1_i64..) {
                    offline.push((id, n, to_micros(m.stored_at)?, m));
                }
                if !a.offline.is_empty() {
                    // The next message stored the ordinary way follows these.
                    sequences.push((id, a.offline.len() as i64));
                }
            }
            insert_rows(&mut tx, &CREDENTIALS, &credentials, |q, (id, c)| {
                q.bind(*id)
                    .bind(c.hash.as_str())
                    .bind(c.salt.as_slice())
                    .bind(i64::from(c.iterations))
                    .bind(c.stored_key.as_slice())
                    .bind(c.server_key.as_slice())
            })
            .await?;
            insert_rows(&mut tx, &ROSTER_ITEMS, &items, |q, (id, item, version)| {
                q.bind(*id)
                    .bind(item.jid.as_str())
                    .bind(item.name.as_deref())
                    .bind(item.subscription.as_str())
                    .bind(i16::from(item.ask))
                    .bind(i16::from(item.approved))
                    .bind(*version)
            })
            .await?;
            insert_rows(&mut tx, &ROSTER_GROUPS, &groups, |q, (id, item, o, g)| {
                q.bind(*id)
                    .bind(item.jid.as_str())
                    .bind(*o)
                    .bind(g.as_str())
            })
            .await?;
            insert_rows(&mut tx, &ROSTER_VERSIONS, &versions, |q, (id, v)| {
                q.bind(*id).bind(*v)
            })
            .await?;
            insert_rows(&mut tx, &VCARDS, &vcards, |q, (id, v)| {
                q.bind(*id).bind(v.as_str())
            })
            .await?;
            insert_rows(&mut tx, &PRIVATE, &private, |q, (id, f)| {
                q.bind(*id)
                    .bind(f.name.as_str())
                    .bind(f.namespace.as_str())
                    .bind(f.xml.as_str())
            })
            .await?;
            insert_rows(&mut tx, &OFFLINE, &offline, |q, (id, n, at, m)| {
                q.bind(*id).bind(*n).bind(*at).bind(m.stanza.as_str())
            })
            .await?;
            insert_rows(&mut tx, &OFFLINE_SEQUENCES, &sequences, |q, (id, n)| {
                q.bind(*id).bind(*n)
            })
            .await?;
            // PEP nodes are few per account: one statement each, which
            // gives the node's id for its rows.
            for &(id, a) in &created {
                let service = format!("{}@{}", a.localpart, a.domain);
                for n in &a.pep {
                    let node_id: i64 = sqlx::query_scalar(PEP_NODE)
                        .bind(service.as_str())
                        .bind(n.node.as_str())
                        .bind(id)
                        .bind(n.config.as_str())
                        .fetch_one(&mut *tx)
                        .await?;
                    let owner = (service.clone(), "owner".to_owned());
                    for (jid, affiliation) in std::iter::once(&owner)
                        .chain(n.affiliations.iter().filter(|(j, _)| *j != service))
                    {
                        sqlx::query(PEP_AFFILIATION)
                            .bind(node_id)
                            .bind(jid.as_str())
                            .bind(affiliation.as_str())
                            .execute(&mut *tx)
                            .await?;
                    }
                    for sub in &n.subscriptions {
                        sqlx::query(PEP_SUBSCRIPTION)
                            .bind(node_id)
                            .bind(sub.jid.as_str())
                            .bind(sub.subid.as_str())
                            .bind(sub.state.as_str())
                            .bind(sub.options.as_str())
                            .execute(&mut *tx)
                            .await?;
                    }
                    for (item, seq) in n.items.iter().zip(1_i64..) {
                        sqlx::query(PEP_ITEM)
                            .bind(node_id)
                            .bind(item.id.as_str())
                            .bind(item.publisher.as_str())
                            .bind(item.payload.as_str())
                            .bind(seq)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
            }
            tx.commit().await?;

            let made: HashSet<(&str, &str)> = created
                .iter()
                .map(|(_, a)| (a.localpart.as_str(), a.domain.as_str()))
                .collect();
            // Only the first appearance of a created name counts as created.
            let mut reported = HashSet::with_capacity(made.len());
            Ok(accounts
                .iter()
                .map(|a| {
                    let key = (a.localpart.as_str(), a.domain.as_str());
                    if made.contains(&key) && reported.insert(key) {
                        ImportOutcome::Created
                    } else {
                        ImportOutcome::AlreadyExists
                    }
                })
                .collect())
        }
        .await;
        self.cache.clear();
        r
    }

    async fn existing_accounts(
        &self,
        domain: &str,
        localparts: &[String],
    ) -> Result<HashSet<String>, StorageError> {
        let mut found = HashSet::new();
        for chunk in localparts.chunks(ROWS) {
            let mut query = sqlx::query_scalar::<Any, String>(EXISTING.as_str()).bind(domain);
            for i in 0..ROWS {
                // The slots past the chunk repeat its last name.
                let name = chunk.get(i).or(chunk.last()).map_or("", String::as_str);
                query = query.bind(name);
            }
            found.extend(query.fetch_all(&self.pool).await?);
        }
        Ok(found)
    }
}

const PEP_NODE: &str = "INSERT INTO pubsub_nodes (service, node, account_id, config) \
     VALUES ($1, $2, $3, $4) RETURNING id";
const PEP_AFFILIATION: &str =
    "INSERT INTO pubsub_affiliations (node_id, jid, affiliation) VALUES ($1, $2, $3)";
const PEP_SUBSCRIPTION: &str = "INSERT INTO pubsub_subscriptions \
     (node_id, jid, subid, state, options) VALUES ($1, $2, $3, $4, $5)";
const PEP_ITEM: &str = "INSERT INTO pubsub_items (node_id, item_id, publisher, payload, seq) \
     VALUES ($1, $2, $3, $4, $5)";

/// The [`ImportStore::import_accounts`] preconditions for one account.
fn check(account: &ImportedAccount) -> Result<(), StorageError> {
    let who = || format!("{}@{}", account.localpart, account.domain);
    check_distinct_hashes(&account.credentials)?;
    let mut jids = HashSet::with_capacity(account.roster.len());
    for item in &account.roster {
        if !jids.insert(item.jid.as_str()) {
            return Err(StorageError::InvalidInput(format!(
                "{}: roster item {} listed twice",
                who(),
                item.jid
            )));
        }
        let mut groups = HashSet::with_capacity(item.groups.len());
        for group in &item.groups {
            if !groups.insert(group.as_str()) {
                return Err(StorageError::InvalidInput(format!(
                    "{}: roster group {group:?} listed twice for {}",
                    who(),
                    item.jid
                )));
            }
        }
    }
    let mut nodes = HashSet::with_capacity(account.pep.len());
    for n in &account.pep {
        let twice = |what: String| {
            Err(StorageError::InvalidInput(format!(
                "{}: PEP node {}: {what} listed twice",
                who(),
                n.node
            )))
        };
        if !nodes.insert(n.node.as_str()) {
            return twice("the node".to_owned());
        }
        let mut ids = HashSet::with_capacity(n.items.len());
        if let Some(item) = n.items.iter().find(|i| !ids.insert(i.id.as_str())) {
            return twice(format!("item {}", item.id));
        }
        let mut jids = HashSet::with_capacity(n.affiliations.len());
        if let Some((jid, _)) = n
            .affiliations
            .iter()
            .find(|(j, _)| !jids.insert(j.as_str()))
        {
            return twice(format!("the affiliation of {jid}"));
        }
        let mut subs = HashSet::with_capacity(n.subscriptions.len());
        if let Some(sub) = n
            .subscriptions
            .iter()
            .find(|s| !subs.insert((s.jid.as_str(), s.subid.as_str())))
        {
            return twice(format!("the subscription of {}", sub.jid));
        }
    }
    let mut keys = HashSet::with_capacity(account.private.len());
    for fragment in &account.private {
        if !keys.insert((fragment.name.as_str(), fragment.namespace.as_str())) {
            return Err(StorageError::InvalidInput(format!(
                "{}: private XML {{{}}}{} listed twice",
                who(),
                fragment.namespace,
                fragment.name
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_numbers_placeholders_in_order() {
        assert_eq!(
            values("INSERT INTO t (a, b, c)", "(?, ?, 0)", 2),
            "INSERT INTO t (a, b, c) VALUES ($1, $2, 0), ($3, $4, 0)"
        );
        assert!(EXISTING.ends_with(&format!("${})", ROWS + 1)));
    }
}
