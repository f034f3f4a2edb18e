//! The one error type of the crate, and the RFC 6120 §6.5 failure condition
//! each error maps to.
//!
//! Every way a SASL exchange can fail is a [`SaslError`] variant, so the
//! stream layer never has to guess which `<failure/>` child to send: it calls
//! [`SaslError::condition`] and serializes [`Condition::as_str`]. The variant
//! itself (and its `Display` text) is for logs; it is deliberately more
//! precise than what the peer is told, because telling an attacker *why* a
//! proof failed only helps the attacker.

use crate::channel_binding::ChannelBindingType;

/// The defined conditions of RFC 6120 §6.5, i.e. the child element of a SASL
/// `<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Condition {
    /// §6.5.1: the receiving entity acknowledges an `<abort/>`.
    Aborted,
    /// §6.5.2: the account has been disabled.
    AccountDisabled,
    /// §6.5.3: the credentials have expired.
    CredentialsExpired,
    /// §6.5.4: the mechanism needs a confidentiality layer (TLS) first.
    EncryptionRequired,
    /// §6.5.5: the XML character data was not valid base64.
    IncorrectEncoding,
    /// §6.5.6: the authzid is malformed or the authcid may not act as it.
    InvalidAuthzid,
    /// §6.5.7: the mechanism is unknown or not offered.
    InvalidMechanism,
    /// §6.5.8: the request is malformed.
    MalformedRequest,
    /// §6.5.9: the mechanism is weaker than server policy allows.
    MechanismTooWeak,
    /// §6.5.10: wrong credentials (also used for unknown users, on purpose).
    NotAuthorized,
    /// §6.5.11: a temporary server-side problem; the client may retry.
    TemporaryAuthFailure,
}

