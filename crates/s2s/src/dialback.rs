//! Server Dialback keys (XEP-0220 §2.1, generated as XEP-0185 §3
//! recommends).
//!
//! A key is `HMAC-SHA256(hex(SHA-256(secret)), receiving + " " +
//! originating + " " + stream id)` in lowercase hex. The secret is 32
//! random bytes kept in `<data_dir>/dialback.key`, so keys handed out
//! before a restart still verify after it (an incoming stream may ask
//! while this server restarts).

use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The dialback namespace (XEP-0220).
pub const NS: &str = "jabber:server:dialback";
/// The stream feature announcing dialback with error support (XEP-0220
/// §2.4.1).
pub const NS_FEATURE: &str = "urn:xmpp:features:dialback";

/// The server's dialback secret.
pub struct Secret {
    /// hex(SHA-256(secret)): XEP-0185 keys the HMAC with it.
    hmac_key: String,
}

impl Secret {
    pub fn new(secret: [u8; 32]) -> Secret {
        Secret {
            hmac_key: hex(&Sha256::digest(secret)),
        }
    }

    /// The key the originating server sends and the authoritative server
    /// checks.
    pub fn key(&self, receiving: &str, originating: &str, stream_id: &str) -> String {
        // HMAC takes keys of any length.
        let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(self.hmac_key.as_bytes()) else {
            return String::new();
        };
        mac.update(receiving.as_bytes());
        mac.update(b" ");
        mac.update(originating.as_bytes());
        mac.update(b" ");
        mac.update(stream_id.as_bytes());
        hex(&mac.finalize().into_bytes())
    }

    /// Whether `key` is the one this server made for the triple, compared
    /// in constant time.
    pub fn check(&self, key: &str, receiving: &str, originating: &str, stream_id: &str) -> bool {
        let expected = self.key(receiving, originating, stream_id);
        !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(key.trim().as_bytes()))
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_verify_only_for_their_triple() {
        let s = Secret::new([7; 32]);
        let k = s.key("b.example", "a.example", "D60000229F");
        assert_eq!(k.len(), 64);
        assert!(s.check(&k, "b.example", "a.example", "D60000229F"));
        assert!(!s.check(&k, "a.example", "b.example", "D60000229F"));
        assert!(!s.check(&k, "b.example", "a.example", "other"));
        assert!(!Secret::new([8; 32]).check(&k, "b.example", "a.example", "D60000229F"));
        assert!(!s.check("", "b.example", "a.example", "D60000229F"));
    }

    /// The inputs of XEP-0185's example (secret "s3cr3tf0rd14lb4ck",
    /// receiving "domain2.tld", originating "domain1.tld", stream id
    /// "D60000229F"); the key computed independently with Python's hmac.
    #[test]
    fn matches_the_xep_0185_example() {
        let s = Secret {
            hmac_key: hex(&Sha256::digest(b"s3cr3tf0rd14lb4ck")),
        };
        assert_eq!(
            s.key("domain2.tld", "domain1.tld", "D60000229F"),
            "5e598fae34b90be084fb6a4a8a543ceb33549140bac9d829ef8d734d900616e4"
        );
    }
}
