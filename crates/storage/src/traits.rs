//! The storage traits the rest of the server programs against, and the
//! records they carry.
//!
//! Only [`AccountStore`] is implemented in this increment. [`RosterStore`],
//! [`OfflineStore`] and [`ArchiveStore`] are declared now so the modules that
//! will need them can be written against a settled interface; their tables
//! and their implementation on [`Storage`](crate::Storage) come with the
//! issues that use them.
//!
//! Conventions shared by every trait:
//! - An account is addressed by `(localpart, domain)`, both already
//!   normalized by the caller (PRECIS for the localpart, IDNA for the
//!   domain). Storage compares them byte for byte and never re-normalizes.
//! - JIDs other than the account's own are passed as normalized strings for
//!   the same reason.
//! - Methods return `impl Future + Send` rather than being `async fn` so the
//!   futures can be spawned on the multi-threaded runtime; implementations
//!   may still write `async fn`.
//! - Deleting an account deletes everything every store holds for it.

use std::future::Future;
use std::time::SystemTime;

use crate::StorageError;

/// The SCRAM verifier for one hash function (RFC 5802 §3): enough to
/// authenticate a client and to prove the server's identity, not enough to
/// recover or replay the password. Passwords are never stored.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredCredentials {
    /// The hash as it appears in the mechanism name: `"SHA-1"` or
    /// `"SHA-256"`. One account holds at most one set per hash.
    pub hash: String,
    /// The salt given to the client in the server-first-message.
    pub salt: Vec<u8>,
    /// The PBKDF2 iteration count the keys were derived with.
    pub iterations: u32,
    /// `H(ClientKey)`, checked against the client proof.
    pub stored_key: Vec<u8>,
    /// `HMAC(SaltedPassword, "Server Key")`, used to sign the server-final-message.
    pub server_key: Vec<u8>,
}

// Keys stay out of logs: `{:?}` on an account record must be safe to emit.
impl std::fmt::Debug for StoredCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredCredentials")
            .field("hash", &self.hash)
            .field("salt_len", &self.salt.len())
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// Accounts and their SCRAM credentials: what authentication and
/// registration need.
pub trait AccountStore {
    /// Creates an account with the given credentials (possibly none, for an
    /// account that cannot log in until [`set_credentials`](Self::set_credentials)).
    /// Fails with [`StorageError::AlreadyExists`] if the account exists, also
    /// when two callers race for the same name: exactly one wins.
    fn create_account(
        &self,
        localpart: &str,
        domain: &str,
        creds: &[StoredCredentials],
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Deletes the account and everything stored for it. Returns whether it
    /// existed.
    fn delete_account(
        &self,
        localpart: &str,
        domain: &str,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;

    /// Replaces all of the account's credentials with `creds` atomically (a
    /// password change). Returns `false`, changing nothing, if the account
    /// does not exist.
    fn set_credentials(
        &self,
        localpart: &str,
        domain: &str,
        creds: &[StoredCredentials],
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;

    /// The account's credentials for one hash (`"SHA-1"`, `"SHA-256"`), or
    /// `None` if the account does not exist or has none for that hash.
    fn credentials(
        &self,
        localpart: &str,
        domain: &str,
        hash: &str,
    ) -> impl Future<Output = Result<Option<StoredCredentials>, StorageError>> + Send;

    /// Whether the account exists.
    fn account_exists(
        &self,
        localpart: &str,
        domain: &str,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;

    /// All accounts as `(localpart, domain)`, or only those of `domain`,
    /// ordered by domain and then localpart, both compared byte-wise.
    fn list_accounts(
        &self,
        domain: Option<&str>,
    ) -> impl Future<Output = Result<Vec<(String, String)>, StorageError>> + Send;

    /// How many accounts exist, in total or in `domain`.
    fn count_accounts(
        &self,
        domain: Option<&str>,
    ) -> impl Future<Output = Result<u64, StorageError>> + Send;
}

/// The subscription state of a roster item (RFC 6121 §2.1.2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subscription {
    /// Neither side receives the other's presence.
    None,
    /// The user receives the contact's presence.
    To,
    /// The contact receives the user's presence.
    From,
    /// Both directions.
    Both,
}

/// One contact in a user's roster (RFC 6121 §2.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterItem {
    /// The contact's bare JID, normalized; unique within one roster.
    pub jid: String,
    /// The user-assigned display name, if any.
    pub name: Option<String>,
    /// The presence subscription state.
    pub subscription: Subscription,
    /// The user asked to subscribe to the contact and the contact has not
    /// answered yet (`ask='subscribe'`, the "Pending Out" states).
    pub ask: bool,
    /// The contact asked to subscribe to the user and the user has not
    /// answered yet ("Pending In", RFC 6121 §3.1.3). Never sent to clients
    /// as an attribute, but the server must remember it to re-deliver the
    /// request at the user's next login.
    pub pending_in: bool,
    /// The groups the item belongs to, without duplicates.
    pub groups: Vec<String>,
}

/// A whole roster together with the version it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roster {
    /// The roster version (RFC 6121 §2.6): increases by at least one on every
    /// change to the roster, so a client presenting the current value needs
    /// no roster in the reply. Sent as the decimal string in `ver`.
    pub version: u64,
    /// The items, ordered by JID.
    pub items: Vec<RosterItem>,
}

/// Rosters (RFC 6121 §2) with versioning. Not implemented yet.
///
/// Every mutation bumps the roster version and returns the new one, so the
/// caller can put it in the roster push that announces the change.
pub trait RosterStore {
    /// The user's roster and its version; an empty roster at version 0 for
    /// an account that never had one.
    fn roster(
        &self,
        localpart: &str,
        domain: &str,
    ) -> impl Future<Output = Result<Roster, StorageError>> + Send;

