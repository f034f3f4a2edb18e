//! The client side of SCRAM (RFC 5802 §5), sans-I/O, for the benchmark tool
//! and raw-socket tests: they need to log in like a real client, verify the
//! server's signature, and (for load tests) skip PBKDF2 on repeated logins.
//!
//! The flow mirrors the server: [`ScramClient::client_first`] for `<auth/>`,
//! [`ScramClient::handle_server_first`] turns `<challenge/>` into the
//! `<response/>` payload, [`ScramClient::handle_server_final`] checks
//! `<success/>`'s additional data. After the challenge,
//! [`ScramClient::salted_password`] returns the PBKDF2 result, which a later
//! client for the same account can take through
//! [`ScramClient::with_salted_password`].

use std::fmt;

use crate::channel_binding::ChannelBindingType;
use crate::credentials::{Keys, SaltedPassword};
use crate::crypto;
use crate::error::SaslError;
use crate::mechanism::{Mechanism, ScramHash};
use crate::saslprep;
use crate::scram_message::{self, b64_encode, ServerFinal};

/// The highest iteration count a client accepts: a hostile or misconfigured
/// server could otherwise keep a client busy for hours in PBKDF2. Ten
/// million is far above any deployed recommendation (OWASP asks 600,000
/// for PBKDF2-SHA256).
pub const MAX_CLIENT_ITERATIONS: u32 = 10_000_000;

/// Random bytes in the client nonce (24 base64 characters).
const CLIENT_NONCE_BYTES: usize = 18;

enum State {
    AwaitingServerFirst,
    AwaitingServerFinal { server_signature: Vec<u8> },
    Finished,
}

/// One SCRAM exchange on the client side.
pub struct ScramClient {
    mechanism: Mechanism,
    hash: ScramHash,
    /// `n=` value: SASLprep'd, then escaped.
    username: String,
    /// Escaped `a=` value, if any.
    authzid: Option<String>,
    /// SASLprep'd password, needed only when no cached SaltedPassword fits.
    password: String,
    /// The binding type and its data; `Some` also for a non-PLUS mechanism,
    /// where it only turns the flag into `y`.
    channel_binding: Option<(ChannelBindingType, Vec<u8>)>,
    nonce: String,
    salted_password: Option<SaltedPassword>,
    state: State,
}

impl ScramClient {
    /// Prepares an exchange. A -PLUS mechanism needs `channel_binding`;
    /// with a plain SCRAM mechanism, `Some` makes the client send `y` ("I
    /// could bind, but you did not offer -PLUS"), which a server that did
    /// offer -PLUS rejects as a downgrade.
    pub fn new(
        mechanism: Mechanism,
        username: &str,
        password: &str,
        channel_binding: Option<(ChannelBindingType, Vec<u8>)>,
    ) -> Result<Self, SaslError> {
        let hash = mechanism
            .hash()
            .ok_or_else(|| SaslError::InvalidMechanism(mechanism.name().to_owned()))?;
        if mechanism.is_plus() && channel_binding.is_none() {
            return Err(SaslError::ChannelBindingRequired);
        }
        let username = saslprep::encode_saslname(&saslprep::prep_username(username)?);
        let password = saslprep::prep_password(password)?;
        let nonce = b64_encode(&crypto::random_bytes(CLIENT_NONCE_BYTES)?);
        Ok(ScramClient {
            mechanism,
            hash,
            username,
            authzid: None,
            password,
            channel_binding,
            nonce,
            salted_password: None,
            state: State::AwaitingServerFirst,
        })
    }

    /// Asks to act as `authzid` (sent as `a=` in the gs2 header).
    pub fn with_authzid(mut self, authzid: &str) -> Self {
        self.authzid = Some(saslprep::encode_saslname(authzid));
        self
    }

    /// Replaces the random client nonce, for reproducing test vectors. A
    /// fixed nonce in production makes exchanges replayable.
    pub fn with_nonce(mut self, nonce: &str) -> Result<Self, SaslError> {
        if nonce.is_empty()
            || !nonce
                .bytes()
                .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
        {
            return Err(SaslError::Malformed(
                "nonce is empty or not printable ASCII",
            ));
        }
        self.nonce = nonce.to_owned();
        Ok(self)
    }

    /// Reuses a SaltedPassword from an earlier login of the same account. It
    /// is used only if the server announces the same hash, salt and
    /// iteration count; otherwise PBKDF2 runs as usual.
    pub fn with_salted_password(mut self, salted_password: SaltedPassword) -> Self {
        self.salted_password = Some(salted_password);
        self
    }

    /// The SaltedPassword of this exchange, once server-first has been
    /// handled: keep it to pass to the next client for this account.
    pub fn salted_password(&self) -> Option<&SaltedPassword> {
        self.salted_password.as_ref()
    }

