//! XEP-0363: HTTP File Upload (version 1.1.0), the slot service on
//! `<upload.subdomain>.<domain>`.
//!
//! A local user asks for a slot (`<request filename size content-type/>`)
//! and gets two URLs on an `http`/`https` listener (`chorus-http` serves
//! them): a PUT URL valid for `upload.slot_secs`, and the GET URL to share.
//! Both are signed with a key of the server's (`<data_dir>/upload.key`),
//! so the HTTP side authorizes them without a database read:
//!
//! - GET and HEAD: `/upload/<id>/<sig>/<filename>`, `sig` an HMAC of the
//!   id and the file name;
//! - PUT: the same path and `?put=<expiry>.<sig>`, `sig` an HMAC that also
//!   covers the size, the content type and the expiry, which the upload must
//!   match (§5).
//!
//! Refusals are the XEP's (§4): too large is `not-acceptable` with
//! `<file-too-large><max-file-size/>`, the quota reached is
//! `resource-constraint` (wait), a content type not allowed is
//! `not-acceptable`. Files live under `upload.dir`, one directory per id
//! (`data` and `meta`); storage keeps a row per slot for the quota, for
//! retention (`upload.expire_days`, swept hourly) and for deleting an
//! account's files with the account.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chorus_jid::{BareJid, FullJid, Jid};
use chorus_proto::{error_reply, ns, IqType, StanzaError, StanzaErrorCondition as C, StanzaKind};
use chorus_router::{Outcome, Router, Service};
use chorus_storage::{Storage, Upload as UploadRow, UploadStore};
use chorus_xml::Element;
use futures_util::future::BoxFuture;
use hmac::{KeyInit, Mac};

use crate::{
    ChildCtx, HookCtx, HookSet, IqCtx, IqReply, Module, ModuleInfo, Services, Support, Xep,
};

/// XEP-0363's namespace.
pub const NS_UPLOAD: &str = "urn:xmpp:http:upload:0";

/// The HTTP path prefix of uploaded files.
pub const PATH_PREFIX: &str = "/upload/";

/// Longest file name accepted, in bytes.
const MAX_FILENAME: usize = 255;

/// What the service and the HTTP listener share: built once from the
/// configuration by each.
#[derive(Clone)]
pub struct UploadOptions {
    pub subdomain: String,
    pub dir: PathBuf,
    pub max_file_size: u64,
    /// 0: none.
    pub quota: u64,
    pub expire: Option<Duration>,
    pub allowed_types: Vec<String>,
    pub slot: Duration,
    /// The URLs' base, per served domain (`https://example.org:5443`).
    bases: Vec<(String, String)>,
    key: [u8; 32],
}

impl std::fmt::Debug for UploadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadOptions")
            .field("dir", &self.dir)
            .field("bases", &self.bases)
            .finish_non_exhaustive()
    }
}

/// The key that signs upload URLs, from `<data_dir>/upload.key` (made on
/// first start, mode 0600). None when there is no key to share: the
/// module and every HTTP listener read it, and a key of their own each
/// would make every URL fail, so upload is off rather than broken.
fn upload_key(data_dir: &Path) -> Option<[u8; 32]> {
    let path = data_dir.join("upload.key");
    chorus_sasl::server_key(&path)
        .map_err(|e| {
            tracing::error!(path = %path.display(), error = %e, "no upload key; upload is off");
        })
        .ok()
}

impl UploadOptions {
    /// The options, when the service runs: enabled, and an `http` or
    /// `https` listener to serve the files.
    pub fn from_config(config: &chorus_config::Config) -> Option<UploadOptions> {
        use chorus_config::ListenerKind;
        let u = &config.upload;
        if !u.enabled {
            return None;
        }
        let listener = |kind| config.listeners.iter().find(|l| l.kind == kind);
        let public = config.http.public_url.trim_end_matches('/');
        let derived = match (listener(ListenerKind::Https), listener(ListenerKind::Http)) {
            (Some(l), _) => Some(("https", l.address.port())),
            (None, Some(l)) => Some(("http", l.address.port())),
            (None, None) => None,
        };
        derived?;
        let bases = config
            .server
            .domains
            .iter()
            .map(|d| {
                let d = d.to_ascii_lowercase();
                let base = match (public.is_empty(), derived) {
                    (false, _) | (true, None) => public.to_owned(),
                    (true, Some((scheme, port))) => format!("{scheme}://{d}:{port}"),
                };
                (d, base)
            })
            .collect();
        let dir = if u.dir.as_os_str().is_empty() {
            config.server.data_dir.join("upload")
        } else {
            u.dir.clone()
        };
        Some(UploadOptions {
            subdomain: u.subdomain.clone(),
            dir,
            max_file_size: u.max_file_size,
            quota: u.quota_per_account,
            expire: (u.expire_days > 0).then(|| Duration::from_secs(u.expire_days * 86_400)),
            allowed_types: u.allowed_types.clone(),
            slot: Duration::from_secs(u.slot_secs),
            bases,
            key: upload_key(&config.server.data_dir)?,
        })
    }

