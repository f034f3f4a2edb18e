//! Clients (XEP-0388 user agents) and their FAST tokens (XEP-0484): the
//! two slots, replay counters, revocation with the password.

use super::*;

on_both_backends!(
    clients_are_recorded_updated_and_trimmed,
    a_new_token_replaces_an_unused_one_and_becomes_current_on_use,
    counters_refuse_replays,
    a_password_change_or_revocation_ends_tokens,
);

async fn clients_are_recorded_updated_and_trimmed(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    // An account that does not exist records nothing.
    s.client_seen("nobody", DOMAIN, "x", "", "", 10)
        .await
        .unwrap();
    assert!(s.clients("nobody", DOMAIN).await.unwrap().is_empty());
    s.client_seen("alice", DOMAIN, "a", "Dino", "pc", 2)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    s.client_seen("alice", DOMAIN, "b", "Gajim", "", 2)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    // Seen again, renamed: one row, updated.
    s.client_seen("alice", DOMAIN, "a", "Dino 2", "pc", 2)
        .await
        .unwrap();
    let list = s.clients("alice", DOMAIN).await.unwrap();
    let ids: Vec<&str> = list.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(list[0].software, "Dino 2");
    assert!(list[0].last_seen > list[0].first_seen);
    assert_eq!(list[0].token_expires, None);
    // A third client pushes out the least recently seen.
    tokio::time::sleep(Duration::from_millis(5)).await;
    s.client_seen("alice", DOMAIN, "c", "Conversations", "phone", 2)
        .await
        .unwrap();
    let ids: Vec<String> = s
        .clients("alice", DOMAIN)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, ["c", "a"]);
}

fn later(days: u64) -> SystemTime {
    // Whole seconds: stored times are exact microseconds.
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    SystemTime::UNIX_EPOCH + Duration::from_secs(now + days * 86_400)
}

async fn a_new_token_replaces_an_unused_one_and_becomes_current_on_use(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    // No client recorded: nothing to attach a token to.
    assert!(!s
        .fast_issue("alice", DOMAIN, "ua", "HT-SHA-256-NONE", &[1; 32], later(1))
        .await
        .unwrap());
    s.client_seen("alice", DOMAIN, "ua", "", "", 10)
        .await
        .unwrap();
    assert!(s
        .fast_issue("alice", DOMAIN, "ua", "HT-SHA-256-NONE", &[1; 32], later(1))
        .await
        .unwrap());
    assert!(s
        .fast_issue("alice", DOMAIN, "ua", "HT-SHA-256-EXPR", &[2; 32], later(2))
        .await
        .unwrap());
    let tokens = s.fast_tokens("alice", DOMAIN, "ua").await.unwrap();
    assert_eq!(tokens.len(), 1, "the unused token was replaced");
    assert_eq!(tokens[0].slot, TokenSlot::New);
    assert_eq!(tokens[0].hash, vec![2; 32]);
    assert_eq!(tokens[0].mechanism, "HT-SHA-256-EXPR");
    assert_eq!(tokens[0].expires, later(2));
    // A use names the hash it verified: another one does not count.
    assert!(!s
        .fast_used("alice", DOMAIN, "ua", TokenSlot::New, &[1; 32], Some(1))
        .await
        .unwrap());
    // Used: it becomes current.
    assert!(s
        .fast_used("alice", DOMAIN, "ua", TokenSlot::New, &[2; 32], Some(1))
        .await
        .unwrap());
    // Rotation: a new one is issued next to it, and both verify until the
    // new one is used, which ends the old.
    s.fast_issue("alice", DOMAIN, "ua", "HT-SHA-256-EXPR", &[3; 32], later(3))
        .await
        .unwrap();
    let slots: Vec<TokenSlot> = s
        .fast_tokens("alice", DOMAIN, "ua")
        .await
        .unwrap()
        .iter()
        .map(|t| t.slot)
        .collect();
    assert_eq!(slots, [TokenSlot::Current, TokenSlot::New]);
    assert_eq!(
        s.clients("alice", DOMAIN).await.unwrap()[0].token_expires,
        Some(later(3))
    );
    assert!(s
        .fast_used("alice", DOMAIN, "ua", TokenSlot::New, &[3; 32], None)
        .await
        .unwrap());
    let tokens = s.fast_tokens("alice", DOMAIN, "ua").await.unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].slot, TokenSlot::Current);
    assert_eq!(tokens[0].hash, vec![3; 32]);
    // A second use of "new" finds nothing to promote.
    assert!(!s
        .fast_used("alice", DOMAIN, "ua", TokenSlot::New, &[3; 32], None)
        .await
        .unwrap());
    // An expired token does not count, whatever its hash.
    s.fast_issue(
        "alice",
        DOMAIN,
        "ua",
        "HT-SHA-256-EXPR",
        &[4; 32],
        SystemTime::UNIX_EPOCH,
    )
    .await
    .unwrap();
    assert!(!s
        .fast_used("alice", DOMAIN, "ua", TokenSlot::New, &[4; 32], None)
        .await
        .unwrap());
}

async fn counters_refuse_replays(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    s.client_seen("alice", DOMAIN, "ua", "", "", 10)
        .await
        .unwrap();
    s.fast_issue("alice", DOMAIN, "ua", "HT-SHA-256-NONE", &[1; 32], later(1))
        .await
        .unwrap();
    assert!(s
        .fast_used("alice", DOMAIN, "ua", TokenSlot::New, &[1; 32], Some(5))
        .await
        .unwrap());
    for (count, counted) in [(5, false), (4, false), (6, true), (6, false), (9, true)] {
        assert_eq!(
            s.fast_used(
                "alice",
                DOMAIN,
                "ua",
                TokenSlot::Current,
                &[1; 32],
                Some(count)
            )
            .await
            .unwrap(),
            counted,
            "count {count}"
        );
    }
    assert_eq!(
        s.fast_tokens("alice", DOMAIN, "ua").await.unwrap()[0].count,
        9
    );
}

async fn a_password_change_or_revocation_ends_tokens(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    account(db, "bob").await;
    for who in ["alice", "bob"] {
        for ua in ["one", "two"] {
            s.client_seen(who, DOMAIN, ua, "", "", 10).await.unwrap();
            s.fast_issue(who, DOMAIN, ua, "HT-SHA-256-NONE", &[1; 32], later(1))
                .await
                .unwrap();
        }
    }
    assert_eq!(
        s.fast_revoke("alice", DOMAIN, Some("one")).await.unwrap(),
        1
    );
    assert!(s
        .fast_tokens("alice", DOMAIN, "one")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.fast_tokens("alice", DOMAIN, "two").await.unwrap().len(),
        1
    );
    assert_eq!(s.fast_revoke("alice", DOMAIN, None).await.unwrap(), 1);
    // bob's password changes: his tokens go, his clients stay.
    assert!(s.set_credentials("bob", DOMAIN, &[]).await.unwrap());
    assert!(s
        .fast_tokens("bob", DOMAIN, "one")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.clients("bob", DOMAIN).await.unwrap().len(), 2);
}
