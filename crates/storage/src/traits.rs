//! The storage traits the rest of the server programs against, and the
//! records they carry.
//!
//! [`AccountStore`], [`RosterStore`], [`OfflineStore`], [`PrivateStore`],
//! [`VcardStore`], [`BlockStore`] and [`ArchiveStore`] are implemented on
//! [`Storage`](crate::Storage).
//!
//! Conventions shared by every trait:
//! - An account is addressed by `(localpart, domain)`, both already
//!   normalized by the caller (PRECIS for the localpart, IDNA for the
//!   domain). Storage compares them byte for byte and never re-normalizes.
//! - JIDs other than the account's own are passed as normalized strings for
//!   the same reason.
//! - XML (stanzas, private fragments, vCards) is passed and returned as
//!   serialized text; the caller serializes and parses it, so this crate
//!   does not depend on the XML crate.
//! - Reads and deletes on an account that does not exist answer as for an
//!   account with nothing stored; each write says what it does instead
//!   (usually fail with [`StorageError::NotFound`]).
//! - Methods return `impl Future + Send` rather than being `async fn` so the
//!   futures can be spawned on the multi-threaded runtime; implementations
//!   may still write `async fn`.
//! - Deleting an account deletes everything every store holds for it.

use std::collections::HashSet;
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
    /// does not exist. Its FAST tokens (XEP-0484) go with the old password.
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

impl Subscription {
    /// The value of the `subscription` attribute: `"none"`, `"to"`,
    /// `"from"` or `"both"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Subscription::None => "none",
            Subscription::To => "to",
            Subscription::From => "from",
            Subscription::Both => "both",
        }
    }

    /// The state a `subscription` attribute value names, or `None` for
    /// anything else (including `"remove"`, which is a request, not a state).
    pub fn parse(value: &str) -> Option<Subscription> {
        match value {
            "none" => Some(Subscription::None),
            "to" => Some(Subscription::To),
            "from" => Some(Subscription::From),
            "both" => Some(Subscription::Both),
            _ => None,
        }
    }
}

/// One contact in a user's roster (RFC 6121 §2.1.2): everything a roster
/// item carries to the client.
///
/// An unanswered inbound subscription request ("Pending In") is not part of
/// the item: the RFC does not show it to clients, and a request from someone
/// who is not in the roster must be remembered without creating an item.
/// See [`PendingSubscription`].
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
    /// The user pre-approved a subscription request from the contact
    /// (`approved='true'`, RFC 6121 §3.4).
    pub approved: bool,
    /// The groups the item belongs to, in the order the client gave them,
    /// without duplicates.
    pub groups: Vec<String>,
}

/// A whole roster together with the version it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roster {
    /// The roster version (RFC 6121 §2.6): increases by at least one on every
    /// change to the roster, so a client presenting the current value needs
    /// no roster in the reply. Sent as the decimal string in `ver`.
    pub version: u64,
    /// The items, ordered by JID (byte-wise).
    pub items: Vec<RosterItem>,
}

/// One entry of a roster delta ([`RosterStore::roster_changes_since`]):
/// what one roster push must say about one JID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RosterChange {
    /// The item was added or changed; this is its state now.
    Updated {
        /// The roster version at which it last changed: the push's `ver`.
        version: u64,
        /// The item as it is now.
        item: RosterItem,
    },
    /// The item was removed: push it with `subscription='remove'`.
    Removed {
        /// The roster version that removed it: the push's `ver`.
        version: u64,
        /// The removed contact's bare JID.
        jid: String,
    },
}

impl RosterChange {
    /// The roster version at which this change happened.
    pub fn version(&self) -> u64 {
        match self {
            RosterChange::Updated { version, .. } | RosterChange::Removed { version, .. } => {
                *version
            }
        }
    }

    /// The JID the change is about.
    pub fn jid(&self) -> &str {
        match self {
            RosterChange::Updated { item, .. } => &item.jid,
            RosterChange::Removed { jid, .. } => jid,
        }
    }
}

/// An inbound presence subscription request the user has neither approved
/// nor denied ("Pending In", RFC 6121 §3.1.3): the server must redeliver it
/// when the user next becomes available.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSubscription {
    /// The requester's bare JID, normalized.
    pub jid: String,
    /// The serialized `<presence type='subscribe'/>` as received, so that
    /// redelivery carries its `<status/>` and extensions.
    pub stanza: String,
    /// When the server received it: the `stamp` of a XEP-0203 delay on
    /// redelivery.
    pub received_at: SystemTime,
}

