//! Publish-subscribe storage (XEP-0060 nodes, items, affiliations and
//! subscriptions, for PEP and hosted services), specified once and run
//! against both backends (see `common`).
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use chorus_storage::{AccountStore, PubsubItem, PubsubStore, PubsubSubscription, StorageError};

use common::Db;

on_both_backends!(
    a_node_is_created_once_with_its_owner,
    a_pep_node_needs_its_account_and_goes_with_it,
    publishing_keeps_order_replaces_ids_and_trims_to_the_newest,
    items_come_by_id_or_newest_and_retract_and_purge_remove_them,
    affiliations_and_subscriptions_are_set_listed_and_removed,
    deleting_a_node_deletes_everything_it_holds,
);

const PEP: &str = "alice@example.org";
const SERVICE: &str = "pubsub.example.org";

fn item(id: &str, payload: &str) -> PubsubItem {
    PubsubItem {
        id: id.to_owned(),
        publisher: PEP.to_owned(),
        payload: payload.to_owned(),
    }
}

async fn ids(db: &Db, service: &str, node: &str, newest: Option<u64>) -> Vec<String> {
    db.storage
        .pubsub_items(service, node, &[], newest)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect()
}

async fn a_node_is_created_once_with_its_owner(db: &Db) {
    let s = &db.storage;
    s.pubsub_create_node(SERVICE, "news", None, "c1", "owner@example.org")
        .await
        .unwrap();
    let again = s
        .pubsub_create_node(SERVICE, "news", None, "c2", "other@example.org")
        .await;
    assert!(
        matches!(again, Err(StorageError::AlreadyExists)),
        "{again:?}"
    );
    let node = s.pubsub_node(SERVICE, "news").await.unwrap().unwrap();
    assert_eq!(node.config, "c1");
    assert_eq!(
        s.pubsub_affiliations(SERVICE, "news").await.unwrap(),
        [("owner@example.org".to_owned(), "owner".to_owned())]
    );
    s.pubsub_configure_node(SERVICE, "news", "c3")
        .await
        .unwrap();
    assert_eq!(
        s.pubsub_node(SERVICE, "news")
            .await
            .unwrap()
            .unwrap()
            .config,
        "c3"
    );
    assert!(matches!(
        s.pubsub_configure_node(SERVICE, "nope", "c").await,
        Err(StorageError::NotFound)
    ));
    s.pubsub_create_node(SERVICE, "alpha", None, "c", "owner@example.org")
        .await
        .unwrap();
    let names: Vec<String> = s
        .pubsub_nodes(SERVICE)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.node)
        .collect();
    assert_eq!(names, ["alpha", "news"]);
    assert!(s.pubsub_nodes("elsewhere").await.unwrap().is_empty());
}

async fn a_pep_node_needs_its_account_and_goes_with_it(db: &Db) {
    let s = &db.storage;
    let missing = s
        .pubsub_create_node(
            PEP,
            "urn:xmpp:avatar:data",
            Some(("alice", "example.org")),
            "c",
            PEP,
        )
        .await;
    assert!(
        matches!(missing, Err(StorageError::NotFound)),
        "{missing:?}"
    );
    s.create_account("alice", "example.org", &[]).await.unwrap();
    s.pubsub_create_node(
        PEP,
        "urn:xmpp:avatar:data",
        Some(("alice", "example.org")),
        "c",
        PEP,
    )
    .await
    .unwrap();
    s.pubsub_publish(PEP, "urn:xmpp:avatar:data", &item("a", "<data/>"), None)
        .await
        .unwrap();
    // A hosted service's node survives the account.
    s.pubsub_create_node(SERVICE, "n", None, "c", PEP)
        .await
        .unwrap();
    s.delete_account("alice", "example.org").await.unwrap();
    assert!(s
        .pubsub_node(PEP, "urn:xmpp:avatar:data")
        .await
        .unwrap()
        .is_none());
    assert!(s
        .pubsub_items(PEP, "urn:xmpp:avatar:data", &[], None)
        .await
        .unwrap()
        .is_empty());
    assert!(s.pubsub_node(SERVICE, "n").await.unwrap().is_some());
}

