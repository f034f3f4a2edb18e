//! XEP-0077: In-Band Registration (version 2.4).
//!
//! - Before authentication (§3.1), off by default (open registration
//!   invites spam accounts): a client creates an account on a stream that
//!   is secure (TLS, unless encryption is not required), on a domain that
//!   allows it, within a token bucket per IP address (§8 asks servers to
//!   limit registrations) unless the address is in an exempt network
//!   (loopback by default) or the throttle is off. Offered as the
//!   `<register/>` stream feature (§6) where it is open.
//! - Logged in: a user reads its registration, changes its password
//!   (§3.3), or removes its account (§3.2).

use std::net::IpAddr;
use std::time::Duration;

use chorus_config::IpNetwork;
use chorus_jid::BareJid;
use chorus_proto::{error_reply, ns, StanzaError, StanzaErrorCondition};
use chorus_sasl::{ScramCredentials, ScramHash};
use chorus_storage::{AccountStore, StorageError, StoredCredentials};
use chorus_xml::Element;
use dashmap::DashMap;
use futures_util::future::BoxFuture;

use crate::{
    result_iq, IqCtx, IqReply, IqSpec, Module, ModuleInfo, PreauthCtx, StreamCtx, StreamFeature,
    Support, Xep,
};

/// Who may create accounts in band (the `[register]` section).
#[derive(Clone, Debug, Default)]
pub struct RegisterPolicy {
    pub enabled: bool,
    /// Domains that allow it; empty means all served domains.
    pub domains: Vec<String>,
    /// Token bucket per IP address: capacity and refill period per token.
    pub burst: u32,
    pub refill: Duration,
    /// Whether the token buckets apply at all.
    pub throttle: bool,
    /// Networks whose addresses the buckets never count.
    pub throttle_exempt: Vec<IpNetwork>,
}

impl RegisterPolicy {
    pub fn from_config(config: &chorus_config::Config) -> RegisterPolicy {
        RegisterPolicy {
            enabled: config.register.enabled,
            domains: config.register.domains.clone(),
            burst: config.register.burst,
            refill: Duration::from_secs(config.register.refill_secs),
            throttle: config.register.throttle,
            throttle_exempt: config.register.throttle_exempt.clone(),
        }
    }

    /// Whether registrations from `ip` are counted against its bucket.
    fn throttled(&self, ip: IpAddr) -> bool {
        self.throttle && !self.throttle_exempt.iter().any(|n| n.contains(ip))
    }

    /// Whether clients may create accounts on `domain`.
    fn open(&self, domain: &str) -> bool {
        self.enabled
            && (self.domains.is_empty()
                || self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain)))
    }
}

pub struct Register {
    policy: RegisterPolicy,
    /// Registration tokens left per IP address.
    buckets: DashMap<IpAddr, crate::bucket::Bucket>,
}

impl Register {
    pub fn new(policy: RegisterPolicy) -> Register {
        Register {
            policy,
            buckets: DashMap::new(),
        }
    }

    /// Takes one registration token for `ip`; false when its bucket is
    /// empty.
    fn take_token(&self, ip: Option<IpAddr>) -> bool {
        let Some(ip) = ip else { return true };
        // An IPv4 peer of a dual-stack socket shows as ::ffff:a.b.c.d; one
        // bucket per client address either way.
        let ip = ip.to_canonical();
        if !self.policy.throttled(ip) {
            return true;
        }
        let burst = self.policy.burst;
        self.buckets
            .entry(ip)
            .or_insert_with(|| crate::bucket::Bucket::full(burst))
            .take(burst, self.policy.refill)
    }

