//! XEP-0227 version 1.1, Portable Import/Export Format for XMPP-IM Servers
//! (PIEFXIS): `chorusctl import <file>` and `chorusctl export <dir>`.
//!
//! Both run inside the server, which opens the paths itself: chorusctl and
//! the server share the machine, and the server holds the storage.
//!
//! # Import
//!
//! What is read from each `<user/>`: the account (a plaintext `password`
//! attribute is turned into SCRAM-SHA-1 and SCRAM-SHA-256 keys; the
//! `<scram-credentials xmlns='urn:xmpp:pie:0#scram'/>` of version 1.1 are
//! kept as they are for the hashes this server offers), the roster
//! (`jabber:iq:roster`), the vCard (`vcard-temp`), private XML
//! (`jabber:iq:private`) and `<offline-messages/>`. Everything else, hosts
//! not in `server.domains`, and accounts that exist already are skipped and
//! listed in the report; existing accounts are never overwritten.
//!
//! ## Reading without a second parser, and without the whole tree
//!
//! Everything goes through chorus-xml's hardened [`StreamParser`], which
//! turns a stream header and then one complete top-level element at a time
//! into events, with every limit enforced while bytes arrive. A PIEFXIS
//! document nests one level deeper than a stream (`server-data` > `host` >
//! `user`), so a host, which may hold every account of a server, must not
//! be parsed as one element unless it is small. Instead the reader takes
//! the document apart at
//! the two outer levels, always with a fresh parser over a slice of the
//! file, and knows where each event ended from what the parser still
//! buffers:
//!
//! - The root start tag is parsed as a stream header.
//! - Each child of `<server-data/>` is first tried whole, as an element
//!   under the root's start tag (`ReadLimits::small_child`, 1 MiB): that covers
//!   `<xi:include/>` and small hosts. A host too large for that has its own
//!   start tag parsed as a stream header, and a second parser then reads its
//!   `<user/>` children one by one as stanzas, after a synthetic header that
//!   repeats the host's start tag with the namespace declarations inherited
//!   from `<server-data/>` (which the host's raw tag, parsed out of context,
//!   would not see).
//! - A host file whose root is `<host/>` (what ejabberd's `export_piefxis`
//!   writes next to a `<server-data/>` of `<xi:include/>`s) is one stream.
//!
//! So memory is bounded by one `<user/>` (`ReadLimits::user`, 16 MiB of
//! XML) and the few batches in flight (each cut at `BATCH_BYTES`), whatever
//! the file's size. `<xi:include href='...'/>` is followed for relative
//! paths below the including file's directory, one level deep.
//!
//! ## All or nothing for malformed files
//!
//! Accounts are written in batches, one transaction each, so a syntax error
//! after the first batch would leave a partial import. The file is therefore
//! read twice: a first pass checks the whole document (includes too) and
//! imports nothing if it is malformed; parsing costs little next to PBKDF2.
//!
//! ## Speed
//!
//! The cost of an import with plaintext passwords is PBKDF2: two hashes of
//! `sasl.iterations` rounds per account. The reading thread hands batches
//! of accounts to the command's task, which splits each batch's key
//! derivation over every core (`spawn_blocking`), keeps two batches
//! deriving so that no core waits for a batch's slowest part, and writes
//! each derived batch in one transaction ([`ImportStore::import_accounts`])
//! while the next ones derive. Accounts that exist already are found a
//! batch at a time ([`ImportStore::existing_accounts`]) before any key is
//! derived for them.
//!
//! # Export
//!
//! One file per served domain, `<dir>/<domain>.xml`, each a complete
//! `<server-data/>` with one `<host/>`, written to a temporary name (mode
//! 0600: it holds SCRAM keys) and renamed into place, so an existing export
//! is replaced whole or not at all. Credentials are exported as
//! `<scram-credentials/>` (we never have the password), offline messages
//! with a XEP-0203 delay from the domain holding the time they were stored,
//! which an import turns back into that time. So import(export(x))
//! reproduces x, and exporting that again gives the same bytes.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chorus_jid::{BareJid, Jid};
use chorus_sasl::{ScramCredentials, ScramHash};
use chorus_storage::{
    AccountStore, ImportOutcome, ImportStore, ImportedAccount, ImportedOffline, OfflineStore,
    PrivateFragment, PrivateStore, RosterItem, RosterStore, Storage, StoredCredentials,
    Subscription, VcardStore,
};
use chorus_xml::{
    escape_attr, Element, Limits, Node, NsContext, StreamErrorKind, StreamEvent, StreamHeader,
    StreamParser, XmlError,
};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::{AdminContext, CommandError};

/// The namespace of XEP-0227 (since version 1.0).
pub const PIE_NS: &str = "urn:xmpp:pie:0";
/// The namespace of drafts before 1.0, which old ejabberd versions wrote.
const PIE_NS_DRAFT: &str = "http://www.xmpp.org/extensions/xep-0227.html#ns";
/// XEP-0227 1.1 §3.1: SCRAM credentials instead of a password.
const SCRAM_NS: &str = "urn:xmpp:pie:0#scram";
const XINCLUDE_NS: &str = "http://www.w3.org/2001/XInclude";
const ROSTER_NS: &str = "jabber:iq:roster";
const VCARD_NS: &str = "vcard-temp";
const PRIVATE_NS: &str = "jabber:iq:private";
const CLIENT_NS: &str = "jabber:client";
const DELAY_NS: &str = "urn:xmpp:delay";
/// XEP-0091 legacy delay, which older servers add next to XEP-0203's.
const LEGACY_DELAY_NS: &str = "jabber:x:delay";

/// The largest vCard stored, as the vcard-temp module enforces for clients
/// (`chorus_modules` keeps its constant private).
const MAX_VCARD_BYTES: usize = 64 * 1024;
/// Bytes read from the file per call.
const CHUNK: usize = 64 * 1024;
/// Accounts per batch: one transaction, and one split of the PBKDF2 work.
const BATCH_ACCOUNTS: usize = 256;
/// A batch is also cut at this many bytes of parsed XML, so that a file of
/// huge accounts cannot pile up memory in the batches in flight.
const BATCH_BYTES: usize = 16 * 1024 * 1024;
/// Batches waiting between the reading thread and the writer.
const BATCHES_IN_FLIGHT: usize = 2;
/// Batches whose keys are derived at the same time.
const DERIVING: usize = 2;
/// Skipped entries listed one by one in the report; the rest are counted.
const MAX_LISTED: usize = 1000;
/// Skipped entries in the human-readable text.
const MAX_LISTED_TEXT: usize = 50;
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

