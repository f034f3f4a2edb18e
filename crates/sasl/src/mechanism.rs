//! The SASL mechanisms Chorus implements and the hash behind each SCRAM one.
//!
//! Names are the IANA SASL registry names (RFC 5802 §4 for SCRAM-SHA-1,
//! RFC 7677 for SCRAM-SHA-256). They are matched exactly: RFC 4422 §3.1
//! defines mechanism names as upper-case, and accepting variants would only
//! let a client name something the stream features never offered.

use std::fmt;
use std::str::FromStr;

use crate::error::SaslError;

/// A hash function SCRAM is instantiated with. Stored credentials are per
/// hash: a SCRAM-SHA-1 login needs SHA-1 keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScramHash {
    /// SHA-1, for SCRAM-SHA-1(-PLUS), kept for older clients.
    Sha1,
    /// SHA-256, for SCRAM-SHA-256(-PLUS) (RFC 7677).
    Sha256,
}

impl ScramHash {
    /// Both hashes, strongest first.
    pub const ALL: [ScramHash; 2] = [ScramHash::Sha256, ScramHash::Sha1];

    /// The hash name as it appears in the mechanism name, e.g. `"SHA-256"`.
    pub fn name(self) -> &'static str {
        match self {
            ScramHash::Sha1 => "SHA-1",
            ScramHash::Sha256 => "SHA-256",
        }
    }

    /// Output length in bytes: the length of StoredKey, ServerKey, proofs
    /// and signatures.
    pub fn output_len(self) -> usize {
        match self {
            ScramHash::Sha1 => 20,
            ScramHash::Sha256 => 32,
        }
    }
}

impl fmt::Display for ScramHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A SASL mechanism this crate implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// `SCRAM-SHA-1` (RFC 5802).
    ScramSha1,
    /// `SCRAM-SHA-1-PLUS`: SCRAM-SHA-1 with channel binding.
    ScramSha1Plus,
    /// `SCRAM-SHA-256` (RFC 7677).
    ScramSha256,
    /// `SCRAM-SHA-256-PLUS`: SCRAM-SHA-256 with channel binding.
    ScramSha256Plus,
    /// `PLAIN` (RFC 4616): the password in the clear, so only over TLS.
    Plain,
}

impl Mechanism {
    /// Every mechanism in server preference order (strongest first), the
    /// order in which stream features should list them.
    pub const ALL: [Mechanism; 5] = [
        Mechanism::ScramSha256Plus,
        Mechanism::ScramSha1Plus,
        Mechanism::ScramSha256,
        Mechanism::ScramSha1,
        Mechanism::Plain,
    ];

    /// The registered name, e.g. `"SCRAM-SHA-256-PLUS"`.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::ScramSha1 => "SCRAM-SHA-1",
            Mechanism::ScramSha1Plus => "SCRAM-SHA-1-PLUS",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha256Plus => "SCRAM-SHA-256-PLUS",
            Mechanism::Plain => "PLAIN",
        }
    }

    /// The SCRAM mechanism for a hash, with or without channel binding.
    pub fn scram(hash: ScramHash, plus: bool) -> Mechanism {
        match (hash, plus) {
            (ScramHash::Sha1, false) => Mechanism::ScramSha1,
            (ScramHash::Sha1, true) => Mechanism::ScramSha1Plus,
            (ScramHash::Sha256, false) => Mechanism::ScramSha256,
            (ScramHash::Sha256, true) => Mechanism::ScramSha256Plus,
        }
    }

    /// True for the -PLUS (channel binding) variants.
    pub fn is_plus(self) -> bool {
        matches!(self, Mechanism::ScramSha1Plus | Mechanism::ScramSha256Plus)
    }

    /// True for every SCRAM variant.
    pub fn is_scram(self) -> bool {
        self.hash().is_some()
    }

    /// The SCRAM hash, or `None` for PLAIN.
    pub fn hash(self) -> Option<ScramHash> {
        match self {
            Mechanism::ScramSha1 | Mechanism::ScramSha1Plus => Some(ScramHash::Sha1),
            Mechanism::ScramSha256 | Mechanism::ScramSha256Plus => Some(ScramHash::Sha256),
            Mechanism::Plain => None,
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mechanism {
    type Err = SaslError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mechanism::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| SaslError::InvalidMechanism(s.to_owned()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::error::Condition;

    #[test]
    fn names_round_trip_through_from_str() {
        for m in Mechanism::ALL {
            assert_eq!(m.name().parse::<Mechanism>().unwrap(), m);
            assert_eq!(m.to_string(), m.name());
        }
        assert_eq!(Mechanism::ScramSha256Plus.name(), "SCRAM-SHA-256-PLUS");
    }

    #[test]
    fn unknown_or_lower_case_names_are_invalid_mechanism() {
        for name in ["DIGEST-MD5", "scram-sha-1", "SCRAM-SHA-512", "", "PLAIN "] {
            let err = name.parse::<Mechanism>().unwrap_err();
            assert_eq!(err.condition(), Condition::InvalidMechanism, "{name}");
        }
    }

    #[test]
    fn plus_and_hash_are_consistent_with_scram() {
        for hash in ScramHash::ALL {
            for plus in [false, true] {
                let m = Mechanism::scram(hash, plus);
                assert_eq!(m.hash(), Some(hash));
                assert_eq!(m.is_plus(), plus);
                assert!(m.is_scram());
                assert!(m.name().contains(hash.name()));
            }
        }
        assert_eq!(Mechanism::Plain.hash(), None);
        assert!(!Mechanism::Plain.is_plus());
    }
}