    /// §3.1: the form (get) or an account creation (set), before
    /// authentication.
    async fn create(&self, ctx: &PreauthCtx<'_>, iq: &Element) -> Option<Element> {
        let query = iq.get_child("query", ns::REGISTER)?;
        let refuse = |cond| error_reply(iq, &StanzaError::new(cond));
        match iq.attr("type") {
            Some("get") => Some(result_iq(
                iq,
                Some(
                    Element::new("query", ns::REGISTER)
                        .with_child(
                            Element::new("instructions", ns::REGISTER)
                                .with_text("Choose a username and a password."),
                        )
                        .with_child(Element::new("username", ns::REGISTER))
                        .with_child(Element::new("password", ns::REGISTER)),
                ),
            )),
            Some("set") => {
                let username = query.get_child("username", ns::REGISTER).map(|u| u.text());
                let password = query.get_child("password", ns::REGISTER).map(|p| p.text());
                let (Some(username), Some(password)) = (username, password) else {
                    return refuse(StanzaErrorCondition::NotAcceptable);
                };
                let Some(user) = BareJid::new(Some(&username), ctx.domain)
                    .ok()
                    .filter(|_| !password.is_empty())
                else {
                    return refuse(StanzaErrorCondition::NotAcceptable);
                };
                if !self.take_token(ctx.peer) {
                    log_refused(ctx, &user, "rate-limit");
                    return refuse(StanzaErrorCondition::PolicyViolation);
                }
                let Ok(creds) = credentials(&password, ctx.services.sasl_iterations) else {
                    return refuse(StanzaErrorCondition::NotAcceptable);
                };
                let node = user.node().unwrap_or_default();
                match ctx
                    .services
                    .storage
                    .create_account(node, user.domain(), &creds)
                    .await
                {
                    Ok(()) => {
                        tracing::info!(conn = ctx.conn_id, jid = %user, "account registered in-band");
                        Some(result_iq(iq, None))
                    }
                    Err(StorageError::AlreadyExists) => {
                        log_refused(ctx, &user, "conflict");
                        refuse(StanzaErrorCondition::Conflict)
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "in-band registration failed");
                        refuse(StanzaErrorCondition::InternalServerError)
                    }
                }
            }
            _ => refuse(StanzaErrorCondition::BadRequest),
        }
    }
}

/// A refused account creation, at WARN with the peer's address first
/// (`registration failed peer=<IP> conn=<id> jid=<account> reason=<why>`):
/// fail2ban's filter matches it like a failed login, so an address that
/// keeps hitting the rate limit, or trying taken names, gets banned
/// (docs/OPERATIONS.md). `user` is a valid JID, which holds no space or
/// control character, so it cannot forge a field or a line.
fn log_refused(ctx: &PreauthCtx<'_>, user: &BareJid, reason: &'static str) {
    let peer = ctx
        .peer
        .map(|ip| ip.to_canonical().to_string())
        .unwrap_or_else(|| "-".to_owned());
    tracing::warn!(
        peer = %peer,
        conn = ctx.conn_id,
        jid = %user,
        reason = %reason,
        "registration failed"
    );
}

/// SCRAM credentials as storage keeps them. The one place the two crates'
/// types meet (neither depends on the other).
pub fn stored(c: ScramCredentials) -> StoredCredentials {
    StoredCredentials {
        hash: c.hash.name().to_owned(),
        salt: c.salt,
        iterations: c.iterations,
        stored_key: c.stored_key,
        server_key: c.server_key,
    }
}

/// SCRAM keys for every hash we offer; the password goes no further.
/// Every account creation and password change (chorusctl, in-band
/// registration) derives through here.
pub fn credentials(
    password: &str,
    iterations: u32,
) -> Result<Vec<StoredCredentials>, chorus_sasl::SaslError> {
    [ScramHash::Sha1, ScramHash::Sha256]
        .into_iter()
        .map(|h| ScramCredentials::derive(password, h, iterations).map(stored))
        .collect()
}

static INFO: ModuleInfo = ModuleInfo {
    name: "register",
    file: file!(),
    xeps: &[Xep {
        number: 77,
        name: "In-Band Registration",
        version: "2.4",
        support: Support::Complete,
        note: "Account creation is off by default and throttled per IP address.",
    }],
    iqs: &[IqSpec::local("query", ns::REGISTER)],
    features: &[ns::REGISTER],
    stream_features: &[StreamFeature {
        name: "register",
        ns: ns::REGISTER_FEATURE,
    }],
    ..ModuleInfo::EMPTY
};