async fn publishing_keeps_order_replaces_ids_and_trims_to_the_newest(db: &Db) {
    let s = &db.storage;
    s.pubsub_create_node(SERVICE, "n", None, "c", "o@x")
        .await
        .unwrap();
    for id in ["1", "2", "3"] {
        s.pubsub_publish(SERVICE, "n", &item(id, &format!("<p>{id}</p>")), None)
            .await
            .unwrap();
    }
    assert_eq!(ids(db, SERVICE, "n", None).await, ["1", "2", "3"]);
    // Republishing moves the item last, with its new payload.
    s.pubsub_publish(SERVICE, "n", &item("1", "<p>new</p>"), None)
        .await
        .unwrap();
    assert_eq!(ids(db, SERVICE, "n", None).await, ["2", "3", "1"]);
    let last = s.pubsub_items(SERVICE, "n", &[], Some(1)).await.unwrap();
    assert_eq!(last, [item("1", "<p>new</p>")]);
    // A limit keeps the newest.
    s.pubsub_publish(SERVICE, "n", &item("4", ""), Some(2))
        .await
        .unwrap();
    assert_eq!(ids(db, SERVICE, "n", None).await, ["1", "4"]);
    assert!(matches!(
        s.pubsub_publish(SERVICE, "missing", &item("1", ""), None)
            .await,
        Err(StorageError::NotFound)
    ));
}

async fn items_come_by_id_or_newest_and_retract_and_purge_remove_them(db: &Db) {
    let s = &db.storage;
    s.pubsub_create_node(SERVICE, "n", None, "c", "o@x")
        .await
        .unwrap();
    s.pubsub_create_node(SERVICE, "m", None, "c", "o@x")
        .await
        .unwrap();
    for id in ["a", "b", "c"] {
        s.pubsub_publish(SERVICE, "n", &item(id, ""), None)
            .await
            .unwrap();
    }
    s.pubsub_publish(SERVICE, "m", &item("a", "<other/>"), None)
        .await
        .unwrap();
    assert_eq!(ids(db, SERVICE, "n", Some(2)).await, ["b", "c"]);
    let by_id = s
        .pubsub_items(
            SERVICE,
            "n",
            &["c".to_owned(), "zz".to_owned(), "a".to_owned()],
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        by_id.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        ["c", "a"]
    );
    assert!(s.pubsub_retract(SERVICE, "n", "b").await.unwrap());
    assert!(!s.pubsub_retract(SERVICE, "n", "b").await.unwrap());
    assert_eq!(ids(db, SERVICE, "n", None).await, ["a", "c"]);
    s.pubsub_purge(SERVICE, "n").await.unwrap();
    assert!(ids(db, SERVICE, "n", None).await.is_empty());
    // Another node's item with the same id is untouched.
    assert_eq!(ids(db, SERVICE, "m", None).await, ["a"]);
}

