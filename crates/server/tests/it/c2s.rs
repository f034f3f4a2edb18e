//! Client sessions end to end over real sockets (RFC 6120): STARTTLS and
//! direct TLS, SASL SCRAM with channel binding and PLAIN, resource binding,
//! and routing between local sessions. Each test asserts the exact
//! condition the RFC names.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::common;
use crate::common::client::{failure_condition, stanza_error_condition, XmppClient};
use crate::common::*;
use chorus_config::{ListenerConfig, ListenerKind};
use chorus_sasl::{ChannelBindingType, Mechanism, ScramClient};
use chorus_supervisor::StopMode;

const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";

async fn server_with_users(tag: &str) -> chorus_server::Server {
    let server = start(test_config(tag)).await;
    add_user(&server, "alice", "wonderland").await;
    add_user(&server, "bob", "builder").await;
    server
}

fn mechanisms(features: &chorus_xml::Element) -> Vec<String> {
    features
        .get_child("mechanisms", NS_SASL)
        .map(|m| m.children().map(|c| c.text()).collect())
        .unwrap_or_default()
}

async fn tls_client(addr: std::net::SocketAddr) -> (XmppClient, chorus_xml::Element) {
    let mut c = XmppClient::connect(addr).await;
    c.open().await;
    c.starttls().await;
    let f = c.open().await;
    (c, f)
}

#[tokio::test]
async fn plaintext_features_require_starttls_and_offer_no_sasl() {
    let server = server_with_users("feat").await;
    let mut c = XmppClient::connect(server.first_addr().unwrap()).await;
    let f = c.open().await;
    let st = f.get_child("starttls", NS_TLS).expect("starttls offered");
    assert!(st.get_child("required", NS_TLS).is_some());
    assert!(mechanisms(&f).is_empty(), "no SASL before TLS");
    server.stop();
}

#[tokio::test]
async fn auth_before_starttls_is_encryption_required() {
    let server = server_with_users("encreq").await;
    let mut c = XmppClient::connect(server.first_addr().unwrap()).await;
    c.open().await;
    c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHdvbmRlcmxhbmQ=</auth>")
        .await;
    let f = c.expect("failure").await;
    assert_eq!(failure_condition(&f), "encryption-required");
    server.stop();
}

#[tokio::test]
async fn anything_but_starttls_before_tls_is_policy_violation() {
    let server = server_with_users("prestls").await;
    let mut c = XmppClient::connect(server.first_addr().unwrap()).await;
    c.open().await;
    c.send(
        "<compress xmlns='http://jabber.org/protocol/compress'><method>zlib</method></compress>",
    )
    .await;
    assert_eq!(c.expect_stream_error().await, "policy-violation");
    // A stanza is not-authorized, TLS or not (RFC 6120 §4.9.3.12).
    let mut c = XmppClient::connect(server.first_addr().unwrap()).await;
    c.open().await;
    c.send("<message to='bob@localhost'><body>hi</body></message>")
        .await;
    assert_eq!(c.expect_stream_error().await, "not-authorized");
    server.stop();
}

#[tokio::test]
async fn plaintext_pipelined_after_starttls_is_discarded() {
    let server = server_with_users("pipeline").await;
    let mut c = XmppClient::connect(server.first_addr().unwrap()).await;
    c.open().await;
    // An attacker-injected stanza rides behind <starttls/> in the same segment.
    c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><message to='bob@localhost'><body>injected</body></message>")
        .await;
    c.expect("proceed").await;
    let common::client::Io::Plain(tcp) = std::mem::replace(&mut c.io, common::client::Io::Gone)
    else {
        panic!()
    };
    let tls = common::client::tls_connector(None, false)
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    c.io = common::client::Io::Tls(Box::new(tls));
    // Had the injected message survived, the server would now end the
    // stream for a stanza before authentication; instead it negotiates.
    let f = c.open().await;
    assert!(mechanisms(&f).contains(&"SCRAM-SHA-256".to_owned()));
    server.stop();
}

#[tokio::test]
async fn tls_features_offer_scram_plus_first_and_channel_bindings() {
    let server = server_with_users("tlsfeat").await;
    let (_c, f) = tls_client(server.first_addr().unwrap()).await;
    assert_eq!(
        mechanisms(&f),
        vec![
            "SCRAM-SHA-256-PLUS",
            "SCRAM-SHA-1-PLUS",
            "SCRAM-SHA-256",
            "SCRAM-SHA-1",
            "PLAIN"
        ]
    );
    let cb: Vec<String> = f
        .get_child("sasl-channel-binding", "urn:xmpp:sasl-cb:0")
        .expect("XEP-0440 advertisement")
        .children()
        .map(|c| c.attr("type").unwrap_or_default().to_owned())
        .collect();
    assert_eq!(cb, vec!["tls-exporter", "tls-server-end-point"]);
    assert!(f.get_child("starttls", NS_TLS).is_none());
    server.stop();
}

