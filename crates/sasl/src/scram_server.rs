//! The server side of SCRAM-SHA-1/-256 and their -PLUS variants (RFC 5802,
//! RFC 7677) as a sans-I/O state machine.
//!
//! The stream layer owns the socket and the account store; this type only
//! turns bytes into bytes. One exchange is:
//!
//! 1. [`ScramServer::handle_client_first`] parses `<auth/>`'s payload and
//!    returns the username to look up;
//! 2. the caller looks the user up (asynchronously, wherever) and passes the
//!    result to [`ScramServer::server_first`], which answers in
//!    `<challenge/>`;
//! 3. [`ScramServer::handle_client_final`] checks `<response/>` and returns
//!    the payload of `<success/>` and who logged in.
//!
//! Any error ends the exchange: later calls return [`SaslError::OutOfOrder`].
//!
//! **Authzid:** this crate has no notion of domains, so it does not decide
//! whether an authzid is acceptable. It returns it decoded in
//! [`ClientFirst::authzid`] and [`ScramOutcome::authzid`]; the caller must
//! compare it with the bare JID `username@domain` (after JID normalization)
//! and answer [`SaslError::InvalidAuthzid`] unless it is absent or equal.

use crate::channel_binding::{ChannelBindingData, ChannelBindingType};
use crate::credentials::{ScramCredentials, DEFAULT_ITERATIONS, SALT_LEN};
use crate::crypto;
use crate::error::SaslError;
use crate::mechanism::{Mechanism, ScramHash};
use crate::saslprep;
use crate::scram_message::{self, b64_encode, CbindFlag};

/// Random bytes in the server's part of the nonce; 18 bytes are 24 base64
/// characters with no padding, and 144 bits never repeat in practice.
const SERVER_NONCE_BYTES: usize = 18;

/// What client-first says, for the account lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    /// The authentication identity: `n=` with `=2C`/`=3D` decoded, then
    /// SASLprep'd. A localpart candidate; the caller still applies the JID
    /// localpart profile before using it as a key.
    pub username: String,
    /// The requested authorization identity (`a=`), decoded, not otherwise
    /// normalized. See the module docs for who checks it.
    pub authzid: Option<String>,
    /// The channel binding type the client bound to, for -PLUS.
    pub channel_binding: Option<ChannelBindingType>,
}

/// A successful exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramOutcome {
    /// Who proved knowledge of the password (as in [`ClientFirst`]).
    pub username: String,
    /// The requested authorization identity, still to be checked by the
    /// caller.
    pub authzid: Option<String>,
    /// The channel binding type that was verified, if any.
    pub channel_binding: Option<ChannelBindingType>,
}

/// Client-first, kept until the end because AuthMessage and `c=` need it.
struct FirstState {
    gs2_header: String,
    bare: String,
    client_nonce: String,
    username: String,
    authzid: Option<String>,
    channel_binding: Option<ChannelBindingType>,
}

struct ChallengeState {
    first: FirstState,
    server_first: String,
    nonce: String,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
    /// False when the keys are fakes for an unknown user: the proof is then
    /// checked all the same (same work, same timing) and refused.
    known_user: bool,
}

enum State {
    AwaitingClientFirst,
    AwaitingLookup(FirstState),
    AwaitingClientFinal(ChallengeState),
    Finished,
}

/// One SCRAM exchange on the server side. Create one per `<auth/>`.
pub struct ScramServer {
    mechanism: Mechanism,
    channel_binding: ChannelBindingData,
    plus_advertised: bool,
    unknown_user_iterations: u32,
    state: State,
    #[cfg(test)]
    fixed_nonce: Option<String>,
}

impl ScramServer {
    /// Starts an exchange for `mechanism`.
    ///
    /// `channel_binding` is what the TLS layer knows about this connection;
    /// `plus_advertised` says whether the stream features offered any -PLUS
    /// mechanism, which turns a client's `y` flag into a detected downgrade.
    /// A mechanism without a hash (PLAIN) makes the first message fail with
    /// [`SaslError::InvalidMechanism`].
    pub fn new(
        mechanism: Mechanism,
        channel_binding: ChannelBindingData,
        plus_advertised: bool,
    ) -> Self {
        ScramServer {
            mechanism,
            channel_binding,
            plus_advertised,
            unknown_user_iterations: DEFAULT_ITERATIONS,
            state: State::AwaitingClientFirst,
            #[cfg(test)]
            fixed_nonce: None,
        }
    }

    /// The iteration count announced for users that do not exist. Set it to
    /// what real accounts use (default [`DEFAULT_ITERATIONS`]), or the count
    /// alone tells an attacker which usernames are real.
    pub fn with_unknown_user_iterations(mut self, iterations: u32) -> Self {
        self.unknown_user_iterations = iterations.max(1);
        self
    }

    /// The mechanism this exchange runs.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    #[cfg(test)]
    pub(crate) fn with_fixed_nonce(mut self, nonce: &str) -> Self {
        self.fixed_nonce = Some(nonce.to_owned());
        self
    }

