//! Stream negotiation (RFC 6120 §4.2-§4.3, §5): stream headers, the
//! features offered in each phase, STARTTLS, and what may come before
//! authentication.

use chorus_modules::{Module, ModuleInfo, PreauthCtx, StreamCtx, StreamFeature};

use super::*;

/// The stream itself (RFC 6120 §4-§7) as a declaration: the features the
/// state machine offers on its own, which no feature module adds.
pub struct Stream;

static STREAM_INFO: ModuleInfo = ModuleInfo {
    name: "stream",
    file: file!(),
    stream_features: &[
        StreamFeature {
            name: "starttls",
            ns: ns::TLS,
        },
        StreamFeature {
            name: "mechanisms",
            ns: ns::SASL,
        },
        StreamFeature {
            name: "bind",
            ns: ns::BIND,
        },
        StreamFeature {
            name: "session",
            ns: ns::SESSION,
        },
    ],
    ..ModuleInfo::EMPTY
};

impl Module for Stream {
    fn info(&self) -> &'static ModuleInfo {
        &STREAM_INFO
    }
}

impl C2sState {
    /// The stream features for this point of the negotiation (RFC 6120
    /// §4.3.2): STARTTLS, SASL and binding from the stream's own state,
    /// then what the feature modules offer.
    pub(super) fn features(&mut self) -> Element {
        let mut f = Element::new("features", ns::STREAM);
        let secure = self.tls.is_some() || !self.ctx.config.c2s.require_encryption;
        if self.user.is_some() {
            // After a SASL2 success with Bind2 (XEP-0388 §2.6.1: features
            // follow <success/>), the stream is already bound.
            if self.full.is_none() {
                f.push(Element::new("bind", ns::BIND));
                // RFC 6121 Appendix E: advertised for old clients, optional.
                f.push(
                    Element::new("session", ns::SESSION)
                        .with_child(Element::new("optional", ns::SESSION)),
                );
            }
        } else {
            let starttls_offered =
                self.tls.is_none() && self.ctx.tls().is_some() && self.framing.starttls();
            if starttls_offered {
                let mut st = Element::new("starttls", ns::TLS);
                if self.ctx.config.c2s.require_encryption {
                    st.push(Element::new("required", ns::TLS));
                }
                f.push(st);
            }
            if secure {
                let mechs = self.mechanisms();
                self.plus_advertised = mechs.iter().any(|m| m.is_plus());
                let mut m = Element::new("mechanisms", ns::SASL);
                for mech in mechs {
                    m.push(Element::new("mechanism", ns::SASL).with_text(mech.name()));
                }
                f.push(m);
                f.push(self.sasl2_feature());
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
        }
        let stream = StreamCtx {
            domain: self.domain.as_deref().unwrap_or_default(),
            tls: self.tls.is_some(),
            secure,
            authenticated: self.user.is_some(),
            services: &self.ctx.services,
        };
        // XEP-0198 enabled inline (Bind 2) or by a resumption inside SASL2:
        // offering it again would invite a second <enable/> or <resume/>.
        let sm_on = self.sm_lock().is_some();
        for feature in self.ctx.modules.stream_features(&stream) {
            if sm_on && feature.is("sm", ns::SM) {
                continue;
            }
            f.push(feature);
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
        if self.over_limit {
            return self.stream_error(
                StreamError::PolicyViolation,
                Some("too many connections from this address"),
            );
        }
        // RFC 6120 §4.8.1-§4.8.2: the streams namespace, and this
        // stream's content namespace (jabber:client).
        if let Err(text) = self.framing.accepts(h) {
            return self.stream_error(StreamError::InvalidNamespace, Some(text));
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
            if self.tls.is_some() || self.ctx.tls().is_none() || !self.framing.starttls() {
                // §5.4.2.2: failure, then close.
                self.send_element(&Element::new("failure", ns::TLS));
                self.close();
                return Flow::Stop;
            }
            self.send_element(&Element::new("proceed", ns::TLS));
            return Flow::StartTls;
        }
        let secure = self.tls.is_some() || !self.ctx.config.c2s.require_encryption;
        if secure && el.is("iq", ns::JABBER_CLIENT) {
            if let Some(domain) = self.domain.clone() {
                let ctx = PreauthCtx {
                    domain: &domain,
                    peer: self.peer,
                    conn_id: self.conn_id,
                    services: &self.ctx.services,
                };
                // XEP-0077 account creation, by the module that takes it.
                if let Some(answer) = self.ctx.modules.preauth_iq(&ctx, el).await {
                    if let Some(answer) = answer {
                        self.send_element(&answer);
                    }
                    return Flow::Continue;
                }
            }
        }
        if secure && el.ns() == ns::SM {
            // XEP-0198 §3: stream management before authentication (and
            // binding) "SHALL" be refused with <failed/>; the stream goes on.
            self.sm_failed("unexpected-request");
            return Flow::Continue;
        }
        if StanzaKind::of(el).is_some() {
            // §4.9.3.12: stanzas before authentication, with or without TLS.
            return self.stream_error(StreamError::NotAuthorized, Some("authenticate first"));
        }
        match (el.name(), el.ns()) {
            ("auth", ns::SASL) => self.on_auth(el).await,
            ("response", ns::SASL | ns::SASL2) => self.on_response(el).await,
            ("abort", ns::SASL | ns::SASL2) => self.sasl_failure("aborted", None),
            ("authenticate", ns::SASL2) if secure => self.on_authenticate(el).await,
            // §5.3.1: STARTTLS is mandatory-to-negotiate here.
            _ if self.tls.is_none() && self.ctx.config.c2s.require_encryption => {
                self.stream_error(StreamError::PolicyViolation, Some("STARTTLS is required"))
            }
            _ => self.stream_error(StreamError::NotAuthorized, Some("authenticate first")),
        }
    }
}
