//! Getting in: STARTTLS and what is refused before it, direct TLS with
//! ALPN, SASL SCRAM with and without channel binding (tls-exporter,
//! tls-server-end-point), PLAIN, and the failures RFC 6120 §6.5 names.

use super::*;

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
