//! The one-round-trip login (XEP-0388 SASL2, XEP-0386 Bind 2, XEP-0484
//! FAST), written from the XEPs' examples, with the failure paths: bad and
//! replayed tokens, a token for another client or mechanism, a resumption
//! of an unknown session inside Bind 2, a password change.

use super::*;

use base64::Engine;
use chorus_sasl::{ht_client_message, ChannelBindingData, HtMechanism};
use chorus_xml::Element;

const NS_SASL2: &str = "urn:xmpp:sasl:2";
const NS_BIND2: &str = "urn:xmpp:bind:0";
const NS_FAST: &str = "urn:xmpp:fast:0";
const NS_SM: &str = "urn:xmpp:sm:3";
const NS_MAM: &str = "urn:xmpp:mam:2";

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn unb64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap()
}

/// A TLS stream past STARTTLS: the features offered for authentication.
async fn tls(server: &chorus_server::Server) -> (XmppClient, Element) {
    tls_client(server.first_addr().unwrap()).await
}

/// `<user-agent/>` of the client `id`.
fn user_agent(id: &str) -> String {
    format!(
        "<user-agent id='{id}'><software>AwesomeXMPP</software><device>Kiva's Phone</device></user-agent>"
    )
}

/// SCRAM-SHA-256-PLUS (tls-exporter) over SASL2 with `extra` children in
/// `<authenticate/>`: the server's final answer (`<success/>` or
/// `<failure/>`), the server signature checked on success.
async fn scram2(c: &mut XmppClient, user: &str, password: &str, extra: &str) -> Element {
    let binding = c.binding(ChannelBindingType::TlsExporter).unwrap();
    let mut client = ScramClient::new(
        Mechanism::ScramSha256Plus,
        user,
        password,
        Some((ChannelBindingType::TlsExporter, binding)),
    )
    .unwrap();
    c.send(&format!(
        "<authenticate xmlns='{NS_SASL2}' mechanism='SCRAM-SHA-256-PLUS'>\
         <initial-response>{}</initial-response>{extra}</authenticate>",
        b64(&client.client_first())
    ))
    .await;
    let challenge = c.next_element().await;
    if challenge.name() == "failure" {
        return challenge;
    }
    assert!(
        challenge.is("challenge", NS_SASL2),
        "{}",
        challenge.to_xml()
    );
    let fin = client
        .handle_server_first(&unb64(&challenge.text()))
        .unwrap();
    c.send(&format!(
        "<response xmlns='{NS_SASL2}'>{}</response>",
        b64(&fin)
    ))
    .await;
    let outcome = c.next_element().await;
    if outcome.is("success", NS_SASL2) {
        let data = outcome.get_child("additional-data", NS_SASL2).unwrap();
        client
            .handle_server_final(&unb64(&data.text()))
            .expect("the server signature verifies");
    }
    outcome
}

fn identity(success: &Element) -> String {
    success
        .get_child("authorization-identifier", NS_SASL2)
        .map(|e| e.text())
        .unwrap_or_default()
}

fn sasl2_failure(el: &Element) -> String {
    assert!(el.is("failure", NS_SASL2), "{}", el.to_xml());
    el.children()
        .find(|c| c.ns() == NS_SASL)
        .map(|c| c.name().to_owned())
        .unwrap()
}

/// The token `<success/>` carries.
fn token(success: &Element) -> String {
    let t = success
        .get_child("token", NS_FAST)
        .unwrap_or_else(|| panic!("no token: {}", success.to_xml()));
    assert!(t.attr("expiry").is_some_and(|e| e.ends_with('Z')));
    t.attr("token").unwrap().to_owned()
}

