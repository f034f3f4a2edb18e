//! The base64 wrapping of SASL data inside `<auth/>`, `<challenge/>`,
//! `<response/>` and `<success/>` (RFC 6120 §6.4.2).
//!
//! Lives here rather than in the stream layer because its one rule is
//! SASL's: an empty payload is written as a single `=`, to tell "empty
//! initial response" apart from "no initial response" (an empty element).
//! Decoding is strict RFC 4648 base64 with padding and no whitespace, and a
//! failure is `incorrect-encoding` (§6.5.5), not `malformed-request`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::error::SaslError;

/// The XML character data for `data`: base64, or `=` when empty.
pub fn encode_payload(data: &[u8]) -> String {
    if data.is_empty() {
        "=".to_owned()
    } else {
        B64.encode(data)
    }
}

/// The bytes carried by an element's character data. `=` is the empty
/// payload. An element with no character data at all means "no initial
/// response"; callers should handle that before calling this.
pub fn decode_payload(text: &str) -> Result<Vec<u8>, SaslError> {
    if text == "=" {
        return Ok(Vec::new());
    }
    B64.decode(text).map_err(|_| SaslError::IncorrectEncoding)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::error::Condition;

    #[test]
    fn empty_payload_is_a_single_equals_sign() {
        assert_eq!(encode_payload(b""), "=");
        assert_eq!(decode_payload("=").unwrap(), b"");
    }

    #[test]
    fn payloads_round_trip() {
        let data = b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL";
        assert_eq!(decode_payload(&encode_payload(data)).unwrap(), data);
    }

    #[test]
    fn bad_base64_is_incorrect_encoding() {
        for bad in ["biws!", "bml", "bi ws", "==", "biws\n"] {
            let err = decode_payload(bad).unwrap_err();
            assert_eq!(err.condition(), Condition::IncorrectEncoding, "{bad:?}");
        }
    }
}
