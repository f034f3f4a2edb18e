//! The incremental stream parser: bytes in, [`StreamEvent`]s out.
//!
//! Two passes (see `scanner.rs` for why): the scanner delimits each complete
//! top-level unit while enforcing the limits, then quick-xml's `Reader`
//! tokenizes exactly that unit and the parser builds the [`Element`],
//! resolving namespaces in a [`Scope`] seeded with the stream header's
//! declarations (the header itself still goes through an `NsReader`, once
//! per stream). Consumed bytes are dropped on the next
//! [`StreamParser::feed`], so the buffer never holds more than one unit
//! under way plus the last chunk fed.

use std::borrow::Cow;

use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::name::{Namespace, PrefixDeclaration, ResolveResult};
use quick_xml::reader::NsReader;
use quick_xml::XmlVersion;

use crate::element::Element;
use crate::error::{StreamErrorKind, XmlError};
use crate::scanner::{Scanner, Unit};
use crate::XML_NS;

/// Parser limits. Every one is counted while bytes arrive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest top-level unit (stream header or stanza) before authentication.
    pub max_stanza_bytes_preauth: usize,
    /// Largest stanza once the stream is authenticated.
    pub max_stanza_bytes: usize,
    /// Deepest element nesting inside a stanza (the stanza itself is depth 1).
    pub max_depth: usize,
    /// Most attributes on one element, namespace declarations included.
    pub max_attrs: usize,
    /// Most namespace declarations on one element.
    pub max_ns_decls: usize,
    /// Longest element or attribute name, in bytes.
    pub max_name_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_stanza_bytes_preauth: 8 * 1024,
            max_stanza_bytes: 256 * 1024,
            max_depth: 64,
            max_attrs: 64,
            max_ns_decls: 16,
            max_name_len: 256,
        }
    }
}

/// The opening `<stream:stream>` tag, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamHeader {
    /// Local name (`stream`).
    pub name: String,
    /// Resolved namespace (`http://etherx.jabber.org/streams`).
    pub ns: String,
    /// The default namespace the header declared (`jabber:client`), or "".
    pub default_ns: String,
    /// Prefixes the header declared, as (prefix, uri).
    pub prefixes: Vec<(String, String)>,
    /// Other attributes (`to`, `from`, `version`, `id`, `xml:lang`), keyed as
    /// [`Element`] keys them.
    pub attrs: Vec<(String, String)>,
}

impl StreamHeader {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// What the parser yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamEvent {
    /// The stream header; stanzas follow.
    Header(StreamHeader),
    /// One complete top-level element (a stanza, `<starttls/>`, `<auth/>`...).
    Element(Element),
    /// `</stream:stream>`: the peer closed the stream.
    End,
}

/// An incremental, restartable XMPP stream parser. After it returns an error
/// the stream is dead: send the error's condition and close.
pub struct StreamParser {
    limits: Limits,
    authenticated: bool,
    buf: Vec<u8>,
    /// Bytes at the front of `buf` already turned into events.
    consumed: usize,
    scanner: Scanner,
    header: Option<StreamHeader>,
    /// Namespace scope for stanza parsing, reused from one to the next.
    scope: Scope,
    /// The stream has ended or failed; nothing more is parsed.
    done: bool,
}

