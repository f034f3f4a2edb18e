//! Parsers for the four SCRAM messages (RFC 5802 §7 grammar), shared by
//! [`crate::ScramServer`] and [`crate::ScramClient`].
//!
//! Attributes are single letters followed by `=`, separated by `,`, in a
//! fixed order. Since no value may contain a `,` (saslnames escape it, nonces
//! and base64 exclude it), splitting on `,` is exact. Unknown extension
//! attributes after the mandatory ones are skipped, as the RFC asks; a known
//! letter out of place, or the mandatory-extension marker `m=`, fails.
//! Nothing here trusts its input: every peer byte goes through a checked
//! path and ends in [`SaslError`], never a panic.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::error::SaslError;
use crate::saslprep;

/// Letters RFC 5802 assigns; an extension may not reuse them.
const RESERVED_ATTRIBUTES: &[u8] = b"acneimprsv";

/// The gs2 channel binding flag (RFC 5802 §7 `gs2-cbind-flag`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CbindFlag {
    /// `n`: the client does not support channel binding.
    NotSupported,
    /// `y`: the client supports it but thinks the server does not.
    ClientOnly,
    /// `p=<name>`: the client binds to this type.
    Used(String),
}

/// A parsed client-first message; slices borrow the message.
#[derive(Debug)]
pub(crate) struct ClientFirst<'a> {
    pub(crate) cbind: CbindFlag,
    /// Decoded from `a=` (`=2C`/`=3D` undone), not otherwise normalized.
    pub(crate) authzid: Option<String>,
    /// Everything up to and including the second comma: what `c=` encodes.
    pub(crate) gs2_header: &'a str,
    /// The part of the message that enters AuthMessage.
    pub(crate) bare: &'a str,
    /// Decoded from `n=`, before SASLprep.
    pub(crate) username: String,
    pub(crate) nonce: &'a str,
}

/// A parsed client-final message.
#[derive(Debug)]
pub(crate) struct ClientFinal<'a> {
    /// Decoded `c=`: gs2 header followed by the binding data.
    pub(crate) channel_binding: Vec<u8>,
    pub(crate) nonce: &'a str,
    /// The message up to (not including) `,p=`, as it enters AuthMessage.
    pub(crate) without_proof: &'a str,
    pub(crate) proof: Vec<u8>,
}

/// A parsed server-first message.
#[derive(Debug)]
pub(crate) struct ServerFirst<'a> {
    pub(crate) nonce: &'a str,
    pub(crate) salt: Vec<u8>,
    pub(crate) iterations: u32,
}

/// A parsed server-final message.
#[derive(Debug)]
pub(crate) enum ServerFinal {
    Verifier(Vec<u8>),
    Error(String),
}

pub(crate) fn utf8(message: &[u8]) -> Result<&str, SaslError> {
    std::str::from_utf8(message).map_err(|_| SaslError::Malformed("message is not UTF-8"))
}

pub(crate) fn b64_encode(data: &[u8]) -> String {
    B64.encode(data)
}

fn b64_decode(value: &str, what: &'static str) -> Result<Vec<u8>, SaslError> {
    B64.decode(value).map_err(|_| SaslError::Malformed(what))
}

/// The value of attribute `letter` in `part`, or a malformed error naming
/// what was expected there.
fn attribute<'a>(
    part: Option<&'a str>,
    letter: u8,
    what: &'static str,
) -> Result<&'a str, SaslError> {
    let part = part.ok_or(SaslError::Malformed(what))?;
    match part.as_bytes() {
        [l, b'=', ..] if *l == letter => Ok(&part[2..]),
        [b'm', b'=', ..] => Err(SaslError::UnsupportedExtension),
        _ => Err(SaslError::Malformed(what)),
    }
}

/// `printable` of RFC 5802 §7 minus `,` (already split away), non-empty.
fn check_nonce(nonce: &str) -> Result<(), SaslError> {
    if !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
    {
        Ok(())
    } else {
        Err(SaslError::Malformed(
            "nonce is empty or not printable ASCII",
        ))
    }
}

/// Skips well-formed extension attributes (RFC 5802 §5: those not
/// understood are ignored); a reserved letter here is out of order.
fn check_extensions<'a>(parts: impl Iterator<Item = &'a str>) -> Result<(), SaslError> {
    for part in parts {
        match part.as_bytes() {
            [b'm', b'=', ..] => return Err(SaslError::UnsupportedExtension),
            [l, b'=', rest @ ..]
                if l.is_ascii_alphabetic()
                    && !RESERVED_ATTRIBUTES.contains(l)
                    && !rest.is_empty()
                    && !rest.contains(&0) => {}
            _ => return Err(SaslError::Malformed("unexpected or misplaced attribute")),
        }
    }
    Ok(())
}

