//! Attacks on the way in: stanzas before authentication (RFC 6120
//! §4.9.3.12), plaintext injected behind `<starttls/>` (§5.4.3.3), SASL
//! password guessing and malformed SCRAM (§6.5), and an authorization
//! identity that is not the authenticated account (§6.3.8, `invalid-authzid`
//! §6.5.6).

use base64::Engine;
use chorus_sasl::{plain_message, Mechanism, ScramClient};

use super::*;
use crate::common::client::failure_condition;

const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";

fn b64(data: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn plain_auth(authzid: Option<&str>, user: &str, password: &str) -> String {
    format!(
        "<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{}</auth>",
        b64(plain_message(authzid, user, password))
    )
}

/// Sends `stanza` and returns the `<failure/>` condition that answers it.
async fn sasl_failure(c: &mut XmppClient, stanza: &str) -> String {
    c.send(stanza).await;
    let f = c.expect("failure").await;
    assert_eq!(f.ns(), NS_SASL, "{}", f.to_xml());
    failure_condition(&f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stanza_before_auth_is_not_authorized() {
    let mut a = Arena::start("hostile-preauth", "", &["eve"]).await;
    a.mark();
    // On the plaintext stream, each flooding what it started.
    refused_preauth(
        &a,
        &[
            (
                &with_header("<message to='good@localhost/watch'><body>hi</body></message>"),
                b"<message to='good@localhost/watch'><body>hi</body></message>",
            ),
            (&with_header("<presence/>"), b"<presence/>"),
            (
                &with_header(
                    "<iq type='get' id='1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
                ),
                b" ",
            ),
            (
                &with_header(
                    "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>",
                ),
                b" ",
            ),
        ],
        "not-authorized",
    )
    .await;
    // Encrypted but not authenticated, also after a failed attempt.
    let mut c = tls_client(a.addr()).await;
    c.send("<message to='good@localhost/watch'><body>hi</body></message>")
        .await;
    assert_eq!(c.expect_stream_error().await, "not-authorized");
    let mut c = tls_client(a.addr()).await;
    assert_eq!(
        sasl_failure(&mut c, &plain_auth(None, "eve", "wrong")).await,
        "not-authorized"
    );
    c.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>x</resource></bind></iq>")
        .await;
    assert_eq!(c.expect_stream_error().await, "not-authorized");
    drop(c);
    // Nothing reached the good session: its ping result is the next thing
    // it reads.
    a.ping().await;
    assert_eq!(a.counts().1, 1, "no session was bound");
    a.finish(0, MEM_BOUND_KIB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_pipelined_after_starttls_is_discarded() {
    let mut a = Arena::start("hostile-pipeline", "", &["eve"]).await;
    a.mark();
    for _ in 0..5 {
        let mut c = XmppClient::connect(a.addr()).await;
        c.open().await;
        // A man in the middle appends an authentication and a stanza to the
        // client's <starttls/>, in the same segment. Processed inside the
        // TLS stream, they would log in as eve and send as her.
        c.send(&format!(
            "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>{}<message to='good@localhost/watch'><body>injected</body></message>",
            plain_auth(None, "eve", PASSWORD)
        ))
        .await;
        c.expect("proceed").await;
        let crate::common::client::Io::Plain(tcp) =
            std::mem::replace(&mut c.io, crate::common::client::Io::Gone)
        else {
            panic!("plain before STARTTLS")
        };
        let tls = crate::common::client::tls_connector(None, false)
            .connect(
                rustls::pki_types::ServerName::try_from("localhost").unwrap(),
                tcp,
            )
            .await
            .expect("the TLS handshake is not disturbed by the injected bytes");
        c.io = crate::common::client::Io::Tls(Box::new(tls));
        // The new stream is unauthenticated: SASL is offered, not bind.
        let f = c.open().await;
        assert!(
            f.get_child("mechanisms", NS_SASL).is_some(),
            "{}",
            f.to_xml()
        );
        assert!(
            f.get_child("bind", "urn:ietf:params:xml:ns:xmpp-bind")
                .is_none(),
            "{}",
            f.to_xml()
        );
        // The next element is the answer to our own <auth/>: no <success/>
        // or <failure/> for the injected one came first.
        c.scram(Mechanism::ScramSha256, "eve", PASSWORD, None)
            .await
            .expect("a real login still works");
    }
    // The injected message never reached the good session.
    a.ping().await;
    a.finish(0, MEM_BOUND_KIB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_brute_force_closes_the_stream_after_five_failures() {
    let mut a = Arena::start("hostile-brute", "", &["eve"]).await;
    a.mark();
    // Five attackers at once, on eve and on an account that does not exist.
    let addr = a.addr();
    let results = concurrently(5, move |i| async move {
        let user = if i % 2 == 0 { "eve" } else { "nobody" };
        let mut c = tls_client(addr).await;
        let mut conditions = Vec::new();
        // sasl.max_attempts = 5: four failures leave the stream open...
        conditions.push(
            c.scram(Mechanism::ScramSha256, user, "guess-0", None)
                .await
                .unwrap_err(),
        );
        for n in 1..4 {
            conditions
                .push(sasl_failure(&mut c, &plain_auth(None, user, &format!("guess-{n}"))).await);
        }
        // ...the fifth is answered, then the stream ends.
        conditions.push(sasl_failure(&mut c, &plain_auth(None, user, "guess-4")).await);
        (conditions, c.expect_stream_error().await)
    })
    .await;
    for (conditions, stream_error) in results {
        assert_eq!(conditions, vec!["not-authorized"; 5]);
        assert_eq!(stream_error, "policy-violation");
    }
    // The attacked account is not locked out, and nobody got in.
    assert_eq!(a.counts().1, 1);
    let (eve, _) = XmppClient::login(a.addr(), "eve", PASSWORD, Some("r")).await;
    a.ping().await;
    a.finish(1, MEM_BOUND_KIB).await;
    drop(eve);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_scram_is_malformed_request() {
    let mut a = Arena::start("hostile-scram", "", &["eve"]).await;
    a.mark();
    let mut c = tls_client(a.addr()).await;
    let auth = |mech: &str, payload: &str| {
        format!(
            "<auth xmlns='{NS_SASL}' mechanism='{mech}'>{}</auth>",
            b64(payload)
        )
    };
    // Not SCRAM at all; an unknown mandatory extension (RFC 5802 §5.1 m=);
    // channel binding claimed on a mechanism without it.
    for payload in [
        "this is not scram",
        "n,,n=eve,r=abcdef,m=ext",
        "p=tls-exporter,,n=eve,r=abcdef",
    ] {
        assert_eq!(
            sasl_failure(&mut c, &auth("SCRAM-SHA-256", payload)).await,
            "malformed-request",
            "{payload}"
        );
    }
    // A client-final whose proof has the wrong length.
    c.send(&auth("SCRAM-SHA-256", "n,,n=eve,r=abcdef")).await;
    let challenge = c.expect("challenge").await;
    let server_first = base64::engine::general_purpose::STANDARD
        .decode(challenge.text())
        .unwrap();
    let nonce = String::from_utf8(server_first)
        .unwrap()
        .split(',')
        .find_map(|p| p.strip_prefix("r=").map(str::to_owned))
        .unwrap();
    assert_eq!(
        sasl_failure(
            &mut c,
            &format!(
                "<response xmlns='{NS_SASL}'>{}</response>",
                b64(format!("c=biws,r={nonce},p=AAAA"))
            )
        )
        .await,
        "malformed-request"
    );
    // A response with no exchange under way: the fifth failure, and the
    // stream ends (sasl.max_attempts).
    assert_eq!(
        sasl_failure(
            &mut c,
            &format!(
                "<response xmlns='{NS_SASL}'>{}</response>",
                b64("c=biws,r=x,p=AAAA")
            )
        )
        .await,
        "malformed-request"
    );
    assert_eq!(c.expect_stream_error().await, "policy-violation");
    a.ping().await;
    assert_eq!(a.counts().1, 1, "nobody got in");
    a.finish(0, MEM_BOUND_KIB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authzid_spoofing_is_invalid_authzid() {
    let mut a = Arena::start("hostile-authzid", "", &["eve"]).await;
    a.mark();
    let mut c = tls_client(a.addr()).await;
    // SCRAM: eve's own password, asking to act as good.
    let mut client = ScramClient::new(Mechanism::ScramSha256, "eve", PASSWORD, None)
        .unwrap()
        .with_authzid("good@localhost");
    c.send(&format!(
        "<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>{}</auth>",
        b64(client.client_first())
    ))
    .await;
    let ch = c.expect("challenge").await;
    let fin = client
        .handle_server_first(
            &base64::engine::general_purpose::STANDARD
                .decode(ch.text())
                .unwrap(),
        )
        .unwrap();
    assert_eq!(
        sasl_failure(
            &mut c,
            &format!("<response xmlns='{NS_SASL}'>{}</response>", b64(fin))
        )
        .await,
        "invalid-authzid"
    );
    // PLAIN: as good, as the server, as a malformed JID.
    for authzid in ["good@localhost", "localhost", "good@localhost@localhost"] {
        assert_eq!(
            sasl_failure(&mut c, &plain_auth(Some(authzid), "eve", PASSWORD)).await,
            "invalid-authzid",
            "{authzid}"
        );
    }
    // The same stream may still log in as eve, and is eve.
    c.send(&plain_auth(Some("eve@localhost"), "eve", PASSWORD))
        .await;
    c.expect("success").await;
    c.open().await;
    let jid = c.bind(Some("spoof")).await.unwrap();
    assert_eq!(jid, "eve@localhost/spoof");
    a.ping().await;
    a.finish(1, MEM_BOUND_KIB).await;
    drop(c);
}
