//! The serializer under arbitrary element trees: any tree the parser could
//! have produced (names that are XML names, any namespace, any attribute
//! value or text made of XML characters) is written, in stream context and
//! standalone, to bytes the parser accepts and that re-parse to an equal tree.
#![no_main]

use chorus_fuzz::check_roundtrip;
use chorus_xml::{Element, STREAM_NS, XML_NS};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

const NAMES: &[&str] = &[
    "message", "iq", "presence", "body", "x", "a", "n\u{e9}m", "_x-y.z",
];
const NAMESPACES: &[&str] = &[
    "",
    "jabber:client",
    "jabber:server",
    STREAM_NS,
    "urn:ietf:params:xml:ns:xmpp-stanzas",
    "urn:p",
];

/// XML 1.0 `Char`.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Arbitrary character data: any string, minus what XML cannot carry.
fn chars(u: &mut Unstructured<'_>) -> Result<String> {
    let s: String = u.arbitrary()?;
    Ok(s.chars().filter(|&c| is_xml_char(c)).collect())
}

/// An XML name without colons: from the list, or ASCII letters and digits.
fn name(u: &mut Unstructured<'_>) -> Result<String> {
    if u.ratio(3, 4)? {
        return Ok((*u.choose(NAMES)?).to_owned());
    }
    let len = u.int_in_range(1..=12)?;
    let mut s = String::new();
    for i in 0..len {
        let set: &[u8] = if i == 0 {
            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
        } else {
            b"abcdefghijklmnopqrstuvwxyz0123456789-._"
        };
        s.push(char::from(*u.choose(set)?));
    }
    Ok(s)
}

/// A namespace: a common one, or any non-empty string of XML characters.
fn namespace(u: &mut Unstructured<'_>) -> Result<String> {
    if u.ratio(4, 5)? {
        return Ok((*u.choose(NAMESPACES)?).to_owned());
    }
    let s = chars(u)?;
    Ok(if s.is_empty() { "urn:e".to_owned() } else { s })
}

fn element(u: &mut Unstructured<'_>, depth: usize) -> Result<Element> {
    let mut el = Element::new(name(u)?, namespace(u)?);
    for _ in 0..u.int_in_range(0..=4)? {
        let local = name(u)?;
        let key = match u.int_in_range(0..=5)? {
            0 => format!("xml:{local}"),
            1 => {
                // The parser never produces an empty or reserved attribute
                // namespace: those are written `local` or `xml:local`.
                let ns = namespace(u)?;
                if ns.is_empty() || ns == XML_NS || ns == "http://www.w3.org/2000/xmlns/" {
                    local
                } else {
                    format!("{{{ns}}}{local}")
                }
            }
            _ => local,
        };
        if el.attr(&key).is_none() {
            el.set_attr(key, chars(u)?);
        }
    }
    for _ in 0..u.int_in_range(0..=4)? {
        if depth < 6 && u.ratio(1, 2)? {
            el.push(element(u, depth + 1)?);
        } else {
            el.push_text(chars(u)?);
        }
    }
    Ok(el)
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    if let Ok(el) = element(&mut u, 1) {
        check_roundtrip(&el);
    }
});
