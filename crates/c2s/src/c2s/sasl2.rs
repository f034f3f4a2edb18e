//! The one-round-trip login of current mobile clients: XEP-0388
//! Extensible SASL Profile (SASL2), with XEP-0386 Bind 2 and XEP-0484 FAST
//! tokens inline.
//!
//! SASL2 runs the same mechanisms as RFC 6120 SASL (`sasl.rs` does the
//! exchange; this file only wraps it): `<authenticate/>` carries the
//! initial response and what the client wants done once it is
//! authenticated, and `<success/>` carries the outcome of all of it. There
//! is no stream restart: `<success/>` is followed by the stream features of
//! the authenticated stream (XEP-0388 §2.6.1).
//!
//! What `<authenticate/>` may ask for, in the order the XEPs process it:
//! 1. `<resume/>` (XEP-0198 inline): take over a detached session; on
//!    success Bind 2 is skipped (XEP-0386 §2.2 note).
//! 2. `<bind/>` (Bind 2): a resource `<tag>/<id>` that is stable per
//!    client (`<user-agent id>`), so that a reconnecting client replaces its
//!    old session (§2.2); offline messages already in the archive are
//!    dropped (the client catches up from MAM, whose `<metadata/>` is in
//!    `<bound/>`); carbons, CSI and stream management enabled inline.
//! 3. `<request-token/>` (FAST): a token for the client's next logins,
//!    stored hashed (`chorus_sasl::ht`), two slots per client (§6.1); a
//!    token used in the last half of its life is replaced (§4.4), and
//!    `<fast invalidate='true'/>` revokes it.
//!
//! Every client that logs in with a `<user-agent id>` is recorded
//! (`chorusctl user clients`), with its FAST tokens; changing the password
//! revokes them (storage does it with the password change).

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chorus_modules::{Module, ModuleInfo, StreamFeature, Support, Xep};
use chorus_sasl::{seal, HtMechanism, HtRequest, NewToken};
use chorus_storage::{
    ArchiveCursor, ArchiveQuery, ArchiveStore, ClientStore, OfflineStore, TokenSlot,
};
use sha2::{Digest, Sha256};

use super::sasl::unb64;
use super::*;

/// SASL2, Bind 2 and FAST as a declaration.
pub struct Sasl2;

static SASL2_INFO: ModuleInfo = ModuleInfo {
    name: "sasl2",
    file: file!(),
    xeps: &[
        Xep {
            number: 388,
            name: "Extensible SASL Profile",
            version: "0.4.0",
            support: Support::Complete,
            note: "The RFC 6120 mechanisms, inline features, and the <user-agent/> of later \
                   versions. No upgrade tasks: both SCRAM hashes are stored from the start.",
        },
        Xep {
            number: 386,
            name: "Bind 2",
            version: "1.0.0",
            support: Support::Complete,
            note: "Stable resources per user agent, archive metadata, inline carbons, \
                   CSI and stream management.",
        },
        Xep {
            number: 484,
            name: "Fast Authentication Streamlining Tokens",
            version: "0.1.0",
            support: Support::Partial,
            note: "HT-SHA-256-NONE, -ENDP and -EXPR; tokens stored hashed, rotated, \
                   revoked with the password. No TLS 0-RTT.",
        },
    ],
    stream_features: &[StreamFeature {
        name: "authentication",
        ns: ns::SASL2,
    }],
    ..ModuleInfo::EMPTY
};

impl Module for Sasl2 {
    fn info(&self) -> &'static ModuleInfo {
        &SASL2_INFO
    }
}

/// The longest user-agent id kept; longer ones are refused.
const MAX_CLIENT_ID: usize = 128;
/// `<software/>` and `<device/>` are cut to this many characters.
const MAX_CLIENT_TEXT: usize = 64;
/// A Bind 2 `<tag/>` is cut to this many characters.
const MAX_TAG: usize = 32;

/// XEP-0388 `<user-agent/>`.
pub(super) struct UserAgent {
    pub(super) id: String,
    pub(super) software: String,
    pub(super) device: String,
}

