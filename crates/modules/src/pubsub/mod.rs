//! Publish-subscribe on every account: XEP-0163 Personal Eventing Protocol
//! (version 1.2.2) over the XEP-0060 protocol (version 1.26), which is what
//! OMEMO keys (XEP-0384), avatars (XEP-0084), bookmarks (XEP-0402), nicknames
//! (XEP-0172) and private PEP storage (XEP-0223) are built on.
//!
//! - `request.rs` answers the XEP-0060 IQs to an account's bare JID: the
//!   account publishes, configures and manages its nodes; others retrieve
//!   items and subscribe as the node's access model allows.
//! - `notify.rs` decides who hears of an event (XEP-0163 §4.3: the owner's
//!   resources and its contacts' resources that asked with `+notify`, plus
//!   explicit subscribers) and sends the notifications.
//! - `caps.rs` learns what each client asked for from its XEP-0115 caps.
//! - `config.rs` is the node configuration and its forms.
//!
//! Nodes, items, affiliations and subscriptions live in storage only
//! (`PubsubStore`), so killing the `pep` worker loses none of them. The
//! worker does the work a client's presence starts (learning its caps,
//! sending it the last items it is interested in) outside the client's own
//! actor, which must stay free to route the answer to the caps query.

pub mod avatar;
pub mod bookmarks;
mod caps;
mod config;
mod notify;
mod request;
mod service;
pub mod vcard4;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chorus_config::PubsubCreators;
use chorus_jid::{BareJid, FullJid};
use chorus_proto::{ns, IqType, PresenceType};
use chorus_router::Router;
use chorus_xml::Element;
use futures_util::future::BoxFuture;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::{
    ChildCtx, HookSet, IqCtx, IqReply, IqSpec, Module, ModuleInfo, Services, SessionCtx, Support,
    Xep,
};
use caps::{CapsCache, CapsRef, Interest};
use config::NodeConfig;

pub use request::{account_disco_items, account_node_info};
pub use service::PubsubService;

/// A PEP node configuration form from elsewhere (a XEP-0227 import) as
/// stored: the PEP defaults with what the form sets; fields Chorus does
/// not know and values it cannot take are left out.
pub fn pep_config_from_form(form: &Element) -> String {
    NodeConfig::from_stored(&form.to_xml()).to_stored()
}

/// A stored node configuration as the submit form XEP-0227 exports.
pub fn pep_config_form(stored: &str) -> Element {
    NodeConfig::from_stored(stored).to_submit_form()
}

/// How long the server waits for a client to answer its caps query.
const CAPS_QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// The limits and policy from `[pubsub]`.
#[derive(Clone, Debug)]
pub struct PubsubOptions {
    pub max_items: u64,
    pub max_payload_bytes: usize,
    /// Per account, for PEP.
    pub max_nodes: u32,
    /// Per hosted service.
    pub service_max_nodes: u32,
    pub creators: PubsubCreators,
    /// The hosted services' domains (none when off).
    pub services: Vec<String>,
}

/// Which service a request addresses.
pub enum Svc {
    /// An account's PEP service (XEP-0163): the account owns every node.
    Pep(BareJid),
    /// A hosted service on a domain of its own (`pubsub.<domain>`).
    Hosted(Hosted),
}

/// A hosted service: its domain, and who may create nodes there.
pub struct Hosted {
    pub jid: String,
    pub creators: PubsubCreators,
}

impl Svc {
    /// The service's JID: where nodes live in storage and what
    /// notifications come from.
    pub fn jid(&self) -> &str {
        match self {
            Svc::Pep(owner) => owner.as_str(),
            Svc::Hosted(h) => &h.jid,
        }
    }

    /// What a new node starts with.
    pub fn default_config(&self) -> NodeConfig {
        match self {
            Svc::Pep(_) => NodeConfig::pep_default(),
            Svc::Hosted(_) => NodeConfig::service_default(),
        }
    }
}

/// What the module, its worker and its hosted services share.
pub struct Shared {
    pub options: PubsubOptions,
    caps: CapsCache,
    /// The running worker; a restarted one puts itself here.
    worker: Mutex<Option<ActorRef<PepMsg>>>,
}

