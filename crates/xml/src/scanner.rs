//! The first of the parser's two passes: a resumable byte scanner that finds
//! where each top-level unit (XML declaration, stream header, stanza, stream
//! end) begins and ends, and enforces every limit while bytes arrive.
//!
//! quick-xml is a pull parser over complete input; fed a partial tag it would
//! have to re-read it from the start each time more bytes arrive, which is
//! quadratic for a peer that trickles a large tag one byte at a time. The
//! scanner keeps its state between chunks instead, so each byte is looked at
//! once, and only a complete unit is handed to quick-xml (second pass, in
//! `parser.rs`) for well-formedness, entities and namespaces.
//!
//! Rejections decided here, as early as the offending byte:
//! - DTDs, comments, processing instructions other than the leading XML
//!   declaration: `restricted-xml` (RFC 6120 §11.1).
//! - Control characters other than TAB, LF, CR, and markup that is not XML:
//!   `not-well-formed`; UTF-16 input: `unsupported-encoding`.
//! - Unit size, nesting depth, attributes and namespace declarations per
//!   element, name length: `policy-violation`.

use crate::error::{StreamErrorKind, XmlError};
use crate::parser::Limits;

/// A complete top-level unit, as a byte range of the parser's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unit {
    /// `<?xml ...?>`, only ever at the very start of a stream.
    Decl(usize, usize),
    /// The stream header's start tag.
    Header(usize, usize),
    /// A complete element at stream level.
    Stanza(usize, usize),
    /// The stream's end tag.
    StreamEnd(usize, usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Character data, or whitespace between top-level units.
    Text,
    /// Just after `<`.
    Lt,
    /// In the element name of a start tag.
    StartName,
    /// After the element name of a start tag, up to `>`.
    TagBody,
    /// In an end tag, up to `>`.
    EndTag,
    /// After `<!`: bytes matched so far of `[CDATA[`.
    Bang(u8),
    /// Inside a CDATA section: how many `]` were just seen.
    CData(u8),
    /// Inside `<?...`: whether the last byte was `?`.
    Pi(bool),
}

const CDATA_OPEN: &[u8] = b"[CDATA[";

pub(crate) struct Scanner {
    state: State,
    /// Next byte of the buffer to look at.
    pos: usize,
    /// Element depth: 0 before the stream header, 1 inside the stream, 2+ inside a stanza.
    depth: usize,
    /// Where the unit being scanned began, if one is under way.
    unit_start: Option<usize>,
    /// Where the current tag's `<` is.
    tag_start: usize,
    /// Quote byte when inside an attribute value, else 0.
    quote: u8,
    /// Inside an attribute name, and where it began.
    in_name: bool,
    name_start: usize,
    /// Length of the name token being read.
    name_len: usize,
    attrs: usize,
    ns_decls: usize,
    /// The last non-whitespace byte of a tag body was `/`.
    slash: bool,
    /// Nothing but a byte order mark has been seen since the last reset, so an
    /// XML declaration is still allowed.
    at_start: bool,
}

fn err(kind: StreamErrorKind, detail: &str) -> XmlError {
    XmlError::new(kind, detail)
}

#[inline]
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// XML 1.0 `Char` excludes every C0 control but TAB, LF and CR. Spans are
/// checked with a fold rather than `any`: without the early exit the
/// compiler vectorizes the loop, and valid input reads every byte anyway.
#[inline]
fn is_forbidden_ctrl(b: u8) -> bool {
    b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')
}

#[inline]
fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':' || b >= 0x80
}

/// `is_name_char` for every byte, so that a name is skipped with one table
/// lookup per byte rather than a trip through the state machine.
static NAME_CHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'_' | b':' | b'-' | b'.') || c >= 0x80;
        b += 1;
    }
    t
};

#[inline]
fn is_name_char(b: u8) -> bool {
    NAME_CHAR[b as usize]
}

/// How many name bytes `buf` starts with.
#[inline]
fn name_run(buf: &[u8]) -> usize {
    buf.iter().take_while(|&&b| is_name_char(b)).count()
}

impl Scanner {
    pub(crate) fn new() -> Self {
        Scanner {
            state: State::Text,
            pos: 0,
            depth: 0,
            unit_start: None,
            tag_start: 0,
            quote: 0,
            in_name: false,
            name_start: 0,
            name_len: 0,
            attrs: 0,
            ns_decls: 0,
            slash: false,
            at_start: true,
        }
    }

