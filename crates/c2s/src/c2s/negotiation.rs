//! Stream negotiation (RFC 6120 §4.2-§4.3, §5): stream headers, the
//! features offered in each phase, STARTTLS, and what may come before
//! authentication.

use super::*;

/// XEP-0115 node identifying the software.
pub(super) const CAPS_NODE: &str = "https://chorus.invalid/caps";

impl C2sState {
    pub(super) fn features(&mut self) -> Element {
        let mut f = Element::new("features", ns::STREAM);
        // XEP-0115 §6.3: the server's own capabilities, in every feature list.
        f.push(
            Element::new("c", ns::CAPS)
                .with_attr("hash", "sha-1")
                .with_attr("node", CAPS_NODE)
                .with_attr("ver", self.ctx.caps_ver.as_str()),
        );
        if self.user.is_some() {
            f.push(Element::new("bind", ns::BIND));
            // RFC 6121 §2.6.1 and §3.4: roster versioning and pre-approval.
            f.push(Element::new("ver", ns::ROSTER_VER));
            // XEP-0352 §3: client state indication.
            f.push(Element::new("csi", ns::CSI));
            // XEP-0198 §3: stream management (enable after bind, or resume).
            f.push(Element::new("sm", ns::SM));
            f.push(Element::new("sub", ns::PRE_APPROVAL));
            // RFC 6121 Appendix E: advertised for old clients, optional.
            f.push(
                Element::new("session", ns::SESSION)
                    .with_child(Element::new("optional", ns::SESSION)),
            );
            return f;
        }
        let starttls_offered = self.tls.is_none() && self.ctx.tls().is_some();
        if starttls_offered {
            let mut st = Element::new("starttls", ns::TLS);
            if self.ctx.require_encryption {
                st.push(Element::new("required", ns::TLS));
            }
            f.push(st);
        }
        if self.tls.is_some() || !self.ctx.require_encryption {
            let mechs = self.mechanisms();
            self.plus_advertised = mechs.iter().any(|m| m.is_plus());
            let mut m = Element::new("mechanisms", ns::SASL);
            for mech in mechs {
                m.push(Element::new("mechanism", ns::SASL).with_text(mech.name()));
            }
            f.push(m);
            // XEP-0077 §6: registration is offered where it is open.
            if self
                .domain
                .as_deref()
                .is_some_and(|d| self.ctx.registration_open(d))
            {
                f.push(Element::new("register", ns::REGISTER_FEATURE));
            }
            if let Some(b) = &self.tls {
                // XEP-0440: which channel-binding types we can verify.
                let mut cb = Element::new("sasl-channel-binding", ns::SASL_CB);
                if b.tls_exporter.is_some() {
                    cb.push(
                        Element::new("channel-binding", ns::SASL_CB)
                            .with_attr("type", "tls-exporter"),
                    );
                }
                if b.tls_server_end_point.is_some() {
                    cb.push(
                        Element::new("channel-binding", ns::SASL_CB)
                            .with_attr("type", "tls-server-end-point"),
                    );
                }
                f.push(cb);
            }
        }
        f
    }