/// `cb-name = 1*(ALPHA / DIGIT / "." / "-")`.
fn check_cb_name(name: &str) -> Result<(), SaslError> {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    {
        Ok(())
    } else {
        Err(SaslError::Malformed("bad channel binding name"))
    }
}

pub(crate) fn parse_client_first(message: &str) -> Result<ClientFirst<'_>, SaslError> {
    let flag_end = message
        .find(',')
        .ok_or(SaslError::Malformed("missing gs2 header"))?;
    let cbind = match &message[..flag_end] {
        "n" => CbindFlag::NotSupported,
        "y" => CbindFlag::ClientOnly,
        flag => match flag.strip_prefix("p=") {
            Some(name) => {
                check_cb_name(name)?;
                CbindFlag::Used(name.to_owned())
            }
            None => return Err(SaslError::Malformed("bad gs2 channel binding flag")),
        },
    };
    let after_flag = &message[flag_end + 1..];
    let authzid_end = after_flag
        .find(',')
        .ok_or(SaslError::Malformed("gs2 header lacks its second comma"))?;
    let authzid = match &after_flag[..authzid_end] {
        "" => None,
        field => match field.strip_prefix("a=") {
            Some(encoded) => Some(saslprep::decode_saslname(encoded)?),
            None => return Err(SaslError::Malformed("bad authzid in gs2 header")),
        },
    };
    let header_len = flag_end + 1 + authzid_end + 1;
    let (gs2_header, bare) = message.split_at(header_len);

    let mut parts = bare.split(',');
    let username = saslprep::decode_saslname(attribute(
        parts.next(),
        b'n',
        "client-first must start with n=",
    )?)?;
    let nonce = attribute(parts.next(), b'r', "client-first lacks r= after n=")?;
    check_nonce(nonce)?;
    check_extensions(parts)?;
    Ok(ClientFirst {
        cbind,
        authzid,
        gs2_header,
        bare,
        username,
        nonce,
    })
}

pub(crate) fn parse_client_final(message: &str) -> Result<ClientFinal<'_>, SaslError> {
    let (without_proof, proof_part) = message
        .rsplit_once(',')
        .ok_or(SaslError::Malformed("client-final is too short"))?;
    let proof = attribute(Some(proof_part), b'p', "client-final must end with p=")?;
    let proof = b64_decode(proof, "proof is not base64")?;

    let mut parts = without_proof.split(',');
    let cb = attribute(parts.next(), b'c', "client-final must start with c=")?;
    let channel_binding = b64_decode(cb, "channel binding is not base64")?;
    let nonce = attribute(parts.next(), b'r', "client-final lacks r= after c=")?;
    check_nonce(nonce)?;
    check_extensions(parts)?;
    Ok(ClientFinal {
        channel_binding,
        nonce,
        without_proof,
        proof,
    })
}

pub(crate) fn parse_server_first(message: &str) -> Result<ServerFirst<'_>, SaslError> {
    let mut parts = message.split(',');
    let nonce = attribute(parts.next(), b'r', "server-first must start with r=")?;
    check_nonce(nonce)?;
    let salt = b64_decode(
        attribute(parts.next(), b's', "server-first lacks s= after r=")?,
        "salt is not base64",
    )?;
    if salt.is_empty() {
        return Err(SaslError::Malformed("empty salt"));
    }
    let iterations = attribute(parts.next(), b'i', "server-first lacks i= after s=")?;
    // `u32::from_str` accepts a leading '+', which the grammar does not.
    if !iterations.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SaslError::Malformed("iteration count is not a number"));
    }
    let iterations = iterations
        .parse::<u32>()
        .map_err(|_| SaslError::Malformed("iteration count is not a number"))?;
    check_extensions(parts)?;
    Ok(ServerFirst {
        nonce,
        salt,
        iterations,
    })
}

