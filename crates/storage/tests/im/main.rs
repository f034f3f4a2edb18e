//! Instant-messaging storage (rosters, pending subscriptions, offline
//! messages, private XML, vCards, block lists), specified once and run
//! against both backends (see `common` for how).
//!
//! One test binary, one file per topic: `roster.rs` (with pending
//! subscriptions), `offline.rs`, `private_vcard.rs`, `blocking.rs`,
//! `account_deletion.rs` and `admin.rs` (disabled accounts and the message
//! of the day); the helpers they share are here.
#![allow(clippy::unwrap_used)]

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, SystemTime};

use chorus_storage::{
    AccountStore, AdminStore, ArchiveStore, Backend, BlockStore, ClientStore, LastActivityStore,
    OfflineStore, OfflineStored, PrivateStore, PubsubStore, PushStore, RosterChange, RosterItem,
    RosterStore, StorageError, Subscription, TokenSlot, VcardStore, ROSTER_REMOVALS_KEPT,
};

use common::Db;

mod account_deletion;
mod admin;
mod blocking;
mod clients;
mod last_activity;
mod offline;
mod private_vcard;
mod roster;
mod upload;

const DOMAIN: &str = "example.org";

async fn account(db: &Db, localpart: &str) {
    db.storage
        .create_account(localpart, DOMAIN, &[])
        .await
        .unwrap();
}

fn item(jid: &str, groups: &[&str]) -> RosterItem {
    RosterItem {
        jid: jid.to_owned(),
        name: None,
        subscription: Subscription::None,
        ask: false,
        approved: false,
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

fn updated(version: u64, item: RosterItem) -> RosterChange {
    RosterChange::Updated { version, item }
}

fn removed(version: u64, jid: &str) -> RosterChange {
    RosterChange::Removed {
        version,
        jid: jid.to_owned(),
    }
}
