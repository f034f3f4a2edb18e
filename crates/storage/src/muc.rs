//! [`MucStore`] on [`Storage`]: persistent rooms (XEP-0045), one row each,
//! and room archives (XEP-0313), paged the way `archive.rs` pages an
//! account's (see there for why a place is one column).

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::archive::{page_from, split_jid};
use crate::time::{from_micros, to_micros};
use crate::{
    ArchiveCursor, ArchivePage, ArchiveQuery, ArchivedMessage, MucStore, Storage, StorageError,
    StoredRoom,
};

const SELECT_ROOM: &str = "SELECT jid, service, name, public, state FROM muc_rooms WHERE jid = $1";
const SELECT_ROOMS: &str = "SELECT jid, service, name, public, state FROM muc_rooms \
     WHERE service = $1 AND ($2 = 0 OR public = 1) ORDER BY jid";
const UPSERT_ROOM: &str = "INSERT INTO muc_rooms (jid, service, name, public, state) \
     VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (jid) DO UPDATE SET service = excluded.service, name = excluded.name, \
     public = excluded.public, state = excluded.state";
const DELETE_ROOM: &str = "DELETE FROM muc_rooms WHERE jid = $1";

// The next place: the message's own time, or one microsecond after the
// newest; nothing when the stanza-id is already there. The SELECT needs
// its WHERE for SQLite to parse the INSERT.
const APPEND: &str = "INSERT INTO muc_messages (room, archived_at, stanza_id, nick, stanza) \
     SELECT $1, CASE WHEN m.last IS NULL OR m.last < $2 THEN $2 ELSE m.last + 1 END, $3, $4, $5 \
     FROM (SELECT MAX(archived_at) AS last FROM muc_messages WHERE room = $1) m \
     WHERE NOT EXISTS (SELECT 1 FROM muc_messages WHERE room = $1 AND stanza_id = $3)";
const AT_OF_ID: &str = "SELECT archived_at FROM muc_messages WHERE room = $1 AND stanza_id = $2";
const BY_ID: &str = "SELECT archived_at, stanza_id, nick, stanza FROM muc_messages \
     WHERE room = $1 AND stanza_id = $2";
const DELETE_ARCHIVE: &str = "DELETE FROM muc_messages WHERE room = $1";
const REPLACE: &str = "UPDATE muc_messages SET stanza = $3 WHERE room = $1 AND stanza_id = $2";

/// One page: `$1` room, `$2..=$3` the inclusive range, `$4` the row limit,
/// `$5` the nick.
macro_rules! page_sql {
    ($filter:literal, $order:literal) => {
        concat!(
            "SELECT archived_at, stanza_id, nick, stanza FROM muc_messages \
             WHERE room = $1 AND archived_at >= $2 AND archived_at <= $3",
            $filter,
            " ORDER BY archived_at ",
            $order,
            " LIMIT $4"
        )
    };
}

/// `[nick filter][descending]`.
const PAGE: [[&str; 2]; 2] = [
    [page_sql!("", "ASC"), page_sql!("", "DESC")],
    [
        page_sql!(" AND nick = $5", "ASC"),
        page_sql!(" AND nick = $5", "DESC"),
    ],
];
const COUNT: [&str; 2] = [
    "SELECT COUNT(*) FROM muc_messages WHERE room = $1 AND archived_at >= $2 AND archived_at <= $3",
    "SELECT COUNT(*) FROM muc_messages WHERE room = $1 AND archived_at >= $2 AND archived_at <= $3 \
     AND nick = $4",
];

fn archived_from_row(room: &str, row: &AnyRow) -> Result<(i64, ArchivedMessage), StorageError> {
    let at: i64 = row.try_get("archived_at")?;
    let nick: String = row.try_get("nick")?;
    Ok((
        at,
        ArchivedMessage {
            stanza_id: row.try_get("stanza_id")?,
            timestamp: from_micros(at)?,
            with: format!("{room}/{nick}"),
            outgoing: false,
            stanza: row.try_get("stanza")?,
        },
    ))
}

/// What a `with` filter asks of a room's archive: nothing (None), a nick,
/// or nothing at all when it names another entity (Err).
fn nick_filter<'a>(room: &str, with: Option<&'a str>) -> Result<Option<&'a str>, ()> {
    match with.map(split_jid) {
        None => Ok(None),
        Some((bare, "")) if bare == room => Ok(None),
        Some((bare, nick)) if bare == room => Ok(Some(nick)),
        Some(_) => Err(()),
    }
}

async fn place_of(conn: &mut AnyConnection, room: &str, id: &str) -> Result<i64, StorageError> {
    let at: Option<i64> = sqlx::query_scalar(AT_OF_ID)
        .bind(room)
        .bind(id)
        .fetch_optional(conn)
        .await?;
    at.ok_or(StorageError::NotFound)
}

/// The inclusive range the query's filters allow.
async fn range(
    conn: &mut AnyConnection,
    room: &str,
    query: &ArchiveQuery,
) -> Result<(i64, i64), StorageError> {
    let mut lo = query.start.map(to_micros).transpose()?.unwrap_or(i64::MIN);
    let mut hi = query.end.map(to_micros).transpose()?.unwrap_or(i64::MAX);
    if let Some(id) = &query.after_id {
        lo = lo.max(place_of(conn, room, id).await?.saturating_add(1));
    }
    if let Some(id) = &query.before_id {
        hi = hi.min(place_of(conn, room, id).await?.saturating_sub(1));
    }
    Ok((lo, hi))
}

fn empty_page() -> ArchivePage {
    ArchivePage {
        messages: Vec::new(),
        complete: true,
    }
}