/// A FAST login with `token` for client `ua`: the server's answer.
async fn fast(
    c: &mut XmppClient,
    mech: HtMechanism,
    user: &str,
    token: &str,
    ua: &str,
    fast_attrs: &str,
    extra: &str,
) -> Element {
    let cb = ChannelBindingData {
        tls_exporter: c.binding(ChannelBindingType::TlsExporter),
        tls_server_end_point: c.binding(ChannelBindingType::TlsServerEndPoint),
    };
    let msg = ht_client_message(mech, user, token, &cb).unwrap();
    c.send(&format!(
        "<authenticate xmlns='{NS_SASL2}' mechanism='{}'>\
         <initial-response>{}</initial-response>{}\
         <fast xmlns='{NS_FAST}' {fast_attrs}/>{extra}</authenticate>",
        mech.name(),
        b64(&msg),
        user_agent(ua)
    ))
    .await;
    let answer = c.next_element().await;
    if answer.is("success", NS_SASL2) {
        // The server's HT "Responder" proof: an HMAC-SHA-256.
        let data = answer.get_child("additional-data", NS_SASL2).unwrap();
        assert_eq!(unb64(&data.text()).len(), 32);
    }
    answer
}

/// Runs chorusctl against the server's admin socket: its standard output.
async fn ctl(server: &chorus_server::Server, args: &[&str]) -> String {
    let socket = server.admin_socket.clone();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(chorusctl_bin())
            .arg("--socket")
            .arg(&socket)
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn sasl2_is_offered_with_bind2_fast_and_resumption_inline() {
    let server = server_with_users("sasl2-features").await;
    let mut plain = XmppClient::connect(server.first_addr().unwrap()).await;
    let f = plain.open().await;
    assert!(
        f.get_child("authentication", NS_SASL2).is_none(),
        "nothing to authenticate with before TLS"
    );
    let (_c, f) = tls(&server).await;
    let auth = f
        .get_child("authentication", NS_SASL2)
        .unwrap_or_else(|| panic!("{}", f.to_xml()));
    let mechs: Vec<String> = auth
        .children()
        .filter(|c| c.name() == "mechanism")
        .map(|c| c.text())
        .collect();
    assert_eq!(mechs[0], "SCRAM-SHA-256-PLUS");
    assert!(mechs.contains(&"PLAIN".to_owned()));
    let inline = auth.get_child("inline", NS_SASL2).unwrap();
    let bind = inline.get_child("bind", NS_BIND2).unwrap();
    let vars: Vec<&str> = bind
        .get_child("inline", NS_BIND2)
        .unwrap()
        .children()
        .filter_map(|c| c.attr("var"))
        .collect();
    assert_eq!(vars, ["urn:xmpp:carbons:2", "urn:xmpp:csi:0", NS_SM]);
    let fast: Vec<String> = inline
        .get_child("fast", NS_FAST)
        .unwrap()
        .children()
        .map(|c| c.text())
        .collect();
    assert_eq!(
        fast,
        ["HT-SHA-256-EXPR", "HT-SHA-256-ENDP", "HT-SHA-256-NONE"]
    );
    assert!(inline.get_child("sm", NS_SM).is_some());
    server.stop();
}

#[tokio::test]
async fn one_round_trip_binds_enables_and_hands_out_a_token() {
    let server = server_with_users("sasl2-bind2").await;
    // Two messages wait offline for alice; the archive has them too.
    let (mut bob, _) =
        XmppClient::login(server.first_addr().unwrap(), "bob", "builder", Some("b")).await;
    for i in 0..2 {
        bob.send(&format!(
            "<message to='alice@localhost' type='chat' id='m{i}'><body>offline {i}</body></message>"
        ))
        .await;
    }
    bob.send("<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    bob.expect("iq").await;

    let (mut c, _) = tls(&server).await;
    let extra = format!(
        "{}<bind xmlns='{NS_BIND2}'><tag>AwesomeXMPP</tag>\
         <enable xmlns='urn:xmpp:carbons:2'/><enable xmlns='{NS_SM}' resume='true'/>\
         <inactive xmlns='urn:xmpp:csi:0'/></bind>\
         <request-token xmlns='{NS_FAST}' mechanism='HT-SHA-256-NONE'/>",
        user_agent("d4565fa7-4d72-4749-b3d3-740edbf87770")
    );
    let success = scram2(&mut c, "alice", "wonderland", &extra).await;
    assert!(success.is("success", NS_SASL2), "{}", success.to_xml());
    let full = identity(&success);
    assert!(
        full.starts_with("alice@localhost/AwesomeXMPP/"),
        "XEP-0386 §2.2.1 <tag>/<id>: {full}"
    );
    assert!(
        !full.contains("d4565fa7"),
        "the user-agent id stays private"
    );
    let bound = success.get_child("bound", NS_BIND2).unwrap();
    let metadata = bound.get_child("metadata", NS_MAM).unwrap();
    assert!(
        metadata.get_child("end", NS_MAM).is_some(),
        "{}",
        bound.to_xml()
    );
    let enabled = bound.get_child("enabled", NS_SM).unwrap();
    assert_eq!(enabled.attr("resume"), Some("true"));
    token(&success);
    // Features follow, with nothing left to bind (XEP-0388 §2.6.1).
    let features = c.expect("features").await;
    assert!(features
        .get_child("bind", "urn:ietf:params:xml:ns:xmpp-bind")
        .is_none());
    assert!(features.get_child("authentication", NS_SASL2).is_none());
    assert!(
        features.get_child("sm", NS_SM).is_none(),
        "stream management is already on: {}",
        features.to_xml()
    );
    // No restart: the stream is a session now. Carbons are on, and the
    // offline messages the archive holds were dropped (MAM has them).
    let session = server.sessions.get(&full.parse().unwrap()).unwrap();
    assert!(session.carbons());
    c.send("<presence/>").await;
    c.send("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    loop {
        let el = c.next_element().await;
        assert_ne!(el.name(), "message", "no offline delivery: {}", el.to_xml());
        if el.name() == "iq" {
            assert_eq!(el.attr("id"), Some("p1"));
            break;
        }
    }
    use chorus_storage::OfflineStore;
    assert_eq!(
        server
            .storage
            .count_offline("alice", "localhost")
            .await
            .unwrap(),
        0
    );
    // The stream is authenticated without a restart: stanzas above the
    // pre-authentication limit (8 KiB) go through.
    let big = "x".repeat(20_000);
    bob.send(&format!(
        "<message to='{full}' type='chat' id='big-in'><body>{big}</body></message>"
    ))
    .await;
    assert_eq!(c.expect("message").await.attr("id"), Some("big-in"));
    c.send(&format!(
        "<message to='bob@localhost/b' type='chat' id='big-out'><body>{big}</body></message>"
    ))
    .await;
    assert_eq!(bob.expect("message").await.attr("id"), Some("big-out"));
    // Live messages arrive as usual.
    bob.send(&format!(
        "<message to='{full}' type='chat' id='live'><body>hi</body></message>"
    ))
    .await;
    let m = c.expect("message").await;
    assert_eq!(m.attr("id"), Some("live"));
    server.stop();
}

#[tokio::test]
async fn a_fast_token_logs_in_without_the_password_once_per_count() {
    let server = server_with_users("sasl2-fast").await;
    let ua = "0f4a6f4e-client-one";
    let bind = format!("<bind xmlns='{NS_BIND2}'><tag>Phone</tag></bind>");
    let (mut c, _) = tls(&server).await;
    let success = scram2(
        &mut c,
        "alice",
        "wonderland",
        &format!(
            "{}{bind}<request-token xmlns='{NS_FAST}' mechanism='HT-SHA-256-NONE'/>",
            user_agent(ua)
        ),
    )
    .await;
    let first_jid = identity(&success);
    let tok = token(&success);
    c.expect("features").await;
    // Storage holds neither the token nor its plain hash (which would log
    // in as well as the token does).
    use chorus_storage::ClientStore;
    let stored = server
        .storage
        .fast_tokens("alice", "localhost", ua)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0].hash, chorus_sasl::token_hash(&tok));
    assert!(!stored[0]
        .hash
        .windows(8)
        .any(|w| tok.as_bytes().windows(8).any(|t| t == w)));

    // Reconnect with the token: one message, no password.
    let (mut c2, _) = tls(&server).await;
    let ok = fast(
        &mut c2,
        HtMechanism::Sha256None,
        "alice",
        &tok,
        ua,
        "count='1'",
        &bind,
    )
    .await;
    assert!(ok.is("success", NS_SASL2), "{}", ok.to_xml());
    // The same client gets the same resource, and its new session
    // replaces the old one (XEP-0386 §2.2).
    assert_eq!(identity(&ok), first_jid);
    assert!(
        ok.get_child("token", NS_FAST).is_none(),
        "a fresh token is not rotated"
    );
    assert!(c.expect_stream_error().await.contains("conflict"));

    // The same count again is a replay; a higher one is fine.
    let (mut c3, _) = tls(&server).await;
    let replay = fast(
        &mut c3,
        HtMechanism::Sha256None,
        "alice",
        &tok,
        ua,
        "count='1'",
        "",
    )
    .await;
    assert_eq!(sasl2_failure(&replay), "not-authorized");
    let ok = fast(
        &mut c3,
        HtMechanism::Sha256None,
        "alice",
        &tok,
        ua,
        "count='2'",
        "",
    )
    .await;
    assert!(ok.is("success", NS_SASL2), "{}", ok.to_xml());
    // Without a bind request the identity is the bare JID.
    assert_eq!(identity(&ok), "alice@localhost");

    // Wrong token, another client, another mechanism, or no <fast/>.
    let (mut c4, _) = tls(&server).await;
    let bad = fast(
        &mut c4,
        HtMechanism::Sha256None,
        "alice",
        "secret-token:nope",
        ua,
        "",
        "",
    )
    .await;
    assert_eq!(sasl2_failure(&bad), "not-authorized");
    let other = fast(
        &mut c4,
        HtMechanism::Sha256None,
        "alice",
        &tok,
        "someone-else",
        "",
        "",
    )
    .await;
    assert_eq!(sasl2_failure(&other), "not-authorized");
    let mech = fast(&mut c4, HtMechanism::Sha256Expr, "alice", &tok, ua, "", "").await;
    assert_eq!(sasl2_failure(&mech), "not-authorized");
    c4.send(&format!(
        "<authenticate xmlns='{NS_SASL2}' mechanism='HT-SHA-256-NONE'>\
         <initial-response>AA==</initial-response>{}</authenticate>",
        user_agent(ua)
    ))
    .await;
    assert_eq!(sasl2_failure(&c4.next_element().await), "invalid-mechanism");
    // A token for a mechanism the server does not offer.
    c4.send(&format!(
        "<authenticate xmlns='{NS_SASL2}' mechanism='PLAIN'><initial-response>AA==</initial-response>\
         {}<request-token xmlns='{NS_FAST}' mechanism='HT-SHA-256-UNIQ'/></authenticate>",
        user_agent(ua)
    ))
    .await;
    assert_eq!(sasl2_failure(&c4.next_element().await), "invalid-mechanism");
    server.stop();
}