    /// The current roster version alone, to answer a roster get whose `ver`
    /// is current without loading the items.
    fn roster_version(
        &self,
        localpart: &str,
        domain: &str,
    ) -> impl Future<Output = Result<u64, StorageError>> + Send;

    /// One item, for presence subscription handling.
    fn roster_item(
        &self,
        localpart: &str,
        domain: &str,
        jid: &str,
    ) -> impl Future<Output = Result<Option<RosterItem>, StorageError>> + Send;

    /// Adds the item or replaces the one with the same JID (groups
    /// included). Returns the new roster version. Fails with
    /// [`StorageError::NotFound`] if the account does not exist.
    fn put_roster_item(
        &self,
        localpart: &str,
        domain: &str,
        item: &RosterItem,
    ) -> impl Future<Output = Result<u64, StorageError>> + Send;

    /// Removes the item with that JID. Returns the new roster version, or
    /// `None` (and no version bump) if there was no such item.
    fn remove_roster_item(
        &self,
        localpart: &str,
        domain: &str,
        jid: &str,
    ) -> impl Future<Output = Result<Option<u64>, StorageError>> + Send;
}

/// A message kept for an account while none of its resources was online
/// (RFC 6121 §8.5.2.1.1, XEP-0160).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineMessage {
    /// Increases with every message stored for the account, so delivery in
    /// id order is delivery in arrival order, and "delivered up to id N"
    /// is a single number.
    pub id: i64,
    /// When the server stored it: the `stamp` of the XEP-0203 delay.
    pub stored_at: SystemTime,
    /// The serialized `<message/>`, as received.
    pub stanza: String,
}

/// What [`OfflineStore::store_offline`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfflineStored {
    /// Stored under this id.
    Stored(i64),
    /// The account already holds its quota of messages; nothing was stored
    /// and the caller bounces the message with `<service-unavailable/>`.
    QuotaExceeded,
}

/// Offline message storage. Not implemented yet.
pub trait OfflineStore {
    /// Stores a message unless the account already holds `quota` messages.
    /// The check and the insert are one atomic step, so concurrent senders
    /// cannot overshoot the quota. Fails with [`StorageError::NotFound`] if
    /// the account does not exist.
    fn store_offline(
        &self,
        localpart: &str,
        domain: &str,
        stanza: &str,
        quota: u32,
    ) -> impl Future<Output = Result<OfflineStored, StorageError>> + Send;

