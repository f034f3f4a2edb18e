//! The HT ("hashed token") mechanisms of draft-schmaus-kitten-sasl-ht, as
//! XEP-0484 (FAST) uses them: `HT-SHA-256-NONE`, `-ENDP`
//! (tls-server-end-point) and `-EXPR` (tls-exporter). One message each
//! way: the client sends `authcid NUL HMAC(token, "Initiator" || cb)`, the
//! server answers `HMAC(token, "Responder" || cb)`.
//!
//! **What is stored.** A token is longer than SHA-256's 64-byte block, and
//! HMAC first hashes such a key (RFC 2104 §2), so `HMAC(token, m) ==
//! HMAC(SHA-256(token), m)`: the server needs only SHA-256 of the token.
//! That hash is as good as the token for logging in (HT, unlike SCRAM,
//! needs the key itself), so it is not stored either: storage keeps it
//! sealed ([`seal`]) under a key of the server's that lives outside the
//! database, and a copy of the database alone logs nobody in.

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::channel_binding::{ChannelBindingData, ChannelBindingType};
use crate::crypto::{ct_eq, hmac, random_bytes};
use crate::error::SaslError;
use crate::mechanism::ScramHash;

/// An HT mechanism we offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HtMechanism {
    Sha256None,
    Sha256Endp,
    Sha256Expr,
}

impl HtMechanism {
    /// Every HT mechanism, channel binding first (XEP-0484 §4.1: clients
    /// MUST prefer them).
    pub const ALL: [HtMechanism; 3] = [
        HtMechanism::Sha256Expr,
        HtMechanism::Sha256Endp,
        HtMechanism::Sha256None,
    ];

    pub fn name(self) -> &'static str {
        match self {
            HtMechanism::Sha256None => "HT-SHA-256-NONE",
            HtMechanism::Sha256Endp => "HT-SHA-256-ENDP",
            HtMechanism::Sha256Expr => "HT-SHA-256-EXPR",
        }
    }

    pub fn parse(name: &str) -> Option<HtMechanism> {
        HtMechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The channel binding the mechanism covers, if any.
    pub fn binding(self) -> Option<ChannelBindingType> {
        match self {
            HtMechanism::Sha256None => None,
            HtMechanism::Sha256Endp => Some(ChannelBindingType::TlsServerEndPoint),
            HtMechanism::Sha256Expr => Some(ChannelBindingType::TlsExporter),
        }
    }

    /// The mechanisms this connection can run: `-NONE` always, the others
    /// when TLS gives their binding data.
    pub fn available(cb: &ChannelBindingData) -> Vec<HtMechanism> {
        HtMechanism::ALL
            .into_iter()
            .filter(|m| m.binding().is_none_or(|t| cb.get(t).is_some()))
            .collect()
    }
}

/// The prefix of every token (RFC 8959's `secret-token:` URI scheme, which
/// secret scanners recognize).
const TOKEN_PREFIX: &str = "secret-token:chorus-fast-";
/// Random bytes per token: 384 bits.
const TOKEN_RANDOM: usize = 48;

/// A freshly issued token, to hand to the client once, and the hash to
/// store.
pub struct NewToken {
    pub token: String,
    pub hash: Vec<u8>,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewToken(..)")
    }
}

impl NewToken {
    pub fn generate() -> Result<NewToken, SaslError> {
        let random = random_bytes(TOKEN_RANDOM)?;
        let token = format!(
            "{TOKEN_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
        );
        let hash = token_hash(&token);
        Ok(NewToken { token, hash })
    }
}

/// What storage keeps for `token`: the key HMAC would derive from it.
/// Only tokens longer than the block are hashed by HMAC, and ours are.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Seals (or, applied again, opens) a token hash for storage: XOR with
/// `HMAC-SHA-256(key, "chorus-fast-seal" || context...)`, a keystream
/// unique to the token through its context (account, client, mechanism
/// and expiry, which change with every token issued).
pub fn seal(key: &[u8], hash: &[u8], context: &[&[u8]]) -> Vec<u8> {
    // Length-prefixed, so that ("ab", "c") and ("a", "bc") differ.
    let lens: Vec<[u8; 8]> = context
        .iter()
        .map(|c| (c.len() as u64).to_be_bytes())
        .collect();
    let mut parts: Vec<&[u8]> = vec![b"chorus-fast-seal"];
    for (c, len) in context.iter().zip(&lens) {
        parts.push(len);
        parts.push(c);
    }
    let stream = hmac(ScramHash::Sha256, key, &parts);
    hash.iter()
        .zip(stream.iter().cycle())
        .map(|(a, b)| a ^ b)
        .collect()
}

