//! SASL authentication (RFC 6120 §6): SCRAM with channel binding, PLAIN
//! over TLS, failures and their limit.
//!
//! A failed authentication is logged at WARN as `authentication failed
//! peer=<IP> conn=<id> jid=<account> mechanism=<name> condition=<cond>`,
//! the peer address first, so that fail2ban can ban brute-forcing
//! addresses (docs/OPERATIONS.md has the filter). What the peer chose to
//! call itself is logged escaped and shortened, never raw: a username is
//! peer-controlled and must not be able to forge a second log line or a
//! `peer=` field. A client's abort and our own storage failures are not the
//! peer's fault and are logged at INFO under another message.

use chorus_modules::{Module, ModuleInfo, StreamFeature, Support, Xep};
use chorus_storage::AdminStore;

use super::*;

/// SASL as a declaration: XEP-0440, which the state machine's feature
/// list carries next to the mechanisms.
pub struct Sasl;

static SASL_INFO: ModuleInfo = ModuleInfo {
    name: "sasl",
    file: file!(),
    xeps: &[Xep {
        number: 440,
        name: "SASL Channel-Binding Type Capability",
        version: "0.4.2",
        support: Support::Complete,
        note: "tls-exporter (TLS 1.3) and tls-server-end-point.",
    }],
    stream_features: &[StreamFeature {
        name: "sasl-channel-binding",
        ns: ns::SASL_CB,
    }],
    ..ModuleInfo::EMPTY
};

impl Module for Sasl {
    fn info(&self) -> &'static ModuleInfo {
        &SASL_INFO
    }
}

/// An exchange under way.
pub(super) enum SaslState {
    /// SCRAM between its first and final messages, with the username the
    /// client gave, for the log if it fails.
    Scram {
        server: Box<ScramServer>,
        username: String,
    },
    /// The client chose `mechanism` without an initial response; its next
    /// `<response/>` is one (RFC 6120 §6.4.2, XEP-0388 §2.2).
    Initial { mechanism: String },
}

/// The longest username a log line carries, in characters.
const LOGGED_USERNAME_CHARS: usize = 64;

/// How a failed login names the account: the bare JID when the username
/// makes one (a valid JID holds no space, quote or control character), or
/// else what the client sent, quoted with its control characters escaped
/// and cut to [`LOGGED_USERNAME_CHARS`], so that it cannot end the line or
/// pass for another field.
fn account_label(username: Option<&str>, domain: Option<&str>) -> String {
    let Some(username) = username else {
        return "-".to_owned();
    };
    if let Some(jid) = domain.and_then(|d| BareJid::new(Some(username), d).ok()) {
        return jid.to_string();
    }
    let short: String = username.chars().take(LOGGED_USERNAME_CHARS).collect();
    format!("{short:?}")
}

pub(super) fn b64(data: &[u8]) -> String {
    if data.is_empty() {
        // RFC 6120 §6.4.2: empty initial response / success data is "=".
        "=".to_owned()
    } else {
        base64::engine::general_purpose::STANDARD.encode(data)
    }
}

/// SASL payloads: "=" is an empty payload, absent is none (§6.4.2).
pub(super) fn unb64(text: &str) -> Result<Vec<u8>, ()> {
    let t = text.trim();
    if t == "=" || t.is_empty() {
        return Ok(Vec::new());
    }
    base64::engine::general_purpose::STANDARD
        .decode(t)
        .map_err(|_| ())
}

pub(super) fn stored_to_scram(
    c: chorus_storage::StoredCredentials,
    hash: ScramHash,
) -> Option<ScramCredentials> {
    Some(ScramCredentials {
        hash,
        salt: c.salt,
        iterations: c.iterations,
        stored_key: c.stored_key,
        server_key: c.server_key,
    })
}

