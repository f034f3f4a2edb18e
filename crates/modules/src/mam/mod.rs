//! XEP-0313: Message Archive Management (version 1.1.1), with XEP-0359
//! stanza ids, XEP-0441 preferences and XEP-0059 paging. This file is the
//! module: its declaration, and the archiving half as routing hooks; the
//! query side (queries, paging, forms, preferences) is `query.rs`.
//!
//! Archiving runs around the delivery of every message to a local account:
//! - [`Module::message_inbound`], before delivery, deletes any
//!   `<stanza-id/>` whose `by` is an archive we keep for either party
//!   (XEP-0359 §3: the generating entity deletes what claims to be its own,
//!   added or not, so a sender cannot plant ids in someone's archive),
//!   decides for each party whether its archive keeps the message (type,
//!   body, XEP-0334 hints, then the owner's XEP-0441 preferences), draws the
//!   archive ids, and stamps the recipient's on the stanza, so the delivered
//!   copy, any XEP-0280 carbons of it and the offline copy all carry it
//!   (XEP-0313 §3.4);
//!   and appends the copies, all before delivery: a message is in the
//!   archive before anyone can have seen it, so a client that queries right
//!   after receiving a message finds it, and the archive's order is the
//!   order in which routing handled the messages;
//! - [`Module::message_routed`] removes the copies again if the message
//!   went nowhere (neither delivered nor stored offline): a bounced message
//!   is in no archive (XEP-0313 §6.1, "only contain messages accepted for
//!   delivery").
//!
//! Both copies are archived in the sender's actor, as carbons are copied
//! there: the sender's next stanza waits for the two commits. A message a
//! user sends to their own account is archived once, as received.
//!
//! A session whose client queried its archive is marked
//! ([`ArchiveReader`]); when it ends with messages its client never
//! acknowledged (XEP-0198), those that carry its archive's stanza-id are
//! not delivered again nor stored offline: the client finds them in the
//! archive, where they already are (as Prosody's `mod_smacks` does with
//! `mam_requested`). Without this, every quit of a modern client brought
//! its last messages back as offline messages at the next login.
//!
//! Archive ids are random UUIDs (XEP-0313 §3 wants them unpredictable):
//! drawn before storage sees the message, so the stamped stanza can go to
//! offline storage first and the archive second.
//!
//! A storage failure while reading preferences means "do not archive": a
//! message kept against the user's wishes is worse than one missing from
//! the history. Failing to append is logged; the message is delivered
//! anyway.

mod query;
mod writer;

use std::any::Any;
use std::sync::Arc;
use std::time::SystemTime;

use chorus_jid::{BareJid, Jid};
use chorus_proto::{ns, MessageType};
use chorus_router::{Outcome, Session};
use chorus_storage::{ArchiveDefault, ArchiveStore, ArchivedMessage, RosterStore};
use chorus_supervisor::{ChildSpec, Restart, StartCtx};
use chorus_xml::Element;
use futures_util::future::BoxFuture;
use ractor::Actor;

pub use writer::ArchiveQueue;
use writer::{ArchiveWriter, Pushed, WriterArgs};

use crate::{
    ChildCtx, HookCtx, HookSet, IqCtx, IqReply, IqSpec, Module, ModuleInfo, SessionCtx, Support,
    Xep,
};

pub use query::MAM_EXTENDED;
pub(crate) use query::{archive_metadata, parse_datetime, query_form, run_query, Archive};

const FEATURES: &[&str] = &[ns::MAM, MAM_EXTENDED];

static INFO: ModuleInfo = ModuleInfo {
    name: "mam",
    file: file!(),
    xeps: &[
        Xep {
            number: 313,
            name: "Message Archive Management",
            version: "1.1.1",
            support: Support::Complete,
            note: "Archives of accounts, and of MUC rooms on the room's JID while the room logs (muc/service.rs).",
        },
        Xep {
            number: 59,
            name: "Result Set Management",
            version: "1.0",
            support: Support::Partial,
            note: "max, before, after and count; an index is feature-not-implemented.",
        },
        Xep {
            number: 441,
            name: "Message Archive Management Preferences",
            version: "0.2.0",
            support: Support::Complete,
            note: "",
        },
        Xep {
            number: 359,
            name: "Unique and Stable Stanza IDs",
            version: "0.7.0",
            support: Support::Complete,
            note: "The archive's stanza-id on every archived message.",
        },
        Xep {
            number: 297,
            name: "Stanza Forwarding",
            version: "1.0",
            support: Support::Complete,
            note: "Archive results and carbons.",
        },
        Xep {
            number: 4,
            name: "Data Forms",
            version: "2.13.1",
            support: Support::Partial,
            note: "The archive query form; no other forms yet.",
        },
    ],
    iqs: &[
        IqSpec::local("query", ns::MAM),
        IqSpec::local("prefs", ns::MAM),
        IqSpec::local("metadata", ns::MAM),
    ],
    features: FEATURES,
    account_features: FEATURES,
    hooks: HookSet::MESSAGE_INBOUND
        .and(HookSet::USER_SENT)
        .and(HookSet::UNACKNOWLEDGED_KEPT),
    ..ModuleInfo::EMPTY
};

