//! What storage keeps instead of a password: SCRAM's salt, iteration count,
//! StoredKey and ServerKey (RFC 5802 §3), one set per hash.
//!
//! With these the server can verify a SCRAM proof and sign its answer, and
//! verify a PLAIN password by re-deriving StoredKey, yet a stolen database
//! does not let anyone log in without first brute-forcing PBKDF2 per user.
//! [`SaltedPassword`] is the client-side intermediate, exposed so a client
//! that logs in many times (the benchmark tool) pays PBKDF2 once per account.

use std::fmt;

use crate::crypto;
use crate::error::SaslError;
use crate::mechanism::ScramHash;
use crate::saslprep;

/// PBKDF2 iteration count for new credentials: the minimum RFC 7677 §4
/// recommends, and what clients expect to handle quickly.
pub const DEFAULT_ITERATIONS: u32 = 4096;

/// Length of freshly generated salts in bytes (128 bits, as RFC 7677's
/// example and common servers use).
pub const SALT_LEN: usize = 16;

/// Stored SCRAM credentials for one hash.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredentials {
    /// Which hash the keys were derived with.
    pub hash: ScramHash,
    /// The per-user salt sent to the client in server-first.
    pub salt: Vec<u8>,
    /// The PBKDF2 iteration count sent to the client in server-first.
    pub iterations: u32,
    /// `H(HMAC(SaltedPassword, "Client Key"))`: checks a client proof.
    pub stored_key: Vec<u8>,
    /// `HMAC(SaltedPassword, "Server Key")`: signs server-final.
    pub server_key: Vec<u8>,
}

impl ScramCredentials {
    /// Derives credentials for a new password with a fresh random salt of
    /// [`SALT_LEN`] bytes. The password is SASLprep'd first.
    pub fn derive(password: &str, hash: ScramHash, iterations: u32) -> Result<Self, SaslError> {
        let salt = crypto::random_bytes(SALT_LEN)?;
        Self::derive_with_salt(password, hash, &salt, iterations)
    }

    /// Derives credentials with a given salt (imports, test vectors).
    pub fn derive_with_salt(
        password: &str,
        hash: ScramHash,
        salt: &[u8],
        iterations: u32,
    ) -> Result<Self, SaslError> {
        let salted = SaltedPassword::derive(password, hash, salt, iterations)?;
        Ok(Self::from_salted_password(&salted))
    }

    /// The stored form of an already computed SaltedPassword.
    pub fn from_salted_password(salted: &SaltedPassword) -> Self {
        let keys = Keys::from_salted_password(salted.hash, &salted.key);
        ScramCredentials {
            hash: salted.hash,
            salt: salted.salt.clone(),
            iterations: salted.iterations,
            stored_key: keys.stored_key,
            server_key: keys.server_key,
        }
    }

    /// True when the keys have the length the hash produces, i.e. the
    /// record is usable. Checked before use so that a corrupt record is a
    /// server error rather than a failed login.
    pub(crate) fn is_well_formed(&self) -> bool {
        self.stored_key.len() == self.hash.output_len()
            && self.server_key.len() == self.hash.output_len()
            && self.iterations > 0
            && !self.salt.is_empty()
    }
}

// StoredKey and ServerKey are not passwords, but ServerKey lets its holder
// impersonate the server to clients: keep both out of logs.
impl fmt::Debug for ScramCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramCredentials")
            .field("hash", &self.hash)
            .field("salt", &format_args!("<{} bytes>", self.salt.len()))
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// `SaltedPassword = Hi(SASLprep(password), salt, i)` together with the
/// parameters it was computed for, so that reuse with other parameters is
/// detectable.
#[derive(Clone, PartialEq, Eq)]
pub struct SaltedPassword {
    /// The hash `Hi` used.
    pub hash: ScramHash,
    /// The salt it was computed with.
    pub salt: Vec<u8>,
    /// The iteration count it was computed with.
    pub iterations: u32,
    /// The PBKDF2 output itself: equivalent to the password for logging in
    /// to this account, so treat it like one.
    pub key: Vec<u8>,
}