impl C2sState {
    pub(super) fn mechanisms(&self) -> Vec<Mechanism> {
        let mut out = Vec::new();
        let cb = self.channel_binding_data();
        if self.tls.is_some() && !cb.is_empty() {
            out.push(Mechanism::ScramSha256Plus);
            out.push(Mechanism::ScramSha1Plus);
        }
        out.push(Mechanism::ScramSha256);
        out.push(Mechanism::ScramSha1);
        if self.tls.is_some() || self.ctx.config.sasl.allow_plain_without_tls {
            out.push(Mechanism::Plain);
        }
        out
    }

    pub(super) fn channel_binding_data(&self) -> ChannelBindingData {
        match &self.tls {
            Some(b) => ChannelBindingData {
                tls_exporter: b.tls_exporter.clone(),
                tls_server_end_point: b.tls_server_end_point.clone(),
            },
            None => ChannelBindingData::none(),
        }
    }

    /// A failure of the exchange under way, if any (its username is
    /// logged).
    pub(super) fn sasl_failure(&mut self, condition: &str, text: Option<&str>) -> Flow {
        let username = self.sasl.take().and_then(|state| match state {
            SaslState::Scram { username, .. } => Some(username),
            SaslState::Initial { .. } => None,
        });
        self.sasl_failure_as(condition, text, username.as_deref())
    }

    /// A failure for `username`, when the client named one.
    pub(super) fn sasl_failure_as(
        &mut self,
        condition: &str,
        text: Option<&str>,
        username: Option<&str>,
    ) -> Flow {
        self.sasl = None;
        self.auth_failures += 1;
        self.ctx
            .metrics
            .auth
            .inc(&format!("{}/failure", self.auth_mech));
        // XEP-0388 §2.6.2: the same RFC 6120 condition, in SASL2's wrapper.
        let wrapper = if self.sasl2.take().is_some() {
            ns::SASL2
        } else {
            ns::SASL
        };
        let mut f = Element::new("failure", wrapper).with_child(Element::new(condition, ns::SASL));
        if let Some(t) = text {
            f.push(
                Element::new("text", wrapper)
                    .with_attr("xml:lang", "en")
                    .with_text(t),
            );
        }
        self.send_element(&f);
        // An IPv4 client of a dual-stack listener shows as ::ffff:a.b.c.d;
        // fail2ban bans the address the firewall sees.
        let peer = self
            .peer
            .map(|ip| ip.to_canonical().to_string())
            .unwrap_or_else(|| "-".to_owned());
        let jid = account_label(username, self.domain.as_deref());
        let mechanism = self.auth_mech;
        match condition {
            // The client gave up, or our storage failed: nothing to ban.
            // An expired FAST token is a client that was away, not an attack.
            "aborted" | "temporary-auth-failure" | "credentials-expired" => tracing::info!(
                peer = %peer,
                conn = self.conn_id,
                jid = %jid,
                mechanism = %mechanism,
                condition = %condition,
                "authentication not completed"
            ),
            _ => tracing::warn!(
                peer = %peer,
                conn = self.conn_id,
                jid = %jid,
                mechanism = %mechanism,
                condition = %condition,
                "authentication failed"
            ),
        }
        if self.auth_failures >= self.ctx.config.sasl.max_attempts {
            return self.stream_error(
                StreamError::PolicyViolation,
                Some("too many failed authentication attempts"),
            );
        }
        Flow::Continue
    }

    /// The authzid, if any, must name the authenticated account (§6.4.6).
    pub(super) fn authzid_ok(&self, user: &BareJid, authzid: Option<&str>) -> bool {
        match authzid {
            None | Some("") => true,
            Some(a) => a.parse::<BareJid>().is_ok_and(|j| j == *user),
        }
    }

    pub(super) fn account(&self, username: &str) -> Option<BareJid> {
        BareJid::new(Some(username), self.domain.as_deref()?).ok()
    }

    pub(super) async fn lookup(
        &self,
        user: &BareJid,
        hash: ScramHash,
    ) -> Result<Option<ScramCredentials>, ()> {
        let Some(node) = user.node() else {
            return Ok(None);
        };
        match self
            .ctx
            .storage
            .credentials(node, user.domain(), hash.name())
            .await
        {
            Ok(c) => Ok(c.and_then(|c| stored_to_scram(c, hash))),
            Err(e) => {
                tracing::error!(error = %e, "storage error during authentication");
                Err(())
            }
        }
    }

