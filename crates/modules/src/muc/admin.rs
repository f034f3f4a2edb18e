//! IQs to a room (XEP-0045): disco of the room (§6.4), the moderator's,
//! admin's and owner's use cases (§8-§10: roles, affiliations as list
//! deltas, configuration, destruction), pings and self-pings (XEP-0410),
//! and IQs between occupants, relayed under their room nicks.
//!
//! The error conditions are the XEP's own: `forbidden` when the requester
//! lacks the privilege (§8.2, §9.1, §10.3...), `not-allowed` when the
//! target outranks what the requester may touch (§8.2, §8.4, §9.1, §9.7),
//! `conflict` when an owner change would leave the room with none (§10.7).

use chorus_jid::{BareJid, FullJid, Jid};
use chorus_proto::{ns, IqType, StanzaError, StanzaErrorCondition as C};
use chorus_xml::Element;

use super::proto::{after_leaving, broadcast_occupant, remove_occupant, Ctx, Extra};
use super::state::*;
use crate::result_iq;

pub fn iq(
    ctx: &mut Ctx<'_>,
    slot: &mut Option<RoomState>,
    from: Jid,
    nick: Option<String>,
    stanza: Element,
) {
    let request = IqType::of(&stanza).is_some_and(IqType::is_request);
    if let Some(nick) = nick {
        let Some(state) = slot.as_mut() else {
            if request {
                ctx.error(&stanza, C::ItemNotFound);
            }
            return;
        };
        occupant_iq(ctx, state, &from, &nick, stanza, request);
        return;
    }
    if !request {
        return;
    }
    let mut payloads = stanza.children();
    let (Some(payload), None) = (payloads.next(), payloads.next()) else {
        ctx.error(&stanza, C::BadRequest);
        return;
    };
    let payload = payload.clone();
    let get = IqType::of(&stanza) == Some(IqType::Get);
    let bare = from.bare();
    // A locked room is not there but for its owner (§10.1.1).
    let Some(state) = slot
        .as_mut()
        .filter(|s| !s.destroyed && (!s.locked || s.affiliation(&bare) == Affiliation::Owner))
    else {
        match (payload.ns(), get) {
            (ns::PING, true) | (ns::DISCO_INFO, true) | (MUC_ADMIN | MUC_OWNER, _) => {
                ctx.error(&stanza, C::ItemNotFound)
            }
            _ => ctx.error(&stanza, C::ServiceUnavailable),
        }
        return;
    };
    let answer = match (payload.ns(), payload.name(), get) {
        (ns::DISCO_INFO, "query", true) if payload.attr("node").is_none() => {
            Ok(Some(room_info(ctx, state)))
        }
        // §7.12: the nick the requester registered, if any.
        (ns::DISCO_INFO, "query", true) if payload.attr("node") == Some(ROOMUSER_NODE) => {
            let mut q = Element::new("query", ns::DISCO_INFO).with_attr("node", ROOMUSER_NODE);
            if let Some(nick) = state.nicks.get(&bare) {
                q.push(
                    Element::new("identity", ns::DISCO_INFO)
                        .with_attr("category", "conference")
                        .with_attr("name", nick.as_str())
                        .with_attr("type", "text"),
                );
            }
            Ok(Some(q))
        }
        (ns::REGISTER, "query", true) => register_get(state, &bare).map(Some),
        (ns::REGISTER, "query", false) => register_set(ctx, state, &bare, &payload).map(|()| None),
        // §6.5: the occupants are not listed to those outside.
        (ns::DISCO_ITEMS, "query", true) => Ok(Some(Element::new("query", ns::DISCO_ITEMS))),
        (ns::PING, "ping", true) => Ok(None),
        (MUC_ADMIN, "query", true) => admin_get(state, &from, &payload).map(Some),
        (MUC_ADMIN, "query", false) => admin_set(ctx, state, &from, &payload).map(|()| None),
        (MUC_OWNER, "query", true) => owner_get(ctx, state, &bare).map(Some),
        (MUC_OWNER, "query", false) => owner_set(ctx, state, &bare, &payload).map(|()| None),
        _ => Err(refuse(C::ServiceUnavailable)),
    };
    match answer {
        Ok(payload) => ctx.send(result_iq(&stanza, payload)),
        Err(e) => ctx.fail(&stanza, *e),
    }
}

