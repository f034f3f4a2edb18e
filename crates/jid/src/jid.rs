//! The JID types: [`Jid`] (any form), [`BareJid`] (never a resource) and
//! [`FullJid`] (always a resource).
//!
//! A JID is stored as its one normalized string plus the offsets of its two
//! separators, as xmpp-rs does: equality, hashing and ordering are string
//! operations, `Display` is a copy, and the accessors are slices. The newtypes
//! make the form a type, so a routing table keyed by `FullJid` cannot be handed
//! a bare JID by mistake.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::num::NonZeroU16;
use std::str::FromStr;

use crate::error::JidError;
use crate::parts;

/// An XMPP address, `[localpart@]domainpart[/resourcepart]`, in normalized form.
#[derive(Clone)]
pub struct Jid {
    /// The whole JID, each part normalized: what `Display` writes and what
    /// `Eq`, `Hash` and `Ord` compare. The separators are found by `at` and
    /// `slash`, never by searching, because a resource may contain '@' and '/'.
    normalized: String,
    /// Byte offset of the '@' that ends the localpart, when there is one. Never
    /// zero, since a localpart is never empty; three parts of at most 1023
    /// bytes each always fit in a `u16`.
    at: Option<NonZeroU16>,
    /// Byte offset of the '/' that starts the resourcepart, when there is one.
    slash: Option<NonZeroU16>,
}

impl Jid {
    /// Builds a JID from its parts, normalizing each (RFC 7622 §3.2-3.4).
    /// `Some("")` for the localpart or the resourcepart is an error, as it is
    /// in the string form (`@example.com`, `example.com/`).
    pub fn new(node: Option<&str>, domain: &str, resource: Option<&str>) -> Result<Jid, JidError> {
        let node = node.map(parts::local).transpose()?;
        let domain = parts::domain(domain)?;
        let resource = resource.map(parts::resource).transpose()?;
        Jid::assemble(node.as_deref(), &domain, resource.as_deref())
    }

    /// The JID of a server or a component: a domainpart alone.
    pub fn domain_jid(domain: &str) -> Result<Jid, JidError> {
        Jid::new(None, domain, None)
    }

    /// Joins parts that are already normalized.
    fn assemble(node: Option<&str>, domain: &str, resource: Option<&str>) -> Result<Jid, JidError> {
        let len =
            node.map_or(0, |n| n.len() + 1) + domain.len() + resource.map_or(0, |r| r.len() + 1);
        let mut normalized = String::with_capacity(len);
        let mut at = None;
        if let Some(n) = node {
            normalized.push_str(n);
            // Cannot fail for a part of at most 1023 bytes; kept as an error
            // rather than a panic so that no input can crash a connection.
            at = Some(offset(normalized.len()).ok_or(JidError::LocalTooLong)?);
            normalized.push('@');
        }
        normalized.push_str(domain);
        let mut slash = None;
        if let Some(r) = resource {
            slash = Some(offset(normalized.len()).ok_or(JidError::DomainTooLong)?);
            normalized.push('/');
            normalized.push_str(r);
        }
        Ok(Jid {
            normalized,
            at,
            slash,
        })
    }

    /// Parses a JID as RFC 7622 §3.1 says: the resourcepart is everything after
    /// the first '/', and the localpart everything before the first '@' that
    /// comes before it. Separators are found before any normalization, so a
    /// code point that maps to '@' or '/' never splits a part.
    fn parse(s: &str) -> Result<Jid, JidError> {
        let (before_slash, resource) = match s.split_once('/') {
            Some((b, r)) => (b, Some(r)),
            None => (s, None),
        };
        let (node, domain) = match before_slash.split_once('@') {
            Some((n, d)) => (Some(n), d),
            None => (None, before_slash),
        };
        Jid::new(node, domain, resource)
    }

    /// The localpart, if any.
    pub fn node(&self) -> Option<&str> {
        self.at.map(|at| &self.normalized[..usize::from(at.get())])
    }

    /// The domainpart: always present.
    pub fn domain(&self) -> &str {
        let start = self.at.map_or(0, |at| usize::from(at.get()) + 1);
        let end = self
            .slash
            .map_or(self.normalized.len(), |s| usize::from(s.get()));
        &self.normalized[start..end]
    }

    /// The resourcepart, if any.
    pub fn resource(&self) -> Option<&str> {
        self.slash
            .map(|s| &self.normalized[usize::from(s.get()) + 1..])
    }

    /// True when there is no resourcepart.
    pub fn is_bare(&self) -> bool {
        self.slash.is_none()
    }