pub(crate) fn parse_server_final(message: &str) -> Result<ServerFinal, SaslError> {
    let mut parts = message.split(',');
    let first = parts.next().unwrap_or_default();
    let result = if let Some(error) = first.strip_prefix("e=") {
        ServerFinal::Error(error.to_owned())
    } else {
        let verifier = attribute(Some(first), b'v', "server-final must start with v= or e=")?;
        ServerFinal::Verifier(b64_decode(verifier, "server signature is not base64")?)
    };
    check_extensions(parts)?;
    Ok(result)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn client_first_splits_header_and_bare() {
        let m = parse_client_first("p=tls-exporter,a=ad=2Cmin,n=us=3Der,r=abc,x=ext").unwrap();
        assert_eq!(m.cbind, CbindFlag::Used("tls-exporter".into()));
        assert_eq!(m.authzid.as_deref(), Some("ad,min"));
        assert_eq!(m.gs2_header, "p=tls-exporter,a=ad=2Cmin,");
        assert_eq!(m.bare, "n=us=3Der,r=abc,x=ext");
        assert_eq!(m.username, "us=er");
        assert_eq!(m.nonce, "abc");
    }

    #[test]
    fn client_first_rejects_bad_shapes() {
        let cases: &[(&str, SaslError)] = &[
            ("", SaslError::Malformed("missing gs2 header")),
            (
                "x,,n=u,r=a",
                SaslError::Malformed("bad gs2 channel binding flag"),
            ),
            (
                "p=,,n=u,r=a",
                SaslError::Malformed("bad channel binding name"),
            ),
            (
                "p=a b,,n=u,r=a",
                SaslError::Malformed("bad channel binding name"),
            ),
            (
                "n,n=u,r=a",
                SaslError::Malformed("bad authzid in gs2 header"),
            ),
            ("n,a=,n=u,r=a", SaslError::Malformed("empty saslname")),
            (
                "n,,r=a,n=u",
                SaslError::Malformed("client-first must start with n="),
            ),
            (
                "n,,n=u",
                SaslError::Malformed("client-first lacks r= after n="),
            ),
            (
                "n,,n=u,r=",
                SaslError::Malformed("nonce is empty or not printable ASCII"),
            ),
            (
                "n,,n=u,r=a b",
                SaslError::Malformed("nonce is empty or not printable ASCII"),
            ),
            (
                "n,,n=u,r=a,r=b",
                SaslError::Malformed("unexpected or misplaced attribute"),
            ),
            (
                "n,,n=u,r=a,garbage",
                SaslError::Malformed("unexpected or misplaced attribute"),
            ),
            ("n,,m=x,n=u,r=a", SaslError::UnsupportedExtension),
            ("n,,n=u,r=a,m=x", SaslError::UnsupportedExtension),
            (
                "n,,n=u=,r=a",
                SaslError::Malformed("bad escape in saslname"),
            ),
        ];
        for (message, expected) in cases {
            assert_eq!(
                &parse_client_first(message).unwrap_err(),
                expected,
                "{message}"
            );
        }
    }

    #[test]
    fn client_final_keeps_the_part_before_the_proof() {
        let m = parse_client_final("c=biws,r=abc,x=y,p=AAAA").unwrap();
        assert_eq!(m.channel_binding, b"n,,");
        assert_eq!(m.without_proof, "c=biws,r=abc,x=y");
        assert_eq!(m.proof, [0, 0, 0]);
    }

    #[test]
    fn client_final_rejects_bad_shapes() {
        let cases: &[(&str, SaslError)] = &[
            ("p=AAAA", SaslError::Malformed("client-final is too short")),
            (
                "c=biws,r=abc",
                SaslError::Malformed("client-final must end with p="),
            ),
            (
                "c=biws,r=abc,p=!!",
                SaslError::Malformed("proof is not base64"),
            ),
            (
                "r=abc,c=biws,p=AAAA",
                SaslError::Malformed("client-final must start with c="),
            ),
            (
                "c=bi,r=abc,p=AAAA",
                SaslError::Malformed("channel binding is not base64"),
            ),
            (
                "c=biws,p=AAAA,r=abc",
                SaslError::Malformed("client-final must end with p="),
            ),
            (
                "c=biws,x=1,r=abc,p=AAAA",
                SaslError::Malformed("client-final lacks r= after c="),
            ),
            ("c=biws,r=abc,m=1,p=AAAA", SaslError::UnsupportedExtension),
        ];
        for (message, expected) in cases {
            assert_eq!(
                &parse_client_final(message).unwrap_err(),
                expected,
                "{message}"
            );
        }
    }

    #[test]
    fn server_messages_parse_and_reject_bad_shapes() {
        let m = parse_server_first("r=abc,s=QSXCR+Q6sek8bf92,i=4096").unwrap();
        assert_eq!((m.nonce, m.iterations, m.salt.len()), ("abc", 4096, 12));
        for bad in [
            "r=abc,s=QSXC,i=+4096",
            "r=abc,s=QSXC,i=",
            "r=abc,s=QSXC,i=99999999999",
            "r=abc,i=4096,s=QSXC",
            "r=abc,s=,i=1",
        ] {
            assert!(
                matches!(parse_server_first(bad), Err(SaslError::Malformed(_))),
                "{bad}"
            );
        }
        assert_eq!(
            parse_server_first("m=x,r=abc,s=QSXC,i=1").unwrap_err(),
            SaslError::UnsupportedExtension
        );
        assert!(matches!(
            parse_server_final("v=AAAA").unwrap(),
            ServerFinal::Verifier(v) if v == [0, 0, 0]
        ));
        assert!(matches!(
            parse_server_final("e=invalid-proof").unwrap(),
            ServerFinal::Error(e) if e == "invalid-proof"
        ));
        assert!(parse_server_final("x=1").is_err());
        assert!(parse_server_final("").is_err());
    }
}
