//! [`ArchiveStore`] on [`Storage`]: message archives (XEP-0313: Message
//! Archive Management, version 1.1.1) and archiving preferences (XEP-0441:
//! Message Archive Management Preferences, version 0.2.0).
//!
//! # One key for order, time and paging
//!
//! A message's place in its account's archive is `archived_at`, its archiving
//! time in microseconds made strictly increasing per account: storage hands
//! out `max(timestamp, newest + 1)`. One column is then the archive order
//! (XEP-0313 §3.1 wants the order messages were received, not a timestamp
//! sort with ties), the `<delay/>` stamp of a result, what `start` and `end`
//! filter on, and the RSM paging key: every query is one range over the
//! primary key `(account_id, archived_at)`, or over `(account_id, with_bare,
//! archived_at)` with a `with` filter, read in index order and cut at the
//! page size. A cursor or `before-id`/`after-id` is a lookup of the id's
//! `archived_at` in the `(account_id, stanza_id)` unique index that narrows
//! the same range. Nothing counts or sorts rows, so a page costs the same in
//! a 1M-message archive as in a 100-message one.
//!
//! Places are handed out under a per-account lock, the upsert of the
//! account's `archive_sequences` row (as for offline messages), so they
//! commit in increasing order: a reader paging "after X" never misses a
//! message that was given an earlier place but committed later.
//!
//! # Purges
//!
//! Both purges delete in batches of [`PURGE_BATCH`] rows, each its own
//! statement: deleting a year of archive in one transaction would hold
//! SQLite's write lock for seconds, and every message being archived
//! meanwhile would wait on it (and give up after the busy timeout). Each
//! batch deletes the oldest rows, so an interrupted purge leaves no holes
//! (XEP-0313 §3.2).

use std::collections::HashMap;
use std::fmt::Write as _;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::time::{from_micros, to_micros};
use crate::{
    ArchiveCursor, ArchiveDefault, ArchivePage, ArchivePrefs, ArchiveQuery, ArchiveStore,
    ArchivedMessage, Backend, Storage, StorageError,
};

/// Rows one purge statement deletes at most (see the module docs).
pub(crate) const PURGE_BATCH: i64 = 5_000;

const ACCOUNT_ID: &str = "SELECT id FROM accounts WHERE localpart = $1 AND domain = $2";
// Takes the per-account lock and hands out the first place: the message's
// own time, or one microsecond after the newest place if that is later. The
// SELECT needs its WHERE for SQLite to parse the upsert.
const NEXT_AT: &str = "INSERT INTO archive_sequences (account_id, last_at) \
     SELECT id, $3 FROM accounts WHERE localpart = $1 AND domain = $2 \
     ON CONFLICT (account_id) DO UPDATE SET last_at = CASE \
     WHEN excluded.last_at > archive_sequences.last_at THEN excluded.last_at \
     ELSE archive_sequences.last_at + 1 END \
     RETURNING account_id, last_at";
// NEXT_AT's rule for a multi-row insert of (account_id, first place).
const NEXT_AT_CONFLICT: &str = "ON CONFLICT (account_id) DO UPDATE SET last_at = CASE \
     WHEN excluded.last_at > archive_sequences.last_at THEN excluded.last_at \
     ELSE archive_sequences.last_at + 1 END \
     RETURNING account_id, last_at";
const SET_LAST_AT: &str = "UPDATE archive_sequences SET last_at = $2 WHERE account_id = $1";
const INSERT_MESSAGE: &str = "INSERT INTO archive_messages \
     (account_id, archived_at, stanza_id, with_bare, with_resource, outgoing, stanza) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";
// The archive writer's batches, several rows per statement. A batch may be
// written twice (see archive_append_batch): a stanza-id already there is
// left alone.
const INSERT_MESSAGES: &str = "INSERT INTO archive_messages \
     (account_id, archived_at, stanza_id, with_bare, with_resource, outgoing, stanza)";
/// Accounts one statement of a batch names at most (the lookup and the
/// sequence upsert), and messages one INSERT carries: 7 parameters each,
/// 448 in all, under SQLite's oldest limit of 999.
const BATCH_ACCOUNTS: usize = 64;
const BATCH_ROWS: usize = 64;
const AT_OF_ID: &str =
    "SELECT archived_at FROM archive_messages WHERE account_id = $1 AND stanza_id = $2";