/// Why a request is refused (boxed: a stanza error is large, and the
/// happy path should not pay for it).
type Refusal = Box<StanzaError>;

/// The disco node that says a user's registered nick (§7.12).
const ROOMUSER_NODE: &str = "x-roomuser-item";
const REGISTER_FORM: &str = "http://jabber.org/protocol/muc#register";

/// §7.10: the registration form, or what is registered.
fn register_get(state: &RoomState, from: &BareJid) -> Result<Element, Refusal> {
    if state.affiliation(from) == Affiliation::Outcast {
        return Err(err(C::Forbidden, "You are banned from this room"));
    }
    let mut q = Element::new("query", ns::REGISTER);
    if let Some(nick) = state.nicks.get(from) {
        q.push(Element::new("registered", ns::REGISTER));
        q.push(Element::new("username", ns::REGISTER).with_text(nick.as_str()));
        return Ok(q);
    }
    q.push(
        Element::new("instructions", ns::REGISTER)
            .with_text("Register a nick with this room to become a member."),
    );
    let mut x = crate::forms::form_head("form", REGISTER_FORM);
    x.push(Element::new("title", ns::DATA_FORMS).with_text("Room registration"));
    x.push(
        Element::new("field", ns::DATA_FORMS)
            .with_attr("var", "muc#register_roomnick")
            .with_attr("type", "text-single")
            .with_attr("label", "Nick")
            .with_child(Element::new("required", ns::DATA_FORMS)),
    );
    q.push(x);
    Ok(q)
}

/// §7.10: registering a nick makes a member; `<remove/>` gives both up.
fn register_set(
    ctx: &mut Ctx<'_>,
    state: &mut RoomState,
    from: &BareJid,
    query: &Element,
) -> Result<(), Refusal> {
    let aff = state.affiliation(from);
    if aff == Affiliation::Outcast {
        return Err(err(C::Forbidden, "You are banned from this room"));
    }
    if query.get_child("remove", ns::REGISTER).is_some() {
        if state.nicks.remove(from).is_none() {
            return Err(err(C::ItemNotFound, "You have no nick registered here"));
        }
        ctx.out.changed = true;
        if aff == Affiliation::Member {
            set_affiliation(ctx, state, from.clone(), Affiliation::None, None, None);
            after_leaving(ctx, state);
        }
        return Ok(());
    }
    let Some(x) = query.get_child("x", ns::DATA_FORMS) else {
        return Err(refuse(C::BadRequest));
    };
    match x.attr("type") {
        Some("cancel") => return Ok(()),
        Some("submit") => {}
        _ => return Err(refuse(C::BadRequest)),
    }
    let nick = crate::forms::form_fields(x)
        .into_iter()
        .find(|(var, _)| var == "muc#register_roomnick")
        .and_then(|(_, v)| v.into_iter().next())
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| err(C::NotAcceptable, "A nick is required"))?;
    if ctx.occupant_jid(&nick).parse::<FullJid>().is_err() {
        return Err(err(C::JidMalformed, "That nick cannot be a resource"));
    }
    let taken = state.reserved_by(&nick).is_some_and(|o| o != from)
        || state
            .by_nick(&nick)
            .is_some_and(|i| state.occupants[i].bare != *from);
    if taken {
        return Err(err(C::Conflict, "That nick is taken"));
    }
    if aff < Affiliation::Member {
        // Registering makes a member (§7.10); where membership is what
        // keeps people out or silent, only the room's admins make members.
        if state.config.members_only || state.config.moderated {
            return Err(err(
                C::NotAllowed,
                "Only the room's admins make members here; ask one of them",
            ));
        }
        set_affiliation(ctx, state, from.clone(), Affiliation::Member, None, None);
    }
    state.nicks.insert(from.clone(), nick);
    ctx.out.changed = true;
    Ok(())
}