    /// A challenge of the exchange under way, in its profile's namespace.
    pub(super) fn sasl_challenge(&self, data: &[u8]) {
        let el = if self.sasl2.is_some() {
            // XEP-0388 §2.2: no "=" for empty data in SASL2.
            Element::new("challenge", ns::SASL2)
                .with_text(base64::engine::general_purpose::STANDARD.encode(data))
        } else {
            Element::new("challenge", ns::SASL).with_text(b64(data))
        };
        self.send_element(&el);
    }

    pub(super) async fn sasl_success(&mut self, user: BareJid, additional: &[u8]) -> Flow {
        // RFC 6120 §6.5.1: the credentials are right, the account is not
        // allowed in (XEP-0133 disable-user, `chorusctl user disable`).
        let node = user.node().unwrap_or_default();
        match self.ctx.storage.account_disabled(node, user.domain()).await {
            Ok(None) => {}
            Ok(Some(_)) => {
                return self.sasl_failure_as(
                    "account-disabled",
                    Some("this account is disabled"),
                    user.node(),
                )
            }
            Err(e) => {
                tracing::error!(error = %e, "storage error during authentication");
                return self.sasl_failure_as("temporary-auth-failure", None, user.node());
            }
        }
        tracing::info!(conn = self.conn_id, jid = %user, "authenticated");
        self.ctx
            .metrics
            .auth
            .inc(&format!("{}/success", self.auth_mech));
        self.sasl = None;
        self.stop_negotiation_timer();
        if let Some(request) = self.sasl2.take() {
            return self.sasl2_success(user, additional, *request).await;
        }
        self.user = Some(user);
        let mut s = Element::new("success", ns::SASL);
        if !additional.is_empty() {
            s.push_text(b64(additional));
        }
        self.send_element(&s);
        // §6.4.6: the client restarts the stream; so do we. Until its new
        // header, nothing else is taken (on a WebSocket, where elements
        // could come first: RFC 7395 §3.5).
        self.header_received = false;
        Flow::Reset
    }

    /// RFC 6120 `<auth/>`.
    pub(super) async fn on_auth(&mut self, el: &Element) -> Flow {
        self.sasl2 = None;
        let text = el.text();
        // §6.4.2: an empty <auth/> carries no initial response ("=" is an
        // empty one).
        match (text.trim().is_empty(), el.attr("mechanism")) {
            (true, Some(mechanism)) => self.await_initial_response(mechanism),
            _ => self.begin_exchange(el.attr("mechanism"), &text).await,
        }
    }

    /// A mechanism chosen without an initial response: an empty challenge
    /// asks for it, after checking the mechanism is offered.
    pub(super) fn await_initial_response(&mut self, mechanism: &str) -> Flow {
        let offered = mechanism
            .parse::<Mechanism>()
            .is_ok_and(|m| self.mechanisms().contains(&m));
        if !offered {
            self.auth_mech = "unknown";
            return self.sasl_failure("invalid-mechanism", None);
        }
        self.sasl = Some(SaslState::Initial {
            mechanism: mechanism.to_owned(),
        });
        self.sasl_challenge(&[]);
        Flow::Continue
    }

    /// Restarts the negotiation deadline for a stream that is not
    /// authenticated after all (a Bind 2 that could not bind).
    pub(super) fn restart_negotiation_timer(&mut self) {
        self.stop_negotiation_timer();
        self.negotiation_timer = Some(
            self.myself
                .send_after(self.ctx.config.c2s.negotiation_timeout(), || {
                    C2sMsg::HeaderTimeout
                }),
        );
    }