/// Rosters (RFC 6121 §2) with versioning (§2.6), and the pending inbound
/// subscription requests of §3.1.3.
///
/// Every roster mutation bumps the roster version and returns the new one,
/// so the caller can put it in the roster push that announces the change.
/// Each item remembers the version at which it last changed and each
/// removal leaves a tombstone, so [`roster_changes_since`](Self::roster_changes_since)
/// can answer a client's cached `ver` with only what changed. Pending
/// subscription requests are invisible to clients' rosters and do not
/// change the version.
pub trait RosterStore {
    /// The user's roster and its version, read as one consistent snapshot;
    /// an empty roster at version 0 for an account that never had one (or
    /// does not exist).
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

    /// What changed after `version`, oldest change first, at most one entry
    /// per JID: the roster pushes that bring a client whose cached roster is
    /// at `version` up to date (RFC 6121 §2.6.3). The last entry's version is
    /// the current roster version; an empty list means `version` is current.
    ///
    /// `None` when `version` is not one this roster can answer from: newer
    /// than the current version (it came from elsewhere, or from an account
    /// since deleted and recreated), or older than the removals still
    /// remembered (see [`ROSTER_REMOVALS_KEPT`](crate::ROSTER_REMOVALS_KEPT)).
    /// The caller then sends the whole roster. Also `None` if the account
    /// does not exist.
    fn roster_changes_since(
        &self,
        localpart: &str,
        domain: &str,
        version: u64,
    ) -> impl Future<Output = Result<Option<Vec<RosterChange>>, StorageError>> + Send;

    /// One item, for presence subscription handling.
    fn roster_item(
        &self,
        localpart: &str,
        domain: &str,
        jid: &str,
    ) -> impl Future<Output = Result<Option<RosterItem>, StorageError>> + Send;

    /// Adds the item or replaces the one with the same JID (groups
    /// included). Returns the new roster version. Fails with
    /// [`StorageError::NotFound`] if the account does not exist and with
    /// [`StorageError::InvalidInput`] if a group is listed twice (RFC 6121
    /// §2.3.3 makes that a `<bad-request/>`).
    fn put_roster_item(
        &self,
        localpart: &str,
        domain: &str,
        item: &RosterItem,
    ) -> impl Future<Output = Result<u64, StorageError>> + Send;

    /// Removes the item with that JID. Returns the new roster version, or
    /// `None` (and no version bump) if there was no such item. A pending
    /// subscription request from the same JID is left alone: whether
    /// removing the item also denies it is the caller's decision.
    fn remove_roster_item(
        &self,
        localpart: &str,
        domain: &str,
        jid: &str,
    ) -> impl Future<Output = Result<Option<u64>, StorageError>> + Send;