impl StreamParser {
    pub fn new(limits: Limits) -> Self {
        StreamParser {
            limits,
            authenticated: false,
            buf: Vec::new(),
            consumed: 0,
            scanner: Scanner::new(),
            header: None,
            scope: Scope::default(),
            done: false,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Applies new limits (config reload); they take effect from the next unit.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Switches to the post-authentication stanza size limit.
    pub fn set_authenticated(&mut self, authenticated: bool) {
        self.authenticated = authenticated;
    }

    /// The header of the current stream, once parsed.
    pub fn header(&self) -> Option<&StreamHeader> {
        self.header.as_ref()
    }

    /// Bytes held for units not yet complete.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.consumed
    }

    /// Starts a new stream on the same connection (RFC 6120 §4.3.3 after
    /// STARTTLS and SASL). Anything buffered is discarded: bytes a peer
    /// pipelined after `<starttls/>` must not survive into the TLS stream.
    pub fn reset(&mut self) {
        self.buf.clear();
        // Don't keep a large buffer alive on an idle connection.
        self.buf.shrink_to(4096);
        self.consumed = 0;
        self.scanner = Scanner::new();
        self.header = None;
        self.done = false;
    }

    /// Appends bytes. Call [`StreamParser::next_event`] until it returns
    /// `Ok(None)` after each feed; memory is then bounded by the unit limit
    /// plus the size of one chunk.
    pub fn feed(&mut self, data: &[u8]) {
        if self.done {
            return;
        }
        self.drop_consumed();
        self.buf.extend_from_slice(data);
    }

    /// Drops the bytes already turned into events that the scanner no
    /// longer needs.
    fn drop_consumed(&mut self) {
        let keep = self.scanner.keep_from().min(self.consumed);
        if keep > 0 {
            self.buf.drain(..keep);
            self.scanner.shift(keep);
            self.consumed -= keep;
        }
    }

    /// Gives back the memory an idle connection does not need: the input
    /// buffer once every byte of it is parsed, and the namespace scope. Call
    /// it when the connection goes back to waiting for bytes; a busy one
    /// pays one allocation per read, an idle one holds nothing.
    pub fn release_idle(&mut self) {
        self.drop_consumed();
        if self.buf.is_empty() {
            self.buf = Vec::new();
        }
        self.scope = Scope::default();
    }

    /// The next complete event, `Ok(None)` if more bytes are needed.
    pub fn next_event(&mut self) -> Result<Option<StreamEvent>, XmlError> {
        let result = self.next_event_inner();
        if result.is_err() {
            self.done = true;
        }
        result
    }

    fn next_event_inner(&mut self) -> Result<Option<StreamEvent>, XmlError> {
        loop {
            if self.done {
                return Ok(None);
            }
            let max_unit = if self.authenticated {
                self.limits.max_stanza_bytes
            } else {
                self.limits.max_stanza_bytes_preauth
            };
            let Some(unit) = self.scanner.scan(&self.buf, &self.limits, max_unit)? else {
                self.consumed = self.scanner.keep_from();
                return Ok(None);
            };
            match unit {
                Unit::Decl(s, e) => {
                    check_decl(&self.buf[s..e])?;
                    self.consumed = e;
                }
                Unit::Header(s, e) => {
                    let header = parse_header(&self.buf[s..e], &self.limits)?;
                    self.header = Some(header.clone());
                    self.consumed = e;
                    return Ok(Some(StreamEvent::Header(header)));
                }
                Unit::Stanza(s, e) => {
                    let el = parse_element(&self.buf[s..e], self.header.as_ref(), &mut self.scope)?;
                    self.consumed = e;
                    return Ok(Some(StreamEvent::Element(el)));
                }
                Unit::StreamEnd(s, e) => {
                    check_stream_end(&self.buf[s..e], self.header.as_ref())?;
                    self.consumed = e;
                    self.done = true;
                    return Ok(Some(StreamEvent::End));
                }
            }
        }
    }
}

fn xerr(kind: StreamErrorKind, detail: impl Into<String>) -> XmlError {
    XmlError::new(kind, detail)
}

/// Maps a quick-xml error onto the stream error RFC 6120 asks for.
fn map_qx(e: quick_xml::Error) -> XmlError {
    use quick_xml::escape::EscapeError;
    use quick_xml::Error as E;
    match &e {
        E::Escape(EscapeError::UnrecognizedEntity(..)) => xerr(
            StreamErrorKind::RestrictedXml,
            "only the predefined entities and character references are allowed",
        ),
        E::Namespace(_) => xerr(StreamErrorKind::BadNamespacePrefix, e.to_string()),
        E::Encoding(_) => xerr(StreamErrorKind::NotWellFormed, "invalid UTF-8"),
        _ => xerr(StreamErrorKind::NotWellFormed, e.to_string()),
    }
}

/// XML 1.0 `Char`: TAB, LF, CR, U+0020-U+D7FF, U+E000-U+FFFD, U+10000-U+10FFFF.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Valid UTF-8 with no U+FFFE/U+FFFF (C0 controls were refused by the scanner).
fn check_text(bytes: &[u8]) -> Result<&str, XmlError> {
    let s = std::str::from_utf8(bytes)
        .map_err(|_| xerr(StreamErrorKind::NotWellFormed, "invalid UTF-8"))?;
    check_forbidden_chars(bytes)?;
    Ok(s)
}

/// No U+FFFE/U+FFFF, which are UTF-8 yet not XML characters.
fn check_forbidden_chars(bytes: &[u8]) -> Result<(), XmlError> {
    // U+FFFE and U+FFFF are EF BF BE / EF BF BF in UTF-8.
    let mut rest = bytes;
    while let Some(i) = memchr::memchr(0xEF, rest) {
        if rest.len() >= i + 3
            && rest[i + 1] == 0xBF
            && (rest[i + 2] == 0xBE || rest[i + 2] == 0xBF)
        {
            return Err(xerr(
                StreamErrorKind::NotWellFormed,
                "forbidden character U+FFFE/U+FFFF",
            ));
        }
        rest = &rest[i + 1..];
    }
    Ok(())
}

fn check_decl(bytes: &[u8]) -> Result<(), XmlError> {
    let s = check_text(bytes)?;
    let mut reader = quick_xml::Reader::from_str(s);
    match reader.read_event().map_err(map_qx)? {
        Event::Decl(d) => {
            let version = d.version().map_err(map_qx)?;
            if version != "1.0" {
                return Err(xerr(
                    StreamErrorKind::RestrictedXml,
                    "only XML 1.0 is allowed",
                ));
            }
            if let Some(enc) = d.encoding() {
                let enc = enc.map_err(|e| xerr(StreamErrorKind::NotWellFormed, e.to_string()))?;
                if !enc.eq_ignore_ascii_case("utf-8") {
                    return Err(xerr(
                        StreamErrorKind::UnsupportedEncoding,
                        format!("encoding {enc} is not supported; use UTF-8"),
                    ));
                }
            }
            Ok(())
        }
        _ => Err(xerr(
            StreamErrorKind::RestrictedXml,
            "processing instructions are not allowed",
        )),
    }
}

/// Resolves a start tag's attributes into (key, value) pairs, skipping
/// namespace declarations (the resolver has already taken them).
fn collect_attrs(
    start: &BytesStart<'_>,
    reader: &NsReader<&[u8]>,
    out: &mut Vec<(String, String)>,
) -> Result<(), XmlError> {
    for attr in start.attributes() {
        let attr = attr.map_err(|e| xerr(StreamErrorKind::NotWellFormed, e.to_string()))?;
        let key = attr.key;
        if key.as_namespace_binding().is_some() {
            check_ns_decl(key.as_ref(), &attr.value)?;
            continue;
        }
        check_qname(key.as_ref())?;
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(map_qx)?;
        if let Cow::Owned(v) = &value {
            // Character references can produce characters that raw bytes could not.
            if !v.chars().all(is_xml_char) {
                return Err(xerr(
                    StreamErrorKind::NotWellFormed,
                    "forbidden character reference",
                ));
            }
        }
        let local = key.local_name();
        let local = local.as_ref();
        let full_key = if key.prefix().is_some() {
            match reader.resolver().resolve_attribute(key).0 {
                ResolveResult::Bound(Namespace(ns)) if ns == XML_NS => format!("xml:{local}"),
                ResolveResult::Bound(Namespace(ns)) => format!("{{{ns}}}{local}"),
                ResolveResult::Unbound => local.to_owned(),
                ResolveResult::Unknown(p) => {
                    return Err(xerr(
                        StreamErrorKind::BadNamespacePrefix,
                        format!("undeclared prefix '{p}'"),
                    ))
                }
            }
        } else {
            local.to_owned()
        };
        if out.iter().any(|(k, _)| *k == full_key) {
            // Two prefixes bound to one namespace: duplicate after resolution.
            return Err(xerr(StreamErrorKind::NotWellFormed, "duplicate attribute"));
        }
        out.push((full_key, value.into_owned()));
    }
    Ok(())
}

/// XML Namespaces §3 NCName, approximated: a letter, `_` or any non-ASCII
/// character first, then also digits, `-` and `.`. No colon.
fn is_ncname(s: &str) -> bool {
    // Bytes, not chars: names are ASCII in practice, and any byte of a
    // multi-byte UTF-8 character is >= 0x80, which is accepted.
    let b = s.as_bytes();
    let Some(&first) = b.first() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == b'_' || first >= 0x80)
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.') || c >= 0x80)
}