/// A 32-byte secret of the server's kept in the file at `path` (made on
/// first use, mode 0600, never overwritten): the FAST seal and the upload
/// URL signatures. Every reader of one file gets the same key; a file of
/// the wrong size is an error, not replaced, so that what it signed stays
/// valid once it is put back.
pub fn server_key(path: &std::path::Path) -> std::io::Result<[u8; 32]> {
    use std::io::{Error, ErrorKind, Write};
    use std::os::unix::fs::OpenOptionsExt;
    let read = |path: &std::path::Path| {
        let bytes = std::fs::read(path)?;
        <[u8; 32]>::try_from(bytes.as_slice())
            .map_err(|_| Error::new(ErrorKind::InvalidData, "a server key is 32 bytes"))
    };
    if path.exists() {
        return read(path);
    }
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|_| Error::other("no randomness"))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(&key));
    match created {
        Ok(()) => Ok(key),
        // Made meanwhile by another reader: theirs is the key.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => read(path),
        Err(e) => Err(e),
    }
}

/// The client's message, parsed.
#[derive(Debug)]
pub struct HtRequest {
    /// The authentication identity: the account's localpart.
    pub username: String,
    proof: Vec<u8>,
}

impl HtRequest {
    /// `authcid NUL hashed-token`.
    pub fn parse(payload: &[u8]) -> Result<HtRequest, SaslError> {
        let nul = payload
            .iter()
            .position(|&b| b == 0)
            .ok_or(SaslError::Malformed("HT message without NUL"))?;
        let (name, proof) = (&payload[..nul], &payload[nul + 1..]);
        let username = std::str::from_utf8(name)
            .map_err(|_| SaslError::Malformed("HT authcid is not UTF-8"))?;
        if username.is_empty() {
            return Err(SaslError::InvalidUsername);
        }
        if proof.len() != ScramHash::Sha256.output_len() {
            return Err(SaslError::Malformed("HT token hash of the wrong length"));
        }
        Ok(HtRequest {
            username: username.to_owned(),
            proof: proof.to_vec(),
        })
    }

    /// Checks the proof against a stored token hash: on success, the
    /// server's answer (the `<additional-data/>` of `<success/>`).
    pub fn verify(
        &self,
        mechanism: HtMechanism,
        cb: &ChannelBindingData,
        stored_hash: &[u8],
    ) -> Result<Vec<u8>, SaslError> {
        let cb_data: &[u8] = match mechanism.binding() {
            None => &[],
            Some(t) => cb.get(t).ok_or(SaslError::ChannelBindingUnavailable(t))?,
        };
        let expected = hmac(ScramHash::Sha256, stored_hash, &[b"Initiator", cb_data]);
        if !ct_eq(&expected, &self.proof) {
            return Err(SaslError::NotAuthorized);
        }
        Ok(hmac(
            ScramHash::Sha256,
            stored_hash,
            &[b"Responder", cb_data],
        ))
    }
}