    /// The lowest buffer offset still needed: bytes before it may be discarded.
    pub(crate) fn keep_from(&self) -> usize {
        match (self.unit_start, self.state) {
            (Some(start), _) => start,
            (None, State::Text) => self.pos,
            // A tag whose kind is not decided yet: keep its '<'.
            (None, _) => self.tag_start,
        }
    }

    /// Moves every stored offset down after the parser dropped `n` leading bytes.
    pub(crate) fn shift(&mut self, n: usize) {
        self.pos -= n;
        if let Some(s) = self.unit_start.as_mut() {
            *s -= n;
        }
        self.tag_start = self.tag_start.saturating_sub(n);
        self.name_start = self.name_start.saturating_sub(n);
    }

    /// Scans from where the last call stopped. Returns the next complete unit,
    /// or `None` when more bytes are needed.
    pub(crate) fn scan(
        &mut self,
        buf: &[u8],
        limits: &Limits,
        max_unit: usize,
    ) -> Result<Option<Unit>, XmlError> {
        while self.pos < buf.len() {
            if let Some(start) = self.unit_start {
                if self.pos - start >= max_unit {
                    return Err(err(
                        StreamErrorKind::PolicyViolation,
                        "stanza exceeds the size limit",
                    ));
                }
            }
            let b = buf[self.pos];
            match self.state {
                State::Text => {
                    if self.depth >= 2 {
                        // Character data inside a stanza: skip to the next '<',
                        // checking only for forbidden control bytes.
                        let end = match self.unit_start {
                            Some(s) => buf.len().min(s + max_unit),
                            None => buf.len(),
                        };
                        let span = &buf[self.pos..end];
                        let lt = memchr::memchr(b'<', span).unwrap_or(span.len());
                        if span[..lt]
                            .iter()
                            .fold(false, |bad, &c| bad | is_forbidden_ctrl(c))
                        {
                            return Err(err(
                                StreamErrorKind::NotWellFormed,
                                "forbidden control character",
                            ));
                        }
                        self.pos += lt;
                        if lt < span.len() {
                            self.open_tag();
                            self.pos += 1;
                        }
                        continue;
                    }
                    if b == b'<' {
                        self.open_tag();
                    } else if self.at_start && self.depth == 0 && (b == 0xFE || b == 0xFF) {
                        return Err(err(
                            StreamErrorKind::UnsupportedEncoding,
                            "UTF-16 byte order mark; only UTF-8 is allowed",
                        ));
                    } else if self.at_start && self.depth == 0 && b == 0xEF {
                        // A UTF-8 byte order mark is harmless: skip it whole.
                        if buf.len() < self.pos + 3 {
                            return Ok(None);
                        }
                        if &buf[self.pos..self.pos + 3] != b"\xEF\xBB\xBF" {
                            return Err(err(
                                StreamErrorKind::NotWellFormed,
                                "text before the stream header",
                            ));
                        }
                        self.pos += 2;
                    } else if self.at_start && self.depth == 0 && b == 0 {
                        return Err(err(
                            StreamErrorKind::UnsupportedEncoding,
                            "NUL byte at stream start (UTF-16?); only UTF-8 is allowed",
                        ));
                    } else if !is_ws(b) {
                        return Err(if self.depth == 0 {
                            err(
                                StreamErrorKind::NotWellFormed,
                                "text before the stream header",
                            )
                        } else if is_forbidden_ctrl(b) {
                            err(
                                StreamErrorKind::NotWellFormed,
                                "forbidden control character",
                            )
                        } else {
                            err(StreamErrorKind::BadFormat, "character data at stream level")
                        });
                    } else {
                        self.at_start = false;
                    }
                }
                State::Lt => {
                    let first_tag = self.at_start;
                    self.at_start = false;
                    match b {
                        b'/' => {
                            if self.depth == 0 {
                                return Err(err(
                                    StreamErrorKind::NotWellFormed,
                                    "end tag before the stream header",
                                ));
                            }
                            if self.depth == 1 {
                                self.unit_start = Some(self.tag_start);
                            }
                            self.name_len = 0;
                            self.state = State::EndTag;
                        }
                        b'?' => {
                            if !first_tag {
                                return Err(err(
                                    StreamErrorKind::RestrictedXml,
                                    "processing instructions are not allowed",
                                ));
                            }
                            self.unit_start = Some(self.tag_start);
                            self.state = State::Pi(false);
                        }
                        b'!' => self.state = State::Bang(0),
                        0 if first_tag => {
                            return Err(err(
                                StreamErrorKind::UnsupportedEncoding,
                                "UTF-16 input; only UTF-8 is allowed",
                            ));
                        }
                        b if is_name_start(b) => {
                            if self.depth <= 1 {
                                self.unit_start = Some(self.tag_start);
                            }
                            self.name_len = 1;
                            self.attrs = 0;
                            self.ns_decls = 0;
                            self.quote = 0;
                            self.in_name = false;
                            self.slash = false;
                            self.state = State::StartName;
                        }
                        _ => {
                            return Err(err(
                                StreamErrorKind::NotWellFormed,
                                "invalid character after '<'",
                            ));
                        }
                    }
                }
                State::StartName => {
                    let run = name_run(&buf[self.pos..]);
                    if run > 0 {
                        self.bump_name(run, limits)?;
                        self.pos += run;
                        continue;
                    }
                    if is_ws(b) {
                        self.state = State::TagBody;
                    } else if b == b'>' {
                        self.pos += 1;
                        if let Some(unit) = self.close_start_tag(limits)? {
                            return Ok(Some(unit));
                        }
                        continue;
                    } else if b == b'/' {
                        self.slash = true;
                        self.state = State::TagBody;
                    } else {
                        return Err(err(
                            StreamErrorKind::NotWellFormed,
                            "invalid character in element name",
                        ));
                    }
                }
                State::TagBody => {
                    if self.quote != 0 {
                        // Attribute values: jump to the closing quote.
                        let span = &buf[self.pos..];
                        let end = match self.unit_start {
                            Some(s) => span.len().min((s + max_unit).saturating_sub(self.pos)),
                            None => span.len(),
                        };
                        let span = &span[..end];
                        let q = memchr::memchr2(self.quote, b'<', span).unwrap_or(span.len());
                        if span[..q]
                            .iter()
                            .fold(false, |bad, &c| bad | is_forbidden_ctrl(c))
                        {
                            return Err(err(
                                StreamErrorKind::NotWellFormed,
                                "forbidden control character",
                            ));
                        }
                        self.pos += q;
                        if q < span.len() {
                            if span[q] == b'<' {
                                return Err(err(
                                    StreamErrorKind::NotWellFormed,
                                    "'<' in attribute value",
                                ));
                            }
                            self.quote = 0;
                            self.pos += 1;
                        }
                        continue;
                    }
                    match b {
                        b'>' => {
                            self.pos += 1;
                            if let Some(unit) = self.close_start_tag(limits)? {
                                return Ok(Some(unit));
                            }
                            continue;
                        }
                        b'"' | b'\'' => {
                            self.quote = b;
                            self.in_name = false;
                            self.slash = false;
                        }
                        b'=' => {
                            self.in_name = false;
                            self.slash = false;
                            self.attrs += 1;
                            if self.attrs > limits.max_attrs {
                                return Err(err(
                                    StreamErrorKind::PolicyViolation,
                                    "too many attributes",
                                ));
                            }
                            let name = &buf[self.name_start..self.pos];
                            let name = match name.iter().rposition(|&c| !is_ws(c)) {
                                Some(last) => &name[..=last],
                                None => name,
                            };
                            if name == b"xmlns" || name.starts_with(b"xmlns:") {
                                self.ns_decls += 1;
                                if self.ns_decls > limits.max_ns_decls {
                                    return Err(err(
                                        StreamErrorKind::PolicyViolation,
                                        "too many namespace declarations",
                                    ));
                                }
                            }
                        }
                        b'/' => self.slash = true,
                        b if is_ws(b) => self.in_name = false,
                        b if is_name_char(b) => {
                            self.slash = false;
                            if !self.in_name {
                                self.in_name = true;
                                self.name_start = self.pos;
                                self.name_len = 0;
                            }
                            let run = name_run(&buf[self.pos..]);
                            self.bump_name(run, limits)?;
                            self.pos += run;
                            continue;
                        }
                        _ => {
                            return Err(err(
                                StreamErrorKind::NotWellFormed,
                                "invalid character in tag",
                            ));
                        }
                    }
                }
                State::EndTag => {
                    if b == b'>' {
                        self.pos += 1;
                        self.state = State::Text;
                        self.depth -= 1;
                        match self.depth {
                            0 => {
                                let start = self.unit_start.take().unwrap_or(self.tag_start);
                                return Ok(Some(Unit::StreamEnd(start, self.pos)));
                            }
                            1 => {
                                let start = self.unit_start.take().unwrap_or(self.tag_start);
                                return Ok(Some(Unit::Stanza(start, self.pos)));
                            }
                            _ => continue,
                        }
                    } else if is_name_char(b) {
                        let run = name_run(&buf[self.pos..]);
                        self.bump_name(run, limits)?;
                        self.pos += run;
                        continue;
                    } else if !is_ws(b) {
                        return Err(err(
                            StreamErrorKind::NotWellFormed,
                            "invalid character in end tag",
                        ));
                    }
                }
                State::Bang(n) => {
                    let n = n as usize;
                    if n == 0 && b == b'-' {
                        return Err(err(
                            StreamErrorKind::RestrictedXml,
                            "comments are not allowed",
                        ));
                    }
                    if n == 0 && b != b'[' {
                        return Err(err(
                            StreamErrorKind::RestrictedXml,
                            "document type declarations are not allowed",
                        ));
                    }
                    if b != CDATA_OPEN[n] {
                        return Err(err(
                            StreamErrorKind::NotWellFormed,
                            "malformed CDATA section",
                        ));
                    }
                    if n + 1 == CDATA_OPEN.len() {
                        if self.depth < 2 {
                            return Err(err(StreamErrorKind::BadFormat, "CDATA at stream level"));
                        }
                        self.state = State::CData(0);
                    } else {
                        self.state = State::Bang((n + 1) as u8);
                    }
                }
                State::CData(closing) => {
                    if is_forbidden_ctrl(b) {
                        return Err(err(
                            StreamErrorKind::NotWellFormed,
                            "forbidden control character",
                        ));
                    }
                    self.state = match b {
                        b']' => State::CData((closing + 1).min(2)),
                        b'>' if closing == 2 => State::Text,
                        _ => State::CData(0),
                    };
                }
                State::Pi(question) => {
                    if is_forbidden_ctrl(b) {
                        return Err(err(
                            StreamErrorKind::NotWellFormed,
                            "forbidden control character",
                        ));
                    }
                    if b == b'>' && question {
                        self.pos += 1;
                        self.state = State::Text;
                        let start = self.unit_start.take().unwrap_or(self.tag_start);
                        return Ok(Some(Unit::Decl(start, self.pos)));
                    }
                    self.state = State::Pi(b == b'?');
                }
            }
            self.pos += 1;
        }
        Ok(None)
    }

