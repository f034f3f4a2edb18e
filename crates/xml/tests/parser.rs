//! The stream parser against hostile and well-behaved input: one test per
//! rejection category asserting the exact RFC 6120 §4.9.3 condition, the
//! pathological inputs from the foundation issue, chunking independence and
//! serialize/parse round-trips.
#![allow(clippy::unwrap_used)]

use chorus_xml::{
    Element, Limits, NsContext, StreamErrorKind, StreamEvent, StreamParser, XmlError,
};
use proptest::prelude::*;

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>";

/// Feeds `input` in chunks of `chunk` bytes and collects events until the
/// first error.
fn run(input: &[u8], chunk: usize, limits: Limits) -> (Vec<StreamEvent>, Option<XmlError>) {
    let mut p = StreamParser::new(limits);
    let mut events = Vec::new();
    for piece in input.chunks(chunk.max(1)) {
        p.feed(piece);
        loop {
            match p.next_event() {
                Ok(Some(ev)) => events.push(ev),
                Ok(None) => break,
                Err(e) => return (events, Some(e)),
            }
        }
    }
    (events, None)
}

fn error_of(input: &[u8]) -> StreamErrorKind {
    let (_, err) = run(input, 4096, Limits::default());
    err.expect("input should be rejected").kind
}

fn with_header(body: &str) -> Vec<u8> {
    format!("{HEADER}{body}").into_bytes()
}

#[test]
fn header_is_parsed_with_its_namespaces() {
    let (events, err) = run(HEADER.as_bytes(), 1, Limits::default());
    assert!(err.is_none());
    let StreamEvent::Header(h) = &events[0] else {
        panic!("expected header, got {events:?}")
    };
    assert_eq!(h.name, "stream");
    assert_eq!(h.ns, chorus_xml::STREAM_NS);
    assert_eq!(h.default_ns, "jabber:client");
    assert_eq!(h.attr("to"), Some("example.com"));
    assert_eq!(h.attr("version"), Some("1.0"));
}

#[test]
fn stanzas_inherit_the_stream_default_namespace() {
    let (events, err) = run(
        &with_header("<message to='a@b'><body>hi &amp; &#x263A;</body></message></stream:stream>"),
        7,
        Limits::default(),
    );
    assert!(err.is_none(), "{err:?}");
    let StreamEvent::Element(m) = &events[1] else {
        panic!()
    };
    assert!(m.is("message", "jabber:client"));
    assert_eq!(
        m.get_child("body", "jabber:client").unwrap().text(),
        "hi & \u{263A}"
    );
    assert_eq!(events[2], StreamEvent::End);
}

#[test]
fn whitespace_keepalives_between_stanzas_are_ignored() {
    let (events, err) = run(
        &with_header(" \n\t<presence/>\n  <presence/> "),
        3,
        Limits::default(),
    );
    assert!(err.is_none());
    assert_eq!(events.len(), 3);
}

#[test]
fn stream_prefixed_elements_resolve() {
    let (events, _) = run(&with_header("<stream:features/>"), 5, Limits::default());
    let StreamEvent::Element(f) = &events[1] else {
        panic!()
    };
    assert!(f.is("features", chorus_xml::STREAM_NS));
}

// --- restricted-xml (RFC 6120 §11.1) ---

#[test]
fn comment_is_restricted_xml() {
    assert_eq!(
        error_of(&with_header("<!-- hi -->")),
        StreamErrorKind::RestrictedXml
    );
    assert_eq!(
        error_of(&with_header("<message><!-- hi --></message>")),
        StreamErrorKind::RestrictedXml
    );
}

#[test]
fn processing_instruction_is_restricted_xml() {
    assert_eq!(
        error_of(&with_header("<?foo bar?>")),
        StreamErrorKind::RestrictedXml
    );
    assert_eq!(
        error_of(b"<?xml-stylesheet href='x'?><stream:stream>"),
        StreamErrorKind::RestrictedXml
    );
}

#[test]
fn xml_declaration_after_start_is_restricted_xml() {
    assert_eq!(
        error_of(format!(" {HEADER}").as_bytes()),
        StreamErrorKind::RestrictedXml
    );
}