fn err(cond: C, text: &str) -> Refusal {
    Box::new(StanzaError::new(cond).with_text(text))
}

fn refuse(cond: C) -> Refusal {
    Box::new(StanzaError::new(cond))
}

/// §6.4: the room's identity, features and `muc#roominfo` form (XEP-0128).
fn room_info(ctx: &Ctx<'_>, state: &RoomState) -> Element {
    let c = &state.config;
    let name = if c.name.is_empty() {
        ctx.room.node().unwrap_or_default().to_owned()
    } else {
        c.name.clone()
    };
    let mut q = Element::new("query", ns::DISCO_INFO).with_child(
        Element::new("identity", ns::DISCO_INFO)
            .with_attr("category", "conference")
            .with_attr("type", "text")
            .with_attr("name", name),
    );
    let pick = |on: bool, yes: &'static str, no: &'static str| if on { yes } else { no };
    let features = [
        MUC,
        REQUEST,
        "http://jabber.org/protocol/muc#stable_id",
        "http://jabber.org/protocol/muc#self-ping-optimization",
        OCCUPANT_ID,
        ns::SID,
        MODERATE,
        RETRACT,
        ns::DISCO_INFO,
        ns::DISCO_ITEMS,
        ns::PING,
        pick(c.persistent, "muc_persistent", "muc_temporary"),
        pick(c.public, "muc_public", "muc_hidden"),
        pick(c.members_only, "muc_membersonly", "muc_open"),
        pick(c.moderated, "muc_moderated", "muc_unmoderated"),
        pick(c.whois_anyone, "muc_nonanonymous", "muc_semianonymous"),
        pick(
            c.password.is_some(),
            "muc_passwordprotected",
            "muc_unsecured",
        ),
    ];
    for f in features {
        q.push(Element::new("feature", ns::DISCO_INFO).with_attr("var", f));
    }
    // XEP-0313 §6.1: the room keeps an archive.
    if c.logging {
        for f in [ns::MAM, crate::mam::MAM_EXTENDED] {
            q.push(Element::new("feature", ns::DISCO_INFO).with_attr("var", f));
        }
    }
    let field = |var: &str, label: &str, value: String| {
        Element::new("field", ns::DATA_FORMS)
            .with_attr("var", var)
            .with_attr("label", label)
            .with_child(Element::new("value", ns::DATA_FORMS).with_text(value))
    };
    let mut x = crate::forms::form_head("result", ROOMINFO);
    x.push(field(
        "muc#roominfo_description",
        "Description",
        c.description.clone(),
    ));
    x.push(field(
        "muc#roominfo_occupants",
        "Number of occupants",
        state.occupants.len().to_string(),
    ));
    x.push(field(
        "muc#roominfo_subject",
        "Subject",
        state
            .subject
            .as_ref()
            .map(|s| s.0.clone())
            .unwrap_or_default(),
    ));
    x.push(field(
        "muc#roominfo_subjectmod",
        "Occupants may change the subject",
        if c.change_subject { "1" } else { "0" }.to_owned(),
    ));
    if !c.lang.is_empty() {
        x.push(field("muc#roominfo_lang", "Language", c.lang.clone()));
    }
    x.push(field("muc#roomconfig_roomname", "Name", name_or_empty(c)));
    q.push(x);
    q
}

fn name_or_empty(c: &RoomConfig) -> String {
    c.name.clone()
}

/// The requester's standing: affiliation, and role with its index when it
/// is in the room.
fn standing(state: &RoomState, from: &Jid) -> (Affiliation, Role, Option<usize>) {
    let aff = state.affiliation(&from.bare());
    let idx = FullJid::try_from(from.clone())
        .ok()
        .and_then(|f| state.by_full(&f));
    let role = idx.map_or(Role::None, |i| state.occupants[i].role);
    (aff, role, idx)
}