/// How the server archives, from the `[mam]` configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveOptions {
    /// What an account that never set preferences archives.
    pub default: ArchiveDefault,
    /// The most results one query returns (a client's larger `<max/>` is
    /// capped to it).
    pub max_page: u32,
    /// Serialized bytes of results one query may queue for its client; a
    /// page is cut short (and not `complete`) past it, so a page of large
    /// messages cannot overrun the connection's outbound limit.
    pub max_page_bytes: usize,
}

impl ArchiveOptions {
    /// From the `[mam]` section. A page of results may queue up to half the
    /// outbound byte limit, as its length is at most half the outbound
    /// stanza limit (checked by the configuration).
    pub fn from_config(config: &chorus_config::Config) -> ArchiveOptions {
        use chorus_config::MamDefault;
        ArchiveOptions {
            default: match config.mam.default_pref {
                MamDefault::Always => ArchiveDefault::Always,
                MamDefault::Never => ArchiveDefault::Never,
                MamDefault::Roster => ArchiveDefault::Roster,
            },
            max_page: config.mam.max_page_size,
            max_page_bytes: config.limits.max_outbound_bytes / 2,
        }
    }
}

impl Default for ArchiveOptions {
    fn default() -> Self {
        ArchiveOptions {
            default: ArchiveDefault::Always,
            max_page: 100,
            max_page_bytes: 512 * 1024,
        }
    }
}

/// On a session whose client queried its archive (see the module docs).
#[derive(Clone, Copy)]
pub struct ArchiveReader;

/// The module: archives (the hooks below) and answers queries.
pub struct Mam {
    pub options: ArchiveOptions,
    /// Archive copies on their way to storage (writer.rs).
    pub queue: Arc<ArchiveQueue>,
}

impl Mam {
    pub fn from_config(config: &chorus_config::Config) -> Mam {
        Mam {
            options: ArchiveOptions::from_config(config),
            queue: Arc::new(ArchiveQueue::new(config.mam.writer_queue)),
        }
    }
}

/// The archive copies a message will make, decided before delivery.
#[derive(Debug, Default)]
pub(crate) struct ArchivePlan {
    copies: Vec<(BareJid, ArchivedMessage)>,
}

/// XEP-0313 §6.1.1: chat and normal messages with a body, or with an
/// explicit XEP-0334 `<store/>`; never those marked `<no-store/>` or
/// `<no-permanent-store/>` (XEP-0334 §4.2-4.3), nor errors, headlines or
/// groupchat (never routed to an account here anyway).
pub fn archivable(stanza: &Element) -> bool {
    if !matches!(
        MessageType::of(stanza),
        MessageType::Chat | MessageType::Normal
    ) {
        return false;
    }
    if stanza.get_child("no-store", ns::HINTS).is_some()
        || stanza.get_child("no-permanent-store", ns::HINTS).is_some()
    {
        return false;
    }
    stanza.get_child("body", ns::JABBER_CLIENT).is_some()
        || stanza.get_child("store", ns::HINTS).is_some()
}

/// A fresh archive id: a random (version 4) UUID, or `None` if the system
/// has no randomness to give.
fn new_id() -> Option<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).ok()?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut id = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            id.push('-');
        }
        id.push_str(&format!("{byte:02x}"));
    }
    Some(id)
}

/// XEP-0313 §5 metadata of `user`'s archive (its first and last
/// message), which XEP-0386 Bind 2 hands a client at login so that it knows
/// where to catch up from. None on a storage error.
pub async fn account_archive_metadata(
    services: &crate::Services,
    user: &BareJid,
) -> Option<chorus_xml::Element> {
    archive_metadata(services, Archive::Account(user))
        .await
        .ok()
}

/// Deletes the `<stanza-id/>` elements whose `by` is one of `archives`.
fn strip_stanza_ids(stanza: &mut Element, archives: &[&BareJid]) {
    stanza.remove_children(|c| {
        c.is("stanza-id", ns::SID)
            && c.attr("by")
                .and_then(|b| b.parse::<Jid>().ok())
                .is_some_and(|by| archives.iter().any(|a| by == **a))
    });
}