    fn hash(&self) -> Result<ScramHash, SaslError> {
        self.mechanism
            .hash()
            .ok_or_else(|| SaslError::InvalidMechanism(self.mechanism.name().to_owned()))
    }

    /// Parses client-first (the initial response of `<auth/>`) and applies
    /// the RFC 5802 §6 / RFC 5056 channel binding rules that can be decided
    /// before the lookup.
    pub fn handle_client_first(&mut self, message: &[u8]) -> Result<ClientFirst, SaslError> {
        let State::AwaitingClientFirst = std::mem::replace(&mut self.state, State::Finished) else {
            return Err(SaslError::OutOfOrder);
        };
        self.hash()?;
        let message = scram_message::utf8(message)?;
        let parsed = scram_message::parse_client_first(message)?;

        let channel_binding = match (&parsed.cbind, self.mechanism.is_plus()) {
            (CbindFlag::Used(name), true) => {
                let ty: ChannelBindingType = name.parse()?;
                if self.channel_binding.get(ty).is_none() {
                    return Err(SaslError::ChannelBindingUnavailable(ty));
                }
                Some(ty)
            }
            (CbindFlag::Used(_), false) => return Err(SaslError::ChannelBindingNotExpected),
            (_, true) => return Err(SaslError::ChannelBindingRequired),
            (CbindFlag::ClientOnly, false) if self.plus_advertised => {
                return Err(SaslError::ChannelBindingDowngrade)
            }
            (CbindFlag::ClientOnly | CbindFlag::NotSupported, false) => None,
        };
        let username = saslprep::prep_username(&parsed.username)?;

        let first = FirstState {
            gs2_header: parsed.gs2_header.to_owned(),
            bare: parsed.bare.to_owned(),
            client_nonce: parsed.nonce.to_owned(),
            username: username.clone(),
            authzid: parsed.authzid.clone(),
            channel_binding,
        };
        self.state = State::AwaitingLookup(first);
        Ok(ClientFirst {
            username,
            authzid: parsed.authzid,
            channel_binding,
        })
    }

    /// Builds server-first (the payload of `<challenge/>`) from the stored
    /// credentials, or `None` for an unknown user. For an unknown user the
    /// salt and keys are derived from the username under a per-process
    /// secret, so the answer has the same shape, length and stability as a
    /// real one, and the exchange fails only at the proof, with
    /// `not-authorized`, exactly like a wrong password.
    pub fn server_first(
        &mut self,
        credentials: Option<&ScramCredentials>,
    ) -> Result<Vec<u8>, SaslError> {
        let State::AwaitingLookup(first) = std::mem::replace(&mut self.state, State::Finished)
        else {
            return Err(SaslError::OutOfOrder);
        };
        let hash = self.hash()?;
        let (salt, iterations, stored_key, server_key, known_user) = match credentials {
            Some(creds) => {
                if creds.hash != hash {
                    return Err(SaslError::TemporaryAuthFailure(
                        "stored credentials are for another hash",
                    ));
                }
                if !creds.is_well_formed() {
                    return Err(SaslError::TemporaryAuthFailure(
                        "stored credentials are corrupt",
                    ));
                }
                (
                    creds.salt.clone(),
                    creds.iterations,
                    creds.stored_key.clone(),
                    creds.server_key.clone(),
                    true,
                )
            }
            None => {
                let fake = crypto::fake_keys(hash, &first.username, SALT_LEN)?;
                (
                    fake.salt,
                    self.unknown_user_iterations,
                    fake.stored_key,
                    fake.server_key,
                    false,
                )
            }
        };

        let server_nonce = self.server_nonce()?;
        let nonce = format!("{}{}", first.client_nonce, server_nonce);
        let server_first = format!("r={nonce},s={},i={iterations}", b64_encode(&salt));
        let reply = server_first.clone().into_bytes();
        self.state = State::AwaitingClientFinal(ChallengeState {
            first,
            server_first,
            nonce,
            stored_key,
            server_key,
            known_user,
        });
        Ok(reply)
    }

    fn server_nonce(&self) -> Result<String, SaslError> {
        #[cfg(test)]
        if let Some(nonce) = &self.fixed_nonce {
            return Ok(nonce.clone());
        }
        Ok(b64_encode(&crypto::random_bytes(SERVER_NONCE_BYTES)?))
    }