    fn mac(&self, parts: &[&[u8]]) -> String {
        // HMAC takes keys of any length.
        let Ok(mut m) = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key) else {
            return String::new();
        };
        for p in parts {
            m.update(&(p.len() as u64).to_be_bytes());
            m.update(p);
        }
        m.finalize().into_bytes()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The signed path of a file: `/upload/<id>/<sig>/<filename>`.
    pub fn file_path(&self, id: &str, filename: &str) -> String {
        let sig = self.mac(&[b"get", id.as_bytes(), filename.as_bytes()]);
        format!("{PATH_PREFIX}{id}/{sig}/{}", percent_encode(filename))
    }

    /// Whether `sig` signs this file's GET path.
    pub fn verify_get(&self, id: &str, sig: &str, filename: &str) -> bool {
        let expected = self.mac(&[b"get", id.as_bytes(), filename.as_bytes()]);
        constant_time_eq(expected.as_bytes(), sig.as_bytes())
    }

    fn put_sig(&self, id: &str, filename: &str, size: u64, ctype: &str, expiry: u64) -> String {
        self.mac(&[
            b"put",
            id.as_bytes(),
            filename.as_bytes(),
            size.to_string().as_bytes(),
            ctype.as_bytes(),
            expiry.to_string().as_bytes(),
        ])
    }

    /// Whether a PUT with these facts is the one the slot allowed, and in
    /// time.
    pub fn verify_put(&self, slot: &PutSlot<'_>, size: u64, ctype: &str, now: SystemTime) -> bool {
        let expected = self.put_sig(slot.id, slot.filename, size, ctype, slot.expiry);
        let in_time = now
            .duration_since(UNIX_EPOCH)
            .is_ok_and(|d| d.as_secs() <= slot.expiry);
        in_time && constant_time_eq(expected.as_bytes(), slot.sig.as_bytes())
    }

    /// Where an upload's files live: `<dir>/<id>/`.
    pub fn upload_dir(&self, id: &str) -> Option<PathBuf> {
        valid_id(id).then(|| self.dir.join(id))
    }

    fn base(&self, domain: &str) -> Option<&str> {
        self.bases
            .iter()
            .find(|(d, _)| d == domain)
            .map(|(_, b)| b.as_str())
    }
}

/// A PUT's slot, from its URL.
pub struct PutSlot<'a> {
    pub id: &'a str,
    pub filename: &'a str,
    pub expiry: u64,
    pub sig: &'a str,
}

impl<'a> PutSlot<'a> {
    /// From the path's id and file name and the `put=<expiry>.<sig>` query.
    pub fn parse(id: &'a str, filename: &'a str, query: &'a str) -> Option<PutSlot<'a>> {
        let value = query.split('&').find_map(|kv| kv.strip_prefix("put="))?;
        let (expiry, sig) = value.split_once('.')?;
        Some(PutSlot {
            id,
            filename,
            expiry: expiry.parse().ok()?,
            sig,
        })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Ids are 32 lowercase hex digits: nothing a path could be built from.
fn valid_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// RFC 3986 §2.1 for a path segment: unreserved characters as they are.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The inverse of [`percent_encode`]; None for a bad escape or bytes that
/// are not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Deletes an upload's files, then its record; true when both went. A
/// record outlives files that could not be deleted, so that the next sweep
/// tries again (the files stay downloadable until then).
async fn remove(opts: &UploadOptions, storage: &Storage, id: &str) -> bool {
    if let Some(dir) = opts.upload_dir(id) {
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(upload = id, error = %e, "cannot delete an upload");
                return false;
            }
        }
    }
    match storage.upload_delete(id).await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(upload = id, error = %e, "cannot forget an upload");
            false
        }
    }
}

/// Public so that `docs/XEPS.md` lists it on a server without an HTTP
/// listener, where the module does not run.
pub static INFO: ModuleInfo = ModuleInfo {
    name: "upload",
    file: file!(),
    xeps: &[Xep {
        number: 363,
        name: "HTTP File Upload",
        version: "1.1.0",
        support: Support::Complete,
        note: "Signed PUT and GET URLs on the http/https listeners, quota, content types, \
               retention, files deleted with the account; Range and Content-Disposition \
               on downloads.",
    }],
    hooks: HookSet::ACCOUNT_REMOVED,
    ..ModuleInfo::EMPTY
};

