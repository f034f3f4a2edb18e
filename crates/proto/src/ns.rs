//! Every XML namespace Chorus speaks, one constant each, named after its spec.
//!
//! Modules never spell a namespace URI inline: a typo in a string literal is a
//! silent interop bug (the element is simply "not found"), a typo in a
//! constant name is a compile error. A module that implements a XEP imports
//! its namespace from here and advertises it in disco from the same constant.

/// RFC 6120 §4.8.3: the content namespace of client-to-server streams.
pub const JABBER_CLIENT: &str = "jabber:client";
/// RFC 6120 §4.8.3: the content namespace of server-to-server streams.
pub const JABBER_SERVER: &str = "jabber:server";
/// RFC 6120 §4.8.1: the stream namespace (`stream:stream`, `stream:features`,
/// `stream:error`).
pub const STREAM: &str = chorus_xml::STREAM_NS;
/// RFC 6120 §4.9.2: the defined conditions of stream errors.
pub const STREAMS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
/// RFC 6120 §8.3.2: the defined conditions of stanza errors.
pub const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
/// RFC 6120 §5: STARTTLS negotiation.
pub const TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
/// RFC 6120 §6: SASL negotiation.
pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
/// RFC 6120 §7: resource binding.
pub const BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
/// RFC 3921 §3 session establishment, a no-op kept for old clients
/// (draft-cridland-xmpp-session: advertised as optional).
pub const SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
/// XEP-0199: XMPP Ping.
pub const PING: &str = "urn:xmpp:ping";
/// XEP-0030: Service Discovery, information.
pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// XEP-0030: Service Discovery, items.
pub const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
/// RFC 6121 §2: roster management.
pub const ROSTER: &str = "jabber:iq:roster";
/// XEP-0092: Software Version.
pub const VERSION: &str = "jabber:iq:version";
/// XEP-0202: Entity Time.
pub const TIME: &str = "urn:xmpp:time";
/// XEP-0012: Last Activity.
pub const LAST: &str = "jabber:iq:last";
/// XEP-0054: vcard-temp.
pub const VCARD: &str = "vcard-temp";
/// XEP-0153: vCard-Based Avatars, the presence update.
pub const VCARD_UPDATE: &str = "vcard-temp:x:update";
/// XEP-0049: Private XML Storage.
pub const PRIVATE: &str = "jabber:iq:private";
/// XEP-0191: Blocking Command.
pub const BLOCKING: &str = "urn:xmpp:blocking";
/// XEP-0191: the application error `<blocked/>` for stanzas to a blocked JID.
pub const BLOCKING_ERRORS: &str = "urn:xmpp:blocking:errors";
/// XEP-0280: Message Carbons.
pub const CARBONS: &str = "urn:xmpp:carbons:2";
/// XEP-0297: Stanza Forwarding (the wrapper carbons and MAM use).
pub const FORWARD: &str = "urn:xmpp:forward:0";
/// XEP-0334: Message Processing Hints (`<no-store/>`, `<no-copy/>`, ...).
pub const HINTS: &str = "urn:xmpp:hints";
/// XEP-0198: Stream Management, version 3.
pub const SM: &str = "urn:xmpp:sm:3";
/// XEP-0352: Client State Indication.
pub const CSI: &str = "urn:xmpp:csi:0";
/// XEP-0313: Message Archive Management, version 2.
pub const MAM: &str = "urn:xmpp:mam:2";
/// XEP-0059: Result Set Management (paging for MAM and disco).
pub const RSM: &str = "http://jabber.org/protocol/rsm";
/// XEP-0004: Data Forms.
pub const DATA_FORMS: &str = "jabber:x:data";
/// XEP-0203: Delayed Delivery.
pub const DELAY: &str = "urn:xmpp:delay";
/// XEP-0359: Unique and Stable Stanza IDs (`<stanza-id/>`, `<origin-id/>`).
pub const SID: &str = "urn:xmpp:sid:0";
/// XEP-0115: Entity Capabilities.
pub const CAPS: &str = "http://jabber.org/protocol/caps";
/// XEP-0077: In-Band Registration, the IQ payload.
pub const REGISTER: &str = "jabber:iq:register";
/// XEP-0077: In-Band Registration, the stream feature.
pub const REGISTER_FEATURE: &str = "http://jabber.org/features/iq-register";
/// RFC 6121 §3.4: subscription pre-approval, the stream feature.
pub const PRE_APPROVAL: &str = "urn:xmpp:features:pre-approval";
/// RFC 6121 §2.6: roster versioning, the stream feature.
pub const ROSTER_VER: &str = "urn:xmpp:features:rosterver";
/// XEP-0440: SASL Channel-Binding Type Capability.
pub const SASL_CB: &str = "urn:xmpp:sasl-cb:0";
/// XEP-0388 Extensible SASL Profile (SASL2).
pub const SASL2: &str = "urn:xmpp:sasl:2";
/// XEP-0386 Bind 2.
pub const BIND2: &str = "urn:xmpp:bind:0";
/// XEP-0484 Fast Authentication Streamlining Tokens.
pub const FAST: &str = "urn:xmpp:fast:0";
/// XML Namespaces §3: the namespace of `xml:lang`, bound without declaration.
pub const XML: &str = chorus_xml::XML_NS;

