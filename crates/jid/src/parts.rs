//! Normalization of each part of a JID on its own: the localpart through the
//! PRECIS UsernameCaseMapped profile, the domainpart through IDNA (UTS #46), the
//! resourcepart through the PRECIS OpaqueString profile (RFC 7622 §3.2-3.4).
//!
//! Each function returns the part in its normalized form, which is what is
//! stored, compared and displayed: two JIDs are equal exactly when their
//! normalized strings are. `Cow::Borrowed` is the common case (the input was
//! already normalized) and costs no allocation.

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};
use precis_core::profile::{stabilize, Profile};
use precis_profiles::{OpaqueString, UsernameCaseMapped};

use crate::error::JidError;

/// RFC 7622 §3.2.1, §3.3.1, §3.4.1: each part is 1 to 1023 octets once
/// normalized.
pub(crate) const MAX_PART_BYTES: usize = 1023;

/// Input longer than this is refused before normalization runs. Mapping can
/// shrink a part (full-width forms become ASCII, NFC composes Hangul jamo, at
/// most 3 to 1), so the limit on the input is a multiple of the limit on the
/// output; it bounds the work a hostile `to` attribute can cause.
const MAX_RAW_BYTES: usize = MAX_PART_BYTES * 4;

/// RFC 7622 §3.3.1: forbidden in a localpart even though the profile allows
/// them, because they delimit JIDs or break XMPP URIs and XML attributes.
const LOCAL_FORBIDDEN: &[char] = &['"', '&', '\'', '/', ':', '<', '>', '@'];

/// RFC 7622 §3.2: the longest label of a domain name, in the A-label form.
const MAX_LABEL_BYTES: usize = 63;

/// Normalizes a localpart (RFC 7622 §3.3).
pub(crate) fn local(raw: &str) -> Result<Cow<'_, str>, JidError> {
    if raw.is_empty() {
        return Err(JidError::EmptyLocal);
    }
    if raw.len() > MAX_RAW_BYTES {
        return Err(JidError::LocalTooLong);
    }
    if let Some(c) = raw.chars().find(|c| LOCAL_FORBIDDEN.contains(c)) {
        return Err(JidError::LocalForbidden(c));
    }
    if let Some(out) = ascii_local(raw) {
        return Ok(out);
    }
    local_precis(raw)
}

/// The common case without the PRECIS machinery, which cost a tenth of
/// the server's time routing chat messages. For printable ASCII (U+0021 to
/// U+007E, all PVALID in the IdentifierClass, RFC 8264 §9.11) the
/// UsernameCaseMapped rules reduce to lower-casing: no width mapping, NFC
/// and the bidi rule are identities (RFC 8265 §3.3). `None`: take the
/// general path. The forbidden characters were checked by the caller.
fn ascii_local(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.bytes().all(|b| (0x21..=0x7e).contains(&b)) || raw.len() > MAX_PART_BYTES {
        return None;
    }
    Some(if raw.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(raw.to_ascii_lowercase())
    } else {
        Cow::Borrowed(raw)
    })
}

fn local_precis(raw: &str) -> Result<Cow<'_, str>, JidError> {
    let profile = UsernameCaseMapped::new();
    // RFC 8264 §7: a profile's rules are applied until the result is stable,
    // so that parsing our own Display output always gives the same JID.
    let out =
        stabilize(raw, |s| profile.enforce(s)).map_err(|e| JidError::LocalPrecis(e.into()))?;
    // Width mapping turns U+FF20 FULLWIDTH COMMERCIAL AT into '@': check again.
    if let Some(c) = out.chars().find(|c| LOCAL_FORBIDDEN.contains(c)) {
        return Err(JidError::LocalForbidden(c));
    }
    if out.len() > MAX_PART_BYTES {
        return Err(JidError::LocalTooLong);
    }
    Ok(out)
}

/// Normalizes a resourcepart (RFC 7622 §3.4). Case and spaces are kept.
pub(crate) fn resource(raw: &str) -> Result<Cow<'_, str>, JidError> {
    if raw.is_empty() {
        return Err(JidError::EmptyResource);
    }
    if raw.len() > MAX_RAW_BYTES {
        return Err(JidError::ResourceTooLong);
    }
    // As for the localpart: printable ASCII and space (U+0020 to U+007E)
    // are PVALID in the FreeformClass and OpaqueString maps none of them
    // (RFC 8265 §4.2), so such a resourcepart is already normalized.
    if raw.len() <= MAX_PART_BYTES && raw.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Ok(Cow::Borrowed(raw));
    }
    resource_precis(raw)
}

