//! Invariants shared by the fuzz targets, asserted by panicking so that
//! libFuzzer records the input as a crash.
//!
//! `crates/xml/tests/fuzz_long.rs` (the proptest fallback) checks the same
//! invariants; keep the two in step.

use chorus_xml::{Element, Limits, NsContext, StreamEvent, StreamParser, XmlError};

/// The header every stream_parser input is fed after.
pub const HEADER: &[u8] = b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>";

/// Small limits, so that the fuzzer reaches them and the memory bound is
/// meaningful.
pub fn limits() -> Limits {
    Limits {
        max_stanza_bytes_preauth: 1024,
        max_stanza_bytes: 4096,
        max_depth: 8,
        max_attrs: 8,
        max_ns_decls: 4,
        max_name_len: 32,
    }
}

/// Limits for re-parsing serializer output: the serializer may grow a stanza
/// (escaping, an `xmlns:nsN` declaration per namespaced attribute), but never
/// deepens it.
pub fn roundtrip_limits(max_depth: usize) -> Limits {
    Limits {
        max_stanza_bytes_preauth: 1 << 20,
        max_stanza_bytes: 1 << 20,
        max_depth,
        max_attrs: 1 << 12,
        max_ns_decls: 1 << 12,
        max_name_len: 1 << 12,
    }
}

/// Everything a run produced: the events, then the error that ended it.
#[derive(Debug, PartialEq)]
pub struct Outcome {
    pub events: Vec<StreamEvent>,
    pub error: Option<XmlError>,
}

fn active_limit(p: &StreamParser, authed: bool) -> usize {
    if authed {
        p.limits().max_stanza_bytes
    } else {
        p.limits().max_stanza_bytes_preauth
    }
}

/// Feeds `input` in pieces ending at `cuts` (ascending, the last one
/// `input.len()`), pulling every event after each feed. Authenticates right
/// after the header event when `auth`. Asserts the memory bound: `buffered()`
/// is at most the active stanza limit plus the piece just fed plus
/// `header_len` at every step, and at most the active limit once every event
/// has been pulled (unless the stream has ended or failed); and that nothing
/// comes out after an error or the end.
pub fn run(
    p: &mut StreamParser,
    input: &[u8],
    cuts: &[usize],
    header_len: usize,
    auth: bool,
) -> Outcome {
    let mut authed = false;
    let mut out = Outcome {
        events: Vec::new(),
        error: None,
    };
    let mut last = 0;
    for &c in cuts {
        let piece = &input[last..c];
        last = c;
        p.feed(piece);
        loop {
            let bound = active_limit(p, authed) + piece.len() + header_len;
            assert!(
                p.buffered() <= bound,
                "buffered {} > {bound} (piece of {})",
                p.buffered(),
                piece.len()
            );
            match p.next_event() {
                Ok(Some(ev)) => {
                    if auth && matches!(ev, StreamEvent::Header(_)) {
                        p.set_authenticated(true);
                        authed = true;
                    }
                    out.events.push(ev);
                }
                // After the stream end the rest of the last piece stays
                // buffered, unparsed: only the looser bound applies.
                Ok(None) if matches!(out.events.last(), Some(StreamEvent::End)) => break,
                Ok(None) => {
                    let limit = active_limit(p, authed);
                    assert!(
                        p.buffered() <= limit,
                        "buffered {} > limit {limit} with every event pulled",
                        p.buffered()
                    );
                    break;
                }
                Err(e) => {
                    out.error = Some(e);
                    break;
                }
            }
        }
        if out.error.is_some() || matches!(out.events.last(), Some(StreamEvent::End)) {
            p.feed(&input[last..]);
            assert_eq!(p.next_event(), Ok(None), "event after the stream ended");
            return out;
        }
    }
    out
}

/// Parses `xml` as the one stanza of a stream opened by `header`.
fn reparse(header: &str, xml: &[u8], max_depth: usize) -> Result<Element, String> {
    let mut p = StreamParser::new(roundtrip_limits(max_depth));
    p.feed(header.as_bytes());
    p.feed(xml);
    match p.next_event() {
        Ok(Some(StreamEvent::Header(_))) => {}
        other => return Err(format!("header: {other:?}")),
    }
    let el = match p.next_event() {
        Ok(Some(StreamEvent::Element(el))) => el,
        other => return Err(format!("element: {other:?}")),
    };
    match p.next_event() {
        Ok(None) if p.buffered() == 0 => Ok(el),
        other => Err(format!(
            "trailing: {other:?}, {} bytes buffered",
            p.buffered()
        )),
    }
}

fn depth(el: &Element) -> usize {
    1 + el.children().map(depth).max().unwrap_or(0)
}

/// `el` written in stream context (`jabber:client` default namespace,
/// `stream:` prefix) and standalone re-parses, with no error, to an equal
/// element.
pub fn check_roundtrip(el: &Element) {
    assert!(names_are_xml_names(el), "a name is not an XML name: {el:?}");
    let max_depth = depth(el);
    let mut out = Vec::new();
    el.write_to(&mut out, &NsContext::stream("jabber:client"));
    let header = "<stream:stream xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams'>";
    match reparse(header, &out, max_depth) {
        Ok(back) => assert_eq!(&back, el, "stream round trip of {}", out.escape_ascii()),
        Err(e) => panic!(
            "serializer output rejected ({e}): {}\nfrom {el:?}",
            out.escape_ascii()
        ),
    }
    let out = el.to_xml();
    let header = "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>";
    match reparse(header, out.as_bytes(), max_depth) {
        Ok(back) => assert_eq!(
            &back,
            el,
            "standalone round trip of {}",
            out.escape_default()
        ),
        Err(e) => panic!(
            "standalone output rejected ({e}): {}\nfrom {el:?}",
            out.escape_default()
        ),
    }
}

/// The local name of an element name or attribute key.
fn local_part(key: &str) -> &str {
    if let Some(rest) = key.strip_prefix('{') {
        return rest.rsplit_once('}').map_or(rest, |(_, local)| local);
    }
    key.strip_prefix("xml:").unwrap_or(key)
}

/// An XML `NCName`, leniently: any non-ASCII character passes.
fn is_ncname(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || !c.is_ascii())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') || !c.is_ascii())
}

/// Every element name and attribute local name of `el` is an XML name:
/// anything else makes the serializer's output not well-formed.
fn names_are_xml_names(el: &Element) -> bool {
    is_ncname(el.name())
        && el.attrs().all(|(k, _)| is_ncname(local_part(k)))
        && el.children().all(names_are_xml_names)
}