#[tokio::test]
async fn invalidation_and_a_password_change_end_tokens() {
    let server = server_with_users("sasl2-revoke").await;
    let mut tokens = Vec::new();
    for ua in ["ua-a", "ua-b"] {
        let (mut c, _) = tls(&server).await;
        let success = scram2(
            &mut c,
            "alice",
            "wonderland",
            &format!(
                "{}<request-token xmlns='{NS_FAST}' mechanism='HT-SHA-256-EXPR'/>",
                user_agent(ua)
            ),
        )
        .await;
        tokens.push((ua, token(&success)));
    }
    // Clients are listed, with their tokens.
    use chorus_storage::ClientStore;
    let clients = server.storage.clients("alice", "localhost").await.unwrap();
    assert_eq!(clients.len(), 2);
    assert!(clients.iter().all(|c| c.token_expires.is_some()));
    assert_eq!(clients[0].software, "AwesomeXMPP");

    // chorusctl lists them, and revokes one client's tokens.
    let out = ctl(&server, &["user", "clients", "alice@localhost"]).await;
    assert!(out.contains("ua-a") && out.contains("ua-b"), "{out}");
    assert!(
        out.contains("AwesomeXMPP") && !out.contains("token none"),
        "{out}"
    );
    let out = ctl(&server, &["user", "info", "alice@localhost"]).await;
    assert!(
        out.contains("disabled: no") && out.contains("    ua-a  AwesomeXMPP"),
        "{out}"
    );
    let out = ctl(
        &server,
        &["user", "revoke", "alice@localhost", "--client", "ua-b"],
    )
    .await;
    assert!(out.starts_with("1 token(s)"), "{out}");
    let out = ctl(&server, &["user", "clients", "alice@localhost"]).await;
    assert!(out.contains("token none"), "{out}");
    let (mut c, _) = tls(&server).await;
    let gone = fast(
        &mut c,
        HtMechanism::Sha256Expr,
        "alice",
        &tokens[1].1,
        "ua-b",
        "",
        "",
    )
    .await;
    assert_eq!(sasl2_failure(&gone), "not-authorized");
    // Issue ua-b a new token, for the password change below.
    let (mut c, _) = tls(&server).await;
    let success = scram2(
        &mut c,
        "alice",
        "wonderland",
        &format!(
            "{}<request-token xmlns='{NS_FAST}' mechanism='HT-SHA-256-EXPR'/>",
            user_agent("ua-b")
        ),
    )
    .await;
    tokens[1].1 = token(&success);

    // XEP-0484 §4.5: invalidate with a successful login.
    let (ua, tok) = &tokens[0];
    let (mut c, _) = tls(&server).await;
    let ok = fast(
        &mut c,
        HtMechanism::Sha256Expr,
        "alice",
        tok,
        ua,
        "invalidate='true'",
        "",
    )
    .await;
    assert!(ok.is("success", NS_SASL2), "{}", ok.to_xml());
    assert!(ok.get_child("token", NS_FAST).is_none());
    let (mut c, _) = tls(&server).await;
    let gone = fast(&mut c, HtMechanism::Sha256Expr, "alice", tok, ua, "", "").await;
    assert_eq!(sasl2_failure(&gone), "not-authorized");

    // A password change ends the other client's token.
    use chorus_storage::AccountStore;
    let creds = chorus_modules::register::credentials("new password", 4096).unwrap();
    assert!(server
        .storage
        .set_credentials("alice", "localhost", &creds)
        .await
        .unwrap());
    let (ua, tok) = &tokens[1];
    let gone = fast(&mut c, HtMechanism::Sha256Expr, "alice", tok, ua, "", "").await;
    assert_eq!(sasl2_failure(&gone), "not-authorized");
    server.stop();
}

