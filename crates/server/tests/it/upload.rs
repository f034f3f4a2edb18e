//! HTTP File Upload (XEP-0363) over real sockets, from the XEP's examples:
//! discovery with the size limit, slots and their refusals (too large
//! with `<max-file-size/>`, quota, content type, not a local user), the
//! PUT (signature, expiry, size, a second PUT), the GET byte for byte,
//! HEAD, `Range`, and the files going with their account.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use chorus_config::{ListenerConfig, ListenerKind};
use chorus_xml::Element;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::client::{stanza_error_condition, XmppClient};
use crate::common::*;

const NS_UPLOAD: &str = "urn:xmpp:http:upload:0";

/// An address no other test uses: a port picked free on 127.0.0.1 could be
/// taken before the server binds it, by the source port of any test's
/// outgoing loopback connection.
const HTTP_IP: &str = "127.0.0.31";

fn free_port() -> u16 {
    std::net::TcpListener::bind((HTTP_IP, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server with a c2s and an http listener; uploads of at most 1000 bytes,
/// 1500 per account.
async fn server(
    tag: &str,
    tweak: impl FnOnce(&mut chorus_config::Config),
) -> (chorus_server::Server, u16) {
    let port = free_port();
    let mut config = test_config(tag);
    config.listeners.push(ListenerConfig {
        kind: ListenerKind::Http,
        address: format!("{HTTP_IP}:{port}").parse().unwrap(),
    });
    config.http.public_url = format!("http://{HTTP_IP}:{port}");
    config.upload.max_file_size = 1000;
    config.upload.quota_per_account = 1500;
    tweak(&mut config);
    let server = start(config).await;
    assert!(
        wait_until(Duration::from_secs(10), || {
            server
                .bound_addr(&format!("port:http@{HTTP_IP}:{port}"))
                .is_some()
        })
        .await
    );
    add_user(&server, "alice", "wonderland").await;
    add_user(&server, "bob", "builder").await;
    (server, port)
}

fn c2s(server: &chorus_server::Server) -> SocketAddr {
    server.bound_addr("port:c2s@127.0.0.1:0").unwrap()
}

/// One HTTP request over a fresh connection: status, headers (lowercase
/// names) and body.
async fn http(
    port: u16,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let path = url
        .strip_prefix(&format!("http://{HTTP_IP}:{port}"))
        .unwrap_or(url);
    let mut s = TcpStream::connect((HTTP_IP, port)).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let mut lines = head.lines();
    let status: u16 = lines.next().unwrap()[9..12].parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, out[split + 4..].to_vec())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn request_slot(c: &mut XmppClient, filename: &str, size: u64, ctype: &str) -> Element {
    c.send(&format!(
        "<iq type='get' id='s1' to='upload.localhost'><request xmlns='{NS_UPLOAD}' \
         filename='{filename}' size='{size}' content-type='{ctype}'/></iq>"
    ))
    .await;
    c.expect("iq").await
}

fn urls(slot: &Element) -> (String, String) {
    let s = slot
        .get_child("slot", NS_UPLOAD)
        .unwrap_or_else(|| panic!("{}", slot.to_xml()));
    (
        s.get_child("put", NS_UPLOAD)
            .unwrap()
            .attr("url")
            .unwrap()
            .to_owned(),
        s.get_child("get", NS_UPLOAD)
            .unwrap()
            .attr("url")
            .unwrap()
            .to_owned(),
    )
}

#[tokio::test]
async fn a_file_goes_up_and_comes_down_byte_for_byte() {
    let (server, port) = server("upload-roundtrip", |_| {}).await;
    let (mut alice, _) = XmppClient::login(c2s(&server), "alice", "wonderland", Some("a")).await;
    // §2: the service is found in the server's items, with its limit.
    alice
        .send("<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
        .await;
    assert!(alice
        .expect("iq")
        .await
        .to_xml()
        .contains("upload.localhost"));
    alice
        .send("<iq type='get' id='d2' to='upload.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        .await;
    let info = alice.expect("iq").await.to_xml();
    assert!(info.contains(&format!("var='{NS_UPLOAD}'")), "{info}");
    assert!(info.contains("<value>1000</value>"), "{info}");

    let data: Vec<u8> = (0..=255u8).cycle().take(700).collect();
    let slot = request_slot(&mut alice, "très cool.jpg", 700, "image/jpeg").await;
    assert_eq!(slot.attr("type"), Some("result"), "{}", slot.to_xml());
    let (put, get) = urls(&slot);
    assert!(
        get.starts_with(&format!("http://{HTTP_IP}:{port}/upload/")),
        "{get}"
    );
    assert!(get.ends_with("/tr%C3%A8s%20cool.jpg"), "{get}");
    // The GET before the PUT: nothing there.
    assert_eq!(http(port, "GET", &get, &[], b"").await.0, 404);
    // A PUT of another size or type does not match the slot.
    let wrong = http(
        port,
        "PUT",
        &put,
        &[("Content-Length", "3"), ("Content-Type", "image/jpeg")],
        b"abc",
    )
    .await;
    assert_eq!(wrong.0, 403);
    let wrong = http(
        port,
        "PUT",
        &put,
        &[("Content-Length", "700"), ("Content-Type", "text/html")],
        &data,
    )
    .await;
    assert_eq!(wrong.0, 403);
    // The PUT URL is not a GET URL's twin with any signature: a forged
    // signature is nothing.
    let forged = put.replacen("put=", "put=9", 1);
    assert_eq!(
        http(
            port,
            "PUT",
            &forged,
            &[("Content-Length", "700"), ("Content-Type", "image/jpeg")],
            &data
        )
        .await
        .0,
        403
    );
    let ok = http(
        port,
        "PUT",
        &put,
        &[("Content-Length", "700"), ("Content-Type", "image/jpeg")],
        &data,
    )
    .await;
    assert_eq!(ok.0, 201);
    // Once only.
    let again = http(
        port,
        "PUT",
        &put,
        &[("Content-Length", "700"), ("Content-Type", "image/jpeg")],
        &data,
    )
    .await;
    assert_eq!(again.0, 409);

    // bob downloads it, byte for byte, without any session.
    let (status, headers, body) = http(port, "GET", &get, &[], b"").await;
    assert_eq!(status, 200);
    assert_eq!(body, data);
    assert_eq!(header(&headers, "content-type"), Some("image/jpeg"));
    assert_eq!(header(&headers, "content-length"), Some("700"));
    assert_eq!(
        header(&headers, "content-disposition"),
        Some("inline; filename*=UTF-8''tr%C3%A8s%20cool.jpg")
    );
    assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
    assert_eq!(header(&headers, "access-control-allow-origin"), Some("*"));
    let (status, headers, body) = http(port, "HEAD", &get, &[], b"").await;
    assert_eq!((status, body.len()), (200, 0));
    assert_eq!(header(&headers, "content-length"), Some("700"));
    // Range requests (RFC 9110 §14).
    let (status, headers, body) = http(port, "GET", &get, &[("Range", "bytes=10-19")], b"").await;
    assert_eq!(status, 206);
    assert_eq!(body, &data[10..20]);
    assert_eq!(header(&headers, "content-range"), Some("bytes 10-19/700"));
    let (status, _, body) = http(port, "GET", &get, &[("Range", "bytes=-5")], b"").await;
    assert_eq!((status, body.as_slice()), (206, &data[695..]));
    let (status, headers, _) = http(port, "GET", &get, &[("Range", "bytes=700-")], b"").await;
    assert_eq!(status, 416);
    assert_eq!(header(&headers, "content-range"), Some("bytes */700"));
    // Another name, or another signature, is not the file.
    let other = get.replace("cool.jpg", "cool.png");
    assert_eq!(http(port, "GET", &other, &[], b"").await.0, 404);
    server.stop();
}

#[tokio::test]
async fn slots_are_refused_as_the_xep_says() {
    let (server, _port) = server("upload-refused", |c| {
        c.upload.allowed_types = vec!["image/*".into()];
    })
    .await;
    let (mut alice, _) = XmppClient::login(c2s(&server), "alice", "wonderland", Some("a")).await;
    // §4: too large, with the limit.
    let big = request_slot(&mut alice, "big.jpg", 1001, "image/jpeg").await;
    assert_eq!(stanza_error_condition(&big), "not-acceptable");
    let xml = big.to_xml();
    assert!(xml.contains("<file-too-large xmlns='urn:xmpp:http:upload:0'><max-file-size>1000</max-file-size></file-too-large>"), "{xml}");
    assert!(xml.contains("type='modify'"), "{xml}");
    // A type not allowed.
    let html = request_slot(&mut alice, "x.html", 10, "text/html").await;
    assert_eq!(stanza_error_condition(&html), "not-acceptable");
    // Bad requests: no size, a path for a name.
    let bad = request_slot(&mut alice, "a/b.jpg", 10, "image/jpeg").await;
    assert_eq!(stanza_error_condition(&bad), "bad-request");
    let zero = request_slot(&mut alice, "z.jpg", 0, "image/jpeg").await;
    assert_eq!(stanza_error_condition(&zero), "bad-request");
    // The quota counts slots: 1000 + 600 > 1500.
    let first = request_slot(&mut alice, "a.jpg", 1000, "image/jpeg").await;
    assert_eq!(first.attr("type"), Some("result"));
    let over = request_slot(&mut alice, "b.jpg", 600, "image/jpeg").await;
    assert_eq!(stanza_error_condition(&over), "resource-constraint");
    assert!(over.to_xml().contains("type='wait'"), "{}", over.to_xml());
    // bob's quota is his own.
    let (mut bob, _) = XmppClient::login(c2s(&server), "bob", "builder", Some("b")).await;
    let ok = request_slot(&mut bob, "b.jpg", 600, "image/jpeg").await;
    assert_eq!(ok.attr("type"), Some("result"));
    server.stop();
}

#[tokio::test]
async fn an_expired_slot_cannot_be_used_and_files_go_with_their_account() {
    let (server, port) = server("upload-expiry", |c| c.upload.slot_secs = 10).await;
    let (mut alice, _) = XmppClient::login(c2s(&server), "alice", "wonderland", Some("a")).await;
    let slot = request_slot(&mut alice, "late.png", 4, "image/png").await;
    let (put, _) = urls(&slot);
    // The expiry is in the URL: one in the past fails.
    let (before, after) = put.split_once("?put=").unwrap();
    let sig = after.split_once('.').unwrap().1;
    let past = format!("{before}?put=1000.{sig}");
    assert_eq!(
        http(
            port,
            "PUT",
            &past,
            &[("Content-Length", "4"), ("Content-Type", "image/png")],
            b"abcd"
        )
        .await
        .0,
        403
    );
    // A stored file, then its account is removed: the file goes.
    let slot = request_slot(&mut alice, "keep.png", 4, "image/png").await;
    let (put, get) = urls(&slot);
    assert_eq!(
        http(
            port,
            "PUT",
            &put,
            &[("Content-Length", "4"), ("Content-Type", "image/png")],
            b"abcd"
        )
        .await
        .0,
        201
    );
    assert_eq!(http(port, "GET", &get, &[], b"").await.0, 200);
    alice
        .send("<iq type='set' id='r1'><query xmlns='jabber:iq:register'><remove/></query></iq>")
        .await;
    let mut gone = false;
    for _ in 0..100 {
        if http(port, "GET", &get, &[], b"").await.0 == 404 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the file went with the account");
    use chorus_storage::UploadStore;
    assert_eq!(
        server
            .storage
            .upload_usage("alice@localhost", std::time::SystemTime::UNIX_EPOCH)
            .await
            .unwrap(),
        0
    );
    server.stop();
}

#[tokio::test]
async fn an_interrupted_upload_leaves_nothing_behind_and_may_be_retried() {
    let (server, port) = server("upload-interrupted", |_| {}).await;
    let (mut alice, _) = XmppClient::login(c2s(&server), "alice", "wonderland", Some("a")).await;
    let slot = request_slot(&mut alice, "pic.png", 600, "image/png").await;
    let (put, get) = urls(&slot);
    let path = put
        .strip_prefix(&format!("http://{HTTP_IP}:{port}"))
        .unwrap()
        .to_owned();
    // Half the body, then the connection goes.
    let mut s = TcpStream::connect((HTTP_IP, port)).await.unwrap();
    s.write_all(
        format!(
            "PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 600\r\n\
             Content-Type: image/png\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    s.write_all(&[7u8; 300]).await.unwrap();
    drop(s);
    // The retry finds no half file in its way; a type with parameters is
    // the same type.
    let body = vec![9u8; 600];
    let mut status = 0;
    for _ in 0..100 {
        status = http(
            port,
            "PUT",
            &put,
            &[
                ("Content-Length", "600"),
                ("Content-Type", "image/png; q=1"),
            ],
            &body,
        )
        .await
        .0;
        if status != 409 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 201);
    let (status, headers, got) = http(port, "GET", &get, &[], b"").await;
    assert_eq!((status, got), (200, body));
    assert_eq!(header(&headers, "content-type"), Some("image/png"));
    server.stop();
}
