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
    raw_s2s_from(addr, None, from, to).await
}

/// [`raw_s2s`] from the source address `src`.
async fn raw_s2s_from(
    addr: SocketAddr,
    src: Option<std::net::IpAddr>,
    from: Option<&str>,
    to: &str,
) -> XmppClient {
    let mut c = match src {
        Some(ip) => XmppClient::connect_from(addr, ip).await,
        None => XmppClient::connect(addr).await,
    };
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

    // Dialback for a domain not served here: an error for that pair
    // (XEP-0220 §2.4), and the stream stays open for the others.
    let mut c = raw_s2s(b_s2s, Some("a.test"), "b.test").await;
    c.send("<db:result from='a.test' to='nothere.test'>abc</db:result>")
        .await;
    let answer = c.expect("result").await;
    assert_eq!(answer.attr("type"), Some("error"), "{}", answer.to_xml());
    assert!(
        answer.to_xml().contains("item-not-found"),
        "{}",
        answer.to_xml()
    );
    c.send("<db:verify from='a.test' to='nothere.test' id='x'>abc</db:verify>")
        .await;
    let answer = c.expect("verify").await;
    assert_eq!(answer.attr("type"), Some("error"), "{}", answer.to_xml());
    // A stanza to a domain not served here, on that still open stream.
    c.send("<message from='x@a.test' to='y@nothere.test'><body>hi</body></message>")
        .await;
    assert_eq!(c.expect_stream_error().await, "host-unknown");

    // A stanza before any authentication, with a spoofed from.
    let mut c = raw_s2s(b_s2s, Some("a.test"), "b.test").await;
    c.send("<message from='admin@a.test' to='bob@b.test'><body>trust me</body></message>")
        .await;
    assert_eq!(c.expect_stream_error().await, "invalid-from");

    // A domain it cannot prove: evil.test resolves to server A, which does
    // not serve it, so the key cannot be checked (XEP-0220 §2.4)...
    let mut c = raw_s2s(b_s2s, Some("evil.test"), "b.test").await;
    c.send("<db:result from='evil.test' to='b.test'>0123456789abcdef</db:result>")
        .await;
    let answer = c.expect("result").await;
    assert_eq!(answer.attr("type"), Some("error"), "{}", answer.to_xml());
    assert!(
        answer.to_xml().contains("remote-connection-failed"),
        "{}",
        answer.to_xml()
    );
    c.send("<message from='x@evil.test' to='bob@b.test'><body>hi</body></message>")
        .await;
    assert_eq!(c.expect_stream_error().await, "invalid-from");

    // ...and a.test's own server says a forged key for a.test is not its
    // own: invalid, and the stream ends (XEP-0220 §2.1.3).
    let mut c = raw_s2s(b_s2s, Some("a.test"), "b.test").await;
    c.send("<db:result from='a.test' to='b.test'>0123456789abcdef</db:result>")
        .await;
    let answer = c.expect("result").await;
    assert_eq!(answer.attr("type"), Some("invalid"), "{}", answer.to_xml());
    loop {
        match c.next_event().await {
            Some(StreamEvent::End) | None => break,
            Some(StreamEvent::Element(el)) => panic!("unexpected {}", el.to_xml()),
            Some(_) => {}
        }
    }

    // Nothing above disturbed the real federation; a stanza larger than
    // the pre-authentication limit (8 KiB) crosses a dialback stream.
    let mut alice = login(&p.a, "alice", "a.test").await;
    let mut bob = login(&p.b, "bob", "b.test").await;
    bob.send("<presence/>").await;
    let big = "still here ".repeat(2000);
    alice
        .send(&format!(
            "<message to='bob@b.test/r' id='x2'><body>{big}</body></message>"
        ))
        .await;
    let m = wait_for(&mut bob, "alice's message", |e| e.attr("id") == Some("x2")).await;
    assert_eq!(body(&m).as_deref(), Some(big.as_str()));
}

