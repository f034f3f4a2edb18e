//! Long-running structured fuzzing of the stream parser: the fallback for
//! `fuzz/` (cargo-fuzz) on machines without a nightly compiler or libFuzzer.
//!
//! A small grammar generates near-valid XMPP streams (stanzas with prefixed and
//! unprefixed names, namespace declarations, attributes with both quote styles,
//! entities and character references, text, CDATA), then random byte mutations
//! (insertions of bytes and markup, deletions, bit flips, truncation) and a
//! random chunking. Every case asserts the invariants of the cargo-fuzz target
//! `fuzz/fuzz_targets/stream_parser.rs`:
//!
//! - no panic;
//! - `buffered()` never exceeds the active stanza limit plus the chunk just fed
//!   plus the header length, and is within the active limit once every event
//!   has been pulled (unless the stream has ended or failed: the rest of the
//!   last chunk then stays buffered, unparsed);
//! - every element name and attribute local name is an XML name;
//! - chunking does not change the events or the error;
//! - after an error or the stream end the parser yields nothing more, and
//!   `reset()` gives a parser that behaves like a fresh one;
//! - every element produced re-serializes (in stream context and standalone)
//!   to bytes the parser accepts, and re-parses to an equal element.
//!
//! `cargo test -p chorus-xml` runs 1000 cases (about a second in debug); set
//! `CHORUS_FUZZ_CASES` for a long run, in release:
//! `CHORUS_FUZZ_CASES=200000 cargo test -p chorus-xml --release --test fuzz_long -- --nocapture`.
//! The five round-trip bugs this found are fixed in chorus-xml; their
//! reproducers are regression tests in `tests/parser.rs`.
//! Failures are not persisted to a regressions file: the minimal failing input
//! is printed instead, as the exact bytes, cut points and authentication flag.
#![allow(clippy::unwrap_used)]

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use chorus_xml::{Element, Limits, NsContext, StreamEvent, StreamParser, XmlError};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Small limits, so that the generator reaches every one of them and the
/// memory bound is meaningful.
fn limits() -> Limits {
    Limits {
        max_stanza_bytes_preauth: 2048,
        max_stanza_bytes: 4096,
        max_depth: 5,
        max_attrs: 8,
        max_ns_decls: 4,
        max_name_len: 32,
    }
}

/// Limits for re-parsing serializer output: the serializer may legitimately
/// grow a stanza (escaping, one `xmlns:nsN` declaration per namespaced
/// attribute, generated prefixes), but never deepens it.
fn roundtrip_limits() -> Limits {
    Limits {
        max_stanza_bytes_preauth: 1 << 20,
        max_stanza_bytes: 1 << 20,
        max_depth: limits().max_depth,
        max_attrs: 1 << 12,
        max_ns_decls: 1 << 12,
        max_name_len: 1 << 12,
    }
}

const STREAM_NS_DECL: &str = "xmlns:stream='http://etherx.jabber.org/streams'";

/// Valid stream headers, each with the end tag that closes it.
const HEADERS: &[(&str, &str)] = &[
    (
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>",
        "</stream:stream>",
    ),
    (
        "\u{FEFF}<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<stream:stream \
         xmlns=\"jabber:server\" xmlns:stream=\"http://etherx.jabber.org/streams\" \
         xmlns:db=\"jabber:server:dialback\" xml:lang=\"en\" from='a.example' id='x&amp;y'>",
        "</stream:stream >",
    ),
    (
        "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns:p='urn:p'>",
        "</stream:stream>",
    ),
    (
        "<stream xmlns='http://etherx.jabber.org/streams' version='1.0'>",
        "</stream>",
    ),
    (
        "  <s:stream xmlns='jabber:client' xmlns:s='http://etherx.jabber.org/streams' \
         xmlns:q='urn:q'>",
        "</s:stream>",
    ),
];

