//! What operators set (XEP-0133): a disabled account keeps its data and
//! can be re-enabled; each domain has at most one message of the day.

use super::*;

on_both_backends!(
    disabling_keeps_the_account_and_records_the_reason,
    each_domain_has_one_message_of_the_day,
);

async fn disabling_keeps_the_account_and_records_the_reason(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    account(db, "bob").await;
    assert_eq!(s.account_disabled("alice", DOMAIN).await.unwrap(), None);
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    assert!(s.disable_account("alice", DOMAIN, "spam", t).await.unwrap());
    assert_eq!(
        s.account_disabled("alice", DOMAIN)
            .await
            .unwrap()
            .as_deref(),
        Some("spam")
    );
    // Disabling again replaces the reason; an empty one is kept as such.
    assert!(s.disable_account("alice", DOMAIN, "", t).await.unwrap());
    assert_eq!(
        s.account_disabled("alice", DOMAIN)
            .await
            .unwrap()
            .as_deref(),
        Some("")
    );
    // Nobody else is touched, and the account itself stays.
    assert_eq!(s.account_disabled("bob", DOMAIN).await.unwrap(), None);
    assert!(s.account_exists("alice", DOMAIN).await.unwrap());
    // No account, nothing to disable.
    assert!(!s.disable_account("nobody", DOMAIN, "x", t).await.unwrap());
    assert_eq!(s.account_disabled("nobody", DOMAIN).await.unwrap(), None);
    // Re-enabling says whether it was disabled.
    assert!(s.enable_account("alice", DOMAIN).await.unwrap());
    assert!(!s.enable_account("alice", DOMAIN).await.unwrap());
    assert_eq!(s.account_disabled("alice", DOMAIN).await.unwrap(), None);
    assert!(!s.enable_account("nobody", DOMAIN).await.unwrap());
}

async fn each_domain_has_one_message_of_the_day(db: &Db) {
    let s = &db.storage;
    assert_eq!(s.motd(DOMAIN).await.unwrap(), None);
    s.set_motd(DOMAIN, "Tea at five").await.unwrap();
    s.set_motd("other.example", "Elsewhere").await.unwrap();
    assert_eq!(
        s.motd(DOMAIN).await.unwrap().as_deref(),
        Some("Tea at five")
    );
    // Setting again replaces it.
    s.set_motd(DOMAIN, "Tea at six\nin the garden")
        .await
        .unwrap();
    assert_eq!(
        s.motd(DOMAIN).await.unwrap().as_deref(),
        Some("Tea at six\nin the garden")
    );
    assert!(s.delete_motd(DOMAIN).await.unwrap());
    assert!(!s.delete_motd(DOMAIN).await.unwrap());
    assert_eq!(s.motd(DOMAIN).await.unwrap(), None);
    assert_eq!(
        s.motd("other.example").await.unwrap().as_deref(),
        Some("Elsewhere")
    );
}