/// §8.5, §9.2, §9.5, §9.8, §10.5, §10.8: the lists.
fn admin_get(state: &RoomState, from: &Jid, query: &Element) -> Result<Element, Refusal> {
    let (aff, role, _) = standing(state, from);
    let mut items = query.children().filter(|c| c.is("item", MUC_ADMIN));
    let (Some(item), None) = (items.next(), items.next()) else {
        return Err(refuse(C::BadRequest));
    };
    let mut q = Element::new("query", MUC_ADMIN);
    match (
        item.attr("affiliation").map(Affiliation::parse),
        item.attr("role").map(Role::parse),
    ) {
        (Some(Some(wanted)), None) => {
            let allowed = match wanted {
                Affiliation::Owner | Affiliation::Admin => aff == Affiliation::Owner,
                Affiliation::Member => {
                    aff >= Affiliation::Admin || state.config.member_list_for(role)
                }
                Affiliation::Outcast => aff >= Affiliation::Admin,
                Affiliation::None => return Err(refuse(C::BadRequest)),
            };
            if !allowed {
                return Err(err(C::Forbidden, "You may not see that list"));
            }
            for (jid, e) in state
                .affiliations
                .iter()
                .filter(|(_, e)| e.affiliation == wanted)
            {
                let mut i = Element::new("item", MUC_ADMIN)
                    .with_attr("affiliation", wanted.as_str())
                    .with_attr("jid", jid.as_str());
                if let Some(nick) = state.nicks.get(jid) {
                    i.set_attr("nick", nick.as_str());
                } else if let Some(o) = state.by_bare(jid) {
                    i.set_attr("nick", state.occupants[o].nick.as_str());
                }
                if !e.reason.is_empty() {
                    i.push(Element::new("reason", MUC_ADMIN).with_text(e.reason.as_str()));
                }
                q.push(i);
            }
        }
        (None, Some(Some(wanted))) => {
            let allowed = match wanted {
                Role::Moderator => aff >= Affiliation::Admin,
                Role::Participant | Role::Visitor => role == Role::Moderator,
                Role::None => return Err(refuse(C::BadRequest)),
            };
            if !allowed {
                return Err(err(C::Forbidden, "You may not see that list"));
            }
            for o in state.occupants.iter().filter(|o| o.role == wanted) {
                let mut i = Element::new("item", MUC_ADMIN)
                    .with_attr("role", wanted.as_str())
                    .with_attr("nick", o.nick.as_str())
                    .with_attr("affiliation", state.affiliation(&o.bare).as_str());
                if let Some(s) = o.sessions.first() {
                    i.set_attr("jid", s.full.to_string());
                }
                q.push(i);
            }
        }
        _ => return Err(refuse(C::BadRequest)),
    }
    Ok(q)
}

/// One change an admin IQ asks for.
enum Change {
    Role(usize, Role, Option<String>),
    Affiliation(BareJid, Affiliation, Option<String>),
}

