//! One server per data directory, for an embedding too: `Server::start`
//! takes the directory's lock, refuses a second server on it with the
//! holder's PID, and lets it go when the server is dropped.
#![allow(clippy::unwrap_used)]

use crate::common::*;

#[tokio::test]
async fn server_start_locks_the_data_dir_until_the_server_is_dropped() {
    let cfg = test_config("lock-inproc");
    let first = start(cfg.clone()).await;
    let err = match chorus_server::Server::start(cfg.clone()).await {
        Ok(_) => panic!("a second server started on the same data directory"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains(&format!("PID {}", std::process::id())) && err.contains("chorus.lock"),
        "{err}"
    );
    // The first still serves.
    let _s = open_stream(first.first_addr().unwrap()).await;
    // Stopped and waited for, so that nothing of the first (its admin
    // actor removing its socket) outlives the lock; `wait` drops it.
    first.stop();
    first.wait().await;
    let again = start(cfg).await;
    again.stop();
}