fn room_from_row(row: &sqlx::any::AnyRow) -> Result<StoredRoom, StorageError> {
    Ok(StoredRoom {
        jid: row.try_get("jid")?,
        service: row.try_get("service")?,
        name: row.try_get("name")?,
        public: row.try_get::<i64, _>("public")? != 0,
        state: row.try_get("state")?,
    })
}

impl MucStore for Storage {
    async fn muc_room(&self, jid: &str) -> Result<Option<StoredRoom>, StorageError> {
        let row = sqlx::query(SELECT_ROOM)
            .bind(jid)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(room_from_row).transpose()
    }

    async fn muc_rooms(
        &self,
        service: &str,
        public_only: bool,
    ) -> Result<Vec<StoredRoom>, StorageError> {
        let rows = sqlx::query(SELECT_ROOMS)
            .bind(service)
            .bind(i64::from(public_only))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(room_from_row).collect()
    }

    async fn muc_save_room(&self, room: &StoredRoom) -> Result<(), StorageError> {
        sqlx::query(UPSERT_ROOM)
            .bind(room.jid.as_str())
            .bind(room.service.as_str())
            .bind(room.name.as_str())
            .bind(i64::from(room.public))
            .bind(room.state.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn muc_delete_room(&self, jid: &str) -> Result<bool, StorageError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(DELETE_ARCHIVE)
            .bind(jid)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query(DELETE_ROOM).bind(jid).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn muc_archive_append(
        &self,
        room: &str,
        message: &ArchivedMessage,
    ) -> Result<(), StorageError> {
        let (_, nick) = split_jid(&message.with);
        sqlx::query(APPEND)
            .bind(room)
            .bind(to_micros(message.timestamp)?)
            .bind(message.stanza_id.as_str())
            .bind(nick)
            .bind(message.stanza.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn muc_archive_replace(
        &self,
        room: &str,
        stanza_id: &str,
        stanza: &str,
    ) -> Result<bool, StorageError> {
        let done = sqlx::query(REPLACE)
            .bind(room)
            .bind(stanza_id)
            .bind(stanza)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn muc_archive_query(
        &self,
        room: &str,
        query: &ArchiveQuery,
    ) -> Result<ArchivePage, StorageError> {
        let Ok(nick) = nick_filter(room, query.with.as_deref()) else {
            return Ok(empty_page());
        };
        let mut conn = self.pool.acquire().await?;
        let (mut lo, mut hi) = range(&mut conn, room, query).await?;
        let descending = match &query.cursor {
            ArchiveCursor::First => false,
            ArchiveCursor::Last => true,
            ArchiveCursor::After(id) => {
                lo = lo.max(place_of(&mut conn, room, id).await?.saturating_add(1));
                false
            }
            ArchiveCursor::Before(id) => {
                hi = hi.min(place_of(&mut conn, room, id).await?.saturating_sub(1));
                true
            }
        };
        let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
        if !query.ids.is_empty() {
            // A handful of lookups, filtered and paged in memory.
            let mut found = Vec::with_capacity(query.ids.len());
            for id in &query.ids {
                let row = sqlx::query(BY_ID)
                    .bind(room)
                    .bind(id.as_str())
                    .fetch_optional(&mut *conn)
                    .await?
                    .ok_or(StorageError::NotFound)?;
                found.push(archived_from_row(room, &row)?);
            }
            found.sort_by_key(|(at, _)| *at);
            found.dedup_by_key(|(at, _)| *at);
            let mut rows: Vec<ArchivedMessage> = found
                .into_iter()
                .filter(|(at, m)| {
                    (lo..=hi).contains(at) && nick.is_none_or(|n| split_jid(&m.with).1 == n)
                })
                .map(|(_, m)| m)
                .collect();
            if descending {
                rows.reverse();
            }
            rows.truncate(limit.saturating_add(1));
            return Ok(page_from(rows, limit, descending));
        }
        if lo > hi {
            return Ok(empty_page());
        }
        let mut q = sqlx::query(PAGE[usize::from(nick.is_some())][usize::from(descending)])
            .bind(room)
            .bind(lo)
            .bind(hi)
            .bind(i64::from(query.limit) + 1);
        if let Some(n) = nick {
            q = q.bind(n);
        }
        let rows = q.fetch_all(&mut *conn).await?;
        let rows = rows
            .iter()
            .map(|r| archived_from_row(room, r).map(|(_, m)| m))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page_from(rows, limit, descending))
    }

    async fn muc_archive_count(
        &self,
        room: &str,
        query: &ArchiveQuery,
    ) -> Result<u64, StorageError> {
        let Ok(nick) = nick_filter(room, query.with.as_deref()) else {
            return Ok(0);
        };
        if !query.ids.is_empty() {
            let mut all = query.clone();
            all.cursor = ArchiveCursor::First;
            all.limit = u32::try_from(query.ids.len()).unwrap_or(u32::MAX);
            return Ok(self.muc_archive_query(room, &all).await?.messages.len() as u64);
        }
        let mut conn = self.pool.acquire().await?;
        let (lo, hi) = range(&mut conn, room, query).await?;
        if lo > hi {
            return Ok(0);
        }
        let mut q = sqlx::query_scalar::<_, i64>(COUNT[usize::from(nick.is_some())])
            .bind(room)
            .bind(lo)
            .bind(hi);
        if let Some(n) = nick {
            q = q.bind(n);
        }
        let n = q.fetch_one(&mut *conn).await?;
        u64::try_from(n).map_err(|_| StorageError::Database(format!("negative count {n}")))
    }
}