    /// Records an inbound subscription request from `jid`, replacing an
    /// earlier one from the same JID (the latest stanza is the one worth
    /// redelivering), whether or not `jid` is in the roster. Fails with
    /// [`StorageError::NotFound`] if the account does not exist.
    fn add_pending_subscription(
        &self,
        localpart: &str,
        domain: &str,
        jid: &str,
        stanza: &str,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// The pending request from `jid`, if any: whether the user's
    /// `subscribed` answers a request or is a pre-approval.
    fn pending_subscription(
        &self,
        localpart: &str,
        domain: &str,
        jid: &str,
    ) -> impl Future<Output = Result<Option<PendingSubscription>, StorageError>> + Send;

    /// Every pending request, oldest first, for redelivery at login.
    fn pending_subscriptions(
        &self,
        localpart: &str,
        domain: &str,
    ) -> impl Future<Output = Result<Vec<PendingSubscription>, StorageError>> + Send;

    /// Forgets the request from `jid` once the user approved or denied it.
    /// Returns whether there was one.
    fn remove_pending_subscription(
        &self,
        localpart: &str,
        domain: &str,
        jid: &str,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;
}

/// A message kept for an account while none of its resources was online
/// (RFC 6121 §8.5.2.1.1, XEP-0160).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineMessage {
    /// Increases with every message stored for the account and is never
    /// reused while the account exists, so delivery in id order is delivery
    /// in arrival order, and "delivered up to id N" is a single number that
    /// cannot cover a message stored after the fetch.
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

/// Offline message storage (RFC 6121 §8.5.2.1.1).
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

    /// Up to `limit` stored messages, oldest first (in id order). Fetching
    /// does not delete: the caller deletes after delivery, so a crash in
    /// between delivers a message twice rather than losing it.
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

/// When an account last went offline (XEP-0012 Last Activity): one row
/// per account, replaced at each logout, gone with the account.
pub trait LastActivityStore {
    /// Records that the account went offline at `at`, saying `status`.
    /// An account that does not exist is left alone (nothing to record).
    fn set_last_activity(
        &self,
        localpart: &str,
        domain: &str,
        at: SystemTime,
        status: &str,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// When the account last went offline and its status then, if known.
    fn last_activity(
        &self,
        localpart: &str,
        domain: &str,
    ) -> impl Future<Output = Result<Option<(SystemTime, String)>, StorageError>> + Send;
}

/// Private XML storage (XEP-0049): one XML fragment per account, root
/// element name and namespace, which only the account's own user can read.
///
/// Fragments are serialized XML text; the caller produces and parses it.
pub trait PrivateStore {
    /// The fragment stored under `(name, namespace)`, if any.
    fn private_xml(
        &self,
        localpart: &str,
        domain: &str,
        name: &str,
        namespace: &str,
    ) -> impl Future<Output = Result<Option<String>, StorageError>> + Send;

    /// Stores `xml` under `(name, namespace)`, replacing what was there
    /// (XEP-0049 has no merge). Fails with [`StorageError::NotFound`] if the
    /// account does not exist.
    fn set_private_xml(
        &self,
        localpart: &str,
        domain: &str,
        name: &str,
        namespace: &str,
        xml: &str,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Every fragment the account stores, ordered by namespace and then
    /// name (byte-wise): what an export (XEP-0227) writes, since XEP-0049
    /// itself only reads by key.
    fn private_fragments(
        &self,
        localpart: &str,
        domain: &str,
    ) -> impl Future<Output = Result<Vec<PrivateFragment>, StorageError>> + Send;
}

/// One stored XEP-0049 fragment with its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateFragment {
    /// The fragment's root element name.
    pub name: String,
    /// The fragment's root element namespace.
    pub namespace: String,
    /// The serialized fragment.
    pub xml: String,
}

/// vCard storage (XEP-0054, vcard-temp): one serialized `<vCard/>` per
/// account, served to anyone who asks.
pub trait VcardStore {
    /// The account's vCard, if it published one.
    fn vcard(
        &self,
        localpart: &str,
        domain: &str,
    ) -> impl Future<Output = Result<Option<String>, StorageError>> + Send;

    /// Stores the vCard, replacing any previous one (a vcard-temp set
    /// replaces the whole card). Fails with [`StorageError::NotFound`] if
    /// the account does not exist.
    fn set_vcard(
        &self,
        localpart: &str,
        domain: &str,
        vcard: &str,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Deletes the vCard. Returns whether there was one.
    fn delete_vcard(
        &self,
        localpart: &str,
        domain: &str,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;
}

/// Block lists (XEP-0191, Blocking Command).
///
/// Entries are normalized JID strings of any form the XEP allows: a full
/// JID, a bare JID, a domain, or a domain with a resource. Storage keeps
/// them as given, and [`is_blocked`](Self::is_blocked) applies the matching
/// rules of XEP-0191 §6 (those of XEP-0016 §2.1).
pub trait BlockStore {
    /// The blocked JIDs, ordered byte-wise.
    fn blocklist(
        &self,
        localpart: &str,
        domain: &str,
    ) -> impl Future<Output = Result<Vec<String>, StorageError>> + Send;

    /// Blocks every JID in `jids`, all or none. JIDs already blocked (or
    /// listed twice) are not an error. Returns how many were newly added.
    /// Fails with [`StorageError::NotFound`] if the account does not exist.
    fn block(
        &self,
        localpart: &str,
        domain: &str,
        jids: &[&str],
    ) -> impl Future<Output = Result<u64, StorageError>> + Send;

    /// Unblocks every JID in `jids`, all or none; JIDs not blocked are
    /// ignored. Only exact entries are removed: unblocking a bare JID leaves
    /// a blocked domain blocked. Returns how many were removed.
    fn unblock(
        &self,
        localpart: &str,
        domain: &str,
        jids: &[&str],
    ) -> impl Future<Output = Result<u64, StorageError>> + Send;

    /// Empties the block list (an `<unblock/>` without items). Returns how
    /// many entries were removed.
    fn unblock_all(
        &self,
        localpart: &str,
        domain: &str,
    ) -> impl Future<Output = Result<u64, StorageError>> + Send;

    /// Whether stanzas from or to `jid` (normalized, of any form) are
    /// blocked: true if the list holds `jid` itself, its bare JID, its
    /// domain with its resource, or its domain.
    fn is_blocked(
        &self,
        localpart: &str,
        domain: &str,
        jid: &str,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;
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
    /// Only messages after this stanza-id (XEP-0313 `after-id`, exclusive).
    /// A filter, unlike [`ArchiveCursor::After`]: the two combine.
    pub after_id: Option<String>,
    /// Only messages before this stanza-id (`before-id`, exclusive).
    pub before_id: Option<String>,
    /// Only these stanza-ids (`ids`), when not empty.
    pub ids: Vec<String>,
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

/// Message archive storage (XEP-0313) and archiving preferences
/// (XEP-0441).
///
/// Each account's archive is append-only in time: a message is stored at its
/// [`timestamp`](ArchivedMessage::timestamp), or one microsecond after the
/// newest message already archived if that is later. Timestamps are thus
/// unique within an archive, and archive order, time order and paging order
/// are one order, which survives a clock that steps back.
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
    /// [`StorageError::NotFound`] if the cursor, `after_id`, `before_id` or
    /// one of `ids` names a stanza-id that is not in the archive
    /// (`<item-not-found/>`, XEP-0313 §4.1.2 and §4.3.2). An account that
    /// does not exist has an empty archive.
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

    /// Deletes one archived message by its stanza-id (a message archived
    /// before delivery that then went nowhere). True if it was there.
    fn archive_remove(
        &self,
        localpart: &str,
        domain: &str,
        stanza_id: &str,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;

    /// Deletes one account's whole archive (a user's "clear my history").
    /// Returns how many messages were deleted.
    fn archive_purge_account(
        &self,
        localpart: &str,
        domain: &str,
    ) -> impl Future<Output = Result<u64, StorageError>> + Send;

    /// Appends messages of any accounts, in order, in one transaction:
    /// the archive writer's group commit. Each entry is (localpart, domain,
    /// message). Unlike [`archive_append`](Self::archive_append) it is
    /// idempotent, so a batch whose writer died before it could tell may be
    /// written again: a stanza-id an archive already holds is skipped, and
    /// so is a message for an account that no longer exists. Fails writing
    /// nothing.
    fn archive_append_batch(
        &self,
        batch: &[(&str, &str, &ArchivedMessage)],
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Appends `messages` in order, all in one transaction (imports, tests,
    /// benchmarks: one commit instead of one per message), under the same
    /// ordering rule as [`archive_append`](Self::archive_append). Fails as
    /// it does, writing nothing.
    fn archive_append_many(
        &self,
        localpart: &str,
        domain: &str,
        messages: &[ArchivedMessage],
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// How many messages match the query's filters, whatever its cursor and
    /// limit: the XEP-0059 `<count/>`. Fails as
    /// [`archive_query`](Self::archive_query) does.
    fn archive_count(
        &self,
        localpart: &str,
        domain: &str,
        query: &ArchiveQuery,
    ) -> impl Future<Output = Result<u64, StorageError>> + Send;

    /// The account's archiving preferences, or `None` if it never set any
    /// (the server's default applies).
    fn archive_prefs(
        &self,
        localpart: &str,
        domain: &str,
    ) -> impl Future<Output = Result<Option<ArchivePrefs>, StorageError>> + Send;

    /// Replaces the account's archiving preferences. Fails with
    /// [`StorageError::InvalidInput`] if a JID is on both lists and with
    /// [`StorageError::NotFound`] if the account does not exist.
    fn set_archive_prefs(
        &self,
        localpart: &str,
        domain: &str,
        prefs: &ArchivePrefs,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
}

/// Which messages an account archives by default (XEP-0441 `default`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArchiveDefault {
    /// Every message.
    Always,
    /// None.
    Never,
    /// Only messages exchanged with contacts in the user's roster.
    Roster,
}

impl ArchiveDefault {
    /// The attribute value: `"always"`, `"never"` or `"roster"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ArchiveDefault::Always => "always",
            ArchiveDefault::Never => "never",
            ArchiveDefault::Roster => "roster",
        }
    }

    /// The default an attribute value names, or `None` for anything else.
    pub fn parse(value: &str) -> Option<ArchiveDefault> {
        match value {
            "always" => Some(ArchiveDefault::Always),
            "never" => Some(ArchiveDefault::Never),
            "roster" => Some(ArchiveDefault::Roster),
            _ => None,
        }
    }
}

/// An account's archiving preferences (XEP-0441): a default and two
/// exception lists, which take precedence over it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivePrefs {
    /// What happens to messages with JIDs on neither list.
    pub default: ArchiveDefault,
    /// JIDs (normalized, bare or full) whose messages are always archived.
    /// Read back sorted byte-wise, without duplicates.
    pub always: Vec<String>,
    /// JIDs whose messages are never archived; same form.
    pub never: Vec<String>,
}

/// A message to store as offline on import, with the time it was first
/// stored (the `stamp` of its XEP-0203 delay in the exporting server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedOffline {
    /// When the exporting server stored it; delivered as the delay stamp.
    pub stored_at: SystemTime,
    /// The serialized `<message/>`.
    pub stanza: String,
}

/// One account with everything it holds, as a bulk import (XEP-0227,
/// PIEFXIS) creates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedAccount {
    /// Normalized, as for every other store.
    pub localpart: String,
    /// Normalized, as for every other store.
    pub domain: String,
    /// At most one set per hash; none makes an account that cannot log in.
    pub credentials: Vec<StoredCredentials>,
    /// The roster, one item per JID.
    pub roster: Vec<RosterItem>,
    /// The serialized `<vCard/>`, if any.
    pub vcard: Option<String>,
    /// XEP-0049 fragments, one per (name, namespace).
    pub private: Vec<PrivateFragment>,
    /// Offline messages, oldest first: they get ids in this order.
    pub offline: Vec<ImportedOffline>,
    /// PEP nodes (XEP-0163), one per node id.
    pub pep: Vec<ImportedPepNode>,
}

/// One PEP node of an imported account: its configuration (as the
/// pubsub module serializes it), affiliations besides the account's own
/// ownership, subscriptions, and items oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedPepNode {
    pub node: String,
    pub config: String,
    /// (JID, affiliation).
    pub affiliations: Vec<(String, String)>,
    pub subscriptions: Vec<PubsubSubscription>,
    pub items: Vec<PubsubItem>,
}

/// What [`ImportStore::import_accounts`] did with one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportOutcome {
    /// Created with everything it carried.
    Created,
    /// An account of that name existed already (or came earlier in the same
    /// call); it was left untouched and nothing of this one was written.
    AlreadyExists,
}

/// Bulk account creation for imports (XEP-0227).
///
/// Creating accounts one by one through [`AccountStore`], [`RosterStore`]
/// and the others costs one transaction, and so one commit (an fsync on
/// SQLite), per row; an import of tens of thousands of accounts would spend
/// minutes on commits alone. This writes a whole batch in one transaction.
pub trait ImportStore {
    /// Creates every account in `accounts` that does not exist yet, each with
    /// its credentials, roster, vCard, private XML and offline messages, all
    /// in one transaction; returns one outcome per account, in order.
    ///
    /// Existing accounts are never modified, and an account that appears
    /// twice is created from its first appearance. Roster items get distinct
    /// versions 1..=n in the order given and the roster version n, as if
    /// added one by one; offline messages get ids 1..=n in the order given,
    /// whatever the offline quota.
    ///
    /// All or nothing: fails with [`StorageError::InvalidInput`], writing
    /// nothing, if an account lists two credential sets for one hash, two
    /// roster items for one JID, a group twice in one item, or two private
    /// fragments with the same name and namespace; any database error rolls
    /// the whole batch back too.
    fn import_accounts(
        &self,
        accounts: &[ImportedAccount],
    ) -> impl Future<Output = Result<Vec<ImportOutcome>, StorageError>> + Send;

    /// Which of `localparts` already have an account in `domain`, asked in
    /// a few statements however many there are: an import leaves those out
    /// before spending PBKDF2 on them.
    fn existing_accounts(
        &self,
        domain: &str,
        localparts: &[String],
    ) -> impl Future<Output = Result<HashSet<String>, StorageError>> + Send;
}

/// A publish-subscribe node (XEP-0060) as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubsubNode {
    pub node: String,
    /// The configuration, as the module serialized it.
    pub config: String,
}

/// A published item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubsubItem {
    pub id: String,
    /// The publisher's JID.
    pub publisher: String,
    /// The payload as serialized XML; empty for none.
    pub payload: String,
}

/// A subscription to a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubsubSubscription {
    pub node: String,
    pub jid: String,
    /// The subscription id; empty when the JID has one subscription.
    pub subid: String,
    /// `subscribed`, `pending` or `unconfigured` (XEP-0060 §4.2).
    pub state: String,
    /// The subscription options, as the module serialized them.
    pub options: String,
}