/// §8.2-§8.4, §9.1-§9.7, §10.3-§10.7: role changes by nick and
/// affiliation changes by JID, several in one IQ. Every item is checked
/// before any is applied: the IQ does all of it or none.
fn admin_set(
    ctx: &mut Ctx<'_>,
    state: &mut RoomState,
    from: &Jid,
    query: &Element,
) -> Result<(), Refusal> {
    let (aff, role, me) = standing(state, from);
    let mut changes = Vec::new();
    let items: Vec<&Element> = query
        .children()
        .filter(|c| c.is("item", MUC_ADMIN))
        .collect();
    if items.is_empty() {
        return Err(refuse(C::BadRequest));
    }
    for item in items {
        let reason = item.get_child("reason", MUC_ADMIN).map(Element::text);
        match (item.attr("role"), item.attr("affiliation")) {
            (Some(r), None) => {
                let new = Role::parse(r).ok_or(refuse(C::BadRequest))?;
                let nick = item.attr("nick").ok_or(refuse(C::BadRequest))?;
                let t = state
                    .by_nick(nick)
                    .ok_or(err(C::ItemNotFound, "Nobody has that nick here"))?;
                let target = &state.occupants[t];
                let target_aff = state.affiliation(&target.bare);
                match new {
                    Role::Moderator => {
                        // §9.6
                        if aff < Affiliation::Admin {
                            return Err(err(C::Forbidden, "Only admins and owners may do that"));
                        }
                    }
                    Role::None | Role::Visitor | Role::Participant => {
                        if role != Role::Moderator {
                            return Err(err(C::Forbidden, "Only moderators may do that"));
                        }
                        // §9.7: revoking moderation is an admin's.
                        if target.role == Role::Moderator
                            && new != Role::Moderator
                            && aff < Affiliation::Admin
                            && Some(t) != me
                        {
                            return Err(err(C::NotAllowed, "Only admins may revoke moderation"));
                        }
                        // §8.2, §8.4: nobody kicks or silences an admin or
                        // an owner; nobody kicks anyone ranked above them,
                        // nor silences anyone ranked as high (§8.4).
                        let outranked = if new == Role::Visitor {
                            target_aff >= aff
                        } else {
                            target_aff > aff
                        };
                        if target_aff >= Affiliation::Admin || outranked {
                            return Err(err(C::NotAllowed, "That occupant outranks you"));
                        }
                    }
                }
                changes.push(Change::Role(t, new, reason));
            }
            (role_attr, Some(a)) => {
                if role_attr.is_some() {
                    return Err(refuse(C::BadRequest));
                }
                let new = Affiliation::parse(a).ok_or(refuse(C::BadRequest))?;
                let jid = match (item.attr("jid"), item.attr("nick")) {
                    (Some(j), _) => j
                        .parse::<Jid>()
                        .map_err(|_| refuse(C::JidMalformed))?
                        .bare(),
                    (None, Some(n)) => state
                        .by_nick(n)
                        .map(|i| state.occupants[i].bare.clone())
                        .ok_or(err(C::ItemNotFound, "Nobody has that nick here"))?,
                    (None, None) => return Err(refuse(C::BadRequest)),
                };
                let target_aff = state.affiliation(&jid);
                let needs = match new {
                    Affiliation::Owner | Affiliation::Admin => Affiliation::Owner,
                    _ => Affiliation::Admin,
                };
                if aff < needs {
                    return Err(err(C::Forbidden, "You may not change that affiliation"));
                }
                // §9.1, §9.4: an admin does not touch admins and owners.
                if target_aff >= Affiliation::Admin && aff != Affiliation::Owner {
                    return Err(err(C::NotAllowed, "That user outranks you"));
                }
                changes.push(Change::Affiliation(jid, new, reason));
            }
            (None, None) => return Err(refuse(C::BadRequest)),
        }
    }
    // §10.7: the room keeps an owner.
    let owners_after = {
        let mut owners = state.with_affiliation(Affiliation::Owner);
        for c in &changes {
            if let Change::Affiliation(jid, a, _) = c {
                owners.retain(|o| o != jid);
                if *a == Affiliation::Owner {
                    owners.push(jid.clone());
                }
            }
        }
        owners
    };
    if owners_after.is_empty() {
        return Err(err(C::Conflict, "The room would have no owner"));
    }
    let actor = me.map(|i| state.occupants[i].nick.clone());
    // Role changes name occupants by index: those go first, from the
    // highest index down, so a kick does not shift the next one's.
    let mut roles: Vec<(usize, Role, Option<String>)> = Vec::new();
    let mut affiliations = Vec::new();
    for c in changes {
        match c {
            Change::Role(i, r, reason) => roles.push((i, r, reason)),
            Change::Affiliation(j, a, reason) => affiliations.push((j, a, reason)),
        }
    }
    roles.sort_by_key(|r| std::cmp::Reverse(r.0));
    roles.dedup_by_key(|r| r.0);
    for (i, r, reason) in roles {
        set_role(ctx, state, i, r, actor.clone(), reason);
    }
    for (jid, a, reason) in affiliations {
        set_affiliation(ctx, state, jid, a, actor.clone(), reason);
    }
    after_leaving(ctx, state);
    Ok(())
}