fn is_pie(ns: &str) -> bool {
    ns == PIE_NS || ns == PIE_NS_DRAFT
}

/// A short description of an element for the report: `<query xmlns='x'>`.
fn describe(e: &Element) -> String {
    if e.ns().is_empty() {
        format!("<{}>", e.name())
    } else {
        format!("<{} xmlns='{}'>", e.name(), e.ns())
    }
}

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

/// One skipped thing, for the report.
#[derive(Debug, Clone)]
struct Skip {
    /// The account or host it belonged to.
    jid: String,
    /// What was skipped: `account`, `roster item x@y`, `host`...
    what: String,
    reason: String,
}

/// A host as the import saw it.
#[derive(Debug, Clone)]
struct HostReport {
    domain: String,
    imported: bool,
    accounts: u64,
    reason: Option<String>,
}

/// What an import did, counted as it goes.
#[derive(Debug, Default)]
struct Report {
    accounts: u64,
    roster_items: u64,
    vcards: u64,
    private: u64,
    offline: u64,
    hosts: Vec<HostReport>,
    skipped: Vec<Skip>,
    skipped_total: u64,
}

impl Report {
    fn skip(&mut self, jid: impl Into<String>, what: impl Into<String>, reason: impl Into<String>) {
        self.skipped_total += 1;
        if self.skipped.len() < MAX_LISTED {
            self.skipped.push(Skip {
                jid: jid.into(),
                what: what.into(),
                reason: reason.into(),
            });
        }
    }

    fn merge(&mut self, other: Report) {
        self.accounts += other.accounts;
        self.roster_items += other.roster_items;
        self.vcards += other.vcards;
        self.private += other.private;
        self.offline += other.offline;
        self.hosts.extend(other.hosts);
        // Entries beyond the other's list were counted but not kept.
        let unlisted = other
            .skipped_total
            .saturating_sub(other.skipped.len() as u64);
        for s in other.skipped {
            self.skip(s.jid, s.what, s.reason);
        }
        self.skipped_total += unlisted;
    }
}

/// An account read from the file, before its keys are derived.
struct Parsed {
    account: ImportedAccount,
    /// The plaintext password, if the file had one.
    password: Option<String>,
    /// Approximate memory held, for cutting batches.
    size: usize,
}

impl Parsed {
    fn jid(&self) -> String {
        format!("{}@{}", self.account.localpart, self.account.domain)
    }
}

/// Turns one `<user/>` into an account, noting whatever is skipped.
fn parse_user(user: &Element, domain: &str, report: &mut Report) -> Option<Parsed> {
    let Some(name) = user.attr("name") else {
        report.skip(format!("@{domain}"), "account", "<user/> without a name");
        return None;
    };
    let jid = match BareJid::new(Some(name), domain) {
        Ok(j) => j,
        Err(e) => {
            report.skip(
                format!("{name}@{domain}"),
                "account",
                format!("invalid username: {e}"),
            );
            return None;
        }
    };
    let who = jid.to_string();
    let mut account = ImportedAccount {
        localpart: jid.node().unwrap_or_default().to_owned(),
        domain: jid.domain().to_owned(),
        credentials: Vec::new(),
        roster: Vec::new(),
        vcard: None,
        private: Vec::new(),
        offline: Vec::new(),
    };
    for child in user.children() {
        match (child.ns(), child.name()) {
            (SCRAM_NS, "scram-credentials") => match scram_credentials(child) {
                Ok(c) if account.credentials.iter().any(|have| have.hash == c.hash) => report.skip(
                    who.as_str(),
                    format!("SCRAM-{} credentials", c.hash),
                    "listed twice; the first are kept",
                ),
                Ok(c) => account.credentials.push(c),
                Err(reason) => report.skip(who.as_str(), "SCRAM credentials", reason),
            },
            (ROSTER_NS, "query") => roster(child, &who, &mut account.roster, report),
            (VCARD_NS, "vCard") => {
                let xml = child.to_xml();
                if account.vcard.is_some() {
                    report.skip(who.as_str(), "vCard", "a second vCard; the first is kept");
                } else if xml.len() > MAX_VCARD_BYTES {
                    report.skip(
                        who.as_str(),
                        "vCard",
                        format!(
                            "{} bytes, more than the {MAX_VCARD_BYTES} allowed",
                            xml.len()
                        ),
                    );
                } else if child.children().next().is_some() {
                    account.vcard = Some(xml);
                }
            }
            (PRIVATE_NS, "query") => private(child, &who, &mut account.private, report),
            (ns, "offline-messages") if is_pie(ns) => {
                offline(child, &who, jid.domain(), &mut account.offline, report)
            }
            _ => report.skip(
                who.as_str(),
                describe(child),
                "not supported by this server",
            ),
        }
    }
    let mut password = user
        .attr("password")
        .filter(|p| !p.is_empty())
        .map(str::to_owned);
    // MongooseIM (and ejabberd_auth_http) serialize SCRAM into the password
    // field; taken as a password it would lock the user out.
    if password
        .as_deref()
        .is_some_and(|p| p.starts_with("==SCRAM==,") || p.starts_with("==MULTI_SCRAM==,"))
    {
        password = None;
        report.skip(
            who.as_str(),
            "password",
            "serialized SCRAM (MongooseIM's format), not a password",
        );
    }
    Some(Parsed {
        account,
        password,
        size: user.heap_size(),
    })
}

