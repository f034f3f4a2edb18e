//! The one error type every store returns.
//!
//! Callers branch on the first three variants (a duplicate registration is a
//! `<conflict/>`, a missing account an `<item-not-found/>`); the others are
//! operational failures they log and map to `<internal-server-error/>`. The
//! driver's error is flattened to a string so that sqlx stays an
//! implementation detail of this crate.

use thiserror::Error;

/// Why a storage operation failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StorageError {
    /// The row to create exists already (e.g. registering a taken username).
    #[error("already exists")]
    AlreadyExists,
    /// The row the operation needs does not exist.
    #[error("not found")]
    NotFound,
    /// The caller passed something the schema cannot hold, such as two
    /// credentials for the same SCRAM hash.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The database or the connection to it failed.
    #[error("database error: {0}")]
    Database(String),
    /// Applying the embedded schema migrations failed, or the database holds
    /// migrations this build does not know (a newer Chorus ran against it).
    #[error("migration failed: {0}")]
    Migration(String),
    /// The connection URL is malformed or names an unsupported backend.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
}

impl From<sqlx::Error> for StorageError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::Database(db) if db.is_unique_violation() => StorageError::AlreadyExists,
            // sqlx reports URL problems found while connecting as Configuration.
            sqlx::Error::Configuration(e) => StorageError::InvalidUrl(e.to_string()),
            other => StorageError::Database(other.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StorageError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        StorageError::Migration(err.to_string())
    }
}
