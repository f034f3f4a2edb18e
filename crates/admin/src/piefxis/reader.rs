//! Reading a XEP-0227 document: the root, each child of `<server-data/>`
//! read whole or, when too large, streamed user by user, and
//! `<xi:include/>`d host files, all through chorus-xml's hardened
//! [`StreamParser`] with every limit enforced as bytes arrive (see the
//! module above for why the document is taken apart at its two outer
//! levels). The reader hands out [`Piece`]s in document order and knows
//! nothing of accounts or storage.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};

use chorus_xml::{
    escape_attr, Element, Limits, Node, StreamErrorKind, StreamEvent, StreamHeader, StreamParser,
    XmlError,
};

use super::{describe, is_pie, PIE_NS, XINCLUDE_NS};

/// Bytes read from the file per call.
const CHUNK: usize = 64 * 1024;
/// `<xi:include/>`s followed in one import.
const MAX_INCLUDES: usize = 1024;
/// Children of one `<server-data/>`: each is read with a parser of its own
/// and a file read of `CHUNK` bytes, so a file of countless tiny ones would
/// cost far more than its size.
const MAX_SERVER_CHILDREN: usize = 10_000;

/// How much of a document the reader holds at once.
#[derive(Clone, Copy, Debug)]
pub struct ReadLimits {
    /// The root's and a large host's start tags.
    pub tag: usize,
    /// A child of `<server-data/>` read whole; a larger one is streamed.
    pub small_child: usize,
    /// One `<user/>` with everything it holds.
    pub user: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            tag: 64 * 1024,
            small_child: 1024 * 1024,
            user: 16 * 1024 * 1024,
        }
    }
}

/// Why a document cannot be read. Any of these during the first pass means
/// nothing was imported.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{}: at byte {offset}: {detail}", file.display())]
    Malformed {
        file: PathBuf,
        offset: u64,
        detail: String,
    },
    #[error("{}: {error}", file.display())]
    Io {
        file: PathBuf,
        error: std::io::Error,
    },
    /// The consumer went away (the import failed elsewhere).
    #[error("the import was abandoned")]
    Cancelled,
}

/// What the reader hands out, in document order.
#[derive(Debug)]
pub enum Piece {
    /// A `<host/>` begins; its users follow, up to the next `Host`.
    Host { jid: Option<String> },
    /// One `<user/>` of the current host.
    User(Element),
    /// Something the format does not define where it was found: skipped.
    Unknown { what: String },
}

/// The callback the reader feeds, in document order.
pub type Visit<'a> = dyn FnMut(Piece) -> Result<(), ReadError> + 'a;

/// An open document.
struct Doc {
    path: PathBuf,
    file: File,
    limits: ReadLimits,
}

impl Doc {
    fn malformed(&self, offset: u64, detail: impl Into<String>) -> ReadError {
        ReadError::Malformed {
            file: self.path.clone(),
            offset,
            detail: detail.into(),
        }
    }

    fn io(&self, error: std::io::Error) -> ReadError {
        ReadError::Io {
            file: self.path.clone(),
            error,
        }
    }