/// A QName is `NCName` or `NCName:NCName` (XML Namespaces §3): no empty
/// part, one colon at most, no characters a name cannot hold. Anything else
/// would be re-serialized as something that is not XML.
fn check_qname(q: &str) -> Result<(), XmlError> {
    let ok = match split_qname(q) {
        (Some(prefix), local) => is_ncname(prefix) && is_ncname(local),
        (None, _) => is_ncname(q),
    };
    if ok {
        Ok(())
    } else {
        Err(xerr(
            StreamErrorKind::NotWellFormed,
            format!("invalid name '{q}'"),
        ))
    }
}

/// Namespace declarations are bound by quick-xml from the raw attribute
/// value. Real namespace names never need entity references, whitespace
/// other than spaces, or `}` (which our `{uri}local` keys use), so refuse
/// them rather than bind a name that changes on every re-serialization.
fn check_ns_decl(key: &str, value: &str) -> Result<(), XmlError> {
    if let Some(prefix) = key.strip_prefix("xmlns:") {
        if !is_ncname(prefix) {
            return Err(xerr(
                StreamErrorKind::NotWellFormed,
                format!("invalid namespace prefix '{prefix}'"),
            ));
        }
    }
    // Anything the serializer would have to escape would come back as an
    // entity reference, which is bound raw: refuse it at the source.
    // The bytes the serializer escapes in attribute values, and '}'.
    let needs_escaping = |b: &u8| {
        matches!(
            b,
            b'&' | b'<' | b'>' | b'\'' | b'"' | b'\t' | b'\n' | b'\r' | b'}'
        )
    };
    if value.as_bytes().iter().any(needs_escaping) {
        return Err(xerr(
            StreamErrorKind::PolicyViolation,
            "namespace names with entity references, quotes, control whitespace or '}' are not accepted",
        ));
    }
    Ok(())
}