#[tokio::test]
async fn wrong_passwords_fail_in_sasl2_form_and_the_stream_goes_on() {
    let server = server_with_users("sasl2-fail").await;
    let (mut c, _) = tls(&server).await;
    let failure = scram2(&mut c, "alice", "wrong", "").await;
    assert_eq!(sasl2_failure(&failure), "not-authorized");
    c.send(&format!(
        "<authenticate xmlns='{NS_SASL2}' mechanism='X-UNKNOWN'/>"
    ))
    .await;
    assert_eq!(sasl2_failure(&c.next_element().await), "invalid-mechanism");
    // An abort is acknowledged as one.
    c.send(&format!(
        "<authenticate xmlns='{NS_SASL2}' mechanism='SCRAM-SHA-256'>\
         <initial-response>{}</initial-response></authenticate>",
        b64(b"n,,n=alice,r=abcdefghijkl")
    ))
    .await;
    assert!(c.next_element().await.is("challenge", NS_SASL2));
    c.send(&format!("<abort xmlns='{NS_SASL2}'/>")).await;
    assert_eq!(sasl2_failure(&c.next_element().await), "aborted");
    // Still open: the right password works, PLAIN included.
    c.send(&format!(
        "<authenticate xmlns='{NS_SASL2}' mechanism='PLAIN'>\
         <initial-response>{}</initial-response></authenticate>",
        b64(b"\0alice\0wonderland")
    ))
    .await;
    let ok = c.next_element().await;
    assert!(ok.is("success", NS_SASL2), "{}", ok.to_xml());
    assert_eq!(identity(&ok), "alice@localhost");
    // Not bound: the features offer binding, the RFC 6120 way.
    let f = c.expect("features").await;
    assert!(f
        .get_child("bind", "urn:ietf:params:xml:ns:xmpp-bind")
        .is_some());
    assert!(c.bind(Some("legacy")).await.is_ok());
    server.stop();
}

