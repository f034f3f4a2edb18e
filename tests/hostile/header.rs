//! Bad stream headers (RFC 6120 §4.7-§4.8): the server answers with its
//! own header and the condition §4.9.3 names for what is wrong, then closes.

use super::*;

/// A client stream header with these attributes on `<stream:stream>`.
fn header(attrs: &str) -> Vec<u8> {
    format!("<?xml version='1.0'?><stream:stream {attrs}>").into_bytes()
}

const STREAMS: &str = "xmlns:stream='http://etherx.jabber.org/streams'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_namespace_is_invalid_namespace() {
    let mut a = Arena::start("hostile-ns", "", &[]).await;
    a.mark();
    let variants = [
        // §4.8.1: the stream element in another namespace.
        header("xmlns='jabber:client' xmlns:stream='urn:not-streams' to='localhost' version='1.0'"),
        // §4.8.2: a content namespace other than jabber:client.
        header(&format!(
            "xmlns='jabber:server' {STREAMS} to='localhost' version='1.0'"
        )),
        header(&format!(
            "xmlns='urn:evil' {STREAMS} to='localhost' version='1.0'"
        )),
        // No content namespace at all.
        header(&format!("{STREAMS} to='localhost' version='1.0'")),
        // Not a stream element.
        format!("<stream:features xmlns='jabber:client' {STREAMS} to='localhost' version='1.0'>")
            .into_bytes(),
        b"<message xmlns='jabber:client' to='localhost' version='1.0'>".to_vec(),
    ];
    let variants: Vec<(&[u8], &[u8])> = variants.iter().map(|v| (&v[..], &b" "[..])).collect();
    refused_preauth(&a, &variants, "invalid-namespace").await;
    a.ping().await;
    a.finish(0, MEM_BOUND_KIB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_host_is_host_unknown() {
    let mut a = Arena::start("hostile-host", "", &[]).await;
    a.mark();
    let variants = [
        // §4.9.3.6: a domain this server does not serve, or none.
        header(&format!(
            "xmlns='jabber:client' {STREAMS} to='elsewhere.example' version='1.0'"
        )),
        header(&format!(
            "xmlns='jabber:client' {STREAMS} to='localhost.elsewhere.example' version='1.0'"
        )),
        header(&format!(
            "xmlns='jabber:client' {STREAMS} to='' version='1.0'"
        )),
        header(&format!("xmlns='jabber:client' {STREAMS} version='1.0'")),
        header(&format!(
            "xmlns='jabber:client' {STREAMS} to='alice@localhost' version='1.0'"
        )),
        header(&format!(
            "xmlns='jabber:client' {STREAMS} to='{}' version='1.0'",
            "x".repeat(4000)
        )),
    ];
    let variants: Vec<(&[u8], &[u8])> = variants.iter().map(|v| (&v[..], &b" "[..])).collect();
    refused_preauth(&a, &variants, "host-unknown").await;
    a.ping().await;
    a.finish(0, MEM_BOUND_KIB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_2_is_unsupported_version() {
    let mut a = Arena::start("hostile-version", "", &[]).await;
    a.mark();
    let variants = [
        // §4.7.5: a major version above ours; none at all means pre-1.0,
        // which this server does not speak either.
        header(&format!(
            "xmlns='jabber:client' {STREAMS} to='localhost' version='2.0'"
        )),
        header(&format!(
            "xmlns='jabber:client' {STREAMS} to='localhost' version='10.0'"
        )),
        header(&format!("xmlns='jabber:client' {STREAMS} to='localhost'")),
        header(&format!(
            "xmlns='jabber:client' {STREAMS} to='localhost' version='one'"
        )),
        header(&format!(
            "xmlns='jabber:client' {STREAMS} to='localhost' version='99999999999999999999.0'"
        )),
    ];
    let variants: Vec<(&[u8], &[u8])> = variants.iter().map(|v| (&v[..], &b" "[..])).collect();
    refused_preauth(&a, &variants, "unsupported-version").await;
    a.ping().await;
    a.finish(0, MEM_BOUND_KIB).await;
}