const MESSAGE_BY_ID: &str = "SELECT archived_at, stanza_id, with_bare, with_resource, outgoing, \
     stanza FROM archive_messages WHERE account_id = $1 AND stanza_id = $2";

/// One page query: `$1` account, `$2..=$3` the inclusive `archived_at`
/// range, `$4` the row limit, then the `with` filter's parameters.
macro_rules! page_sql {
    ($filter:literal, $order:literal) => {
        concat!(
            "SELECT archived_at, stanza_id, with_bare, with_resource, outgoing, stanza \
             FROM archive_messages \
             WHERE account_id = $1 AND archived_at >= $2 AND archived_at <= $3",
            $filter,
            " ORDER BY archived_at ",
            $order,
            " LIMIT $4"
        )
    };
}

/// `[with filter][descending]`: no `with`, a bare JID, a full JID.
const PAGE: [[&str; 2]; 3] = [
    [page_sql!("", "ASC"), page_sql!("", "DESC")],
    [
        page_sql!(" AND with_bare = $5", "ASC"),
        page_sql!(" AND with_bare = $5", "DESC"),
    ],
    [
        page_sql!(" AND with_bare = $5 AND with_resource = $6", "ASC"),
        page_sql!(" AND with_bare = $5 AND with_resource = $6", "DESC"),
    ],
];

/// `[with filter]`, parameters as for [`PAGE`] without the limit.
const COUNT: [&str; 3] = [
    "SELECT COUNT(*) FROM archive_messages \
     WHERE account_id = $1 AND archived_at >= $2 AND archived_at <= $3",
    "SELECT COUNT(*) FROM archive_messages \
     WHERE account_id = $1 AND archived_at >= $2 AND archived_at <= $3 AND with_bare = $4",
    "SELECT COUNT(*) FROM archive_messages \
     WHERE account_id = $1 AND archived_at >= $2 AND archived_at <= $3 \
     AND with_bare = $4 AND with_resource = $5",
];

// The retention sweep: the place of the PURGE_BATCH-th oldest message below
// the cutoff, over all accounts, bounds one batch.
const OLDEST_BELOW: &str = "SELECT archived_at FROM archive_messages \
     WHERE archived_at < $1 ORDER BY archived_at LIMIT 1 OFFSET $2";
const DELETE_BELOW: &str = "DELETE FROM archive_messages WHERE archived_at < $1";
const OLDEST_OF_ACCOUNT: &str = "SELECT archived_at FROM archive_messages \
     WHERE account_id = $1 ORDER BY archived_at LIMIT 1 OFFSET $2";
const DELETE_ONE: &str = "DELETE FROM archive_messages WHERE stanza_id = $3 AND account_id IN \
     (SELECT id FROM accounts WHERE localpart = $1 AND domain = $2)";
const DELETE_ACCOUNT_UP_TO: &str =
    "DELETE FROM archive_messages WHERE account_id = $1 AND archived_at <= $2";

// One round trip for the per-message preference check: the default (NULL
// when never set) with one row per listed JID (NULL when none).
const SELECT_PREFS: &str = "SELECT p.default_mode, j.jid, j.always FROM accounts a \
     LEFT JOIN archive_prefs p ON p.account_id = a.id \
     LEFT JOIN archive_pref_jids j ON j.account_id = a.id \
     WHERE a.localpart = $1 AND a.domain = $2 ORDER BY j.jid";
// First in set_archive_prefs: its row lock serializes concurrent sets of one
// account, so their delete-and-insert of the lists cannot interleave.
const UPSERT_PREFS: &str = "INSERT INTO archive_prefs (account_id, default_mode) \
     VALUES ($1, $2) ON CONFLICT (account_id) DO UPDATE SET default_mode = excluded.default_mode";
const DELETE_PREF_JIDS: &str = "DELETE FROM archive_pref_jids WHERE account_id = $1";
const INSERT_PREF_JID: &str =
    "INSERT INTO archive_pref_jids (account_id, jid, always) VALUES ($1, $2, $3)";

/// A JID as the two stored columns: its bare part and its resource (`""`
/// for none). Normalized JIDs split at the first `/`: neither a localpart
/// nor a domainpart may contain one (RFC 7622 §3.3.1, §3.2).
pub(crate) fn split_jid(jid: &str) -> (&str, &str) {
    jid.split_once('/').unwrap_or((jid, ""))
}

