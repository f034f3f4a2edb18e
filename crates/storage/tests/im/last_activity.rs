//! Last activity (XEP-0012): the last logout of each account, replaced at
//! each logout and gone with the account.

use super::*;

on_both_backends!(last_logout_is_replaced_and_goes_with_the_account,);

async fn last_logout_is_replaced_and_goes_with_the_account(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    assert_eq!(s.last_activity("alice", DOMAIN).await.unwrap(), None);
    let t1 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let t2 = t1 + Duration::from_secs(90);
    s.set_last_activity("alice", DOMAIN, t1, "gone fishing")
        .await
        .unwrap();
    s.set_last_activity("alice", DOMAIN, t2, "").await.unwrap();
    assert_eq!(
        s.last_activity("alice", DOMAIN).await.unwrap(),
        Some((t2, String::new()))
    );
    // No account, nothing recorded, no error.
    s.set_last_activity("nobody", DOMAIN, t1, "").await.unwrap();
    assert_eq!(s.last_activity("nobody", DOMAIN).await.unwrap(), None);
    s.delete_account("alice", DOMAIN).await.unwrap();
    account(db, "alice").await;
    assert_eq!(s.last_activity("alice", DOMAIN).await.unwrap(), None);
}