    /// True when there is a resourcepart.
    pub fn is_full(&self) -> bool {
        self.slash.is_some()
    }

    /// This JID without its resourcepart.
    pub fn bare(&self) -> BareJid {
        match self.slash {
            None => BareJid(self.clone()),
            Some(s) => BareJid(Jid {
                normalized: self.normalized[..usize::from(s.get())].to_owned(),
                at: self.at,
                slash: None,
            }),
        }
    }

    /// Like [`Jid::bare`], reusing the allocation.
    pub fn into_bare(mut self) -> BareJid {
        if let Some(s) = self.slash.take() {
            self.normalized.truncate(usize::from(s.get()));
        }
        BareJid(self)
    }

    /// The bare part of this JID with `resource` (normalized) as its resourcepart.
    pub fn with_resource(&self, resource: &str) -> Result<FullJid, JidError> {
        let resource = parts::resource(resource)?;
        let bare = self.bare();
        Jid::assemble(bare.node(), bare.domain(), Some(&resource)).map(FullJid)
    }

    /// The normalized string form, as `Display` writes it.
    pub fn as_str(&self) -> &str {
        &self.normalized
    }
}

fn offset(n: usize) -> Option<NonZeroU16> {
    u16::try_from(n).ok().and_then(NonZeroU16::new)
}

impl FromStr for Jid {
    type Err = JidError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Jid::parse(s)
    }
}

impl fmt::Display for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.normalized)
    }
}

impl fmt::Debug for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Jid").field(&self.normalized).finish()
    }
}

// The offsets are a function of the normalized string (a localpart and a
// domainpart contain neither '@' nor '/'), so comparing the string alone is
// both correct and cheapest.
impl PartialEq for Jid {
    fn eq(&self, other: &Self) -> bool {
        self.normalized == other.normalized
    }
}

impl Eq for Jid {}

impl Hash for Jid {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.normalized.hash(state);
    }
}

impl PartialOrd for Jid {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Jid {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.normalized.cmp(&other.normalized)
    }
}

impl AsRef<str> for Jid {
    fn as_ref(&self) -> &str {
        &self.normalized
    }
}

/// A JID without a resourcepart: an account (`juliet@example.com`) or a
/// server (`example.com`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BareJid(Jid);

impl BareJid {
    /// Builds a bare JID from its parts, normalizing each.
    pub fn new(node: Option<&str>, domain: &str) -> Result<BareJid, JidError> {
        Jid::new(node, domain, None).map(BareJid)
    }

    pub fn node(&self) -> Option<&str> {
        self.0.node()
    }

    pub fn domain(&self) -> &str {
        self.0.domain()
    }

    /// The full JID of a session of this account.
    pub fn with_resource(&self, resource: &str) -> Result<FullJid, JidError> {
        self.0.with_resource(resource)
    }

    pub fn as_jid(&self) -> &Jid {
        &self.0
    }

    pub fn into_jid(self) -> Jid {
        self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl TryFrom<Jid> for BareJid {
    type Error = JidError;

    /// Fails with [`JidError::NotBare`] rather than dropping the resource:
    /// use [`Jid::into_bare`] for that.
    fn try_from(jid: Jid) -> Result<Self, Self::Error> {
        if jid.is_bare() {
            Ok(BareJid(jid))
        } else {
            Err(JidError::NotBare)
        }
    }
}

impl FromStr for BareJid {
    type Err = JidError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BareJid::try_from(Jid::parse(s)?)
    }
}

impl From<BareJid> for Jid {
    fn from(b: BareJid) -> Jid {
        b.0
    }
}

impl AsRef<Jid> for BareJid {
    fn as_ref(&self) -> &Jid {
        &self.0
    }
}

impl PartialEq<Jid> for BareJid {
    fn eq(&self, other: &Jid) -> bool {
        self.0 == *other
    }
}

impl PartialEq<BareJid> for Jid {
    fn eq(&self, other: &BareJid) -> bool {
        *self == other.0
    }
}

impl fmt::Display for BareJid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for BareJid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BareJid").field(&self.as_str()).finish()
    }
}

/// A JID with a resourcepart: one session of an account, or one occupant.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FullJid(Jid);

impl FullJid {
    /// Builds a full JID from its parts, normalizing each.
    pub fn new(node: Option<&str>, domain: &str, resource: &str) -> Result<FullJid, JidError> {
        Jid::new(node, domain, Some(resource)).map(FullJid)
    }

    pub fn node(&self) -> Option<&str> {
        self.0.node()
    }

    pub fn domain(&self) -> &str {
        self.0.domain()
    }