/// `($1, $2), ($3, $4)`: `rows` tuples of `cols` parameters, numbered from
/// `$1` on PostgreSQL. SQLite gets anonymous `?`: it finds a named
/// parameter's number by a linear search, so binding the 448 of a full
/// INSERT by name costs more than running it.
fn value_tuples(backend: Backend, rows: usize, cols: usize) -> String {
    let mut out = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        out.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            if c > 0 {
                out.push_str(", ");
            }
            push_param(&mut out, backend, r * cols + c + 1);
        }
        out.push(')');
    }
    out
}

/// Parameter `n` (from 1) as [`value_tuples`] writes it.
fn push_param(out: &mut String, backend: Backend, n: usize) {
    match backend {
        Backend::Sqlite => out.push('?'),
        Backend::Postgres => {
            let _ = write!(out, "${n}");
        }
    }
}

/// One account's share of an archive writer's batch, in the batch's order,
/// each message with its time in microseconds.
struct Share<'a> {
    localpart: &'a str,
    domain: &'a str,
    account_id: Option<i64>,
    messages: Vec<(i64, &'a ArchivedMessage)>,
}

/// The `with` filter as its index into [`PAGE`]/[`COUNT`] and its parameters.
fn with_filter(with: Option<&str>) -> (usize, Option<(&str, &str)>) {
    match with.map(split_jid) {
        None => (0, None),
        Some((bare, "")) => (1, Some((bare, ""))),
        Some(parts) => (2, Some(parts)),
    }
}

fn message_from_row(row: &AnyRow) -> Result<(i64, ArchivedMessage), StorageError> {
    let at: i64 = row.try_get("archived_at")?;
    let bare: String = row.try_get("with_bare")?;
    let resource: String = row.try_get("with_resource")?;
    let outgoing: i64 = row.try_get("outgoing")?;
    let with = if resource.is_empty() {
        bare
    } else {
        format!("{bare}/{resource}")
    };
    Ok((
        at,
        ArchivedMessage {
            stanza_id: row.try_get("stanza_id")?,
            timestamp: from_micros(at)?,
            with,
            outgoing: outgoing != 0,
            stanza: row.try_get("stanza")?,
        },
    ))
}

async fn account_id(
    conn: &mut AnyConnection,
    localpart: &str,
    domain: &str,
) -> Result<Option<i64>, StorageError> {
    Ok(sqlx::query_scalar(ACCOUNT_ID)
        .bind(localpart)
        .bind(domain)
        .fetch_optional(conn)
        .await?)
}

/// The place of `stanza_id` in the archive, or `NotFound`.
async fn place_of(
    conn: &mut AnyConnection,
    account_id: i64,
    stanza_id: &str,
) -> Result<i64, StorageError> {
    let at: Option<i64> = sqlx::query_scalar(AT_OF_ID)
        .bind(account_id)
        .bind(stanza_id)
        .fetch_optional(conn)
        .await?;
    at.ok_or(StorageError::NotFound)
}

async fn insert_message(
    conn: &mut AnyConnection,
    account_id: i64,
    at: i64,
    message: &ArchivedMessage,
) -> Result<(), StorageError> {
    let (bare, resource) = split_jid(&message.with);
    sqlx::query(INSERT_MESSAGE)
        .bind(account_id)
        .bind(at)
        .bind(message.stanza_id.as_str())
        .bind(bare)
        .bind(resource)
        .bind(i16::from(message.outgoing))
        .bind(message.stanza.as_str())
        .execute(conn)
        .await?;
    Ok(())
}

/// The account and the inclusive `archived_at` range a query's filters
/// allow, before its cursor narrows the range further.
struct Filters {
    account_id: i64,
    lo: i64,
    hi: i64,
}