#[tokio::test]
async fn a_session_resumes_inside_sasl2_or_binds_anew() {
    let server = server_with_users("sasl2-resume").await;
    let (mut c, _) = tls(&server).await;
    let bind = format!(
        "<bind xmlns='{NS_BIND2}'><tag>Phone</tag><enable xmlns='{NS_SM}' resume='true'/></bind>"
    );
    let success = scram2(
        &mut c,
        "alice",
        "wonderland",
        &format!("{}{bind}", user_agent("ua-r")),
    )
    .await;
    let full = identity(&success);
    let id = success
        .get_child("bound", NS_BIND2)
        .and_then(|b| b.get_child("enabled", NS_SM))
        .and_then(|e| e.attr("id"))
        .unwrap()
        .to_owned();
    c.expect("features").await;
    c.send("<presence/>").await;
    // A message the client never acknowledges, then the network goes.
    let (mut bob, _) =
        XmppClient::login(server.first_addr().unwrap(), "bob", "builder", Some("b")).await;
    bob.send(&format!(
        "<message to='{full}' type='chat' id='kept'><body>still there?</body></message>"
    ))
    .await;
    loop {
        let el = c.next_element().await;
        if el.name() == "message" {
            break;
        }
    }
    c.drop_connection();
    let jid: chorus_jid::FullJid = full.parse().unwrap();
    // Resumption of an unknown session fails inside <success/>, and the
    // bind request is processed instead (XEP-0386 §2.2).
    let (mut other, _) = tls(&server).await;
    let answer = scram2(
        &mut other,
        "alice",
        "wonderland",
        &format!(
            "{}<resume xmlns='{NS_SM}' previd='unknown' h='0'/><bind xmlns='{NS_BIND2}'><tag>Desk</tag></bind>",
            user_agent("ua-other")
        ),
    )
    .await;
    assert!(answer.is("success", NS_SASL2), "{}", answer.to_xml());
    let failed = answer.get_child("failed", NS_SM).unwrap();
    assert!(failed
        .get_child("item-not-found", "urn:ietf:params:xml:ns:xmpp-stanzas")
        .is_some());
    assert!(answer.get_child("bound", NS_BIND2).is_some());
    assert!(identity(&answer).starts_with("alice@localhost/Desk/"));

    // The real resumption: <resumed/> in <success/>, then the message again.
    assert!(
        wait_until(Duration::from_secs(10), || server
            .sessions
            .get(&jid)
            .is_some())
        .await
    );
    let (mut c2, _) = tls(&server).await;
    let resumed = scram2(
        &mut c2,
        "alice",
        "wonderland",
        &format!(
            "{}<resume xmlns='{NS_SM}' previd='{id}' h='0'/>{bind}",
            user_agent("ua-r")
        ),
    )
    .await;
    assert!(resumed.is("success", NS_SASL2), "{}", resumed.to_xml());
    let r = resumed.get_child("resumed", NS_SM).unwrap();
    assert_eq!(r.attr("previd"), Some(id.as_str()));
    assert!(
        resumed.get_child("bound", NS_BIND2).is_none(),
        "no bind after a resumption"
    );
    assert_eq!(identity(&resumed), full);
    // Features first (XEP-0388 §2.6.1), then what was never acknowledged.
    let f = c2.next_element().await;
    assert!(
        f.is("features", "http://etherx.jabber.org/streams"),
        "{}",
        f.to_xml()
    );
    let again = c2.expect("message").await;
    assert_eq!(again.attr("id"), Some("kept"));
    server.stop();
}

