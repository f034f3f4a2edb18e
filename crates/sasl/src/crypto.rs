//! The SCRAM primitives of RFC 5802 §2.2 (`H`, `HMAC`, `Hi`), randomness, and
//! the per-process secret that disguises unknown users.
//!
//! Everything dispatches on [`ScramHash`] at run time instead of being generic
//! over a `Digest` type, so the state machines stay plain structs that the
//! stream layer can hold without type parameters.

use std::sync::OnceLock;

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::SaslError;
use crate::mechanism::ScramHash;

/// `H(data)`.
pub(crate) fn h(hash: ScramHash, data: &[u8]) -> Vec<u8> {
    match hash {
        ScramHash::Sha1 => Sha1::digest(data).to_vec(),
        ScramHash::Sha256 => Sha256::digest(data).to_vec(),
    }
}

/// `HMAC(key, part1 || part2 || ...)`: the parts avoid building AuthMessage
/// twice.
pub(crate) fn hmac(hash: ScramHash, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    match hash {
        ScramHash::Sha1 => mac::<Hmac<Sha1>>(key, parts),
        ScramHash::Sha256 => mac::<Hmac<Sha256>>(key, parts),
    }
}

fn mac<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC hashes over-long keys and pads short ones (RFC 2104 §2), so
    // `new_from_slice` cannot fail for it; none of our keys come from a peer.
    #[allow(clippy::expect_used)]
    let mut m = <M as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        m.update(part);
    }
    m.finalize().into_bytes().to_vec()
}

/// `Hi(password, salt, i)`, which is PBKDF2 with HMAC and an output of one
/// hash length (RFC 5802 §2.2).
pub(crate) fn hi(
    hash: ScramHash,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
) -> Result<Vec<u8>, SaslError> {
    if iterations == 0 {
        return Err(SaslError::IterationCountOutOfRange(iterations));
    }
    let mut out = vec![0; hash.output_len()];
    match hash {
        ScramHash::Sha1 => pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, iterations, &mut out),
        ScramHash::Sha256 => pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out),
    }
    Ok(out)
}

/// Byte-wise XOR of two equally long strings (ClientProof = ClientKey XOR
/// ClientSignature, and back).
pub(crate) fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// Constant-time equality, so that comparing a forged key with the real one
/// leaks nothing about how many leading bytes matched.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// `len` bytes from the operating system's CSPRNG.
pub(crate) fn random_bytes(len: usize) -> Result<Vec<u8>, SaslError> {
    let mut buf = vec![0; len];
    getrandom::fill(&mut buf).map_err(|_| SaslError::TemporaryAuthFailure("no randomness"))?;
    Ok(buf)
}

static PROCESS_SECRET: OnceLock<[u8; 32]> = OnceLock::new();

/// A random key drawn once per process. Fake salts derived from it are stable
/// while the server runs, so asking twice for an unknown user returns the
/// same salt, exactly as for a real one; they change on restart, which real
/// salts do not, but an attacker who can restart the server has better tools.
pub(crate) fn process_secret() -> Result<&'static [u8; 32], SaslError> {
    if let Some(secret) = PROCESS_SECRET.get() {
        return Ok(secret);
    }
    let mut fresh = [0; 32];
    getrandom::fill(&mut fresh).map_err(|_| SaslError::TemporaryAuthFailure("no randomness"))?;
    // Losing the race to another thread is fine: everyone uses the winner.
    Ok(PROCESS_SECRET.get_or_init(|| fresh))
}

/// Stands in for ScramCredentials of a user that does not exist: salt,
/// StoredKey and ServerKey are HMACs of the username under the process
/// secret, so they are as stable and as random-looking as real ones.
pub(crate) struct FakeKeys {
    pub(crate) salt: Vec<u8>,
    pub(crate) stored_key: Vec<u8>,
    pub(crate) server_key: Vec<u8>,
}

pub(crate) fn fake_keys(
    hash: ScramHash,
    username: &str,
    salt_len: usize,
) -> Result<FakeKeys, SaslError> {
    let secret = process_secret()?;
    let derive = |label: &[u8]| {
        hmac(
            ScramHash::Sha256,
            secret,
            &[label, hash.name().as_bytes(), b"\0", username.as_bytes()],
        )
    };
    let mut salt = derive(b"chorus-sasl fake salt\0");
    salt.truncate(salt_len);
    let mut stored_key = derive(b"chorus-sasl fake stored key\0");
    stored_key.truncate(hash.output_len());
    let mut server_key = derive(b"chorus-sasl fake server key\0");
    server_key.truncate(hash.output_len());
    Ok(FakeKeys {
        salt,
        stored_key,
        server_key,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hi_matches_the_pbkdf2_reference_for_one_iteration() {
        // RFC 6070 test vector 1: PBKDF2-HMAC-SHA1("password", "salt", 1).
        let out = hi(ScramHash::Sha1, b"password", b"salt", 1).unwrap();
        assert_eq!(
            out,
            [
                0x0c, 0x60, 0xc8, 0x0f, 0x96, 0x1f, 0x0e, 0x71, 0xf3, 0xa9, 0xb5, 0x24, 0xaf, 0x60,
                0x12, 0x06, 0x2f, 0xe0, 0x37, 0xa6
            ]
        );
    }

    #[test]
    fn hi_refuses_zero_iterations() {
        assert_eq!(
            hi(ScramHash::Sha256, b"p", b"s", 0),
            Err(SaslError::IterationCountOutOfRange(0))
        );
    }

    #[test]
    fn fake_keys_are_stable_per_user_and_differ_between_users() {
        let a1 = fake_keys(ScramHash::Sha256, "alice", 16).unwrap();
        let a2 = fake_keys(ScramHash::Sha256, "alice", 16).unwrap();
        let b = fake_keys(ScramHash::Sha256, "bob", 16).unwrap();
        assert_eq!(a1.salt, a2.salt);
        assert_ne!(a1.salt, b.salt);
        assert_eq!(a1.salt.len(), 16);
        assert_eq!(a1.stored_key.len(), 32);
        let sha1 = fake_keys(ScramHash::Sha1, "alice", 16).unwrap();
        assert_eq!(sha1.server_key.len(), 20);
        assert_ne!(sha1.salt, a1.salt);
    }
}