impl Condition {
    /// The element name, e.g. `"not-authorized"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Aborted => "aborted",
            Condition::AccountDisabled => "account-disabled",
            Condition::CredentialsExpired => "credentials-expired",
            Condition::EncryptionRequired => "encryption-required",
            Condition::IncorrectEncoding => "incorrect-encoding",
            Condition::InvalidAuthzid => "invalid-authzid",
            Condition::InvalidMechanism => "invalid-mechanism",
            Condition::MalformedRequest => "malformed-request",
            Condition::MechanismTooWeak => "mechanism-too-weak",
            Condition::NotAuthorized => "not-authorized",
            Condition::TemporaryAuthFailure => "temporary-auth-failure",
        }
    }
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a SASL exchange failed. [`SaslError::condition`] says what the peer is
/// told; the variant says what the log is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    /// The payload of `<auth/>` or `<response/>` was not valid base64
    /// (RFC 6120 §6.4.2).
    #[error("payload is not valid base64")]
    IncorrectEncoding,

    /// The mechanism message does not follow its grammar: bad base64 or
    /// UTF-8 inside it, a missing or misplaced attribute, a bad `=XX` escape,
    /// a proof of the wrong length. The text names the rule that broke.
    #[error("malformed SASL message: {0}")]
    Malformed(&'static str),

    /// SCRAM `m=` (RFC 5802 §5.1): a mandatory extension we do not know, so
    /// authentication must fail.
    #[error("SCRAM mandatory extension (m=) is not supported")]
    UnsupportedExtension,

    /// The username did not survive SASLprep (RFC 4013), or was empty.
    #[error("username is empty or rejected by SASLprep")]
    InvalidUsername,

    /// The password did not survive SASLprep or was empty when deriving
    /// credentials (registration, password change, a client).
    #[error("password is empty or rejected by SASLprep")]
    InvalidPassword,

    /// The client sent `y` although a -PLUS mechanism was offered: it thinks
    /// the server cannot do channel binding, so someone removed the -PLUS
    /// mechanisms from the feature list on the way (RFC 5802 §6).
    #[error("channel binding downgrade: client sent 'y' but -PLUS was advertised")]
    ChannelBindingDowngrade,

    /// `p=` with a mechanism without -PLUS (RFC 5802 §6).
    #[error("channel binding requested with a non-PLUS mechanism")]
    ChannelBindingNotExpected,

    /// A -PLUS mechanism with a gs2 header of `n` or `y`.
    #[error("-PLUS mechanism without channel binding (p=)")]
    ChannelBindingRequired,

    /// `p=<name>` names a type this crate does not implement (e.g.
    /// `tls-unique`, which RFC 9266 retires for TLS 1.3).
    #[error("unsupported channel binding type {0:?}")]
    UnsupportedChannelBindingType(String),

    /// The type is known, but the TLS layer has no data for it on this
    /// connection (e.g. `tls-server-end-point` with no certificate hash).
    #[error("channel binding data for {} is not available", .0.name())]
    ChannelBindingUnavailable(ChannelBindingType),

    /// The `c=` attribute is not base64(gs2 header + our binding data): the
    /// client sees a different TLS session than we do, i.e. a man in the
    /// middle, or it mangled its own header.
    #[error("channel binding data does not match")]
    ChannelBindingMismatch,

    /// The nonce of client-final is not the one of server-first (replay, or
    /// a server that did not extend the client nonce, on the client side).
    #[error("nonce mismatch")]
    NonceMismatch,

    /// Wrong password, or an unknown user: both look the same on purpose.
    #[error("authentication failed")]
    NotAuthorized,

    /// The authzid is not one the authenticated user may act as. The crate
    /// never returns it itself (it has no domain); the caller does.
    #[error("invalid authorization identity")]
    InvalidAuthzid,

    /// The mechanism name is unknown, or not offered on this stream.
    #[error("invalid mechanism {0:?}")]
    InvalidMechanism(String),

    /// Policy: the mechanism needs TLS first (e.g. PLAIN in the clear).
    #[error("encryption required")]
    EncryptionRequired,

    /// Policy: the mechanism is weaker than allowed.
    #[error("mechanism too weak")]
    MechanismTooWeak,

    /// The client aborted the exchange.
    #[error("aborted")]
    Aborted,

    /// The account exists but is disabled.
    #[error("account disabled")]
    AccountDisabled,

    /// The account's credentials have expired.
    #[error("credentials expired")]
    CredentialsExpired,

    /// A server-side problem that is not the client's fault: no randomness,
    /// stored credentials that do not fit the mechanism, a storage error
    /// reported by the caller.
    #[error("temporary authentication failure: {0}")]
    TemporaryAuthFailure(&'static str),

    /// A method was called in the wrong state, e.g. a second client-final.
    /// Reaching this from the network means the peer sent an extra
    /// `<response/>`, which is a malformed exchange.
    #[error("SASL message out of order")]
    OutOfOrder,

    /// Client side: the server answered with `e=<value>` (RFC 5802 §7).
    #[error("server reported SCRAM error {0:?}")]
    ServerError(String),

    /// Client side: the server signature (`v=`) is wrong, so the server does
    /// not know our credentials and must not be trusted.
    #[error("server signature does not verify")]
    InvalidServerSignature,

    /// An iteration count of zero, or (client side) above the limit that
    /// protects a client from a server that asks for years of PBKDF2.
    #[error("iteration count {0} out of range")]
    IterationCountOutOfRange(u32),
}

impl SaslError {
    /// The RFC 6120 §6.5 condition to send in `<failure/>`.
    ///
    /// Channel binding checks that fail because of what the client *saw*
    /// (a downgrade, a mismatched `c=`) are `not-authorized`: the exchange was
    /// well formed, but the identity proof it carries is void. Requests that
    /// break the protocol's own rules (`p=` with a non-PLUS mechanism, a type
    /// we never offered) are `malformed-request`.
    pub fn condition(&self) -> Condition {
        match self {
            SaslError::IncorrectEncoding => Condition::IncorrectEncoding,
            SaslError::Malformed(_)
            | SaslError::UnsupportedExtension
            | SaslError::InvalidUsername
            | SaslError::InvalidPassword
            | SaslError::ChannelBindingNotExpected
            | SaslError::ChannelBindingRequired
            | SaslError::UnsupportedChannelBindingType(_)
            | SaslError::ChannelBindingUnavailable(_)
            | SaslError::OutOfOrder
            | SaslError::IterationCountOutOfRange(_) => Condition::MalformedRequest,
            SaslError::ChannelBindingDowngrade
            | SaslError::ChannelBindingMismatch
            | SaslError::NonceMismatch
            | SaslError::NotAuthorized
            | SaslError::ServerError(_)
            | SaslError::InvalidServerSignature => Condition::NotAuthorized,
            SaslError::InvalidAuthzid => Condition::InvalidAuthzid,
            SaslError::InvalidMechanism(_) => Condition::InvalidMechanism,
            SaslError::EncryptionRequired => Condition::EncryptionRequired,
            SaslError::MechanismTooWeak => Condition::MechanismTooWeak,
            SaslError::Aborted => Condition::Aborted,
            SaslError::AccountDisabled => Condition::AccountDisabled,
            SaslError::CredentialsExpired => Condition::CredentialsExpired,
            SaslError::TemporaryAuthFailure(_) => Condition::TemporaryAuthFailure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_condition_has_its_rfc_6120_element_name() {
        let all = [
            (Condition::Aborted, "aborted"),
            (Condition::AccountDisabled, "account-disabled"),
            (Condition::CredentialsExpired, "credentials-expired"),
            (Condition::EncryptionRequired, "encryption-required"),
            (Condition::IncorrectEncoding, "incorrect-encoding"),
            (Condition::InvalidAuthzid, "invalid-authzid"),
            (Condition::InvalidMechanism, "invalid-mechanism"),
            (Condition::MalformedRequest, "malformed-request"),
            (Condition::MechanismTooWeak, "mechanism-too-weak"),
            (Condition::NotAuthorized, "not-authorized"),
            (Condition::TemporaryAuthFailure, "temporary-auth-failure"),
        ];
        for (condition, name) in all {
            assert_eq!(condition.as_str(), name);
            assert_eq!(condition.to_string(), name);
        }
    }

    #[test]
    fn policy_errors_map_to_their_own_conditions() {
        assert_eq!(SaslError::Aborted.condition(), Condition::Aborted);
        assert_eq!(
            SaslError::AccountDisabled.condition(),
            Condition::AccountDisabled
        );
        assert_eq!(
            SaslError::CredentialsExpired.condition(),
            Condition::CredentialsExpired
        );
        assert_eq!(
            SaslError::EncryptionRequired.condition(),
            Condition::EncryptionRequired
        );
        assert_eq!(
            SaslError::MechanismTooWeak.condition(),
            Condition::MechanismTooWeak
        );
        assert_eq!(
            SaslError::InvalidAuthzid.condition(),
            Condition::InvalidAuthzid
        );
        assert_eq!(
            SaslError::TemporaryAuthFailure("storage").condition(),
            Condition::TemporaryAuthFailure
        );
    }
}
