//! Why a string is not a JID, one variant per rule of RFC 7622.
//!
//! Every variant maps to the same stanza error, `jid-malformed`; the variants
//! exist for logs and tests, which need to know *which* rule failed.

use std::fmt;

/// The PRECIS (RFC 8264) reason a localpart or resourcepart was refused.
///
/// `precis_core::Error` is neither `Clone` nor stable enough to expose from
/// our API, so the part of it that matters is copied here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PrecisError {
    /// A code point the profile disallows, such as a space or a symbol in a
    /// localpart. `position` counts code points from the start of the part.
    Disallowed { codepoint: u32, position: usize },
    /// The part is empty after mapping, breaks the bidi rule, or did not
    /// become stable under repeated enforcement.
    Invalid,
}

impl From<precis_core::Error> for PrecisError {
    fn from(e: precis_core::Error) -> Self {
        match e {
            precis_core::Error::BadCodepoint(info) => PrecisError::Disallowed {
                codepoint: info.cp,
                position: info.position,
            },
            precis_core::Error::Invalid | precis_core::Error::Unexpected(_) => PrecisError::Invalid,
        }
    }
}

impl fmt::Display for PrecisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrecisError::Disallowed {
                codepoint,
                position,
            } => write!(
                f,
                "disallowed code point U+{codepoint:04X} at position {position}"
            ),
            PrecisError::Invalid => f.write_str("rejected by the PRECIS profile"),
        }
    }
}

/// A string that is not a valid JID, or a JID of the wrong form.
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum JidError {
    /// `@example.com`: an '@' with nothing before it (RFC 7622 §3.3.1).
    #[error("empty localpart")]
    EmptyLocal,
    /// More than 1023 bytes after normalization (RFC 7622 §3.3.1).
    #[error("localpart longer than 1023 bytes")]
    LocalTooLong,
    /// Refused by the UsernameCaseMapped profile (RFC 7622 §3.3.2, RFC 8265 §3.3).
    #[error("localpart: {0}")]
    LocalPrecis(PrecisError),
    /// One of `" & ' / : < > @`, which RFC 7622 §3.3.1 forbids in a localpart
    /// on top of the profile.
    #[error("localpart contains the forbidden character {0:?}")]
    LocalForbidden(char),
    /// `a@` or `/foo`: the domainpart is the one part every JID has (RFC 7622 §3.2).
    #[error("empty domainpart")]
    EmptyDomain,
    /// More than 1023 bytes after normalization (RFC 7622 §3.2.1).
    #[error("domainpart longer than 1023 bytes")]
    DomainTooLong,
    /// Not an IP literal, an IPv4 address, nor a valid internationalized
    /// domain name with labels of 1 to 63 octets (RFC 7622 §3.2).
    #[error("invalid domainpart")]
    InvalidDomain,
    /// `example.com/`: a '/' with nothing after it (RFC 7622 §3.4.1).
    #[error("empty resourcepart")]
    EmptyResource,
    /// More than 1023 bytes after normalization (RFC 7622 §3.4.1).
    #[error("resourcepart longer than 1023 bytes")]
    ResourceTooLong,
    /// Refused by the OpaqueString profile (RFC 7622 §3.4.2, RFC 8265 §4.2).
    #[error("resourcepart: {0}")]
    ResourcePrecis(PrecisError),
    /// A full JID (with a resource) was required.
    #[error("not a full JID")]
    NotFull,
    /// A bare JID (without a resource) was required.
    #[error("not a bare JID")]
    NotBare,
}

impl JidError {
    /// The stanza error condition for this failure: always `jid-malformed`
    /// (RFC 6120 §8.3.3.8), whatever the rule that failed.
    pub fn condition(&self) -> &'static str {
        "jid-malformed"
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_error_is_jid_malformed() {
        let all = [
            JidError::EmptyLocal,
            JidError::LocalTooLong,
            JidError::LocalPrecis(PrecisError::Invalid),
            JidError::LocalForbidden('@'),
            JidError::EmptyDomain,
            JidError::DomainTooLong,
            JidError::InvalidDomain,
            JidError::EmptyResource,
            JidError::ResourceTooLong,
            JidError::ResourcePrecis(PrecisError::Invalid),
            JidError::NotFull,
            JidError::NotBare,
        ];
        for e in all {
            assert_eq!(e.condition(), "jid-malformed", "{e:?}");
        }
    }

    #[test]
    fn precis_error_display_names_the_code_point() {
        let e = JidError::LocalPrecis(PrecisError::Disallowed {
            codepoint: 0x20,
            position: 3,
        });
        assert_eq!(
            e.to_string(),
            "localpart: disallowed code point U+0020 at position 3"
        );
    }
}