/// PEP on every account (this file's module).
pub struct Pep {
    shared: Arc<Shared>,
}

impl Pep {
    pub fn new(shared: Arc<Shared>) -> Pep {
        Pep { shared }
    }
}

impl Shared {
    pub fn from_config(config: &chorus_config::Config) -> Arc<Shared> {
        let p = &config.pubsub;
        let services = if p.service {
            config
                .server
                .domains
                .iter()
                .map(|d| format!("{}.{d}", p.service_subdomain))
                .collect()
        } else {
            Vec::new()
        };
        Arc::new(Shared {
            options: PubsubOptions {
                max_items: p.max_items,
                max_payload_bytes: p.max_payload_bytes,
                max_nodes: p.max_nodes,
                service_max_nodes: p.service_max_nodes,
                creators: p.create_nodes,
                services,
            },
            caps: CapsCache::default(),
            worker: Mutex::new(None),
        })
    }
}

/// The pubsub features of a PEP service (XEP-0060 §10, XEP-0163 §8), on
/// every account's disco#info.
pub const PEP_FEATURES: &[&str] = &[
    ns::PUBSUB,
    // access-X names the default access model (XEP-0060 §10).
    "http://jabber.org/protocol/pubsub#access-presence",
    "http://jabber.org/protocol/pubsub#auto-create",
    "http://jabber.org/protocol/pubsub#auto-subscribe",
    "http://jabber.org/protocol/pubsub#config-node",
    "http://jabber.org/protocol/pubsub#create-and-configure",
    "http://jabber.org/protocol/pubsub#create-nodes",
    "http://jabber.org/protocol/pubsub#delete-items",
    "http://jabber.org/protocol/pubsub#delete-nodes",
    "http://jabber.org/protocol/pubsub#filtered-notifications",
    "http://jabber.org/protocol/pubsub#item-ids",
    "http://jabber.org/protocol/pubsub#last-published",
    "http://jabber.org/protocol/pubsub#manage-subscriptions",
    "http://jabber.org/protocol/pubsub#member-affiliation",
    "http://jabber.org/protocol/pubsub#meta-data",
    "http://jabber.org/protocol/pubsub#modify-affiliations",
    "http://jabber.org/protocol/pubsub#outcast-affiliation",
    "http://jabber.org/protocol/pubsub#persistent-items",
    "http://jabber.org/protocol/pubsub#presence-notifications",
    "http://jabber.org/protocol/pubsub#presence-subscribe",
    "http://jabber.org/protocol/pubsub#publish",
    "http://jabber.org/protocol/pubsub#publish-options",
    "http://jabber.org/protocol/pubsub#publisher-affiliation",
    "http://jabber.org/protocol/pubsub#purge-nodes",
    "http://jabber.org/protocol/pubsub#retract-items",
    "http://jabber.org/protocol/pubsub#retrieve-affiliations",
    "http://jabber.org/protocol/pubsub#retrieve-default",
    "http://jabber.org/protocol/pubsub#retrieve-items",
    "http://jabber.org/protocol/pubsub#retrieve-subscriptions",
    "http://jabber.org/protocol/pubsub#subscribe",
    avatar::CONVERSION,
    bookmarks::COMPAT,
];