fn resolved_ns(res: ResolveResult<'_>) -> Result<String, XmlError> {
    match res {
        ResolveResult::Bound(Namespace(ns)) => Ok(ns.to_owned()),
        ResolveResult::Unbound => Ok(String::new()),
        ResolveResult::Unknown(p) => Err(xerr(
            StreamErrorKind::BadNamespacePrefix,
            format!("undeclared prefix '{p}'"),
        )),
    }
}

fn new_reader<'a>(s: &'a str, limits: &Limits) -> NsReader<&'a [u8]> {
    let mut reader = NsReader::from_reader(s.as_bytes());
    let config = reader.config_mut();
    config.check_end_names = true;
    config.trim_text(false);
    config.expand_empty_elements = false;
    reader
        .resolver_mut()
        .set_max_namespace_bindings(limits.max_ns_decls * (limits.max_depth + 2));
    reader
}

fn parse_header(bytes: &[u8], limits: &Limits) -> Result<StreamHeader, XmlError> {
    let s = check_text(bytes)?;
    let mut reader = new_reader(s, limits);
    let (res, event) = reader.read_resolved_event().map_err(map_qx)?;
    let ns = resolved_ns(res)?;
    let Event::Start(start) = event else {
        return Err(xerr(
            StreamErrorKind::NotWellFormed,
            "expected a stream header",
        ));
    };
    let mut default_ns = String::new();
    let mut prefixes = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| xerr(StreamErrorKind::NotWellFormed, e.to_string()))?;
        if attr.key.as_namespace_binding().is_some() {
            check_ns_decl(attr.key.as_ref(), &attr.value)?;
        }
        match attr.key.as_namespace_binding() {
            Some(PrefixDeclaration::Default) => default_ns = attr.value.into_owned(),
            Some(PrefixDeclaration::Named(p)) => {
                prefixes.push((p.to_owned(), attr.value.into_owned()))
            }
            None => {}
        }
    }
    let mut attrs = Vec::new();
    collect_attrs(&start, &reader, &mut attrs)?;
    check_qname(start.name().as_ref())?;
    let name = start.local_name().as_ref().to_owned();
    Ok(StreamHeader {
        name,
        ns,
        default_ns,
        prefixes,
        attrs,
    })
}