#[test]
fn billion_laughs_dtd_is_restricted_xml() {
    let mut doc = String::from("<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>");
    for i in 1..10 {
        doc.push_str(&format!(
            "<!ENTITY lol{i} '{}'>",
            format!("&lol{};", i - 1).repeat(10)
        ));
    }
    doc.push_str("]><stream:stream>&lol9;");
    let (events, err) = run(doc.as_bytes(), 1, Limits::default());
    assert!(events.is_empty());
    assert_eq!(err.unwrap().kind, StreamErrorKind::RestrictedXml);
}

#[test]
fn undeclared_entity_is_restricted_xml() {
    assert_eq!(
        error_of(&with_header("<message><body>&lol;</body></message>")),
        StreamErrorKind::RestrictedXml
    );
    assert_eq!(
        error_of(&with_header("<message to='&lol;'/>")),
        StreamErrorKind::RestrictedXml
    );
}

// --- unsupported-encoding ---

#[test]
fn utf16_declaration_is_unsupported_encoding() {
    assert_eq!(
        error_of(b"<?xml version='1.0' encoding='UTF-16'?><stream:stream>"),
        StreamErrorKind::UnsupportedEncoding
    );
}

#[test]
fn utf16_bytes_are_unsupported_encoding() {
    let utf16: Vec<u8> = "<?xml version='1.0'?>"
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    assert_eq!(error_of(&utf16), StreamErrorKind::UnsupportedEncoding);
    let mut bom = vec![0xFE, 0xFF];
    bom.extend_from_slice(b"\0<");
    assert_eq!(error_of(&bom), StreamErrorKind::UnsupportedEncoding);
}

#[test]
fn utf8_byte_order_mark_is_accepted() {
    let mut input = b"\xEF\xBB\xBF".to_vec();
    input.extend_from_slice(HEADER.as_bytes());
    let (events, err) = run(&input, 1, Limits::default());
    assert!(err.is_none(), "{err:?}");
    assert_eq!(events.len(), 1);
}

// --- not-well-formed ---

#[test]
fn nul_byte_is_not_well_formed() {
    assert_eq!(
        error_of(&with_header("<message>\0</message>")),
        StreamErrorKind::NotWellFormed
    );
    assert_eq!(
        error_of(&with_header("<message to='\0'/>")),
        StreamErrorKind::NotWellFormed
    );
}

#[test]
fn forbidden_character_reference_is_not_well_formed() {
    assert_eq!(
        error_of(&with_header("<message><body>&#1;</body></message>")),
        StreamErrorKind::NotWellFormed
    );
    assert_eq!(
        error_of(&with_header("<message><body>\u{FFFE}</body></message>")),
        StreamErrorKind::NotWellFormed
    );
}

#[test]
fn bad_utf8_is_not_well_formed() {
    let mut input = with_header("<message><body>");
    input.extend_from_slice(b"\xC3\x28\xFF");
    input.extend_from_slice(b"</body></message>");
    assert_eq!(error_of(&input), StreamErrorKind::NotWellFormed);
}

#[test]
fn mismatched_end_tag_is_not_well_formed() {
    assert_eq!(
        error_of(&with_header("<message><body></bodx></message>")),
        StreamErrorKind::NotWellFormed
    );
}

#[test]
fn duplicate_attribute_is_not_well_formed() {
    assert_eq!(
        error_of(&with_header("<message to='a' to='b'/>")),
        StreamErrorKind::NotWellFormed
    );
}

#[test]
fn garbage_before_header_is_not_well_formed() {
    assert_eq!(
        error_of(b"GET / HTTP/1.1\r\n"),
        StreamErrorKind::NotWellFormed
    );
    assert_eq!(
        error_of(&with_header("<1message/>")),
        StreamErrorKind::NotWellFormed
    );
}

#[test]
fn text_at_stream_level_is_bad_format() {
    assert_eq!(error_of(&with_header("hello")), StreamErrorKind::BadFormat);
}

// --- bad-namespace-prefix ---

#[test]
fn undeclared_prefix_is_bad_namespace_prefix() {
    assert_eq!(
        error_of(&with_header("<x:y/>")),
        StreamErrorKind::BadNamespacePrefix
    );
    assert_eq!(
        error_of(&with_header("<message foo:bar='1'/>")),
        StreamErrorKind::BadNamespacePrefix
    );
    assert_eq!(
        error_of(b"<x:stream xmlns:stream='http://etherx.jabber.org/streams'>"),
        StreamErrorKind::BadNamespacePrefix
    );
}