fn resource_precis(raw: &str) -> Result<Cow<'_, str>, JidError> {
    let profile = OpaqueString::new();
    let out =
        stabilize(raw, |s| profile.enforce(s)).map_err(|e| JidError::ResourcePrecis(e.into()))?;
    if out.len() > MAX_PART_BYTES {
        return Err(JidError::ResourceTooLong);
    }
    Ok(out)
}

/// Normalizes a domainpart (RFC 7622 §3.2): an IPv6 literal in brackets, an
/// IPv4 address, or a domain name, which is kept in its Unicode form (U-labels)
/// after UTS #46 mapping, so that `EXAMPLE.com`, `example.com.` and the
/// Punycode spelling of a name all compare equal.
pub(crate) fn domain(raw: &str) -> Result<Cow<'_, str>, JidError> {
    // §3.2: one trailing dot is stripped before anything else.
    let d = raw.strip_suffix('.').unwrap_or(raw);
    if d.is_empty() {
        return Err(JidError::EmptyDomain);
    }
    if d.len() > MAX_RAW_BYTES {
        return Err(JidError::DomainTooLong);
    }
    if let Some(inner) = d.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or(JidError::InvalidDomain)?;
        let ip: Ipv6Addr = inner.parse().map_err(|_| JidError::InvalidDomain)?;
        // The canonical text form (RFC 5952) so that `[::0001]` equals `[::1]`.
        let canonical = format!("[{ip}]");
        return Ok(if canonical == d {
            Cow::Borrowed(d)
        } else {
            Cow::Owned(canonical)
        });
    }
    if d.parse::<Ipv4Addr>().is_ok() {
        return Ok(Cow::Borrowed(d));
    }

    if is_plain_ldh(d) {
        return Ok(Cow::Borrowed(d));
    }
    let uts46 = Uts46::new();
    // STD3 rules: ASCII labels are letters, digits and hyphens only (the
    // NR-LDH labels of RFC 5890). The DNS length check is ours, below, because
    // UTS #46's also caps the whole name at 253 octets where RFC 7622 allows 1023.
    let ascii = uts46
        .to_ascii(
            d.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::CheckFirstLast,
            DnsLength::Ignore,
        )
        .map_err(|_| JidError::InvalidDomain)?;
    if ascii
        .split('.')
        .any(|label| label.is_empty() || label.len() > MAX_LABEL_BYTES)
    {
        return Err(JidError::InvalidDomain);
    }
    let (unicode, result) = uts46.to_unicode(
        ascii.as_bytes(),
        AsciiDenyList::STD3,
        Hyphens::CheckFirstLast,
    );
    result.map_err(|_| JidError::InvalidDomain)?;
    if unicode.len() > MAX_PART_BYTES {
        return Err(JidError::DomainTooLong);
    }
    Ok(if unicode == d {
        Cow::Borrowed(d)
    } else {
        Cow::Owned(unicode.into_owned())
    })
}

