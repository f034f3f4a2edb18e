//! [`MucStore`] on [`Storage`]: persistent rooms (XEP-0045), one row each.

use sqlx::Row;

use crate::{MucStore, Storage, StorageError, StoredRoom};

const SELECT_ROOM: &str = "SELECT jid, service, name, public, state FROM muc_rooms WHERE jid = $1";
const SELECT_ROOMS: &str = "SELECT jid, service, name, public, state FROM muc_rooms \
     WHERE service = $1 AND ($2 = 0 OR public = 1) ORDER BY jid";
const UPSERT_ROOM: &str = "INSERT INTO muc_rooms (jid, service, name, public, state) \
     VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (jid) DO UPDATE SET service = excluded.service, name = excluded.name, \
     public = excluded.public, state = excluded.state";
const DELETE_ROOM: &str = "DELETE FROM muc_rooms WHERE jid = $1";

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
        let done = sqlx::query(DELETE_ROOM)
            .bind(jid)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