impl Module for Register {
    fn info(&self) -> &'static ModuleInfo {
        &INFO
    }

    /// §6: offered where clients may register.
    fn stream_features(&self, ctx: &StreamCtx<'_>, out: &mut Vec<Element>) {
        if !ctx.authenticated && ctx.secure && self.policy.open(ctx.domain) {
            out.push(Element::new("register", ns::REGISTER_FEATURE));
        }
    }

    fn preauth_iq<'a>(
        &'a self,
        ctx: &'a PreauthCtx<'a>,
        iq: &'a Element,
    ) -> Option<BoxFuture<'a, Option<Element>>> {
        if iq.get_child("query", ns::REGISTER).is_none() || !self.policy.open(ctx.domain) {
            return None;
        }
        Some(Box::pin(self.create(ctx, iq)))
    }

    fn handle<'a>(&'a self, ctx: &'a IqCtx<'a>, iq: &'a Element) -> BoxFuture<'a, IqReply> {
        Box::pin(async move {
            // Addressed to the server (or, for old clients, the own account).
            if ctx.account.is_some() && !ctx.is_own_account() {
                return IqReply::Error(StanzaErrorCondition::Forbidden);
            }
            let Ok(me) = ctx.me() else {
                return IqReply::Error(StanzaErrorCondition::Forbidden);
            };
            let user = me.bare();
            let Some(node) = user.node() else {
                return IqReply::Error(StanzaErrorCondition::BadRequest);
            };
            let Some(query) = iq.get_child("query", ns::REGISTER) else {
                return IqReply::Error(StanzaErrorCondition::BadRequest);
            };
            let storage = &ctx.services.storage;
            match iq.attr("type") {
                // §3.1: an already registered entity sees <registered/>.
                Some("get") => IqReply::Result(Some(
                    Element::new("query", ns::REGISTER)
                        .with_child(Element::new("registered", ns::REGISTER))
                        .with_child(Element::new("username", ns::REGISTER).with_text(node))
                        .with_child(Element::new("password", ns::REGISTER)),
                )),
                Some("set") if query.get_child("remove", ns::REGISTER).is_some() => {
                    // §3.2: remove the account, answer, then end its sessions.
                    match storage.delete_account(node, user.domain()).await {
                        Ok(_) => {
                            tracing::info!(jid = %user, "account removed by its user");
                            ctx.router.hooks().account_removed(ctx.router, &user).await;
                            for s in ctx.services.sessions.resources(&user) {
                                s.sink.account_removed();
                            }
                            IqReply::Result(None)
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "account removal failed");
                            IqReply::Error(StanzaErrorCondition::InternalServerError)
                        }
                    }
                }
                Some("set") => {
                    // §3.3: a password change names the user and the new password.
                    let username = query.get_child("username", ns::REGISTER).map(|u| u.text());
                    let password = query.get_child("password", ns::REGISTER).map(|p| p.text());
                    let (Some(username), Some(password)) = (username, password) else {
                        return IqReply::Error(StanzaErrorCondition::BadRequest);
                    };
                    if username != node || password.is_empty() {
                        return IqReply::Error(StanzaErrorCondition::NotAcceptable);
                    }
                    let Ok(creds) = credentials(&password, ctx.services.sasl_iterations) else {
                        return IqReply::Error(StanzaErrorCondition::NotAcceptable);
                    };
                    match storage.set_credentials(node, user.domain(), &creds).await {
                        Ok(true) => {
                            tracing::info!(jid = %user, "password changed by its user");
                            IqReply::Result(None)
                        }
                        Ok(false) => IqReply::Error(StanzaErrorCondition::ItemNotFound),
                        Err(e) => {
                            tracing::error!(error = %e, "password change failed");
                            IqReply::Error(StanzaErrorCondition::InternalServerError)
                        }
                    }
                }
                _ => IqReply::Error(StanzaErrorCondition::BadRequest),
            }
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn register(throttle: bool, exempt: &[&str]) -> Register {
        Register::new(RegisterPolicy {
            enabled: true,
            domains: Vec::new(),
            burst: 1,
            refill: Duration::from_secs(3600),
            throttle,
            throttle_exempt: exempt.iter().map(|n| n.parse().unwrap()).collect(),
        })
    }

    #[test]
    fn the_bucket_counts_only_throttled_addresses() {
        let r = register(true, &["127.0.0.0/8", "::1/128"]);
        let outside: IpAddr = "203.0.113.7".parse().unwrap();
        assert!(r.take_token(Some(outside)));
        assert!(!r.take_token(Some(outside)), "burst of 1");
        // The same client through a dual-stack socket shares the bucket.
        assert!(!r.take_token(Some("::ffff:203.0.113.7".parse().unwrap())));
        for _ in 0..5 {
            assert!(r.take_token(Some("127.0.0.1".parse().unwrap())));
            assert!(r.take_token(Some("::1".parse().unwrap())));
            assert!(r.take_token(Some("::ffff:127.0.0.1".parse().unwrap())));
        }
        let none = register(true, &[]);
        assert!(none.take_token(Some("127.0.0.1".parse().unwrap())));
        assert!(!none.take_token(Some("127.0.0.1".parse().unwrap())));
        let off = register(false, &[]);
        for _ in 0..5 {
            assert!(off.take_token(Some(outside)));
        }
    }
}
