//! XMPP over WebSocket (RFC 7395) and its discovery (XEP-0156) on the
//! `http` and `https` listeners, over real sockets: the upgrade and its
//! refusals, the framing (`<open/>`, `<close/>`, one element per message),
//! a login and a chat with a TCP client, the WebSocket session in the
//! actor tree, and host-meta with CORS.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use chorus_config::{ListenerConfig, ListenerKind};
use chorus_xml::Element;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::common::client::XmppClient;
use crate::common::*;

const NS_FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";
const NS_STREAM: &str = "http://etherx.jabber.org/streams";
const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";

/// A server with a c2s, an http and an https listener, and two users.
async fn server(
    tag: &str,
    tweak: impl FnOnce(&mut chorus_config::Config),
) -> chorus_server::Server {
    let mut config = test_config(tag);
    for kind in [ListenerKind::Http, ListenerKind::Https] {
        config.listeners.push(ListenerConfig {
            kind,
            address: "127.0.0.1:0".parse().unwrap(),
        });
    }
    tweak(&mut config);
    let server = start(config).await;
    assert!(
        wait_until(Duration::from_secs(10), || {
            server.bound_addr("port:https@127.0.0.1:0").is_some()
                && server.bound_addr("port:http@127.0.0.1:0").is_some()
        })
        .await
    );
    add_user(&server, "alice", "wonderland").await;
    add_user(&server, "bob", "builder").await;
    server
}

fn c2s_addr(server: &chorus_server::Server) -> SocketAddr {
    server.bound_addr("port:c2s@127.0.0.1:0").unwrap()
}

fn http_addr(server: &chorus_server::Server) -> SocketAddr {
    server.bound_addr("port:http@127.0.0.1:0").unwrap()
}

fn https_addr(server: &chorus_server::Server) -> SocketAddr {
    server.bound_addr("port:https@127.0.0.1:0").unwrap()
}

/// One plain HTTP/1.1 request; the whole response as text.
async fn http_request(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8(out).unwrap()
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

/// A WebSocket client over TLS asking for the `xmpp` subprotocol.
async fn ws_connect(addr: SocketAddr) -> Ws {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = crate::common::client::tls_connector(Some(b"http/1.1"), false)
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let mut req = format!("wss://localhost:{}/xmpp-websocket", addr.port())
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "xmpp".parse().unwrap());
    let (ws, resp) = tokio_tungstenite::client_async(req, tls).await.unwrap();
    assert_eq!(
        resp.headers().get("Sec-WebSocket-Protocol").unwrap(),
        "xmpp",
        "RFC 7395 §3.1: the server agrees on xmpp"
    );
    ws
}

