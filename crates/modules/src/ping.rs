//! XEP-0199: XMPP Ping (version 2.0.1). The server answers pings addressed
//! to itself and, on an account's behalf, to a bare JID. Server-initiated
//! keepalive pings are c2s's job (it owns the session's timers).

use chorus_proto::ns;
use chorus_xml::Element;
use futures_util::future::BoxFuture;

use crate::{IqCtx, IqReply, IqSpec, Module, ModuleInfo, Support, Xep};

pub struct Ping;

static INFO: ModuleInfo = ModuleInfo {
    name: "ping",
    file: file!(),
    xeps: &[Xep {
        number: 199,
        name: "XMPP Ping",
        version: "2.0.1",
        support: Support::Complete,
        note: "",
    }],
    iqs: &[IqSpec::anyone("ping", ns::PING)],
    features: &[ns::PING],
    ..ModuleInfo::EMPTY
};

impl Module for Ping {
    fn info(&self) -> &'static ModuleInfo {
        &INFO
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