#[tokio::test]
async fn a_disabled_account_is_refused_by_both_profiles() {
    let server = server_with_users("sasl2-disabled").await;
    use chorus_storage::AdminStore;
    assert!(server
        .storage
        .disable_account("alice", "localhost", "spam", std::time::SystemTime::now())
        .await
        .unwrap());
    // RFC 6120 §6.5.1 <account-disabled/>, for a right password.
    let (mut c, _) = tls(&server).await;
    let failure = scram2(&mut c, "alice", "wonderland", "").await;
    assert_eq!(sasl2_failure(&failure), "account-disabled");
    let err = c
        .scram(
            Mechanism::ScramSha256Plus,
            "alice",
            "wonderland",
            Some(ChannelBindingType::TlsExporter),
        )
        .await
        .unwrap_err();
    assert_eq!(err, "account-disabled");
    assert!(server
        .storage
        .enable_account("alice", "localhost")
        .await
        .unwrap());
    let ok = scram2(&mut c, "alice", "wonderland", "").await;
    assert!(ok.is("success", NS_SASL2), "{}", ok.to_xml());
    server.stop();
}

#[tokio::test]
async fn optional_parts_may_be_left_out() {
    let server = server_with_users("sasl2-optional").await;
    let (mut c, _) = tls(&server).await;
    // No initial response: an empty challenge asks for it (XEP-0388 §2.2).
    c.send(&format!(
        "<authenticate xmlns='{NS_SASL2}' mechanism='PLAIN'>\
         <user-agent><software>NoId</software></user-agent>\
         <request-token xmlns='{NS_FAST}' mechanism='HT-SHA-256-NONE'/></authenticate>"
    ))
    .await;
    let challenge = c.next_element().await;
    assert!(
        challenge.is("challenge", NS_SASL2),
        "{}",
        challenge.to_xml()
    );
    assert_eq!(challenge.text().trim(), "");
    c.send(&format!(
        "<response xmlns='{NS_SASL2}'>{}</response>",
        b64(b"\0alice\0wonderland")
    ))
    .await;
    let ok = c.next_element().await;
    assert!(ok.is("success", NS_SASL2), "{}", ok.to_xml());
    // A user agent without an id is no client to give a token to.
    assert!(ok.get_child("token", NS_FAST).is_none(), "{}", ok.to_xml());
    use chorus_storage::ClientStore;
    assert!(server
        .storage
        .clients("alice", "localhost")
        .await
        .unwrap()
        .is_empty());

    // The same in RFC 6120 SASL: an empty <auth/>, then the response.
    let (mut c, _) = tls(&server).await;
    c.send(&format!("<auth xmlns='{NS_SASL}' mechanism='PLAIN'/>"))
        .await;
    let challenge = c.next_element().await;
    assert!(challenge.is("challenge", NS_SASL), "{}", challenge.to_xml());
    c.send(&format!(
        "<response xmlns='{NS_SASL}'>{}</response>",
        b64(b"\0bob\0builder")
    ))
    .await;
    assert_eq!(c.next_element().await.name(), "success");
    server.stop();
}