#[tokio::test]
async fn scram_sha256_plus_with_tls_exporter_logs_in() {
    let server = server_with_users("plus-exp").await;
    let (mut c, _) = tls_client(server.first_addr().unwrap()).await;
    c.scram(
        Mechanism::ScramSha256Plus,
        "alice",
        "wonderland",
        Some(ChannelBindingType::TlsExporter),
    )
    .await
    .unwrap();
    let f = c.open().await;
    assert!(f
        .get_child("bind", "urn:ietf:params:xml:ns:xmpp-bind")
        .is_some());
    let session = f
        .get_child("session", "urn:ietf:params:xml:ns:xmpp-session")
        .unwrap();
    assert!(session
        .get_child("optional", "urn:ietf:params:xml:ns:xmpp-session")
        .is_some());
    server.stop();
}

#[tokio::test]
async fn scram_sha1_plus_with_tls_server_end_point_logs_in() {
    let server = server_with_users("plus-ep").await;
    let (mut c, _) = tls_client(server.first_addr().unwrap()).await;
    c.scram(
        Mechanism::ScramSha1Plus,
        "alice",
        "wonderland",
        Some(ChannelBindingType::TlsServerEndPoint),
    )
    .await
    .unwrap();
    server.stop();
}

#[tokio::test]
async fn scram_without_binding_logs_in() {
    let server = server_with_users("noplus").await;
    let (mut c, _) = tls_client(server.first_addr().unwrap()).await;
    c.scram(Mechanism::ScramSha256, "bob", "builder", None)
        .await
        .unwrap();
    let (mut c, _) = tls_client(server.first_addr().unwrap()).await;
    c.scram(Mechanism::ScramSha1, "bob", "builder", None)
        .await
        .unwrap();
    server.stop();
}

#[tokio::test]
async fn tls12_has_no_exporter_but_server_end_point_works() {
    let server = server_with_users("tls12").await;
    let mut c = XmppClient::connect(server.first_addr().unwrap()).await;
    c.open().await;
    c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        .await;
    c.expect("proceed").await;
    let common::client::Io::Plain(tcp) = std::mem::replace(&mut c.io, common::client::Io::Gone)
    else {
        panic!()
    };
    let tls = common::client::tls_connector(None, true)
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    c.io = common::client::Io::Tls(Box::new(tls));
    let f = c.open().await;
    let cb: Vec<String> = f
        .get_child("sasl-channel-binding", "urn:xmpp:sasl-cb:0")
        .unwrap()
        .children()
        .map(|c| c.attr("type").unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        cb,
        vec!["tls-server-end-point"],
        "RFC 9266: no exporter without TLS 1.3"
    );
    c.scram(
        Mechanism::ScramSha256Plus,
        "alice",
        "wonderland",
        Some(ChannelBindingType::TlsServerEndPoint),
    )
    .await
    .unwrap();
    server.stop();
}

#[tokio::test]
async fn downgrade_flag_y_is_refused() {
    let server = server_with_users("downgrade").await;
    let (mut c, _) = tls_client(server.first_addr().unwrap()).await;
    // A client that could bind but claims the server offered no -PLUS.
    let err = c
        .scram(
            Mechanism::ScramSha256,
            "alice",
            "wonderland",
            Some(ChannelBindingType::TlsExporter),
        )
        .await
        .unwrap_err();
    assert_eq!(err, "not-authorized");
    server.stop();
}

#[tokio::test]
async fn wrong_password_and_unknown_user_are_not_authorized() {
    let server = server_with_users("wrongpw").await;
    let (mut c, _) = tls_client(server.first_addr().unwrap()).await;
    let e1 = c
        .scram(Mechanism::ScramSha256, "alice", "nope", None)
        .await
        .unwrap_err();
    let e2 = c
        .scram(Mechanism::ScramSha256, "mallory", "nope", None)
        .await
        .unwrap_err();
    assert_eq!(
        (e1.as_str(), e2.as_str()),
        ("not-authorized", "not-authorized")
    );
    // The stream survives failures below the limit.
    c.scram(Mechanism::ScramSha256, "alice", "wonderland", None)
        .await
        .unwrap();
    server.stop();
}

