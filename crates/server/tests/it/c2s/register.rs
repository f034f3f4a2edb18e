//! XEP-0077 in-band registration: off by default; account creation with
//! conflict and rate limit, loopback exempt from it by default, and the
//! throttle turned off; password change and account removal.

use super::*;

const NS_REG: &str = "jabber:iq:register";

#[tokio::test]
async fn in_band_registration_is_off_by_default() {
    let server = server_with_users("ibr-off").await;
    let (mut c, f) = tls_client(server.first_addr().unwrap()).await;
    assert!(f
        .get_child("register", "http://jabber.org/features/iq-register")
        .is_none());
    c.send("<iq type='get' id='r'><query xmlns='jabber:iq:register'/></iq>")
        .await;
    assert_eq!(c.expect_stream_error().await, "not-authorized");
    server.stop();
}

#[tokio::test]
async fn in_band_registration_creates_accounts_with_conflict_and_rate_limit() {
    let mut cfg = test_config("ibr-on");
    cfg.register.enabled = true;
    cfg.register.burst = 2;
    // The test connects from loopback, exempt by default: throttle it.
    cfg.register.throttle_exempt = Vec::new();
    let server = start(cfg).await;
    let addr = server.first_addr().unwrap();
    let (mut c, f) = tls_client(addr).await;
    assert!(f
        .get_child("register", "http://jabber.org/features/iq-register")
        .is_some());
    c.send("<iq type='get' id='g'><query xmlns='jabber:iq:register'/></iq>")
        .await;
    let form = c.expect("iq").await;
    let q = form.get_child("query", NS_REG).unwrap();
    assert!(q.get_child("username", NS_REG).is_some() && q.get_child("password", NS_REG).is_some());
    // Missing data costs no token.
    c.send("<iq type='set' id='m'><query xmlns='jabber:iq:register'><username>newt</username></query></iq>").await;
    assert_eq!(
        stanza_error_condition(&c.expect("iq").await),
        "not-acceptable"
    );
    c.send("<iq type='set' id='s1'><query xmlns='jabber:iq:register'><username>Newt</username><password>scamander</password></query></iq>").await;
    assert_eq!(c.expect("iq").await.attr("type"), Some("result"));
    c.send("<iq type='set' id='s2'><query xmlns='jabber:iq:register'><username>newt</username><password>x</password></query></iq>").await;
    assert_eq!(stanza_error_condition(&c.expect("iq").await), "conflict");
    c.send("<iq type='set' id='s3'><query xmlns='jabber:iq:register'><username>tina</username><password>x</password></query></iq>").await;
    assert_eq!(
        stanza_error_condition(&c.expect("iq").await),
        "policy-violation",
        "burst of 2 per IP"
    );
    // The new account logs in (the localpart was case-mapped).
    let (_n, jid) = XmppClient::login(addr, "newt", "scamander", Some("r")).await;
    assert_eq!(jid, "newt@localhost/r");
    server.stop();
}

/// Registers `count` accounts on one connection; the condition of each
/// answer ("result" for a success).
async fn register_many(addr: std::net::SocketAddr, count: usize) -> Vec<String> {
    let (mut c, _) = tls_client(addr).await;
    let mut out = Vec::new();
    for i in 0..count {
        c.send(&format!(
            "<iq type='set' id='r{i}'><query xmlns='jabber:iq:register'>\
             <username>user{i}</username><password>secret{i}</password></query></iq>"
        ))
        .await;
        let answer = c.expect("iq").await;
        out.push(match answer.attr("type") {
            Some("result") => "result".to_owned(),
            _ => stanza_error_condition(&answer),
        });
    }
    out
}

#[tokio::test]
async fn loopback_is_exempt_from_the_registration_throttle_by_default() {
    let mut cfg = test_config("ibr-loopback");
    cfg.register.enabled = true;
    cfg.register.burst = 1;
    let server = start(cfg).await;
    assert_eq!(
        register_many(server.first_addr().unwrap(), 3).await,
        ["result", "result", "result"]
    );
    server.stop();
}

#[tokio::test]
async fn throttle_off_lets_every_registration_through() {
    let mut cfg = test_config("ibr-unthrottled");
    cfg.register.enabled = true;
    cfg.register.burst = 1;
    cfg.register.throttle_exempt = Vec::new();
    cfg.register.throttle = false;
    let server = start(cfg).await;
    assert_eq!(
        register_many(server.first_addr().unwrap(), 3).await,
        ["result", "result", "result"]
    );
    server.stop();
}

#[tokio::test]
async fn users_change_their_password_and_remove_their_account() {
    let server = server_with_users("ibr-self").await;
    let addr = server.first_addr().unwrap();
    let (mut a, _) = XmppClient::login(addr, "alice", "wonderland", Some("a")).await;
    a.send("<iq type='set' id='p'><query xmlns='jabber:iq:register'><username>bob</username><password>x</password></query></iq>").await;
    assert_eq!(
        stanza_error_condition(&a.expect("iq").await),
        "not-acceptable",
        "only her own"
    );
    a.send("<iq type='set' id='p2'><query xmlns='jabber:iq:register'><username>alice</username><password>looking glass</password></query></iq>").await;
    assert_eq!(a.expect("iq").await.attr("type"), Some("result"));
    let (mut b, _) = XmppClient::login(addr, "alice", "looking glass", Some("b")).await;
    b.send("<iq type='set' id='rm'><query xmlns='jabber:iq:register'><remove/></query></iq>")
        .await;
    assert_eq!(b.expect("iq").await.attr("type"), Some("result"));
    b.expect_stream_error().await;
    a.expect_stream_error().await;
    let mut c = XmppClient::connect(addr).await;
    c.open().await;
    c.starttls().await;
    c.open().await;
    assert_eq!(
        c.scram(Mechanism::ScramSha256, "alice", "looking glass", None)
            .await
            .unwrap_err(),
        "not-authorized",
        "the account is gone"
    );
    server.stop();
}