    pub(super) fn on_header(&mut self, h: &StreamHeader) -> Flow {
        self.header_received = true;
        if self
            .ctx
            .shutting_down
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return self.stream_error(StreamError::SystemShutdown, None);
        }
        // RFC 6120 §4.8.1: the stream element must be in the streams namespace.
        if h.name != "stream" || h.ns != ns::STREAM {
            return self.stream_error(
                StreamError::InvalidNamespace,
                Some("expected stream:stream"),
            );
        }
        // §4.8.2: a c2s stream's content namespace is jabber:client.
        if h.default_ns != ns::JABBER_CLIENT {
            return self.stream_error(
                StreamError::InvalidNamespace,
                Some("expected jabber:client"),
            );
        }
        let to = h
            .attr("to")
            .map(|t| t.trim_end_matches('.').to_ascii_lowercase());
        match to {
            // A restarted stream must stay on the domain it started with.
            Some(d) if self.domain.as_ref().is_some_and(|cur| *cur != d) => {
                return self
                    .stream_error(StreamError::HostUnknown, Some("domain changed on restart"));
            }
            Some(d) if self.ctx.domains.contains(&d) => self.domain = Some(d),
            // §4.9.3.6: a 'to' we do not serve (or none at all).
            _ => return self.stream_error(StreamError::HostUnknown, None),
        }
        // §4.7.5: no version means pre-1.0; a major version above ours is unsupported.
        let supported = h
            .attr("version")
            .and_then(|v| v.split_once('.'))
            .and_then(|(major, _)| major.parse::<u32>().ok())
            .is_some_and(|major| major == 1);
        if !supported {
            return self.stream_error(
                StreamError::UnsupportedVersion,
                Some("version 1.0 is required"),
            );
        }
        let domain = self.domain.clone().unwrap_or_default();
        self.send_header(&domain);
        let features = self.features();
        self.send_element(&features);
        Flow::Continue
    }

    /// Elements before authentication: STARTTLS and SASL only.
    pub(super) async fn on_preauth(&mut self, el: &Element) -> Flow {
        if el.is("starttls", ns::TLS) {
            if self.tls.is_some() || self.ctx.tls().is_none() {
                // §5.4.2.2: failure, then close.
                self.send_element(&Element::new("failure", ns::TLS));
                self.close();
                return Flow::Stop;
            }
            self.send_element(&Element::new("proceed", ns::TLS));
            return Flow::StartTls;
        }
        if el.is("iq", ns::JABBER_CLIENT)
            && el.get_child("query", ns::REGISTER).is_some()
            && (self.tls.is_some() || !self.ctx.require_encryption)
            && self
                .domain
                .as_deref()
                .is_some_and(|d| self.ctx.registration_open(d))
        {
            self.register_account(el).await;
            return Flow::Continue;
        }
        if StanzaKind::of(el).is_some() {
            // §4.9.3.12: stanzas before authentication, with or without TLS.
            return self.stream_error(StreamError::NotAuthorized, Some("authenticate first"));
        }
        match (el.name(), el.ns()) {
            ("auth", ns::SASL) => self.on_auth(el).await,
            ("response", ns::SASL) => self.on_response(el),
            ("abort", ns::SASL) => self.sasl_failure("aborted", None),
            // §5.3.1: STARTTLS is mandatory-to-negotiate here.
            _ if self.tls.is_none() && self.ctx.require_encryption => {
                self.stream_error(StreamError::PolicyViolation, Some("STARTTLS is required"))
            }
            _ => self.stream_error(StreamError::NotAuthorized, Some("authenticate first")),
        }
    }

    /// XEP-0077 §3.1: account creation before authentication.
    pub(super) async fn register_account(&mut self, iq: &Element) {
        let Some(query) = iq.get_child("query", ns::REGISTER) else {
            return;
        };
        match iq.attr("type") {
            Some("get") => {
                let r = self.iq_result(iq).with_child(
                    Element::new("query", ns::REGISTER)
                        .with_child(
                            Element::new("instructions", ns::REGISTER)
                                .with_text("Choose a username and a password."),
                        )
                        .with_child(Element::new("username", ns::REGISTER))
                        .with_child(Element::new("password", ns::REGISTER)),
                );
                self.send_element(&r);
            }
            Some("set") => {
                let username = query.get_child("username", ns::REGISTER).map(|u| u.text());
                let password = query.get_child("password", ns::REGISTER).map(|p| p.text());
                let (Some(username), Some(password)) = (username, password) else {
                    return self.iq_error(iq, StanzaErrorCondition::NotAcceptable);
                };
                let Some(user) = self.account(&username).filter(|_| !password.is_empty()) else {
                    return self.iq_error(iq, StanzaErrorCondition::NotAcceptable);
                };
                if !self.ctx.take_register_token(self.peer) {
                    tracing::warn!(conn = self.conn_id, peer = ?self.peer, "registration rate limit");
                    return self.iq_error(iq, StanzaErrorCondition::PolicyViolation);
                }
                let Ok(creds) =
                    chorus_modules::register::credentials(&password, self.ctx.sasl_iterations)
                else {
                    return self.iq_error(iq, StanzaErrorCondition::NotAcceptable);
                };
                let node = user.node().unwrap_or_default();
                match self
                    .ctx
                    .storage
                    .create_account(node, user.domain(), &creds)
                    .await
                {
                    Ok(()) => {
                        tracing::info!(conn = self.conn_id, jid = %user, "account registered in-band");
                        let r = self.iq_result(iq);
                        self.send_element(&r);
                    }
                    Err(chorus_storage::StorageError::AlreadyExists) => {
                        self.iq_error(iq, StanzaErrorCondition::Conflict)
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "in-band registration failed");
                        self.iq_error(iq, StanzaErrorCondition::InternalServerError)
                    }
                }
            }
            _ => self.iq_error(iq, StanzaErrorCondition::BadRequest),
        }
    }
}
