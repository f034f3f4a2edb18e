//! XEP-0012: Last Activity (version 2.0), the server query only: a query to
//! the server's domain answers its uptime ("Server and Component Query"),
//! in whole seconds since start.
//!
//! Not implemented: the "Offline User Query" about an account (to its bare
//! JID). Its answer is the time since the user's last logout, and the XEP
//! lets the server give it only to entities authorized to see the user's
//! presence (normally a subscription), `forbidden` to anyone else. Chorus
//! stores neither logout times nor presence authorization yet, so it can
//! neither answer nor tell who may ask; such queries get
//! `service-unavailable` (RFC 6120 §8.3.3.19: the service is not offered
//! there), which, unlike `forbidden`, reveals nothing about the asker's
//! standing. Queries to a full JID are the client's to answer and never
//! reach this module.

use std::time::Duration;

use chorus_proto::{ns, StanzaErrorCondition};
use chorus_xml::Element;
use futures_util::future::BoxFuture;

use crate::{IqCtx, IqReply, IqSpec, Module, ModuleInfo, Support, Xep};

pub struct Last;

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
        note: "Server uptime only; the offline user query answers service-unavailable.",
    }],
    iqs: &[IqSpec::anyone("query", ns::LAST)],
    features: &[ns::LAST],
    ..ModuleInfo::EMPTY
};

impl Module for Last {
    fn info(&self) -> &'static ModuleInfo {
        &INFO
    }

    fn handle<'a>(&'a self, ctx: &'a IqCtx<'a>, iq: &'a Element) -> BoxFuture<'a, IqReply> {
        Box::pin(async move {
            if ctx.account.is_some() {
                return IqReply::Error(StanzaErrorCondition::ServiceUnavailable);
            }
            // Last activity is observed, never set.
            if iq.attr("type") != Some("get") {
                return IqReply::Error(StanzaErrorCondition::BadRequest);
            }
            IqReply::Result(Some(last_query(ctx.services.started.elapsed())))
        })
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