/// A domain name UTS #46 leaves as it is: lower-case letters, digits and
/// hyphens in labels of 1 to 63 octets, no hyphen first or last, and no
/// Punycode label to decode (`xn--`).
fn is_plain_ldh(d: &str) -> bool {
    d.len() <= MAX_PART_BYTES
        && d.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= MAX_LABEL_BYTES
                && !label.starts_with('-')
                && !label.ends_with('-')
                && !label.starts_with("xn--")
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The ASCII fast paths give exactly what the general ones give.
    #[test]
    fn ascii_fast_paths_agree_with_precis() {
        let mut samples: Vec<String> = (0x20u8..=0x7e).map(|b| (b as char).to_string()).collect();
        samples.extend(
            [
                "Alice",
                "bob",
                "x.Y-z_9",
                "ünter",
                "A~B!c",
                "tab\there",
                " lead",
                "trail ",
            ]
            .map(String::from),
        );
        for s in &samples {
            if !s.chars().any(|c| LOCAL_FORBIDDEN.contains(&c)) {
                if let Some(fast) = ascii_local(s) {
                    assert_eq!(Ok(fast), local_precis(s), "localpart {s:?}");
                }
            }
            if s.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
                assert_eq!(
                    Ok(Cow::Borrowed(s.as_str())),
                    resource_precis(s),
                    "resource {s:?}"
                );
            }
        }
        for d in ["example.com", "a-b.c0", "localhost", "x.y.z"] {
            assert!(is_plain_ldh(d), "{d}");
        }
        for d in [
            "Example.com",
            "xn--bcher-kva.example",
            "-a.b",
            "a-.b",
            "a..b",
            "a_b",
        ] {
            assert!(!is_plain_ldh(d), "{d}");
        }
    }
    use crate::error::PrecisError;

    #[test]
    fn already_normalized_parts_are_borrowed() {
        assert!(matches!(local("juliet").unwrap(), Cow::Borrowed(_)));
        assert!(matches!(domain("example.com").unwrap(), Cow::Borrowed(_)));
        assert!(matches!(resource("Balcony").unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn local_forbidden_characters_each_rejected() {
        for c in LOCAL_FORBIDDEN {
            assert_eq!(
                local(&format!("a{c}b")),
                Err(JidError::LocalForbidden(*c)),
                "{c}"
            );
        }
    }

    #[test]
    fn fullwidth_at_maps_to_a_forbidden_at() {
        assert_eq!(local("a\u{FF20}b"), Err(JidError::LocalForbidden('@')));
    }

    #[test]
    fn local_space_names_the_code_point() {
        assert_eq!(
            local("foo bar"),
            Err(JidError::LocalPrecis(PrecisError::Disallowed {
                codepoint: 0x20,
                position: 3
            }))
        );
    }

    #[test]
    fn domain_forms() {
        assert_eq!(domain("EXAMPLE.com.").unwrap(), "example.com");
        assert_eq!(domain("[::0001]").unwrap(), "[::1]");
        assert_eq!(domain("[2001:DB8::1]").unwrap(), "[2001:db8::1]");
        assert_eq!(domain("192.0.2.1").unwrap(), "192.0.2.1");
        assert_eq!(domain("xn--bcher-kva.example").unwrap(), "bücher.example");
        assert_eq!(domain("BÜCHER.example").unwrap(), "bücher.example");
        // Full-width letters and the ideographic full stop map to ASCII.
        assert_eq!(domain("ｅｘａｍｐｌｅ\u{3002}com").unwrap(), "example.com");
    }

    #[test]
    fn domain_rejections() {
        for bad in [
            "[::1",
            "[not-an-ip]",
            "[fe80::1%eth0]",
            "exa mple.com",
            "under_score.example",
            "a..b",
            ".example.com",
            "-lead.example",
            "trail-.example",
            "example.com..",
            "a:b",
        ] {
            assert_eq!(domain(bad), Err(JidError::InvalidDomain), "{bad}");
        }
        assert_eq!(domain("."), Err(JidError::EmptyDomain));
        assert_eq!(domain(""), Err(JidError::EmptyDomain));
    }

    #[test]
    fn domain_label_length_counts_the_a_label() {
        let ok = "a".repeat(63);
        assert!(domain(&format!("{ok}.example")).is_ok());
        let long = "a".repeat(64);
        assert_eq!(
            domain(&format!("{long}.example")),
            Err(JidError::InvalidDomain)
        );
        // 20 'ü' are 40 bytes in UTF-8 but 30 in Punycode plus "xn--": fits.
        assert!(domain(&format!("{}.example", "ü".repeat(20))).is_ok());
        // 60 'ü' are only 60 code points, but their A-label is longer than 63.
        assert_eq!(
            domain(&format!("{}.example", "ü".repeat(60))),
            Err(JidError::InvalidDomain)
        );
    }

    #[test]
    fn oversized_input_is_refused_before_normalization() {
        let huge = "a".repeat(MAX_RAW_BYTES + 1);
        assert_eq!(local(&huge), Err(JidError::LocalTooLong));
        assert_eq!(domain(&huge), Err(JidError::DomainTooLong));
        assert_eq!(resource(&huge), Err(JidError::ResourceTooLong));
    }
}