/// `</stream:stream>` must close the element the header opened.
fn check_stream_end(bytes: &[u8], header: Option<&StreamHeader>) -> Result<(), XmlError> {
    let s = check_text(bytes)?;
    let qname = s
        .trim_start_matches("</")
        .trim_end_matches('>')
        .trim_end_matches([' ', '\t', '\r', '\n']);
    let (prefix, local) = match qname.split_once(':') {
        Some((p, l)) => (Some(p), l),
        None => (None, qname),
    };
    let ok = header.is_some_and(|h| {
        let ns = match prefix {
            None => Some(h.default_ns.as_str()),
            Some(p) => h
                .prefixes
                .iter()
                .find(|(hp, _)| hp == p)
                .map(|(_, uri)| uri.as_str()),
        };
        local == h.name && ns == Some(h.ns.as_str())
    });
    if ok {
        Ok(())
    } else {
        Err(xerr(
            StreamErrorKind::NotWellFormed,
            "end tag does not match the stream header",
        ))
    }
}

fn char_of_ref(r: &BytesRef<'_>) -> Result<char, XmlError> {
    if let Some(c) = r.resolve_char_ref().map_err(map_qx)? {
        if !is_xml_char(c) {
            return Err(xerr(
                StreamErrorKind::NotWellFormed,
                "forbidden character reference",
            ));
        }
        return Ok(c);
    }
    match r.as_ref() {
        "lt" => Ok('<'),
        "gt" => Ok('>'),
        "amp" => Ok('&'),
        "apos" => Ok('\''),
        "quot" => Ok('"'),
        other => Err(xerr(
            StreamErrorKind::RestrictedXml,
            format!("entity '&{other};' is not allowed"),
        )),
    }
}

/// `xmlns:`-prefixed names are bound to this, and nothing may bind it
/// (XML Namespaces §3).
const XMLNS_NS: &str = "http://www.w3.org/2000/xmlns/";

/// The namespace bindings in scope while a unit is parsed: the stream
/// header's, then each open element's declarations. The parser keeps one
/// per connection and clears it between units, so its buffers are
/// allocated once, not once per stanza.
#[derive(Default)]
pub(crate) struct Scope {
    /// Every binding's prefix then namespace name, back to back.
    text: String,
    /// (start in `text`, prefix length, namespace length); prefix length 0
    /// is the default namespace. Innermost last.
    bindings: Vec<(usize, usize, usize)>,
    /// `bindings.len()` when each open element started.
    marks: Vec<usize>,
}

impl Scope {
    fn clear(&mut self) {
        self.text.clear();
        self.bindings.clear();
        self.marks.clear();
    }

    fn binding(&self, i: usize) -> (&str, &str) {
        let (start, plen, nlen) = self.bindings[i];
        (
            &self.text[start..start + plen],
            &self.text[start + plen..start + plen + nlen],
        )
    }

