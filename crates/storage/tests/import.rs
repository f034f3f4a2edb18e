//! Bulk imports (XEP-0227 version 1.1, PIEFXIS): [`ImportStore`] creates
//! whole accounts in one transaction per batch, and
//! [`PrivateStore::private_fragments`] lists what an export writes. Run
//! against both backends (see `common`).
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chorus_storage::{
    AccountStore, ImportOutcome, ImportStore, ImportedAccount, ImportedOffline, ImportedPepNode,
    OfflineStore, OfflineStored, PrivateFragment, PrivateStore, PubsubItem, PubsubStore,
    PubsubSubscription, RosterChange, RosterItem, RosterStore, StorageError, StoredCredentials,
    Subscription, VcardStore,
};

use common::Db;

on_both_backends!(
    import_creates_accounts_with_everything_they_hold,
    import_leaves_existing_accounts_alone_and_first_duplicate_wins,
    invalid_batch_writes_nothing,
    private_fragments_are_listed_in_key_order,
    large_batches_read_back_account_by_account,
    pep_nodes_come_with_their_account,
);

const DOMAIN: &str = "example.org";

fn creds(hash: &str, fill: u8) -> StoredCredentials {
    let len = if hash == "SHA-1" { 20 } else { 32 };
    StoredCredentials {
        hash: hash.to_owned(),
        salt: vec![fill; 16],
        iterations: 4096,
        stored_key: vec![fill; len],
        server_key: vec![fill.wrapping_add(1); len],
    }
}

