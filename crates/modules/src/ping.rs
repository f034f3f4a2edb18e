//! XEP-0199: XMPP Ping (version 2.0.1). The server answers pings addressed
//! to itself and, on an account's behalf, to a bare JID. Server-initiated
//! keepalive pings are c2s's job (it owns the session's timers).

use chorus_proto::ns;
use chorus_xml::Element;
use futures_util::future::BoxFuture;

use crate::{IqCtx, IqReply, Module};

pub struct Ping;

impl Module for Ping {
    fn name(&self) -> &'static str {
        "ping"
    }

    fn payloads(&self) -> &'static [(&'static str, &'static str)] {
        &[("ping", ns::PING)]
    }

    fn features(&self) -> &'static [&'static str] {
        &[ns::PING]
    }

    fn handle<'a>(&'a self, _ctx: &'a IqCtx<'a>, iq: &'a Element) -> BoxFuture<'a, IqReply> {
        Box::pin(async move {
            if iq.attr("type") == Some("get") {
                IqReply::Result(None)
            } else {
                IqReply::Error(chorus_proto::StanzaErrorCondition::BadRequest)
            }
        })
    }
}