impl Mam {
    /// Whether `owner`'s archive keeps messages exchanged with `peer`, by
    /// the owner's XEP-0441 preferences (the server default if none): the
    /// never list, then the always list (entries match the peer's full or
    /// bare JID), then the default, where `roster` means the peer's bare
    /// JID is in the owner's roster.
    async fn archives_with(&self, ctx: &HookCtx<'_>, owner: &BareJid, peer: &Jid) -> bool {
        let Some(node) = owner.node() else {
            return false;
        };
        let storage = &ctx.services.storage;
        let prefs = match storage.archive_prefs(node, owner.domain()).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot read archiving preferences; not archiving");
                return false;
            }
        };
        let peer_bare = peer.bare();
        let listed = |list: &[String]| {
            list.iter()
                .any(|j| j == peer.as_str() || j == peer_bare.as_str())
        };
        let default = match &prefs {
            Some(p) if listed(&p.never) => return false,
            Some(p) if listed(&p.always) => return true,
            Some(p) => p.default,
            None => self.options.default,
        };
        match default {
            ArchiveDefault::Always => true,
            ArchiveDefault::Never => false,
            ArchiveDefault::Roster => storage
                .roster_item(node, owner.domain(), peer_bare.as_str())
                .await
                .unwrap_or_else(|e| {
                    tracing::error!(error = %e, "cannot read the roster; not archiving");
                    None
                })
                .is_some(),
        }
    }

    /// Before a message to the local account `to` is delivered: strips
    /// forged stanza-ids, decides the archive copies and stamps the
    /// recipient's stanza-id (see the module docs).
    async fn prepare(&self, ctx: &HookCtx<'_>, to: &Jid, stanza: &mut Element) -> ArchivePlan {
        let recipient = to.bare();
        let from = stanza.attr("from").and_then(|f| f.parse::<Jid>().ok());
        let sender = from
            .as_ref()
            .map(Jid::bare)
            .filter(|b| b.node().is_some() && ctx.router.is_local(b.domain()));
        let mut ours = vec![&recipient];
        ours.extend(sender.as_ref());
        strip_stanza_ids(stanza, &ours);

        let mut plan = ArchivePlan::default();
        let Some(from) = from else {
            return plan;
        };
        if !archivable(stanza) {
            return plan;
        }
        let now = SystemTime::now();
        if let Some(sender) = sender.filter(|s| *s != recipient) {
            if self.archives_with(ctx, &sender, to).await {
                if let Some(id) = new_id() {
                    plan.copies.push((
                        sender,
                        ArchivedMessage {
                            stanza_id: id,
                            timestamp: now,
                            with: to.to_string(),
                            outgoing: true,
                            stanza: stanza.to_xml(),
                        },
                    ));
                }
            }
        }
        if self.archives_with(ctx, &recipient, &from).await {
            if let Some(id) = new_id() {
                stanza.push(
                    Element::new("stanza-id", ns::SID)
                        .with_attr("by", recipient.to_string())
                        .with_attr("id", id.as_str()),
                );
                plan.copies.push((
                    recipient,
                    ArchivedMessage {
                        stanza_id: id,
                        timestamp: now,
                        with: from.to_string(),
                        outgoing: false,
                        stanza: stanza.to_xml(),
                    },
                ));
            }
        }
        plan
    }
}