/// The query's [`Filters`], or `None` if the account does not exist.
async fn filters(
    conn: &mut AnyConnection,
    localpart: &str,
    domain: &str,
    query: &ArchiveQuery,
) -> Result<Option<Filters>, StorageError> {
    let Some(account_id) = account_id(conn, localpart, domain).await? else {
        return Ok(None);
    };
    let mut lo = match query.start {
        Some(t) => to_micros(t)?,
        None => i64::MIN,
    };
    let mut hi = match query.end {
        Some(t) => to_micros(t)?,
        None => i64::MAX,
    };
    // Exclusive bounds; an id at the end of the i64 range cannot exist, so
    // the saturating arithmetic only guards against overflow.
    if let Some(id) = &query.after_id {
        lo = lo.max(place_of(conn, account_id, id).await?.saturating_add(1));
    }
    if let Some(id) = &query.before_id {
        hi = hi.min(place_of(conn, account_id, id).await?.saturating_sub(1));
    }
    Ok(Some(Filters { account_id, lo, hi }))
}

/// Takes `limit + 1` rows read in paging order and makes the page: at most
/// `limit` messages in chronological order, and whether nothing more lies
/// in the paging direction.
pub(crate) fn page_from(
    mut rows: Vec<ArchivedMessage>,
    limit: usize,
    descending: bool,
) -> ArchivePage {
    let complete = rows.len() <= limit;
    rows.truncate(limit);
    if descending {
        rows.reverse();
    }
    ArchivePage {
        messages: rows,
        complete,
    }
}

/// The `ids` form of a query: a handful of lookups by id, filtered and
/// paged in memory.
async fn query_ids(
    conn: &mut AnyConnection,
    f: &Filters,
    query: &ArchiveQuery,
    lo: i64,
    hi: i64,
    descending: bool,
) -> Result<ArchivePage, StorageError> {
    let with = query.with.as_deref().map(split_jid);
    let mut found: Vec<(i64, ArchivedMessage)> = Vec::with_capacity(query.ids.len());
    for id in &query.ids {
        let row = sqlx::query(MESSAGE_BY_ID)
            .bind(f.account_id)
            .bind(id.as_str())
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(StorageError::NotFound)?;
        found.push(message_from_row(&row)?);
    }
    found.sort_by_key(|(at, _)| *at);
    found.dedup_by_key(|(at, _)| *at);
    let mut rows: Vec<ArchivedMessage> = found
        .into_iter()
        .filter(|(at, m)| {
            (lo..=hi).contains(at)
                && with.is_none_or(|(bare, resource)| {
                    let (b, r) = split_jid(&m.with);
                    b == bare && (resource.is_empty() || r == resource)
                })
        })
        .map(|(_, m)| m)
        .collect();
    if descending {
        rows.reverse();
    }
    let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
    rows.truncate(limit.saturating_add(1));
    Ok(page_from(rows, limit, descending))
}

impl ArchiveStore for Storage {
    async fn archive_append(
        &self,
        localpart: &str,
        domain: &str,
        message: &ArchivedMessage,
    ) -> Result<(), StorageError> {
        self.archive_append_many(localpart, domain, std::slice::from_ref(message))
            .await
    }