// --- policy-violation (limits) ---

#[test]
fn oversize_stanza_before_auth_is_policy_violation() {
    let body = "a".repeat(9 * 1024);
    let (events, err) = run(
        &with_header(&format!("<message><body>{body}</body></message>")),
        512,
        Limits::default(),
    );
    assert_eq!(events.len(), 1, "only the header");
    assert_eq!(err.unwrap().kind, StreamErrorKind::PolicyViolation);
}

#[test]
fn post_auth_limit_applies_after_authentication() {
    let body = "a".repeat(9 * 1024);
    let input = format!("<message><body>{body}</body></message>");
    let mut p = StreamParser::new(Limits::default());
    p.feed(HEADER.as_bytes());
    assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Header(_)))));
    p.set_authenticated(true);
    p.feed(input.as_bytes());
    assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Element(_)))));
    let big = format!("<message><body>{}</body></message>", "a".repeat(300 * 1024));
    p.feed(big.as_bytes());
    assert_eq!(
        p.next_event().unwrap_err().kind,
        StreamErrorKind::PolicyViolation
    );
}

#[test]
fn deep_nesting_is_policy_violation_in_bounded_memory() {
    let input = with_header(&"<a>".repeat(100_000));
    let mut p = StreamParser::new(Limits {
        max_stanza_bytes_preauth: 1 << 30,
        ..Limits::default()
    });
    let mut err = None;
    for piece in input.chunks(4096) {
        p.feed(piece);
        if let Err(e) = p.next_event() {
            err = Some(e);
            break;
        }
    }
    assert_eq!(err.unwrap().kind, StreamErrorKind::PolicyViolation);
    assert!(p.buffered() < 16 * 1024, "buffered {}", p.buffered());
}

#[test]
fn many_attributes_are_policy_violation_early() {
    let attrs: String = (0..100_000).map(|i| format!(" a{i}='x'")).collect();
    let input = with_header(&format!("<message{attrs}/>"));
    let mut p = StreamParser::new(Limits {
        max_stanza_bytes_preauth: 1 << 30,
        ..Limits::default()
    });
    let mut err = None;
    for piece in input.chunks(4096) {
        p.feed(piece);
        if let Err(e) = p.next_event() {
            err = Some(e);
            break;
        }
    }
    let err = err.unwrap();
    assert_eq!(err.kind, StreamErrorKind::PolicyViolation);
    assert!(err.detail.contains("attributes"));
    assert!(p.buffered() < 16 * 1024);
}

#[test]
fn many_namespace_declarations_are_policy_violation() {
    let decls: String = (0..100).map(|i| format!(" xmlns:p{i}='urn:{i}'")).collect();
    assert_eq!(
        error_of(&with_header(&format!("<message{decls}/>"))),
        StreamErrorKind::PolicyViolation
    );
}

#[test]
fn huge_unclosed_start_tag_is_rejected_at_the_limit() {
    let mut p = StreamParser::new(Limits::default());
    p.feed(HEADER.as_bytes());
    assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Header(_)))));
    p.feed(b"<message to='");
    let chunk = vec![b'x'; 64 * 1024];
    let mut fed = 0usize;
    let err = loop {
        p.feed(&chunk);
        fed += chunk.len();
        match p.next_event() {
            Err(e) => break e,
            Ok(None) => assert!(fed < 10 * 1024 * 1024, "never rejected"),
            Ok(Some(ev)) => panic!("unexpected {ev:?}"),
        }
    };
    assert_eq!(err.kind, StreamErrorKind::PolicyViolation);
    assert_eq!(fed, 64 * 1024, "rejected on the first chunk past the limit");
}

#[test]
fn long_name_is_policy_violation() {
    let name = "a".repeat(1000);
    assert_eq!(
        error_of(&with_header(&format!("<{name}/>"))),
        StreamErrorKind::PolicyViolation
    );
}

// --- reset ---

#[test]
fn reset_discards_pipelined_bytes() {
    let mut p = StreamParser::new(Limits::default());
    p.feed(&with_header(
        "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><message><body>pla",
    ));
    assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Header(_)))));
    assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Element(_)))));
    assert!(matches!(p.next_event(), Ok(None)));
    p.reset();
    assert_eq!(p.buffered(), 0);
    p.feed(HEADER.as_bytes());
    assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Header(_)))));
    assert!(matches!(p.next_event(), Ok(None)));
}

