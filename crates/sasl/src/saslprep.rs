//! SASLprep (RFC 4013) for usernames and passwords, and the SCRAM `saslname`
//! escaping of `,` and `=` (RFC 5802 §5.1).
//!
//! Both sides of every exchange must prepare strings the same way, or the
//! same password typed on two keyboards (e.g. with a no-break space, or in a
//! decomposed Unicode form) would derive two different keys. The `stringprep`
//! crate implements the stored-strings profile, which also rejects
//! unassigned code points; a string it rejects could never have been stored,
//! so rejecting it at login time changes no outcome.

use crate::error::SaslError;

/// SASLprep a username; empty results are refused (RFC 5802 §5.1 says the
/// server should abort then).
pub(crate) fn prep_username(raw: &str) -> Result<String, SaslError> {
    match stringprep::saslprep(raw) {
        Ok(prepped) if !prepped.is_empty() => Ok(prepped.into_owned()),
        _ => Err(SaslError::InvalidUsername),
    }
}

/// SASLprep a password; empty results are refused.
pub(crate) fn prep_password(raw: &str) -> Result<String, SaslError> {
    match stringprep::saslprep(raw) {
        Ok(prepped) if !prepped.is_empty() => Ok(prepped.into_owned()),
        _ => Err(SaslError::InvalidPassword),
    }
}

/// Escapes a username or authzid for an `n=` or `a=` attribute: `,` ends an
/// attribute and `=` starts an escape, so both are written `=2C` / `=3D`.
pub(crate) fn encode_saslname(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            ',' => out.push_str("=2C"),
            '=' => out.push_str("=3D"),
            c => out.push(c),
        }
    }
    out
}

/// Reverses [`encode_saslname`]. Any other `=` sequence is malformed (RFC
/// 5802 §5.1: "the server MUST fail the authentication"), and so is an empty
/// name or a NUL, which `saslname` excludes.
pub(crate) fn decode_saslname(encoded: &str) -> Result<String, SaslError> {
    if encoded.is_empty() {
        return Err(SaslError::Malformed("empty saslname"));
    }
    let mut out = String::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some(pos) = rest.find(['=', '\0']) {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if tail.starts_with("=2C") {
            out.push(',');
        } else if tail.starts_with("=3D") {
            out.push('=');
        } else {
            return Err(SaslError::Malformed("bad escape in saslname"));
        }
        rest = &tail[3..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn commas_and_equals_signs_round_trip_through_the_escape() {
        for name in ["user", "a,b", "a=b", ",=,=", "=2C", "ünïcode,="] {
            let encoded = encode_saslname(name);
            assert!(!encoded.contains(','), "{encoded}");
            assert_eq!(decode_saslname(&encoded).unwrap(), name);
        }
        assert_eq!(encode_saslname("a,b=c"), "a=2Cb=3Dc");
    }

    #[test]
    fn bad_escapes_and_empty_names_are_malformed() {
        for bad in ["", "a=", "a=2", "a=2c", "a=41", "=", "a\0b"] {
            assert!(
                matches!(decode_saslname(bad), Err(SaslError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn saslprep_maps_spaces_and_removes_soft_hyphens() {
        // RFC 4013 §3 examples: SOFT HYPHEN maps to nothing, NO-BREAK
        // SPACE to SPACE, ROMAN NUMERAL NINE to "IX" under NFKC.
        assert_eq!(prep_password("I\u{00AD}X").unwrap(), "IX");
        assert_eq!(prep_password("\u{2168}").unwrap(), "IX");
        assert_eq!(prep_password("a\u{00A0}b").unwrap(), "a b");
        assert_eq!(prep_password("\u{0007}"), Err(SaslError::InvalidPassword));
        assert_eq!(prep_password("\u{00AD}"), Err(SaslError::InvalidPassword));
        assert_eq!(prep_username(""), Err(SaslError::InvalidUsername));
    }
}