/// The module: the services, and the account-removed hook.
pub struct Upload {
    opts: Arc<UploadOptions>,
}

impl Upload {
    pub fn new(opts: UploadOptions) -> Upload {
        Upload {
            opts: Arc::new(opts),
        }
    }
}

impl Module for Upload {
    fn info(&self) -> &'static ModuleInfo {
        &INFO
    }

    fn hosted(&self, ctx: &ChildCtx) -> Vec<(String, Arc<dyn Service>)> {
        spawn_retention(self.opts.clone(), Arc::downgrade(&ctx.services.storage));
        self.opts
            .bases
            .iter()
            .map(|(domain, _)| {
                let jid = format!("{}.{domain}", self.opts.subdomain);
                let service: Arc<dyn Service> = Arc::new(UploadService {
                    jid: jid.clone(),
                    domain: domain.clone(),
                    opts: self.opts.clone(),
                    services: ctx.services.clone(),
                });
                (jid, service)
            })
            .collect()
    }

    /// The account's files go with it.
    fn account_removed<'a>(
        &'a self,
        ctx: &'a HookCtx<'a>,
        user: &'a BareJid,
    ) -> Option<BoxFuture<'a, ()>> {
        Some(Box::pin(async move {
            let storage = &ctx.services.storage;
            let ids = match storage.uploads_of(&user.to_string()).await {
                Ok(ids) => ids,
                Err(e) => {
                    tracing::warn!(jid = %user, error = %e, "cannot list the account's uploads");
                    return;
                }
            };
            let n = ids.len();
            for id in ids {
                remove(&self.opts, storage, &id).await;
            }
            if n > 0 {
                tracing::info!(jid = %user, files = n, "uploads deleted with the account");
            }
        }))
    }
}

/// Hourly, while the server runs: deletes uploads older than
/// `upload.expire_days`, and slots whose file never came (an hour after
/// their PUT URL expired).
fn spawn_retention(opts: Arc<UploadOptions>, storage: std::sync::Weak<Storage>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let Some(storage) = storage.upgrade() else {
                return;
            };
            let now = SystemTime::now();
            if let Some(before) = opts.expire.and_then(|e| now.checked_sub(e)) {
                sweep(&opts, &storage, "expired", |limit| {
                    storage.uploads_before(before, limit)
                })
                .await;
            }
            if let Some(before) = now.checked_sub(opts.slot + Duration::from_secs(3600)) {
                sweep(&opts, &storage, "abandoned", |limit| {
                    storage.uploads_abandoned(before, limit)
                })
                .await;
            }
        }
    });
}

/// Removes what `list` names, a batch at a time, until a batch is short
/// or removes nothing (a failing disk or database must not spin).
async fn sweep<F, Fut>(opts: &UploadOptions, storage: &Storage, what: &str, list: F)
where
    F: Fn(u32) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<String>, chorus_storage::StorageError>>,
{
    const BATCH: u32 = 500;
    loop {
        let ids = match list(BATCH).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, what, "upload retention failed");
                return;
            }
        };
        let listed = ids.len();
        let mut removed = 0;
        for id in ids {
            if remove(opts, storage, &id).await {
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(files = removed, what, "uploads deleted");
        }
        if removed == 0 || listed < BATCH as usize {
            return;
        }
    }
}

/// One service, on one domain.
struct UploadService {
    jid: String,
    domain: String,
    opts: Arc<UploadOptions>,
    services: Arc<Services>,
}

impl Service for UploadService {
    fn name(&self) -> &str {
        "HTTP File Upload"
    }

    fn handle<'a>(&'a self, router: &'a Router, stanza: Element) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let request = StanzaKind::of(&stanza) == Some(StanzaKind::Iq)
                && IqType::of(&stanza).is_some_and(IqType::is_request);
            if !request {
                if stanza.name() == "message" && stanza.attr("type") != Some("error") {
                    if let Some(e) = error_reply(&stanza, &StanzaError::new(C::ServiceUnavailable))
                    {
                        return Outcome::Reply(e);
                    }
                }
                return Outcome::Dropped;
            }
            let Some(sender) = stanza.attr("from").and_then(|f| f.parse::<Jid>().ok()) else {
                return Outcome::Dropped;
            };
            let user: Option<FullJid> = FullJid::try_from(sender.clone())
                .ok()
                .filter(|f| self.services.sessions.get(f).is_some());
            let ctx = IqCtx {
                sender: &sender,
                user: user.as_ref(),
                domain: &self.jid,
                account: None,
                account_exists: true,
                router,
                services: &self.services,
            };
            match self.answer(&ctx, &stanza).await.into_stanza(&stanza) {
                Some(answer) => Outcome::Reply(answer),
                None => Outcome::Delivered,
            }
        })
    }
}

