//! XEP-0280: Message Carbons (version 1.0.1), the enable/disable side. The
//! copying itself happens where messages are routed (`chorus-router`'s
//! carbons module), reading the per-session flag set here.

use chorus_proto::{ns, StanzaErrorCondition};
use chorus_xml::Element;
use futures_util::future::BoxFuture;

use crate::{IqCtx, IqReply, IqSpec, Module, ModuleInfo, Support, Xep};

pub struct Carbons;

static INFO: ModuleInfo = ModuleInfo {
    name: "carbons",
    file: file!(),
    xeps: &[Xep {
        number: 280,
        name: "Message Carbons",
        version: "1.0.1",
        support: Support::Complete,
        note: "",
    }],
    iqs: &[
        IqSpec::local("enable", ns::CARBONS),
        IqSpec::local("disable", ns::CARBONS),
    ],
    features: &[ns::CARBONS],
    ..ModuleInfo::EMPTY
};

impl Module for Carbons {
    fn info(&self) -> &'static ModuleInfo {
        &INFO
    }

    fn handle<'a>(&'a self, ctx: &'a IqCtx<'a>, iq: &'a Element) -> BoxFuture<'a, IqReply> {
        Box::pin(async move {
            // §3: a set, from the user's own resource to its own account.
            if iq.attr("type") != Some("set") {
                return IqReply::Error(StanzaErrorCondition::BadRequest);
            }
            if !ctx.is_own_account() && ctx.account.is_some() {
                return IqReply::Error(StanzaErrorCondition::Forbidden);
            }
            let enable = iq.get_child("enable", ns::CARBONS).is_some();
            match ctx.user.and_then(|me| ctx.services.sessions.get(me)) {
                Some(s) => {
                    s.set_carbons(enable);
                    IqReply::Result(None)
                }
                None => IqReply::Error(StanzaErrorCondition::UnexpectedRequest),
            }
        })
    }
}
