//! Persistent MUC rooms (XEP-0045), specified once and run against both
//! backends (see `common`).
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use chorus_storage::{MucStore, StoredRoom};

use common::Db;

on_both_backends!(
    a_room_is_saved_whole_and_read_back,
    rooms_are_listed_per_service_public_ones_alone_if_asked,
    a_deleted_room_is_gone,
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