impl UploadService {
    async fn answer(&self, ctx: &IqCtx<'_>, iq: &Element) -> IqReply {
        let mut payloads = iq.children();
        let (Some(payload), None) = (payloads.next(), payloads.next()) else {
            return IqReply::Error(C::BadRequest);
        };
        let get = IqType::of(iq) == Some(IqType::Get);
        match (payload.ns(), payload.name(), get) {
            (ns::DISCO_INFO, "query", true) if payload.attr("node").is_none() => {
                IqReply::Result(Some(self.info()))
            }
            (ns::DISCO_ITEMS, "query", true) => {
                IqReply::Result(Some(Element::new("query", ns::DISCO_ITEMS)))
            }
            (ns::PING, "ping", true) => IqReply::Result(None),
            (NS_UPLOAD, "request", true) => self.slot(ctx, payload).await,
            _ => IqReply::Error(C::ServiceUnavailable),
        }
    }

    /// §2: the service, its feature and the largest file (XEP-0128 form).
    fn info(&self) -> Element {
        let field = |var: &str, value: String| {
            let mut f = Element::new("field", ns::DATA_FORMS).with_attr("var", var);
            if var == "FORM_TYPE" {
                f.set_attr("type", "hidden");
            }
            f.with_child(Element::new("value", ns::DATA_FORMS).with_text(value))
        };
        Element::new("query", ns::DISCO_INFO)
            .with_child(
                Element::new("identity", ns::DISCO_INFO)
                    .with_attr("category", "store")
                    .with_attr("type", "file")
                    .with_attr("name", "HTTP File Upload"),
            )
            .with_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", NS_UPLOAD))
            .with_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", ns::DISCO_INFO))
            .with_child(
                Element::new("x", ns::DATA_FORMS)
                    .with_attr("type", "result")
                    .with_child(field("FORM_TYPE", NS_UPLOAD.to_owned()))
                    .with_child(field("max-file-size", self.opts.max_file_size.to_string())),
            )
    }