/// Gives occupant `i` a role, and tells the room; `none` is a kick
/// (§8.2, status 307).
pub fn set_role(
    ctx: &mut Ctx<'_>,
    state: &mut RoomState,
    i: usize,
    role: Role,
    actor: Option<String>,
    reason: Option<String>,
) {
    if role == Role::None {
        let extra = Extra {
            codes: vec![307],
            actor,
            reason,
            ..Extra::default()
        };
        remove_occupant(ctx, state, i, extra);
        return;
    }
    state.occupants[i].role = role;
    let extra = Extra {
        actor,
        reason,
        ..Extra::default()
    };
    broadcast_occupant(ctx, state, i, &extra);
}

/// Gives `jid` an affiliation, and tells the room when it is in it: a ban
/// removes it (301), as does losing membership of a members-only room
/// (321); otherwise its role follows the new affiliation.
fn set_affiliation(
    ctx: &mut Ctx<'_>,
    state: &mut RoomState,
    jid: BareJid,
    affiliation: Affiliation,
    actor: Option<String>,
    reason: Option<String>,
) {
    state.set_affiliation(jid.clone(), affiliation, reason.clone().unwrap_or_default());
    ctx.out.changed = true;
    let removed = match affiliation {
        Affiliation::Outcast => Some(301),
        a if state.config.members_only && a < Affiliation::Member => Some(321),
        _ => None,
    };
    // The same user may be in the room under several nicks: each goes, or
    // each gets the new affiliation, from the last index down.
    let mut i = state.occupants.len();
    while i > 0 {
        i -= 1;
        if state.occupants[i].bare != jid {
            continue;
        }
        if let Some(code) = removed {
            let extra = Extra {
                codes: vec![code],
                actor: actor.clone(),
                reason: reason.clone(),
                ..Extra::default()
            };
            remove_occupant(ctx, state, i, extra);
            continue;
        }
        state.occupants[i].role = state.default_role(affiliation);
        broadcast_occupant(ctx, state, i, &Extra::default());
    }
}

/// §10.2: the configuration form, for owners only.
fn owner_get(ctx: &Ctx<'_>, state: &RoomState, from: &BareJid) -> Result<Element, Refusal> {
    if state.affiliation(from) != Affiliation::Owner {
        return Err(err(C::Forbidden, "Only owners may configure the room"));
    }
    let list = |a: Affiliation| -> Vec<String> {
        state
            .with_affiliation(a)
            .into_iter()
            .map(|j| j.to_string())
            .collect()
    };
    let limit = ctx.shared.options.max_occupants;
    let mut form = state.config.to_form(
        "form",
        &list(Affiliation::Admin),
        &list(Affiliation::Owner),
        limit,
    );
    form.push(
        Element::new("title", ns::DATA_FORMS).with_text(format!("Configuration of {}", ctx.room)),
    );
    Ok(Element::new("query", MUC_OWNER).with_child(form))
}

/// §10.1.2-§10.2 (configuration, instant rooms, cancelling) and §10.9
/// (destruction).
fn owner_set(
    ctx: &mut Ctx<'_>,
    state: &mut RoomState,
    from: &BareJid,
    query: &Element,
) -> Result<(), Refusal> {
    if state.affiliation(from) != Affiliation::Owner {
        return Err(err(C::Forbidden, "Only owners may do that"));
    }
    if let Some(d) = query.get_child("destroy", MUC_OWNER) {
        destroy(ctx, state, d);
        return Ok(());
    }
    let Some(x) = query.get_child("x", ns::DATA_FORMS) else {
        return Err(refuse(C::BadRequest));
    };
    match x.attr("type") {
        Some("cancel") => {
            // §10.1.3: cancelling the first configuration destroys the room.
            if state.locked {
                destroy(ctx, state, &Element::new("destroy", MUC_OWNER));
            }
            Ok(())
        }
        Some("submit") => configure(ctx, state, x),
        _ => Err(refuse(C::BadRequest)),
    }
}