#[tokio::test]
async fn five_failed_attempts_close_the_stream() {
    let server = server_with_users("brute").await;
    let (mut c, _) = tls_client(server.first_addr().unwrap()).await;
    for _ in 0..4 {
        assert_eq!(
            c.scram(Mechanism::ScramSha256, "alice", "guess", None)
                .await
                .unwrap_err(),
            "not-authorized"
        );
    }
    // The fifth failure is followed by the stream error.
    c.send(&format!(
        "<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{}</auth>",
        base64_plain("alice", "guess")
    ))
    .await;
    let f = c.expect("failure").await;
    assert_eq!(failure_condition(&f), "not-authorized");
    assert_eq!(c.expect_stream_error().await, "policy-violation");
    server.stop();
}

fn base64_plain(user: &str, pass: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(chorus_sasl::plain_message(None, user, pass))
}

#[tokio::test]
async fn malformed_scram_is_malformed_request() {
    let server = server_with_users("malformed").await;
    let (mut c, _) = tls_client(server.first_addr().unwrap()).await;
    use base64::Engine;
    let junk = base64::engine::general_purpose::STANDARD.encode("this is not scram");
    c.send(&format!(
        "<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>{junk}</auth>"
    ))
    .await;
    assert_eq!(
        failure_condition(&c.expect("failure").await),
        "malformed-request"
    );
    c.send(&format!(
        "<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>@@not base64@@</auth>"
    ))
    .await;
    assert_eq!(
        failure_condition(&c.expect("failure").await),
        "incorrect-encoding"
    );
    c.send(&format!(
        "<auth xmlns='{NS_SASL}' mechanism='DIGEST-MD5'>=</auth>"
    ))
    .await;
    assert_eq!(
        failure_condition(&c.expect("failure").await),
        "invalid-mechanism"
    );
    server.stop();
}

#[tokio::test]
async fn foreign_authzid_is_invalid_authzid() {
    let server = server_with_users("authzid").await;
    let (mut c, _) = tls_client(server.first_addr().unwrap()).await;
    let mut client = ScramClient::new(Mechanism::ScramSha256, "alice", "wonderland", None)
        .unwrap()
        .with_authzid("bob@localhost");
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    c.send(&format!(
        "<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>{}</auth>",
        b64.encode(client.client_first())
    ))
    .await;
    let ch = c.expect("challenge").await;
    let fin = client
        .handle_server_first(&b64.decode(ch.text()).unwrap())
        .unwrap();
    c.send(&format!(
        "<response xmlns='{NS_SASL}'>{}</response>",
        b64.encode(fin)
    ))
    .await;
    assert_eq!(
        failure_condition(&c.expect("failure").await),
        "invalid-authzid"
    );
    // PLAIN with a foreign authzid too.
    c.send(&format!(
        "<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{}</auth>",
        b64.encode(chorus_sasl::plain_message(
            Some("bob@localhost"),
            "alice",
            "wonderland"
        ))
    ))
    .await;
    assert_eq!(
        failure_condition(&c.expect("failure").await),
        "invalid-authzid"
    );
    server.stop();
}

#[tokio::test]
async fn plain_over_tls_logs_in() {
    let server = server_with_users("plain").await;
    let (mut c, _) = tls_client(server.first_addr().unwrap()).await;
    c.send(&format!(
        "<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{}</auth>",
        base64_plain("alice", "wonderland")
    ))
    .await;
    c.expect("success").await;
    server.stop();
}

#[tokio::test]
async fn plain_is_not_offered_without_tls_unless_configured() {
    let mut cfg = test_config("noplain");
    cfg.c2s.require_encryption = false;
    let server = start(cfg).await;
    add_user(&server, "alice", "wonderland").await;
    let mut c = XmppClient::connect(server.first_addr().unwrap()).await;
    let f = c.open().await;
    assert!(f
        .get_child("starttls", NS_TLS)
        .unwrap()
        .get_child("required", NS_TLS)
        .is_none());
    assert_eq!(mechanisms(&f), vec!["SCRAM-SHA-256", "SCRAM-SHA-1"]);
    c.send(&format!(
        "<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{}</auth>",
        base64_plain("alice", "wonderland")
    ))
    .await;
    assert_eq!(
        failure_condition(&c.expect("failure").await),
        "invalid-mechanism"
    );
    c.scram(Mechanism::ScramSha256, "alice", "wonderland", None)
        .await
        .unwrap();
    server.stop();

    let mut cfg = test_config("plainbench");
    cfg.c2s.require_encryption = false;
    cfg.sasl.allow_plain_without_tls = true;
    let server = start(cfg).await;
    add_user(&server, "alice", "wonderland").await;
    let mut c = XmppClient::connect(server.first_addr().unwrap()).await;
    let f = c.open().await;
    assert!(mechanisms(&f).contains(&"PLAIN".to_owned()));
    c.send(&format!(
        "<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{}</auth>",
        base64_plain("alice", "wonderland")
    ))
    .await;
    c.expect("success").await;
    server.stop();
}

