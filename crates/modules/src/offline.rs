//! XEP-0160: Best Practices for Handling Offline Messages (version 1.0.1),
//! with XEP-0203 delays and the XEP-0334 storage hints.
//!
//! - Keeping ([`Module::offline_message`]): a chat or normal message for an
//!   account with no available resource (RFC 6121 §8.5.2.2.1) is stored if
//!   it carries something a user would miss (a body, or `<store/>`), never
//!   when marked `<no-store/>` or `<no-permanent-store/>`, and not as a bare
//!   chat state. Past the per-account quota the sender gets
//!   `service-unavailable`; for an account that does not exist, too (§8.5.1).
//! - Delivering ([`Module::available`]): at the first available presence
//!   with a non-negative priority, the session gets the stored messages in
//!   order, each with a XEP-0203 `<delay/>`, in batches; a batch is deleted
//!   only once the connection reports it written (or XEP-0198 keeps it until
//!   acknowledged), so a connection that drops meanwhile loses nothing.
//!
//! A resource that became available while a message was being stored (its
//! read of offline storage came before the commit) is told to read again
//! (`SessionSink::offline_waiting`), so the message does not wait for the
//! next login.

use chorus_jid::BareJid;
use chorus_proto::{error_reply, ns, StanzaError, StanzaErrorCondition};
use chorus_router::{message_targets, Outcome};
use chorus_storage::{OfflineStore, OfflineStored, StorageError};
use chorus_xml::Element;
use futures_util::future::BoxFuture;

use crate::{ClientLink, HookCtx, HookSet, Module, ModuleInfo, SessionCtx, Support, Xep};

/// Messages read from storage at a time.
const BATCH: u32 = 100;

pub struct Offline {
    /// Messages kept per account; past it, senders get `service-unavailable`.
    pub quota: u32,
}

static INFO: ModuleInfo = ModuleInfo {
    name: "offline",
    file: file!(),
    xeps: &[
        Xep {
            number: 160,
            name: "Best Practices for Handling Offline Messages",
            version: "1.0.1",
            support: Support::Complete,
            note: "",
        },
        Xep {
            number: 203,
            name: "Delayed Delivery",
            version: "2.0",
            support: Support::Complete,
            note: "On offline messages and archive results.",
        },
        Xep {
            number: 334,
            name: "Message Processing Hints",
            version: "0.3.0",
            support: Support::Complete,
            note: "store, no-store, no-permanent-store (offline, archive); no-copy (carbons).",
        },
    ],
    features: &["msgoffline"],
    hooks: HookSet::OFFLINE_MESSAGE.and(HookSet::AVAILABLE),
    ..ModuleInfo::EMPTY
};

/// What a user would miss: a body or an explicit `<store/>`, and no
/// hint against keeping it (XEP-0334 §4).
fn worth_storing(stanza: &Element) -> bool {
    if stanza.get_child("no-store", ns::HINTS).is_some()
        || stanza.get_child("no-permanent-store", ns::HINTS).is_some()
    {
        return false;
    }
    stanza.get_child("body", ns::JABBER_CLIENT).is_some()
        || stanza.get_child("store", ns::HINTS).is_some()
}

fn refuse(stanza: &Element, condition: StanzaErrorCondition) -> Outcome {
    match error_reply(stanza, &StanzaError::new(condition)) {
        Some(e) => Outcome::Reply(e),
        None => Outcome::Dropped,
    }
}

