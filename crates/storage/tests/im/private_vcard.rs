//! Private XML (XEP-0049), keyed by element name and namespace, and vCards
//! (XEP-0054): set replaces, delete removes.

use super::*;

on_both_backends!(
    private_xml_is_keyed_by_name_and_namespace_and_replaced,
    vcard_set_replaces_and_delete_removes,
);

async fn private_xml_is_keyed_by_name_and_namespace_and_replaced(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    account(db, "bob").await;
    let bookmarks = "<storage xmlns='storage:bookmarks'>\
                     <conference name='Ω \"quoted\" &amp; more' jid='room@muc.example'/>\
                     </storage>";
    s.set_private_xml("alice", DOMAIN, "storage", "storage:bookmarks", bookmarks)
        .await
        .unwrap();
    s.set_private_xml(
        "alice",
        DOMAIN,
        "storage",
        "storage:rosternotes",
        "<storage xmlns='storage:rosternotes'/>",
    )
    .await
    .unwrap();
    s.set_private_xml("alice", DOMAIN, "prefs", "storage:bookmarks", "<prefs/>")
        .await
        .unwrap();

    let get = |who: &'static str, name: &'static str, ns: &'static str| {
        s.private_xml(who, DOMAIN, name, ns)
    };
    assert_eq!(
        get("alice", "storage", "storage:bookmarks").await.unwrap(),
        Some(bookmarks.to_owned())
    );
    assert_eq!(
        get("alice", "storage", "storage:rosternotes")
            .await
            .unwrap()
            .as_deref(),
        Some("<storage xmlns='storage:rosternotes'/>")
    );
    assert_eq!(
        get("alice", "prefs", "storage:bookmarks")
            .await
            .unwrap()
            .as_deref(),
        Some("<prefs/>")
    );
    assert_eq!(get("alice", "other", "urn:x").await.unwrap(), None);
    assert_eq!(
        get("bob", "storage", "storage:bookmarks").await.unwrap(),
        None
    );

    // A set replaces the whole fragment under its key, and only that one.
    s.set_private_xml(
        "alice",
        DOMAIN,
        "storage",
        "storage:bookmarks",
        "<storage xmlns='storage:bookmarks'/>",
    )
    .await
    .unwrap();
    assert_eq!(
        get("alice", "storage", "storage:bookmarks")
            .await
            .unwrap()
            .as_deref(),
        Some("<storage xmlns='storage:bookmarks'/>")
    );
    assert_eq!(
        get("alice", "prefs", "storage:bookmarks")
            .await
            .unwrap()
            .as_deref(),
        Some("<prefs/>")
    );

    assert_eq!(
        s.set_private_xml("ghost", DOMAIN, "storage", "storage:bookmarks", "<x/>")
            .await,
        Err(StorageError::NotFound)
    );
}

async fn vcard_set_replaces_and_delete_removes(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    account(db, "bob").await;
    assert_eq!(s.vcard("alice", DOMAIN).await.unwrap(), None);
    let card = "<vCard xmlns='vcard-temp'><FN>Alice Ærø</FN></vCard>";
    s.set_vcard("alice", DOMAIN, card).await.unwrap();
    s.set_vcard(
        "bob",
        DOMAIN,
        "<vCard xmlns='vcard-temp'><FN>Bob</FN></vCard>",
    )
    .await
    .unwrap();
    assert_eq!(
        s.vcard("alice", DOMAIN).await.unwrap().as_deref(),
        Some(card)
    );

    let new_card = "<vCard xmlns='vcard-temp'><NICKNAME>al</NICKNAME></vCard>";
    s.set_vcard("alice", DOMAIN, new_card).await.unwrap();
    assert_eq!(
        s.vcard("alice", DOMAIN).await.unwrap().as_deref(),
        Some(new_card)
    );

    assert!(s.delete_vcard("alice", DOMAIN).await.unwrap());
    assert_eq!(s.vcard("alice", DOMAIN).await.unwrap(), None);
    assert!(!s.delete_vcard("alice", DOMAIN).await.unwrap());
    assert_eq!(
        s.vcard("bob", DOMAIN).await.unwrap().as_deref(),
        Some("<vCard xmlns='vcard-temp'><FN>Bob</FN></vCard>")
    );

    assert_eq!(
        s.set_vcard("ghost", DOMAIN, card).await,
        Err(StorageError::NotFound)
    );
    assert!(!s.delete_vcard("ghost", DOMAIN).await.unwrap());
}