    /// The resourcepart, which a full JID always has.
    pub fn resource(&self) -> &str {
        // The constructors guarantee a resource; "" is unreachable.
        self.0.resource().unwrap_or_default()
    }

    pub fn bare(&self) -> BareJid {
        self.0.bare()
    }

    pub fn into_bare(self) -> BareJid {
        self.0.into_bare()
    }

    pub fn as_jid(&self) -> &Jid {
        &self.0
    }

    pub fn into_jid(self) -> Jid {
        self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl TryFrom<Jid> for FullJid {
    type Error = JidError;

    fn try_from(jid: Jid) -> Result<Self, Self::Error> {
        if jid.is_full() {
            Ok(FullJid(jid))
        } else {
            Err(JidError::NotFull)
        }
    }
}

impl FromStr for FullJid {
    type Err = JidError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FullJid::try_from(Jid::parse(s)?)
    }
}

impl From<FullJid> for Jid {
    fn from(f: FullJid) -> Jid {
        f.0
    }
}

impl AsRef<Jid> for FullJid {
    fn as_ref(&self) -> &Jid {
        &self.0
    }
}

impl PartialEq<Jid> for FullJid {
    fn eq(&self, other: &Jid) -> bool {
        self.0 == *other
    }
}

impl PartialEq<FullJid> for Jid {
    fn eq(&self, other: &FullJid) -> bool {
        *self == other.0
    }
}

impl fmt::Display for FullJid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for FullJid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("FullJid").field(&self.as_str()).finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::error::PrecisError;

    fn jid(s: &str) -> Jid {
        s.parse().unwrap()
    }

    fn parts(s: &str) -> (Option<String>, String, Option<String>) {
        let j = jid(s);
        (
            j.node().map(str::to_owned),
            j.domain().to_owned(),
            j.resource().map(str::to_owned),
        )
    }

    fn owned(
        n: Option<&str>,
        d: &str,
        r: Option<&str>,
    ) -> (Option<String>, String, Option<String>) {
        (n.map(str::to_owned), d.to_owned(), r.map(str::to_owned))
    }

    /// RFC 7622 §3.5.1, every example, with the parts each must yield.
    #[test]
    fn rfc7622_valid_examples() {
        let cases: &[(&str, Option<&str>, &str, Option<&str>)] = &[
            ("juliet@example.com", Some("juliet"), "example.com", None),
            (
                "juliet@example.com/foo",
                Some("juliet"),
                "example.com",
                Some("foo"),
            ),
            (
                "juliet@example.com/foo bar",
                Some("juliet"),
                "example.com",
                Some("foo bar"),
            ),
            (
                "juliet@example.com/foo@bar",
                Some("juliet"),
                "example.com",
                Some("foo@bar"),
            ),
            (
                "foo\\20bar@example.com",
                Some("foo\\20bar"),
                "example.com",
                None,
            ),
            (
                "fussball@example.com",
                Some("fussball"),
                "example.com",
                None,
            ),
            (
                "fu\u{df}ball@example.com",
                Some("fu\u{df}ball"),
                "example.com",
                None,
            ),
            ("\u{3c0}@example.com", Some("\u{3c0}"), "example.com", None),
            (
                "\u{3a3}@example.com/foo",
                Some("\u{3c3}"),
                "example.com",
                Some("foo"),
            ),
            (
                "\u{3c3}@example.com/foo",
                Some("\u{3c3}"),
                "example.com",
                Some("foo"),
            ),
            (
                "\u{3c2}@example.com/foo",
                Some("\u{3c2}"),
                "example.com",
                Some("foo"),
            ),
            (
                "king@example.com/\u{265a}",
                Some("king"),
                "example.com",
                Some("\u{265a}"),
            ),
            ("example.com", None, "example.com", None),
            ("example.com/foobar", None, "example.com", Some("foobar")),
            (
                "a.example.com/b@example.net",
                None,
                "a.example.com",
                Some("b@example.net"),
            ),
        ];
        for (s, n, d, r) in cases {
            assert_eq!(parts(s), owned(*n, d, *r), "{s}");
        }
    }