// --- round trips ---

fn sample_stanzas() -> Vec<Element> {
    vec![
        Element::new("message", "jabber:client")
            .with_attr("to", "juliet@example.com/balcony")
            .with_attr("type", "chat")
            .with_attr("xml:lang", "en")
            .with_child(Element::new("body", "jabber:client").with_text("<&>'\" \u{1F600}\r\n"))
            .with_child(Element::new(
                "active",
                "http://jabber.org/protocol/chatstates",
            )),
        Element::new("iq", "jabber:client")
            .with_attr("type", "result")
            .with_attr("id", "r1")
            .with_child(
                Element::new("query", "jabber:iq:roster")
                    .with_attr("ver", "v2")
                    .with_child(
                        Element::new("item", "jabber:iq:roster")
                            .with_attr("jid", "a@b")
                            .with_attr("name", "A 'quoted' \"name\"\t")
                            .with_child(
                                Element::new("group", "jabber:iq:roster").with_text("Friends"),
                            ),
                    ),
            ),
        Element::new("presence", "jabber:client")
            .with_attr("{urn:example:attr}flag", "1")
            .with_child(Element::new("x", "").with_text("no namespace")),
    ]
}

#[test]
fn serialize_parse_round_trip() {
    for el in sample_stanzas() {
        let mut out = HEADER.as_bytes().to_vec();
        el.write_to(&mut out, &NsContext::stream("jabber:client"));
        let (events, err) = run(&out, 3, Limits::default());
        assert!(
            err.is_none(),
            "{err:?} for {}",
            String::from_utf8_lossy(&out)
        );
        assert_eq!(events[1], StreamEvent::Element(el.clone()));
        // And standalone, declaring everything.
        let standalone = el.to_xml();
        let mut p = StreamParser::new(Limits::default());
        p.feed(HEADER.as_bytes());
        p.feed(standalone.as_bytes());
        p.next_event().unwrap();
        assert_eq!(p.next_event().unwrap(), Some(StreamEvent::Element(el)));
    }
}

fn corpus() -> Vec<u8> {
    let mut s = String::from(HEADER);
    s.push_str(
        "\n<message to='a@b' id='1' type='chat'><body>hello &lt;world&gt; &#x1F600;</body>\
        <x xmlns='urn:x'><![CDATA[<raw> & stuff]]></x></message>  ",
    );
    s.push_str("<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/></presence>");
    s.push_str("<iq type='get' id='x'><query xmlns='jabber:iq:roster'/></iq>");
    s.push_str("</stream:stream>");
    s.into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any chunking of a valid stream yields the same events as feeding it whole.
    #[test]
    fn chunking_does_not_change_events(cuts in proptest::collection::vec(0usize..400, 0..40)) {
        let input = corpus();
        let (whole, err) = run(&input, input.len(), Limits::default());
        prop_assert!(err.is_none());
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % input.len()).collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut p = StreamParser::new(Limits::default());
        let mut events = Vec::new();
        let mut last = 0;
        for c in cuts.into_iter().chain(std::iter::once(input.len())) {
            p.feed(&input[last..c]);
            last = c;
            while let Some(ev) = p.next_event().unwrap() {
                events.push(ev);
            }
        }
        prop_assert_eq!(events, whole);
    }

    /// Arbitrary bytes after a header never panic, and buffered memory stays
    /// within the limit plus one chunk.
    #[test]
    fn arbitrary_input_never_panics(body in proptest::collection::vec(any::<u8>(), 0..4096), chunk in 1usize..300) {
        let limits = Limits { max_stanza_bytes_preauth: 1024, ..Limits::default() };
        let mut p = StreamParser::new(limits);
        let mut input = HEADER.as_bytes().to_vec();
        input.extend_from_slice(&body);
        for piece in input.chunks(chunk) {
            p.feed(piece);
            while let Ok(Some(_)) = p.next_event() {}
            prop_assert!(p.buffered() <= 1024 + chunk + HEADER.len());
        }
    }

    /// Markup-heavy random input (tags, quotes, entities) never panics.
    #[test]
    fn arbitrary_markup_never_panics(parts in proptest::collection::vec(
        prop_oneof![
            Just("<a>"), Just("</a>"), Just("<b x='1'/>"), Just("&amp;"), Just("&#"), Just("'"),
            Just("\""), Just("<!"), Just("<?"), Just("]]>"), Just("<![CDATA["), Just("xmlns:p='u'"),
            Just(">"), Just("<"), Just("p:q"), Just(" "), Just("\u{e9}"), Just("</stream:stream>")
        ], 0..200)) {
        let mut input = HEADER.as_bytes().to_vec();
        for p in parts { input.extend_from_slice(p.as_bytes()); }
        let _ = run(&input, 1, Limits::default());
        let _ = run(&input, 17, Limits::default());
    }
}