    /// Checks client-final (the payload of `<response/>`): channel binding,
    /// nonce, then the proof in constant time. On success returns
    /// server-final (`v=<ServerSignature>`, the additional data of
    /// `<success/>`) and the authenticated identity.
    pub fn handle_client_final(
        &mut self,
        message: &[u8],
    ) -> Result<(Vec<u8>, ScramOutcome), SaslError> {
        let State::AwaitingClientFinal(challenge) =
            std::mem::replace(&mut self.state, State::Finished)
        else {
            return Err(SaslError::OutOfOrder);
        };
        let hash = self.hash()?;
        let message = scram_message::utf8(message)?;
        let parsed = scram_message::parse_client_final(message)?;
        let first = &challenge.first;

        // c= repeats the gs2 header (so a man in the middle cannot have
        // rewritten the flag or authzid in client-first) followed by the
        // binding data as the client's TLS stack sees it.
        let mut expected_cb = first.gs2_header.as_bytes().to_vec();
        if let Some(ty) = first.channel_binding {
            let data = self
                .channel_binding
                .get(ty)
                .ok_or(SaslError::ChannelBindingUnavailable(ty))?;
            expected_cb.extend_from_slice(data);
        }
        if !crypto::ct_eq(&parsed.channel_binding, &expected_cb) {
            return Err(SaslError::ChannelBindingMismatch);
        }
        if parsed.nonce != challenge.nonce {
            return Err(SaslError::NonceMismatch);
        }
        if parsed.proof.len() != hash.output_len() {
            return Err(SaslError::Malformed("proof has the wrong length"));
        }

        let auth_message: [&[u8]; 5] = [
            first.bare.as_bytes(),
            b",",
            challenge.server_first.as_bytes(),
            b",",
            parsed.without_proof.as_bytes(),
        ];
        let client_signature = crypto::hmac(hash, &challenge.stored_key, &auth_message);
        let client_key = crypto::xor(&parsed.proof, &client_signature);
        let proof_ok = crypto::ct_eq(&crypto::h(hash, &client_key), &challenge.stored_key);
        if !(proof_ok && challenge.known_user) {
            return Err(SaslError::NotAuthorized);
        }

        let server_signature = crypto::hmac(hash, &challenge.server_key, &auth_message);
        let server_final = format!("v={}", b64_encode(&server_signature)).into_bytes();
        let outcome = ScramOutcome {
            username: first.username.clone(),
            authzid: first.authzid.clone(),
            channel_binding: first.channel_binding,
        };
        Ok((server_final, outcome))
    }
}

// The state holds StoredKey and ServerKey: name the step, not the keys.
impl std::fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::AwaitingClientFirst => "awaiting client-first",
            State::AwaitingLookup(_) => "awaiting lookup",
            State::AwaitingClientFinal(_) => "awaiting client-final",
            State::Finished => "finished",
        };
        f.debug_struct("ScramServer")
            .field("mechanism", &self.mechanism)
            .field("channel_binding", &self.channel_binding)
            .field("plus_advertised", &self.plus_advertised)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine as _;

    fn rfc_exchange(
        mechanism: Mechanism,
        salt_b64: &str,
        client_first: &str,
        server_nonce: &str,
        server_first: &str,
        client_final: &str,
        server_final: &str,
    ) {
        let salt = B64.decode(salt_b64).unwrap();
        let creds =
            ScramCredentials::derive_with_salt("pencil", mechanism.hash().unwrap(), &salt, 4096)
                .unwrap();
        let mut server = ScramServer::new(mechanism, ChannelBindingData::none(), false)
            .with_fixed_nonce(server_nonce);
        let first = server.handle_client_first(client_first.as_bytes()).unwrap();
        assert_eq!(first.username, "user");
        assert_eq!(first.authzid, None);
        let challenge = server.server_first(Some(&creds)).unwrap();
        assert_eq!(String::from_utf8(challenge).unwrap(), server_first);
        let (success, outcome) = server.handle_client_final(client_final.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(success).unwrap(), server_final);
        assert_eq!(outcome.username, "user");
    }

    #[test]
    fn rfc_5802_section_5_scram_sha_1_example() {
        rfc_exchange(
            Mechanism::ScramSha1,
            "QSXCR+Q6sek8bf92",
            "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
            "3rfcNHYJY1ZVvWVs7j",
            "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
            "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
        );
    }

    #[test]
    fn rfc_7677_section_3_scram_sha_256_example() {
        rfc_exchange(
            Mechanism::ScramSha256,
            "W22ZaJ0SNY7soEsUEjb6gQ==",
            "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
        );
    }

    #[test]
    fn calls_out_of_order_end_the_exchange() {
        let mut server =
            ScramServer::new(Mechanism::ScramSha256, ChannelBindingData::none(), false);
        assert_eq!(server.server_first(None), Err(SaslError::OutOfOrder));
        // The failed call finished the exchange, so even a valid first
        // message is refused now.
        assert_eq!(
            server.handle_client_first(b"n,,n=user,r=abc"),
            Err(SaslError::OutOfOrder)
        );
    }

    #[test]
    fn debug_output_names_the_step_but_not_the_keys() {
        let mut server = ScramServer::new(Mechanism::ScramSha1, ChannelBindingData::none(), false);
        server.handle_client_first(b"n,,n=user,r=abc").unwrap();
        let creds = ScramCredentials::derive_with_salt("pw", ScramHash::Sha1, b"s", 1).unwrap();
        server.server_first(Some(&creds)).unwrap();
        let shown = format!("{server:?}");
        assert!(shown.contains("awaiting client-final"), "{shown}");
        assert!(!shown.contains("key"), "{shown}");
    }

    #[test]
    fn plain_is_not_a_scram_mechanism() {
        let mut server = ScramServer::new(Mechanism::Plain, ChannelBindingData::none(), false);
        assert_eq!(
            server.handle_client_first(b"n,,n=user,r=abc"),
            Err(SaslError::InvalidMechanism("PLAIN".into()))
        );
    }
}