/// What the issue asks of IM from remote senders: offline storage,
/// archiving, and block lists, all applied to a remote JID.
#[tokio::test]
async fn remote_senders_get_offline_storage_archiving_and_blocking() {
    let p = pair("s2s-im", "127.0.0.14", "127.0.0.15", |_, _| {}).await;
    let mut alice = login(&p.a, "alice", "a.test").await;
    alice.send("<presence/>").await;

    // Bob is offline: the message waits on b.test.
    alice
        .send("<message to='bob@b.test' type='chat' id='off1'><body>while you were out</body></message>")
        .await;
    // Stored on b.test before bob comes online.
    let mut stored = false;
    for _ in 0..200 {
        use chorus_storage::OfflineStore;
        if !p
            .b
            .storage
            .offline_messages("bob", "b.test", 10)
            .await
            .unwrap()
            .is_empty()
        {
            stored = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stored, "the message reached b.test's offline storage");
    let mut bob = login(&p.b, "bob", "b.test").await;
    bob.send("<presence/>").await;
    let m = wait_for(&mut bob, "the offline message", |e| {
        e.attr("id") == Some("off1")
    })
    .await;
    assert_eq!(body(&m).as_deref(), Some("while you were out"));
    assert!(
        m.get_child("delay", "urn:xmpp:delay").is_some(),
        "XEP-0203 delay on an offline message: {}",
        m.to_xml()
    );

    // It is in bob's archive, from alice's remote JID.
    bob.send("<iq type='set' id='mam1'><query xmlns='urn:xmpp:mam:2' queryid='q1'/></iq>")
        .await;
    let r = wait_for(&mut bob, "an archived message", |e| {
        e.get_child("result", "urn:xmpp:mam:2").is_some()
    })
    .await;
    let archived = r.to_xml();
    assert!(archived.contains("while you were out"), "{archived}");
    assert!(archived.contains("alice@a.test"), "{archived}");

    // Bob blocks alice's remote JID: her next message does not reach him
    // and she gets an error (XEP-0191 §3.2).
    bob.send("<iq type='set' id='blk'><block xmlns='urn:xmpp:blocking'><item jid='alice@a.test'/></block></iq>")
        .await;
    wait_for(&mut bob, "the block result", |e| {
        e.attr("id") == Some("blk")
    })
    .await;
    alice
        .send("<message to='bob@b.test/r' type='chat' id='blocked1'><body>hello?</body></message>")
        .await;
    let err = wait_for(&mut alice, "the error for a blocked message", |e| {
        e.attr("id") == Some("blocked1")
    })
    .await;
    assert_eq!(err.attr("type"), Some("error"), "{}", err.to_xml());
    let nothing = tokio::time::timeout(Duration::from_millis(500), async {
        loop {
            let el = bob.next_element().await;
            if el.attr("id") == Some("blocked1") {
                return el;
            }
        }
    })
    .await;
    assert!(nothing.is_err(), "a blocked message reached bob");
}

/// A user of one server in a room of the other: the room's own domain
/// (conference.a.test) federates like any domain.
#[tokio::test]
async fn a_remote_user_joins_a_room_and_chats() {
    let p = pair("s2s-muc", "127.0.0.16", "127.0.0.17", |c, is_a| {
        if !is_a {
            c.s2s
                .hosts
                .push(format!("conference.a.test=127.0.0.16:{S2S_PORT}"));
        }
    })
    .await;
    let mut alice = login(&p.a, "alice", "a.test").await;
    let mut bob = login(&p.b, "bob", "b.test").await;
    let room = "tea@conference.a.test";
    alice
        .send(&format!(
            "<presence to='{room}/alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
        ))
        .await;
    wait_for(&mut alice, "her own presence in the room", |e| {
        e.name() == "presence" && e.attr("from") == Some("tea@conference.a.test/alice")
    })
    .await;
    // An instant room (XEP-0045 §10.1.2).
    alice
        .send(&format!(
            "<iq type='set' to='{room}' id='cfg'><query xmlns='http://jabber.org/protocol/muc#owner'>\
             <x xmlns='jabber:x:data' type='submit'/></query></iq>"
        ))
        .await;
    let cfg = wait_for(&mut alice, "the room configured", |e| {
        e.attr("id") == Some("cfg")
    })
    .await;
    assert_eq!(cfg.attr("type"), Some("result"), "{}", cfg.to_xml());

    bob.send(&format!(
        "<presence to='{room}/bob'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
    ))
    .await;
    wait_for(&mut bob, "his own presence in the room", |e| {
        e.name() == "presence"
            && e.attr("from") == Some("tea@conference.a.test/bob")
            && e.attr("type").is_none()
    })
    .await;
    wait_for(&mut alice, "bob entering", |e| {
        e.name() == "presence" && e.attr("from") == Some("tea@conference.a.test/bob")
    })
    .await;

    alice
        .send(&format!(
            "<message to='{room}' type='groupchat' id='g1'><body>welcome, bob</body></message>"
        ))
        .await;
    let m = wait_for(&mut bob, "alice's groupchat message", |e| {
        e.name() == "message" && e.attr("type") == Some("groupchat") && body(e).is_some()
    })
    .await;
    assert_eq!(m.attr("from"), Some("tea@conference.a.test/alice"));
    assert_eq!(body(&m).as_deref(), Some("welcome, bob"));

    bob.send(&format!(
        "<message to='{room}' type='groupchat' id='g2'><body>thanks</body></message>"
    ))
    .await;
    let m = wait_for(&mut alice, "bob's groupchat message", |e| {
        e.name() == "message" && e.attr("from") == Some("tea@conference.a.test/bob")
    })
    .await;
    assert_eq!(body(&m).as_deref(), Some("thanks"));
}

#[tokio::test]
async fn policy_and_per_address_limits() {
    let p = pair("s2s-policy", "127.0.0.18", "127.0.0.19", |c, is_a| {
        if !is_a {
            c.s2s.deny_domains = vec!["a.test".to_owned()];
            c.s2s.max_streams_per_ip = 2;
        }
    })
    .await;
    let b_s2s: SocketAddr = format!("127.0.0.19:{S2S_PORT}").parse().unwrap();
    // Two streams from one address are allowed, the third is not (from an
    // address of their own, so that nothing else counts).
    let src: std::net::IpAddr = "127.0.0.41".parse().unwrap();
    let one = raw_s2s_from(b_s2s, Some(src), Some("x.test"), "b.test").await;
    let two = raw_s2s_from(b_s2s, Some(src), Some("y.test"), "b.test").await;
    let mut three = XmppClient::connect_from(b_s2s, src).await;
    three
        .send(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
             xmlns:stream='http://etherx.jabber.org/streams' from='z.test' to='b.test' version='1.0'>",
        )
        .await;
    assert_eq!(three.expect_stream_error().await, "policy-violation");
    drop((one, two, three));

    // b.test denies a.test: alice's message comes back, and a.test cannot
    // open a stream to b.test.
    let mut alice = login(&p.a, "alice", "a.test").await;
    alice
        .send("<message to='bob@b.test' id='deny1'><body>let me in</body></message>")
        .await;
    let err = wait_for(&mut alice, "the bounce", |e| e.attr("id") == Some("deny1")).await;
    assert_eq!(err.attr("type"), Some("error"), "{}", err.to_xml());
    let mut c = XmppClient::connect_from(b_s2s, "127.0.0.42".parse().unwrap()).await;
    c.send(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
         xmlns:stream='http://etherx.jabber.org/streams' from='a.test' to='b.test' version='1.0'>",
    )
    .await;
    assert_eq!(c.expect_stream_error().await, "policy-violation");
}

/// The `s2s-tls` listener (XEP-0368): TLS from the first byte with ALPN
/// `xmpp-server`, then a stream with no STARTTLS to offer.
#[tokio::test]
async fn direct_tls_listener_takes_servers_without_starttls() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = config("s2s-direct", "b.test", "127.0.0.20", &[]);
    c.listeners.push(ListenerConfig {
        kind: ListenerKind::S2sTls,
        address: "127.0.0.20:5270".parse().unwrap(),
    });
    let _server = common::start(c).await;
    let tcp = tokio::net::TcpStream::connect("127.0.0.20:5270")
        .await
        .unwrap();
    let mut tls = common::client::tls_connector(Some(b"xmpp-server"), false)
        .connect(
            rustls::pki_types::ServerName::try_from("b.test").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"xmpp-server"[..]));
    tls.write_all(
        b"<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
          xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
          from='a.test' to='b.test' version='1.0'>",
    )
    .await
    .unwrap();
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    while !got.contains("</stream:features>") {
        let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed early: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(got.contains("urn:xmpp:features:dialback"), "{got}");
    assert!(!got.contains("starttls"), "{got}");
}
