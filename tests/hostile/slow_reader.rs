//! A client that never reads while a peer floods it (RFC 6120 §13.12 asks
//! servers to bound what they hold for a connection).
//!
//! The socket actor is the only writer of a connection; every stanza queued
//! for it is counted against `limits.max_outbound_stanzas` and
//! `limits.max_outbound_bytes`, and every write has `c2s.write_timeout_secs`.
//! Once the kernel's buffers are full the queue fills, the server decides
//! `policy-violation` (it cannot tell a peer that does not read, so the
//! decision is visible in its log, and in the connection closing) and drops
//! what it held. The flooder and the good session notice nothing.

use super::*;

/// What the flooder sends the non-reader: 8192 headlines of 4 KiB (headlines
/// are neither archived nor stored offline, so the flood leaves no trace in
/// storage once the non-reader is gone).
const MESSAGES: usize = 8192;
const BODY: usize = 4096;
/// Messages between two of the flooder's own ping round trips: the flooder
/// reads, so it is never a slow reader itself.
const BATCH: usize = 64;
/// The outbound queue holds at most 1 MiB (limits.max_outbound_bytes);
/// this leaves room for stanzas in flight between the actors, TLS record
/// buffers and allocator slack (about 3 MiB measured). An unbounded queue
/// would hold what the kernel's buffers (about 4 MiB on loopback) do not
/// take of the 32 MiB flood.
const BOUND_KIB: u64 = 8 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_that_never_reads_is_disconnected_and_its_queue_bounded() {
    let mut a = Arena::start(
        "hostile-slow-reader",
        "\n[c2s]\nwrite_timeout_secs = 5\n",
        &["flooder", "deaf"],
    )
    .await;
    let (deaf, _) = XmppClient::login(a.addr(), "deaf", PASSWORD, Some("ears")).await;
    let (mut flooder, _) = XmppClient::login(a.addr(), "flooder", PASSWORD, Some("hose")).await;
    assert_eq!(a.counts(), (3, 3));
    a.mark();

    let body = "x".repeat(BODY);
    let mut sent = 0;
    let mut gone_after = None;
    while sent < MESSAGES {
        let batch: String = (sent..sent + BATCH)
            .map(|i| {
                format!("<message type='headline' to='deaf@localhost/ears' id='f{i}'><body>{body}</body></message>")
            })
            .collect();
        flooder.send(&batch).await;
        sent += BATCH;
        let id = format!("sync{sent}");
        flooder
            .send(&format!(
                "<iq type='get' id='{id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"
            ))
            .await;
        // Nothing bounces to the flooder: the next IQ is its ping result.
        let r = flooder.expect("iq").await;
        assert_eq!(r.attr("id"), Some(id.as_str()), "{}", r.to_xml());
        if gone_after.is_none() && a.counts().1 == 2 {
            gone_after = Some(sent);
        }
        if sent % (16 * BATCH) == 0 {
            a.ping().await;
        }
    }
    // The good session answers while the flood is on and after.
    a.ping().await;
    // The server gave up on the non-reader: its queue overflowed...
    assert!(
        a.logged("outbound queue overflow; closing connection"),
        "the server logged the overflow"
    );
    // ...its session ended, and its connection closed. What the kernel
    // buffered for it is still there to read; then the end.
    a.wait_connections(3 - 1).await;
    let (mut r, _w) = tls_halves(deaf);
    let tail = read_until_closed(&mut r).await;
    eprintln!(
        "the non-reader was disconnected after {} of {MESSAGES} messages; {} bytes were left in its socket",
        gone_after.map_or("all".to_owned(), |n| n.to_string()),
        tail.len()
    );
    // The flooder is unaffected.
    flooder
        .send("<iq type='get' id='last' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    assert_eq!(flooder.expect("iq").await.attr("id"), Some("last"));
    assert_eq!(a.counts().1, 2, "the good session and the flooder remain");
    a.finish(1, BOUND_KIB).await;
    drop(flooder);
}