#[tokio::test]
async fn a_bind_that_fails_is_no_failed_login_and_the_stream_goes_on() {
    let mut config = test_config("sasl2-bindfail");
    config.c2s.max_resources = 1;
    let server = start(config).await;
    add_user(&server, "alice", "wonderland").await;
    let (mut first, _) = tls(&server).await;
    let bind = |tag: &str| format!("<bind xmlns='{NS_BIND2}'><tag>{tag}</tag></bind>");
    let ok = scram2(&mut first, "alice", "wonderland", &bind("One")).await;
    assert!(ok.is("success", NS_SASL2), "{}", ok.to_xml());
    // A second resource is one too many.
    let (mut c, _) = tls(&server).await;
    let failure = scram2(&mut c, "alice", "wonderland", &bind("Two")).await;
    assert_eq!(sasl2_failure(&failure), "temporary-auth-failure");
    // Not logged in, not banned: more tries than sasl.max_attempts allows
    // failures for still get in, without binding.
    for _ in 0..5 {
        let again = scram2(&mut c, "alice", "wonderland", &bind("Two")).await;
        assert_eq!(sasl2_failure(&again), "temporary-auth-failure");
    }
    let ok = scram2(&mut c, "alice", "wonderland", "").await;
    assert!(ok.is("success", NS_SASL2), "{}", ok.to_xml());
    assert_eq!(identity(&ok), "alice@localhost");
    server.stop();
}
