//! Federation (RFC 6120 server-to-server) between two Chorus servers on
//! loopback, each on its own 127.0.0.x address with `s2s.hosts` for name
//! resolution: IM both ways with dialback (self-signed certificates) and
//! with SASL EXTERNAL (a test CA), a killed `s2s-out` actor, and hostile
//! peers.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use chorus_config::{Config, ListenerConfig, ListenerKind};
use chorus_sasl::Mechanism;
use chorus_server::Server;
use chorus_xml::{Element, StreamEvent};

use super::common::client::XmppClient;
use super::common::{self, wait_until};

const S2S_PORT: u16 = 5269;

fn config(tag: &str, domain: &str, ip: &str, peers: &[(&str, &str)]) -> Config {
    let mut c = common::test_config(tag);
    c.server.domains = vec![domain.to_owned()];
    c.listeners = vec![
        ListenerConfig {
            kind: ListenerKind::C2s,
            address: format!("{ip}:0").parse().unwrap(),
        },
        ListenerConfig {
            kind: ListenerKind::S2s,
            address: format!("{ip}:{S2S_PORT}").parse().unwrap(),
        },
    ];
    c.s2s.hosts = peers
        .iter()
        .map(|(d, ip)| format!("{d}={ip}:{S2S_PORT}"))
        .collect();
    c.s2s.connect_timeout_secs = 10;
    c
}

fn c2s_addr(server: &Server) -> SocketAddr {
    server
        .bound
        .iter()
        .find(|e| e.key().starts_with("port:c2s@"))
        .map(|e| *e.value())
        .unwrap()
}

async fn login(server: &Server, user: &str, domain: &str) -> XmppClient {
    let mut c = XmppClient::connect(c2s_addr(server)).await;
    c.domain = domain.to_owned();
    c.open().await;
    c.starttls().await;
    c.open().await;
    c.scram(Mechanism::ScramSha256, user, "secret", None)
        .await
        .unwrap();
    c.open().await;
    c.bind(Some("r")).await.unwrap();
    c
}