fn item(jid: &str, subscription: Subscription, groups: &[&str]) -> RosterItem {
    RosterItem {
        jid: jid.to_owned(),
        name: Some(format!("name of {jid}")),
        subscription,
        ask: subscription == Subscription::None,
        approved: false,
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

fn fragment(name: &str, namespace: &str) -> PrivateFragment {
    PrivateFragment {
        name: name.to_owned(),
        namespace: namespace.to_owned(),
        xml: format!("<{name} xmlns='{namespace}'/>"),
    }
}

fn at(secs: u64, micros: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros)
}

fn account(localpart: &str) -> ImportedAccount {
    ImportedAccount {
        localpart: localpart.to_owned(),
        domain: DOMAIN.to_owned(),
        credentials: vec![creds("SHA-1", 1), creds("SHA-256", 2)],
        roster: Vec::new(),
        vcard: None,
        private: Vec::new(),
        pep: Vec::new(),
        offline: Vec::new(),
    }
}

async fn import_creates_accounts_with_everything_they_hold(db: &Db) {
    let s = &db.storage;
    let mut alice = account("alice");
    alice.roster = vec![
        item(
            "romeo@example.net",
            Subscription::Both,
            &["Friends", "Lovers"],
        ),
        item("nurse@example.net", Subscription::None, &[]),
        item("tybalt@example.net", Subscription::From, &["Enemies"]),
    ];
    alice.vcard = Some("<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>".into());
    alice.private = vec![fragment("storage", "storage:bookmarks")];
    alice.offline = vec![
        ImportedOffline {
            stored_at: at(1_700_000_000, 123_456),
            stanza:
                "<message xmlns='jabber:client' to='alice@example.org'><body>1</body></message>"
                    .into(),
        },
        ImportedOffline {
            stored_at: at(1_700_000_100, 0),
            stanza:
                "<message xmlns='jabber:client' to='alice@example.org'><body>2</body></message>"
                    .into(),
        },
    ];
    let mut bob = account("bob");
    bob.credentials = Vec::new();

    let outcomes = s.import_accounts(&[alice.clone(), bob]).await.unwrap();
    assert_eq!(
        outcomes,
        vec![ImportOutcome::Created, ImportOutcome::Created]
    );

    assert_eq!(
        s.list_accounts(Some(DOMAIN)).await.unwrap(),
        vec![
            ("alice".to_owned(), DOMAIN.to_owned()),
            ("bob".to_owned(), DOMAIN.to_owned())
        ]
    );
    for c in &alice.credentials {
        assert_eq!(
            s.credentials("alice", DOMAIN, &c.hash).await.unwrap(),
            Some(c.clone())
        );
    }
    assert_eq!(s.credentials("bob", DOMAIN, "SHA-1").await.unwrap(), None);

    // The roster reads back as if built item by item: ordered by JID, each
    // item at its own version, the roster at the last one.
    let roster = s.roster("alice", DOMAIN).await.unwrap();
    assert_eq!(roster.version, 3);
    let mut expected = alice.roster.clone();
    expected.sort_by(|a, b| a.jid.cmp(&b.jid));
    assert_eq!(roster.items, expected);
    let changes = s
        .roster_changes_since("alice", DOMAIN, 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        changes,
        alice
            .roster
            .iter()
            .zip(1..)
            .map(|(item, version)| RosterChange::Updated {
                version,
                item: item.clone()
            })
            .collect::<Vec<_>>()
    );
    // Later writes carry on from the imported version.
    let added = item("juliet@example.net", Subscription::To, &[]);
    assert_eq!(s.put_roster_item("alice", DOMAIN, &added).await.unwrap(), 4);
    assert_eq!(s.roster("bob", DOMAIN).await.unwrap().version, 0);

    assert_eq!(s.vcard("alice", DOMAIN).await.unwrap(), alice.vcard);
    assert_eq!(s.vcard("bob", DOMAIN).await.unwrap(), None);
    assert_eq!(
        s.private_fragments("alice", DOMAIN).await.unwrap(),
        alice.private
    );

    let offline = s.offline_messages("alice", DOMAIN, 10).await.unwrap();
    assert_eq!(
        offline
            .iter()
            .map(|m| (m.id, m.stored_at, m.stanza.clone()))
            .collect::<Vec<_>>(),
        alice
            .offline
            .iter()
            .zip(1..)
            .map(|(m, id)| (id, m.stored_at, m.stanza.clone()))
            .collect::<Vec<_>>()
    );
    // The imported messages do not count against a later quota check's ids:
    // the next message follows them.
    assert_eq!(
        s.store_offline("alice", DOMAIN, "<message xmlns='jabber:client'/>", 100)
            .await
            .unwrap(),
        OfflineStored::Stored(3)
    );

    // Deleting the account takes everything the import wrote with it.
    assert!(s.delete_account("alice", DOMAIN).await.unwrap());
    assert!(s.roster("alice", DOMAIN).await.unwrap().items.is_empty());
    assert_eq!(s.count_offline("alice", DOMAIN).await.unwrap(), 0);
    assert!(s
        .private_fragments("alice", DOMAIN)
        .await
        .unwrap()
        .is_empty());
}

async fn import_leaves_existing_accounts_alone_and_first_duplicate_wins(db: &Db) {
    let s = &db.storage;
    let original = vec![creds("SHA-256", 9)];
    s.create_account("carol", DOMAIN, &original).await.unwrap();

    let mut carol = account("carol");
    carol.vcard = Some("<vCard xmlns='vcard-temp'/>".into());
    let dave_first = account("dave");
    let mut dave_again = account("dave");
    dave_again.credentials = vec![creds("SHA-1", 7)];
    dave_again.vcard = Some("<vCard xmlns='vcard-temp'><FN>second</FN></vCard>".into());

    let outcomes = s
        .import_accounts(&[carol, dave_first.clone(), dave_again])
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        vec![
            ImportOutcome::AlreadyExists,
            ImportOutcome::Created,
            ImportOutcome::AlreadyExists
        ]
    );
    // Carol kept what she had and got nothing new.
    assert_eq!(
        s.credentials("carol", DOMAIN, "SHA-256").await.unwrap(),
        Some(original[0].clone())
    );
    assert_eq!(s.credentials("carol", DOMAIN, "SHA-1").await.unwrap(), None);
    assert_eq!(s.vcard("carol", DOMAIN).await.unwrap(), None);
    // Dave is his first appearance.
    assert_eq!(
        s.credentials("dave", DOMAIN, "SHA-1").await.unwrap(),
        Some(dave_first.credentials[0].clone())
    );
    assert_eq!(s.vcard("dave", DOMAIN).await.unwrap(), None);
}