/// XEP-0386 `<bind/>`.
#[derive(Default)]
pub(super) struct BindRequest {
    tag: Option<String>,
    carbons: bool,
    /// XEP-0198 `<enable/>`.
    sm: Option<Element>,
    /// XEP-0352: `Some(true)` for `<inactive/>`.
    inactive: Option<bool>,
}

/// A successful FAST login: what `<success/>` does about the token.
struct FastUsed {
    mechanism: HtMechanism,
    expires: SystemTime,
    invalidate: bool,
}

/// What a SASL2 `<authenticate/>` asked for besides authentication.
#[derive(Default)]
pub(super) struct Sasl2Request {
    user_agent: Option<UserAgent>,
    bind: Option<BindRequest>,
    resume: Option<Element>,
    request_token: Option<HtMechanism>,
    fast_used: Option<FastUsed>,
}

/// What the client called itself, for logs and `chorusctl`: control
/// characters (a newline, a terminal escape) dropped, cut to `max`.
fn printable(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}

impl Sasl2Request {
    fn parse(el: &Element) -> Sasl2Request {
        let mut req = Sasl2Request::default();
        if let Some(ua) = el.get_child("user-agent", ns::SASL2) {
            // The id is optional (XEP-0388 §2.3); without one (or with one
            // we cannot keep) there is no client to remember, so no FAST
            // token and no stable resource, and the login goes on.
            let id = ua.attr("id").unwrap_or_default().trim();
            let keepable =
                !id.is_empty() && id.len() <= MAX_CLIENT_ID && !id.chars().any(char::is_control);
            let text = |name| {
                ua.get_child(name, ns::SASL2)
                    .map(|e| printable(e.text().trim(), MAX_CLIENT_TEXT))
                    .unwrap_or_default()
            };
            if keepable {
                req.user_agent = Some(UserAgent {
                    id: id.to_owned(),
                    software: text("software"),
                    device: text("device"),
                });
            }
        }
        if let Some(b) = el.get_child("bind", ns::BIND2) {
            let mut bind = BindRequest {
                tag: b
                    .get_child("tag", ns::BIND2)
                    .map(|t| printable(t.text().trim(), MAX_TAG))
                    .filter(|t| !t.is_empty()),
                ..BindRequest::default()
            };
            for c in b.children() {
                match (c.name(), c.ns()) {
                    ("enable", ns::CARBONS) => bind.carbons = true,
                    ("enable", ns::SM) => bind.sm = Some(c.clone()),
                    ("inactive", ns::CSI) => bind.inactive = Some(true),
                    ("active", ns::CSI) => bind.inactive = Some(false),
                    _ => {}
                }
            }
            req.bind = Some(bind);
        }
        req.resume = el.get_child("resume", ns::SM).cloned();
        req
    }
}

/// The key that seals FAST token hashes in storage, from
/// `<data_dir>/fast-token.key` (made on first start, readable by the
/// server's user only). Without it, a random key for this run: tokens then
/// end with the process and clients log in with their passwords again.
pub(crate) fn fast_key(data_dir: &Path) -> [u8; 32] {
    let path = data_dir.join("fast-token.key");
    match chorus_sasl::server_key(&path) {
        Ok(key) => key,
        Err(e) => {
            // One reader only (c2s), so a key of this run's is consistent.
            tracing::warn!(path = %path.display(), error = %e, "no FAST token key on disk; tokens last until restart");
            let mut key = [0u8; 32];
            if let Ok(t) = NewToken::generate() {
                key.copy_from_slice(&t.hash);
            }
            key
        }
    }
}