impl Offline {
    async fn store(&self, ctx: &HookCtx<'_>, owner: &BareJid, stanza: &Element) -> Outcome {
        let Some(node) = owner.node() else {
            return refuse(stanza, StanzaErrorCondition::ServiceUnavailable);
        };
        if !worth_storing(stanza) {
            return Outcome::Dropped;
        }
        match ctx
            .services
            .storage
            .store_offline(node, owner.domain(), &stanza.to_xml(), self.quota)
            .await
        {
            Ok(OfflineStored::Stored(_)) => {
                // See the module docs: a resource that read storage before
                // this commit reads again.
                let resources = ctx.router.sessions.resources(owner);
                if let Some(s) = message_targets(&resources, true).first() {
                    s.sink.offline_waiting();
                }
                Outcome::Stored
            }
            Ok(OfflineStored::QuotaExceeded) => {
                refuse(stanza, StanzaErrorCondition::ServiceUnavailable)
            }
            // RFC 6121 §8.5.1: no such user.
            Err(StorageError::NotFound) => refuse(stanza, StanzaErrorCondition::ServiceUnavailable),
            Err(e) => {
                tracing::error!(error = %e, "cannot store an offline message");
                refuse(stanza, StanzaErrorCondition::InternalServerError)
            }
        }
    }

    /// Sends the stored messages with their delay stamps, deleting each
    /// batch only once it is written (see the module docs).
    async fn deliver(&self, ctx: &SessionCtx<'_>, link: &mut dyn ClientLink) {
        let bare = ctx.full.bare();
        let (Some(node), domain) = (bare.node(), bare.domain()) else {
            return;
        };
        let storage = &ctx.services.storage;
        loop {
            let batch = match storage.offline_messages(node, domain, BATCH).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(conn = ctx.conn_id, error = %e, "cannot read offline messages");
                    return;
                }
            };
            let Some(last) = batch.last().map(|m| m.id) else {
                return;
            };
            let n = batch.len();
            for m in batch {
                match Element::from_xml(&m.stanza) {
                    Ok(mut msg) => {
                        msg.push(
                            Element::new("delay", ns::DELAY)
                                .with_attr("from", domain)
                                .with_attr(
                                    "stamp",
                                    humantime::format_rfc3339_seconds(m.stored_at).to_string(),
                                ),
                        );
                        link.send(&msg);
                    }
                    // Stored by us, so this is corruption: log, skip, go on.
                    Err(e) => {
                        tracing::error!(conn = ctx.conn_id, error = %e, "unreadable offline message skipped")
                    }
                }
            }
            if !link.flushed().await {
                // Not written: kept for the next login.
                return;
            }
            if let Err(e) = storage.delete_offline_up_to(node, domain, last).await {
                tracing::error!(conn = ctx.conn_id, error = %e, "cannot delete delivered offline messages");
                return;
            }
            tracing::debug!(conn = ctx.conn_id, count = n, "offline messages delivered");
            if n < BATCH as usize {
                return;
            }
        }
    }
}

impl Module for Offline {
    fn info(&self) -> &'static ModuleInfo {
        &INFO
    }

    fn offline_message<'a>(
        &'a self,
        ctx: &'a HookCtx<'a>,
        owner: &'a BareJid,
        stanza: &'a Element,
    ) -> Option<BoxFuture<'a, Outcome>> {
        Some(Box::pin(self.store(ctx, owner, stanza)))
    }

    fn available<'a>(
        &'a self,
        ctx: &'a SessionCtx<'a>,
        link: &'a mut dyn ClientLink,
    ) -> Option<BoxFuture<'a, ()>> {
        Some(Box::pin(self.deliver(ctx, link)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg() -> Element {
        Element::new("message", ns::JABBER_CLIENT).with_attr("type", "chat")
    }

    #[test]
    fn what_is_kept_follows_the_hints() {
        let body = Element::new("body", ns::JABBER_CLIENT).with_text("hi");
        assert!(worth_storing(&msg().with_child(body.clone())));
        assert!(!worth_storing(&msg()), "a bare chat state");
        assert!(worth_storing(
            &msg().with_child(Element::new("store", ns::HINTS))
        ));
        for hint in ["no-store", "no-permanent-store"] {
            assert!(!worth_storing(
                &msg()
                    .with_child(body.clone())
                    .with_child(Element::new(hint, ns::HINTS))
            ));
        }
    }
}