    /// Marks `pos` (a '<') as the start of a tag; the caller steps past it.
    fn open_tag(&mut self) {
        self.tag_start = self.pos;
        self.state = State::Lt;
    }

    fn bump_name(&mut self, n: usize, limits: &Limits) -> Result<(), XmlError> {
        self.name_len += n;
        if self.name_len > limits.max_name_len {
            return Err(err(StreamErrorKind::PolicyViolation, "name too long"));
        }
        Ok(())
    }

    /// Called with `pos` just past the `>` of a start tag.
    fn close_start_tag(&mut self, limits: &Limits) -> Result<Option<Unit>, XmlError> {
        self.state = State::Text;
        let empty = self.slash;
        self.slash = false;
        if empty {
            return Ok(match self.depth {
                0 => {
                    return Err(err(StreamErrorKind::BadFormat, "empty stream header"));
                }
                1 => {
                    let start = self.unit_start.take().unwrap_or(self.tag_start);
                    Some(Unit::Stanza(start, self.pos))
                }
                _ => None,
            });
        }
        self.depth += 1;
        // The stream element itself is depth 1; the limit is on stanza nesting.
        if self.depth - 1 > limits.max_depth {
            return Err(err(
                StreamErrorKind::PolicyViolation,
                "elements nested too deeply",
            ));
        }
        if self.depth == 1 {
            let start = self.unit_start.take().unwrap_or(self.tag_start);
            return Ok(Some(Unit::Header(start, self.pos)));
        }
        Ok(None)
    }
}
