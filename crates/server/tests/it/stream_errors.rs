//! Every hostile input the XML layer rejects, over a real socket: the server
//! answers with its stream header, the exact RFC 6120 §4.9.3 condition,
//! `</stream:stream>`, and closes. A well-behaved stream opened before the
//! attack is unaffected.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::common::*;
use tokio::io::AsyncWriteExt;

async fn assert_rejected(input: &[u8], condition: &str) {
    let mut cfg = test_config("hostile");
    cfg.c2s.negotiation_timeout_secs = 1;
    let server = start(cfg).await;
    let addr = server.first_addr().unwrap();
    let mut bystander = open_stream(addr).await;
    let out = exchange(addr, input).await;
    assert_stream_error(&out, condition);
    bystander.write_all(b" ").await.unwrap();
    assert!(is_open(&mut bystander).await, "bystander unaffected");
    server.stop();
}

fn with_header(body: &str) -> Vec<u8> {
    format!("{HEADER}{body}").into_bytes()
}

#[tokio::test]
async fn well_formed_header_gets_header_and_features() {
    let server = start(test_config("ok")).await;
    let mut s = tokio::net::TcpStream::connect(server.first_addr().unwrap())
        .await
        .unwrap();
    s.write_all(HEADER.as_bytes()).await.unwrap();
    let out = read_features(&mut s).await;
    assert!(out.contains("xmlns='jabber:client'"));
    assert!(out.contains("xmlns:stream='http://etherx.jabber.org/streams'"));
    assert!(out.contains("from='localhost'"));
    assert!(out.contains("version='1.0'"));
    s.write_all(b"</stream:stream>").await.unwrap();
    let rest = read_to_close(&mut s).await;
    assert!(rest.contains("</stream:stream>"));
    server.stop();
}

#[tokio::test]
async fn wrong_stream_namespace_is_invalid_namespace() {
    assert_rejected(
        b"<stream:stream xmlns='jabber:client' xmlns:stream='urn:wrong' to='localhost' version='1.0'>",
        "invalid-namespace",
    )
    .await;
}

#[tokio::test]
async fn wrong_content_namespace_is_invalid_namespace() {
    assert_rejected(
        b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>",
        "invalid-namespace",
    )
    .await;
}

#[tokio::test]
async fn unknown_host_is_host_unknown() {
    assert_rejected(
        b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='elsewhere.example' version='1.0'>",
        "host-unknown",
    )
    .await;
}

#[tokio::test]
async fn missing_version_is_unsupported_version() {
    assert_rejected(
        b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost'>",
        "unsupported-version",
    )
    .await;
    assert_rejected(
        b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='2.0'>",
        "unsupported-version",
    )
    .await;
}

#[tokio::test]
async fn comment_is_restricted_xml() {
    assert_rejected(&with_header("<!-- hello -->"), "restricted-xml").await;
}

#[tokio::test]
async fn billion_laughs_is_restricted_xml() {
    assert_rejected(
        b"<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;'>]><stream:stream>",
        "restricted-xml",
    )
    .await;
}

#[tokio::test]
async fn utf16_declaration_is_unsupported_encoding() {
    assert_rejected(
        b"<?xml version='1.0' encoding='UTF-16'?><stream:stream>",
        "unsupported-encoding",
    )
    .await;
}

#[tokio::test]
async fn nul_byte_is_not_well_formed() {
    assert_rejected(&with_header("<message>\0</message>"), "not-well-formed").await;
}

#[tokio::test]
async fn undeclared_prefix_is_bad_namespace_prefix() {
    assert_rejected(&with_header("<x:y/>"), "bad-namespace-prefix").await;
}

#[tokio::test]
async fn oversize_preauth_stanza_is_policy_violation() {
    let body = "a".repeat(16 * 1024);
    assert_rejected(
        &with_header(&format!("<message><body>{body}</body></message>")),
        "policy-violation",
    )
    .await;
}

#[tokio::test]
async fn deep_nesting_is_policy_violation() {
    assert_rejected(&with_header(&"<a>".repeat(1000)), "policy-violation").await;
}

#[tokio::test]
async fn stanza_before_auth_is_not_authorized() {
    assert_rejected(
        &with_header("<message to='bob@localhost'><body>hi</body></message>"),
        "not-authorized",
    )
    .await;
}

#[tokio::test]
async fn silent_connection_gets_connection_timeout() {
    let mut cfg = test_config("slowloris");
    cfg.c2s.negotiation_timeout_secs = 1;
    let server = start(cfg).await;
    let mut s = tokio::net::TcpStream::connect(server.first_addr().unwrap())
        .await
        .unwrap();
    s.write_all(b"<?xml version='1.0'?>").await.unwrap();
    let started = std::time::Instant::now();
    let out = read_to_close(&mut s).await;
    assert_stream_error(&out, "connection-timeout");
    assert!(started.elapsed() < Duration::from_secs(4));
    server.stop();
}

/// `c2s.max_connections_per_ip`: one connection past the cap gets
/// `policy-violation` at its header; the others are unaffected, and a
/// place freed is a place again.
#[tokio::test]
async fn connections_past_the_per_address_cap_are_policy_violation() {
    let mut cfg = test_config("per-ip");
    cfg.c2s.max_connections_per_ip = 2;
    let server = start(cfg).await;
    let addr = server.first_addr().unwrap();
    let mut one = open_stream(addr).await;
    let two = open_stream(addr).await;
    let out = exchange(addr, HEADER.as_bytes()).await;
    assert_stream_error(&out, "policy-violation");
    assert!(
        out.contains("too many connections from this address"),
        "{out}"
    );
    one.write_all(b" ").await.unwrap();
    assert!(is_open(&mut one).await, "the first connections stay");
    drop(two);
    let mut freed = false;
    for _ in 0..100 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(HEADER.as_bytes()).await.unwrap();
        let got = read_until_any(&mut s, &["</stream:features>", "</stream:stream>"]).await;
        if got.contains("</stream:features>") {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(freed, "a closed connection gives its place back");
    server.stop();
}