/// Publish-subscribe state (XEP-0060): nodes of a service (an account's
/// bare JID for PEP, XEP-0163, or a hosted service's domain), their
/// items, affiliations and subscriptions. A PEP node is created with its
/// account and goes with it.
pub trait PubsubStore {
    /// The node, if it exists.
    fn pubsub_node(
        &self,
        service: &str,
        node: &str,
    ) -> impl Future<Output = Result<Option<PubsubNode>, StorageError>> + Send;

    /// Every node of the service, by node id (byte-wise).
    fn pubsub_nodes(
        &self,
        service: &str,
    ) -> impl Future<Output = Result<Vec<PubsubNode>, StorageError>> + Send;

    /// Creates the node with `owner` as its owner, in one transaction.
    /// `account` (localpart, domain) ties a PEP node to its account.
    /// [`StorageError::AlreadyExists`] if the node exists,
    /// [`StorageError::NotFound`] if the account does not.
    fn pubsub_create_node(
        &self,
        service: &str,
        node: &str,
        account: Option<(&str, &str)>,
        config: &str,
        owner: &str,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Replaces the node's configuration; [`StorageError::NotFound`] if
    /// there is no such node.
    fn pubsub_configure_node(
        &self,
        service: &str,
        node: &str,
        config: &str,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Deletes the node with everything it holds; false if there was none.
    fn pubsub_delete_node(
        &self,
        service: &str,
        node: &str,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;

    /// Stores the item as the node's newest (replacing one with the same
    /// id), then keeps only the newest `keep` items if given, in one
    /// transaction. [`StorageError::NotFound`] if there is no such node.
    fn pubsub_publish(
        &self,
        service: &str,
        node: &str,
        item: &PubsubItem,
        keep: Option<u64>,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Deletes one item; false if it was not there.
    fn pubsub_retract(
        &self,
        service: &str,
        node: &str,
        item_id: &str,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;

    /// Deletes every item of the node.
    fn pubsub_purge(
        &self,
        service: &str,
        node: &str,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Items in publication order (oldest first): those with the given
    /// ids (in that order, missing ones left out), or, without ids, the
    /// newest `newest` (all without a count).
    fn pubsub_items(
        &self,
        service: &str,
        node: &str,
        ids: &[String],
        newest: Option<u64>,
    ) -> impl Future<Output = Result<Vec<PubsubItem>, StorageError>> + Send;

    /// The node's affiliations as (JID, affiliation), by JID.
    fn pubsub_affiliations(
        &self,
        service: &str,
        node: &str,
    ) -> impl Future<Output = Result<Vec<(String, String)>, StorageError>> + Send;

    /// One JID's affiliations across the service as (node, affiliation).
    fn pubsub_affiliations_of(
        &self,
        service: &str,
        jid: &str,
    ) -> impl Future<Output = Result<Vec<(String, String)>, StorageError>> + Send;

    /// Sets (or, with `None`, removes) a JID's affiliation with the node.
    fn pubsub_set_affiliation(
        &self,
        service: &str,
        node: &str,
        jid: &str,
        affiliation: Option<&str>,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Subscriptions of the service, narrowed to one node and/or one JID.
    fn pubsub_subscriptions(
        &self,
        service: &str,
        node: Option<&str>,
        jid: Option<&str>,
    ) -> impl Future<Output = Result<Vec<PubsubSubscription>, StorageError>> + Send;

    /// Creates or replaces a subscription (keyed by node, JID and subid).
    fn pubsub_set_subscription(
        &self,
        service: &str,
        subscription: &PubsubSubscription,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Removes a subscription; false if there was none.
    fn pubsub_remove_subscription(
        &self,
        service: &str,
        node: &str,
        jid: &str,
        subid: &str,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;
}

/// A persistent multi-user chat room (XEP-0045) as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRoom {
    /// The room's bare JID.
    pub jid: String,
    /// The MUC service's domain the room lives on.
    pub service: String,
    /// The room's name, '' for none: what disco#items shows.
    pub name: String,
    /// Listed in the service's disco#items.
    pub public: bool,
    /// Configuration, affiliations and subject, as the muc module
    /// serializes them.
    pub state: String,
}

/// Persistent rooms of MUC services (XEP-0045 §10.1.3: a persistent room
/// outlives its occupants and the server's restarts). A room is written
/// whole, so every write can be repeated without harm.
pub trait MucStore {
    /// The room, if it is stored.
    fn muc_room(
        &self,
        jid: &str,
    ) -> impl Future<Output = Result<Option<StoredRoom>, StorageError>> + Send;

    /// Every stored room of a service, by JID (byte-wise); only the public
    /// ones with `public_only`.
    fn muc_rooms(
        &self,
        service: &str,
        public_only: bool,
    ) -> impl Future<Output = Result<Vec<StoredRoom>, StorageError>> + Send;

    /// Stores the room, replacing what was stored under its JID.
    fn muc_save_room(
        &self,
        room: &StoredRoom,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Forgets the room, and its archive; true if it was stored.
    fn muc_delete_room(&self, jid: &str)
        -> impl Future<Output = Result<bool, StorageError>> + Send;

    /// Appends to the room's archive (XEP-0313): `with` is the sender as
    /// `room/nick`. A stanza-id already in the archive is left alone, so an
    /// interrupted append may be repeated. Only one writer per room.
    fn muc_archive_append(
        &self,
        room: &str,
        message: &ArchivedMessage,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// A page of the room's archive, as [`ArchiveStore::archive_query`]
    /// pages an account's: `with` (`room/nick`) filters on the sender.
    fn muc_archive_query(
        &self,
        room: &str,
        query: &ArchiveQuery,
    ) -> impl Future<Output = Result<ArchivePage, StorageError>> + Send;

    /// Replaces an archived message with `stanza` (a retraction's
    /// tombstone, XEP-0424/XEP-0425); false when the room's archive has no
    /// such stanza-id.
    fn muc_archive_replace(
        &self,
        room: &str,
        stanza_id: &str,
        stanza: &str,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;

    /// How many messages the query matches, ignoring its cursor and limit.
    fn muc_archive_count(
        &self,
        room: &str,
        query: &ArchiveQuery,
    ) -> impl Future<Output = Result<u64, StorageError>> + Send;
}

/// One XEP-0357 push registration of an account: where its notifications
/// go, and the publish-options sent with each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushRegistration {
    /// The app server's JID, normalized.
    pub service: String,
    /// The node on it; empty when the client named none.
    pub node: String,
    /// The publish-options data form as serialized XML; empty for none.
    pub options: String,
}

/// XEP-0357 push registrations, per account, keyed by (service, node);
/// gone with the account.
pub trait PushStore {
    /// Stores the registration, replacing one with the same service and
    /// node; then, past `max` registrations, removes the oldest ones, which
    /// it returns (an app reinstalled on a device registers anew and its
    /// stale registration goes). Fails with [`StorageError::NotFound`] if
    /// the account does not exist.
    fn push_enable(
        &self,
        localpart: &str,
        domain: &str,
        registration: &PushRegistration,
        max: u32,
    ) -> impl Future<Output = Result<Vec<PushRegistration>, StorageError>> + Send;

    /// Removes the registration with `service` and `node`, or every one
    /// with `service` when `node` is None (XEP-0357 §6). Returns how many.
    fn push_disable(
        &self,
        localpart: &str,
        domain: &str,
        service: &str,
        node: Option<&str>,
    ) -> impl Future<Output = Result<u64, StorageError>> + Send;

    /// The account's registrations, newest first.
    fn push_registrations(
        &self,
        localpart: &str,
        domain: &str,
    ) -> impl Future<Output = Result<Vec<PushRegistration>, StorageError>> + Send;
}

/// A client an account logs in with, as XEP-0388's `<user-agent/>` names
/// it, and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRecord {
    /// The `id` the client gave: stable per installation.
    pub id: String,
    pub software: String,
    pub device: String,
    pub first_seen: SystemTime,
    pub last_seen: SystemTime,
    /// When its FAST token expires, the later of its two slots, if it has
    /// one.
    pub token_expires: Option<SystemTime>,
}

/// One of a client's two FAST token slots (XEP-0484 §6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenSlot {
    /// Issued and not used yet.
    New,
    /// Used at least once.
    Current,
}

impl TokenSlot {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenSlot::New => "new",
            TokenSlot::Current => "current",
        }
    }
}

/// A stored FAST token: its hash, never the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FastToken {
    pub slot: TokenSlot,
    pub mechanism: String,
    /// SHA-256 of the token.
    pub hash: Vec<u8>,
    pub expires: SystemTime,
    /// The highest replay counter accepted so far, 0 before any.
    pub count: u64,
}

/// The clients of each account (XEP-0388 user agents) and their FAST
/// tokens (XEP-0484). Changing an account's password revokes its tokens
/// ([`AccountStore::set_credentials`]); deleting the account deletes all.
pub trait ClientStore {
    /// Records a login by client `id` now, keeping at most `keep` clients
    /// per account (the least recently seen go, with their tokens). An
    /// account that does not exist is left alone.
    fn client_seen(
        &self,
        localpart: &str,
        domain: &str,
        id: &str,
        software: &str,
        device: &str,
        keep: u32,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// The account's clients, most recently seen first.
    fn clients(
        &self,
        localpart: &str,
        domain: &str,
    ) -> impl Future<Output = Result<Vec<ClientRecord>, StorageError>> + Send;

    /// The client's tokens (none, one or two).
    fn fast_tokens(
        &self,
        localpart: &str,
        domain: &str,
        client: &str,
    ) -> impl Future<Output = Result<Vec<FastToken>, StorageError>> + Send;

    /// Puts a newly issued token in the client's `new` slot, replacing an
    /// unused one there (XEP-0484 §4.4: "SHOULD invalidate any tokens
    /// previously generated that have not been used"). False if the client
    /// is not recorded.
    fn fast_issue(
        &self,
        localpart: &str,
        domain: &str,
        client: &str,
        mechanism: &str,
        hash: &[u8],
        expires: SystemTime,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;

    /// Records a successful use of the token in `slot`, stored as `hash`,
    /// with replay counter `count`: a used `new` token becomes `current`,
    /// replacing the older one (XEP-0484 §4.4: earlier tokens are
    /// invalidated on use). One conditional write decides: the row must
    /// still hold `hash` and not have expired, and with a count, the count
    /// must be above the stored one (XEP-0484 §4.3, for TLS 0-RTT), so a
    /// revocation, a rotation or a second use of the same count racing
    /// this one wins. False if the use did not count.
    fn fast_used(
        &self,
        localpart: &str,
        domain: &str,
        client: &str,
        slot: TokenSlot,
        hash: &[u8],
        count: Option<u64>,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;

    /// Revokes the tokens of one client, or of all the account's clients;
    /// returns how many tokens went.
    fn fast_revoke(
        &self,
        localpart: &str,
        domain: &str,
        client: Option<&str>,
    ) -> impl Future<Output = Result<u64, StorageError>> + Send;
}

/// What operators set on accounts and domains (XEP-0133 Service
/// Administration, `chorusctl user disable` and `motd`): disabled accounts
/// and each domain's message of the day.
pub trait AdminStore {
    /// Disables the account, saying why, or replaces the reason of one
    /// already disabled. False, changing nothing, if the account does not
    /// exist. Ending its sessions is the caller's part.
    fn disable_account(
        &self,
        localpart: &str,
        domain: &str,
        reason: &str,
        at: SystemTime,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;

    /// Re-enables the account; returns whether it was disabled.
    fn enable_account(
        &self,
        localpart: &str,
        domain: &str,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;

    /// Why the account is disabled (`""` when no reason was given), or
    /// `None` when it is not (or does not exist): what authentication asks
    /// before letting a client in (RFC 6120 §6.5.1 `<account-disabled/>`).
    fn account_disabled(
        &self,
        localpart: &str,
        domain: &str,
    ) -> impl Future<Output = Result<Option<String>, StorageError>> + Send;

    /// Sets (or replaces) the message of the day of `domain`.
    fn set_motd(
        &self,
        domain: &str,
        text: &str,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// The message of the day of `domain`, if one is set.
    fn motd(
        &self,
        domain: &str,
    ) -> impl Future<Output = Result<Option<String>, StorageError>> + Send;

    /// Deletes the message of the day of `domain`; returns whether there
    /// was one.
    fn delete_motd(&self, domain: &str) -> impl Future<Output = Result<bool, StorageError>> + Send;
}

/// One HTTP File Upload slot (XEP-0363) and, once stored, its file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upload {
    /// Random, part of the file's URLs.
    pub id: String,
    /// The uploader's bare JID.
    pub owner: String,
    pub filename: String,
    pub size: u64,
    pub content_type: String,
    pub created: SystemTime,
    /// The file is stored (the PUT completed).
    pub complete: bool,
}

/// Uploaded files' records (XEP-0363): quotas, retention, and deletion
/// with the account (the caller deletes the files).
pub trait UploadStore {
    /// Records a slot; fails if the id is taken.
    fn upload_add(&self, upload: &Upload) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// The slot or file with this id.
    fn upload(&self, id: &str)
        -> impl Future<Output = Result<Option<Upload>, StorageError>> + Send;

    /// Marks the file stored; false if the slot is gone.
    fn upload_complete(&self, id: &str) -> impl Future<Output = Result<bool, StorageError>> + Send;

    /// Bytes the owner holds, and has slots for that were handed out after
    /// `pending_since` (an abandoned slot stops counting): what the quota
    /// counts.
    fn upload_usage(
        &self,
        owner: &str,
        pending_since: SystemTime,
    ) -> impl Future<Output = Result<u64, StorageError>> + Send;

    /// Ids of the owner's uploads.
    fn uploads_of(
        &self,
        owner: &str,
    ) -> impl Future<Output = Result<Vec<String>, StorageError>> + Send;

    /// Ids of slots handed out before `before` whose file never came, at
    /// most `limit`: abandoned uploads.
    fn uploads_abandoned(
        &self,
        before: SystemTime,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<String>, StorageError>> + Send;

    /// Ids of uploads created before `before`, at most `limit`.
    fn uploads_before(
        &self,
        before: SystemTime,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<String>, StorageError>> + Send;

    /// Forgets an upload; true if it existed.
    fn upload_delete(&self, id: &str) -> impl Future<Output = Result<bool, StorageError>> + Send;
}