    /// The mechanism this exchange runs.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    fn gs2_header(&self) -> String {
        let flag = match (&self.channel_binding, self.mechanism.is_plus()) {
            (Some((ty, _)), true) => format!("p={}", ty.name()),
            (Some(_), false) => "y".to_owned(),
            (None, _) => "n".to_owned(),
        };
        match &self.authzid {
            Some(authzid) => format!("{flag},a={authzid},"),
            None => format!("{flag},,"),
        }
    }

    fn client_first_bare(&self) -> String {
        format!("n={},r={}", self.username, self.nonce)
    }

    /// Client-first: the initial response to put in `<auth/>`.
    pub fn client_first(&self) -> Vec<u8> {
        format!("{}{}", self.gs2_header(), self.client_first_bare()).into_bytes()
    }

    /// Checks server-first (from `<challenge/>`) and returns client-final,
    /// the payload of `<response/>`.
    pub fn handle_server_first(&mut self, message: &[u8]) -> Result<Vec<u8>, SaslError> {
        let State::AwaitingServerFirst = std::mem::replace(&mut self.state, State::Finished) else {
            return Err(SaslError::OutOfOrder);
        };
        let server_first = scram_message::utf8(message)?;
        let parsed = scram_message::parse_server_first(server_first)?;
        // The server must extend our nonce, not replace or merely echo it;
        // otherwise this exchange could be a replay of another one.
        if !(parsed.nonce.starts_with(&self.nonce) && parsed.nonce.len() > self.nonce.len()) {
            return Err(SaslError::NonceMismatch);
        }
        if parsed.iterations == 0 || parsed.iterations > MAX_CLIENT_ITERATIONS {
            return Err(SaslError::IterationCountOutOfRange(parsed.iterations));
        }

        let salted = match self.salted_password.take() {
            Some(cached) if cached.matches(self.hash, &parsed.salt, parsed.iterations) => cached,
            _ => SaltedPassword {
                hash: self.hash,
                salt: parsed.salt.clone(),
                iterations: parsed.iterations,
                key: crypto::hi(
                    self.hash,
                    self.password.as_bytes(),
                    &parsed.salt,
                    parsed.iterations,
                )?,
            },
        };
        let keys = Keys::from_salted_password(self.hash, &salted.key);
        self.salted_password = Some(salted);

        let mut cb_input = self.gs2_header().into_bytes();
        if let (Some((_, data)), true) = (&self.channel_binding, self.mechanism.is_plus()) {
            cb_input.extend_from_slice(data);
        }
        let without_proof = format!("c={},r={}", b64_encode(&cb_input), parsed.nonce);
        let bare = self.client_first_bare();
        let auth_message: [&[u8]; 5] = [
            bare.as_bytes(),
            b",",
            server_first.as_bytes(),
            b",",
            without_proof.as_bytes(),
        ];
        let client_signature = crypto::hmac(self.hash, &keys.stored_key, &auth_message);
        let proof = crypto::xor(&keys.client_key, &client_signature);
        let server_signature = crypto::hmac(self.hash, &keys.server_key, &auth_message);
        self.state = State::AwaitingServerFinal { server_signature };
        Ok(format!("{without_proof},p={}", b64_encode(&proof)).into_bytes())
    }

    /// Checks server-final (the additional data of `<success/>`): the
    /// server signature proves the server knows our ServerKey, i.e. that it
    /// is the server the account was registered with.
    pub fn handle_server_final(&mut self, message: &[u8]) -> Result<(), SaslError> {
        let State::AwaitingServerFinal { server_signature } =
            std::mem::replace(&mut self.state, State::Finished)
        else {
            return Err(SaslError::OutOfOrder);
        };
        let message = scram_message::utf8(message)?;
        match scram_message::parse_server_final(message)? {
            ServerFinal::Error(error) => Err(SaslError::ServerError(error)),
            ServerFinal::Verifier(v) if crypto::ct_eq(&v, &server_signature) => Ok(()),
            ServerFinal::Verifier(_) => Err(SaslError::InvalidServerSignature),
        }
    }
}