async fn invalid_batch_writes_nothing(db: &Db) {
    let s = &db.storage;
    let fine = account("erin");
    let cases: Vec<ImportedAccount> = vec![
        {
            let mut a = account("frank");
            a.roster = vec![
                item("x@example.net", Subscription::None, &[]),
                item("x@example.net", Subscription::Both, &[]),
            ];
            a
        },
        {
            let mut a = account("frank");
            a.roster = vec![item("x@example.net", Subscription::None, &["g", "g"])];
            a
        },
        {
            let mut a = account("frank");
            a.credentials = vec![creds("SHA-1", 1), creds("SHA-1", 2)];
            a
        },
        {
            let mut a = account("frank");
            a.private = vec![fragment("s", "urn:x"), fragment("s", "urn:x")];
            a
        },
    ];
    for bad in cases {
        let err = s.import_accounts(&[fine.clone(), bad]).await.unwrap_err();
        assert!(matches!(err, StorageError::InvalidInput(_)), "{err:?}");
        assert_eq!(s.count_accounts(None).await.unwrap(), 0);
    }
    assert_eq!(s.import_accounts(&[]).await.unwrap(), vec![]);
}

async fn private_fragments_are_listed_in_key_order(db: &Db) {
    let s = &db.storage;
    assert!(s
        .private_fragments("nobody", DOMAIN)
        .await
        .unwrap()
        .is_empty());
    s.create_account("gina", DOMAIN, &[]).await.unwrap();
    s.create_account("hank", DOMAIN, &[]).await.unwrap();
    for (name, ns) in [
        ("storage", "storage:rosternotes"),
        ("b", "storage:bookmarks"),
        ("a", "storage:bookmarks"),
    ] {
        s.set_private_xml("gina", DOMAIN, name, ns, &format!("<{name} xmlns='{ns}'/>"))
            .await
            .unwrap();
    }
    s.set_private_xml("hank", DOMAIN, "x", "urn:x", "<x xmlns='urn:x'/>")
        .await
        .unwrap();
    assert_eq!(
        s.private_fragments("gina", DOMAIN).await.unwrap(),
        vec![
            fragment("a", "storage:bookmarks"),
            fragment("b", "storage:bookmarks"),
            fragment("storage", "storage:rosternotes"),
        ]
    );
}