    /// RFC 7622 §3.5.2, every example, with the exact rule each one breaks.
    #[test]
    fn rfc7622_invalid_examples() {
        let cases: &[(&str, JidError)] = &[
            ("\"juliet\"@example.com", JidError::LocalForbidden('"')),
            (
                "foo bar@example.com",
                JidError::LocalPrecis(PrecisError::Disallowed {
                    codepoint: 0x20,
                    position: 3,
                }),
            ),
            ("juliet@example.com/", JidError::EmptyResource),
            ("@example.com/", JidError::EmptyLocal),
            (
                // U+2163 ROMAN NUMERAL FOUR has a compatibility decomposition.
                "henry\u{2163}@example.com",
                JidError::LocalPrecis(PrecisError::Disallowed {
                    codepoint: 0x2163,
                    position: 5,
                }),
            ),
            (
                // U+265A BLACK CHESS KING is a symbol: fine in a resource only.
                "\u{265a}@example.com",
                JidError::LocalPrecis(PrecisError::Disallowed {
                    codepoint: 0x265a,
                    position: 0,
                }),
            ),
            ("juliet@", JidError::EmptyDomain),
            ("/foobar", JidError::EmptyDomain),
        ];
        for (s, err) in cases {
            assert_eq!(s.parse::<Jid>(), Err(err.clone()), "{s}");
        }
    }

    #[test]
    fn more_empty_parts() {
        assert_eq!("@example.com".parse::<Jid>(), Err(JidError::EmptyLocal));
        assert_eq!("a@".parse::<Jid>(), Err(JidError::EmptyDomain));
        assert_eq!("example.com/".parse::<Jid>(), Err(JidError::EmptyResource));
        assert_eq!("".parse::<Jid>(), Err(JidError::EmptyDomain));
        assert_eq!("a@/r".parse::<Jid>(), Err(JidError::EmptyDomain));
    }

    #[test]
    fn a_second_at_before_the_slash_is_invalid() {
        // The first '@' splits, leaving '@' in the domainpart.
        assert_eq!(
            "a@b@example.com".parse::<Jid>(),
            Err(JidError::InvalidDomain)
        );
    }

    #[test]
    fn localpart_is_case_mapped() {
        assert_eq!(jid("Juliet@Example.COM"), jid("juliet@example.com"));
        assert_eq!(jid("Juliet@Example.COM").to_string(), "juliet@example.com");
    }

    #[test]
    fn resource_case_is_preserved() {
        let j = jid("juliet@example.com/Balcony");
        assert_eq!(j.resource(), Some("Balcony"));
        assert_ne!(j, jid("juliet@example.com/balcony"));
    }

    #[test]
    fn trailing_dot_is_stripped() {
        assert_eq!(jid("juliet@example.com./r"), jid("juliet@example.com/r"));
        assert_eq!(jid("example.com.").to_string(), "example.com");
    }

    #[test]
    fn unicode_domain_is_normalized() {
        let a = jid("juliet@B\u{dc}CHER.example");
        let b = jid("juliet@xn--bcher-kva.example");
        let c = jid("juliet@bu\u{308}cher.example");
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert_eq!(a.domain(), "b\u{fc}cher.example");
    }

    #[test]
    fn ip_domains() {
        assert_eq!(jid("juliet@[::1]/r").domain(), "[::1]");
        assert_eq!(jid("127.0.0.1").domain(), "127.0.0.1");
        assert_eq!("juliet@[::1/r".parse::<Jid>(), Err(JidError::InvalidDomain));
    }

    fn boundary(make: impl Fn(usize) -> String, too_long: JidError) {
        assert!(make(1023).parse::<Jid>().is_ok());
        assert_eq!(make(1024).parse::<Jid>(), Err(too_long));
    }

    #[test]
    fn localpart_1023_bytes_boundary() {
        boundary(
            |n| format!("{}@example.com", "a".repeat(n)),
            JidError::LocalTooLong,
        );
        // Multi-byte: 341 three-byte characters are 1023 bytes.
        assert!(format!("{}@example.com", "\u{4e2d}".repeat(341))
            .parse::<Jid>()
            .is_ok());
        assert_eq!(
            format!("{}a@example.com", "\u{4e2d}".repeat(341)).parse::<Jid>(),
            Err(JidError::LocalTooLong)
        );
    }

    #[test]
    fn localpart_length_is_measured_after_normalization() {
        // Full-width 'Ａ' is 3 bytes and maps to 'a': 1023 of them fit.
        let j = jid(&format!("{}@example.com", "\u{ff21}".repeat(1023)));
        assert_eq!(j.node().map(str::len), Some(1023));
    }

    #[test]
    fn resourcepart_1023_bytes_boundary() {
        boundary(
            |n| format!("example.com/{}", "r".repeat(n)),
            JidError::ResourceTooLong,
        );
    }