impl Module for Mam {
    fn info(&self) -> &'static ModuleInfo {
        &INFO
    }

    fn handle<'a>(&'a self, ctx: &'a IqCtx<'a>, iq: &'a Element) -> BoxFuture<'a, IqReply> {
        Box::pin(async move {
            // Read-your-writes: what was routed before the query is in the
            // archive before the query reads it.
            self.queue.flush().await;
            query::answer(ctx, &self.options, iq)
                .await
                .unwrap_or_else(IqReply::Error)
        })
    }

    fn children(&self, ctx: &ChildCtx) -> Vec<ChildSpec> {
        let args = WriterArgs {
            queue: self.queue.clone(),
            storage: ctx.services.storage.clone(),
        };
        vec![ChildSpec::worker(
            "archive-writer",
            Restart::Permanent,
            move |sctx: StartCtx| {
                let args = args.clone();
                async move {
                    let (a, _) =
                        Actor::spawn_linked(None, ArchiveWriter, args, sctx.supervisor).await?;
                    Ok(a.get_cell())
                }
            },
        )
        // Waits for work like the acceptor waits in accept(): stopped by a
        // kill, which loses nothing (the queue outlives it).
        .shutdown(std::time::Duration::ZERO)]
    }

    /// The server stops: what is queued is written first.
    fn stopping<'a>(&'a self) -> Option<BoxFuture<'a, ()>> {
        Some(Box::pin(self.queue.flush()))
    }

    /// A client that queries its archive reads what it missed there.
    fn user_sent<'a>(
        &'a self,
        ctx: &'a SessionCtx<'a>,
        stanza: &'a mut Element,
    ) -> Option<BoxFuture<'a, ()>> {
        if stanza.name() == "iq" && stanza.get_child("query", ns::MAM).is_some() {
            if let Some(s) = ctx.services.sessions.get(ctx.full) {
                s.mark(ArchiveReader);
            }
        }
        None
    }

    fn unacknowledged_kept(&self, _: &HookCtx<'_>, session: &Session, stanza: &Element) -> bool {
        let owner = session.full.bare();
        session.marked::<ArchiveReader>().is_some()
            && stanza.name() == "message"
            && stanza.children().any(|c| {
                c.is("stanza-id", ns::SID)
                    && c.attr("by").and_then(|b| b.parse::<Jid>().ok()).as_ref()
                        == Some(owner.as_jid())
            })
    }

    fn message_inbound<'a>(
        &'a self,
        ctx: &'a HookCtx<'a>,
        to: &'a Jid,
        stanza: &'a mut Element,
    ) -> Option<BoxFuture<'a, Option<Box<dyn Any + Send>>>> {
        Some(Box::pin(async move {
            let plan = self.prepare(ctx, to, stanza).await;
            if plan.copies.is_empty() {
                return None;
            }
            // Queued before delivery, so a query that follows the delivery
            // waits for it (read-your-writes); the sender waits only when
            // the queue is full.
            let pushed = self.queue.push(plan.copies).await;
            Some(Box::new(pushed) as Box<dyn Any + Send>)
        }))
    }

    fn message_routed<'a>(
        &'a self,
        ctx: &'a HookCtx<'a>,
        state: Box<dyn Any + Send>,
        outcome: &'a Outcome,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            // XEP-0313 §6.1: only messages accepted for delivery.
            if matches!(outcome, Outcome::Delivered | Outcome::Stored) {
                return;
            }
            if let Ok(pushed) = state.downcast::<Pushed>() {
                self.queue.cancel(*pushed, &ctx.services.storage).await;
            }
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn msg(typ: Option<&str>) -> Element {
        let mut m = Element::new("message", ns::JABBER_CLIENT);
        if let Some(t) = typ {
            m.set_attr("type", t);
        }
        m
    }

    fn body() -> Element {
        Element::new("body", ns::JABBER_CLIENT).with_text("hi")
    }

    #[test]
    fn archivable_follows_the_xep_and_the_hints() {
        assert!(archivable(&msg(Some("chat")).with_child(body())));
        assert!(archivable(&msg(None).with_child(body())));
        assert!(!archivable(&msg(Some("chat"))), "no body: a chat state");
        assert!(archivable(
            &msg(Some("chat")).with_child(Element::new("store", ns::HINTS))
        ));
        for t in ["headline", "groupchat", "error"] {
            assert!(!archivable(&msg(Some(t)).with_child(body())), "{t}");
        }
        for hint in ["no-store", "no-permanent-store"] {
            assert!(!archivable(
                &msg(Some("chat"))
                    .with_child(body())
                    .with_child(Element::new(hint, ns::HINTS))
            ));
        }
    }

    #[test]
    fn ids_are_random_v4_uuids() {
        let a = new_id().unwrap();
        let b = new_id().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert!(matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'));
    }

    #[test]
    fn only_stanza_ids_by_our_archives_are_stripped() {
        let ours: BareJid = "juliet@capulet.lit".parse().unwrap();
        let sid = |by: &str| {
            Element::new("stanza-id", ns::SID)
                .with_attr("by", by)
                .with_attr("id", "forged")
        };
        let mut m = msg(Some("chat"))
            .with_child(sid("Juliet@Capulet.lit"))
            .with_child(sid("room@muc.example"))
            .with_child(Element::new("origin-id", ns::SID).with_attr("id", "o"))
            .with_child(sid("juliet@capulet.lit"));
        strip_stanza_ids(&mut m, &[&ours]);
        let left: Vec<(&str, Option<&str>)> =
            m.children().map(|c| (c.name(), c.attr("by"))).collect();
        assert_eq!(
            left,
            [("stanza-id", Some("room@muc.example")), ("origin-id", None)]
        );
    }
}
