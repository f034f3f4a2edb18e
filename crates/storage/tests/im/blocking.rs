//! Block lists (XEP-0191): idempotent and sorted, and the XEP's matching
//! rules for whether a JID is blocked.

use super::*;

on_both_backends!(
    block_list_is_idempotent_and_sorted,
    is_blocked_follows_the_xep_matching_rules,
);

async fn block_list_is_idempotent_and_sorted(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    account(db, "bob").await;
    assert_eq!(
        s.blocklist("alice", DOMAIN).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        s.block(
            "alice",
            DOMAIN,
            &["b@x.example", "a@x.example/res", "b@x.example"]
        )
        .await
        .unwrap(),
        2
    );
    assert_eq!(
        s.block("alice", DOMAIN, &["b@x.example", "Z.example", "_.example"])
            .await
            .unwrap(),
        2
    );
    assert_eq!(s.block("alice", DOMAIN, &["b@x.example"]).await.unwrap(), 0);
    assert_eq!(s.block("alice", DOMAIN, &[]).await.unwrap(), 0);
    // Byte-wise: 'Z' < '_' < 'a'.
    assert_eq!(
        s.blocklist("alice", DOMAIN).await.unwrap(),
        ["Z.example", "_.example", "a@x.example/res", "b@x.example"]
    );
    s.block("bob", DOMAIN, &["b@x.example"]).await.unwrap();

    assert_eq!(
        s.unblock(
            "alice",
            DOMAIN,
            &["b@x.example", "never@x.example", "b@x.example"]
        )
        .await
        .unwrap(),
        1
    );
    assert_eq!(
        s.blocklist("alice", DOMAIN).await.unwrap(),
        ["Z.example", "_.example", "a@x.example/res"]
    );
    assert_eq!(s.unblock_all("alice", DOMAIN).await.unwrap(), 3);
    assert_eq!(
        s.blocklist("alice", DOMAIN).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(s.unblock_all("alice", DOMAIN).await.unwrap(), 0);
    // Bob's list is his own.
    assert_eq!(s.blocklist("bob", DOMAIN).await.unwrap(), ["b@x.example"]);

    assert_eq!(
        s.block("ghost", DOMAIN, &["b@x.example"]).await,
        Err(StorageError::NotFound)
    );
    assert_eq!(
        s.block("ghost", DOMAIN, &[]).await,
        Err(StorageError::NotFound)
    );
    assert_eq!(
        s.unblock("ghost", DOMAIN, &["b@x.example"]).await.unwrap(),
        0
    );
    assert!(!s.is_blocked("ghost", DOMAIN, "b@x.example").await.unwrap());
}

async fn is_blocked_follows_the_xep_matching_rules(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    account(db, "bob").await;
    s.block(
        "alice",
        DOMAIN,
        &[
            "romeo@montague.example",
            "evil.example",
            "nurse@capulet.example/balcony",
            "capulet.example/chamber",
        ],
    )
    .await
    .unwrap();
    let cases = [
        // A bare JID covers itself and every resource of it.
        ("romeo@montague.example", true),
        ("romeo@montague.example/orchard", true),
        ("benvolio@montague.example", false),
        ("montague.example", false),
        // A domain covers itself, its users and its resources.
        ("evil.example", true),
        ("imp@evil.example", true),
        ("imp@evil.example/x", true),
        ("evil.example/component", true),
        ("sub.evil.example", false),
        ("evil.example.org", false),
        // A full JID covers only itself.
        ("nurse@capulet.example/balcony", true),
        ("nurse@capulet.example/kitchen", false),
        ("nurse@capulet.example", false),
        // domain/resource covers that resource of the domain and of its users.
        ("capulet.example/chamber", true),
        ("juliet@capulet.example/chamber", true),
        ("capulet.example/hall", false),
        ("capulet.example", false),
    ];
    for (jid, blocked) in cases {
        assert_eq!(
            s.is_blocked("alice", DOMAIN, jid).await.unwrap(),
            blocked,
            "{jid}"
        );
    }
    assert!(!s
        .is_blocked("bob", DOMAIN, "romeo@montague.example")
        .await
        .unwrap());
}