    #[test]
    fn domainpart_1023_bytes_boundary() {
        // Labels may not exceed 63 bytes, so the long names are many labels.
        let fifteen = vec!["d".repeat(63); 15].join(".");
        assert_eq!(fifteen.len(), 959);
        let max = format!("{fifteen}.{}", "e".repeat(63));
        assert_eq!(max.len(), 1023);
        assert_eq!(jid(&format!("a@{max}/r")).domain(), max);
        let over = format!("{fifteen}.{}.f", "e".repeat(62));
        assert_eq!(over.len(), 1024);
        assert_eq!(
            format!("a@{over}/r").parse::<Jid>(),
            Err(JidError::DomainTooLong)
        );
        // The trailing dot does not count: it is stripped first.
        assert!(format!("a@{max}.").parse::<Jid>().is_ok());
    }

    #[test]
    fn bare_and_full_conversions() {
        let full = jid("juliet@example.com/balcony");
        assert!(full.is_full() && !full.is_bare());
        let bare = full.bare();
        assert_eq!(bare.to_string(), "juliet@example.com");
        assert_eq!(full.clone().into_bare(), bare);

        let f = FullJid::try_from(full.clone()).unwrap();
        assert_eq!(f.resource(), "balcony");
        assert_eq!(f.node(), Some("juliet"));
        assert_eq!(f.domain(), "example.com");
        assert_eq!(f.bare(), bare);
        assert_eq!(Jid::from(f.clone()), full);
        assert_eq!(f, full);

        assert_eq!(
            FullJid::try_from(jid("juliet@example.com")),
            Err(JidError::NotFull)
        );
        assert_eq!(BareJid::try_from(full.clone()), Err(JidError::NotBare));
        assert_eq!(
            "juliet@example.com/r".parse::<BareJid>(),
            Err(JidError::NotBare)
        );
        assert_eq!(
            "juliet@example.com".parse::<FullJid>(),
            Err(JidError::NotFull)
        );

        let again = bare.with_resource("Orchard").unwrap();
        assert_eq!(again.to_string(), "juliet@example.com/Orchard");
        assert_eq!(bare.with_resource(""), Err(JidError::EmptyResource));
        // with_resource on a full JID replaces the resource.
        assert_eq!(
            full.with_resource("x").unwrap().as_str(),
            "juliet@example.com/x"
        );
    }

    #[test]
    fn domain_jid_for_servers() {
        let d = Jid::domain_jid("Example.COM.").unwrap();
        assert_eq!(d.to_string(), "example.com");
        assert_eq!(d.node(), None);
        assert!(d.is_bare());
        assert_eq!(Jid::domain_jid(""), Err(JidError::EmptyDomain));
    }

    #[test]
    fn constructors_from_parts_normalize() {
        let j = Jid::new(Some("Romeo"), "EXAMPLE.net", Some("Garden")).unwrap();
        assert_eq!(j.as_str(), "romeo@example.net/Garden");
        assert_eq!(
            Jid::new(Some(""), "example.net", None),
            Err(JidError::EmptyLocal)
        );
        assert_eq!(
            FullJid::new(None, "example.net", "r").unwrap().as_str(),
            "example.net/r"
        );
        assert_eq!(BareJid::new(Some("a"), "b").unwrap().as_str(), "a@b");
        // A '/' given as part of a localpart cannot sneak in a resource.
        assert_eq!(
            Jid::new(Some("a/b"), "example.net", None),
            Err(JidError::LocalForbidden('/'))
        );
    }

    #[test]
    fn display_round_trip_and_debug() {
        for s in [
            "juliet@example.com",
            "juliet@example.com/foo@bar/baz",
            "example.com/a/b",
            "[2001:db8::1]",
        ] {
            let j = jid(s);
            let shown = j.to_string();
            assert_eq!(shown, s);
            assert_eq!(jid(&shown), j);
        }
        assert_eq!(format!("{:?}", jid("a@b/c")), "Jid(\"a@b/c\")");
        assert_eq!(format!("{:?}", jid("a@b").bare()), "BareJid(\"a@b\")");
    }

    #[test]
    fn ordering_and_hashing_follow_the_normalized_string() {
        use std::collections::HashSet;
        let mut v = [jid("b@x"), jid("A@x"), jid("a@x/r")];
        v.sort();
        assert_eq!(
            v.iter().map(Jid::as_str).collect::<Vec<_>>(),
            ["a@x", "a@x/r", "b@x"]
        );
        let set: HashSet<Jid> = [jid("A@X"), jid("a@x")].into_iter().collect();
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn jid_is_compact() {
        assert_eq!(
            std::mem::size_of::<Jid>(),
            std::mem::size_of::<String>() + 8
        );
    }
}