/// XEP-0227 1.1 `<scram-credentials/>`, for the hashes this server offers.
fn scram_credentials(el: &Element) -> Result<StoredCredentials, String> {
    let mechanism = el.attr("mechanism").unwrap_or_default();
    let hash = match mechanism {
        "SCRAM-SHA-1" => ScramHash::Sha1,
        "SCRAM-SHA-256" => ScramHash::Sha256,
        other => {
            return Err(format!(
                "mechanism '{other}' is not offered here (SCRAM-SHA-1 and SCRAM-SHA-256 are)"
            ))
        }
    };
    let text = |name: &str| -> Result<String, String> {
        el.get_child(name, SCRAM_NS)
            .map(|c| c.text().trim().to_owned())
            .ok_or_else(|| format!("{mechanism}: no <{name}/>"))
    };
    let iterations: u32 = text("iter-count")?
        .parse()
        .map_err(|_| format!("{mechanism}: <iter-count/> is not a number"))?;
    if iterations == 0 {
        return Err(format!("{mechanism}: <iter-count/> is 0"));
    }
    let decode = |name: &str| -> Result<Vec<u8>, String> {
        B64.decode(text(name)?)
            .map_err(|_| format!("{mechanism}: <{name}/> is not base64"))
    };
    let mut salt = decode("salt")?;
    let mut server_key = decode("server-key")?;
    let mut stored_key = decode("stored-key")?;
    let len = hash.output_len();
    if server_key.len() != len || stored_key.len() != len {
        // ejabberd (checked with 23.01) base64-encodes values it already
        // keeps base64-encoded: decode once more, and take it only if the
        // keys then have exactly the hash's length.
        let again = |v: &[u8]| B64.decode(v).ok();
        match (again(&salt), again(&server_key), again(&stored_key)) {
            (Some(s), Some(k), Some(t)) if k.len() == len && t.len() == len => {
                salt = s;
                server_key = k;
                stored_key = t;
            }
            _ => return Err(format!("{mechanism}: the keys are not {len} bytes long")),
        }
    }
    if salt.is_empty() {
        return Err(format!("{mechanism}: empty salt"));
    }
    Ok(StoredCredentials {
        hash: hash.name().to_owned(),
        salt,
        iterations,
        stored_key,
        server_key,
    })
}

/// The items of a `jabber:iq:roster` query.
fn roster(query: &Element, who: &str, out: &mut Vec<RosterItem>, report: &mut Report) {
    for item in query.children() {
        if !item.is("item", ROSTER_NS) {
            report.skip(who, describe(item), "not a roster item");
            continue;
        }
        let raw = item.attr("jid").unwrap_or_default();
        let what = || format!("roster item {raw}");
        let jid = match raw.parse::<BareJid>() {
            Ok(j) => j.to_string(),
            Err(e) => {
                report.skip(who, what(), format!("not a bare JID: {e}"));
                continue;
            }
        };
        let raw_subscription = item.attr("subscription").unwrap_or("none");
        let Some(subscription) = Subscription::parse(raw_subscription) else {
            report.skip(who, what(), format!("subscription '{raw_subscription}'"));
            continue;
        };
        if out.iter().any(|i| i.jid == jid) {
            report.skip(who, what(), "listed twice; the first is kept");
            continue;
        }
        let mut groups: Vec<String> = Vec::new();
        for g in item.children().filter(|g| g.is("group", ROSTER_NS)) {
            let name = g.text();
            // Duplicates would be refused by storage; an empty name means
            // no group in RFC 6121 terms.
            if !name.is_empty() && !groups.contains(&name) {
                groups.push(name);
            }
        }
        out.push(RosterItem {
            jid,
            name: item
                .attr("name")
                .filter(|n| !n.is_empty())
                .map(str::to_owned),
            subscription,
            ask: item.attr("ask") == Some("subscribe"),
            approved: matches!(item.attr("approved"), Some("true" | "1")),
            groups,
        });
    }
}

/// XEP-0049 refuses the same namespaces for clients (see the private
/// module): none, vcard-temp, and the reserved `jabber:` and
/// `http://jabber.org/` prefixes.
fn private_refused(ns: &str) -> bool {
    ns.is_empty()
        || ns == VCARD_NS
        || ns.starts_with("jabber:")
        || ns.starts_with("http://jabber.org/")
}

/// The fragments of a `jabber:iq:private` query.
fn private(query: &Element, who: &str, out: &mut Vec<PrivateFragment>, report: &mut Report) {
    for fragment in query.children() {
        if private_refused(fragment.ns()) {
            report.skip(
                who,
                format!("private XML {}", describe(fragment)),
                "reserved namespace",
            );
            continue;
        }
        if out
            .iter()
            .any(|f| f.name == fragment.name() && f.namespace == fragment.ns())
        {
            report.skip(
                who,
                format!("private XML {}", describe(fragment)),
                "listed twice; the first is kept",
            );
            continue;
        }
        out.push(PrivateFragment {
            name: fragment.name().to_owned(),
            namespace: fragment.ns().to_owned(),
            xml: fragment.to_xml(),
        });
    }
}

/// The messages of `<offline-messages/>`, in `jabber:client`, each with the
/// time the exporting server stored it taken from (and removed with) the
/// delay that server added, so that delivery stamps it once, with that time.
fn offline(
    list: &Element,
    who: &str,
    domain: &str,
    out: &mut Vec<ImportedOffline>,
    report: &mut Report,
) {
    for child in list.children() {
        if child.name() != "message" {
            report.skip(who, format!("offline {}", describe(child)), "not a message");
            continue;
        }
        // Written in the host's namespace, jabber:server or none: a stanza
        // as a client stream would carry it.
        let mut message = if child.ns() == CLIENT_NS {
            child.clone()
        } else {
            rehome(child, child.ns())
        };
        let mut stored_at = None;
        let ours = |e: &Element| {
            e.attr("from")
                .is_none_or(|f| f.eq_ignore_ascii_case(domain))
        };
        for d in message.children() {
            if d.is("delay", DELAY_NS) && ours(d) {
                stored_at = stored_at.or_else(|| d.attr("stamp").and_then(parse_stamp));
            } else if d.is("x", LEGACY_DELAY_NS) && ours(d) {
                stored_at = stored_at.or_else(|| d.attr("stamp").and_then(parse_legacy_stamp));
            }
        }
        message.remove_children(|d| {
            (d.is("delay", DELAY_NS) || d.is("x", LEGACY_DELAY_NS)) && ours(d)
        });
        out.push(ImportedOffline {
            stored_at: stored_at.unwrap_or_else(SystemTime::now),
            stanza: message.to_xml(),
        });
    }
}

/// `el` and its descendants in namespace `from`, moved to `jabber:client`.
fn rehome(el: &Element, from: &str) -> Element {
    let ns = if el.ns() == from { CLIENT_NS } else { el.ns() };
    let mut out = Element::new(el.name(), ns);
    for (k, v) in el.attrs() {
        out.set_attr(k, v);
    }
    for node in el.nodes() {
        match node {
            Node::Element(c) => out.push(rehome(c, from)),
            Node::Text(t) => out.push_text(t.clone()),
        }
    }
    out
}

