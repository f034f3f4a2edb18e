//! XEP-0357 push registrations, specified once and run against both
//! backends (see `common`): keyed per (account, app server, node),
//! replaced when enabled again, capped per account by evicting the oldest,
//! disabled one by one or per app server, gone with the account.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use chorus_storage::{AccountStore, PushRegistration, PushStore, StorageError};

use common::Db;

on_both_backends!(
    enabling_again_replaces_and_registrations_are_per_account,
    past_the_cap_the_oldest_registration_goes,
    disabling_takes_one_node_or_every_node_of_a_service,
    registrations_need_an_account_and_go_with_it,
);

const DOMAIN: &str = "example.org";

fn reg(service: &str, node: &str, options: &str) -> PushRegistration {
    PushRegistration {
        service: service.to_owned(),
        node: node.to_owned(),
        options: options.to_owned(),
    }
}

async fn accounts(db: &Db, names: &[&str]) {
    for n in names {
        db.storage.create_account(n, DOMAIN, &[]).await.unwrap();
    }
}

/// Distinct enable times: the order is by time, in microseconds.
async fn tick() {
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
}

async fn enabling_again_replaces_and_registrations_are_per_account(db: &Db) {
    let s = &db.storage;
    accounts(db, &["alice", "bob"]).await;
    assert_eq!(s.push_registrations("alice", DOMAIN).await.unwrap(), vec![]);
    let first = reg("push.example.net", "n1", "<x a='1'/>");
    assert!(s
        .push_enable("alice", DOMAIN, &first, 5)
        .await
        .unwrap()
        .is_empty());
    tick().await;
    let replaced = reg("push.example.net", "n1", "<x a='2'/>");
    assert!(s
        .push_enable("alice", DOMAIN, &replaced, 5)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.push_registrations("alice", DOMAIN).await.unwrap(),
        vec![replaced.clone()]
    );
    // Another node of the same service is another registration; no node
    // at all is one too.
    tick().await;
    let other = reg("push.example.net", "n2", "");
    s.push_enable("alice", DOMAIN, &other, 5).await.unwrap();
    tick().await;
    let bare = reg("push.example.net", "", "");
    s.push_enable("alice", DOMAIN, &bare, 5).await.unwrap();
    assert_eq!(
        s.push_registrations("alice", DOMAIN).await.unwrap(),
        vec![bare, other, replaced]
    );
    assert_eq!(s.push_registrations("bob", DOMAIN).await.unwrap(), vec![]);
}

async fn past_the_cap_the_oldest_registration_goes(db: &Db) {
    let s = &db.storage;
    accounts(db, &["alice"]).await;
    let (a, b, c) = (
        reg("push.example.net", "a", ""),
        reg("push.example.net", "b", ""),
        reg("push.example.net", "c", ""),
    );
    s.push_enable("alice", DOMAIN, &a, 2).await.unwrap();
    tick().await;
    s.push_enable("alice", DOMAIN, &b, 2).await.unwrap();
    tick().await;
    assert_eq!(
        s.push_enable("alice", DOMAIN, &c, 2).await.unwrap(),
        vec![a.clone()]
    );
    assert_eq!(
        s.push_registrations("alice", DOMAIN).await.unwrap(),
        vec![c.clone(), b.clone()]
    );
    // Enabling b again makes it the newest: c is now the oldest.
    tick().await;
    s.push_enable("alice", DOMAIN, &b, 2).await.unwrap();
    tick().await;
    assert_eq!(
        s.push_enable("alice", DOMAIN, &a, 2).await.unwrap(),
        vec![c]
    );
}

async fn disabling_takes_one_node_or_every_node_of_a_service(db: &Db) {
    let s = &db.storage;
    accounts(db, &["alice"]).await;
    for (service, node) in [
        ("p1.example", "a"),
        ("p1.example", "b"),
        ("p2.example", "a"),
    ] {
        s.push_enable("alice", DOMAIN, &reg(service, node, ""), 10)
            .await
            .unwrap();
        tick().await;
    }
    assert_eq!(
        s.push_disable("alice", DOMAIN, "p1.example", Some("a"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.push_disable("alice", DOMAIN, "p1.example", Some("a"))
            .await
            .unwrap(),
        0
    );
    s.push_enable("alice", DOMAIN, &reg("p1.example", "c", ""), 10)
        .await
        .unwrap();
    assert_eq!(
        s.push_disable("alice", DOMAIN, "p1.example", None)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        s.push_registrations("alice", DOMAIN).await.unwrap(),
        vec![reg("p2.example", "a", "")]
    );
}

async fn registrations_need_an_account_and_go_with_it(db: &Db) {
    let s = &db.storage;
    let r = reg("push.example.net", "n", "<x/>");
    assert!(matches!(
        s.push_enable("nobody", DOMAIN, &r, 5).await,
        Err(StorageError::NotFound)
    ));
    assert_eq!(
        s.push_disable("nobody", DOMAIN, "push.example.net", None)
            .await
            .unwrap(),
        0
    );
    accounts(db, &["alice", "bob"]).await;
    s.push_enable("alice", DOMAIN, &r, 5).await.unwrap();
    s.push_enable("bob", DOMAIN, &r, 5).await.unwrap();
    assert!(s.delete_account("alice", DOMAIN).await.unwrap());
    accounts(db, &["alice"]).await;
    assert_eq!(s.push_registrations("alice", DOMAIN).await.unwrap(), vec![]);
    assert_eq!(s.push_registrations("bob", DOMAIN).await.unwrap(), vec![r]);
}