// --- generator ---
//
// Every vocabulary comes in two parts: valid choices, drawn most of the time so
// that most stanzas parse and reach the round-trip check, and rare hostile ones.

/// Picks from `common` `weight` times as often as from `rare`.
fn pick(
    common: &'static [&'static str],
    rare: &'static [&'static str],
    weight: u32,
) -> impl Strategy<Value = &'static str> + Clone {
    prop_oneof![weight => select(common), 1 => select(rare)]
}

const NAMES: &[&str] = &[
    "message", "iq", "presence", "body", "query", "item", "x", "a", "error", "c",
];

const RARE_NAMES: &[&str] = &[
    "stream:features",
    "stream:error",
    "s:error",
    "db:result",
    "p:thing",
    "q:thing",
    "xml:thing",
    "xmlns:thing",
    "z:undeclared",
    "a:b:c",
    ":a",
    "xml:a:b",
    "p:a:b",
    "stream:-x",
    "a/b",
    "p:1",
    "stream:",
    "p:",
    "n\u{e9}m",
    "_x-y.z",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
];

const ATTR_NAMES: &[&str] = &["to", "from", "id", "type", "xml:lang", "a", "b"];

const RARE_ATTR_NAMES: &[&str] = &[
    "xml:space",
    "p:attr",
    "q:attr",
    "p:id",
    "a",
    "z:attr",
    "a:b:c",
    "stream:x",
    "xmlns:",
    "xmlns:xml",
    "xmlns:xmlns",
    "s:x",
    "p:",
    "xml:",
    "b/c",
    "p:-x",
];

const NS_KEYS: &[&str] = &["xmlns", "xmlns:p", "xmlns:q", "xmlns:r"];

const URIS: &[&str] = &[
    "urn:p",
    "urn:q",
    "jabber:client",
    "jabber:server",
    "http://etherx.jabber.org/streams",
    "urn:ietf:params:xml:ns:xmpp-stanzas",
    "urn:caf\u{e9}",
];

const RARE_URIS: &[&str] = &[
    "",
    "urn:x}y",
    "urn:{x}",
    "a&amp;b",
    "urn:&#x41;",
    "urn: spaced ",
    "urn:\ttab",
    "http://www.w3.org/XML/1998/namespace",
    "http://www.w3.org/2000/xmlns/",
];

const VALUE_PIECES: &[&str] = &[
    "juliet@example.com/balcony",
    "chat",
    "en",
    " ",
    "&amp;",
    "&lt;",
    "&gt;",
    "&quot;",
    "&apos;",
    "&#x41;",
    "&#65;",
    "&#10;",
    "&#13;",
    "&#9;",
    "&#x1F600;",
    "\t",
    "\n",
    "\r\n",
    "\r",
    "'",
    "\"",
    "\u{e9}",
    "\u{1F600}",
    "}",
    "{",
    ">",
    "]]>",
];

const RARE_VALUE_PIECES: &[&str] = &["&bogus;", "&#0;", "&#xFFFE;", "&#xD800;", "&", "<"];

const TEXT_PIECES: &[&str] = &[
    "hello",
    " ",
    "\n",
    "\r\n",
    "\r",
    "\t",
    "&amp;",
    "&lt;",
    "&gt;",
    "&quot;",
    "&apos;",
    "&#x1F600;",
    "&#233;",
    "&#13;",
    "&#x10FFFF;",
    ">",
    "]]>",
    "'",
    "\"",
    "\u{e9}",
    "\u{1F600}",
    "\u{FFFD}",
];

const RARE_TEXT_PIECES: &[&str] = &["&nbsp;", "&#0;", "&#xFFFF;", "&#;", "&", "\u{1}"];

const CDATA_PIECES: &[&str] = &[
    "<raw>",
    "&amp;",
    " & ",
    "]]",
    "]",
    "\r\n",
    "\r",
    "\u{e9}",
    "x",
    "<![CDATA[",
    "]>",
];