fn configure(ctx: &mut Ctx<'_>, state: &mut RoomState, x: &Element) -> Result<(), Refusal> {
    let limit = ctx.shared.options.max_occupants;
    let applied = state
        .config
        .apply(x, limit)
        .map_err(|()| err(C::NotAcceptable, "A field has a value the room cannot take"))?;
    // §10.7: the room keeps an owner, whatever the two lists say.
    let owners_after: Vec<BareJid> = match &applied.owners {
        Some(list) => list.clone(),
        None => state.with_affiliation(Affiliation::Owner),
    };
    let demoted = applied.admins.as_ref();
    let left = owners_after
        .iter()
        .filter(|o| applied.owners.is_some() || demoted.is_none_or(|d| !d.contains(o)))
        .count();
    if left == 0 {
        return Err(err(C::Conflict, "The room would have no owner"));
    }
    let old = std::mem::replace(&mut state.config, applied.config);
    // The admin and owner lists as the form gives them, whole.
    for (list, a) in [
        (applied.admins, Affiliation::Admin),
        (applied.owners, Affiliation::Owner),
    ] {
        let Some(list) = list else { continue };
        for j in state.with_affiliation(a) {
            if !list.contains(&j) {
                set_affiliation(ctx, state, j, Affiliation::None, None, None);
            }
        }
        for j in list {
            if state.affiliation(&j) != a {
                set_affiliation(ctx, state, j, a, None, None);
            }
        }
    }
    let was_locked = std::mem::replace(&mut state.locked, false);
    ctx.out.changed = true;
    // §10.2.1: what changed, as status codes in a message to everyone.
    let c = &state.config;
    let mut codes = Vec::new();
    if c.logging != old.logging {
        codes.push(if c.logging { 170 } else { 171 });
    }
    if c.whois_anyone != old.whois_anyone {
        codes.push(if c.whois_anyone { 172 } else { 173 });
    }
    if codes.is_empty() && !was_locked {
        codes.push(104);
    }
    if !codes.is_empty() && !was_locked {
        let mut ux = Element::new("x", MUC_USER);
        for code in codes {
            ux.push(Element::new("status", MUC_USER).with_attr("code", code.to_string()));
        }
        for o in &state.occupants {
            for s in &o.sessions {
                ctx.send(
                    Element::new("message", ns::JABBER_CLIENT)
                        .with_attr("type", "groupchat")
                        .with_attr("from", ctx.room.to_string())
                        .with_attr("to", s.full.to_string())
                        .with_attr("id", random_token())
                        .with_child(ux.clone()),
                );
            }
        }
    }
    // §9.? (status 322): a room made members-only loses who is not one.
    if state.config.members_only && !old.members_only {
        let mut i = state.occupants.len();
        while i > 0 {
            i -= 1;
            if state.affiliation(&state.occupants[i].bare) < Affiliation::Member {
                let extra = Extra {
                    codes: vec![322],
                    ..Extra::default()
                };
                remove_occupant(ctx, state, i, extra);
            }
        }
    }
    // Roles follow a room made moderated or unmoderated (§5.1.2).
    if state.config.moderated != old.moderated {
        for i in 0..state.occupants.len() {
            let aff = state.affiliation(&state.occupants[i].bare);
            let role = state.occupants[i].role;
            let new = match (state.config.moderated, aff, role) {
                (true, Affiliation::None, Role::Participant) => Role::Visitor,
                (false, _, Role::Visitor) => Role::Participant,
                _ => role,
            };
            if new != role {
                set_role(ctx, state, i, new, None, None);
            }
        }
    }
    after_leaving(ctx, state);
    Ok(())
}

