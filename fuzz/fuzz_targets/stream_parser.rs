//! The stream parser under arbitrary bytes after a valid stream header.
//!
//! Input: one control byte, then the payload. The control byte's low 7 bits
//! plus one are the chunk size of the first pass; its high bit makes the
//! stream authenticate (`set_authenticated(true)`) right after the header.
//!
//! Passes over `HEADER ++ payload`: fed in chunks, fed whole to a fresh
//! parser, and fed whole again to the first parser after `reset()`. Asserts:
//! no panic; the memory bound (see `chorus_fuzz::run`); the three passes agree
//! (chunking and reset change nothing); every element re-serializes to bytes
//! the parser accepts and re-parses to an equal element.
#![no_main]

use chorus_fuzz::{check_roundtrip, limits, run, HEADER};
use chorus_xml::{StreamEvent, StreamParser};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&control, payload)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(control & 0x7F) + 1;
    let auth = control & 0x80 != 0;
    let mut input = HEADER.to_vec();
    input.extend_from_slice(payload);
    let len = input.len();

    let cuts: Vec<usize> = (1..=len.div_ceil(chunk))
        .map(|k| (k * chunk).min(len))
        .collect();
    let mut chunked = StreamParser::new(limits());
    let a = run(&mut chunked, &input, &cuts, HEADER.len(), auth);
    assert!(
        matches!(a.events.first(), Some(StreamEvent::Header(_))),
        "the valid header did not come first: {a:?}"
    );

    let mut whole = StreamParser::new(limits());
    let b = run(&mut whole, &input, &[len], HEADER.len(), auth);
    assert_eq!(a, b, "chunking changed the outcome");

    chunked.reset();
    assert_eq!(chunked.buffered(), 0);
    assert!(chunked.header().is_none());
    let c = run(&mut chunked, &input, &[len], HEADER.len(), auth);
    assert_eq!(c, b, "a reset parser differs from a fresh one");

    for ev in &a.events {
        if let StreamEvent::Element(el) = ev {
            check_roundtrip(el);
        }
    }
});