    /// Binds `prefix` ("" for the default namespace) in the innermost
    /// element, with the checks of XML Namespaces §3.
    fn declare(&mut self, prefix: &str, ns: &str) -> Result<(), XmlError> {
        let bad = |detail: String| xerr(StreamErrorKind::BadNamespacePrefix, detail);
        match prefix {
            "xml" if ns == XML_NS => return Ok(()),
            "xml" => return Err(bad(format!("prefix 'xml' bound to '{ns}'"))),
            "xmlns" => return Err(bad("prefix 'xmlns' cannot be declared".into())),
            // The default namespace may be anything, as quick-xml has it;
            // the serializer relies on that for elements in those two.
            "" => {}
            _ if ns == XML_NS || ns == XMLNS_NS => {
                return Err(bad(format!("'{ns}' bound to another prefix")));
            }
            _ => {}
        }
        // A prefix declared twice in one tag is refused with the tag's other
        // duplicate attributes, in `open`.
        let start = self.text.len();
        self.text.push_str(prefix);
        self.text.push_str(ns);
        self.bindings.push((start, prefix.len(), ns.len()));
        Ok(())
    }

    /// The namespace of a prefix; `None` for an element's missing prefix
    /// means the default namespace. `xmlns:p=''` unbinds `p`.
    fn resolve(&self, prefix: Option<&str>) -> Result<&str, XmlError> {
        let want = prefix.unwrap_or("");
        match want {
            "xml" if prefix.is_some() => return Ok(XML_NS),
            "xmlns" if prefix.is_some() => return Ok(XMLNS_NS),
            _ => {}
        }
        let found = (0..self.bindings.len())
            .rev()
            .map(|i| self.binding(i))
            .find(|(p, _)| *p == want)
            .map(|(_, ns)| ns);
        match (prefix, found) {
            (None, ns) => Ok(ns.unwrap_or("")),
            // `:local` has an empty prefix, which nothing can bind.
            (Some(p), Some(ns)) if !p.is_empty() && !ns.is_empty() => Ok(ns),
            (Some(p), _) => Err(xerr(
                StreamErrorKind::BadNamespacePrefix,
                format!("undeclared prefix '{p}'"),
            )),
        }
    }

    fn open(&mut self) {
        self.marks.push(self.bindings.len());
    }

    fn close(&mut self) {
        if let Some(mark) = self.marks.pop() {
            self.bindings.truncate(mark);
            let end = self.bindings.last().map_or(0, |&(s, p, n)| s + p + n);
            self.text.truncate(end);
        }
    }
}

/// Splits a QName at its first colon into prefix and local name.
fn split_qname(q: &str) -> (Option<&str>, &str) {
    // A byte search: `str::split_once(char)` was a visible share of a parse.
    match q.bytes().position(|b| b == b':') {
        Some(i) => (Some(&q[..i]), &q[i + 1..]),
        None => (None, q),
    }
}

/// Parses one complete stanza. quick-xml's plain `Reader` does the
/// tokenizing, UTF-8 validation and end-tag matching; namespaces are
/// resolved here, in the same pass over each tag's attributes that
/// collects them (quick-xml's `NsReader` would walk them a second time).
pub(crate) fn parse_element(
    bytes: &[u8],
    header: Option<&StreamHeader>,
    scope: &mut Scope,
) -> Result<Element, XmlError> {
    check_forbidden_chars(bytes)?;
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.trim_text(false);
    config.expand_empty_elements = false;
    scope.clear();
    if let Some(h) = header {
        // The unit is parsed out of context; give it the stream's scope.
        if !h.default_ns.is_empty() {
            scope.declare("", &h.default_ns)?;
        }
        for (p, uri) in &h.prefixes {
            scope.declare(p, uri)?;
        }
    }
    let mut stack: Vec<Element> = Vec::new();
    loop {
        match reader.read_event().map_err(map_qx)? {
            Event::Start(start) => {
                stack.push(open(&start, scope)?);
            }
            Event::Empty(start) => {
                stack.push(open(&start, scope)?);
                scope.close();
                if let Some(done) = close(&mut stack) {
                    return Ok(done);
                }
            }
            Event::End(_) => {
                scope.close();
                if let Some(done) = close(&mut stack) {
                    return Ok(done);
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.append_text(&t.xml10_content());
                }
            }
            Event::CData(c) => {
                if let Some(top) = stack.last_mut() {
                    top.append_text(&c.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let c = char_of_ref(&r)?;
                if let Some(top) = stack.last_mut() {
                    top.append_text(c.encode_utf8(&mut [0u8; 4]));
                }
            }
            Event::Comment(_) | Event::PI(_) | Event::DocType(_) | Event::Decl(_) => {
                return Err(xerr(
                    StreamErrorKind::RestrictedXml,
                    "restricted XML construct",
                ));
            }
            Event::Eof => {
                return Err(xerr(StreamErrorKind::NotWellFormed, "incomplete element"));
            }
        }
    }
}

/// Built once: building a searcher per tag cost more than the search.
static XMLNS_FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"xmlns"));