    /// §4: a slot, or the reason there is none.
    async fn slot(&self, ctx: &IqCtx<'_>, request: &Element) -> IqReply {
        // Local users only: the quota and the files belong to accounts.
        let Some(user) = ctx.user.filter(|u| u.domain() == self.domain) else {
            return IqReply::Error(C::Forbidden);
        };
        let filename = request.attr("filename").unwrap_or_default();
        let size = request.attr("size").and_then(|s| s.parse::<u64>().ok());
        let ctype = request.attr("content-type").unwrap_or_default().trim();
        let bad_name = filename.is_empty()
            || filename.len() > MAX_FILENAME
            || filename.contains('/')
            || filename == "."
            || filename == ".."
            || filename.chars().any(char::is_control);
        let (Some(size), false) = (size.filter(|s| *s > 0), bad_name) else {
            return IqReply::failed(
                StanzaError::new(C::BadRequest)
                    .with_text("a file name (no '/') and a positive size are required"),
            );
        };
        if size > self.opts.max_file_size {
            return IqReply::failed(
                StanzaError::new(C::NotAcceptable)
                    .with_type(chorus_proto::ErrorType::Modify)
                    .with_text(format!(
                        "file too large: at most {} bytes",
                        self.opts.max_file_size
                    ))
                    .with_app(
                        Element::new("file-too-large", NS_UPLOAD).with_child(
                            Element::new("max-file-size", NS_UPLOAD)
                                .with_text(self.opts.max_file_size.to_string()),
                        ),
                    ),
            );
        }
        if !type_allowed(&self.opts.allowed_types, ctype) {
            return IqReply::failed(
                StanzaError::new(C::NotAcceptable)
                    .with_type(chorus_proto::ErrorType::Modify)
                    .with_text("this content type is not accepted"),
            );
        }
        let owner = user.bare().to_string();
        let storage = &ctx.services.storage;
        if self.opts.quota > 0 {
            // Slots whose PUT URL expired unused no longer count.
            let pending_since = SystemTime::now()
                .checked_sub(self.opts.slot)
                .unwrap_or(UNIX_EPOCH);
            match storage.upload_usage(&owner, pending_since).await {
                Ok(used) if used.saturating_add(size) > self.opts.quota => {
                    return IqReply::failed(
                        StanzaError::new(C::ResourceConstraint)
                            .with_type(chorus_proto::ErrorType::Wait)
                            .with_text("quota reached"),
                    )
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(jid = %owner, error = %e, "cannot read the upload quota");
                    return IqReply::Error(C::InternalServerError);
                }
            }
        }
        let Some(base) = self.opts.base(&self.domain) else {
            return IqReply::Error(C::ServiceUnavailable);
        };
        let Ok(token) = chorus_sasl::NewToken::generate() else {
            return IqReply::Error(C::InternalServerError);
        };
        let id: String = token.hash[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let row = UploadRow {
            id: id.clone(),
            owner: owner.clone(),
            filename: filename.to_owned(),
            size,
            content_type: ctype.to_owned(),
            created: SystemTime::now(),
            complete: false,
        };
        if let Err(e) = storage.upload_add(&row).await {
            tracing::warn!(jid = %owner, error = %e, "cannot record an upload slot");
            return IqReply::Error(C::InternalServerError);
        }
        let expiry = (SystemTime::now() + self.opts.slot)
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let path = self.opts.file_path(&id, filename);
        let sig = self.opts.put_sig(&id, filename, size, ctype, expiry);
        tracing::info!(jid = %owner, upload = %id, size, "upload slot");
        let put = Element::new("put", NS_UPLOAD)
            .with_attr("url", format!("{base}{path}?put={expiry}.{sig}"));
        IqReply::Result(Some(
            Element::new("slot", NS_UPLOAD).with_child(put).with_child(
                Element::new("get", NS_UPLOAD).with_attr("url", format!("{base}{path}")),
            ),
        ))
    }
}

/// `image/jpeg` is allowed by `image/jpeg` and `image/*`; anything by an
/// empty list.
fn type_allowed(allowed: &[String], ctype: &str) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let ctype = ctype.to_ascii_lowercase();
    allowed.iter().any(|a| {
        let a = a.to_ascii_lowercase();
        match a.strip_suffix("/*") {
            Some(major) => ctype.split('/').next() == Some(major),
            None => a == ctype,
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn opts() -> UploadOptions {
        UploadOptions {
            subdomain: "upload".into(),
            dir: PathBuf::from("/tmp/x"),
            max_file_size: 10,
            quota: 0,
            expire: None,
            allowed_types: Vec::new(),
            slot: Duration::from_secs(60),
            bases: vec![("example.org".into(), "https://example.org".into())],
            key: [7; 32],
        }
    }

    #[test]
    fn urls_are_signed_and_checked() {
        let o = opts();
        let id = "0123456789abcdef0123456789abcdef";
        let path = o.file_path(id, "très cool.jpg");
        assert!(path.ends_with("/tr%C3%A8s%20cool.jpg"), "{path}");
        let sig = path.split('/').nth(3).unwrap();
        assert!(o.verify_get(id, sig, "très cool.jpg"));
        assert!(!o.verify_get(id, sig, "other.jpg"));
        let now = SystemTime::now();
        let expiry = now.duration_since(UNIX_EPOCH).unwrap().as_secs() + 60;
        let put = o.put_sig(id, "a.jpg", 5, "image/jpeg", expiry);
        let q = format!("put={expiry}.{put}");
        let slot = PutSlot::parse(id, "a.jpg", &q).unwrap();
        assert!(o.verify_put(&slot, 5, "image/jpeg", now));
        assert!(!o.verify_put(&slot, 6, "image/jpeg", now), "size");
        assert!(!o.verify_put(&slot, 5, "text/html", now), "type");
        assert!(
            !o.verify_put(&slot, 5, "image/jpeg", now + Duration::from_secs(120)),
            "expired"
        );
        assert!(o.upload_dir("../etc").is_none());
        assert!(o.upload_dir(id).is_some());
    }

    #[test]
    fn percent_coding_round_trips_and_types_match() {
        for s in ["a b", "très", "%", "x/y?z#"] {
            assert_eq!(percent_decode(&percent_encode(s)).unwrap(), s);
        }
        assert!(percent_decode("%zz").is_none());
        let allowed = vec!["image/*".to_owned(), "text/plain".to_owned()];
        assert!(type_allowed(&allowed, "image/png"));
        assert!(type_allowed(&allowed, "Text/Plain"));
        assert!(!type_allowed(&allowed, "text/html"));
        assert!(type_allowed(&[], "anything"));
    }
}
