//! Persistent MUC rooms (XEP-0045), specified once and run against both
//! backends (see `common`).
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::time::{Duration, SystemTime};

use chorus_storage::{ArchiveCursor, ArchiveQuery, ArchivedMessage, MucStore, StoredRoom};

use common::Db;

on_both_backends!(
    a_room_is_saved_whole_and_read_back,
    rooms_are_listed_per_service_public_ones_alone_if_asked,
    a_deleted_room_is_gone,
    a_room_archive_keeps_order_pages_filters_and_takes_repeats,
);

fn room(jid: &str, service: &str, public: bool, state: &str) -> StoredRoom {
    StoredRoom {
        jid: jid.to_owned(),
        service: service.to_owned(),
        name: format!("Room {jid}"),
        public,
        state: state.to_owned(),
    }
}

async fn a_room_is_saved_whole_and_read_back(db: &Db) {
    let s = &db.storage;
    assert_eq!(s.muc_room("a@conference.example").await.unwrap(), None);
    let first = room("a@conference.example", "conference.example", true, "<one/>");
    s.muc_save_room(&first).await.unwrap();
    assert_eq!(
        s.muc_room("a@conference.example").await.unwrap(),
        Some(first)
    );
    // Saving again replaces every column: writes repeat without harm.
    let second = room(
        "a@conference.example",
        "conference.example",
        false,
        "<two/>",
    );
    s.muc_save_room(&second).await.unwrap();
    s.muc_save_room(&second).await.unwrap();
    assert_eq!(
        s.muc_room("a@conference.example").await.unwrap(),
        Some(second)
    );
}

async fn rooms_are_listed_per_service_public_ones_alone_if_asked(db: &Db) {
    let s = &db.storage;
    for r in [
        room("b@conference.example", "conference.example", true, "x"),
        room("a@conference.example", "conference.example", false, "x"),
        room("c@conference.example", "conference.example", true, "x"),
        room("a@chat.example", "chat.example", true, "x"),
    ] {
        s.muc_save_room(&r).await.unwrap();
    }
    let jids = |rooms: Vec<StoredRoom>| rooms.into_iter().map(|r| r.jid).collect::<Vec<_>>();
    assert_eq!(
        jids(s.muc_rooms("conference.example", false).await.unwrap()),
        [
            "a@conference.example",
            "b@conference.example",
            "c@conference.example"
        ]
    );
    assert_eq!(
        jids(s.muc_rooms("conference.example", true).await.unwrap()),
        ["b@conference.example", "c@conference.example"]
    );
    assert_eq!(
        jids(s.muc_rooms("chat.example", true).await.unwrap()),
        ["a@chat.example"]
    );
}

async fn a_deleted_room_is_gone(db: &Db) {
    let s = &db.storage;
    s.muc_save_room(&room(
        "a@conference.example",
        "conference.example",
        true,
        "x",
    ))
    .await
    .unwrap();
    assert!(s.muc_delete_room("a@conference.example").await.unwrap());
    assert!(!s.muc_delete_room("a@conference.example").await.unwrap());
    assert_eq!(s.muc_room("a@conference.example").await.unwrap(), None);
    assert!(s
        .muc_rooms("conference.example", false)
        .await
        .unwrap()
        .is_empty());
}

const ROOM: &str = "tea@conference.example";

fn said(id: &str, nick: &str, at: SystemTime) -> ArchivedMessage {
    ArchivedMessage {
        stanza_id: id.to_owned(),
        timestamp: at,
        with: format!("{ROOM}/{nick}"),
        outgoing: false,
        stanza: format!("<message><body>{id}</body></message>"),
    }
}

fn query(with: Option<&str>, cursor: ArchiveCursor, limit: u32) -> ArchiveQuery {
    ArchiveQuery {
        with: with.map(str::to_owned),
        start: None,
        end: None,
        after_id: None,
        before_id: None,
        ids: Vec::new(),
        cursor,
        limit,
    }
}

async fn a_room_archive_keeps_order_pages_filters_and_takes_repeats(db: &Db) {
    let s = &db.storage;
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    // Three at the same instant and one from an earlier clock: the order
    // is the order of appends.
    for (id, nick, at) in [
        ("a", "Alice", t),
        ("b", "Bob", t),
        ("c", "Alice", t),
        ("d", "Bob", t - Duration::from_secs(60)),
    ] {
        s.muc_archive_append(ROOM, &said(id, nick, at))
            .await
            .unwrap();
    }
    // A repeated append (a room actor killed half-way) changes nothing.
    s.muc_archive_append(ROOM, &said("b", "Bob", t))
        .await
        .unwrap();
    let ids = |page: chorus_storage::ArchivePage| {
        page.messages
            .into_iter()
            .map(|m| m.stanza_id)
            .collect::<Vec<_>>()
    };
    let all = s
        .muc_archive_query(ROOM, &query(None, ArchiveCursor::First, 10))
        .await
        .unwrap();
    assert!(all.complete);
    assert_eq!(all.messages[1].with, format!("{ROOM}/Bob"));
    assert_eq!(ids(all), ["a", "b", "c", "d"]);
    let page = s
        .muc_archive_query(ROOM, &query(None, ArchiveCursor::After("a".into()), 2))
        .await
        .unwrap();
    assert!(!page.complete);
    assert_eq!(ids(page), ["b", "c"]);
    let last = s
        .muc_archive_query(ROOM, &query(None, ArchiveCursor::Last, 1))
        .await
        .unwrap();
    assert_eq!(ids(last), ["d"]);
    let bob = format!("{ROOM}/Bob");
    let by_bob = s
        .muc_archive_query(ROOM, &query(Some(&bob), ArchiveCursor::First, 10))
        .await
        .unwrap();
    assert_eq!(ids(by_bob), ["b", "d"]);
    assert_eq!(
        s.muc_archive_count(ROOM, &query(Some(&bob), ArchiveCursor::First, 0))
            .await
            .unwrap(),
        2
    );
    // A tombstone replaces the message where it was.
    assert!(s.muc_archive_replace(ROOM, "b", "<gone/>").await.unwrap());
    assert!(!s.muc_archive_replace(ROOM, "zz", "<gone/>").await.unwrap());
    let all = s
        .muc_archive_query(ROOM, &query(None, ArchiveCursor::First, 10))
        .await
        .unwrap();
    assert_eq!(all.messages[1].stanza, "<gone/>");
    assert_eq!(all.messages[1].stanza_id, "b");
    // Another room's archive is another archive.
    let other = s
        .muc_archive_query(
            "other@conference.example",
            &query(None, ArchiveCursor::First, 10),
        )
        .await
        .unwrap();
    assert!(other.messages.is_empty());
    // Deleting the room deletes its archive.
    s.muc_save_room(&room(ROOM, "conference.example", true, "x"))
        .await
        .unwrap();
    s.muc_delete_room(ROOM).await.unwrap();
    assert_eq!(
        s.muc_archive_count(ROOM, &query(None, ArchiveCursor::First, 0))
            .await
            .unwrap(),
        0
    );
}