/// A XEP-0082 DateTime: `2024-01-31T12:00:00[.frac](Z|±hh:mm)`.
fn parse_stamp(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    if s.ends_with('Z') || s.ends_with("+00:00") || s.ends_with("-00:00") {
        let utc = s
            .strip_suffix("-00:00")
            .map_or(s.to_owned(), |b| format!("{b}Z"));
        return humantime::parse_rfc3339(&utc).ok();
    }
    // An offset: local = UTC + offset.
    let (base, offset) = s.split_at(s.len().checked_sub(6)?);
    let sign = match offset.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, m) = offset[1..].split_once(':')?;
    let secs = h.parse::<u64>().ok()? * 3600 + m.parse::<u64>().ok()? * 60;
    let local = humantime::parse_rfc3339(&format!("{base}Z")).ok()?;
    let shift = Duration::from_secs(secs);
    if sign > 0 {
        local.checked_sub(shift)
    } else {
        local.checked_add(shift)
    }
}

/// A XEP-0091 stamp: `20240131T12:00:00`, always UTC.
fn parse_legacy_stamp(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    if s.len() != 17 || !s.is_char_boundary(8) {
        return None;
    }
    let (date, time) = s.split_at(8);
    let (y, rest) = date.split_at(4);
    let (mo, d) = rest.split_at(2);
    humantime::parse_rfc3339(&format!("{y}-{mo}-{d}{time}Z")).ok()
}

/// Derives the keys a parsed account still needs: both hashes from its
/// password unless the file gave credentials for that hash.
fn finish_credentials(mut parsed: Parsed, iterations: u32) -> (ImportedAccount, Vec<Skip>) {
    let mut notes = Vec::new();
    if let Some(password) = parsed.password.take() {
        for hash in [ScramHash::Sha1, ScramHash::Sha256] {
            if parsed
                .account
                .credentials
                .iter()
                .any(|c| c.hash == hash.name())
            {
                continue;
            }
            match ScramCredentials::derive(&password, hash, iterations) {
                Ok(c) => parsed
                    .account
                    .credentials
                    .push(chorus_modules::register::stored(c)),
                Err(e) => {
                    notes.push(Skip {
                        jid: parsed.jid(),
                        what: "password".into(),
                        reason: format!("unusable ({e})"),
                    });
                    break;
                }
            }
        }
    }
    if parsed.account.credentials.is_empty() {
        notes.push(Skip {
            jid: parsed.jid(),
            what: "credentials".into(),
            reason: "none usable: the account cannot log in until `chorusctl user passwd`".into(),
        });
    }
    // Stable order whatever the file's: SHA-1, then SHA-256.
    parsed
        .account
        .credentials
        .sort_by(|a, b| a.hash.cmp(&b.hash));
    (parsed.account, notes)
}