/// Markup inserted by the mutator.
const SNIPPETS: &[&str] = &[
    "<",
    ">",
    "&",
    "'",
    "\"",
    "/",
    "</a>",
    "<a>",
    "<a/>",
    "<![CDATA[",
    "]]>",
    "<!--",
    "<!DOCTYPE x>",
    "<?pi?>",
    "<?xml version='1.0'?>",
    "\0",
    "\u{FFFE}",
    "\u{FEFF}",
    "xmlns='urn:m'",
    " xmlns:p='urn:m'",
    "z:",
    "</stream:stream>",
];

/// `pieces` concatenated; a raw `quote` is written as its entity unless `raw`.
fn join_value(pieces: &[&str], quote: char, raw: bool) -> String {
    let mut s = String::new();
    for p in pieces {
        match (*p, quote, raw) {
            ("'", '\'', false) => s.push_str("&apos;"),
            ("\"", '"', false) => s.push_str("&quot;"),
            _ => s.push_str(p),
        }
    }
    s
}

/// ` key='value'` with either quote and optional whitespace around `=`.
fn attr_with(
    key: impl Strategy<Value = &'static str>,
    value: impl Strategy<Value = Vec<&'static str>>,
) -> impl Strategy<Value = (&'static str, String)> {
    let eq = prop_oneof![8 => Just("="), 1 => Just(" = "), 1 => Just("\n=\t")];
    (key, value, any::<bool>(), prop::bool::weighted(0.05), eq).prop_map(
        |(key, value, single, raw, eq)| {
            let q = if single { '\'' } else { '"' };
            let text = format!(" {key}{eq}{q}{}{q}", join_value(&value, q, raw));
            (key, text)
        },
    )
}

/// One attribute, or a prefixed attribute with its prefix declared alongside.
fn attr() -> impl Strategy<Value = Vec<(&'static str, String)>> {
    let value = vec(pick(VALUE_PIECES, RARE_VALUE_PIECES, 40), 0..4);
    let uri = pick(URIS, RARE_URIS, 12).prop_map(|u| vec![u]);
    prop_oneof![
        6 => attr_with(pick(ATTR_NAMES, RARE_ATTR_NAMES, 16), value.clone()).prop_map(|a| vec![a]),
        2 => attr_with(select(NS_KEYS), uri.clone()).prop_map(|a| vec![a]),
        1 => (attr_with(Just("xmlns:p"), uri), attr_with(Just("p:attr"), value))
            .prop_map(|(d, a)| vec![d, a]),
    ]
}

/// Attributes with distinct names, but for a rare duplicate.
fn attrs() -> impl Strategy<Value = String> {
    (vec(attr(), 0..5), prop::bool::weighted(0.02)).prop_map(|(a, dup)| {
        let mut seen = Vec::new();
        let mut s = String::new();
        for (key, text) in a.into_iter().flatten() {
            if dup || !seen.contains(&key) {
                seen.push(key);
                s.push_str(&text);
            }
        }
        s
    })
}

fn text() -> impl Strategy<Value = String> {
    vec(pick(TEXT_PIECES, RARE_TEXT_PIECES, 60), 1..5).prop_map(|p| p.concat())
}

fn cdata() -> impl Strategy<Value = String> {
    vec(select(CDATA_PIECES), 0..4).prop_map(|p| format!("<![CDATA[{}]]>", p.concat()))
}

/// An element name and the declaration its prefix needs, if it gets one.
fn name() -> impl Strategy<Value = (&'static str, &'static str)> {
    (pick(NAMES, RARE_NAMES, 16), prop::bool::weighted(0.8)).prop_map(|(n, declare)| {
        let decl = match n.split_once(':') {
            Some(("p", _)) if declare => " xmlns:p='urn:p'",
            Some(("q", _)) if declare => " xmlns:q='urn:q'",
            Some(("db", _)) if declare => " xmlns:db='jabber:server:dialback'",
            _ => "",
        };
        (n, decl)
    })
}