#[tokio::test]
async fn direct_tls_listener_logs_in_with_alpn() {
    let mut cfg = test_config("direct");
    cfg.listeners = vec![ListenerConfig {
        kind: ListenerKind::C2sTls,
        address: "127.0.0.1:0".parse().unwrap(),
    }];
    let server = start(cfg).await;
    add_user(&server, "alice", "wonderland").await;
    let mut c = XmppClient::connect_tls(server.first_addr().unwrap()).await;
    let f = c.open().await;
    assert!(
        f.get_child("starttls", NS_TLS).is_none(),
        "already encrypted"
    );
    c.scram(
        Mechanism::ScramSha256Plus,
        "alice",
        "wonderland",
        Some(ChannelBindingType::TlsExporter),
    )
    .await
    .unwrap();
    c.open().await;
    assert_eq!(
        c.bind(Some("phone")).await.unwrap(),
        "alice@localhost/phone"
    );
    server.stop();
}

#[tokio::test]
async fn bind_generates_a_resource_when_none_is_requested() {
    let server = server_with_users("genres").await;
    let (_c, jid) =
        XmppClient::login(server.first_addr().unwrap(), "alice", "wonderland", None).await;
    assert!(
        jid.starts_with("alice@localhost/") && jid.len() > "alice@localhost/".len(),
        "{jid}"
    );
    assert_eq!(server.sessions.len(), 1);
    server.stop();
}

#[tokio::test]
async fn binding_a_bound_resource_replaces_the_old_session_with_conflict() {
    let server = server_with_users("conflict").await;
    let addr = server.first_addr().unwrap();
    let (mut old, _) = XmppClient::login(addr, "alice", "wonderland", Some("desk")).await;
    let (mut new, jid) = XmppClient::login(addr, "alice", "wonderland", Some("desk")).await;
    assert_eq!(jid, "alice@localhost/desk");
    assert_eq!(old.expect_stream_error().await, "conflict");
    // The new session is the one that receives.
    let (mut bob, _) = XmppClient::login(addr, "bob", "builder", Some("b")).await;
    bob.send("<message to='alice@localhost/desk' id='m1'><body>hi</body></message>")
        .await;
    let m = new.expect("message").await;
    assert_eq!(m.attr("from"), Some("bob@localhost/b"));
    server.stop();
}

#[tokio::test]
async fn resource_cap_is_resource_constraint() {
    let mut cfg = test_config("cap");
    cfg.c2s.max_resources = 2;
    let server = start(cfg).await;
    add_user(&server, "alice", "wonderland").await;
    let addr = server.first_addr().unwrap();
    let (_a, _) = XmppClient::login(addr, "alice", "wonderland", Some("one")).await;
    let (_b, _) = XmppClient::login(addr, "alice", "wonderland", Some("two")).await;
    let mut c = XmppClient::connect(addr).await;
    c.open().await;
    c.starttls().await;
    c.open().await;
    c.scram(Mechanism::ScramSha256, "alice", "wonderland", None)
        .await
        .unwrap();
    c.open().await;
    assert_eq!(
        c.bind(Some("three")).await.unwrap_err(),
        "resource-constraint"
    );
    server.stop();
}

#[tokio::test]
async fn stanza_before_bind_is_not_authorized() {
    let server = server_with_users("prebind").await;
    let (mut c, _) = tls_client(server.first_addr().unwrap()).await;
    c.scram(Mechanism::ScramSha256, "alice", "wonderland", None)
        .await
        .unwrap();
    c.open().await;
    c.send("<message to='bob@localhost'><body>too early</body></message>")
        .await;
    assert_eq!(c.expect_stream_error().await, "not-authorized");
    server.stop();
}