// --- found by fuzzing (fuzz/README.md): names and namespace values that
// would re-serialize as something else ---

#[test]
fn names_must_be_qnames() {
    for bad in [
        "<xml:a:b/>",
        "<p: xmlns:p='urn:p'/>",
        "<stream:/>",
        "<a/b/>",
    ] {
        assert_eq!(
            error_of(&with_header(bad)),
            StreamErrorKind::NotWellFormed,
            "{bad}"
        );
    }
    assert_eq!(
        error_of(&with_header("<message xmlns:p='urn:p' p:='1'/>")),
        StreamErrorKind::NotWellFormed
    );
}

#[test]
fn namespace_values_that_would_not_round_trip_are_refused() {
    assert_eq!(
        error_of(&with_header("<x xmlns='a&amp;b'/>")),
        StreamErrorKind::PolicyViolation
    );
    assert_eq!(
        error_of(&with_header("<message xmlns:p='urn:x}y' p:a=''/>")),
        StreamErrorKind::PolicyViolation
    );
}

#[test]
fn an_attribute_namespace_cannot_inject_attributes() {
    // The proof of concept from fuzzing: a crafted URI tried to smuggle a
    // second 'from' into the serialized stanza.
    let evil = "<message to='victim@example.com' type='chat' xmlns:p=\"urn:x}a='1' from='admin@example.com'>\" p:c='v'><body>hi</body></message>";
    assert_eq!(
        error_of(&with_header(evil)),
        StreamErrorKind::PolicyViolation
    );
    // And an Element built in code with such a key serializes safely.
    let e = Element::new("message", "jabber:client").with_attr("{urn:x}y}a", "1");
    let xml = e.to_xml();
    assert!(
        xml.contains(" ns0:a='1'") && xml.contains("xmlns:ns0='urn:x}y'"),
        "{xml}"
    );
    // Our own parser refuses such a namespace name rather than misread it.
    assert_eq!(
        Element::from_xml(&xml).unwrap_err().kind,
        StreamErrorKind::PolicyViolation
    );
}

/// The receiver gives memory back between reads; a stanza cut across that
/// point, and the stream's namespaces, must survive it.
#[test]
fn releasing_idle_memory_keeps_the_stream_state() {
    let mut p = StreamParser::new(Limits::default());
    p.feed(HEADER.as_bytes());
    assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Header(_)))));
    p.feed(b"<message to='a@b'><body>hel");
    assert_eq!(p.next_event(), Ok(None));
    p.release_idle();
    assert_eq!(p.buffered(), "<message to='a@b'><body>hel".len());
    p.feed(b"lo</body></message><presence xmlns:x='urn:x' x:a='1'/>");
    let Ok(Some(StreamEvent::Element(m))) = p.next_event() else {
        panic!("expected the message")
    };
    assert_eq!(m.ns(), "jabber:client");
    assert_eq!(
        m.get_child("body", "jabber:client").map(|b| b.text()),
        Some("hello".into())
    );
    let Ok(Some(StreamEvent::Element(pr))) = p.next_event() else {
        panic!("expected the presence")
    };
    assert_eq!(pr.attr("{urn:x}a"), Some("1"));
    assert_eq!(p.next_event(), Ok(None));
    p.release_idle();
    assert_eq!(p.buffered(), 0);
    p.feed(b"<iq type='get' id='1'/>");
    let Ok(Some(StreamEvent::Element(iq))) = p.next_event() else {
        panic!("expected the iq")
    };
    assert_eq!((iq.name(), iq.ns()), ("iq", "jabber:client"));
}