/// How an element's end tag is written: mostly right, sometimes not.
#[derive(Clone, Copy, Debug)]
enum End {
    Plain,
    Spaced,
    Mismatched,
    Missing,
}

fn end() -> impl Strategy<Value = End> {
    prop_oneof![
        60 => Just(End::Plain),
        4 => Just(End::Spaced),
        1 => Just(End::Mismatched),
        1 => Just(End::Missing),
    ]
}

fn element((name, decl): (&str, &str), attrs: &str, children: &[String], end: End) -> String {
    if children.is_empty() && matches!(end, End::Plain) {
        return format!("<{name}{decl}{attrs}/>");
    }
    let mut s = format!("<{name}{decl}{attrs}>");
    for c in children {
        s.push_str(c);
    }
    match end {
        End::Plain => s.push_str(&format!("</{name}>")),
        End::Spaced => s.push_str(&format!("</{name} \n>")),
        End::Mismatched => s.push_str(&format!("</{name}x>")),
        End::Missing => {}
    }
    s
}

/// Content of an element: text, CDATA and nested elements.
fn content() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        3 => text(),
        1 => cdata(),
        2 => (name(), attrs()).prop_map(|(n, a)| element(n, &a, &[], End::Plain)),
    ];
    leaf.prop_recursive(6, 48, 4, |inner| {
        (name(), attrs(), vec(inner, 0..4), end())
            .prop_map(|(n, a, kids, e)| element(n, &a, &kids, e))
    })
}

fn stanza() -> impl Strategy<Value = String> {
    (name(), attrs(), vec(content(), 0..4), end())
        .prop_map(|(n, a, kids, e)| element(n, &a, &kids, e))
}

/// What separates stanzas at stream level: whitespace keepalives, rarely text.
fn separator() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        30 => Just(""),
        12 => Just(" "),
        6 => Just("\r\n\t "),
        1 => Just("junk"),
    ]
}

#[derive(Clone, Debug)]
enum Mutation {
    InsertByte(Index, u8),
    InsertSnippet(Index, &'static str),
    Delete(Index, usize),
    FlipBit(Index, u8),
    Truncate(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::InsertByte(i, b)),
        3 => (any::<Index>(), select(SNIPPETS)).prop_map(|(i, s)| Mutation::InsertSnippet(i, s)),
        2 => (any::<Index>(), 1usize..8).prop_map(|(i, n)| Mutation::Delete(i, n)),
        2 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
    ]
}

fn apply(body: &mut Vec<u8>, m: &Mutation) {
    let at = |i: &Index, len: usize| i.index(len + 1);
    match m {
        Mutation::InsertByte(i, b) => {
            let p = at(i, body.len());
            body.insert(p, *b);
        }
        Mutation::InsertSnippet(i, s) => {
            let p = at(i, body.len());
            body.splice(p..p, s.bytes());
        }
        Mutation::Delete(i, n) => {
            let p = at(i, body.len());
            let e = (p + n).min(body.len());
            body.drain(p..e);
        }
        Mutation::FlipBit(i, bit) => {
            if !body.is_empty() {
                let p = i.index(body.len());
                body[p] ^= 1 << bit;
            }
        }
        Mutation::Truncate(i) => {
            let p = at(i, body.len());
            body.truncate(p);
        }
    }
}

/// How the input is cut into feeds.
#[derive(Clone, Debug)]
enum Chunking {
    Fixed(usize),
    Cuts(Vec<Index>),
}

fn chunking() -> impl Strategy<Value = Chunking> {
    prop_oneof![
        (1usize..300).prop_map(Chunking::Fixed),
        Just(Chunking::Fixed(1)),
        vec(any::<Index>(), 0..24).prop_map(Chunking::Cuts),
    ]
}