/// Derives keys for a whole batch on every core.
async fn derive_batch(
    batch: Vec<Parsed>,
    iterations: u32,
) -> Result<Vec<(ImportedAccount, Vec<Skip>)>, CommandError> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = batch.len().div_ceil(workers).max(1);
    let mut parts: Vec<Vec<Parsed>> = Vec::new();
    let mut rest = batch.into_iter().peekable();
    while rest.peek().is_some() {
        parts.push(rest.by_ref().take(per).collect());
    }
    let handles: Vec<_> = parts
        .into_iter()
        .map(|part| {
            tokio::task::spawn_blocking(move || {
                part.into_iter()
                    .map(|p| finish_credentials(p, iterations))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.extend(
            h.await
                .map_err(|e| CommandError::Failed(format!("key derivation failed: {e}")))?,
        );
    }
    Ok(out)
}

type WriteResult = Result<(Vec<ImportedAccount>, Vec<ImportOutcome>), chorus_storage::StorageError>;

/// Counts a written batch into the report.
fn record(report: &mut Report, written: (Vec<ImportedAccount>, Vec<ImportOutcome>)) {
    let (accounts, outcomes) = written;
    for (a, outcome) in accounts.iter().zip(outcomes) {
        match outcome {
            ImportOutcome::Created => {
                report.accounts += 1;
                report.roster_items += a.roster.len() as u64;
                report.vcards += u64::from(a.vcard.is_some());
                report.private += a.private.len() as u64;
                report.offline += a.offline.len() as u64;
            }
            ImportOutcome::AlreadyExists => report.skip(
                format!("{}@{}", a.localpart, a.domain),
                "account",
                "already exists",
            ),
        }
    }
}

/// The reading thread of the second pass: parses users into batches for
/// the writer and reports what it skipped itself.
fn produce(
    path: &Path,
    domains: &[String],
    tx: &tokio::sync::mpsc::Sender<Vec<Parsed>>,
) -> Result<Report, ReadError> {
    let mut report = Report::default();
    // The current host: its index in report.hosts, and whether it is served.
    let mut current: Option<(usize, bool)> = None;
    let mut batch: Vec<Parsed> = Vec::new();
    let mut bytes = 0usize;
    let send = |batch: Vec<Parsed>| tx.blocking_send(batch).map_err(|_| ReadError::Cancelled);
    read_document(path, ReadLimits::default(), &mut |piece| {
        match piece {
            Piece::Host { jid } => {
                let raw = jid.unwrap_or_default();
                let (domain, served, reason) = match Jid::domain_jid(&raw) {
                    Ok(j) if domains.iter().any(|d| d == j.domain()) => {
                        (j.domain().to_owned(), true, None)
                    }
                    Ok(j) => (
                        j.domain().to_owned(),
                        false,
                        Some(format!(
                            "not served here (server.domains: {})",
                            domains.join(", ")
                        )),
                    ),
                    Err(e) => (raw, false, Some(format!("invalid host JID: {e}"))),
                };
                report.hosts.push(HostReport {
                    domain,
                    imported: served,
                    accounts: 0,
                    reason,
                });
                current = Some((report.hosts.len() - 1, served));
            }
            Piece::User(user) => {
                let Some((i, served)) = current else {
                    return Ok(());
                };
                report.hosts[i].accounts += 1;
                if !served {
                    return Ok(());
                }
                let domain = report.hosts[i].domain.clone();
                if let Some(parsed) = parse_user(&user, &domain, &mut report) {
                    bytes += parsed.size;
                    batch.push(parsed);
                    if batch.len() >= BATCH_ACCOUNTS || bytes >= BATCH_BYTES {
                        bytes = 0;
                        send(std::mem::take(&mut batch))?;
                    }
                }
            }
            Piece::Unknown { what } => {
                let host = current.map_or(String::new(), |(i, _)| report.hosts[i].domain.clone());
                report.skip(host, what, "not part of XEP-0227's format");
            }
        }
        Ok(())
    })?;
    if !batch.is_empty() {
        send(batch)?;
    }
    // Skipped hosts are one entry each, however many accounts they hold.
    for h in report.hosts.clone() {
        if let (false, Some(reason)) = (h.imported, h.reason) {
            report.skip(h.domain, format!("host ({} accounts)", h.accounts), reason);
        }
    }
    Ok(report)
}

/// `import`: reads a XEP-0227 file the server can open at `file`.
pub async fn import(ctx: &AdminContext, file: &str) -> Result<Value, CommandError> {
    let started = Instant::now();
    let path = absolute(file, "file")?;
    // First pass: the whole document must read, or nothing is imported.
    let check = path.clone();
    let users = tokio::task::spawn_blocking(move || {
        let mut users = 0u64;
        read_document(&check, ReadLimits::default(), &mut |piece| {
            if matches!(piece, Piece::User(_)) {
                users += 1;
            }
            Ok(())
        })
        .map(|()| users)
    })
    .await
    .map_err(|e| CommandError::Failed(format!("reading failed: {e}")))?
    .map_err(|e| match e {
        ReadError::Io { .. } => {
            CommandError::BadArgs(format!("cannot read {e}; nothing was imported"))
        }
        other => CommandError::BadArgs(format!(
            "not a valid XEP-0227 file: {other}; nothing was imported"
        )),
    })?;
    tracing::info!(file = %path.display(), users, "importing XEP-0227 file");

    // Second pass: the reading thread parses batches; this task derives
    // their keys on every core and writes each batch in one transaction
    // while later ones are derived.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Parsed>>(BATCHES_IN_FLIGHT);
    let domains = ctx.domains.clone();
    let read_path = path.clone();
    let producer = tokio::task::spawn_blocking(move || produce(&read_path, &domains, &tx));
    let storage: Arc<Storage> = ctx.storage.clone();
    let mut report = Report::default();
    let mut writing: Option<tokio::task::JoinHandle<WriteResult>> = None;
    let mut deriving: VecDeque<tokio::task::JoinHandle<DeriveResult>> = VecDeque::new();
    let outcome: Result<(), CommandError> = async {
        while let Some(batch) = rx.recv().await {
            // Accounts that exist are left out before PBKDF2 is spent on
            // them; one that appears meanwhile is caught by the write.
            let mut names: BTreeMap<&str, Vec<String>> = BTreeMap::new();
            for p in &batch {
                names
                    .entry(p.account.domain.as_str())
                    .or_default()
                    .push(p.account.localpart.clone());
            }
            let mut existing = HashSet::new();
            for (domain, localparts) in names {
                for l in storage
                    .existing_accounts(domain, &localparts)
                    .await
                    .map_err(|e| CommandError::Failed(format!("storage: {e}")))?
                {
                    existing.insert((l, domain.to_owned()));
                }
            }
            let mut todo = Vec::with_capacity(batch.len());
            for parsed in batch {
                let key = (
                    parsed.account.localpart.clone(),
                    parsed.account.domain.clone(),
                );
                if existing.contains(&key) {
                    report.skip(parsed.jid(), "account", "already exists");
                } else {
                    todo.push(parsed);
                }
            }
            // Two batches derive at once, so that the cores one batch's
            // slowest part leaves idle work on the next; the older one is
            // then written while the newer one and the next still derive.
            deriving.push_back(tokio::spawn(derive_batch(todo, ctx.sasl_iterations)));
            if deriving.len() >= DERIVING {
                if let Some(oldest) = deriving.pop_front() {
                    let derived = join_derive(oldest).await?;
                    write_next(&storage, derived, &mut writing, &mut report).await?;
                }
            }
        }
        while let Some(oldest) = deriving.pop_front() {
            let derived = join_derive(oldest).await?;
            write_next(&storage, derived, &mut writing, &mut report).await?;
        }
        if let Some(previous) = writing.take() {
            record(&mut report, join_write(previous).await?);
        }
        Ok(())
    }
    .await;
    // Closing the channel stops the reader if the writer gave up, and
    // derivations still running are of no use then.
    rx.close();
    for d in deriving.drain(..) {
        d.abort();
    }
    // A batch still being written when the import failed counts if it
    // committed.
    if let Some(w) = writing.take() {
        if let Ok(done) = join_write(w).await {
            record(&mut report, done);
        }
    }
    let produced = producer
        .await
        .map_err(|e| CommandError::Failed(format!("reading failed: {e}")))?;
    if let Err(e) = outcome {
        tracing::error!(file = %path.display(), error = %e, imported = report.accounts, "XEP-0227 import failed");
        return Err(CommandError::Failed(format!(
            "{e}; {} accounts were imported before the failure",
            report.accounts
        )));
    }
    let produced = produced.map_err(|e| {
        CommandError::Failed(format!(
            "{e}; {} accounts were imported before the failure",
            report.accounts
        ))
    })?;
    // The reader's notes first: they are about the file, in its order.
    let mut full = produced;
    full.merge(report);
    let elapsed = started.elapsed();
    tracing::info!(
        file = %path.display(),
        accounts = full.accounts,
        skipped = full.skipped_total,
        elapsed_ms = elapsed.as_millis() as u64,
        "XEP-0227 import done"
    );
    Ok(import_result(&path, &full, elapsed))
}

type DeriveResult = Result<Vec<(ImportedAccount, Vec<Skip>)>, CommandError>;

async fn join_derive(
    handle: tokio::task::JoinHandle<DeriveResult>,
) -> Result<Vec<(ImportedAccount, Vec<Skip>)>, CommandError> {
    handle
        .await
        .map_err(|e| CommandError::Failed(format!("key derivation failed: {e}")))?
}

/// Waits for the batch being written, then starts writing `derived`.
async fn write_next(
    storage: &Arc<Storage>,
    derived: Vec<(ImportedAccount, Vec<Skip>)>,
    writing: &mut Option<tokio::task::JoinHandle<WriteResult>>,
    report: &mut Report,
) -> Result<(), CommandError> {
    let mut accounts = Vec::with_capacity(derived.len());
    for (account, notes) in derived {
        for n in notes {
            report.skip(n.jid, n.what, n.reason);
        }
        accounts.push(account);
    }
    if let Some(previous) = writing.take() {
        record(report, join_write(previous).await?);
    }
    let storage = storage.clone();
    *writing = Some(tokio::spawn(async move {
        let outcomes = storage.import_accounts(&accounts).await?;
        Ok((accounts, outcomes))
    }));
    Ok(())
}

async fn join_write(
    handle: tokio::task::JoinHandle<WriteResult>,
) -> Result<(Vec<ImportedAccount>, Vec<ImportOutcome>), CommandError> {
    handle
        .await
        .map_err(|e| CommandError::Failed(format!("writing failed: {e}")))?
        .map_err(|e| CommandError::Failed(format!("storage: {e}")))
}

fn import_result(path: &Path, r: &Report, elapsed: Duration) -> Value {
    let mut text = format!(
        "imported {} in {:.2} s\n  accounts          {}\n  roster items      {}\n  vCards            {}\n  private XML       {}\n  offline messages  {}\n",
        path.display(),
        elapsed.as_secs_f64(),
        r.accounts,
        r.roster_items,
        r.vcards,
        r.private,
        r.offline
    );
    if r.skipped_total > 0 {
        text.push_str(&format!("skipped {}:\n", r.skipped_total));
        for s in r.skipped.iter().take(MAX_LISTED_TEXT) {
            text.push_str(&format!("  {}: {}: {}\n", s.jid, s.what, s.reason));
        }
        let listed = r.skipped.len().min(MAX_LISTED_TEXT) as u64;
        if r.skipped_total > listed {
            text.push_str(&format!(
                "  ... and {} more (--json lists the first {MAX_LISTED})\n",
                r.skipped_total - listed
            ));
        }
    }
    let mut reasons: BTreeMap<&str, u64> = BTreeMap::new();
    for s in &r.skipped {
        *reasons.entry(s.reason.as_str()).or_default() += 1;
    }
    json!({
        "file": path.display().to_string(),
        "elapsed_ms": elapsed.as_millis() as u64,
        "imported": {
            "accounts": r.accounts,
            "roster_items": r.roster_items,
            "vcards": r.vcards,
            "private": r.private,
            "offline": r.offline,
        },
        "hosts": r.hosts.iter().map(|h| json!({
            "domain": h.domain,
            "imported": h.imported,
            "accounts": h.accounts,
            "reason": h.reason,
        })).collect::<Vec<_>>(),
        "skipped": r.skipped.iter().map(|s| json!({
            "jid": s.jid,
            "what": s.what,
            "reason": s.reason,
        })).collect::<Vec<_>>(),
        "skipped_total": r.skipped_total,
        "skipped_omitted": r.skipped_total.saturating_sub(r.skipped.len() as u64),
        "text": text,
    })
}

/// The server resolves paths itself, in its own working directory, which is
/// not the operator's: only absolute paths say the same thing to both.
fn absolute(raw: &str, what: &str) -> Result<PathBuf, CommandError> {
    let path = PathBuf::from(raw);
    if raw.is_empty() || !path.is_absolute() {
        return Err(CommandError::BadArgs(format!(
            "the {what} must be an absolute path ('{raw}' is not): the server opens it, \
             from its own working directory"
        )));
    }
    Ok(path)
}

/// What an export wrote for one domain.
#[derive(Debug, Default)]
struct ExportCounts {
    accounts: u64,
    roster_items: u64,
    vcards: u64,
    private: u64,
    offline: u64,
    skipped: Vec<Skip>,
}

/// `export`: one XEP-0227 file per served domain in `dir`.
pub async fn export(ctx: &AdminContext, dir: &str) -> Result<Value, CommandError> {
    let started = Instant::now();
    let dir = absolute(dir, "directory")?;
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| CommandError::Failed(format!("cannot create {}: {e}", dir.display())))?;
    let mut files = Vec::new();
    let mut text = String::new();
    let mut total = ExportCounts::default();
    for domain in &ctx.domains {
        // Domains come from the validated configuration; a separator or a
        // leading dot would still make a path that escapes `dir`.
        if domain.contains('/') || domain.starts_with('.') || domain.is_empty() {
            return Err(CommandError::Failed(format!(
                "cannot name a file after domain '{domain}'"
            )));
        }
        let path = dir.join(format!("{domain}.xml"));
        let counts = export_domain(&ctx.storage, domain, &path)
            .await
            .map_err(|e| CommandError::Failed(format!("{}: {e}", path.display())))?;
        text.push_str(&format!(
            "{}: {} accounts, {} roster items, {} vCards, {} private XML, {} offline messages\n",
            path.display(),
            counts.accounts,
            counts.roster_items,
            counts.vcards,
            counts.private,
            counts.offline
        ));
        for s in &counts.skipped {
            text.push_str(&format!("  skipped {}: {}: {}\n", s.jid, s.what, s.reason));
        }
        files.push(json!({
            "domain": domain,
            "path": path.display().to_string(),
            "accounts": counts.accounts,
            "roster_items": counts.roster_items,
            "vcards": counts.vcards,
            "private": counts.private,
            "offline": counts.offline,
            "skipped": counts.skipped.iter().map(|s| json!({
                "jid": s.jid, "what": s.what, "reason": s.reason,
            })).collect::<Vec<_>>(),
        }));
        total.accounts += counts.accounts;
    }
    let elapsed = started.elapsed();
    text.push_str(&format!(
        "exported {} accounts in {:.2} s\n",
        total.accounts,
        elapsed.as_secs_f64()
    ));
    tracing::info!(dir = %dir.display(), accounts = total.accounts, "XEP-0227 export done");
    Ok(json!({
        "dir": dir.display().to_string(),
        "files": files,
        "accounts": total.accounts,
        "elapsed_ms": elapsed.as_millis() as u64,
        "text": text,
    }))
}

/// Writes `path` for one domain: to a temporary file first, renamed into
/// place once complete, so a reader never sees half an export.
async fn export_domain(
    storage: &Storage,
    domain: &str,
    path: &Path,
) -> Result<ExportCounts, String> {
    let tmp = path.with_extension("xml.partial");
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        // SCRAM keys allow offline guessing and ServerKey impersonating the
        // server: the export is as secret as the database.
        .mode(0o600)
        .open(&tmp)
        .await
        .map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    let mut out = tokio::io::BufWriter::new(file);
    let result = write_domain(storage, domain, &mut out).await;
    let counts = match result {
        Ok(c) => c,
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
    };
    let io = |e: std::io::Error| format!("cannot write {}: {e}", tmp.display());
    out.flush().await.map_err(io)?;
    out.get_ref().sync_all().await.map_err(io)?;
    drop(out);
    tokio::fs::rename(&tmp, path)
        .await
        .map_err(|e| format!("cannot rename {} into place: {e}", tmp.display()))?;
    Ok(counts)
}

async fn write_domain(
    storage: &Storage,
    domain: &str,
    out: &mut tokio::io::BufWriter<tokio::fs::File>,
) -> Result<ExportCounts, String> {
    let io = |e: std::io::Error| format!("write failed: {e}");
    let db = |e: chorus_storage::StorageError| format!("storage: {e}");
    out.write_all(
        format!(
            "<?xml version='1.0' encoding='UTF-8'?>\n<server-data xmlns='{PIE_NS}'>\n<host jid='{}'>\n",
            escape_attr(domain)
        )
        .as_bytes(),
    )
    .await
    .map_err(io)?;
    let mut counts = ExportCounts::default();
    let accounts = storage.list_accounts(Some(domain)).await.map_err(db)?;
    let ctx = NsContext {
        default_ns: PIE_NS,
        prefixes: &[],
    };
    let mut buf = Vec::new();
    for (localpart, d) in accounts {
        let user = export_user(storage, &localpart, &d, &mut counts)
            .await
            .map_err(db)?;
        buf.clear();
        user.write_to(&mut buf, &ctx);
        buf.push(b'\n');
        out.write_all(&buf).await.map_err(io)?;
        counts.accounts += 1;
    }
    out.write_all(b"</host>\n</server-data>\n")
        .await
        .map_err(io)?;
    Ok(counts)
}

/// One account as a `<user/>` element.
async fn export_user(
    storage: &Storage,
    localpart: &str,
    domain: &str,
    counts: &mut ExportCounts,
) -> Result<Element, chorus_storage::StorageError> {
    let who = format!("{localpart}@{domain}");
    // Independent reads, so concurrent: each goes to its own pooled
    // connection, and an export of many accounts is latency-bound.
    let (sha1, sha256, roster, vcard, fragments, messages) = tokio::try_join!(
        storage.credentials(localpart, domain, ScramHash::Sha1.name()),
        storage.credentials(localpart, domain, ScramHash::Sha256.name()),
        storage.roster(localpart, domain),
        storage.vcard(localpart, domain),
        storage.private_fragments(localpart, domain),
        storage.offline_messages(localpart, domain, u32::MAX),
    )?;
    let mut user = Element::new("user", PIE_NS).with_attr("name", localpart);
    for c in [sha1, sha256].into_iter().flatten() {
        let text = |name: &str, value: String| Element::new(name, SCRAM_NS).with_text(value);
        user.push(
            Element::new("scram-credentials", SCRAM_NS)
                .with_attr("mechanism", format!("SCRAM-{}", c.hash))
                .with_child(text("iter-count", c.iterations.to_string()))
                .with_child(text("salt", B64.encode(&c.salt)))
                .with_child(text("server-key", B64.encode(&c.server_key)))
                .with_child(text("stored-key", B64.encode(&c.stored_key))),
        );
    }
    if !roster.items.is_empty() {
        let mut query = Element::new("query", ROSTER_NS);
        for item in roster.items {
            let mut el = Element::new("item", ROSTER_NS).with_attr("jid", item.jid);
            if let Some(name) = item.name {
                el.set_attr("name", name);
            }
            el.set_attr("subscription", item.subscription.as_str());
            if item.ask {
                el.set_attr("ask", "subscribe");
            }
            if item.approved {
                el.set_attr("approved", "true");
            }
            for g in item.groups {
                el.push(Element::new("group", ROSTER_NS).with_text(g));
            }
            query.push(el);
            counts.roster_items += 1;
        }
        user.push(query);
    }
    if let Some(xml) = vcard {
        match Element::from_xml(&xml) {
            Ok(card) => {
                user.push(card);
                counts.vcards += 1;
            }
            Err(e) => counts.skipped.push(Skip {
                jid: who.clone(),
                what: "vCard".into(),
                reason: format!("stored vCard does not parse: {e}"),
            }),
        }
    }
    if !fragments.is_empty() {
        let mut query = Element::new("query", PRIVATE_NS);
        for f in fragments {
            match Element::from_xml(&f.xml) {
                Ok(el) => {
                    query.push(el);
                    counts.private += 1;
                }
                Err(e) => counts.skipped.push(Skip {
                    jid: who.clone(),
                    what: format!("private XML {{{}}}{}", f.namespace, f.name),
                    reason: format!("stored fragment does not parse: {e}"),
                }),
            }
        }
        user.push(query);
    }
    if !messages.is_empty() {
        let mut list = Element::new("offline-messages", PIE_NS);
        for m in messages {
            match Element::from_xml(&m.stanza) {
                Ok(mut msg) => {
                    // The time it was stored, as ejabberd writes it; an
                    // import takes it back from here.
                    msg.push(
                        Element::new("delay", DELAY_NS)
                            .with_attr("from", domain)
                            .with_attr(
                                "stamp",
                                humantime::format_rfc3339_micros(m.stored_at).to_string(),
                            ),
                    );
                    list.push(msg);
                    counts.offline += 1;
                }
                Err(e) => counts.skipped.push(Skip {
                    jid: who.clone(),
                    what: format!("offline message {}", m.id),
                    reason: format!("stored stanza does not parse: {e}"),
                }),
            }
        }
        user.push(list);
    }
    Ok(user)
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

    #[test]
    fn users_become_accounts() {
        let user = Element::from_xml(
            "<user xmlns='urn:xmpp:pie:0' name='Alice' password='pw'>\
             <query xmlns='jabber:iq:roster'>\
               <item jid='Bob@Example.com' name='Bob' subscription='both' ask='subscribe' approved='true'>\
                 <group>A</group><group>A</group><group>B</group></item>\
               <item jid='x@y/z'/><item jid='bob@example.com'/><item jid='c@d' subscription='remove'/>\
             </query>\
             <vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>\
             <query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/><x xmlns='jabber:iq:last'/></query>\
             <offline-messages>\
               <message from='b@example.com' to='alice@localhost'><body>hi</body>\
                 <delay xmlns='urn:xmpp:delay' from='localhost' stamp='2024-01-02T03:04:05.678901Z'>Offline storage</delay>\
                 <delay xmlns='urn:xmpp:delay' from='muc.example' stamp='2020-01-01T00:00:00Z'/></message>\
               <message xmlns='jabber:client'><body>2</body>\
                 <x xmlns='jabber:x:delay' stamp='20240102T03:04:06'/></message>\
               <presence/>\
             </offline-messages>\
             <query xmlns='jabber:iq:privacy'/>\
             </user>",
        )
        .unwrap();
        let mut report = Report::default();
        let p = parse_user(&user, "localhost", &mut report).unwrap();
        let a = &p.account;
        assert_eq!(
            (a.localpart.as_str(), a.domain.as_str()),
            ("alice", "localhost")
        );
        assert_eq!(p.password.as_deref(), Some("pw"));
        assert_eq!(a.roster.len(), 1);
        assert_eq!(a.roster[0].jid, "bob@example.com");
        assert_eq!(a.roster[0].groups, vec!["A", "B"]);
        assert!(a.roster[0].ask && a.roster[0].approved);
        assert_eq!(a.roster[0].subscription, Subscription::Both);
        assert_eq!(
            a.vcard.as_deref(),
            Some("<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>")
        );
        assert_eq!(a.private.len(), 1);
        assert_eq!(a.offline.len(), 2);
        assert_eq!(
            a.offline[0].stored_at,
            humantime::parse_rfc3339("2024-01-02T03:04:05.678901Z").unwrap()
        );
        // Our delay is gone, a third party's stays; the stanza is a client one.
        assert_eq!(
            a.offline[0].stanza,
            "<message xmlns='jabber:client' from='b@example.com' to='alice@localhost'><body>hi</body>\
             <delay xmlns='urn:xmpp:delay' from='muc.example' stamp='2020-01-01T00:00:00Z'/></message>"
        );
        assert_eq!(
            a.offline[1].stored_at,
            humantime::parse_rfc3339("2024-01-02T03:04:06Z").unwrap()
        );
        assert_eq!(
            a.offline[1].stanza,
            "<message xmlns='jabber:client'><body>2</body></message>"
        );
        let reasons: Vec<String> = report
            .skipped
            .iter()
            .map(|s| format!("{}: {}", s.what, s.reason))
            .collect();
        assert_eq!(report.skipped_total, 6, "{reasons:?}");
        assert!(reasons
            .iter()
            .any(|r| r.starts_with("roster item x@y/z: not a bare JID")));
        assert!(reasons.iter().any(|r| r.contains("listed twice")));
        assert!(reasons.iter().any(|r| r.contains("subscription 'remove'")));
        assert!(reasons.iter().any(|r| r.contains("reserved namespace")));
        assert!(reasons.iter().any(|r| r.starts_with("offline <presence")));
        assert!(reasons.iter().any(|r| r.contains("jabber:iq:privacy")));

        let mut report = Report::default();
        let bad = Element::from_xml("<user xmlns='urn:xmpp:pie:0' name='a b'/>").unwrap();
        assert!(parse_user(&bad, "localhost", &mut report).is_none());
        assert!(report.skipped[0].reason.contains("invalid username"));

        let mut report = Report::default();
        let mongoose = Element::from_xml(
            "<user xmlns='urn:xmpp:pie:0' name='m' password='==SCRAM==,a,b,c,4096'/>",
        )
        .unwrap();
        let p = parse_user(&mongoose, "localhost", &mut report).unwrap();
        assert!(p.password.is_none());
        assert!(report.skipped[0].reason.contains("MongooseIM"));
    }

    #[test]
    fn scram_credentials_plain_and_as_ejabberd_writes_them() {
        let derived = ScramCredentials::derive("pencil", ScramHash::Sha1, 4096).unwrap();
        let el = |enc: &dyn Fn(&[u8]) -> String, mech: &str| {
            Element::from_xml(&format!(
                "<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='{mech}'>\
                 <iter-count>4096</iter-count><salt>{}</salt><server-key>{}</server-key>\
                 <stored-key>{}</stored-key></scram-credentials>",
                enc(&derived.salt),
                enc(&derived.server_key),
                enc(&derived.stored_key)
            ))
            .unwrap()
        };
        let once = |b: &[u8]| B64.encode(b);
        let twice = |b: &[u8]| B64.encode(B64.encode(b));
        for enc in [&once as &dyn Fn(&[u8]) -> String, &twice] {
            let c = scram_credentials(&el(enc, "SCRAM-SHA-1")).unwrap();
            assert_eq!(c.hash, "SHA-1");
            assert_eq!(c.salt, derived.salt);
            assert_eq!(c.stored_key, derived.stored_key);
            assert_eq!(c.server_key, derived.server_key);
            assert_eq!(c.iterations, 4096);
        }
        // SHA-1 keys under a SHA-256 label have the wrong length.
        assert!(scram_credentials(&el(&once, "SCRAM-SHA-256"))
            .unwrap_err()
            .contains("not 32 bytes"));
        assert!(scram_credentials(&el(&once, "SCRAM-SHA-512"))
            .unwrap_err()
            .contains("not offered"));
    }

    #[test]
    fn stamps() {
        let utc = humantime::parse_rfc3339("2024-01-02T03:04:05Z").unwrap();
        assert_eq!(parse_stamp("2024-01-02T03:04:05Z"), Some(utc));
        assert_eq!(parse_stamp("2024-01-02T05:04:05+02:00"), Some(utc));
        assert_eq!(parse_stamp("2024-01-02T01:04:05-02:00"), Some(utc));
        assert_eq!(parse_stamp("2024-01-02T03:04:05-00:00"), Some(utc));
        assert_eq!(parse_stamp("yesterday"), None);
        assert_eq!(parse_legacy_stamp("20240102T03:04:05"), Some(utc));
        assert_eq!(parse_legacy_stamp("2024-01-02"), None);
    }
}
