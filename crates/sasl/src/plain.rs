//! SASL PLAIN (RFC 4616), verified against stored SCRAM credentials.
//!
//! Storage holds no passwords, so PLAIN is checked the way SCRAM would
//! derive its keys: `Hi(SASLprep(password), salt, i)` with the stored salt
//! and count, then StoredKey compared in constant time. That costs one
//! PBKDF2 per attempt, which is the point: it is what makes guessing slow.
//!
//! Sans-I/O split, as for SCRAM: [`PlainRequest::parse`], then the caller
//! looks up [`PlainRequest::username`], then [`PlainRequest::verify`].
//! [`verify_plain`] chains the three for a synchronous lookup. As with
//! SCRAM, the caller checks the authzid (see the crate docs).
//!
//! PLAIN sends the password in the clear: offering it only over TLS is the
//! caller's policy ([`crate::SaslError::EncryptionRequired`]).

use std::fmt;

use crate::credentials::{Keys, ScramCredentials, DEFAULT_ITERATIONS, SALT_LEN};
use crate::crypto;
use crate::error::SaslError;
use crate::mechanism::ScramHash;
use crate::saslprep;

/// A parsed PLAIN message, waiting for the account lookup.
#[derive(Clone)]
pub struct PlainRequest {
    authzid: Option<String>,
    username: String,
    /// Already SASLprep'd.
    password: String,
}

/// A successful PLAIN authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainOutcome {
    /// The SASLprep'd authentication identity.
    pub username: String,
    /// The requested authorization identity, still to be checked by the
    /// caller.
    pub authzid: Option<String>,
}

impl PlainRequest {
    /// Parses `[authzid] NUL authcid NUL passwd`. Username and password are
    /// SASLprep'd; the authzid is kept as sent (it is a JID, normalized by
    /// the caller).
    ///
    /// A password that SASLprep rejects cannot match any stored credentials
    /// (they were derived from prepared passwords), so it is
    /// `not-authorized` like any wrong password, decided before the lookup so
    /// that it says nothing about the account.
    pub fn parse(message: &[u8]) -> Result<Self, SaslError> {
        let mut fields = message.split(|b| *b == 0);
        let (Some(authzid), Some(authcid), Some(password), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(SaslError::Malformed(
                "PLAIN needs exactly two NUL separators",
            ));
        };
        let text = |field: &[u8]| {
            std::str::from_utf8(field)
                .map(str::to_owned)
                .map_err(|_| SaslError::Malformed("PLAIN field is not UTF-8"))
        };
        let authzid = match text(authzid)? {
            a if a.is_empty() => None,
            a => Some(a),
        };
        let username = saslprep::prep_username(&text(authcid)?)?;
        let password = text(password)?;
        if password.is_empty() {
            return Err(SaslError::Malformed("PLAIN password is empty"));
        }
        let password = saslprep::prep_password(&password).map_err(|_| SaslError::NotAuthorized)?;
        Ok(PlainRequest {
            authzid,
            username,
            password,
        })
    }

    /// The SASLprep'd username to look up.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The requested authorization identity, if any.
    pub fn authzid(&self) -> Option<&str> {
        self.authzid.as_deref()
    }

    /// Checks the password against the account's stored credentials (any
    /// hash will do; SHA-256 is the natural choice), or `None` for an unknown
    /// user. An unknown user still costs one PBKDF2-SHA-256 of
    /// [`DEFAULT_ITERATIONS`] rounds, so response time does not tell which
    /// accounts exist (as long as real accounts use that count too).
    pub fn verify(
        &self,
        credentials: Option<&ScramCredentials>,
    ) -> Result<PlainOutcome, SaslError> {
        let password = self.password.as_bytes();
        let matches = match credentials {
            Some(creds) => {
                if !creds.is_well_formed() {
                    return Err(SaslError::TemporaryAuthFailure(
                        "stored credentials are corrupt",
                    ));
                }
                let salted = crypto::hi(creds.hash, password, &creds.salt, creds.iterations)?;
                let keys = Keys::from_salted_password(creds.hash, &salted);
                crypto::ct_eq(&keys.stored_key, &creds.stored_key)
            }
            None => {
                let hash = ScramHash::Sha256;
                let fake = crypto::fake_keys(hash, &self.username, SALT_LEN)?;
                let salted = crypto::hi(hash, password, &fake.salt, DEFAULT_ITERATIONS)?;
                let keys = Keys::from_salted_password(hash, &salted);
                // Compared only to spend the same time; never a success.
                let _ = crypto::ct_eq(&keys.stored_key, &fake.stored_key);
                false
            }
        };
        if !matches {
            return Err(SaslError::NotAuthorized);
        }
        Ok(PlainOutcome {
            username: self.username.clone(),
            authzid: self.authzid.clone(),
        })
    }
}

// Holds a cleartext password: show everything but that.
impl fmt::Debug for PlainRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainRequest")
            .field("authzid", &self.authzid)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Parses, looks up and verifies in one call, for callers whose lookup is
/// synchronous (tests, an in-memory store).
pub fn verify_plain(
    message: &[u8],
    lookup: impl FnOnce(&str) -> Option<ScramCredentials>,
) -> Result<PlainOutcome, SaslError> {
    let request = PlainRequest::parse(message)?;
    let credentials = lookup(request.username());
    request.verify(credentials.as_ref())
}

/// Builds a PLAIN message (client side): `[authzid] NUL user NUL pass`.
/// Strings are sent as given; the server applies SASLprep.
pub fn plain_message(authzid: Option<&str>, username: &str, password: &str) -> Vec<u8> {
    let authzid = authzid.unwrap_or_default();
    let mut message = Vec::with_capacity(authzid.len() + username.len() + password.len() + 2);
    message.extend_from_slice(authzid.as_bytes());
    message.push(0);
    message.extend_from_slice(username.as_bytes());
    message.push(0);
    message.extend_from_slice(password.as_bytes());
    message
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::error::Condition;

    #[test]
    fn parse_splits_the_three_fields() {
        let request = PlainRequest::parse(b"admin@example.org\0juliet\0secret").unwrap();
        assert_eq!(request.authzid(), Some("admin@example.org"));
        assert_eq!(request.username(), "juliet");
        let request = PlainRequest::parse(&plain_message(None, "romeo", "pw")).unwrap();
        assert_eq!(request.authzid(), None);
        assert_eq!(request.username(), "romeo");
    }

    #[test]
    fn malformed_messages_are_malformed_requests() {
        for bad in [
            &b"juliet\0secret"[..],
            b"\0juliet\0secret\0",
            b"\0\0secret",
            b"\0juliet\0",
            b"\0jul\xffiet\0secret",
            b"\xff\0juliet\0secret",
            b"",
        ] {
            let err = PlainRequest::parse(bad).unwrap_err();
            assert_eq!(err.condition(), Condition::MalformedRequest, "{bad:?}");
        }
    }

    #[test]
    fn a_password_saslprep_rejects_is_not_authorized() {
        let err = PlainRequest::parse(b"\0juliet\0bad\x07password").unwrap_err();
        assert_eq!(err, SaslError::NotAuthorized);
    }

    #[test]
    fn debug_output_hides_the_password() {
        let request = PlainRequest::parse(b"\0juliet\0hunter2").unwrap();
        assert!(!format!("{request:?}").contains("hunter2"));
    }
}