    /// Up to `buf.len()` bytes at `offset`; 0 at the end of the file.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize, ReadError> {
        loop {
            match self.file.read_at(buf, offset) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io(e)),
            }
        }
    }

    /// The bytes `[from, to)`, which the caller knows to be few.
    fn read_range(&self, from: u64, to: u64) -> Result<Vec<u8>, ReadError> {
        let len = usize::try_from(to.saturating_sub(from))
            .map_err(|_| self.malformed(from, "range too large"))?;
        let mut out = vec![0; len];
        let mut done = 0;
        while done < len {
            let n = self.read_at(&mut out[done..], from + done as u64)?;
            if n == 0 {
                return Err(self.malformed(from + done as u64, "unexpected end of file"));
            }
            done += n;
        }
        Ok(out)
    }

    /// The first byte at or after `offset` that is not XML whitespace, with
    /// the byte after it (0 at the end), or `None` at the end of the file.
    fn skip_ws(&self, mut offset: u64) -> Result<Option<(u64, [u8; 2])>, ReadError> {
        let mut buf = vec![0; CHUNK];
        loop {
            let n = self.read_at(&mut buf, offset)?;
            if n == 0 {
                return Ok(None);
            }
            if let Some(i) = buf[..n]
                .iter()
                .position(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
            {
                let at = offset + i as u64;
                let next = if i + 1 < n {
                    buf[i + 1]
                } else {
                    let mut one = [0u8; 1];
                    match self.read_at(&mut one, at + 1)? {
                        0 => 0,
                        _ => one[0],
                    }
                };
                return Ok(Some((at, [buf[i], next])));
            }
            offset += n as u64;
        }
    }

    /// Fails unless only whitespace follows `offset`: the document is over.
    fn expect_end(&self, offset: u64) -> Result<(), ReadError> {
        match self.skip_ws(offset)? {
            None => Ok(()),
            Some((at, _)) => Err(self.malformed(at, "content after the root element")),
        }
    }

    /// The qualified name of the start tag at `offset` (`host`, `pie:host`),
    /// which the caller has already had parsed, so only its end is looked for.
    fn qname_at(&self, offset: u64) -> Result<String, ReadError> {
        let mut buf = vec![0; 1024];
        let n = self.read_at(&mut buf, offset)?;
        let tag = buf.get(1..n).unwrap_or_default();
        let end = tag
            .iter()
            .position(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'/' | b'>'))
            .unwrap_or(tag.len());
        String::from_utf8(tag[..end].to_vec())
            .map_err(|_| self.malformed(offset, "element name is not UTF-8"))
    }
}

/// A parser fed from the file at an offset, after an optional synthetic
/// prelude (a start tag that gives the slice its context), which knows the
/// file offset at which each event ended.
struct Feed<'d> {
    doc: &'d Doc,
    parser: StreamParser,
    prelude: u64,
    /// The file offset of the first byte fed after the prelude.
    start: u64,
    fed: u64,
    eof: bool,
    buf: Vec<u8>,
}

/// What went wrong in a [`Feed`], before it becomes a [`ReadError`]: the
/// caller sometimes needs the parser's own verdict.
enum FeedError {
    Xml(XmlError),
    Read(ReadError),
}