    /// Starts an exchange with `mechanism` and the base64 initial response,
    /// for either profile (RFC 6120 `<auth/>`, XEP-0388 `<authenticate/>`).
    pub(super) async fn begin_exchange(&mut self, mechanism: Option<&str>, initial: &str) -> Flow {
        if self.tls.is_none() && self.ctx.config.c2s.require_encryption {
            return self.sasl_failure("encryption-required", None);
        }
        let mech = mechanism.and_then(|m| m.parse::<Mechanism>().ok());
        self.auth_mech = mech.map(Mechanism::name).unwrap_or("unknown");
        let Some(mech) = mech.filter(|m| self.mechanisms().contains(m)) else {
            return self.sasl_failure("invalid-mechanism", None);
        };
        let Ok(payload) = unb64(initial) else {
            return self.sasl_failure("incorrect-encoding", None);
        };
        if mech == Mechanism::Plain {
            let req = match PlainRequest::parse(&payload) {
                Ok(r) => r,
                Err(e) => return self.sasl_failure(e.condition().as_str(), None),
            };
            let username = Some(req.username());
            let Some(user) = self.account(req.username()) else {
                return self.sasl_failure_as("not-authorized", None, username);
            };
            let creds = match self.lookup(&user, ScramHash::Sha256).await {
                Ok(c) => c,
                Err(()) => return self.sasl_failure_as("temporary-auth-failure", None, username),
            };
            return match req.verify(creds.as_ref()) {
                Ok(out) if self.authzid_ok(&user, out.authzid.as_deref()) => {
                    self.sasl_success(user, &[]).await
                }
                Ok(_) => self.sasl_failure_as("invalid-authzid", None, username),
                Err(e) => self.sasl_failure_as(e.condition().as_str(), None, username),
            };
        }
        let Some(hash) = mech.hash() else {
            return self.sasl_failure("invalid-mechanism", None);
        };
        let mut server = ScramServer::new(mech, self.channel_binding_data(), self.plus_advertised)
            .with_unknown_user_iterations(self.ctx.config.sasl.iterations);
        let first = match server.handle_client_first(&payload) {
            Ok(f) => f,
            Err(e) => return self.sasl_failure(e.condition().as_str(), None),
        };
        let username = Some(first.username.as_str());
        let creds = match self.account(&first.username) {
            Some(user) => match self.lookup(&user, hash).await {
                Ok(c) => c,
                Err(()) => return self.sasl_failure_as("temporary-auth-failure", None, username),
            },
            None => None,
        };
        match server.server_first(creds.as_ref()) {
            Ok(challenge) => {
                self.sasl_challenge(&challenge);
                self.sasl = Some(SaslState::Scram {
                    server: Box::new(server),
                    username: first.username,
                });
                Flow::Continue
            }
            Err(e) => self.sasl_failure_as(e.condition().as_str(), None, username),
        }
    }

    pub(super) async fn on_response(&mut self, el: &Element) -> Flow {
        // A response in the other profile's namespace answers nothing.
        if (el.ns() == ns::SASL2) != self.sasl2.is_some() {
            return self.sasl_failure("malformed-request", Some("no authentication in progress"));
        }
        let (mut server, username) = match self.sasl.take() {
            Some(SaslState::Scram { server, username }) => (server, username),
            Some(SaslState::Initial { mechanism }) => {
                // The initial response, late.
                return Box::pin(self.begin_exchange(Some(&mechanism), &el.text())).await;
            }
            None => {
                return self
                    .sasl_failure("malformed-request", Some("no authentication in progress"))
            }
        };
        let name = Some(username.as_str());
        let Ok(payload) = unb64(&el.text()) else {
            return self.sasl_failure_as("incorrect-encoding", None, name);
        };
        match server.handle_client_final(&payload) {
            Ok((server_final, outcome)) => {
                let Some(user) = self.account(&outcome.username) else {
                    return self.sasl_failure_as("not-authorized", None, name);
                };
                if !self.authzid_ok(&user, outcome.authzid.as_deref()) {
                    return self.sasl_failure_as("invalid-authzid", None, name);
                }
                self.sasl_success(user, &server_final).await
            }
            Err(e) => self.sasl_failure_as(e.condition().as_str(), None, name),
        }
    }
}
