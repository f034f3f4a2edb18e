//! HTTP File Upload records (XEP-0363): slots, completion, usage for the
//! quota, retention and per-owner listing.

use super::*;

on_both_backends!(uploads_are_recorded_counted_listed_and_deleted,);

fn upload(id: &str, owner: &str, size: u64, secs: u64) -> chorus_storage::Upload {
    chorus_storage::Upload {
        id: id.to_owned(),
        owner: owner.to_owned(),
        filename: format!("{id}.jpg"),
        size,
        content_type: "image/jpeg".to_owned(),
        created: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs),
        complete: false,
    }
}

async fn uploads_are_recorded_counted_listed_and_deleted(db: &Db) {
    use chorus_storage::UploadStore;
    let s = &db.storage;
    let epoch = SystemTime::UNIX_EPOCH;
    assert_eq!(s.upload_usage("a@example.org", epoch).await.unwrap(), 0);
    s.upload_add(&upload("u1", "a@example.org", 100, 1))
        .await
        .unwrap();
    s.upload_add(&upload("u2", "a@example.org", 50, 2))
        .await
        .unwrap();
    s.upload_add(&upload("u3", "b@example.org", 7, 3))
        .await
        .unwrap();
    // Ids are unique.
    assert!(s
        .upload_add(&upload("u1", "b@example.org", 1, 4))
        .await
        .is_err());
    assert_eq!(s.upload_usage("a@example.org", epoch).await.unwrap(), 150);
    assert!(s.upload_complete("u1").await.unwrap());
    // u2's slot was handed out before the cutoff and never used: it no
    // longer counts, and it is abandoned.
    let cutoff = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + 5);
    assert_eq!(s.upload_usage("a@example.org", cutoff).await.unwrap(), 100);
    assert_eq!(s.uploads_abandoned(cutoff, 10).await.unwrap(), ["u2", "u3"]);
    assert!(!s.upload_complete("nope").await.unwrap());
    let u1 = s.upload("u1").await.unwrap().unwrap();
    assert!(u1.complete);
    assert_eq!(
        u1,
        chorus_storage::Upload {
            complete: true,
            ..upload("u1", "a@example.org", 100, 1)
        }
    );
    assert_eq!(s.uploads_of("a@example.org").await.unwrap(), ["u1", "u2"]);
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + 3);
    assert_eq!(s.uploads_before(old, 10).await.unwrap(), ["u1", "u2"]);
    assert_eq!(s.uploads_before(old, 1).await.unwrap(), ["u1"]);
    assert!(s.upload_delete("u1").await.unwrap());
    assert!(!s.upload_delete("u1").await.unwrap());
    assert_eq!(s.upload_usage("a@example.org", epoch).await.unwrap(), 50);
    assert_eq!(s.upload("u1").await.unwrap(), None);
}