/// Sorted, deduplicated cut points ending at `len`.
fn cut_points(c: &Chunking, len: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = match c {
        Chunking::Fixed(n) => (1..=len.div_ceil(*n)).map(|k| (k * n).min(len)).collect(),
        Chunking::Cuts(v) => v.iter().map(|i| i.index(len + 1)).collect(),
    };
    cuts.push(len);
    cuts.sort_unstable();
    cuts.dedup();
    cuts.retain(|&c| c > 0);
    cuts
}

/// One generated case: the exact bytes, where they are cut, and whether the
/// stream authenticates after its header.
struct Case {
    input: Vec<u8>,
    header_len: usize,
    cuts: Vec<usize>,
    auth: bool,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Case {{ input: b\"{}\", header_len: {}, cuts: {:?}, auth: {} }}",
            self.input.escape_ascii(),
            self.header_len,
            self.cuts,
            self.auth
        )
    }
}

fn case() -> impl Strategy<Value = Case> {
    let mutations = prop_oneof![
        1 => Just(Vec::new()),
        1 => vec(mutation(), 1..4),
    ];
    (
        0..HEADERS.len(),
        vec((separator(), stanza()), 0..6),
        prop::bool::weighted(0.3),
        mutations,
        chunking(),
        any::<bool>(),
    )
        .prop_map(|(h, stanzas, close, mutations, chunking, auth)| {
            let (header, end_tag) = HEADERS[h];
            let mut body = Vec::new();
            for (sep, st) in &stanzas {
                body.extend_from_slice(sep.as_bytes());
                body.extend_from_slice(st.as_bytes());
            }
            if close {
                body.extend_from_slice(end_tag.as_bytes());
            }
            for m in &mutations {
                apply(&mut body, m);
            }
            let mut input = header.as_bytes().to_vec();
            input.extend_from_slice(&body);
            let cuts = cut_points(&chunking, input.len());
            Case {
                input,
                header_len: header.len(),
                cuts,
                auth,
            }
        })
}

// --- invariants (the same as fuzz/fuzz_targets/stream_parser.rs) ---

#[derive(Debug, PartialEq)]
struct Outcome {
    events: Vec<StreamEvent>,
    error: Option<XmlError>,
}

fn active_limit(p: &StreamParser, auth: bool) -> usize {
    if auth {
        p.limits().max_stanza_bytes
    } else {
        p.limits().max_stanza_bytes_preauth
    }
}

/// Feeds `input` cut at `cuts`, pulling every event after each feed and
/// checking the memory bound; authenticates right after the header when `auth`.
fn run(
    p: &mut StreamParser,
    input: &[u8],
    cuts: &[usize],
    header_len: usize,
    auth: bool,
) -> Result<Outcome, TestCaseError> {
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
        let bound = active_limit(p, authed) + piece.len() + header_len;
        prop_assert!(
            p.buffered() <= bound,
            "buffered {} > {bound} after a feed of {}",
            p.buffered(),
            piece.len()
        );
        loop {
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
                    prop_assert!(
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
            let bound = active_limit(p, authed) + piece.len() + header_len;
            prop_assert!(p.buffered() <= bound, "buffered {} > {bound}", p.buffered());
        }
        if out.error.is_some() || matches!(out.events.last(), Some(StreamEvent::End)) {
            // The stream is over: nothing more comes out, whatever is fed.
            p.feed(&input[last..]);
            prop_assert_eq!(p.next_event(), Ok(None), "event after the stream ended");
            return Ok(out);
        }
    }
    Ok(out)
}