#[tokio::test]
async fn messages_route_to_full_and_bare_jids_with_stamped_from() {
    let server = server_with_users("route").await;
    let addr = server.first_addr().unwrap();
    let (mut alice, _) = XmppClient::login(addr, "alice", "wonderland", Some("a")).await;
    let (mut bob_hi, _) = XmppClient::login(addr, "bob", "builder", Some("hi")).await;
    let (mut bob_lo, _) = XmppClient::login(addr, "bob", "builder", Some("lo")).await;
    bob_hi
        .send("<presence><priority>5</priority></presence>")
        .await;
    bob_lo
        .send("<presence><priority>1</priority></presence>")
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    alice
        .send("<message to='bob@localhost/lo' type='chat' id='1'><body>to lo</body></message>")
        .await;
    let m = bob_lo.expect("message").await;
    assert_eq!(m.attr("from"), Some("alice@localhost/a"));
    assert_eq!(
        m.get_child("body", "jabber:client").unwrap().text(),
        "to lo"
    );

    // RFC 6121 §8.5.2.1.1: bare JID -> highest priority resource.
    alice
        .send("<message to='bob@localhost' type='chat' id='2'><body>to bare</body></message>")
        .await;
    let m = bob_hi.expect("message").await;
    assert_eq!(m.attr("id"), Some("2"));

    // A claimed 'from' of our own bare JID is accepted and re-stamped.
    alice
        .send(
            "<message from='alice@localhost' to='bob@localhost/hi' id='3'><body>x</body></message>",
        )
        .await;
    assert_eq!(
        bob_hi.expect("message").await.attr("from"),
        Some("alice@localhost/a")
    );

    // An IQ to a full JID is delivered; the answer comes back.
    alice
        .send("<iq to='bob@localhost/hi' type='get' id='q1'><query xmlns='urn:example'/></iq>")
        .await;
    let iq = bob_hi.expect("iq").await;
    assert_eq!(iq.attr("from"), Some("alice@localhost/a"));
    bob_hi
        .send("<iq to='alice@localhost/a' type='result' id='q1'/>")
        .await;
    let r = alice.expect("iq").await;
    assert_eq!(
        (r.attr("type"), r.attr("from")),
        (Some("result"), Some("bob@localhost/hi"))
    );
    server.stop();
}