static INFO: ModuleInfo = ModuleInfo {
    name: "pep",
    file: file!(),
    xeps: &[
        Xep {
            number: 60,
            name: "Publish-Subscribe",
            version: "1.26.0",
            support: Support::Partial,
            note: "PEP on every account and a hosted service on pubsub.<domain>: nodes (instant on the service), items with RSM paging, access and publish models, publish-options, affiliations, subscriptions. Subscription options: `pubsub#deliver` only. No collection nodes, item expiry or subscription authorization forms (an owner approves a pending subscription by managing subscriptions).",
        },
        Xep {
            number: 163,
            name: "Personal Eventing Protocol",
            version: "1.2.2",
            support: Support::Complete,
            note: "Notifications filtered by the clients' XEP-0115 `+notify` features; last items sent on initial presence and on subscription.",
        },
        Xep {
            number: 223,
            name: "Persistent Storage of Private Data via PubSub",
            version: "1.1.1",
            support: Support::Complete,
            note: "",
        },
        Xep {
            number: 84,
            name: "User Avatar",
            version: "1.1.4",
            support: Support::Complete,
            note: "Served as PEP, kept in step with the vCard's PHOTO (XEP-0398).",
        },
        Xep {
            number: 398,
            name: "User Avatar to vCard-Based Avatars Conversion",
            version: "0.3.1",
            support: Support::Complete,
            note: "Both ways (pubsub/avatar.rs): a PEP avatar becomes the vCard's PHOTO, a vCard PHOTO the PEP avatar.",
        },
        Xep {
            number: 292,
            name: "vCard4 Over XMPP",
            version: "1.1.0",
            support: Support::Complete,
            note: "The urn:xmpp:vcard4 PEP node, its shared fields (name, nickname, birthday, URL, note, title, role, organisation, e-mail, telephone) kept in step with vcard-temp both ways; what only one format carries stays in it (pubsub/vcard4.rs).",
        },
        Xep {
            number: 172,
            name: "User Nickname",
            version: "1.1",
            support: Support::Complete,
            note: "Served as PEP.",
        },
        Xep {
            number: 384,
            name: "OMEMO Encryption",
            version: "0.8.3",
            support: Support::Complete,
            note: "The server's part: device lists and bundles as PEP nodes with an open access model, in both the `urn:xmpp:omemo:2` and the legacy `eu.siacs.conversations.axolotl` namespaces.",
        },
        Xep {
            number: 402,
            name: "PEP Native Bookmarks",
            version: "1.2.0",
            support: Support::Complete,
            note: "Served as PEP with the whitelist access model clients ask for, and converted from and to XEP-0048 private XML (XEP-0411).",
        },
        Xep {
            number: 411,
            name: "Bookmarks Conversion",
            version: "1.1.0",
            support: Support::Complete,
            note: "Private XML storage:bookmarks and the urn:xmpp:bookmarks:1 node show the same rooms (pubsub/bookmarks.rs); URL bookmarks stay in private XML.",
        },
    ],
    iqs: &[
        IqSpec::anyone("pubsub", ns::PUBSUB),
        IqSpec::anyone("pubsub", ns::PUBSUB_OWNER),
    ],
    account_features: PEP_FEATURES,
    hooks: HookSet::USER_SENT,
    ..ModuleInfo::EMPTY
};

impl Module for Pep {
    fn info(&self) -> &'static ModuleInfo {
        &INFO
    }

    fn handle<'a>(&'a self, ctx: &'a IqCtx<'a>, iq: &'a Element) -> BoxFuture<'a, IqReply> {
        Box::pin(async move {
            // Pubsub on the server's own domain: the hosted service is on
            // a domain of its own.
            let Some(account) = ctx.account else {
                return IqReply::Error(chorus_proto::StanzaErrorCondition::ServiceUnavailable);
            };
            request::answer(ctx, &self.shared, &Svc::Pep(account.clone()), iq).await
        })
    }

    /// A client's broadcast presence says what it wants notified (its
    /// caps). Whenever that grows, at initial presence or later, the
    /// client gets the last item of each node it newly asked for (XEP-0163
    /// §4.3.3, and the XEP-0060 note to send it once per interest).
    fn user_sent<'a>(
        &'a self,
        ctx: &'a SessionCtx<'a>,
        stanza: &'a mut Element,
    ) -> Option<BoxFuture<'a, ()>> {
        if stanza.name() != "presence" || stanza.attr("to").is_some() {
            return None;
        }
        let session = ctx.services.sessions.get(ctx.full)?;
        let old = session.marked::<Interest>().map(|Interest(f)| f);
        match PresenceType::of(stanza) {
            Some(PresenceType::Available) => {}
            Some(PresenceType::Unavailable) => {
                // Back online later, it gets the last items again.
                if old.is_some() {
                    session.mark(Interest(Arc::new(caps::Features::default())));
                }
                return None;
            }
            _ => return None,
        }
        let caps = CapsRef::of(stanza)?;
        let job = match self.shared.caps.get(&caps) {
            Some(known) if old.as_ref().is_some_and(|o| Arc::ptr_eq(o, &known)) => return None,
            Some(known) => {
                session.mark(Interest(known.clone()));
                PepMsg::Interest {
                    full: ctx.full.clone(),
                    caps: None,
                    new: Some(known),
                    old,
                }
            }
            None => PepMsg::Interest {
                full: ctx.full.clone(),
                caps: Some(caps),
                new: None,
                old,
            },
        };
        let worker = self
            .shared
            .worker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match worker {
            Some(w) if w.cast(job).is_ok() => {}
            // Restarting: the client gets notifications once its next
            // presence tells the new worker its caps.
            _ => tracing::warn!(jid = %ctx.full, "pep worker unavailable; presence not processed"),
        }
        None
    }

    fn children(&self, ctx: &ChildCtx) -> Vec<chorus_supervisor::ChildSpec> {
        let args = WorkerArgs {
            router: ctx.router.clone(),
            services: ctx.services.clone(),
            shared: self.shared.clone(),
        };
        vec![chorus_supervisor::ChildSpec::worker(
            "pep",
            chorus_supervisor::Restart::Permanent,
            move |sctx: chorus_supervisor::StartCtx| {
                let args = args.clone();
                async move {
                    let (a, _) =
                        Actor::spawn_linked(None, PepWorker, args, sctx.supervisor).await?;
                    Ok(a.get_cell())
                }
            },
        )]
    }
}