/// Opens an element: declares its namespaces in a new level of `scope`,
/// then resolves its name and its attributes' names. The checks run in the
/// order quick-xml's `NsReader` raised them, so a tag with several faults
/// gets the same stream error as it always did: declarations, element
/// prefix, element name, then each attribute in document order.
fn open(start: &BytesStart<'_>, scope: &mut Scope) -> Result<Element, XmlError> {
    scope.open();
    // Declarations first, since a prefix may be declared after the
    // attribute that uses it; most tags declare nothing, and a byte search
    // spares them this walk.
    let tag: &str = start;
    if XMLNS_FINDER.find(tag.as_bytes()).is_some() {
        for attr in start.attributes().with_checks(false) {
            // A malformed attribute is reported by the walk below.
            let Ok(attr) = attr else { break };
            if let Some(prefix) = declared_prefix(attr.key.as_ref()) {
                scope.declare(prefix, &attr.value)?;
            }
        }
    }
    let qname = start.name();
    let qname = qname.as_ref();
    let (prefix, local) = split_qname(qname);
    let ns = scope.resolve(prefix)?;
    check_qname(qname)?;
    let mut el = Element::new(local, ns);
    for attr in start.attributes() {
        let attr = attr.map_err(|e| xerr(StreamErrorKind::NotWellFormed, e.to_string()))?;
        let key = attr.key.as_ref();
        if declared_prefix(key).is_some() {
            check_ns_decl(key, &attr.value)?;
            continue;
        }
        check_qname(key)?;
        let value = normalize_attr(&attr)?;
        let full_key = match split_qname(key) {
            (None, local) => Cow::Borrowed(local),
            (Some(p), local) => match scope.resolve(Some(p))? {
                XML_NS => Cow::Owned(format!("xml:{local}")),
                ns => Cow::Owned(format!("{{{ns}}}{local}")),
            },
        };
        if el.attr(&full_key).is_some() {
            // Two prefixes bound to one namespace: duplicate after resolution.
            return Err(xerr(StreamErrorKind::NotWellFormed, "duplicate attribute"));
        }
        el.push_attr_unchecked(&full_key, value);
    }
    Ok(el)
}

/// The prefix an `xmlns` or `xmlns:p` attribute declares ("" for the
/// default namespace), or `None` for any other attribute.
fn declared_prefix(key: &str) -> Option<&str> {
    match key.strip_prefix("xmlns") {
        Some("") => Some(""),
        Some(rest) => rest.strip_prefix(':'),
        None => None,
    }
}

/// An attribute value as XML 1.0 §3.3.3 normalizes it: references
/// replaced, whitespace characters turned into spaces.
fn normalize_attr(attr: &Attribute<'_>) -> Result<String, XmlError> {
    let value = attr
        .normalized_value(XmlVersion::Implicit1_0)
        .map_err(map_qx)?;
    if let Cow::Owned(v) = &value {
        // Character references can produce characters that raw bytes could not.
        if !v.chars().all(is_xml_char) {
            return Err(xerr(
                StreamErrorKind::NotWellFormed,
                "forbidden character reference",
            ));
        }
    }
    Ok(value.into_owned())
}

/// Pops the innermost element into its parent; returns the root when it closes.
fn close(stack: &mut Vec<Element>) -> Option<Element> {
    let el = stack.pop()?;
    match stack.last_mut() {
        Some(parent) => {
            parent.push(el);
            None
        }
        None => Some(el),
    }
}