/// Parses `xml` as the one stanza of a stream opened by `header`.
fn reparse(header: &str, xml: &[u8]) -> Result<Element, String> {
    let mut p = StreamParser::new(roundtrip_limits());
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

fn check_roundtrip(el: &Element) -> Result<(), TestCaseError> {
    prop_assert!(names_are_xml_names(el), "a name is not an XML name: {el:?}");
    let in_stream = format!("<stream:stream xmlns='jabber:client' {STREAM_NS_DECL}>");
    let mut out = Vec::new();
    el.write_to(&mut out, &NsContext::stream("jabber:client"));
    match reparse(&in_stream, &out) {
        Ok(back) => prop_assert_eq!(&back, el, "stream round trip of {}", out.escape_ascii()),
        Err(e) => prop_assert!(
            false,
            "serializer output rejected ({e}): {}\nfrom {el:?}",
            out.escape_ascii()
        ),
    }
    let bare = format!("<stream:stream {STREAM_NS_DECL}>");
    let out = el.to_xml();
    match reparse(&bare, out.as_bytes()) {
        Ok(back) => prop_assert_eq!(&back, el, "standalone round trip of {}", out),
        Err(e) => prop_assert!(
            false,
            "standalone output rejected ({e}): {}\nfrom {el:?}",
            out.escape_default()
        ),
    }
    Ok(())
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

#[derive(Default)]
struct Stats {
    cases: AtomicUsize,
    elements: AtomicUsize,
    clean: AtomicUsize,
    ended: AtomicUsize,
    errors: [AtomicUsize; 6],
}

fn check_case(c: &Case, stats: &Stats) -> Result<(), TestCaseError> {
    let mut chunked = StreamParser::new(limits());
    let a = run(&mut chunked, &c.input, &c.cuts, c.header_len, c.auth)?;
    let mut whole = StreamParser::new(limits());
    let b = run(&mut whole, &c.input, &[c.input.len()], c.header_len, c.auth)?;
    prop_assert!(
        matches!(a.events.first(), Some(StreamEvent::Header(_))),
        "a valid header did not come first: {:?}",
        a
    );
    prop_assert_eq!(&a, &b, "chunking changed the outcome");

    chunked.reset();
    prop_assert_eq!(chunked.buffered(), 0);
    prop_assert!(chunked.header().is_none());
    let again = run(
        &mut chunked,
        &c.input,
        &[c.input.len()],
        c.header_len,
        c.auth,
    )?;
    prop_assert_eq!(&again, &b, "a reset parser differs from a fresh one");

    for ev in &a.events {
        if let StreamEvent::Element(el) = ev {
            check_roundtrip(el)?;
            stats.elements.fetch_add(1, Ordering::Relaxed);
        }
    }
    stats.cases.fetch_add(1, Ordering::Relaxed);
    match &a.error {
        None if matches!(a.events.last(), Some(StreamEvent::End)) => {
            stats.ended.fetch_add(1, Ordering::Relaxed);
        }
        None => {
            stats.clean.fetch_add(1, Ordering::Relaxed);
        }
        Some(e) => {
            use chorus_xml::StreamErrorKind as K;
            let i = match e.condition() {
                K::RestrictedXml => 0,
                K::NotWellFormed => 1,
                K::BadNamespacePrefix => 2,
                K::UnsupportedEncoding => 3,
                K::PolicyViolation => 4,
                K::BadFormat => 5,
            };
            stats.errors[i].fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

fn case_count() -> u32 {
    std::env::var("CHORUS_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

#[test]
fn near_valid_streams_keep_every_invariant() {
    let config = Config {
        cases: case_count(),
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let stats = Stats::default();
    let started = Instant::now();
    let result = runner.run(&case(), |c| check_case(&c, &stats));
    let e = &stats.errors;
    let n = |a: &AtomicUsize| a.load(Ordering::Relaxed);
    eprintln!(
        "fuzz_long: {} cases in {:.1?}: {} stanzas round-tripped; streams open {}, \
         ended {}; errors: restricted-xml {}, not-well-formed {}, bad-namespace-prefix {}, \
         unsupported-encoding {}, policy-violation {}, bad-format {}",
        n(&stats.cases),
        started.elapsed(),
        n(&stats.elements),
        n(&stats.clean),
        n(&stats.ended),
        n(&e[0]),
        n(&e[1]),
        n(&e[2]),
        n(&e[3]),
        n(&e[4]),
        n(&e[5]),
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