impl SaltedPassword {
    /// Runs PBKDF2: the expensive step, by design.
    pub fn derive(
        password: &str,
        hash: ScramHash,
        salt: &[u8],
        iterations: u32,
    ) -> Result<Self, SaslError> {
        let prepped = saslprep::prep_password(password)?;
        let key = crypto::hi(hash, prepped.as_bytes(), salt, iterations)?;
        Ok(SaltedPassword {
            hash,
            salt: salt.to_vec(),
            iterations,
            key,
        })
    }

    /// True when this value was computed for exactly these parameters.
    pub fn matches(&self, hash: ScramHash, salt: &[u8], iterations: u32) -> bool {
        self.hash == hash && self.salt == salt && self.iterations == iterations
    }
}

impl fmt::Debug for SaltedPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaltedPassword")
            .field("hash", &self.hash)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// The keys of RFC 5802 §3 that follow from a SaltedPassword.
pub(crate) struct Keys {
    pub(crate) client_key: Vec<u8>,
    pub(crate) stored_key: Vec<u8>,
    pub(crate) server_key: Vec<u8>,
}

impl Keys {
    pub(crate) fn from_salted_password(hash: ScramHash, salted_password: &[u8]) -> Self {
        let client_key = crypto::hmac(hash, salted_password, &[b"Client Key"]);
        let stored_key = crypto::h(hash, &client_key);
        let server_key = crypto::hmac(hash, salted_password, &[b"Server Key"]);
        Keys {
            client_key,
            stored_key,
            server_key,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine as _;

    #[test]
    fn rfc_7677_salt_and_password_give_keys_that_verify_its_proof() {
        // The keys themselves are not printed in RFC 7677; what matters is
        // that they reproduce its exchange, which scram_server's tests check.
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let creds =
            ScramCredentials::derive_with_salt("pencil", ScramHash::Sha256, &salt, 4096).unwrap();
        assert_eq!(creds.stored_key.len(), 32);
        assert_eq!(creds.server_key.len(), 32);
        assert!(creds.is_well_formed());
    }

    #[test]
    fn derive_draws_a_fresh_salt_each_time() {
        let a = ScramCredentials::derive("pw", ScramHash::Sha1, 2).unwrap();
        let b = ScramCredentials::derive("pw", ScramHash::Sha1, 2).unwrap();
        assert_eq!(a.salt.len(), SALT_LEN);
        assert_ne!(a.salt, b.salt);
        assert_ne!(a.stored_key, b.stored_key);
        assert_eq!(a.stored_key.len(), 20);
    }

    #[test]
    fn equivalent_unicode_passwords_derive_the_same_keys() {
        // U+2168 ROMAN NUMERAL NINE is "IX" after NFKC; U+00AD disappears.
        let a = ScramCredentials::derive_with_salt("IX", ScramHash::Sha256, b"salt", 2).unwrap();
        let b =
            ScramCredentials::derive_with_salt("\u{2168}", ScramHash::Sha256, b"salt", 2).unwrap();
        let c = ScramCredentials::derive_with_salt("I\u{00AD}X", ScramHash::Sha256, b"salt", 2)
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
    }

    #[test]
    fn bad_passwords_and_zero_iterations_are_refused() {
        assert_eq!(
            ScramCredentials::derive("", ScramHash::Sha256, 4096),
            Err(SaslError::InvalidPassword)
        );
        assert_eq!(
            ScramCredentials::derive("a\u{0000}b", ScramHash::Sha256, 4096),
            Err(SaslError::InvalidPassword)
        );
        assert_eq!(
            ScramCredentials::derive("pw", ScramHash::Sha256, 0),
            Err(SaslError::IterationCountOutOfRange(0))
        );
    }

    #[test]
    fn debug_output_hides_keys() {
        let creds = ScramCredentials::derive_with_salt("pw", ScramHash::Sha1, b"s", 1).unwrap();
        let shown = format!("{creds:?}");
        assert!(!shown.contains("stored_key"), "{shown}");
        assert!(!shown.contains("server_key"), "{shown}");
    }
}