impl<'d> Feed<'d> {
    fn new(doc: &'d Doc, start: u64, prelude: &[u8], unit: usize) -> Feed<'d> {
        let mut parser = StreamParser::new(Limits {
            // The start tag that opens the slice is the "pre-auth" unit...
            max_stanza_bytes_preauth: doc.limits.tag,
            // ...and every element after it a stanza.
            max_stanza_bytes: unit,
            ..Limits::default()
        });
        parser.feed(prelude);
        Feed {
            doc,
            parser,
            prelude: prelude.len() as u64,
            start,
            fed: 0,
            eof: false,
            buf: vec![0; CHUNK],
        }
    }

    /// The next event, reading as needed; `None` at the end of the file.
    fn try_next(&mut self) -> Result<Option<StreamEvent>, FeedError> {
        loop {
            match self.parser.next_event() {
                Ok(Some(ev)) => {
                    if matches!(ev, StreamEvent::Header(_)) {
                        self.parser.set_authenticated(true);
                    }
                    return Ok(Some(ev));
                }
                Ok(None) => {}
                Err(e) => return Err(FeedError::Xml(e)),
            }
            if self.eof {
                return Ok(None);
            }
            let n = self
                .doc
                .read_at(&mut self.buf, self.start + self.fed)
                .map_err(FeedError::Read)?;
            if n == 0 {
                self.eof = true;
            } else {
                self.parser.feed(&self.buf[..n]);
                self.fed += n as u64;
            }
        }
    }

    fn next(&mut self) -> Result<Option<StreamEvent>, ReadError> {
        self.try_next().map_err(|e| self.error(e))
    }

    fn error(&self, e: FeedError) -> ReadError {
        match e {
            FeedError::Xml(e) => self.doc.malformed(self.offset(), e.to_string()),
            FeedError::Read(e) => e,
        }
    }

    /// The file offset just past the last event.
    fn offset(&self) -> u64 {
        let consumed = (self.prelude + self.fed).saturating_sub(self.parser.buffered() as u64);
        self.start + consumed.saturating_sub(self.prelude)
    }

    /// The start tag the slice opens with.
    fn header(&mut self) -> Result<StreamHeader, ReadError> {
        match self.next()? {
            Some(StreamEvent::Header(h)) => Ok(h),
            Some(_) => Err(self.doc.malformed(self.offset(), "expected a start tag")),
            None => Err(self
                .doc
                .malformed(self.offset(), "no root element (is the file empty?)")),
        }
    }
}

/// Reads a XEP-0227 document and everything it includes, calling `visit`
/// for each host, user and unknown element in document order.
pub fn read_document(
    path: &Path,
    limits: ReadLimits,
    visit: &mut Visit<'_>,
) -> Result<(), ReadError> {
    let mut includes = 0;
    read_file(path, limits, true, &mut includes, visit)
}

fn read_file(
    path: &Path,
    limits: ReadLimits,
    allow_include: bool,
    includes: &mut usize,
    visit: &mut Visit<'_>,
) -> Result<(), ReadError> {
    let file = File::open(path).map_err(|error| ReadError::Io {
        file: path.to_owned(),
        error,
    })?;
    let doc = Doc {
        path: path.to_owned(),
        file,
        limits,
    };
    let mut root = Feed::new(&doc, 0, b"", limits.user);
    let header = root.header()?;
    let root_end = root.offset();
    if !is_pie(&header.ns) || !matches!(header.name.as_str(), "server-data" | "host") {
        return Err(doc.malformed(
            0,
            format!(
                "the root element is <{}> in namespace '{}': not a XEP-0227 document \
                 (expected <server-data xmlns='{PIE_NS}'>)",
                header.name, header.ns
            ),
        ));
    }
    if header.name == "host" {
        // A host file (ejabberd writes one per host, included from the
        // main file): the root parser reads its users.
        visit(Piece::Host {
            jid: header.attr("jid").map(str::to_owned),
        })?;
        stream_users(&doc, &mut root, visit)?;
        return doc.expect_end(root.offset());
    }
    // The root start tag is the context every child is parsed in. Whatever
    // precedes it (declaration, whitespace) comes along; bounded, since the
    // whole prefix is held in memory.
    if root_end > 4 * limits.tag as u64 {
        return Err(doc.malformed(0, "too much before the root element"));
    }
    let prelude = doc.read_range(0, root_end)?;
    let mut pos = root_end;
    let mut children = 0usize;
    loop {
        let Some((at, first)) = doc.skip_ws(pos)? else {
            return Err(doc.malformed(pos, "unexpected end of file: <server-data> is not closed"));
        };
        if first != *b"</" {
            children += 1;
            if children > MAX_SERVER_CHILDREN {
                return Err(doc.malformed(
                    at,
                    format!("more than {MAX_SERVER_CHILDREN} elements in <server-data>"),
                ));
            }
        }
        if first == *b"</" {
            // The end tag, which the parser checks against the start tag.
            let mut end = Feed::new(&doc, at, &prelude, limits.tag);
            end.header()?;
            match end.next()? {
                Some(StreamEvent::End) => return doc.expect_end(end.offset()),
                _ => return Err(doc.malformed(at, "expected </server-data>")),
            }
        }
        let mut probe = Feed::new(&doc, at, &prelude, limits.small_child);
        probe.header()?;
        match probe.try_next() {
            Ok(Some(StreamEvent::Element(child))) => {
                pos = probe.offset();
                small_child(&doc, at, child, allow_include, includes, visit)?;
            }
            Err(FeedError::Xml(e))
                if e.kind == StreamErrorKind::PolicyViolation
                    && probe.fed >= limits.small_child as u64 =>
            {
                // Too large to hold whole: a host with many users.
                pos = large_child(&doc, at, &header, visit)?;
            }
            Ok(None) => {
                return Err(doc.malformed(at, "unexpected end of file: <server-data> is not closed"))
            }
            Ok(Some(_)) => return Err(doc.malformed(at, "unexpected end tag")),
            Err(e) => return Err(probe.error(e)),
        }
    }
}

/// The users of a host whose start tag `feed` has parsed, up to its end tag.
fn stream_users(doc: &Doc, feed: &mut Feed<'_>, visit: &mut Visit<'_>) -> Result<(), ReadError> {
    loop {
        match feed.next()? {
            Some(StreamEvent::Element(e)) if e.name() == "user" && is_pie(e.ns()) => {
                visit(Piece::User(e))?
            }
            Some(StreamEvent::Element(e)) => visit(Piece::Unknown {
                what: format!("{} in <host>", describe(&e)),
            })?,
            Some(StreamEvent::End) => return Ok(()),
            Some(StreamEvent::Header(_)) => {
                return Err(doc.malformed(feed.offset(), "unexpected start tag"))
            }
            None => {
                return Err(doc.malformed(
                    feed.offset(),
                    "unexpected end of file: <host> is not closed",
                ))
            }
        }
    }
}

/// A child of `<server-data/>` read whole.
fn small_child(
    doc: &Doc,
    at: u64,
    mut child: Element,
    allow_include: bool,
    includes: &mut usize,
    visit: &mut Visit<'_>,
) -> Result<(), ReadError> {
    if child.name() == "host" && is_pie(child.ns()) {
        visit(Piece::Host {
            jid: child.attr("jid").map(str::to_owned),
        })?;
        for node in std::mem::take(child.nodes_mut()) {
            match node {
                Node::Element(e) if e.name() == "user" && is_pie(e.ns()) => visit(Piece::User(e))?,
                Node::Element(e) => visit(Piece::Unknown {
                    what: format!("{} in <host>", describe(&e)),
                })?,
                // Whitespace between users; anything else the parser refused.
                Node::Text(_) => {}
            }
        }
        return Ok(());
    }
    if child.is("include", XINCLUDE_NS) {
        if !allow_include {
            return Err(doc.malformed(at, "<xi:include/> in an included file is not supported"));
        }
        let target = include_target(doc, at, &child)?;
        *includes += 1;
        if *includes > MAX_INCLUDES {
            return Err(doc.malformed(at, format!("more than {MAX_INCLUDES} <xi:include/>s")));
        }
        return read_file(&target, doc.limits, false, includes, visit);
    }
    visit(Piece::Unknown {
        what: format!("{} in <server-data>", describe(&child)),
    })
}

/// Where an `<xi:include/>` points: a relative path below the including
/// file's directory, so that a file cannot make the server read anything
/// else it can reach.
fn include_target(doc: &Doc, at: u64, include: &Element) -> Result<PathBuf, ReadError> {
    let href = include
        .attr("href")
        .ok_or_else(|| doc.malformed(at, "<xi:include/> without href"))?;
    if include.attr("parse").is_some_and(|p| p != "xml") {
        return Err(doc.malformed(
            at,
            format!("<xi:include href='{href}'/> is not parse='xml'"),
        ));
    }
    let rel = Path::new(href);
    let plain = !href.contains("://")
        && !href.contains('#')
        && rel
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !plain || href.is_empty() {
        return Err(doc.malformed(
            at,
            format!("<xi:include href='{href}'/>: only relative paths below the including file's directory are followed"),
        ));
    }
    let dir = doc.path.parent().unwrap_or_else(|| Path::new("."));
    Ok(dir.join(rel))
}

/// A child of `<server-data/>` too large to hold whole, starting at `at`:
/// its start tag is parsed alone, then its children one by one. Returns the
/// offset past its end tag.
fn large_child(
    doc: &Doc,
    at: u64,
    root: &StreamHeader,
    visit: &mut Visit<'_>,
) -> Result<u64, ReadError> {
    let mut tag = Feed::new(doc, at, b"", doc.limits.tag);
    let own = tag.header().map_err(|e| match e {
        ReadError::Malformed {
            file,
            offset,
            detail,
        } => ReadError::Malformed {
            file,
            offset,
            detail: format!(
                "{detail} (a large <host> is read on its own and cannot use prefixes \
                 declared on <server-data>)"
            ),
        },
        other => other,
    })?;
    let tag_end = tag.offset();
    let prelude = synthetic_start_tag(&doc.qname_at(at)?, root, &own);
    let mut children = Feed::new(doc, tag_end, prelude.as_bytes(), doc.limits.user);
    let header = children.header()?;
    if header.name == "host" && is_pie(&header.ns) {
        visit(Piece::Host {
            jid: header.attr("jid").map(str::to_owned),
        })?;
        stream_users(doc, &mut children, visit)?;
    } else {
        visit(Piece::Unknown {
            what: format!("<{} xmlns='{}'> in <server-data>", header.name, header.ns),
        })?;
        loop {
            match children.next()? {
                Some(StreamEvent::End) => break,
                Some(_) => {}
                None => return Err(doc.malformed(children.offset(), "unexpected end of file")),
            }
        }
    }
    Ok(children.offset())
}

/// The start tag `qname` with the attributes of `own` and the namespace
/// declarations in scope: those of `own`, else those inherited from `root`.
fn synthetic_start_tag(qname: &str, root: &StreamHeader, own: &StreamHeader) -> String {
    let mut tag = format!("<{qname}");
    let default = if own.default_ns.is_empty() {
        &root.default_ns
    } else {
        &own.default_ns
    };
    if !default.is_empty() {
        tag.push_str(&format!(" xmlns='{}'", escape_attr(default)));
    }
    let mut prefixes: Vec<(&str, &str)> = root
        .prefixes
        .iter()
        .filter(|(p, _)| !own.prefixes.iter().any(|(q, _)| q == p))
        .map(|(p, u)| (p.as_str(), u.as_str()))
        .collect();
    prefixes.extend(own.prefixes.iter().map(|(p, u)| (p.as_str(), u.as_str())));
    for (p, uri) in &prefixes {
        tag.push_str(&format!(" xmlns:{p}='{}'", escape_attr(uri)));
    }
    for (key, value) in &own.attrs {
        let name = match key.strip_prefix('{').and_then(|k| k.split_once('}')) {
            Some((uri, local)) => match prefixes.iter().find(|(_, u)| *u == uri) {
                Some((p, _)) => format!("{p}:{local}"),
                // Cannot happen for an attribute that resolved; dropped
                // rather than guessed.
                None => continue,
            },
            None => key.clone(),
        };
        tag.push_str(&format!(" {name}='{}'", escape_attr(value)));
    }
    tag.push('>');
    tag
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A file in a directory of its own, both removed when dropped.
    struct TempFile(PathBuf);

    impl std::ops::Deref for TempFile {
        type Target = Path;

        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            if let Some(dir) = self.0.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }

    fn temp_file(name: &str, content: &str) -> TempFile {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "chorus-piefxis-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        TempFile(path)
    }

    /// Every piece, as (kind, detail) strings.
    fn pieces(path: &Path, limits: ReadLimits) -> Result<Vec<String>, ReadError> {
        let mut out = Vec::new();
        read_document(path, limits, &mut |p| {
            out.push(match p {
                Piece::Host { jid } => format!("host {}", jid.unwrap_or_default()),
                Piece::User(u) => format!(
                    "user {} {}",
                    u.attr("name").unwrap_or_default(),
                    u.children()
                        .map(|c| format!("{{{}}}{}", c.ns(), c.name()))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                Piece::Unknown { what } => format!("unknown {what}"),
            });
            Ok(())
        })?;
        Ok(out)
    }

    const TINY: ReadLimits = ReadLimits {
        tag: 1024,
        small_child: 200,
        user: 4096,
    };

    fn users(host: &str, n: usize) -> String {
        (0..n)
            .map(|i| {
                format!(
                    "<user name='u{i}' password='p'><vCard xmlns='vcard-temp'><FN>{host} {i}</FN></vCard></user>\n"
                )
            })
            .collect()
    }

    #[test]
    fn small_and_large_hosts_read_alike() {
        let doc = format!(
            "<?xml version='1.0'?>\n<server-data xmlns='urn:xmpp:pie:0' xmlns:v='vcard-temp'>\n\
             <host jid='small.example'>{}</host>\n\
             <host jid='large.example'>{}<v:vCard/></host>\n<other/>\n</server-data>\n",
            users("s", 1),
            users("l", 20)
        );
        let path = temp_file("mixed.xml", &doc);
        let got = pieces(&path, TINY).unwrap();
        assert_eq!(got[0], "host small.example");
        assert_eq!(got[1], "user u0 {vcard-temp}vCard");
        assert_eq!(got[2], "host large.example");
        assert_eq!(got[3], "user u0 {vcard-temp}vCard");
        assert_eq!(got[22], "user u19 {vcard-temp}vCard");
        // The prefix declared on <server-data> resolves inside the large host.
        assert_eq!(got[23], "unknown <vCard xmlns='vcard-temp'> in <host>");
        assert_eq!(
            got[24],
            "unknown <other xmlns='urn:xmpp:pie:0'> in <server-data>"
        );
        assert_eq!(got.len(), 25);
        // The default limits read the same document the same way.
        assert_eq!(pieces(&path, ReadLimits::default()).unwrap(), got);
    }

    #[test]
    fn host_files_and_includes_are_followed() {
        let host = temp_file(
            "h.xml",
            &format!(
                "<?xml version='1.0' encoding='UTF-8'?><host xmlns='urn:xmpp:pie:0' jid='a.example'>{}</host>",
                users("a", 2)
            ),
        );
        let dir = host.parent().unwrap();
        let main = dir.join("main.xml");
        std::fs::write(
            &main,
            "<server-data xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude'>\
             <xi:include href='h.xml'/><xi:include href='./h.xml'/></server-data>",
        )
        .unwrap();
        let got = pieces(&main, TINY).unwrap();
        assert_eq!(got.len(), 6, "{got:?}");
        assert_eq!(got[0], "host a.example");
        assert_eq!(got[5], "user u1 {vcard-temp}vCard");

        for href in ["/etc/passwd", "../h.xml", "http://example.com/h.xml", ""] {
            std::fs::write(
                &main,
                format!(
                    "<server-data xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude'>\
                     <xi:include href='{href}'/></server-data>"
                ),
            )
            .unwrap();
            let err = pieces(&main, TINY).unwrap_err().to_string();
            assert!(err.contains("only relative paths"), "{href}: {err}");
        }
    }

    #[test]
    fn malformed_documents_are_refused_with_a_position() {
        let cases = [
            ("", "no root element"),
            ("<foo/>", "empty stream header"),
            ("<server-data xmlns='urn:x'></server-data>", "not a XEP-0227 document"),
            (
                "<server-data xmlns='urn:xmpp:pie:0'><host jid='a'><user name='x'></host></server-data>",
                "not-well-formed",
            ),
            (
                "<server-data xmlns='urn:xmpp:pie:0'><host jid='a'><user name='x'/>",
                "not closed",
            ),
            (
                "<server-data xmlns='urn:xmpp:pie:0'></server-data><extra/>",
                "content after the root element",
            ),
            (
                "<server-data xmlns='urn:xmpp:pie:0'><!-- c --></server-data>",
                "restricted-xml",
            ),
            (
                "<!DOCTYPE x [<!ENTITY a 'b'>]><server-data xmlns='urn:xmpp:pie:0'/>",
                "restricted-xml",
            ),
            ("<server-data xmlns='urn:xmpp:pie:0'>text</server-data>", "bad-format"),
        ];
        for (doc, needle) in cases {
            let path = temp_file("bad.xml", doc);
            let err = pieces(&path, TINY).unwrap_err().to_string();
            assert!(err.contains(needle), "{doc}: {err}");
            assert!(err.contains("at byte"), "{doc}: {err}");
        }
        // A user over the limit is a policy violation, not an allocation.
        let big = format!(
            "<server-data xmlns='urn:xmpp:pie:0'><host jid='a'><user name='x'><vCard xmlns='vcard-temp'><FN>{}</FN></vCard></user></host></server-data>",
            "a".repeat(10_000)
        );
        let err = pieces(&temp_file("big.xml", &big), TINY)
            .unwrap_err()
            .to_string();
        assert!(err.contains("policy-violation"), "{err}");
    }
}
