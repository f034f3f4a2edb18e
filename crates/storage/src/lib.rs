//! Chorus's persistent state, on SQLite (embedded, the default) or
//! PostgreSQL, through one code path.
//!
//! The rest of the server programs against the traits in [`traits`] and
//! holds a [`Storage`], which implements them: [`AccountStore`],
//! [`RosterStore`] (with roster versioning and pending subscription
//! requests), [`OfflineStore`], [`PrivateStore`], [`VcardStore`] and
//! [`BlockStore`], plus [`ImportStore`] for bulk imports (XEP-0227).
//! [`ArchiveStore`] keeps message archives (XEP-0313) and their
//! preferences (XEP-0441); [`PubsubStore`] publish-subscribe nodes and
//! items (XEP-0060, XEP-0163); [`PushStore`] push registrations
//! (XEP-0357); [`AdminStore`] disabled accounts and each domain's message
//! of the day (XEP-0133).
//!
//! # One code path: `sqlx::Any`
//!
//! [`Storage`] wraps an [`sqlx::AnyPool`], sqlx's backend-erased pool, and
//! every query is one `&'static str` with `$N` placeholders run through it;
//! PostgreSQL takes `$N` natively and sqlx's SQLite driver binds `$N` by
//! number. The alternative, an enum over `SqlitePool`/`PgPool`, would share
//! the SQL text but not the code: each method would be a `match` with two
//! monomorphized arms (or a generic function with a wall of
//! `for<'q> Encode<'q, DB>` bounds), and nothing would stop the arms
//! drifting apart. `Any` costs a conversion of each argument and row
//! through its own value type, negligible next to the I/O, and limits
//! values to the portable set (integers, floats, text, bytes), which is
//! the set a shared schema should use anyway: times are stored as integer
//! microseconds since the epoch, never as a dialect's timestamp type.
//!
//! What does differ per dialect lives in two places only: the migrations
//! (`migrations/sqlite` and `migrations/postgres`: BLOB vs BYTEA, rowid vs
//! identity column, byte-wise collation), and the connection setup in
//! [`Storage::connect`] (SQLite's WAL mode, foreign keys and busy timeout).
//!
//! `sqlx::any::install_default_drivers()` is called on connect; a program
//! that installed a different driver set before would make it panic, so
//! nothing else in Chorus installs `Any` drivers.
//!
//! **Architecture Invariant:** deleting an account deletes everything any
//! store holds for it; every per-account table references `accounts(id)`
//! with `ON DELETE CASCADE`.

mod accounts;
mod admin;
mod archive;
mod blocking;
mod cache;
mod clients;
mod error;
mod import;
mod last;
mod migrations;
mod muc;
mod offline;
mod private;
mod pubsub;
mod push;
mod roster;
mod storage;
mod time;
pub mod traits;
mod upload;

pub use error::StorageError;
pub use roster::ROSTER_REMOVALS_KEPT;
pub use storage::{Backend, Storage};
pub use traits::AdminStore;
pub use traits::{
    AccountStore, ArchiveCursor, ArchivePage, ArchiveQuery, ArchiveStore, ArchivedMessage,
    BlockStore, ImportOutcome, ImportStore, ImportedAccount, ImportedOffline, ImportedPepNode,
    LastActivityStore, MucStore, OfflineMessage, OfflineStore, OfflineStored, PendingSubscription,
    PrivateFragment, PrivateStore, PubsubItem, PubsubNode, PubsubStore, PubsubSubscription, Roster,
    RosterChange, RosterItem, RosterStore, StoredCredentials, StoredRoom, Subscription, VcardStore,
};
pub use traits::{ArchiveDefault, ArchivePrefs};
pub use traits::{ClientRecord, ClientStore, FastToken, TokenSlot};
pub use traits::{PushRegistration, PushStore};
pub use traits::{Upload, UploadStore};