/// XEP-0060 Publish-Subscribe.
pub const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
/// XEP-0060 §8: owner use cases.
pub const PUBSUB_OWNER: &str = "http://jabber.org/protocol/pubsub#owner";
/// XEP-0060 §4.3: event notifications.
pub const PUBSUB_EVENT: &str = "http://jabber.org/protocol/pubsub#event";
/// XEP-0060 §7 and §8: application-specific error conditions.
pub const PUBSUB_ERRORS: &str = "http://jabber.org/protocol/pubsub#errors";
/// XEP-0060 §16.4.3: the node configuration form's FORM_TYPE.
pub const PUBSUB_NODE_CONFIG: &str = "http://jabber.org/protocol/pubsub#node_config";
/// XEP-0060 §7.1.5: the publish-options form's FORM_TYPE.
pub const PUBSUB_PUBLISH_OPTIONS: &str = "http://jabber.org/protocol/pubsub#publish-options";
/// XEP-0060 §16.4.2: the subscription options form's FORM_TYPE.
pub const PUBSUB_SUBSCRIBE_OPTIONS: &str = "http://jabber.org/protocol/pubsub#subscribe_options";
/// XEP-0050: Ad-Hoc Commands (also the disco node of the command list).
pub const COMMANDS: &str = "http://jabber.org/protocol/commands";
/// XEP-0133: Service Administration: the forms' FORM_TYPE and the prefix
/// of its command nodes (`#add-user`).
pub const ADMIN: &str = "http://jabber.org/protocol/admin";
/// XEP-0357: Push Notifications (enable, disable, the notification).
pub const PUSH: &str = "urn:xmpp:push:0";
/// XEP-0357 §7: the notification summary form's FORM_TYPE.
pub const PUSH_SUMMARY: &str = "urn:xmpp:push:summary";
/// XEP-0215: External Service Discovery, version 2 of the namespace.
pub const EXTDISCO: &str = "urn:xmpp:extdisco:2";
/// XEP-0128/XEP-0157: the FORM_TYPE of the server's contact addresses.
pub const SERVERINFO: &str = "http://jabber.org/network/serverinfo";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_two_constants_share_a_uri() {
        let all = [
            JABBER_CLIENT,
            JABBER_SERVER,
            STREAM,
            STREAMS,
            STANZAS,
            TLS,
            SASL,
            BIND,
            SESSION,
            PING,
            DISCO_INFO,
            DISCO_ITEMS,
            ROSTER,
            VERSION,
            TIME,
            LAST,
            VCARD,
            VCARD_UPDATE,
            PRIVATE,
            BLOCKING,
            BLOCKING_ERRORS,
            CARBONS,
            FORWARD,
            HINTS,
            SM,
            CSI,
            MAM,
            RSM,
            DATA_FORMS,
            DELAY,
            SID,
            CAPS,
            REGISTER,
            REGISTER_FEATURE,
            PRE_APPROVAL,
            ROSTER_VER,
            SASL_CB,
            XML,
            PUBSUB,
            PUBSUB_OWNER,
            PUBSUB_EVENT,
            PUBSUB_ERRORS,
            PUBSUB_NODE_CONFIG,
            PUBSUB_PUBLISH_OPTIONS,
            PUBSUB_SUBSCRIBE_OPTIONS,
            PUSH,
            PUSH_SUMMARY,
            EXTDISCO,
            SERVERINFO,
            COMMANDS,
            ADMIN,
        ];
        let unique: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(unique.len(), all.len());
    }

    #[test]
    fn stream_and_xml_match_the_xml_crate() {
        assert_eq!(STREAM, "http://etherx.jabber.org/streams");
        assert_eq!(XML, "http://www.w3.org/XML/1998/namespace");
    }
}