async fn affiliations_and_subscriptions_are_set_listed_and_removed(db: &Db) {
    let s = &db.storage;
    s.pubsub_create_node(SERVICE, "n", None, "c", "o@x")
        .await
        .unwrap();
    s.pubsub_create_node(SERVICE, "m", None, "c", "o@x")
        .await
        .unwrap();
    s.pubsub_set_affiliation(SERVICE, "n", "b@x", Some("publisher"))
        .await
        .unwrap();
    s.pubsub_set_affiliation(SERVICE, "n", "b@x", Some("member"))
        .await
        .unwrap();
    s.pubsub_set_affiliation(SERVICE, "m", "b@x", Some("outcast"))
        .await
        .unwrap();
    assert_eq!(
        s.pubsub_affiliations(SERVICE, "n").await.unwrap(),
        [
            ("b@x".to_owned(), "member".to_owned()),
            ("o@x".to_owned(), "owner".to_owned())
        ]
    );
    assert_eq!(
        s.pubsub_affiliations_of(SERVICE, "b@x").await.unwrap(),
        [
            ("m".to_owned(), "outcast".to_owned()),
            ("n".to_owned(), "member".to_owned())
        ]
    );
    s.pubsub_set_affiliation(SERVICE, "n", "b@x", None)
        .await
        .unwrap();
    assert_eq!(s.pubsub_affiliations(SERVICE, "n").await.unwrap().len(), 1);
    assert!(matches!(
        s.pubsub_set_affiliation(SERVICE, "missing", "b@x", Some("member"))
            .await,
        Err(StorageError::NotFound)
    ));

    let sub = |node: &str, jid: &str, state: &str| PubsubSubscription {
        node: node.to_owned(),
        jid: jid.to_owned(),
        subid: String::new(),
        state: state.to_owned(),
        options: String::new(),
    };
    s.pubsub_set_subscription(SERVICE, &sub("n", "b@x/r", "pending"))
        .await
        .unwrap();
    s.pubsub_set_subscription(SERVICE, &sub("n", "b@x/r", "subscribed"))
        .await
        .unwrap();
    s.pubsub_set_subscription(SERVICE, &sub("n", "c@x", "subscribed"))
        .await
        .unwrap();
    s.pubsub_set_subscription(SERVICE, &sub("m", "b@x/r", "subscribed"))
        .await
        .unwrap();
    assert_eq!(
        s.pubsub_subscriptions(SERVICE, Some("n"), None)
            .await
            .unwrap(),
        [
            sub("n", "b@x/r", "subscribed"),
            sub("n", "c@x", "subscribed")
        ]
    );
    assert_eq!(
        s.pubsub_subscriptions(SERVICE, None, Some("b@x/r"))
            .await
            .unwrap(),
        [
            sub("m", "b@x/r", "subscribed"),
            sub("n", "b@x/r", "subscribed")
        ]
    );
    assert_eq!(
        s.pubsub_subscriptions(SERVICE, Some("m"), Some("c@x"))
            .await
            .unwrap(),
        []
    );
    assert!(s
        .pubsub_remove_subscription(SERVICE, "n", "b@x/r", "")
        .await
        .unwrap());
    assert!(!s
        .pubsub_remove_subscription(SERVICE, "n", "b@x/r", "")
        .await
        .unwrap());
    assert_eq!(
        s.pubsub_subscriptions(SERVICE, None, None)
            .await
            .unwrap()
            .len(),
        2
    );
}

async fn deleting_a_node_deletes_everything_it_holds(db: &Db) {
    let s = &db.storage;
    s.pubsub_create_node(SERVICE, "n", None, "c", "o@x")
        .await
        .unwrap();
    s.pubsub_publish(SERVICE, "n", &item("a", ""), None)
        .await
        .unwrap();
    s.pubsub_set_subscription(
        SERVICE,
        &PubsubSubscription {
            node: "n".to_owned(),
            jid: "b@x".to_owned(),
            subid: String::new(),
            state: "subscribed".to_owned(),
            options: String::new(),
        },
    )
    .await
    .unwrap();
    assert!(s.pubsub_delete_node(SERVICE, "n").await.unwrap());
    assert!(!s.pubsub_delete_node(SERVICE, "n").await.unwrap());
    // A node created again under the same name starts empty.
    s.pubsub_create_node(SERVICE, "n", None, "c", "o@x")
        .await
        .unwrap();
    assert!(ids(db, SERVICE, "n", None).await.is_empty());
    assert!(s
        .pubsub_subscriptions(SERVICE, None, None)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.pubsub_affiliations(SERVICE, "n").await.unwrap().len(), 1);
}
