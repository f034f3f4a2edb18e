//! Hostile XML: what the one `chorus-xml` parser refuses, before and after
//! authentication. RFC 6120 §11.1 restricts XMPP to a subset of XML
//! (`restricted-xml`, §4.9.3.18); bytes that are not XML at all are
//! `not-well-formed` (§4.9.3.13); sizes, depth and attribute counts past
//! the configured limits are `policy-violation` (§4.9.3.14). Each refusal
//! comes at the offending byte, with a flood behind it that the server must
//! not buffer.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtd_is_restricted_xml() {
    let mut a = Arena::start("hostile-dtd", "", &[]).await;
    a.mark();
    refused_preauth(
        &a,
        &[
            // Billion laughs, growing for as long as the server reads.
            (
                b"<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>",
                b"<!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>",
            ),
            // XXE: an external entity.
            (
                b"<!DOCTYPE stream [<!ENTITY xxe SYSTEM 'file:///etc/passwd'>]>",
                b" ",
            ),
            // A DTD after the stream header.
            (&with_header("<!DOCTYPE x>"), b" "),
        ],
        "restricted-xml",
    )
    .await;
    a.ping().await;
    a.finish(0, MEM_BOUND_KIB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entity_reference_is_restricted_xml() {
    let mut a = Arena::start("hostile-entity", "", &["eve"]).await;
    a.mark();
    refused_preauth(
        &a,
        &[
            // In character data, in a stanza, in the stream header.
            (
                &with_header("<message><body>&xxe;</body></message>"),
                b"<message><body>x</body></message>",
            ),
            (&with_header("<message to='&xxe;'/>"), b" "),
            (
                b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='&xxe;' version='1.0'>",
                b" ",
            ),
        ],
        "restricted-xml",
    )
    .await;
    // Once authenticated, the same.
    refused_postauth(
        &a,
        "eve",
        b"<message to='good@localhost/watch'><body>&lol;</body></message>",
        b" ",
        "restricted-xml",
    )
    .await;
    a.ping().await;
    a.finish(0, MEM_BOUND_KIB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comment_is_restricted_xml() {
    let mut a = Arena::start("hostile-comment", "", &["eve"]).await;
    a.mark();
    refused_preauth(
        &a,
        &[
            // Before the header, at stream level, inside a stanza: refused
            // at `<!-`, never buffered to its end.
            (b"<?xml version='1.0'?><!--", b"a"),
            (&with_header("<!--"), b"a"),
            (&with_header("<message><body><!--"), b"a"),
        ],
        "restricted-xml",
    )
    .await;
    refused_postauth(
        &a,
        "eve",
        b"<message to='good@localhost/watch'><body>hi</body><!--",
        b"a",
        "restricted-xml",
    )
    .await;
    a.ping().await;
    a.finish(0, MEM_BOUND_KIB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processing_instruction_is_restricted_xml() {
    let mut a = Arena::start("hostile-pi", "", &["eve"]).await;
    a.mark();
    refused_preauth(
        &a,
        &[
            // Only the leading XML declaration is allowed (RFC 6120 §11.1).
            (&with_header("<?evil"), b"a"),
            (&with_header("<message><?evil"), b"a"),
            (b"<?xml-stylesheet href='x'?>", b" "),
            (b"<?xml version='1.1'?>", b" "),
        ],
        "restricted-xml",
    )
    .await;
    refused_postauth(
        &a,
        "eve",
        b"<iq type='get' id='1'><?evil",
        b"a",
        "restricted-xml",
    )
    .await;
    a.ping().await;
    a.finish(0, MEM_BOUND_KIB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_utf8_is_not_well_formed() {
    let mut a = Arena::start("hostile-utf8", "", &["eve"]).await;
    a.mark();
    let mut variants: Vec<(Vec<u8>, &[u8])> = Vec::new();
    for bad in [
        &b"\xC3\x28"[..],    // a lead byte without its continuation
        b"\xC0\xAF",         // overlong '/'
        b"\xED\xA0\x80",     // a UTF-16 surrogate
        b"\xF4\x90\x80\x80", // above U+10FFFF
        b"\xFF",             // never valid
        b"\xE2\x82",         // truncated
    ] {
        let mut v = with_header("<message><body>");
        v.extend_from_slice(bad);
        v.extend_from_slice(b"</body></message>");
        variants.push((v, b" "));
    }
    // In the stream header.
    let mut v = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='local\xC3host' version='1.0'>".to_vec();
    v.extend_from_slice(b" ");
    variants.push((v, b" "));
    let variants: Vec<(&[u8], &[u8])> = variants.iter().map(|(v, f)| (&v[..], *f)).collect();
    refused_preauth(&a, &variants, "not-well-formed").await;
    refused_postauth(
        &a,
        "eve",
        b"<message to='good@localhost/watch'><body>\xC0\xAF</body></message>",
        b" ",
        "not-well-formed",
    )
    .await;
    a.ping().await;
    a.finish(0, MEM_BOUND_KIB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_characters_are_not_well_formed() {
    let mut a = Arena::start("hostile-chars", "", &["eve"]).await;
    a.mark();
    refused_preauth(
        &a,
        &[
            // XML 1.0 `Char` excludes C0 controls but TAB, LF and CR,
            // U+FFFE and U+FFFF, raw or as character references.
            (&with_header("<message><body>\x01"), b"a"),
            (
                &with_header("<message><body>\x1b[2J</body></message>"),
                b" ",
            ),
            (&with_header("<message a='\x0b'/>"), b" "),
            (
                &with_header("<message><body>\u{FFFE}</body></message>"),
                b" ",
            ),
            (&with_header("<message><body>&#x1;</body></message>"), b" "),
            (&with_header("<message><body>&#0;</body></message>"), b" "),
            (&with_header("<message a='&#xFFFF;'/>"), b" "),
            (
                &with_header("<message><body>&#xD800;</body></message>"),
                b" ",
            ),
        ],
        "not-well-formed",
    )
    .await;
    // A forbidden character must not reach another client either: relayed,
    // it would end the recipient's stream.
    refused_postauth(
        &a,
        "eve",
        b"<message to='good@localhost/watch'><body>&#x7;</body></message>",
        b" ",
        "not-well-formed",
    )
    .await;
    a.ping().await;
    a.finish(0, MEM_BOUND_KIB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_stanza_before_auth_is_policy_violation() {
    let mut a = Arena::start("hostile-big-pre", "", &[]).await;
    a.mark();
    refused_preauth(
        &a,
        &[
            // An unclosed stanza: cut at limits.max_stanza_bytes_preauth
            // (8 KiB), not at the 16 MiB the peer sends.
            (&with_header("<message><body>"), b"a"),
            // An unclosed attribute value.
            (&with_header("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='"), b"a"),
            // An endless stream header.
            (
                b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0' x='",
                b"a",
            ),
            // A complete stanza just over the limit.
            (
                &with_header(&format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{}</auth>", "A".repeat(9000))),
                b" ",
            ),
        ],
        "policy-violation",
    )
    .await;
    a.ping().await;
    a.finish(0, MEM_BOUND_KIB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_stanza_after_auth_is_policy_violation() {
    let mut a = Arena::start("hostile-big-post", "", &["eve"]).await;
    a.mark();
    // Cut at limits.max_stanza_bytes (256 KiB), and nothing of it is
    // delivered to its addressee.
    refused_postauth(
        &a,
        "eve",
        b"<message to='good@localhost/watch' id='big'><body>",
        b"a",
        "policy-violation",
    )
    .await;
    refused_postauth(
        &a,
        "eve",
        format!(
            "<message to='good@localhost/watch' id='big2'><body>{}</body></message>",
            "a".repeat(300 * 1024)
        )
        .as_bytes(),
        b" ",
        "policy-violation",
    )
    .await;
    // The ping result is the next thing the good session reads: no part
    // of either message reached it.
    a.ping().await;
    a.finish(0, MEM_BOUND_KIB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_nesting_is_policy_violation() {
    let mut a = Arena::start("hostile-depth", "", &["eve"]).await;
    a.mark();
    refused_preauth(
        &a,
        &[
            // limits.max_depth is 64: refused at the 65th level.
            (&with_header("<message>"), b"<a>"),
            (&with_header("<message>"), b"<a/><b><c>"),
        ],
        "policy-violation",
    )
    .await;
    refused_postauth(
        &a,
        "eve",
        b"<message to='good@localhost/watch'>",
        b"<x>",
        "policy-violation",
    )
    .await;
    a.ping().await;
    a.finish(0, MEM_BOUND_KIB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_attribute_count_is_policy_violation() {
    let mut a = Arena::start("hostile-attrs", "", &["eve"]).await;
    a.mark();
    refused_preauth(
        &a,
        &[
            // limits.max_attrs 64, max_ns_decls 16, max_name_len 256.
            (&with_header("<message "), b"a='' "),
            (&with_header("<message "), b"xmlns:p='urn:x' "),
            (&with_header("<message "), b"a"),
            (&with_header("<"), b"m"),
            (
                b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0' ",
                b"x='' ",
            ),
        ],
        "policy-violation",
    )
    .await;
    refused_postauth(
        &a,
        "eve",
        b"<message to='good@localhost/watch' ",
        b"a='' ",
        "policy-violation",
    )
    .await;
    a.ping().await;
    a.finish(0, MEM_BOUND_KIB).await;
}