// The password and SaltedPassword must never reach a log line.
impl fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramClient")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("authzid", &self.authzid)
            .field(
                "channel_binding",
                &self.channel_binding.as_ref().map(|(ty, _)| ty),
            )
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rfc_client(
        mechanism: Mechanism,
        client_nonce: &str,
        client_first: &str,
        server_first: &str,
        client_final: &str,
        server_final: &str,
    ) {
        let mut client = ScramClient::new(mechanism, "user", "pencil", None)
            .unwrap()
            .with_nonce(client_nonce)
            .unwrap();
        assert_eq!(client.client_first(), client_first.as_bytes());
        let response = client.handle_server_first(server_first.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(response).unwrap(), client_final);
        client.handle_server_final(server_final.as_bytes()).unwrap();
    }

    #[test]
    fn rfc_5802_section_5_scram_sha_1_example() {
        rfc_client(
            Mechanism::ScramSha1,
            "fyko+d2lbbFgONRv9qkxdawL",
            "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
            "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
            "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
        );
    }

    #[test]
    fn rfc_7677_section_3_scram_sha_256_example() {
        rfc_client(
            Mechanism::ScramSha256,
            "rOprNGfwEbeRWgbNEkqO",
            "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
        );
    }

    fn rfc_7677_client() -> ScramClient {
        ScramClient::new(Mechanism::ScramSha256, "user", "pencil", None)
            .unwrap()
            .with_nonce("rOprNGfwEbeRWgbNEkqO")
            .unwrap()
    }

    const RFC_7677_SERVER_FIRST: &[u8] =
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";

    #[test]
    fn a_tampered_server_signature_is_refused() {
        let mut client = rfc_7677_client();
        client.handle_server_first(RFC_7677_SERVER_FIRST).unwrap();
        assert_eq!(
            client.handle_server_final(b"v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
            Err(SaslError::InvalidServerSignature)
        );
    }

    #[test]
    fn a_server_error_attribute_is_reported() {
        let mut client = rfc_7677_client();
        client.handle_server_first(RFC_7677_SERVER_FIRST).unwrap();
        assert_eq!(
            client.handle_server_final(b"e=invalid-proof"),
            Err(SaslError::ServerError("invalid-proof".into()))
        );
    }

    #[test]
    fn a_server_nonce_not_extending_ours_is_refused() {
        for nonce in ["r=rOprNGfwEbeRWgbNEkqO", "r=XOprNGfwEbeRWgbNEkqOabc"] {
            let mut client = rfc_7677_client();
            let message = format!("{nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
            assert_eq!(
                client.handle_server_first(message.as_bytes()),
                Err(SaslError::NonceMismatch)
            );
        }
    }

    #[test]
    fn absurd_iteration_counts_are_refused_before_any_pbkdf2() {
        for i in [0, MAX_CLIENT_ITERATIONS + 1] {
            let mut client = rfc_7677_client();
            let message = format!("r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i={i}");
            assert_eq!(
                client.handle_server_first(message.as_bytes()),
                Err(SaslError::IterationCountOutOfRange(i))
            );
        }
    }

    #[test]
    fn a_cached_salted_password_gives_the_same_proof() {
        let mut first = rfc_7677_client();
        let expected = first.handle_server_first(RFC_7677_SERVER_FIRST).unwrap();
        let cached = first.salted_password().unwrap().clone();
        // A wrong password proves the cache, not PBKDF2, produced the proof.
        let mut second = ScramClient::new(Mechanism::ScramSha256, "user", "wrong", None)
            .unwrap()
            .with_nonce("rOprNGfwEbeRWgbNEkqO")
            .unwrap()
            .with_salted_password(cached);
        assert_eq!(
            second.handle_server_first(RFC_7677_SERVER_FIRST).unwrap(),
            expected
        );
    }

    #[test]
    fn plus_needs_binding_data_and_plain_is_refused() {
        assert_eq!(
            ScramClient::new(Mechanism::ScramSha1Plus, "u", "p", None).unwrap_err(),
            SaslError::ChannelBindingRequired
        );
        assert_eq!(
            ScramClient::new(Mechanism::Plain, "u", "p", None).unwrap_err(),
            SaslError::InvalidMechanism("PLAIN".into())
        );
    }

    #[test]
    fn gs2_header_reflects_binding_and_authzid() {
        let cb = Some((ChannelBindingType::TlsExporter, vec![1; 32]));
        let plus = ScramClient::new(Mechanism::ScramSha256Plus, "a,b", "p", cb.clone())
            .unwrap()
            .with_authzid("x=y@example.org")
            .with_nonce("n")
            .unwrap();
        assert_eq!(
            plus.client_first(),
            b"p=tls-exporter,a=x=3Dy@example.org,n=a=2Cb,r=n"
        );
        let y = ScramClient::new(Mechanism::ScramSha256, "u", "p", cb)
            .unwrap()
            .with_nonce("n")
            .unwrap();
        assert_eq!(y.client_first(), b"y,,n=u,r=n");
    }

    #[test]
    fn debug_output_hides_the_password() {
        let client = ScramClient::new(Mechanism::ScramSha1, "u", "hunter2", None).unwrap();
        assert!(!format!("{client:?}").contains("hunter2"));
    }
}
