//! XEP-0215: External Service Discovery (version 1.0.0).
//!
//! Tells the server's own users about the STUN and TURN servers of
//! `[[extdisco.services]]`, which clients need for calls (Jingle ICE). A
//! TURN server is useless to strangers and costly to the operator, so
//! both requests are for local users only.
//!
//! Credentials follow the scheme of coturn's `use-auth-secret` (the "TURN
//! REST API" draft, draft-uberti-behave-turn-rest-00 §2.2), which needs no
//! call between the two servers: the username is `<expiry>:<user>` (the
//! Unix time the credentials stop working, then the bare JID), the
//! password `base64(HMAC-SHA1(secret, username))`; the TURN server
//! recomputes the password from the username and refuses it after the
//! expiry. They are given in the service list itself (§3.1; Conversations
//! and Dino read them there) and again on a `<credentials/>` request
//! (§3.3); a service with a secret is marked `restricted` (§4), for clients
//! that look before they ask.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use chorus_config::{Config, ExternalService};
use chorus_proto::{ns, StanzaErrorCondition};
use chorus_xml::Element;
use futures_util::future::BoxFuture;
use hmac::{Hmac, KeyInit, Mac};

use crate::{IqCtx, IqReply, IqSpec, Module, ModuleInfo, Support, Xep};

const XEP: Xep = Xep {
    number: 215,
    name: "External Service Discovery",
    version: "1.0.0",
    support: Support::Complete,
    note: "STUN/TURN services from `[[extdisco.services]]`, with coturn `use-auth-secret` credentials; for local users; no push updates of changed services (§5).",
};

/// With services configured: the requests are answered and the feature
/// advertised (§6).
static INFO: ModuleInfo = ModuleInfo {
    name: "extdisco",
    file: file!(),
    xeps: &[XEP],
    iqs: &[
        IqSpec::local("services", ns::EXTDISCO),
        IqSpec::local("credentials", ns::EXTDISCO),
    ],
    features: &[ns::EXTDISCO],
    ..ModuleInfo::EMPTY
};

/// Without services: nothing to discover, so nothing is advertised and the
/// requests get `service-unavailable` like any unknown payload.
static INFO_OFF: ModuleInfo = ModuleInfo {
    name: "extdisco",
    file: file!(),
    xeps: &[XEP],
    ..ModuleInfo::EMPTY
};

pub struct Extdisco {
    services: Vec<ExternalService>,
    ttl: Duration,
}

impl Extdisco {
    pub fn from_config(config: &Config) -> Extdisco {
        Extdisco {
            services: config.extdisco.services.clone(),
            ttl: Duration::from_secs(config.extdisco.credentials_ttl_secs),
        }
    }
}

/// The password coturn computes for `username` from its
/// `static-auth-secret`.
fn turn_password(secret: &str, username: &str) -> String {
    // HMAC takes keys of any length (RFC 2104 §2): this cannot fail.
    let mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(secret.as_bytes()).map(|mut m| {
        m.update(username.as_bytes());
        m.finalize().into_bytes()
    });
    match mac {
        Ok(bytes) => base64::engine::general_purpose::STANDARD.encode(bytes),
        Err(_) => String::new(),
    }
}

/// One `<service/>` (§4). `user` and `now` give credentials to a service
/// with a secret.
fn service_element(s: &ExternalService, user: &str, now: SystemTime, ttl: Duration) -> Element {
    let mut e = Element::new("service", ns::EXTDISCO)
        .with_attr("type", s.kind.as_str())
        .with_attr("host", s.host.as_str());
    if let Some(port) = s.port {
        e.set_attr("port", port.to_string());
    }
    if let Some(t) = s.transport {
        e.set_attr("transport", t.as_str());
    }
    if !s.name.is_empty() {
        e.set_attr("name", s.name.as_str());
    }
    if !s.secret.is_empty() {
        let expires = now + ttl;
        let unix = expires
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let username = format!("{unix}:{user}");
        e.set_attr("password", turn_password(&s.secret, &username));
        e.set_attr("username", username);
        // XEP-0082 DateTime, UTC.
        e.set_attr(
            "expires",
            humantime::format_rfc3339_seconds(expires).to_string(),
        );
        e.set_attr("restricted", "true");
    }
    e
}