/// The next text message as an element; every message is one whole
/// element (RFC 7395 §3.3.3).
async fn next(ws: &mut Ws) -> Element {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message in time")
            .expect("the connection is open")
            .unwrap();
        match msg {
            Message::Text(t) => {
                return Element::from_xml(t.as_str())
                    .unwrap_or_else(|e| panic!("not one element: {t} ({e})"))
            }
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn send(ws: &mut Ws, xml: &str) {
    ws.send(Message::text(xml.to_owned())).await.unwrap();
}

async fn open(ws: &mut Ws) -> Element {
    send(
        ws,
        &format!("<open xmlns='{NS_FRAMING}' to='localhost' version='1.0'/>"),
    )
    .await;
    let open = next(ws).await;
    assert!(open.is("open", NS_FRAMING), "{}", open.to_xml());
    assert_eq!(open.attr("from"), Some("localhost"));
    assert!(open.attr("id").is_some());
    let features = next(ws).await;
    assert!(features.is("features", NS_STREAM), "{}", features.to_xml());
    features
}

#[tokio::test]
async fn a_websocket_client_logs_in_and_chats_with_a_tcp_client() {
    let server = server("ws-login", |_| {}).await;
    let (mut bob, bob_jid) =
        XmppClient::login(c2s_addr(&server), "bob", "builder", Some("tcp")).await;

    let mut ws = ws_connect(https_addr(&server)).await;
    let features = open(&mut ws).await;
    assert!(
        features
            .get_child("starttls", "urn:ietf:params:xml:ns:xmpp-tls")
            .is_none(),
        "no STARTTLS inside a WebSocket"
    );
    assert!(features.get_child("mechanisms", NS_SASL).is_some());
    let plain = base64::engine::general_purpose::STANDARD.encode(b"\0alice\0wonderland");
    send(
        &mut ws,
        &format!("<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{plain}</auth>"),
    )
    .await;
    assert!(next(&mut ws).await.is("success", NS_SASL));
    // RFC 7395 §3.5: the stream restarts with a new <open/>.
    let features = open(&mut ws).await;
    assert!(features
        .get_child("bind", "urn:ietf:params:xml:ns:xmpp-bind")
        .is_some());
    send(
        &mut ws,
        "<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>web</resource></bind></iq>",
    )
    .await;
    let bound = next(&mut ws).await;
    assert_eq!(bound.attr("type"), Some("result"), "{}", bound.to_xml());
    send(&mut ws, "<presence xmlns='jabber:client'/>").await;
    send(
        &mut ws,
        &format!("<message xmlns='jabber:client' to='{bob_jid}' type='chat' id='w1'><body>from the web</body></message>"),
    )
    .await;
    let m = bob.expect("message").await;
    assert_eq!(m.attr("from"), Some("alice@localhost/web"));
    bob.send(
        "<message to='alice@localhost/web' type='chat' id='t1'><body>from TCP</body></message>",
    )
    .await;
    let got = loop {
        let el = next(&mut ws).await;
        if el.name() == "message" {
            break el;
        }
    };
    assert_eq!(got.ns(), "jabber:client");
    assert_eq!(got.attr("id"), Some("t1"));

    // The session is a connection group like any other.
    let conns = server
        .registry
        .snapshot("root/listeners", None)
        .unwrap()
        .render(None);
    let https_port = conns
        .lines()
        .skip_while(|l| !l.contains("port:https@"))
        .take_while(|l| !l.contains("port:c2s@") && !l.contains("port:http@"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(https_port.contains("conn-"), "{conns}");
    assert!(https_port.contains("c2s"), "{conns}");

    // RFC 7395 §3.6: <close/> is answered with <close/>, then the close.
    send(&mut ws, &format!("<close xmlns='{NS_FRAMING}'/>")).await;
    let close = next(&mut ws).await;
    assert!(close.is("close", NS_FRAMING), "{}", close.to_xml());
    server.stop();
}

#[tokio::test]
async fn stream_errors_are_framed_and_plain_http_is_not_encrypted() {
    let server = server("ws-errors", |_| {}).await;
    // A wrong first element: a stream error with the stream prefix
    // declared in the message, then <close/>.
    let mut ws = ws_connect(https_addr(&server)).await;
    send(
        &mut ws,
        "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'/>",
    )
    .await;
    let mut seen = Vec::new();
    while let Some(Ok(Message::Text(t))) = ws.next().await {
        seen.push(t.to_string());
    }
    let joined = seen.join("\n");
    assert!(joined.contains("<stream:error xmlns:stream="), "{joined}");
    assert!(joined.contains("invalid-namespace"), "{joined}");
    assert!(
        joined.contains("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"),
        "{joined}"
    );

    // On the plain http listener, the stream is not encrypted: no
    // mechanisms are offered while c2s.require_encryption holds.
    let tcp = TcpStream::connect(http_addr(&server)).await.unwrap();
    let mut req = format!(
        "ws://localhost:{}/xmpp-websocket",
        http_addr(&server).port()
    )
    .into_client_request()
    .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "xmpp".parse().unwrap());
    let (mut plain, _) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
    plain
        .send(Message::text(format!(
            "<open xmlns='{NS_FRAMING}' to='localhost' version='1.0'/>"
        )))
        .await
        .unwrap();
    let mut texts = Vec::new();
    for _ in 0..2 {
        if let Some(Ok(Message::Text(t))) = plain.next().await {
            texts.push(t.to_string());
        }
    }
    assert!(texts[1].contains("features"), "{texts:?}");
    assert!(!texts[1].contains("mechanisms"), "{texts:?}");
    assert!(!texts[1].contains("starttls"), "{texts:?}");
    server.stop();
}

#[tokio::test]
async fn a_proxy_terminated_websocket_counts_as_encrypted_when_configured() {
    let server = server("ws-proxy", |c| c.http.consider_websocket_secure = true).await;
    let tcp = TcpStream::connect(http_addr(&server)).await.unwrap();
    let mut req = format!(
        "ws://localhost:{}/xmpp-websocket",
        http_addr(&server).port()
    )
    .into_client_request()
    .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "xmpp".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
    ws.send(Message::text(format!(
        "<open xmlns='{NS_FRAMING}' to='localhost' version='1.0'/>"
    )))
    .await
    .unwrap();
    let mut texts = Vec::new();
    for _ in 0..2 {
        if let Some(Ok(Message::Text(t))) = ws.next().await {
            texts.push(t.to_string());
        }
    }
    assert!(texts[1].contains("mechanisms"), "{texts:?}");
    server.stop();
}

#[tokio::test]
async fn upgrades_without_the_xmpp_subprotocol_or_from_other_origins_are_refused() {
    let server = server("ws-refused", |c| {
        c.http.websocket_origins = vec!["https://chat.example.org".into()];
    })
    .await;
    let upgrade = |extra: &str| {
        format!(
            "GET /xmpp-websocket HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
        )
    };
    let addr = http_addr(&server);
    let no_xmpp = http_request(addr, &upgrade("")).await;
    assert!(no_xmpp.starts_with("HTTP/1.1 400"), "{no_xmpp}");
    let origin = http_request(
        addr,
        &upgrade("Sec-WebSocket-Protocol: xmpp\r\nOrigin: https://evil.example\r\n"),
    )
    .await;
    assert!(origin.starts_with("HTTP/1.1 403"), "{origin}");
    // The allowed origin upgrades (RFC 6455 §4.2.2's accept key for the
    // sample nonce of §1.3).
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        upgrade("Sec-WebSocket-Protocol: xmpp\r\nOrigin: https://chat.example.org\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    // A plain GET is no upgrade.
    let get = http_request(
        addr,
        "GET /xmpp-websocket HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(get.starts_with("HTTP/1.1 426"), "{get}");
    server.stop();
}

#[tokio::test]
async fn host_meta_points_browsers_to_the_websocket() {
    let server = server("ws-hostmeta", |_| {}).await;
    let addr = http_addr(&server);
    let xrd = http_request(
        addr,
        "GET /.well-known/host-meta HTTP/1.1\r\nHost: chat.example.org:5280\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(xrd.starts_with("HTTP/1.1 200"), "{xrd}");
    assert!(
        xrd.to_ascii_lowercase()
            .contains("access-control-allow-origin: *"),
        "{xrd}"
    );
    assert!(
        xrd.contains("<Link rel='urn:xmpp:alt-connections:websocket' href='ws://chat.example.org:5280/xmpp-websocket'/>"),
        "{xrd}"
    );
    let jrd = http_request(
        addr,
        "GET /.well-known/host-meta.json HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    let body = jrd.split("\r\n\r\n").nth(1).unwrap();
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["links"][0]["rel"], "urn:xmpp:alt-connections:websocket");
    assert_eq!(v["links"][0]["href"], "ws://localhost/xmpp-websocket");
    assert_eq!(v["links"][1]["rel"], "urn:xmpp:alt-connections:xbosh");
    assert_eq!(v["links"][1]["href"], "http://localhost/http-bind");
    // A hostile Host gets no link built from it.
    let bad = http_request(
        addr,
        "GET /.well-known/host-meta HTTP/1.1\r\nHost: a'b\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    let preflight = http_request(
        addr,
        "OPTIONS /.well-known/host-meta HTTP/1.1\r\nHost: localhost\r\nOrigin: https://x.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(preflight.starts_with("HTTP/1.1 204"), "{preflight}");
    let missing = http_request(
        addr,
        "GET /nothing HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    let post = http_request(
        addr,
        "POST /.well-known/host-meta HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    server.stop();
}

#[tokio::test]
async fn binary_and_oversized_messages_end_the_stream_with_its_error() {
    let server = server("ws-binary", |c| c.limits.max_stanza_bytes = 4096).await;
    let mut ws = ws_connect(https_addr(&server)).await;
    open(&mut ws).await;
    ws.send(Message::binary(b"<presence/>".to_vec()))
        .await
        .unwrap();
    let err = next(&mut ws).await;
    assert!(err.is("error", NS_STREAM), "{}", err.to_xml());
    assert!(err
        .get_child("bad-format", "urn:ietf:params:xml:ns:xmpp-streams")
        .is_some());
    assert!(next(&mut ws).await.is("close", NS_FRAMING));

    let mut ws = ws_connect(https_addr(&server)).await;
    open(&mut ws).await;
    let big = format!(
        "<message xmlns='jabber:client'><body>{}</body></message>",
        "x".repeat(8000)
    );
    send(&mut ws, &big).await;
    let err = next(&mut ws).await;
    assert!(
        err.get_child("policy-violation", "urn:ietf:params:xml:ns:xmpp-streams")
            .is_some(),
        "{}",
        err.to_xml()
    );
    server.stop();
}

#[tokio::test]
async fn connections_per_address_are_capped() {
    let server = server("http-cap", |c| c.http.max_connections_per_ip = 2).await;
    let addr = http_addr(&server);
    let mut held = vec![
        TcpStream::connect(addr).await.unwrap(),
        TcpStream::connect(addr).await.unwrap(),
    ];
    // Both are counted once the server has accepted them.
    let mut refused = String::new();
    for _ in 0..100 {
        refused = http_request(
            addr,
            "GET /.well-known/host-meta HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
        .await;
        if refused.starts_with("HTTP/1.1 503") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    // One goes: there is room again.
    held.pop();
    let mut ok = String::new();
    for _ in 0..100 {
        ok = http_request(
            addr,
            "GET /.well-known/host-meta HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
        .await;
        if ok.starts_with("HTTP/1.1 200") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    server.stop();
}