/// The Bind 2 resource: `<tag>/<id>` (XEP-0386 §2.2.1), where the id is
/// derived from the user-agent id, so that the same client gets the same
/// resource every time and its new session replaces its old one, without
/// showing the user-agent id itself; random without one.
fn bind2_resource(user: &BareJid, tag: Option<&str>, client: Option<&str>) -> String {
    let id = match client {
        Some(client) => {
            let mut h = Sha256::new();
            for part in [user.to_string().as_str(), client, tag.unwrap_or_default()] {
                h.update(part.as_bytes());
                h.update([0]);
            }
            h.finalize()[..6]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        }
        None => random_token()[..12].to_owned(),
    };
    match tag {
        // A tag that cannot be part of a resource is dropped, not refused.
        Some(t) if user.with_resource(&format!("{t}/{id}")).is_ok() => format!("{t}/{id}"),
        _ => id,
    }
}

impl C2sState {
    /// FAST is offered: configured, and over TLS only (XEP-0484 §7).
    fn fast_offered(&self) -> bool {
        self.ctx.config.sasl.fast && self.tls.is_some()
    }

    /// The `<authentication/>` stream feature (XEP-0388 §2.1) with what
    /// may be negotiated inline: Bind 2 and its inline features, FAST, and
    /// XEP-0198 resumption.
    pub(super) fn sasl2_feature(&self) -> Element {
        let mut a = Element::new("authentication", ns::SASL2);
        for mech in self.mechanisms() {
            a.push(Element::new("mechanism", ns::SASL2).with_text(mech.name()));
        }
        let mut bind_inline = Element::new("inline", ns::BIND2);
        let mut vars = vec![ns::CSI, ns::SM];
        if self.carbons_served() {
            vars.insert(0, ns::CARBONS);
        }
        for var in vars {
            bind_inline.push(Element::new("feature", ns::BIND2).with_attr("var", var));
        }
        let mut inline = Element::new("inline", ns::SASL2)
            .with_child(Element::new("bind", ns::BIND2).with_child(bind_inline));
        if self.fast_offered() {
            let mut fast = Element::new("fast", ns::FAST);
            for m in HtMechanism::available(&self.channel_binding_data()) {
                fast.push(Element::new("mechanism", ns::FAST).with_text(m.name()));
            }
            inline.push(fast);
        }
        inline.push(Element::new("sm", ns::SM));
        a.push(inline);
        a
    }

    /// Seals a token hash for storage, or opens a stored one (the same
    /// operation): the context ties it to its account, client, mechanism
    /// and expiry.
    fn open_token(
        &self,
        user: &BareJid,
        client: &str,
        mech: HtMechanism,
        expires: SystemTime,
        hash: &[u8],
    ) -> Vec<u8> {
        let secs = expires
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default()
            .to_string();
        let account = user.to_string();
        seal(
            &self.ctx.fast_key,
            hash,
            &[
                account.as_bytes(),
                client.as_bytes(),
                mech.name().as_bytes(),
                secs.as_bytes(),
            ],
        )
    }

    fn carbons_served(&self) -> bool {
        self.ctx.services.features.contains(&ns::CARBONS)
    }

    /// XEP-0388 `<authenticate/>`.
    pub(super) async fn on_authenticate(&mut self, el: &Element) -> Flow {
        self.sasl = None;
        // From here on, failures take SASL2's form.
        self.sasl2 = Some(Box::default());
        let mut req = Box::new(Sasl2Request::parse(el));
        if let Some(t) = el.get_child("request-token", ns::FAST) {
            if self.fast_offered() {
                let offered = HtMechanism::available(&self.channel_binding_data());
                match t.attr("mechanism").and_then(HtMechanism::parse) {
                    Some(m) if offered.contains(&m) => req.request_token = Some(m),
                    // XEP-0484 §4.2: one of the mechanisms advertised.
                    _ => {
                        return self.sasl_failure(
                            "invalid-mechanism",
                            Some("a token was requested for a mechanism not offered"),
                        )
                    }
                }
            }
        }
        let mechanism = el.attr("mechanism").unwrap_or_default();
        let initial = el
            .get_child("initial-response", ns::SASL2)
            .map(|e| e.text());
        if let Some(ht) = HtMechanism::parse(mechanism) {
            self.sasl2 = Some(req);
            let initial = initial.unwrap_or_default();
            return self
                .fast_auth(ht, el.get_child("fast", ns::FAST), &initial)
                .await;
        }
        self.sasl2 = Some(req);
        match initial {
            Some(initial) => self.begin_exchange(Some(mechanism), &initial).await,
            // XEP-0388 §2.2: no initial response; an empty challenge asks
            // for it (RFC 6120 §6.4.2 does the same).
            None => self.await_initial_response(mechanism),
        }
    }

