//! XEP-0202: Entity Time (version 2.0). The server answers for itself with
//! the current time in UTC (XEP-0082 DateTime profile).
//!
//! As with XEP-0092, an account's local time is its client's to give (a
//! query to a full JID goes to the client); a query to a bare JID gets
//! `service-unavailable`, because the server does not know where its user is.

use std::time::SystemTime;

use chorus_proto::{ns, StanzaErrorCondition};
use chorus_xml::Element;
use futures_util::future::BoxFuture;

use crate::{IqCtx, IqReply, IqSpec, Module, ModuleInfo, Support, Xep};

pub struct Time;

/// The `<time/>` element for `now`.
///
/// The offset is always `+00:00`, declaring the server's zone to be UTC:
/// the standard library cannot tell the host's zone, and a server's zone is
/// an accident of where it was deployed, nothing a client can use (and
/// one more fact about the host it need not publish).
fn time_element(now: SystemTime) -> Element {
    Element::new("time", ns::TIME)
        .with_child(Element::new("tzo", ns::TIME).with_text("+00:00"))
        .with_child(
            // XEP-0082: `CCYY-MM-DDThh:mm:ssZ`; sub-second precision is
            // optional and tells a client nothing useful across a network.
            Element::new("utc", ns::TIME)
                .with_text(humantime::format_rfc3339_seconds(now).to_string()),
        )
}

static INFO: ModuleInfo = ModuleInfo {
    name: "time",
    file: file!(),
    xeps: &[
        Xep {
            number: 202,
            name: "Entity Time",
            version: "2.0",
            support: Support::Complete,
            note: "",
        },
        Xep {
            number: 82,
            name: "XMPP Date and Time Profiles",
            version: "1.1.1",
            support: Support::Complete,
            note: "Used by entity time, delays and archive filters.",
        },
    ],
    iqs: &[IqSpec::anyone("time", ns::TIME)],
    features: &[ns::TIME],
    ..ModuleInfo::EMPTY
};

impl Module for Time {
    fn info(&self) -> &'static ModuleInfo {
        &INFO
    }

    fn handle<'a>(&'a self, ctx: &'a IqCtx<'a>, iq: &'a Element) -> BoxFuture<'a, IqReply> {
        Box::pin(async move {
            if ctx.account.is_some() {
                return IqReply::Error(StanzaErrorCondition::ServiceUnavailable);
            }
            // The server's clock is not settable over XMPP.
            if iq.attr("type") != Some("get") {
                return IqReply::Error(StanzaErrorCondition::BadRequest);
            }
            IqReply::Result(Some(time_element(SystemTime::now())))
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn time_is_xep_0082_utc_with_a_zero_offset() {
        // 2009-02-13T23:31:30Z, the Unix time 1234567890.
        let t = SystemTime::UNIX_EPOCH + Duration::new(1_234_567_890, 999_000_000);
        let e = time_element(t);
        assert!(e.is("time", ns::TIME));
        assert_eq!(e.get_child("tzo", ns::TIME).unwrap().text(), "+00:00");
        assert_eq!(
            e.get_child("utc", ns::TIME).unwrap().text(),
            "2009-02-13T23:31:30Z"
        );
    }
}
