//! XEP-0077: In-Band Registration (version 2.4), the logged-in half: a user
//! reads its registration, changes its password (§3.3), or removes its
//! account (§3.2). Creating accounts before authentication, off by default,
//! is c2s's job (it owns the unauthenticated stream and the peer address).

use chorus_proto::{ns, StanzaErrorCondition};
use chorus_sasl::{ScramCredentials, ScramHash};
use chorus_storage::{AccountStore, StoredCredentials};
use chorus_xml::Element;
use futures_util::future::BoxFuture;

use crate::{IqCtx, IqReply, IqSpec, Module, ModuleInfo, Support, Xep};

pub struct Register;

/// SCRAM credentials as storage keeps them. The one place the two crates'
/// types meet (neither depends on the other).
pub fn stored(c: ScramCredentials) -> StoredCredentials {
    StoredCredentials {
        hash: c.hash.name().to_owned(),
        salt: c.salt,
        iterations: c.iterations,
        stored_key: c.stored_key,
        server_key: c.server_key,
    }
}

/// SCRAM keys for every hash we offer; the password goes no further.
/// Every account creation and password change (chorusctl, in-band
/// registration) derives through here.
pub fn credentials(
    password: &str,
    iterations: u32,
) -> Result<Vec<StoredCredentials>, chorus_sasl::SaslError> {
    [ScramHash::Sha1, ScramHash::Sha256]
        .into_iter()
        .map(|h| ScramCredentials::derive(password, h, iterations).map(stored))
        .collect()
}

static INFO: ModuleInfo = ModuleInfo {
    name: "register",
    file: file!(),
    xeps: &[Xep {
        number: 77,
        name: "In-Band Registration",
        version: "2.4",
        support: Support::Complete,
        note: "Account creation is off by default and throttled per IP address.",
    }],
    iqs: &[IqSpec::local("query", ns::REGISTER)],
    features: &[ns::REGISTER],
    ..ModuleInfo::EMPTY
};

impl Module for Register {
    fn info(&self) -> &'static ModuleInfo {
        &INFO
    }

    fn handle<'a>(&'a self, ctx: &'a IqCtx<'a>, iq: &'a Element) -> BoxFuture<'a, IqReply> {
        Box::pin(async move {
            // Addressed to the server (or, for old clients, the own account).
            if ctx.account.is_some() && !ctx.is_own_account() {
                return IqReply::Error(StanzaErrorCondition::Forbidden);
            }
            let Ok(me) = ctx.me() else {
                return IqReply::Error(StanzaErrorCondition::Forbidden);
            };
            let user = me.bare();
            let Some(node) = user.node() else {
                return IqReply::Error(StanzaErrorCondition::BadRequest);
            };
            let Some(query) = iq.get_child("query", ns::REGISTER) else {
                return IqReply::Error(StanzaErrorCondition::BadRequest);
            };
            let storage = &ctx.services.storage;
            match iq.attr("type") {
                // §3.1: an already registered entity sees <registered/>.
                Some("get") => IqReply::Result(Some(
                    Element::new("query", ns::REGISTER)
                        .with_child(Element::new("registered", ns::REGISTER))
                        .with_child(Element::new("username", ns::REGISTER).with_text(node))
                        .with_child(Element::new("password", ns::REGISTER)),
                )),
                Some("set") if query.get_child("remove", ns::REGISTER).is_some() => {
                    // §3.2: remove the account, answer, then end its sessions.
                    match storage.delete_account(node, user.domain()).await {
                        Ok(_) => {
                            tracing::info!(jid = %user, "account removed by its user");
                            for s in ctx.services.sessions.resources(&user) {
                                s.sink.kick("account removed".to_owned());
                            }
                            IqReply::Result(None)
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "account removal failed");
                            IqReply::Error(StanzaErrorCondition::InternalServerError)
                        }
                    }
                }
                Some("set") => {
                    // §3.3: a password change names the user and the new password.
                    let username = query.get_child("username", ns::REGISTER).map(|u| u.text());
                    let password = query.get_child("password", ns::REGISTER).map(|p| p.text());
                    let (Some(username), Some(password)) = (username, password) else {
                        return IqReply::Error(StanzaErrorCondition::BadRequest);
                    };
                    if username != node || password.is_empty() {
                        return IqReply::Error(StanzaErrorCondition::NotAcceptable);
                    }
                    let Ok(creds) = credentials(&password, ctx.services.sasl_iterations) else {
                        return IqReply::Error(StanzaErrorCondition::NotAcceptable);
                    };
                    match storage.set_credentials(node, user.domain(), &creds).await {
                        Ok(true) => {
                            tracing::info!(jid = %user, "password changed by its user");
                            IqReply::Result(None)
                        }
                        Ok(false) => IqReply::Error(StanzaErrorCondition::ItemNotFound),
                        Err(e) => {
                            tracing::error!(error = %e, "password change failed");
                            IqReply::Error(StanzaErrorCondition::InternalServerError)
                        }
                    }
                }
                _ => IqReply::Error(StanzaErrorCondition::BadRequest),
            }
        })
    }
}