#[tokio::test]
async fn undeliverable_stanzas_get_the_rfc_answers() {
    let server = server_with_users("undeliv").await;
    let addr = server.first_addr().unwrap();
    let (mut alice, _) = XmppClient::login(addr, "alice", "wonderland", Some("a")).await;

    // §8.5.1: no such user.
    alice
        .send("<message to='nobody@localhost' type='chat' id='1'><body>x</body></message>")
        .await;
    let e = alice.expect("message").await;
    assert_eq!(
        (e.attr("type"), e.attr("from")),
        (Some("error"), Some("nobody@localhost"))
    );
    assert_eq!(stanza_error_condition(&e), "service-unavailable");

    // §8.5.3.2.2: IQ to an unavailable resource.
    alice
        .send("<iq to='bob@localhost/gone' type='get' id='2'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    assert_eq!(
        stanza_error_condition(&alice.expect("iq").await),
        "service-unavailable"
    );

    // Remote domain without server-to-server.
    alice
        .send("<message to='x@elsewhere.example' id='3'><body>x</body></message>")
        .await;
    assert_eq!(
        stanza_error_condition(&alice.expect("message").await),
        "remote-server-not-found"
    );

    // Malformed JID.
    alice
        .send("<message to='a@b@c' id='4'><body>x</body></message>")
        .await;
    assert_eq!(
        stanza_error_condition(&alice.expect("message").await),
        "jid-malformed"
    );

    // The server answers ping, and service-unavailable for the unknown.
    alice
        .send("<iq to='localhost' type='get' id='5'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let r = alice.expect("iq").await;
    assert_eq!((r.attr("type"), r.attr("id")), (Some("result"), Some("5")));
    alice
        .send("<iq type='get' id='6'><query xmlns='urn:example:unknown'/></iq>")
        .await;
    assert_eq!(
        stanza_error_condition(&alice.expect("iq").await),
        "service-unavailable"
    );

    // §8.2.3: an IQ request carries exactly one payload.
    alice.send("<iq to='localhost' type='get' id='7'><ping xmlns='urn:xmpp:ping'/><ping xmlns='urn:xmpp:ping'/></iq>").await;
    assert_eq!(
        stanza_error_condition(&alice.expect("iq").await),
        "bad-request"
    );
    alice.send("<iq to='localhost' type='get' id='8'/>").await;
    assert_eq!(
        stanza_error_condition(&alice.expect("iq").await),
        "bad-request"
    );

    // An error is never answered with an error (§8.3.1): nothing comes back,
    // and the next ping is the next thing we read.
    alice
        .send("<message to='nobody@localhost' type='error' id='9'/>")
        .await;
    alice
        .send("<iq to='localhost' type='get' id='10'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    assert_eq!(alice.expect("iq").await.attr("id"), Some("10"));
    server.stop();
}

#[tokio::test]
async fn spoofed_from_is_invalid_from() {
    let server = server_with_users("spoof").await;
    let (mut alice, _) = XmppClient::login(
        server.first_addr().unwrap(),
        "alice",
        "wonderland",
        Some("a"),
    )
    .await;
    alice
        .send("<message from='bob@localhost/b' to='alice@localhost'><body>x</body></message>")
        .await;
    assert_eq!(alice.expect_stream_error().await, "invalid-from");
    server.stop();
}

#[tokio::test]
async fn killing_c2s_removes_its_routes_within_a_second() {
    let server = server_with_users("killroute").await;
    let addr = server.first_addr().unwrap();
    let (_alice, _) = XmppClient::login(addr, "alice", "wonderland", Some("a")).await;
    let (mut bob, _) = XmppClient::login(addr, "bob", "builder", Some("b")).await;
    assert_eq!(server.sessions.len(), 2);
    let path = server
        .registry
        .paths_matching("root/listeners/*/conns/*/c2s")
        .into_iter()
        .next()
        .unwrap();
    server.registry.kill(&path, StopMode::Kill).unwrap();
    assert!(wait_until(Duration::from_secs(1), || server.sessions.len() == 1).await);
    // The survivor gets service-unavailable for the dead resource.
    bob.send("<iq to='alice@localhost/a' type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let r = bob.expect("iq").await;
    assert_eq!(stanza_error_condition(&r), "service-unavailable");
    server.stop();
}

#[tokio::test]
async fn killing_sessions_disconnects_nobody() {
    let server = server_with_users("killsessions").await;
    let addr = server.first_addr().unwrap();
    let (mut alice, _) = XmppClient::login(addr, "alice", "wonderland", Some("a")).await;
    let (mut bob, _) = XmppClient::login(addr, "bob", "builder", Some("b")).await;
    let old = server.registry.lookup("root/sessions").unwrap().get_id();
    server
        .registry
        .kill("root/sessions", StopMode::Kill)
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(1), || server
            .registry
            .lookup("root/sessions")
            .is_some_and(|c| c.get_id() != old))
        .await
    );
    alice
        .send("<message to='bob@localhost/b' id='after'><body>still here</body></message>")
        .await;
    assert_eq!(bob.expect("message").await.attr("id"), Some("after"));
    // And binding still works through the restarted actor.
    let (_c, jid) = XmppClient::login(addr, "alice", "wonderland", Some("second")).await;
    assert_eq!(jid, "alice@localhost/second");
    let _ = &mut alice;
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_cut_off_and_others_go_on() {
    let mut cfg = test_config("slowreader");
    cfg.limits.max_outbound_stanzas = 64;
    cfg.limits.max_outbound_bytes = 64 * 1024;
    cfg.c2s.write_timeout_secs = 1;
    let server = start(cfg).await;
    add_user(&server, "alice", "wonderland").await;
    add_user(&server, "bob", "builder").await;
    let addr = server.first_addr().unwrap();
    let (mut alice, _) = XmppClient::login(addr, "alice", "wonderland", Some("a")).await;
    let (_bob, _) = XmppClient::login(addr, "bob", "builder", Some("b")).await;
    // Bob never reads again. Alice floods him with 20 MB of messages, more
    // than the loopback socket buffers on both sides can absorb. Headlines,
    // so that once Bob is gone they are dropped (RFC 6121 §8.5.2.2.1) rather
    // than bounced to Alice, who is not reading either.
    let body = "x".repeat(4000);
    for i in 0..5000 {
        alice
            .send(&format!(
                "<message to='bob@localhost/b' type='headline' id='f{i}'><body>{body}</body></message>"
            ))
            .await;
    }
    // Bob's connection is dropped once his queue overflows or a write stalls.
    assert!(
        wait_until(Duration::from_secs(10), || server.sessions.len() == 1).await,
        "the slow reader was cut off"
    );
    // Alice's session is untouched and still answered.
    alice
        .send("<iq to='localhost' type='get' id='alive'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let e = alice.expect("iq").await;
    assert_eq!(e.attr("id"), Some("alive"));
    server.stop();
}

#[tokio::test]
async fn offline_messages_are_delivered_with_delay_on_next_login_then_deleted() {
    let server = server_with_users("offline").await;
    let addr = server.first_addr().unwrap();
    let (mut alice, _) = XmppClient::login(addr, "alice", "wonderland", Some("a")).await;
    alice
        .send("<message to='bob@localhost' type='chat' id='o1'><body>first</body></message>")
        .await;
    alice
        .send("<message to='bob@localhost/gone' id='o2'><body>second</body></message>")
        .await;
    // Not stored: headline, a bare chat state, a no-store hint.
    alice
        .send("<message to='bob@localhost' type='headline' id='h'><body>news</body></message>")
        .await;
    alice
        .send("<message to='bob@localhost' type='chat' id='cs'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
        .await;
    alice
        .send("<message to='bob@localhost' type='chat' id='ns'><body>x</body><no-store xmlns='urn:xmpp:hints'/></message>")
        .await;
    // Nothing bounced: a ping is the next thing Alice reads.
    alice
        .send("<iq to='localhost' type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    assert_eq!(alice.expect("iq").await.attr("id"), Some("p"));

    let (mut bob, _) = XmppClient::login(addr, "bob", "builder", Some("b")).await;
    for (id, body) in [("o1", "first"), ("o2", "second")] {
        let m = bob.expect("message").await;
        assert_eq!(m.attr("id"), Some(id));
        assert_eq!(m.attr("from"), Some("alice@localhost/a"));
        assert_eq!(m.get_child("body", "jabber:client").unwrap().text(), body);
        let delay = m
            .get_child("delay", "urn:xmpp:delay")
            .expect("XEP-0203 stamp");
        assert_eq!(delay.attr("from"), Some("localhost"));
        assert!(delay.attr("stamp").unwrap().ends_with('Z'));
    }
    bob.send("<iq to='localhost' type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    assert_eq!(
        bob.expect("iq").await.attr("id"),
        Some("p2"),
        "nothing else was stored"
    );
    drop(bob);
    // Delivered messages are gone: the next login gets none.
    assert!(wait_until(Duration::from_secs(2), || server.sessions.len() == 1).await);
    let (mut bob, _) = XmppClient::login(addr, "bob", "builder", Some("b2")).await;
    bob.send("<iq to='localhost' type='get' id='p3'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    assert_eq!(bob.expect("iq").await.attr("id"), Some("p3"));
    server.stop();
}

#[tokio::test]
async fn full_offline_quota_is_service_unavailable() {
    let mut cfg = test_config("quota");
    cfg.offline.quota = 2;
    let server = start(cfg).await;
    add_user(&server, "alice", "wonderland").await;
    add_user(&server, "bob", "builder").await;
    let (mut alice, _) = XmppClient::login(
        server.first_addr().unwrap(),
        "alice",
        "wonderland",
        Some("a"),
    )
    .await;
    for i in 0..3 {
        alice
            .send(&format!(
                "<message to='bob@localhost' id='q{i}'><body>{i}</body></message>"
            ))
            .await;
    }
    let e = alice.expect("message").await;
    assert_eq!((e.attr("id"), e.attr("type")), (Some("q2"), Some("error")));
    assert_eq!(stanza_error_condition(&e), "service-unavailable");
    server.stop();
}

#[tokio::test]
async fn silent_clients_are_pinged_and_dropped_without_an_answer() {
    let mut cfg = test_config("keepalive");
    cfg.c2s.ping_interval_secs = 1;
    cfg.c2s.ping_timeout_secs = 1;
    let server = start(cfg).await;
    add_user(&server, "alice", "wonderland").await;
    add_user(&server, "bob", "builder").await;
    let addr = server.first_addr().unwrap();
    let (mut alice, _) = XmppClient::login(addr, "alice", "wonderland", Some("a")).await;
    let (mut bob, _) = XmppClient::login(addr, "bob", "builder", Some("b")).await;
    // Alice answers the server's ping; Bob ignores it.
    let ping = alice.expect("iq").await;
    assert_eq!(
        (ping.attr("type"), ping.attr("from")),
        (Some("get"), Some("localhost"))
    );
    assert!(ping.get_child("ping", "urn:xmpp:ping").is_some());
    alice
        .send(&format!(
            "<iq to='localhost' type='result' id='{}'/>",
            ping.attr("id").unwrap()
        ))
        .await;
    assert_eq!(bob.expect("iq").await.attr("type"), Some("get"));
    assert_eq!(bob.expect_stream_error().await, "connection-timeout");
    assert!(wait_until(Duration::from_secs(2), || server.sessions.len() == 1).await);
    // Alice's session is still there and answers.
    alice
        .send("<iq to='localhost' type='get' id='still'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    loop {
        let e = alice.expect("iq").await;
        if e.attr("id") == Some("still") {
            break;
        }
        // Further keepalive pings may arrive meanwhile; answer them.
        alice
            .send(&format!(
                "<iq to='localhost' type='result' id='{}'/>",
                e.attr("id").unwrap()
            ))
            .await;
    }
    server.stop();
}

#[tokio::test]
async fn inactive_clients_get_latest_presence_only_and_messages_at_once() {
    let server = server_with_users("csi").await;
    add_user(&server, "carol", "c4r0l").await;
    let addr = server.first_addr().unwrap();
    let (mut alice, _) = XmppClient::login(addr, "alice", "wonderland", Some("a")).await;
    let (mut bob, _) = XmppClient::login(addr, "bob", "builder", Some("b")).await;
    let (mut carol, _) = XmppClient::login(addr, "carol", "c4r0l", Some("c")).await;
    let features_have_csi = {
        let mut c = XmppClient::connect(addr).await;
        c.open().await;
        c.starttls().await;
        c.open().await;
        c.scram(Mechanism::ScramSha256, "alice", "wonderland", None)
            .await
            .unwrap();
        c.open().await.get_child("csi", "urn:xmpp:csi:0").is_some()
    };
    assert!(
        features_have_csi,
        "XEP-0352 §3: advertised after authentication"
    );

    alice.send("<inactive xmlns='urn:xmpp:csi:0'/>").await;
    // Alice's <inactive/> is in effect once her next ping is answered.
    alice
        .send("<iq to='localhost' type='get' id='a0'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    loop {
        if alice.expect("iq").await.attr("id") == Some("a0") {
            break;
        }
    }
    // Directed presence from bob (three updates), then carol (one), is held;
    // each sender's ping orders its presence before the next sender's.
    for show in ["away", "xa", "dnd"] {
        bob.send(&format!(
            "<presence to='alice@localhost/a'><show>{show}</show></presence>"
        ))
        .await;
    }
    bob.send("<iq to='localhost' type='get' id='b1'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    bob.expect("iq").await;
    carol
        .send("<presence to='alice@localhost/a'><show>chat</show></presence>")
        .await;
    carol
        .send("<iq to='localhost' type='get' id='c1'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    carol.expect("iq").await;
    alice
        .send("<iq to='localhost' type='get' id='a1'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    // Nothing from others arrives while inactive (her own presence echo,
    // RFC 6121 §4.2.2, came before she went inactive).
    loop {
        let e = alice.next_element().await;
        if e.name() == "iq" {
            assert_eq!(e.attr("id"), Some("a1"));
            break;
        }
        assert_eq!(e.attr("from"), Some("alice@localhost/a"), "{}", e.to_xml());
    }

    // A message with a body goes out at once, after the held presence,
    // which is the latest per sender only.
    bob.send("<message to='alice@localhost/a' type='chat' id='urgent'><body>now</body></message>")
        .await;
    let mut got = Vec::new();
    loop {
        let e = alice.next_element().await;
        let done = e.name() == "message";
        got.push(e);
        if done {
            break;
        }
    }
    let shows: Vec<String> = got
        .iter()
        .filter(|e| e.name() == "presence")
        .map(|p| p.get_child("show", "jabber:client").unwrap().text())
        .collect();
    assert_eq!(
        shows,
        vec!["dnd", "chat"],
        "latest per contact, in arrival order"
    );
    assert_eq!(got.last().unwrap().attr("id"), Some("urgent"));

    // Held again, then flushed by <active/>.
    bob.send("<presence to='alice@localhost/a'><show>away</show></presence>")
        .await;
    bob.send("<iq to='localhost' type='get' id='b2'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    bob.expect("iq").await;
    alice.send("<active xmlns='urn:xmpp:csi:0'/>").await;
    let p = alice.next_element().await;
    assert_eq!(p.name(), "presence");
    assert_eq!(p.get_child("show", "jabber:client").unwrap().text(), "away");
    server.stop();
}

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