/// More rows than one multi-row statement takes, in every table, with
/// existing and repeated names among them.
async fn large_batches_read_back_account_by_account(db: &Db) {
    let s = &db.storage;
    let n = 150;
    s.create_account("user0007", DOMAIN, &[]).await.unwrap();
    let mut accounts: Vec<ImportedAccount> = (0..n)
        .map(|i| {
            let mut a = account(&format!("user{i:04}"));
            a.roster = (0..i % 4)
                .map(|k| {
                    item(
                        &format!("c{k}@example.net"),
                        Subscription::Both,
                        &["g1", "g2"][..k % 3],
                    )
                })
                .collect();
            a.vcard =
                (i % 2 == 0).then(|| format!("<vCard xmlns='vcard-temp'><FN>{i}</FN></vCard>"));
            a.private = (0..i % 3)
                .map(|k| fragment(&format!("p{k}"), "urn:x"))
                .collect();
            a.offline = (0..i % 5)
                .map(|k| ImportedOffline {
                    stored_at: at(1_700_000_000 + k as u64, 7),
                    stanza: format!(
                        "<message xmlns='jabber:client'><body>{i}/{k}</body></message>"
                    ),
                })
                .collect();
            a
        })
        .collect();
    accounts.insert(100, account("user0003"));

    let names: Vec<String> = (0..n + 10).map(|i| format!("user{i:04}")).collect();
    assert_eq!(
        s.existing_accounts(DOMAIN, &names).await.unwrap(),
        HashSet::from(["user0007".to_owned()])
    );
    let outcomes = s.import_accounts(&accounts).await.unwrap();
    let skipped: Vec<usize> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| **o == ImportOutcome::AlreadyExists)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(skipped, vec![7, 100]);
    assert_eq!(s.count_accounts(Some(DOMAIN)).await.unwrap(), n as u64);
    assert_eq!(s.existing_accounts(DOMAIN, &names).await.unwrap().len(), n);
    assert!(s
        .existing_accounts("elsewhere.example", &names)
        .await
        .unwrap()
        .is_empty());

    for (i, a) in accounts.iter().enumerate() {
        if skipped.contains(&i) {
            continue;
        }
        let who = a.localpart.as_str();
        assert_eq!(
            s.credentials(who, DOMAIN, "SHA-256")
                .await
                .unwrap()
                .as_ref(),
            Some(&a.credentials[1])
        );
        let roster = s.roster(who, DOMAIN).await.unwrap();
        assert_eq!(roster.items, a.roster, "{who}");
        assert_eq!(roster.version, a.roster.len() as u64, "{who}");
        assert_eq!(s.vcard(who, DOMAIN).await.unwrap(), a.vcard, "{who}");
        assert_eq!(s.private_fragments(who, DOMAIN).await.unwrap(), a.private);
        let offline = s.offline_messages(who, DOMAIN, 100).await.unwrap();
        assert_eq!(
            offline
                .iter()
                .map(|m| (m.stored_at, m.stanza.clone()))
                .collect::<Vec<_>>(),
            a.offline
                .iter()
                .map(|m| (m.stored_at, m.stanza.clone()))
                .collect::<Vec<_>>(),
            "{who}"
        );
    }
    // The existing account kept its empty credentials.
    assert_eq!(
        s.credentials("user0007", DOMAIN, "SHA-1").await.unwrap(),
        None
    );
}

/// PEP nodes are created with the account: the account owns them, other
/// affiliations and subscriptions come along, items keep their order and
/// the next publish lands after them; a node or item listed twice refuses
/// the batch.
async fn pep_nodes_come_with_their_account(db: &Db) {
    let s = &db.storage;
    let service = format!("romeo@{DOMAIN}");
    let item = |id: &str| PubsubItem {
        id: id.to_owned(),
        publisher: service.clone(),
        payload: format!("<p xmlns='urn:example'>{id}</p>"),
    };
    let node = ImportedPepNode {
        node: "urn:example".to_owned(),
        config: "c".to_owned(),
        affiliations: vec![("juliet@capulet.lit".to_owned(), "member".to_owned())],
        subscriptions: vec![PubsubSubscription {
            node: "urn:example".to_owned(),
            jid: "juliet@capulet.lit".to_owned(),
            subid: String::new(),
            state: "subscribed".to_owned(),
            options: String::new(),
        }],
        items: vec![item("first"), item("second")],
    };
    let mut bad = account("romeo");
    bad.pep = vec![node.clone(), node.clone()];
    assert!(matches!(
        s.import_accounts(&[bad]).await,
        Err(StorageError::InvalidInput(_))
    ));
    let mut romeo = account("romeo");
    romeo.pep = vec![node];
    s.import_accounts(&[romeo]).await.unwrap();
    assert_eq!(
        s.pubsub_node(&service, "urn:example")
            .await
            .unwrap()
            .unwrap()
            .config,
        "c"
    );
    let mut affs = s
        .pubsub_affiliations(&service, "urn:example")
        .await
        .unwrap();
    affs.sort();
    assert_eq!(
        affs,
        [
            ("juliet@capulet.lit".to_owned(), "member".to_owned()),
            (service.clone(), "owner".to_owned())
        ]
    );
    assert_eq!(
        s.pubsub_subscriptions(&service, None, None)
            .await
            .unwrap()
            .len(),
        1
    );
    s.pubsub_publish(&service, "urn:example", &item("third"), None)
        .await
        .unwrap();
    let ids: Vec<String> = s
        .pubsub_items(&service, "urn:example", &[], None)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(ids, ["first", "second", "third"]);
    s.delete_account("romeo", DOMAIN).await.unwrap();
    assert!(s.pubsub_nodes(&service).await.unwrap().is_empty());
}