    /// Up to `limit` stored messages, oldest first. Fetching does not delete:
    /// the caller deletes after delivery, so a crash in between delivers a
    /// message twice rather than losing it.
    fn offline_messages(
        &self,
        localpart: &str,
        domain: &str,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<OfflineMessage>, StorageError>> + Send;

    /// Deletes the messages with id up to and including `up_to_id`, once
    /// they have been delivered. Returns how many were deleted.
    fn delete_offline_up_to(
        &self,
        localpart: &str,
        domain: &str,
        up_to_id: i64,
    ) -> impl Future<Output = Result<u64, StorageError>> + Send;

    /// How many messages are waiting, for the quota check and XEP-0013 counts.
    fn count_offline(
        &self,
        localpart: &str,
        domain: &str,
    ) -> impl Future<Output = Result<u64, StorageError>> + Send;
}

/// One archived message (XEP-0313).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedMessage {
    /// The archive id, also sent as the XEP-0359 `<stanza-id/>`; unique
    /// within the account's archive and opaque to clients.
    pub stanza_id: String,
    /// When the server archived it; queries filter and order on this.
    pub timestamp: SystemTime,
    /// The other party's full JID as it appeared on the stanza. Queries with
    /// a bare JID in `with` match every resource of it; with a full JID,
    /// only that resource (XEP-0313 §4.1.1).
    pub with: String,
    /// Whether the account's user sent it (true) or received it (false).
    pub outgoing: bool,
    /// The serialized `<message/>`.
    pub stanza: String,
}

/// Where a page of archive results starts (XEP-0059 result set management).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveCursor {
    /// The oldest matching messages (no `<after/>` or `<before/>`).
    First,
    /// The messages following this stanza-id (`<after>id</after>`).
    After(String),
    /// The messages preceding this stanza-id (`<before>id</before>`).
    Before(String),
    /// The newest matching messages (an empty `<before/>`).
    Last,
}

/// The filters of a XEP-0313 query plus the paging window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveQuery {
    /// Only messages exchanged with this JID (bare or full, see
    /// [`ArchivedMessage::with`]).
    pub with: Option<String>,
    /// Only messages archived at or after this instant.
    pub start: Option<SystemTime>,
    /// Only messages archived at or before this instant.
    pub end: Option<SystemTime>,
    /// Where the page starts.
    pub cursor: ArchiveCursor,
    /// The page size; the caller clamps it to its configured maximum.
    pub limit: u32,
}

/// One page of archive results, always in chronological order (also for
/// [`ArchiveCursor::Before`] and [`ArchiveCursor::Last`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivePage {
    /// The messages of the page.
    pub messages: Vec<ArchivedMessage>,
    /// No more messages match in the paging direction: `complete='true'` on
    /// the `<fin/>`.
    pub complete: bool,
}

/// Message archive storage (XEP-0313). Not implemented yet.
pub trait ArchiveStore {
    /// Appends a message to the account's archive. Fails with
    /// [`StorageError::AlreadyExists`] if the stanza-id is taken and
    /// [`StorageError::NotFound`] if the account does not exist.
    fn archive_append(
        &self,
        localpart: &str,
        domain: &str,
        message: &ArchivedMessage,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// One page of the account's archive. Fails with
    /// [`StorageError::NotFound`] if the cursor names a stanza-id that is not
    /// in the archive (`<item-not-found/>` per XEP-0313 §4.1.4).
    fn archive_query(
        &self,
        localpart: &str,
        domain: &str,
        query: &ArchiveQuery,
    ) -> impl Future<Output = Result<ArchivePage, StorageError>> + Send;

    /// Deletes every archived message, of all accounts, older than
    /// `cutoff` (the retention sweep). Returns how many were deleted.
    fn archive_purge_older_than(
        &self,
        cutoff: SystemTime,
    ) -> impl Future<Output = Result<u64, StorageError>> + Send;

    /// Deletes one account's whole archive (a user's "clear my history").
    /// Returns how many messages were deleted.
    fn archive_purge_account(
        &self,
        localpart: &str,
        domain: &str,
    ) -> impl Future<Output = Result<u64, StorageError>> + Send;
}