/// Work for the `pep` worker.
pub enum PepMsg {
    /// What a client wants notified changed from `old`: to `new`, or to
    /// what its unknown `caps` say once asked. It gets the last items of
    /// the nodes it newly asked for.
    Interest {
        full: FullJid,
        caps: Option<CapsRef>,
        new: Option<Arc<caps::Features>>,
        old: Option<Arc<caps::Features>>,
    },
}

#[derive(Clone)]
pub struct WorkerArgs {
    router: Arc<Router>,
    services: Arc<Services>,
    shared: Arc<Shared>,
}

/// The `pep` actor under `root/modules`.
pub struct PepWorker;

impl Actor for PepWorker {
    type Msg = PepMsg;
    type State = WorkerArgs;
    type Arguments = WorkerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: WorkerArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        *args.shared.worker.lock().unwrap_or_else(|p| p.into_inner()) = Some(myself);
        Ok(args)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: PepMsg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let PepMsg::Interest {
            full,
            caps,
            new,
            old,
        } = msg;
        // Each job may wait on a client: one task each, so that a slow
        // client holds up nobody else.
        let args = state.clone();
        tokio::spawn(async move {
            let new = match (new, caps) {
                (Some(new), _) => new,
                (None, Some(caps)) => match learn_caps(&args, &full, &caps).await {
                    Some(new) => new,
                    None => return,
                },
                (None, None) => return,
            };
            notify::send_last_items(&args.router, &args.services, &full, &new, old.as_deref())
                .await;
        });
        Ok(())
    }
}

/// Asks the client for the disco#info behind its caps (XEP-0115 §6.3) and
/// keeps the answer on its session; None when it gave none.
async fn learn_caps(
    args: &WorkerArgs,
    full: &FullJid,
    caps: &CapsRef,
) -> Option<Arc<caps::Features>> {
    if let Some(features) = args.shared.caps.get(caps) {
        args.services
            .sessions
            .get(full)?
            .mark(Interest(features.clone()));
        return Some(features);
    }
    let query = Element::new("iq", ns::JABBER_CLIENT)
        .with_attr("type", IqType::Get.as_str())
        .with_attr("from", full.bare().as_str())
        .with_attr("to", full.as_str())
        .with_child(
            Element::new("query", ns::DISCO_INFO)
                .with_attr("node", format!("{}#{}", caps.node, caps.ver)),
        );
    let answer = match args.router.request(query, CAPS_QUERY_TIMEOUT).await {
        Ok(a) if IqType::of(&a) == Some(IqType::Result) => a,
        Ok(_) | Err(_) => {
            tracing::debug!(jid = %full, "no capabilities from client");
            return None;
        }
    };
    let info = answer.get_child("query", ns::DISCO_INFO)?;
    let features = args.shared.caps.learn(caps, info);
    args.services
        .sessions
        .get(full)?
        .mark(Interest(features.clone()));
    Some(features)
}