    async fn archive_append_many(
        &self,
        localpart: &str,
        domain: &str,
        messages: &[ArchivedMessage],
    ) -> Result<(), StorageError> {
        let Some(first) = messages.first() else {
            return Ok(());
        };
        let mut tx = self.pool.begin().await?;
        let placed: Option<(i64, i64)> = sqlx::query_as(NEXT_AT)
            .bind(localpart)
            .bind(domain)
            .bind(to_micros(first.timestamp)?)
            .fetch_optional(&mut *tx)
            .await?;
        let Some((account_id, mut at)) = placed else {
            tx.rollback().await?;
            return Err(StorageError::NotFound);
        };
        // A unique violation (a taken stanza-id) returns early and drops
        // the transaction, which rolls everything back, the place included.
        insert_message(&mut tx, account_id, at, first).await?;
        for m in &messages[1..] {
            at = to_micros(m.timestamp)?.max(at.saturating_add(1));
            insert_message(&mut tx, account_id, at, m).await?;
        }
        if messages.len() > 1 {
            sqlx::query(SET_LAST_AT)
                .bind(account_id)
                .bind(at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn archive_append_batch(
        &self,
        batch: &[(&str, &str, &ArchivedMessage)],
    ) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        // Each account's share of the batch, in the batch's order: one
        // place is reserved per account, and the rest follow it.
        let mut shares: Vec<Share<'_>> = Vec::new();
        let mut by_account: HashMap<(&str, &str), usize> = HashMap::new();
        for &(localpart, domain, message) in batch {
            let at = to_micros(message.timestamp)?;
            let i = *by_account.entry((localpart, domain)).or_insert_with(|| {
                shares.push(Share {
                    localpart,
                    domain,
                    account_id: None,
                    messages: Vec::new(),
                });
                shares.len() - 1
            });
            shares[i].messages.push((at, message));
        }
        // The batch reads (the account lookup) before it writes. On SQLite
        // a transaction that starts as a reader cannot become a writer once
        // another connection has committed since ("database is locked" at
        // once, without the busy timeout): take the write lock up front.
        let mut tx = match self.backend() {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        for start in (0..shares.len()).step_by(BATCH_ACCOUNTS) {
            let chunk = &shares[start..shares.len().min(start + BATCH_ACCOUNTS)];
            let mut sql = String::from("SELECT id, localpart, domain FROM accounts WHERE ");
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push_str(" OR ");
                }
                let _ = write!(
                    sql,
                    "(localpart = ${} AND domain = ${})",
                    2 * i + 1,
                    2 * i + 2
                );
            }
            let mut q = sqlx::query_as::<_, (i64, String, String)>(&sql);
            for share in chunk {
                q = q.bind(share.localpart).bind(share.domain);
            }
            let found = q.fetch_all(&mut *tx).await?;
            for (id, localpart, domain) in found {
                if let Some(&i) = by_account.get(&(localpart.as_str(), domain.as_str())) {
                    shares[i].account_id = Some(id);
                }
            }
        }
        // Accounts deleted while their messages were on the way have
        // nothing to keep. The rest take their sequence rows' locks in
        // account order, so two writers cannot deadlock on PostgreSQL.
        let mut placed: Vec<(i64, &Share<'_>)> = shares
            .iter()
            .filter_map(|s| Some((s.account_id?, s)))
            .collect();
        placed.sort_unstable_by_key(|(id, _)| *id);
        let mut first_at: HashMap<i64, i64> = HashMap::with_capacity(placed.len());
        for chunk in placed.chunks(BATCH_ACCOUNTS) {
            let sql = format!(
                "INSERT INTO archive_sequences (account_id, last_at) VALUES {} {}",
                value_tuples(self.backend(), chunk.len(), 2),
                NEXT_AT_CONFLICT
            );
            let mut q = sqlx::query_as::<_, (i64, i64)>(&sql);
            for (id, share) in chunk {
                let first = share.messages.first().map_or(0, |(at, _)| *at);
                q = q.bind(*id).bind(first);
            }
            first_at.extend(q.fetch_all(&mut *tx).await?);
        }
        let mut rows: Vec<(i64, i64, &ArchivedMessage)> = Vec::with_capacity(batch.len());
        for (id, share) in &placed {
            let Some(&first) = first_at.get(id) else {
                return Err(StorageError::NotFound);
            };
            let mut at = first;
            for (n, (time, message)) in share.messages.iter().enumerate() {
                if n > 0 {
                    at = (*time).max(at.saturating_add(1));
                }
                rows.push((*id, at, message));
            }
            if share.messages.len() > 1 {
                sqlx::query(SET_LAST_AT)
                    .bind(*id)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        for chunk in rows.chunks(BATCH_ROWS) {
            let sql = format!(
                "{INSERT_MESSAGES} VALUES {} ON CONFLICT (account_id, stanza_id) DO NOTHING",
                value_tuples(self.backend(), chunk.len(), 7)
            );
            let mut q = sqlx::query(&sql);
            for (id, at, message) in chunk {
                let (bare, resource) = split_jid(&message.with);
                q = q
                    .bind(*id)
                    .bind(*at)
                    .bind(message.stanza_id.as_str())
                    .bind(bare)
                    .bind(resource)
                    .bind(i16::from(message.outgoing))
                    .bind(message.stanza.as_str());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn archive_query(
        &self,
        localpart: &str,
        domain: &str,
        query: &ArchiveQuery,
    ) -> Result<ArchivePage, StorageError> {
        let mut conn = self.pool.acquire().await?;
        let Some(f) = filters(&mut conn, localpart, domain, query).await? else {
            return Ok(ArchivePage {
                messages: Vec::new(),
                complete: true,
            });
        };
        let (mut lo, mut hi) = (f.lo, f.hi);
        let descending = match &query.cursor {
            ArchiveCursor::First => false,
            ArchiveCursor::Last => true,
            ArchiveCursor::After(id) => {
                lo = lo.max(
                    place_of(&mut conn, f.account_id, id)
                        .await?
                        .saturating_add(1),
                );
                false
            }
            ArchiveCursor::Before(id) => {
                hi = hi.min(
                    place_of(&mut conn, f.account_id, id)
                        .await?
                        .saturating_sub(1),
                );
                true
            }
        };
        if !query.ids.is_empty() {
            return query_ids(&mut conn, &f, query, lo, hi, descending).await;
        }
        if lo > hi {
            return Ok(ArchivePage {
                messages: Vec::new(),
                complete: true,
            });
        }
        let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
        let (variant, with) = with_filter(query.with.as_deref());
        let mut q = sqlx::query(PAGE[variant][usize::from(descending)])
            .bind(f.account_id)
            .bind(lo)
            .bind(hi)
            // One row past the page tells whether the page is the last.
            .bind(i64::from(query.limit) + 1);
        if let Some((bare, resource)) = with {
            q = q.bind(bare);
            if variant == 2 {
                q = q.bind(resource);
            }
        }
        let rows = q.fetch_all(&mut *conn).await?;
        let rows = rows
            .iter()
            .map(|r| message_from_row(r).map(|(_, m)| m))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page_from(rows, limit, descending))
    }

    async fn archive_count(
        &self,
        localpart: &str,
        domain: &str,
        query: &ArchiveQuery,
    ) -> Result<u64, StorageError> {
        if !query.ids.is_empty() {
            // Bounded by the number of ids: count the unpaged result.
            let mut all = query.clone();
            all.cursor = ArchiveCursor::First;
            all.limit = u32::try_from(query.ids.len()).unwrap_or(u32::MAX);
            let page = self.archive_query(localpart, domain, &all).await?;
            return Ok(page.messages.len() as u64);
        }
        let mut conn = self.pool.acquire().await?;
        let Some(f) = filters(&mut conn, localpart, domain, query).await? else {
            return Ok(0);
        };
        if f.lo > f.hi {
            return Ok(0);
        }
        let (variant, with) = with_filter(query.with.as_deref());
        let mut q = sqlx::query_scalar::<_, i64>(COUNT[variant])
            .bind(f.account_id)
            .bind(f.lo)
            .bind(f.hi);
        if let Some((bare, resource)) = with {
            q = q.bind(bare);
            if variant == 2 {
                q = q.bind(resource);
            }
        }
        let n = q.fetch_one(&mut *conn).await?;
        u64::try_from(n).map_err(|_| StorageError::Database(format!("negative count {n}")))
    }

    async fn archive_purge_older_than(
        &self,
        cutoff: std::time::SystemTime,
    ) -> Result<u64, StorageError> {
        let cutoff = to_micros(cutoff)?;
        let mut deleted = 0;
        loop {
            let bound: Option<i64> = sqlx::query_scalar(OLDEST_BELOW)
                .bind(cutoff)
                .bind(PURGE_BATCH - 1)
                .fetch_optional(&self.pool)
                .await?;
            // Up to and including the batch's newest place (ties across
            // accounts make the batch slightly larger, never empty); without
            // one, fewer than a batch remain: all of them.
            let below = bound.map_or(cutoff, |b| b.saturating_add(1).min(cutoff));
            deleted += sqlx::query(DELETE_BELOW)
                .bind(below)
                .execute(&self.pool)
                .await?
                .rows_affected();
            if bound.is_none() {
                return Ok(deleted);
            }
        }
    }

    async fn archive_remove(
        &self,
        localpart: &str,
        domain: &str,
        stanza_id: &str,
    ) -> Result<bool, StorageError> {
        let done = sqlx::query(DELETE_ONE)
            .bind(localpart)
            .bind(domain)
            .bind(stanza_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn archive_purge_account(
        &self,
        localpart: &str,
        domain: &str,
    ) -> Result<u64, StorageError> {
        let mut conn = self.pool.acquire().await?;
        let Some(account_id) = account_id(&mut conn, localpart, domain).await? else {
            return Ok(0);
        };
        let mut deleted = 0;
        loop {
            let bound: Option<i64> = sqlx::query_scalar(OLDEST_OF_ACCOUNT)
                .bind(account_id)
                .bind(PURGE_BATCH - 1)
                .fetch_optional(&mut *conn)
                .await?;
            deleted += sqlx::query(DELETE_ACCOUNT_UP_TO)
                .bind(account_id)
                .bind(bound.unwrap_or(i64::MAX))
                .execute(&mut *conn)
                .await?
                .rows_affected();
            if bound.is_none() {
                return Ok(deleted);
            }
        }
    }

    async fn archive_prefs(
        &self,
        localpart: &str,
        domain: &str,
    ) -> Result<Option<ArchivePrefs>, StorageError> {
        if let Some(prefs) = self.cache.prefs(localpart, domain) {
            return Ok(prefs);
        }
        let generation = self.cache.generation();
        let prefs = self.archive_prefs_db(localpart, domain).await?;
        self.cache
            .put_prefs(localpart, domain, generation, prefs.clone());
        Ok(prefs)
    }

    async fn set_archive_prefs(
        &self,
        localpart: &str,
        domain: &str,
        prefs: &ArchivePrefs,
    ) -> Result<(), StorageError> {
        self.cache.invalidate(localpart, domain);
        let r: Result<(), StorageError> = async {
            let mut always: Vec<&str> = prefs.always.iter().map(String::as_str).collect();
            let mut never: Vec<&str> = prefs.never.iter().map(String::as_str).collect();
            always.sort_unstable();
            always.dedup();
            never.sort_unstable();
            never.dedup();
            if let Some(both) = always.iter().find(|j| never.binary_search(j).is_ok()) {
                return Err(StorageError::InvalidInput(format!(
                    "{both} is on both the always and the never list"
                )));
            }
            let mut tx = self.pool.begin().await?;
            let Some(account_id) = account_id(&mut tx, localpart, domain).await? else {
                tx.rollback().await?;
                return Err(StorageError::NotFound);
            };
            sqlx::query(UPSERT_PREFS)
                .bind(account_id)
                .bind(prefs.default.as_str())
                .execute(&mut *tx)
                .await?;
            sqlx::query(DELETE_PREF_JIDS)
                .bind(account_id)
                .execute(&mut *tx)
                .await?;
            for (list, flag) in [(&always, 1i16), (&never, 0i16)] {
                for jid in list.iter() {
                    sqlx::query(INSERT_PREF_JID)
                        .bind(account_id)
                        .bind(*jid)
                        .bind(flag)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            Ok(())
        }
        .await;
        self.cache.invalidate(localpart, domain);
        r
    }
}

impl Storage {
    /// The preferences as stored, bypassing the cache.
    async fn archive_prefs_db(
        &self,
        localpart: &str,
        domain: &str,
    ) -> Result<Option<ArchivePrefs>, StorageError> {
        let rows = sqlx::query(SELECT_PREFS)
            .bind(localpart)
            .bind(domain)
            .fetch_all(&self.pool)
            .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let Some(mode) = first.try_get::<Option<String>, _>("default_mode")? else {
            return Ok(None);
        };
        let default = ArchiveDefault::parse(&mode)
            .ok_or_else(|| StorageError::Database(format!("unknown archiving default `{mode}`")))?;
        let mut prefs = ArchivePrefs {
            default,
            always: Vec::new(),
            never: Vec::new(),
        };
        for row in &rows {
            let Some(jid) = row.try_get::<Option<String>, _>("jid")? else {
                continue;
            };
            let always: Option<i64> = row.try_get("always")?;
            if always == Some(1) {
                prefs.always.push(jid);
            } else {
                prefs.never.push(jid);
            }
        }
        Ok(Some(prefs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jids_split_at_the_first_slash() {
        assert_eq!(split_jid("a@b"), ("a@b", ""));
        assert_eq!(split_jid("a@b/r/s"), ("a@b", "r/s"));
        assert_eq!(split_jid("b/r"), ("b", "r"));
    }

    #[test]
    fn page_sql_variants_have_their_parameters() {
        assert!(PAGE[0][0].ends_with("ORDER BY archived_at ASC LIMIT $4"));
        assert!(PAGE[1][1].contains("with_bare = $5") && !PAGE[1][1].contains("$6"));
        assert!(PAGE[2][0].contains("with_resource = $6"));
    }
}