    /// A login with a FAST token (XEP-0484 §4.3): one message, checked
    /// against the client's `new` token, then its `current` one (§6.1).
    async fn fast_auth(
        &mut self,
        mech: HtMechanism,
        fast: Option<&Element>,
        initial: &str,
    ) -> Flow {
        self.auth_mech = mech.name();
        let cb = self.channel_binding_data();
        if !self.fast_offered() || !HtMechanism::available(&cb).contains(&mech) {
            return self.sasl_failure("invalid-mechanism", None);
        }
        let Some(fast) = fast else {
            return self.sasl_failure(
                "invalid-mechanism",
                Some("token mechanisms are used with <fast/>"),
            );
        };
        let client = self
            .sasl2
            .as_ref()
            .and_then(|r| r.user_agent.as_ref())
            .map(|ua| ua.id.clone());
        let Some(client) = client else {
            // §5.1: tokens belong to a client, named by its user agent.
            return self.sasl_failure("malformed-request", Some("FAST needs a <user-agent id/>"));
        };
        let count = match fast.attr("count").map(str::parse::<u64>) {
            None => None,
            Some(Ok(n)) => Some(n),
            Some(Err(_)) => return self.sasl_failure("malformed-request", Some("bad count")),
        };
        let invalidate = matches!(fast.attr("invalidate"), Some("true" | "1"));
        let Ok(payload) = unb64(initial) else {
            return self.sasl_failure("incorrect-encoding", None);
        };
        let req = match HtRequest::parse(&payload) {
            Ok(r) => r,
            Err(e) => return self.sasl_failure(e.condition().as_str(), None),
        };
        let username = req.username.clone();
        let name = Some(username.as_str());
        let Some(user) = self.account(&username) else {
            return self.sasl_failure_as("not-authorized", None, name);
        };
        let node = user.node().unwrap_or_default();
        let tokens = match self
            .ctx
            .storage
            .fast_tokens(node, user.domain(), &client)
            .await
        {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "storage error during authentication");
                return self.sasl_failure_as("temporary-auth-failure", None, name);
            }
        };
        let now = SystemTime::now();
        let mut matched = None;
        for slot in [TokenSlot::New, TokenSlot::Current] {
            let Some(t) = tokens
                .iter()
                .find(|t| t.slot == slot && t.mechanism == mech.name())
            else {
                continue;
            };
            let hash = self.open_token(&user, &client, mech, t.expires, &t.hash);
            if let Ok(answer) = req.verify(mech, &cb, &hash) {
                if t.expires <= now {
                    // §5.2: no longer trusted; the client falls back to its
                    // password.
                    return self.sasl_failure_as("credentials-expired", None, name);
                }
                matched = Some((slot, t.expires, t.hash.clone(), answer));
                break;
            }
        }
        let Some((slot, expires, stored, answer)) = matched else {
            return self.sasl_failure_as("not-authorized", None, name);
        };
        match self
            .ctx
            .storage
            .fast_used(node, user.domain(), &client, slot, &stored, count)
            .await
        {
            Ok(true) => {}
            // Revoked, rotated or expired meanwhile, or (§4.3, for TLS
            // 0-RTT) a count already seen.
            Ok(false) => {
                return self.sasl_failure_as("not-authorized", Some("token no longer valid"), name)
            }
            Err(e) => {
                tracing::error!(error = %e, "storage error during authentication");
                return self.sasl_failure_as("temporary-auth-failure", None, name);
            }
        }
        if let Some(r) = self.sasl2.as_mut() {
            r.fast_used = Some(FastUsed {
                mechanism: mech,
                expires,
                invalidate,
            });
        }
        self.sasl_success(user, &answer).await
    }

    /// Authentication succeeded: resume or bind, handle tokens, and answer
    /// it all in one `<success/>`, then the features (XEP-0388 §2.6.1).
    pub(super) async fn sasl2_success(
        &mut self,
        user: BareJid,
        additional: &[u8],
        req: Sasl2Request,
    ) -> Flow {
        self.user = Some(user.clone());
        let node = user.node().unwrap_or_default().to_owned();
        if let Some(ua) = &req.user_agent {
            if let Err(e) = self
                .ctx
                .storage
                .client_seen(
                    &node,
                    user.domain(),
                    &ua.id,
                    &ua.software,
                    &ua.device,
                    self.ctx.config.sasl.max_clients_per_account,
                )
                .await
            {
                tracing::warn!(conn = self.conn_id, jid = %user, error = %e, "cannot record the client");
            }
        }
        let mut success = Element::new("success", ns::SASL2);
        if !additional.is_empty() {
            success.push(
                Element::new("additional-data", ns::SASL2)
                    .with_text(base64::engine::general_purpose::STANDARD.encode(additional)),
            );
        }
        let mut extra = Vec::new();
        let mut resumption: Option<Resumption> = None;
        if let Some(r) = &req.resume {
            match self.take_over(r).await {
                Ok(res) => {
                    extra.push(res.element.clone());
                    resumption = Some(res);
                }
                // XEP-0386 §2.2: the failure goes in the answer, and the
                // bind request is processed instead.
                Err(condition) => extra.push(
                    Element::new("failed", ns::SM).with_child(Element::new(condition, ns::STANZAS)),
                ),
            }
        }
        if resumption.is_none() {
            if let Some(b) = &req.bind {
                match self.bind2(b, req.user_agent.as_ref()).await {
                    Ok(bound) => extra.push(bound),
                    Err(condition) => return self.bind2_failed(&user, condition),
                }
            }
        }
        if let Some(token) = self.fast_after_login(&user, &req).await {
            extra.push(token);
        }
        let identity = match &self.full {
            Some(full) => full.to_string(),
            None => user.to_string(),
        };
        success.push(Element::new("authorization-identifier", ns::SASL2).with_text(identity));
        for e in extra {
            success.push(e);
        }
        self.write_element(&success);
        // XEP-0388 §2.6.1: the features follow <success/> at once; what a
        // resumed session never had acknowledged comes after them.
        let features = self.features();
        self.write_element(&features);
        // No restart: the parser takes the post-authentication limits.
        match resumption {
            Some(r) => match self.resumed(r, false) {
                Flow::Continue => Flow::Authenticated,
                other => other,
            },
            None => Flow::Authenticated,
        }
    }

    /// Authentication succeeded but Bind 2 could not bind (too many
    /// resources): the client is told, not logged in, and not counted as a
    /// failed login (that is for wrong credentials, and fail2ban), and
    /// gets the negotiation deadline back to try again.
    fn bind2_failed(&mut self, user: &BareJid, condition: StanzaErrorCondition) -> Flow {
        tracing::info!(conn = self.conn_id, jid = %user, condition = condition.as_str(), "Bind 2 failed");
        self.user = None;
        let text = format!("resource binding failed: {}", condition.as_str());
        self.write_element(
            &Element::new("failure", ns::SASL2)
                .with_child(Element::new("temporary-auth-failure", ns::SASL))
                .with_child(Element::new("text", ns::SASL2).with_text(text)),
        );
        self.restart_negotiation_timer();
        Flow::Continue
    }

    /// XEP-0386 §2.2: binds a resource and enables what the client asked
    /// for inline; the `<bound/>` answer.
    async fn bind2(
        &mut self,
        b: &BindRequest,
        ua: Option<&UserAgent>,
    ) -> Result<Element, StanzaErrorCondition> {
        let user = self
            .user
            .clone()
            .ok_or(StanzaErrorCondition::NotAuthorized)?;
        let resource = bind2_resource(&user, b.tag.as_deref(), ua.map(|u| u.id.as_str()));
        let full = self.bind_resource(Some(resource)).await?;
        tracing::debug!(conn = self.conn_id, jid = %full, "bound by Bind 2");
        self.drop_archived_offline(&user).await;
        let mut bound = Element::new("bound", ns::BIND2);
        if let Some(md) = chorus_modules::account_archive_metadata(&self.ctx.services, &user).await
        {
            bound.push(md);
        }
        if b.carbons && self.carbons_served() {
            if let Some(s) = &self.session {
                s.set_carbons(true);
            }
        }
        if let Some(inactive) = b.inactive {
            self.csi.inactive = inactive;
        }
        if let Some(enable) = &b.sm {
            let answer = self.sm_enable(enable);
            bound.push(answer);
        }
        Ok(bound)
    }

    /// XEP-0386 §2.2: "Clear the offline messages for this user ... as
    /// they will be provided by MAM". Only those the archive holds (they
    /// carry its stanza-id) go, oldest first up to the first it does not
    /// hold: that one and what follows stay, and are delivered at the
    /// first available presence as usual, so nothing is lost to an archive
    /// preference that left a message out.
    async fn drop_archived_offline(&self, user: &BareJid) {
        let Some(node) = user.node() else { return };
        let quota = self.ctx.config.offline.quota;
        let stored = match self
            .ctx
            .storage
            .offline_messages(node, user.domain(), quota)
            .await
        {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(jid = %user, error = %e, "cannot read offline messages");
                return;
            }
        };
        let by = user.to_string();
        // The archive's stanza-id on a stored message, if it has one.
        let archived = |xml: &str| {
            let m = Element::from_xml(xml).ok()?;
            let id = m
                .children()
                .find(|c| c.is("stanza-id", ns::SID) && c.attr("by") == Some(by.as_str()))
                .and_then(|c| c.attr("id"))
                .map(str::to_owned);
            id
        };
        let stamped: Vec<(i64, String)> = stored
            .iter()
            .map_while(|m| archived(&m.stanza).map(|sid| (m.id, sid)))
            .collect();
        let Some(&(upto, _)) = stamped.last() else {
            return;
        };
        // The stamp says the archive took the message; the archive itself
        // must still hold every one (a failed write, a purge or retention
        // would otherwise lose it here).
        let query = ArchiveQuery {
            with: None,
            start: None,
            end: None,
            after_id: None,
            before_id: None,
            ids: stamped.iter().map(|(_, sid)| sid.clone()).collect(),
            cursor: ArchiveCursor::First,
            limit: u32::try_from(stamped.len()).unwrap_or(u32::MAX),
        };
        match self
            .ctx
            .storage
            .archive_count(node, user.domain(), &query)
            .await
        {
            Ok(n) if n == stamped.len() as u64 => {}
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(jid = %user, error = %e, "cannot check the archive");
                return;
            }
        }
        match self
            .ctx
            .storage
            .delete_offline_up_to(node, user.domain(), upto)
            .await
        {
            Ok(n) => tracing::debug!(jid = %user, count = n, "archived offline messages dropped"),
            Err(e) => tracing::warn!(jid = %user, error = %e, "cannot drop offline messages"),
        }
    }

    /// XEP-0484 after a successful login: revoke on `invalidate`, then
    /// issue a token when asked for, or when the one used is in the last
    /// half of its life (§4.4). The `<token/>` for `<success/>`.
    async fn fast_after_login(&self, user: &BareJid, req: &Sasl2Request) -> Option<Element> {
        let ua = req.user_agent.as_ref()?;
        if !self.fast_offered() {
            return None;
        }
        let node = user.node()?;
        let ttl = Duration::from_secs(u64::from(self.ctx.config.sasl.fast_token_days) * 86_400);
        let now = SystemTime::now();
        let mut rotate = None;
        if let Some(used) = &req.fast_used {
            if used.invalidate {
                if let Err(e) = self
                    .ctx
                    .storage
                    .fast_revoke(node, user.domain(), Some(&ua.id))
                    .await
                {
                    tracing::warn!(jid = %user, error = %e, "cannot revoke a FAST token");
                }
                tracing::info!(conn = self.conn_id, jid = %user, "FAST token invalidated by its client");
            } else if used.expires < now + ttl / 2 {
                rotate = Some(used.mechanism);
            }
        }
        let mechanism = req.request_token.or(rotate)?;
        let token = NewToken::generate().ok()?;
        // Whole seconds: the expiry is part of the seal's context and must
        // read back from storage exactly.
        let expires =
            UNIX_EPOCH + Duration::from_secs(now.duration_since(UNIX_EPOCH).ok()?.as_secs()) + ttl;
        let sealed = self.open_token(user, &ua.id, mechanism, expires, &token.hash);
        match self
            .ctx
            .storage
            .fast_issue(
                node,
                user.domain(),
                &ua.id,
                mechanism.name(),
                &sealed,
                expires,
            )
            .await
        {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => {
                tracing::warn!(jid = %user, error = %e, "cannot store a FAST token");
                return None;
            }
        }
        tracing::info!(conn = self.conn_id, jid = %user, mechanism = mechanism.name(), "FAST token issued");
        Some(
            Element::new("token", ns::FAST)
                .with_attr(
                    "expiry",
                    humantime::format_rfc3339_seconds(expires).to_string(),
                )
                .with_attr("token", token.token),
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bind2_resources_are_stable_per_client_and_hide_its_id() {
        let user: BareJid = "juliet@example.org".parse().unwrap();
        let a = bind2_resource(&user, Some("Dino"), Some("ua-1"));
        assert_eq!(a, bind2_resource(&user, Some("Dino"), Some("ua-1")));
        assert!(a.starts_with("Dino/"), "{a}");
        assert!(!a.contains("ua-1"));
        assert_ne!(a, bind2_resource(&user, Some("Dino"), Some("ua-2")));
        let other: BareJid = "romeo@example.org".parse().unwrap();
        assert_ne!(a, bind2_resource(&other, Some("Dino"), Some("ua-1")));
        // Without a client id: random each time; without a tag: the id alone.
        assert_ne!(
            bind2_resource(&user, None, None),
            bind2_resource(&user, None, None)
        );
        assert_eq!(bind2_resource(&user, None, Some("x")).len(), 12);
    }

    #[test]
    fn authenticate_requests_parse_with_their_limits() {
        let el = Element::from_xml(
            "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'>\
             <user-agent id='d4565fa7'><software>AwesomeXMPP</software><device>Kiva's Phone</device></user-agent>\
             <bind xmlns='urn:xmpp:bind:0'><tag>AwesomeXMPP</tag>\
             <enable xmlns='urn:xmpp:carbons:2'/><enable xmlns='urn:xmpp:sm:3' resume='true'/>\
             <inactive xmlns='urn:xmpp:csi:0'/></bind></authenticate>",
        )
        .unwrap();
        let r = Sasl2Request::parse(&el);
        let ua = r.user_agent.unwrap();
        assert_eq!(
            (ua.id.as_str(), ua.device.as_str()),
            ("d4565fa7", "Kiva's Phone")
        );
        let b = r.bind.unwrap();
        assert_eq!(b.tag.as_deref(), Some("AwesomeXMPP"));
        assert!(b.carbons && b.sm.is_some() && b.inactive == Some(true));
        let long = format!(
            "<authenticate xmlns='urn:xmpp:sasl:2'><user-agent id='{}'/></authenticate>",
            "x".repeat(200)
        );
        // An id we cannot keep, or none: no client, and the login goes on.
        assert!(Sasl2Request::parse(&Element::from_xml(&long).unwrap())
            .user_agent
            .is_none());
        let bare = "<authenticate xmlns='urn:xmpp:sasl:2'><user-agent><software>x</software>\
                    </user-agent></authenticate>";
        assert!(Sasl2Request::parse(&Element::from_xml(bare).unwrap())
            .user_agent
            .is_none());
        // Control characters never reach a log line or a terminal.
        assert_eq!(printable("Evil\n\u{1b}[2JPhone", 64), "Evil[2JPhone");
    }
}