/// The client side, for tests and tools: the initial message for `token`.
pub fn ht_client_message(
    mechanism: HtMechanism,
    username: &str,
    token: &str,
    cb: &ChannelBindingData,
) -> Result<Vec<u8>, SaslError> {
    let cb_data: &[u8] = match mechanism.binding() {
        None => &[],
        Some(t) => cb.get(t).ok_or(SaslError::ChannelBindingUnavailable(t))?,
    };
    let mut out = username.as_bytes().to_vec();
    out.push(0);
    out.extend(hmac(
        ScramHash::Sha256,
        token.as_bytes(),
        &[b"Initiator", cb_data],
    ));
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_longer_than_the_hmac_block_so_their_hash_verifies() {
        let t = NewToken::generate().unwrap();
        // The whole scheme rests on this (RFC 2104 §2).
        assert!(t.token.len() > 64, "{}", t.token.len());
        let cb = ChannelBindingData {
            tls_exporter: Some(vec![9; 32]),
            tls_server_end_point: None,
        };
        for m in [HtMechanism::Sha256None, HtMechanism::Sha256Expr] {
            let msg = ht_client_message(m, "juliet", &t.token, &cb).unwrap();
            let req = HtRequest::parse(&msg).unwrap();
            assert_eq!(req.username, "juliet");
            let answer = req.verify(m, &cb, &t.hash).unwrap();
            let expected = hmac(
                ScramHash::Sha256,
                t.token.as_bytes(),
                &[
                    b"Responder",
                    if m == HtMechanism::Sha256None {
                        &[]
                    } else {
                        &[9; 32]
                    },
                ],
            );
            assert_eq!(answer, expected);
        }
    }

    #[test]
    fn a_wrong_token_binding_or_mechanism_fails() {
        let t = NewToken::generate().unwrap();
        let other = NewToken::generate().unwrap();
        let cb = ChannelBindingData {
            tls_exporter: Some(vec![9; 32]),
            tls_server_end_point: Some(vec![8; 32]),
        };
        let msg = ht_client_message(HtMechanism::Sha256Expr, "j", &t.token, &cb).unwrap();
        let req = HtRequest::parse(&msg).unwrap();
        assert!(matches!(
            req.verify(HtMechanism::Sha256Expr, &cb, &other.hash),
            Err(SaslError::NotAuthorized)
        ));
        // The same proof under another binding (another TLS session).
        let moved = ChannelBindingData {
            tls_exporter: Some(vec![7; 32]),
            tls_server_end_point: None,
        };
        assert!(req
            .verify(HtMechanism::Sha256Expr, &moved, &t.hash)
            .is_err());
        assert!(req.verify(HtMechanism::Sha256Endp, &cb, &t.hash).is_err());
        assert!(req.verify(HtMechanism::Sha256None, &cb, &t.hash).is_err());
        // No binding data on this connection.
        assert!(matches!(
            req.verify(
                HtMechanism::Sha256Endp,
                &ChannelBindingData::none(),
                &t.hash
            ),
            Err(SaslError::ChannelBindingUnavailable(_))
        ));
    }

    #[test]
    fn sealing_twice_opens_and_the_context_matters() {
        let key = [5u8; 32];
        let hash = token_hash("secret-token:x");
        let sealed = seal(&key, &hash, &[b"alice@example.org", b"ua", b"1700000000"]);
        assert_ne!(sealed, hash);
        assert_eq!(
            seal(&key, &sealed, &[b"alice@example.org", b"ua", b"1700000000"]),
            hash
        );
        assert_ne!(
            seal(&key, &sealed, &[b"alice@example.org", b"ua", b"1700000001"]),
            hash
        );
        assert_ne!(
            seal(
                &[6u8; 32],
                &sealed,
                &[b"alice@example.org", b"ua", b"1700000000"]
            ),
            hash
        );
        assert_ne!(
            seal(&key, &hash, &[b"ab", b"c"]),
            seal(&key, &hash, &[b"a", b"bc"])
        );
    }

    #[test]
    fn a_server_key_is_made_once_and_read_back() {
        let dir = std::env::temp_dir().join(format!("chorus-key-{}", std::process::id()));
        let path = dir.join("k.key");
        let _ = std::fs::remove_file(&path);
        let a = server_key(&path).unwrap();
        assert_eq!(server_key(&path).unwrap(), a);
        assert_ne!(a, [0u8; 32]);
        std::fs::write(&path, b"short").unwrap();
        assert!(server_key(&path).is_err(), "a damaged key is not replaced");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn malformed_messages_are_refused() {
        assert!(HtRequest::parse(b"no-nul").is_err());
        assert!(HtRequest::parse(b"\0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").is_err());
        assert!(HtRequest::parse(b"user\0short").is_err());
        assert!(HtRequest::parse(&[0xff, 0, 1]).is_err());
        assert!(HtMechanism::parse("HT-SHA-256-UNIQ").is_none());
        assert_eq!(
            HtMechanism::available(&ChannelBindingData::none()),
            [HtMechanism::Sha256None]
        );
    }
}
