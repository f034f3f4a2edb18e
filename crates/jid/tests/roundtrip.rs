//! Property tests: a JID's `Display` form is a fixpoint of parsing.
//!
//! Every JID Chorus sends was parsed and normalized first, so the peer (and
//! Chorus itself, when the JID comes back) must read the very same JID out of
//! what was written; a normalization that is not idempotent would make a
//! session unreachable at its own address.

#![allow(clippy::unwrap_used)]

use chorus_jid::Jid;
use proptest::prelude::*;

fn local() -> impl Strategy<Value = String> {
    // Letters (with case to map), digits, the punctuation the profile keeps,
    // Latin-1 and Greek letters, a few CJK ideographs.
    "[a-zA-Z0-9._\\-\u{e0}-\u{f6}\u{c0}-\u{d6}\u{3b1}-\u{3c9}\u{391}-\u{3a1}\u{4e00}-\u{4e20}]{1,24}"
}

fn label() -> impl Strategy<Value = String> {
    prop_oneof![
        // Hyphens only inside and never doubled, so no accidental "xn--".
        "[a-zA-Z0-9]{1,10}(-[a-zA-Z0-9]{1,10})?",
        "[a-z\u{e0}-\u{f6}\u{c0}-\u{d6}]{1,12}",
    ]
}

fn domain() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(label(), 1..5).prop_map(|ls| ls.join(".")),
        (0u8..=255, 0u8..=255, 0u8..=255, 1u8..=254)
            .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        any::<[u16; 8]>().prop_map(|s| format!("[{}]", std::net::Ipv6Addr::from(s))),
    ]
}

fn resource() -> impl Strategy<Value = String> {
    // Any printable ASCII (including '@' and '/'), Latin-1 without the soft
    // hyphen (default-ignorable, refused) and the middle dot (CONTEXTO: only
    // between two 'l'), CJK.
    "[ -~\u{a0}-\u{ac}\u{ae}-\u{b6}\u{b8}-\u{ff}\u{4e00}-\u{4e20}]{1,24}"
}

fn valid_jid() -> impl Strategy<Value = String> {
    (
        prop::option::of(local()),
        domain(),
        prop::option::of(resource()),
        any::<bool>(),
    )
        .prop_map(|(l, d, r, dot)| {
            let mut s = String::new();
            if let Some(l) = l {
                s.push_str(&l);
                s.push('@');
            }
            s.push_str(&d);
            if dot {
                s.push('.');
            }
            if let Some(r) = r {
                s.push('/');
                s.push_str(&r);
            }
            s
        })
}

proptest! {
    #[test]
    fn display_of_a_valid_jid_parses_to_the_same_jid(s in valid_jid()) {
        let jid: Jid = s.parse().unwrap();
        let shown = jid.to_string();
        let again: Jid = shown.parse().unwrap();
        prop_assert_eq!(&again, &jid);
        prop_assert_eq!(again.to_string(), shown);
        prop_assert_eq!(again.node(), jid.node());
        prop_assert_eq!(again.domain(), jid.domain());
        prop_assert_eq!(again.resource(), jid.resource());
    }

    /// Arbitrary text: whatever parses must round-trip too.
    #[test]
    fn anything_that_parses_round_trips(s in "[a-zA-Z@/.\\[\\]:\u{a0}-\u{2ff}\u{ff01}-\u{ff5e}\u{300}-\u{36f}]{0,30}") {
        if let Ok(jid) = s.parse::<Jid>() {
            let shown = jid.to_string();
            let again: Jid = shown.parse().unwrap();
            prop_assert_eq!(&again, &jid);
            prop_assert_eq!(again.to_string(), shown);
        }
    }
}