impl Extdisco {
    /// §3.1 and §3.2: every service, or those of one type.
    fn services(&self, user: &str, q: &Element) -> IqReply {
        let mut out = Element::new("services", ns::EXTDISCO);
        let kind = q.attr("type");
        if let Some(k) = kind {
            out.set_attr("type", k);
        }
        let now = SystemTime::now();
        for s in &self.services {
            if kind.is_none_or(|k| k == s.kind.as_str()) {
                out.push(service_element(s, user, now, self.ttl));
            }
        }
        IqReply::Result(Some(out))
    }

    /// §3.3: fresh credentials for the one service named by `host` and
    /// `type` (and `port`, when given).
    fn credentials(&self, user: &str, q: &Element) -> IqReply {
        let Some(wanted) = q.get_child("service", ns::EXTDISCO) else {
            return IqReply::Error(StanzaErrorCondition::BadRequest);
        };
        let (Some(host), Some(kind)) = (wanted.attr("host"), wanted.attr("type")) else {
            return IqReply::Error(StanzaErrorCondition::BadRequest);
        };
        let port = wanted.attr("port");
        let found = self.services.iter().find(|s| {
            s.host == host
                && s.kind.as_str() == kind
                && port.is_none_or(|p| s.port.map(|q| q.to_string()).as_deref() == Some(p))
        });
        match found {
            Some(s) => IqReply::Result(Some(
                Element::new("credentials", ns::EXTDISCO).with_child(service_element(
                    s,
                    user,
                    SystemTime::now(),
                    self.ttl,
                )),
            )),
            None => IqReply::Error(StanzaErrorCondition::ItemNotFound),
        }
    }
}

impl Module for Extdisco {
    fn info(&self) -> &'static ModuleInfo {
        if self.services.is_empty() {
            &INFO_OFF
        } else {
            &INFO
        }
    }

    fn handle<'a>(&'a self, ctx: &'a IqCtx<'a>, iq: &'a Element) -> BoxFuture<'a, IqReply> {
        Box::pin(async move {
            let user = match ctx.me() {
                Ok(me) => me.bare().to_string(),
                Err(c) => return IqReply::Error(c),
            };
            // §3: both are gets, to the server itself.
            if iq.attr("type") != Some("get") || ctx.account.is_some() {
                return IqReply::Error(StanzaErrorCondition::BadRequest);
            }
            let Some(q) = iq.children().next() else {
                return IqReply::Error(StanzaErrorCondition::BadRequest);
            };
            match q.name() {
                "services" => self.services(&user, q),
                _ => self.credentials(&user, q),
            }
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The password is base64(HMAC-SHA1(secret, username)), as coturn
    /// computes it.
    #[test]
    fn the_password_is_coturns() {
        // HMAC-SHA1 test vector of RFC 2202 §3, case 2, in base64.
        assert_eq!(
            turn_password("Jefe", "what do ya want for nothing?"),
            "7/zfauXrL6LSdBbV8YTfnCWafHk="
        );
    }

    fn turn() -> ExternalService {
        chorus_config::Config::from_toml(
            "[[extdisco.services]]\ntype = 'turn'\nhost = 'turn.example.org'\nport = 3478\n\
             transport = 'udp'\nsecret = 'k'\n",
        )
        .unwrap()
        .extdisco
        .services
        .remove(0)
    }

    #[test]
    fn credentials_name_their_expiry_and_verify_with_the_secret() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let e = service_element(&turn(), "alice@example.org", now, Duration::from_secs(60));
        assert_eq!(e.attr("username"), Some("1700000060:alice@example.org"));
        assert_eq!(
            e.attr("password"),
            Some(turn_password("k", "1700000060:alice@example.org").as_str())
        );
        assert_eq!(e.attr("expires"), Some("2023-11-14T22:14:20Z"));
        assert_eq!(e.attr("restricted"), Some("true"));
        assert_eq!(
            (e.attr("type"), e.attr("port"), e.attr("transport")),
            (Some("turn"), Some("3478"), Some("udp"))
        );
    }
}
