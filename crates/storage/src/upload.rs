//! [`UploadStore`] on [`Storage`]: the records of HTTP File Upload slots
//! and files (XEP-0363); the files themselves live on disk, where the
//! upload module and the HTTP listener put them.

use std::time::SystemTime;

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::time::{from_micros, to_micros};
use crate::{Storage, StorageError, Upload, UploadStore};

const INSERT: &str =
    "INSERT INTO uploads (id, owner, filename, size, content_type, created, complete) \
     VALUES ($1, $2, $3, $4, $5, $6, 0)";
const SELECT: &str = "SELECT id, owner, filename, size, content_type, created, complete \
     FROM uploads WHERE id = $1";
const COMPLETE: &str = "UPDATE uploads SET complete = 1 WHERE id = $1";
// PostgreSQL sums BIGINT into NUMERIC, which the Any driver does not carry.
const USAGE: &str = "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM uploads \
     WHERE owner = $1 AND (complete = 1 OR created > $2)";
const ABANDONED: &str = "SELECT id FROM uploads WHERE complete = 0 AND created < $1 \
     ORDER BY created, id LIMIT $2";
const OF: &str = "SELECT id FROM uploads WHERE owner = $1 ORDER BY created, id";
const BEFORE: &str = "SELECT id FROM uploads WHERE created < $1 ORDER BY created, id LIMIT $2";
const DELETE: &str = "DELETE FROM uploads WHERE id = $1";

fn size_i64(size: u64) -> Result<i64, StorageError> {
    i64::try_from(size).map_err(|_| StorageError::InvalidInput("size out of range".into()))
}

fn from_row(r: &AnyRow) -> Result<Upload, StorageError> {
    let size: i64 = r.try_get("size")?;
    let complete: i64 = r.try_get("complete")?;
    Ok(Upload {
        id: r.try_get("id")?,
        owner: r.try_get("owner")?,
        filename: r.try_get("filename")?,
        size: u64::try_from(size).unwrap_or(0),
        content_type: r.try_get("content_type")?,
        created: from_micros(r.try_get("created")?)?,
        complete: complete != 0,
    })
}

impl UploadStore for Storage {
    async fn upload_add(&self, u: &Upload) -> Result<(), StorageError> {
        sqlx::query(INSERT)
            .bind(&u.id)
            .bind(&u.owner)
            .bind(&u.filename)
            .bind(size_i64(u.size)?)
            .bind(&u.content_type)
            .bind(to_micros(u.created)?)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn upload(&self, id: &str) -> Result<Option<Upload>, StorageError> {
        let row = sqlx::query(SELECT)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    async fn upload_complete(&self, id: &str) -> Result<bool, StorageError> {
        let done = sqlx::query(COMPLETE).bind(id).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }

    async fn upload_usage(
        &self,
        owner: &str,
        pending_since: SystemTime,
    ) -> Result<u64, StorageError> {
        let n: i64 = sqlx::query_scalar(USAGE)
            .bind(owner)
            .bind(to_micros(pending_since)?)
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn uploads_abandoned(
        &self,
        before: SystemTime,
        limit: u32,
    ) -> Result<Vec<String>, StorageError> {
        Ok(sqlx::query_scalar(ABANDONED)
            .bind(to_micros(before)?)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?)
    }

    async fn uploads_of(&self, owner: &str) -> Result<Vec<String>, StorageError> {
        Ok(sqlx::query_scalar(OF)
            .bind(owner)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn uploads_before(
        &self,
        before: SystemTime,
        limit: u32,
    ) -> Result<Vec<String>, StorageError> {
        Ok(sqlx::query_scalar(BEFORE)
            .bind(to_micros(before)?)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?)
    }

    async fn upload_delete(&self, id: &str) -> Result<bool, StorageError> {
        let done = sqlx::query(DELETE).bind(id).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }
}