/// §10.9: everyone leaves, told where to go instead.
pub(super) fn destroy(ctx: &mut Ctx<'_>, state: &mut RoomState, request: &Element) {
    let mut d = Element::new("destroy", MUC_USER);
    if let Some(j) = request.attr("jid") {
        d.set_attr("jid", j);
    }
    if let Some(r) = request.get_child("reason", MUC_OWNER) {
        d.push(Element::new("reason", MUC_USER).with_text(r.text()));
    }
    if let Some(p) = request.get_child("password", MUC_OWNER) {
        d.push(Element::new("password", MUC_USER).with_text(p.text()));
    }
    let occupants = std::mem::take(&mut state.occupants);
    for mut o in occupants {
        o.role = Role::None;
        let affiliation = Affiliation::None;
        for s in &o.sessions {
            ctx.shared.set_joined(&s.full, ctx.room, false);
            let mut p = Element::new("presence", ns::JABBER_CLIENT)
                .with_attr("type", "unavailable")
                .with_attr("from", ctx.occupant_jid(&o.nick))
                .with_attr("to", s.full.to_string());
            let x = Element::new("x", MUC_USER)
                .with_child(
                    Element::new("item", MUC_USER)
                        .with_attr("affiliation", affiliation.as_str())
                        .with_attr("role", "none"),
                )
                .with_child(d.clone());
            p.push(x);
            ctx.send(p);
        }
    }
    state.destroyed = true;
    ctx.out.delete = true;
    ctx.out.changed = true;
}

/// An IQ to `room/nick`: a self-ping the room answers (XEP-0410), or a
/// request relayed to the occupant with the sender's nick for a `from`,
/// and the answer relayed back (§7.5's privacy: neither learns the
/// other's JID).
fn occupant_iq(
    ctx: &mut Ctx<'_>,
    state: &mut RoomState,
    from: &Jid,
    nick: &str,
    stanza: Element,
    request: bool,
) {
    let full = FullJid::try_from(from.clone()).ok();
    let sender = full.as_ref().and_then(|f| state.by_full(f));
    if !request {
        // An answer to a relayed request, from the session it went to.
        let (Some(i), Some(full), Some(token)) = (sender, full.as_ref(), stanza.attr("id")) else {
            return;
        };
        let Some(k) = state
            .relayed
            .iter()
            .position(|r| r.token == token && r.target == *full)
        else {
            return;
        };
        let Some(r) = state.relayed.remove(k) else {
            return;
        };
        if state.by_full(&r.requester).is_none() {
            return;
        }
        let mut answer = stanza.clone();
        answer.set_attr("from", ctx.occupant_jid(&state.occupants[i].nick));
        answer.set_attr("to", r.requester.to_string());
        answer.set_attr("id", r.id);
        ctx.send(answer);
        return;
    }
    // XEP-0410: only an occupant is answered; one not (or no longer)
    // joined learns it from the error.
    let Some(i) = sender else {
        ctx.fail(
            &stanza,
            *err(C::NotAcceptable, "Only occupants may address occupants"),
        );
        return;
    };
    let Some(t) = state.by_nick(nick) else {
        ctx.error(&stanza, C::ItemNotFound);
        return;
    };
    let ping = stanza.get_child("ping", ns::PING).is_some();
    if ping && t == i {
        // §3 of XEP-0410: the room answers a self-ping for the client.
        ctx.send(result_iq(&stanza, None));
        return;
    }
    let (Some(target), Some(full)) = (state.occupants[t].sessions.first(), full) else {
        return;
    };
    // An opaque id: the target learns nothing of the requester (§7.5's
    // privacy), and only its own answer is taken back.
    let token = random_token();
    let target = target.full.clone();
    let mut relayed = stanza.clone();
    relayed.set_attr("from", ctx.occupant_jid(&state.occupants[i].nick));
    relayed.set_attr("to", target.to_string());
    relayed.set_attr("id", token.as_str());
    if state.relayed.len() >= MAX_RELAYED {
        state.relayed.pop_front();
    }
    state.relayed.push_back(Relayed {
        token,
        requester: full,
        id: stanza.attr("id").unwrap_or_default().to_owned(),
        target,
    });
    ctx.send(relayed);
}

/// IQs relayed between occupants one room remembers; past it the oldest
/// is forgotten (its answer is then dropped).
const MAX_RELAYED: usize = 256;
