//! XEP-0012: Last Activity (version 2.0), answered by the server:
//!
//! - Server and Component Query (§5): a query to the server's domain
//!   answers its uptime, in whole seconds since start.
//! - Offline User Query (§3): a query to an account's bare JID answers the
//!   seconds since the user last logged out and the status of its last
//!   unavailable presence, or `0` while a resource is online (§3: "SHOULD
//!   contain ... '0'"). Only to the user and to entities that may see the
//!   user's presence (a `from` or `both` subscription); anyone else gets
//!   `forbidden` (§3: "MUST return a Forbidden error"). A user who never
//!   logged out since the server started keeping this has no last activity
//!   yet (`item-not-found`).
//!
//! Logouts are recorded from the session hooks, persistently (storage's
//! `last_activity`): the status of a broadcast unavailable presence, or an
//! empty status when a session ends without one. Queries to a full JID are
//! the client's to answer and never reach this module.

use std::time::{Duration, SystemTime};

use chorus_jid::BareJid;
use chorus_proto::{ns, PresenceType, StanzaErrorCondition};
use chorus_storage::{LastActivityStore, Storage};
use chorus_xml::Element;
use dashmap::DashSet;
use futures_util::future::BoxFuture;

use crate::{HookSet, IqCtx, IqReply, IqSpec, Module, ModuleInfo, SessionCtx, Support, Xep};

#[derive(Default)]
pub struct Last {
    /// Connections whose client announced its logout with a status, so
    /// their end does not overwrite it with an empty one.
    announced: DashSet<u64>,
}

/// Records `user`'s logout now.
async fn record(storage: &Storage, user: &BareJid, status: &str) {
    let Some(node) = user.node() else { return };
    if let Err(e) = storage
        .set_last_activity(node, user.domain(), SystemTime::now(), status)
        .await
    {
        tracing::warn!(jid = %user, error = %e, "cannot record last activity");
    }
}

/// `<query seconds='N'/>` for an uptime of `uptime`. The text is empty: a
/// server has no status message to report.
fn last_query(uptime: Duration) -> Element {
    Element::new("query", ns::LAST).with_attr("seconds", uptime.as_secs().to_string())
}

static INFO: ModuleInfo = ModuleInfo {
    name: "last",
    file: file!(),
    xeps: &[Xep {
        number: 12,
        name: "Last Activity",
        version: "2.0",
        support: Support::Partial,
        note: "Server uptime and accounts' last logout; a client's idle time is the client's.",
    }],
    iqs: &[IqSpec::anyone("query", ns::LAST)],
    features: &[ns::LAST],
    account_features: &[ns::LAST],
    hooks: HookSet::USER_SENT.and(HookSet::SESSION_CLOSED),
    ..ModuleInfo::EMPTY
};

impl Module for Last {
    fn info(&self) -> &'static ModuleInfo {
        &INFO
    }

    fn handle<'a>(&'a self, ctx: &'a IqCtx<'a>, iq: &'a Element) -> BoxFuture<'a, IqReply> {
        Box::pin(async move {
            // Last activity is observed, never set.
            if iq.attr("type") != Some("get") {
                return IqReply::Error(StanzaErrorCondition::BadRequest);
            }
            match ctx.account {
                None => IqReply::Result(Some(last_query(ctx.services.started.elapsed()))),
                Some(account) => user_query(ctx, account).await,
            }
        })
    }

    /// A broadcast unavailable presence: the logout, with its status.
    fn user_sent<'a>(
        &'a self,
        ctx: &'a SessionCtx<'a>,
        stanza: &'a mut Element,
    ) -> Option<BoxFuture<'a, ()>> {
        if stanza.name() != "presence" || stanza.attr("to").is_some() {
            return None;
        }
        match PresenceType::of(stanza) {
            Some(PresenceType::Unavailable) => {}
            Some(PresenceType::Available) => {
                // Back online: a later silent end is a logout again.
                self.announced.remove(&ctx.conn_id);
                return None;
            }
            _ => return None,
        }
        self.announced.insert(ctx.conn_id);
        let status = stanza
            .get_child("status", ns::JABBER_CLIENT)
            .map(|s| s.text())
            .unwrap_or_default();
        Some(Box::pin(async move {
            record(&ctx.services.storage, &ctx.full.bare(), &status).await;
        }))
    }

    /// A session that ends without announcing it (closed, dropped, killed)
    /// is a logout too. Called where no await is possible: the write runs
    /// in a task of its own.
    fn session_closed(&self, ctx: &SessionCtx<'_>) {
        if self.announced.remove(&ctx.conn_id).is_some() {
            return;
        }
        let (storage, user) = (ctx.services.storage.clone(), ctx.full.bare());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { record(&storage, &user, "").await });
        }
    }
}

/// §3: the account's last logout, for those who may see its presence.
async fn user_query(ctx: &IqCtx<'_>, account: &BareJid) -> IqReply {
    if !ctx.may_see_presence_of(account).await {
        return IqReply::Error(StanzaErrorCondition::Forbidden);
    }
    if ctx
        .router
        .sessions
        .resources(account)
        .iter()
        .any(|s| s.available())
    {
        return IqReply::Result(Some(last_query(Duration::ZERO)));
    }
    let Some(node) = account.node() else {
        return IqReply::Error(StanzaErrorCondition::ItemNotFound);
    };
    match ctx
        .services
        .storage
        .last_activity(node, account.domain())
        .await
    {
        Ok(Some((at, status))) => {
            let ago = SystemTime::now().duration_since(at).unwrap_or_default();
            let mut q = last_query(ago);
            if !status.is_empty() {
                q.push_text(status);
            }
            IqReply::Result(Some(q))
        }
        Ok(None) => IqReply::Error(StanzaErrorCondition::ItemNotFound),
        Err(e) => {
            tracing::error!(error = %e, "last activity read failed");
            IqReply::Error(StanzaErrorCondition::InternalServerError)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_whole_seconds_of_uptime() {
        let q = last_query(Duration::from_millis(90_999));
        assert!(q.is("query", ns::LAST));
        assert_eq!(q.attr("seconds"), Some("90"));
        assert_eq!(q.nodes().len(), 0);
    }
}