/// The next element `pred` accepts, skipping others; panics after 20 s.
async fn wait_for(c: &mut XmppClient, what: &str, pred: impl Fn(&Element) -> bool) -> Element {
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let el = c.next_element().await;
            if pred(&el) {
                return el;
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn body(el: &Element) -> Option<String> {
    el.get_child("body", "jabber:client").map(|b| b.text())
}

struct Pair {
    a: Server,
    b: Server,
}

async fn pair(tag: &str, ip_a: &str, ip_b: &str, tweak: impl Fn(&mut Config, bool)) -> Pair {
    let mut ca = config(
        &format!("{tag}-a"),
        "a.test",
        ip_a,
        &[("b.test", ip_b), ("dead.test", "127.0.0.9")],
    );
    tweak(&mut ca, true);
    let mut cb = config(
        &format!("{tag}-b"),
        "b.test",
        ip_b,
        &[("a.test", ip_a), ("evil.test", ip_a)],
    );
    tweak(&mut cb, false);
    let a = common::start(ca).await;
    let b = common::start(cb).await;
    common::add_user_at(&a, "alice", "a.test", "secret").await;
    common::add_user_at(&b, "bob", "b.test", "secret").await;
    Pair { a, b }
}

/// Messages, an IQ to the remote server, and a presence subscription, both
/// ways; returns how each side authenticated its outgoing stream.
async fn im_both_ways(p: &Pair) -> (String, String) {
    let mut alice = login(&p.a, "alice", "a.test").await;
    let mut bob = login(&p.b, "bob", "b.test").await;
    alice.send("<presence/>").await;
    bob.send("<presence/>").await;

    alice
        .send("<message to='bob@b.test/r' type='chat' id='m1'><body>hello bob</body></message>")
        .await;
    let m = wait_for(&mut bob, "alice's message", |e| e.name() == "message").await;
    assert_eq!(m.attr("from"), Some("alice@a.test/r"), "{}", m.to_xml());
    assert_eq!(body(&m).as_deref(), Some("hello bob"));

    bob.send("<message to='alice@a.test/r' type='chat' id='m2'><body>hi alice</body></message>")
        .await;
    let m = wait_for(&mut alice, "bob's message", |e| e.name() == "message").await;
    assert_eq!(m.attr("from"), Some("bob@b.test/r"));
    assert_eq!(body(&m).as_deref(), Some("hi alice"));

    // An IQ to the remote server itself, and its answer.
    alice
        .send("<iq to='b.test' type='get' id='v1'><query xmlns='jabber:iq:version'/></iq>")
        .await;
    let iq = wait_for(&mut alice, "b.test's version", |e| {
        e.name() == "iq" && e.attr("id") == Some("v1")
    })
    .await;
    assert_eq!(iq.attr("type"), Some("result"), "{}", iq.to_xml());
    assert_eq!(iq.attr("from"), Some("b.test"));

    // RFC 6121 §3: a subscription across the two servers.
    alice
        .send("<presence to='bob@b.test' type='subscribe'/>")
        .await;
    let sub = wait_for(&mut bob, "the subscription request", |e| {
        e.name() == "presence" && e.attr("type") == Some("subscribe")
    })
    .await;
    assert_eq!(sub.attr("from"), Some("alice@a.test"));
    bob.send("<presence to='alice@a.test' type='subscribed'/>")
        .await;
    wait_for(&mut alice, "the approval", |e| {
        e.name() == "presence"
            && e.attr("type") == Some("subscribed")
            && e.attr("from") == Some("bob@b.test")
    })
    .await;
    // Bob's presence follows the approval (RFC 6121 §3.1.6).
    wait_for(&mut alice, "bob's presence", |e| {
        e.name() == "presence" && e.attr("type").is_none() && e.attr("from") == Some("bob@b.test/r")
    })
    .await;

    let auth = |s: &Server| {
        s.s2s()
            .streams()
            .into_iter()
            .find(|i| i.direction == "out")
            .map(|i| i.auth)
            .unwrap_or_default()
    };
    (auth(&p.a), auth(&p.b))
}

#[tokio::test]
async fn two_servers_chat_over_dialback() {
    let p = pair("s2s-db", "127.0.0.2", "127.0.0.3", |_, _| {}).await;
    let (a, b) = im_both_ways(&p).await;
    // Self-signed development certificates prove nothing: dialback.
    assert_eq!((a.as_str(), b.as_str()), ("dialback", "dialback"));
    // The tree: a.test's outgoing stream under root/s2s, b.test's incoming
    // one under its listener.
    assert!(p.a.registry.lookup("root/s2s/a.test->b.test").is_some());
    assert!(!p
        .b
        .registry
        .paths_matching("root/listeners/port:s2s@*/conns/*/s2s-in")
        .is_empty());
    let listed = p.b.s2s().streams();
    assert!(
        listed
            .iter()
            .any(|s| s.direction == "in" && s.remote == "a.test" && s.auth == "dialback"),
        "{listed:?}"
    );

    // An operator closes the streams; the next message opens new ones.
    assert!(p.a.s2s().close("b.test") >= 1);
    let mut alice = login(&p.a, "alice", "a.test").await;
    let mut bob = login(&p.b, "bob", "b.test").await;
    bob.send("<presence/>").await;
    alice
        .send("<message to='bob@b.test/r' id='again'><body>after the close</body></message>")
        .await;
    let m = wait_for(&mut bob, "the message after the close", |e| {
        e.attr("id") == Some("again")
    })
    .await;
    assert_eq!(body(&m).as_deref(), Some("after the close"));

    // A domain nobody answers for: the message bounces.
    alice
        .send("<message to='x@dead.test' id='dead1'><body>anyone?</body></message>")
        .await;
    let err = wait_for(&mut alice, "the bounce", |e| e.attr("id") == Some("dead1")).await;
    assert_eq!(err.attr("type"), Some("error"));
    assert_eq!(
        common::client::stanza_error_condition(&err),
        "remote-server-not-found",
        "{}",
        err.to_xml()
    );
}

/// A test CA and, signed by it, a certificate for each domain.
fn ca_and_certs(dir: &std::path::Path, domains: &[&str]) -> std::path::PathBuf {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Chorus federation test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    for d in domains {
        let params = CertificateParams::new(vec![(*d).to_owned()]).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.join(format!("{d}.crt")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{d}.key")), key.serialize_pem()).unwrap();
    }
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    ca_path
}

#[tokio::test]
async fn two_servers_chat_over_verified_certificates() {
    let dir = common::temp_dir("s2s-ca");
    std::fs::create_dir_all(&dir).unwrap();
    let ca = ca_and_certs(&dir, &["a.test", "b.test"]);
    let p = pair("s2s-ext", "127.0.0.4", "127.0.0.5", |c, is_a| {
        let d = if is_a { "a.test" } else { "b.test" };
        c.tls.cert = dir.join(format!("{d}.crt"));
        c.tls.key = dir.join(format!("{d}.key"));
        c.s2s.ca_file = ca.clone();
    })
    .await;
    let (a, b) = im_both_ways(&p).await;
    assert_eq!((a.as_str(), b.as_str()), ("external", "external"));
}

#[tokio::test]
async fn a_killed_s2s_out_loses_nothing() {
    let p = pair("s2s-kill", "127.0.0.6", "127.0.0.7", |_, _| {}).await;
    let mut alice = login(&p.a, "alice", "a.test").await;
    let mut bob = login(&p.b, "bob", "b.test").await;
    bob.send("<presence/>").await;
    alice
        .send("<message to='bob@b.test/r' id='warm'><body>warm up</body></message>")
        .await;
    wait_for(&mut bob, "the first message", |e| {
        e.attr("id") == Some("warm")
    })
    .await;

    const N: usize = 60;
    let path = "root/s2s/a.test->b.test";
    let mut kills = 0;
    for i in 0..N {
        alice
            .send(&format!(
                "<message to='bob@b.test/r' id='k{i}'><body>{i}</body></message>"
            ))
            .await;
        if i % 20 == 10 {
            if let Some(cell) = p.a.registry.lookup(path) {
                cell.kill();
                kills += 1;
            }
        }
    }
    // Every message arrives once or bounces to alice.
    let mut got = HashSet::new();
    let mut bounced = HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while got.len() + bounced.len() < N && tokio::time::Instant::now() < deadline {
        tokio::select! {
            Some(StreamEvent::Element(el)) = bob.next_event() => {
                if let Some(id) = el.attr("id").filter(|i| i.starts_with('k')) {
                    assert!(got.insert(id.to_owned()), "{id} delivered twice");
                }
            }
            Some(StreamEvent::Element(el)) = alice.next_event() => {
                if el.attr("type") == Some("error") {
                    if let Some(id) = el.attr("id") {
                        bounced.insert(id.to_owned());
                    }
                }
            }
        }
    }
    assert_eq!(
        got.len() + bounced.len(),
        N,
        "delivered {} and bounced {} of {N}",
        got.len(),
        bounced.len()
    );
    assert!(got.is_disjoint(&bounced));
    assert!(kills >= 1, "the actor was never there to kill");
    // The supervisor brought the actor back.
    assert!(
        wait_until(Duration::from_secs(5), || p
            .a
            .registry
            .lookup(path)
            .is_some())
        .await
    );
}

/// Opens a raw server stream to `addr` from `from` (none: no `from`), with
/// STARTTLS; returns it after the second features.
async fn raw_s2s(addr: SocketAddr, from: Option<&str>, to: &str) -> XmppClient {
    let mut c = XmppClient::connect(addr).await;
    let header = |from: Option<&str>| {
        format!(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
             xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
             {}to='{to}' version='1.0'>",
            from.map(|f| format!("from='{f}' ")).unwrap_or_default()
        )
    };
    c.send(&header(from)).await;
    assert!(matches!(c.next_event().await, Some(StreamEvent::Header(_))));
    let f = c.expect("features").await;
    assert!(f
        .get_child("starttls", "urn:ietf:params:xml:ns:xmpp-tls")
        .is_some());
    c.starttls().await;
    c.reset_parser();
    c.send(&header(from)).await;
    assert!(matches!(c.next_event().await, Some(StreamEvent::Header(_))));
    c.expect("features").await;
    c
}

#[tokio::test]
async fn hostile_peers_get_their_stream_errors() {
    let p = pair("s2s-hostile", "127.0.0.8", "127.0.0.10", |_, _| {}).await;
    let b_s2s: SocketAddr = format!("127.0.0.10:{S2S_PORT}").parse().unwrap();

    // A stream to a domain not served here.
    let mut c = XmppClient::connect(b_s2s).await;
    c.send(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
         xmlns:stream='http://etherx.jabber.org/streams' to='nothere.test' version='1.0'>",
    )
    .await;
    assert_eq!(c.expect_stream_error().await, "host-unknown");

    // Dialback for a domain not served here.
    let mut c = raw_s2s(b_s2s, Some("a.test"), "b.test").await;
    c.send("<db:result from='a.test' to='nothere.test'>abc</db:result>")
        .await;
    assert_eq!(c.expect_stream_error().await, "host-unknown");

    // A stanza before any authentication, with a spoofed from.
    let mut c = raw_s2s(b_s2s, Some("a.test"), "b.test").await;
    c.send("<message from='admin@a.test' to='bob@b.test'><body>trust me</body></message>")
        .await;
    assert_eq!(c.expect_stream_error().await, "invalid-from");

    // A domain it cannot prove: evil.test resolves to server A, which does
    // not serve it, so the key does not verify.
    let mut c = raw_s2s(b_s2s, Some("evil.test"), "b.test").await;
    c.send("<db:result from='evil.test' to='b.test'>0123456789abcdef</db:result>")
        .await;
    let answer = c.expect("result").await;
    assert_eq!(answer.attr("type"), Some("invalid"), "{}", answer.to_xml());
    c.send("<message from='x@evil.test' to='bob@b.test'><body>hi</body></message>")
        .await;
    assert_eq!(c.expect_stream_error().await, "invalid-from");

    // A stream that authenticated a.test sends as another domain.
    let mut alice = login(&p.a, "alice", "a.test").await;
    alice
        .send("<message to='bob@b.test' id='x1'><body>hello</body></message>")
        .await;
    // ...meanwhile, nothing above disturbed the real federation.
    let mut bob = login(&p.b, "bob", "b.test").await;
    bob.send("<presence/>").await;
    alice
        .send("<message to='bob@b.test/r' id='x2'><body>still here</body></message>")
        .await;
    let m = wait_for(&mut bob, "alice's message", |e| e.attr("id") == Some("x2")).await;
    assert_eq!(body(&m).as_deref(), Some("still here"));
}
