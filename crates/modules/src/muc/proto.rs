//! The occupants' side of XEP-0045: entering and leaving (§7.2, §7.14),
//! presence and nick changes (§7.6, §7.7), messages to all and private ones
//! (§7.4, §7.5), the subject (§8.1), invitations (§7.8.2) and voice
//! requests (§8.6).
//!
//! Every function here is one synchronous step on a room: it changes the
//! [`RoomState`] and puts what is to be sent in [`Out`]; `room.rs` delivers
//! it in the same step (see there for why).

use std::sync::Arc;
use std::time::SystemTime;

use chorus_jid::{BareJid, FullJid, Jid};
use chorus_proto::{
    error_reply, ns, MessageType, PresenceType, StanzaError, StanzaErrorCondition as C,
};
use chorus_xml::Element;

use super::admin;
use super::state::*;
use super::Shared;
use crate::forms::{form_fields, form_head, form_type};

/// What a step sends and what it changed.
#[derive(Default)]
pub struct Out {
    pub stanzas: Vec<Element>,
    /// The persistent part changed: storage is owed a write.
    pub changed: bool,
    /// The room is to be removed from storage.
    pub delete: bool,
    /// Messages for the room's archive.
    pub archive: Vec<chorus_storage::ArchivedMessage>,
    /// Archived messages to replace: (stanza-id, tombstone).
    pub tombstones: Vec<(String, String)>,
}

/// What a step works with.
pub struct Ctx<'a> {
    pub room: &'a BareJid,
    pub shared: &'a Arc<Shared>,
    pub out: &'a mut Out,
}

impl Ctx<'_> {
    pub fn send(&mut self, stanza: Element) {
        self.out.stanzas.push(stanza);
    }

    /// The error reply to `stanza`, from where it was sent.
    pub fn fail(&mut self, stanza: &Element, err: StanzaError) {
        if let Some(e) = error_reply(stanza, &err) {
            self.send(e);
        }
    }

    pub fn error(&mut self, stanza: &Element, cond: C) {
        self.fail(stanza, StanzaError::new(cond));
    }

    /// `room@service/nick`.
    pub fn occupant_jid(&self, nick: &str) -> String {
        format!("{}/{nick}", self.room)
    }
}

/// A stanza for the room or one of its occupants.
pub fn handle(ctx: &mut Ctx<'_>, slot: &mut Option<RoomState>, stanza: Element) {
    let Some(from) = stanza.attr("from").and_then(|f| f.parse::<Jid>().ok()) else {
        return;
    };
    let Some(to) = stanza.attr("to").and_then(|t| t.parse::<Jid>().ok()) else {
        return;
    };
    let nick = to.resource().map(str::to_owned);
    match stanza.name() {
        "presence" => presence(ctx, slot, from, nick, stanza),
        "message" => message(ctx, slot, from, nick, stanza),
        "iq" => admin::iq(ctx, slot, from, nick, stanza),
        _ => {}
    }
}

/// A session in the room ended without leaving (RFC 6121 §4.6 will not
/// come): it leaves, and the others see status 333.
pub fn gone(ctx: &mut Ctx<'_>, slot: &mut Option<RoomState>, full: &FullJid) {
    if let Some(state) = slot.as_mut() {
        leave(ctx, state, full, None, &[333]);
    }
}

// ---------------------------------------------------------------------
// Presence

fn presence(
    ctx: &mut Ctx<'_>,
    slot: &mut Option<RoomState>,
    from: Jid,
    nick: Option<String>,
    stanza: Element,
) {
    let Ok(from) = FullJid::try_from(from) else {
        // Only a client's session can be in a room.
        ctx.error(&stanza, C::BadRequest);
        return;
    };
    match PresenceType::of(&stanza) {
        Some(PresenceType::Available) => available(ctx, slot, from, nick, stanza),
        Some(PresenceType::Unavailable) => {
            if let Some(state) = slot.as_mut() {
                let status = stanza.get_child("status", ns::JABBER_CLIENT).cloned();
                leave(ctx, state, &from, status, &[]);
            }
        }
        // An error from an occupant's side: its client is not there to
        // hear the room; it leaves.
        Some(PresenceType::Error) => {
            if let Some(state) = slot.as_mut() {
                leave(ctx, state, &from, None, &[333]);
            }
        }
        // XEP-0045 §7.2.? (presence probes): an occupant asks for another's
        // current presence.
        Some(PresenceType::Probe) => {
            let Some(state) = slot.as_ref() else { return };
            let (Some(me), Some(nick)) = (state.by_full(&from), nick) else {
                ctx.error(&stanza, C::NotAcceptable);
                return;
            };
            let Some(them) = state.by_nick(&nick) else {
                ctx.error(&stanza, C::ItemNotFound);
                return;
            };
            let (o, viewer) = (&state.occupants[them], &state.occupants[me]);
            if let Some(p) = current_presence(ctx, state, o, viewer, &from) {
                ctx.send(p);
            }
        }
        // Subscriptions are for accounts, not rooms.
        _ => {}
    }
}

/// An available presence: entering, a nick change, or an update.
fn available(
    ctx: &mut Ctx<'_>,
    slot: &mut Option<RoomState>,
    from: FullJid,
    nick: Option<String>,
    stanza: Element,
) {
    // §7.2.1: the nick is the resource of the room JID.
    let Some(nick) = nick.filter(|n| !n.trim().is_empty()) else {
        join_error(ctx, &stanza, C::JidMalformed);
        return;
    };
    if let Some(state) = slot.as_mut() {
        if let Some(i) = state.by_full(&from) {
            if state.occupants[i].nick == nick {
                update(ctx, state, i, &from, &stanza);
            } else {
                change_nick(ctx, state, i, &nick, &stanza);
            }
            return;
        }
    }
    enter(ctx, slot, from, nick, stanza);
}

/// A refused entrance or nick change: the error presence carries the MUC
/// `<x/>` (§7.2.1: clients match their entrance's outcome by it) and the
/// room in `by` (RFC 6120 §8.3.2).
fn join_error(ctx: &mut Ctx<'_>, stanza: &Element, cond: C) {
    let err = StanzaError::new(cond).with_by(ctx.room.to_string());
    if let Some(mut e) = error_reply(stanza, &err) {
        e.push(Element::new("x", MUC));
        ctx.send(e);
    }
}

/// What the room keeps of a client's presence: its content, without the
/// addresses and without what only the room may say.
fn kept_presence(stanza: &Element) -> Element {
    let mut p = Element::new("presence", ns::JABBER_CLIENT);
    for child in stanza.children() {
        if child.is("x", MUC) || child.is("x", MUC_USER) || child.ns() == OCCUPANT_ID {
            continue;
        }
        p.push(child.clone());
    }
    p
}

/// §7.2: entering the room, creating it first if it does not exist
/// (§10.1.1).
fn enter(
    ctx: &mut Ctx<'_>,
    slot: &mut Option<RoomState>,
    from: FullJid,
    nick: String,
    stanza: Element,
) {
    let bare = from.bare();
    let muc = stanza.get_child("x", MUC);
    let mut created = false;
    if slot.as_ref().is_none_or(|s| s.destroyed) {
        let opts = &ctx.shared.options;
        let may = match opts.creators {
            chorus_config::MucCreators::Local => opts.is_local(&bare),
            chorus_config::MucCreators::Anyone => true,
        };
        // §10.1.1: who may not create rooms gets not-allowed.
        if !may || ctx.shared.owned_by(&bare) >= opts.max_rooms_per_user {
            join_error(ctx, &stanza, C::NotAllowed);
            return;
        }
        let mut config = RoomConfig::new(opts.max_occupants);
        config.logging = opts.logging_default;
        let mut state = RoomState::new(config);
        state.set_affiliation(bare.clone(), Affiliation::Owner, String::new());
        // §10.1.2/§10.1.3: a room asked for with the MUC `<x/>` stays locked
        // until its owner configures it (or accepts the defaults, an
        // instant room); a client that speaks only the old groupchat
        // protocol gets an instant room at once.
        state.locked = muc.is_some();
        *slot = Some(state);
        created = true;
        ctx.out.changed = true;
    }
    let Some(state) = slot.as_mut() else { return };
    let affiliation = state.affiliation(&bare);
    if state.locked && affiliation != Affiliation::Owner {
        // §10.1.1: a locked room is not there for anyone else.
        join_error(ctx, &stanza, C::ItemNotFound);
        return;
    }
    // §7.2.7
    if affiliation == Affiliation::Outcast {
        join_error(ctx, &stanza, C::Forbidden);
        return;
    }
    // §7.2.6
    if state.config.members_only && affiliation < Affiliation::Member {
        join_error(ctx, &stanza, C::RegistrationRequired);
        return;
    }
    // §7.2.5
    if let Some(password) = &state.config.password {
        let given = muc
            .and_then(|x| x.get_child("password", MUC))
            .map(Element::text);
        if affiliation != Affiliation::Owner && given.as_deref() != Some(password.as_str()) {
            join_error(ctx, &stanza, C::NotAuthorized);
            return;
        }
    }
    // §7.2.9: a nick registered by someone else (§7.10) is theirs.
    if state.reserved_by(&nick).is_some_and(|owner| *owner != bare) {
        join_error(ctx, &stanza, C::Conflict);
        return;
    }
    let existing = state.by_nick(&nick);
    match existing {
        // §7.2.9: someone else's nick.
        Some(i) if state.occupants[i].bare != bare => {
            join_error(ctx, &stanza, C::Conflict);
            return;
        }
        Some(_) => {}
        // §7.2.10: full, except for admins and owners.
        None if state.occupants.len() >= state.config.max_users as usize
            && affiliation < Affiliation::Admin =>
        {
            join_error(ctx, &stanza, C::ServiceUnavailable);
            return;
        }
        None => {}
    }
    let session = Session {
        full: from.clone(),
        presence: kept_presence(&stanza),
    };
    let i = match existing {
        Some(i) => {
            state.occupants[i].sessions.push(session);
            i
        }
        None => {
            let role = state.default_role(affiliation);
            let id = state.occupant_id(ctx.room, &bare);
            state.occupants.push(Occupant {
                nick: nick.clone(),
                bare: bare.clone(),
                sessions: vec![session],
                role,
                id,
                bucket: crate::bucket::Bucket::full(ctx.shared.options.message_burst),
            });
            state.occupants.len() - 1
        }
    };
    ctx.shared.set_joined(&from, ctx.room, true);
    // §7.2.3: the others' presence first, to the new session alone.
    let me = &state.occupants[i];
    for (j, o) in state.occupants.iter().enumerate() {
        if j == i || !state.config.broadcasts(o.role) {
            continue;
        }
        if let Some(p) = current_presence(ctx, state, o, me, &from) {
            ctx.send(p);
        }
    }
    // Then its own, to everyone (§7.2.4) with the status codes of §7.2.2.
    let mut self_codes = Vec::new();
    if state.config.whois_anyone {
        self_codes.push(100);
    }
    if state.config.logging {
        self_codes.push(170);
    }
    if created {
        self_codes.push(201);
    }
    // The nick is the room JID's resource as RFC 7622 normalizes it; a
    // client that asked for another form of it is told (§7.2.3, 210).
    let asked = stanza
        .attr("to")
        .and_then(|t| t.split_once('/'))
        .map(|(_, n)| n);
    if asked.is_some_and(|a| a != nick) {
        self_codes.push(210);
    }
    let extra = Extra {
        self_codes,
        ..Extra::default()
    };
    broadcast_session(ctx, state, i, &from, &extra);
    // §7.2.15 history, then §7.2.16 the subject.
    send_history(ctx, state, &from, muc);
    let subject = match &state.subject {
        Some((text, by)) => {
            let from = if by.is_empty() {
                ctx.room.to_string()
            } else {
                ctx.occupant_jid(by)
            };
            (from, text.clone())
        }
        None => (ctx.room.to_string(), String::new()),
    };
    ctx.send(
        Element::new("message", ns::JABBER_CLIENT)
            .with_attr("type", "groupchat")
            .with_attr("from", subject.0)
            .with_attr("to", from.to_string())
            .with_attr("id", random_token())
            .with_child(Element::new("subject", ns::JABBER_CLIENT).with_text(subject.1)),
    );
}

/// §7.2.15: what the joining client asked for of the history, at most
/// what the room keeps.
fn send_history(ctx: &mut Ctx<'_>, state: &RoomState, to: &FullJid, muc: Option<&Element>) {
    let h = muc.and_then(|x| x.get_child("history", MUC));
    let num = |name: &str| {
        h.and_then(|h| h.attr(name))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let max_stanzas = num("maxstanzas").unwrap_or(u64::MAX);
    let max_chars = num("maxchars").unwrap_or(u64::MAX);
    let since = h
        .and_then(|h| h.attr("since"))
        .and_then(crate::mam::parse_datetime);
    let seconds = num("seconds").map(std::time::Duration::from_secs);
    let now = SystemTime::now();
    let mut picked: Vec<&HistoryEntry> = Vec::new();
    let mut chars = 0u64;
    for e in state.history.iter().rev() {
        if picked.len() as u64 >= max_stanzas {
            break;
        }
        if since.is_some_and(|s| e.at < s) {
            break;
        }
        if seconds.is_some_and(|d| now.duration_since(e.at).unwrap_or_default() > d) {
            break;
        }
        chars += e.chars as u64;
        if chars > max_chars {
            break;
        }
        picked.push(e);
    }
    for e in picked.into_iter().rev() {
        let mut m = e.message.clone();
        m.set_attr("to", to.to_string());
        // XEP-0203: when it was sent, by the room.
        m.push(
            Element::new("delay", ns::DELAY)
                .with_attr("from", ctx.room.to_string())
                .with_attr("stamp", humantime::format_rfc3339_seconds(e.at).to_string()),
        );
        ctx.send(m);
    }
}

/// A presence update from an occupant (§7.7's "changing availability").
fn update(ctx: &mut Ctx<'_>, state: &mut RoomState, i: usize, from: &FullJid, stanza: &Element) {
    if let Some(s) = state.occupants[i]
        .sessions
        .iter_mut()
        .find(|s| s.full == *from)
    {
        s.presence = kept_presence(stanza);
    }
    broadcast_session(ctx, state, i, from, &Extra::default());
}

/// §7.6: a new nick for every session of the occupant.
fn change_nick(ctx: &mut Ctx<'_>, state: &mut RoomState, i: usize, nick: &str, stanza: &Element) {
    // §7.6.2: taken (by the same user from another client too: moving
    // there would merge two occupants).
    let registered_elsewhere = state
        .reserved_by(nick)
        .is_some_and(|owner| *owner != state.occupants[i].bare);
    if state.by_nick(nick).is_some() || registered_elsewhere {
        join_error(ctx, stanza, C::Conflict);
        return;
    }
    // §7.6.3: unavailable from the old nick with 303 and the new one...
    let old = state.occupants[i].clone();
    let extra = Extra {
        codes: vec![303],
        new_nick: Some(nick.to_owned()),
        ..Extra::default()
    };
    broadcast_unavailable(ctx, state, &old, old.role, &extra, true);
    // ...then available from the new.
    state.occupants[i].nick = nick.to_owned();
    if let Some(s) = state.occupants[i]
        .sessions
        .iter_mut()
        .find(|s| stanza.attr("from").is_some_and(|f| s.full.to_string() == f))
    {
        s.presence = kept_presence(stanza);
    }
    broadcast_occupant(ctx, state, i, &Extra::default());
}

/// One session leaves; the occupant with it when it was the last.
pub fn leave(
    ctx: &mut Ctx<'_>,
    state: &mut RoomState,
    from: &FullJid,
    status: Option<Element>,
    codes: &[u16],
) {
    let Some(i) = state.by_full(from) else {
        return;
    };
    ctx.shared.set_joined(from, ctx.room, false);
    let gone_for_good = !codes.contains(&333);
    let o = &mut state.occupants[i];
    let Some(k) = o.sessions.iter().position(|s| s.full == *from) else {
        return;
    };
    let session = o.sessions.remove(k);
    if !o.sessions.is_empty() {
        // The occupant stays with its other clients: only this one hears it
        // left.
        if gone_for_good {
            let mut leaving = o.clone();
            leaving.sessions = vec![session];
            leaving.role = Role::None;
            let p = occupant_presence(
                ctx.room,
                state,
                &leaving,
                &leaving.sessions[0],
                from,
                true,
                &Extra {
                    unavailable: true,
                    self_codes: vec![110],
                    ..Extra::default()
                },
            );
            ctx.send(p);
        }
        return;
    }
    let mut leaving = state.occupants.remove(i);
    let was = leaving.role;
    leaving.role = Role::None;
    let mut presence = session.presence;
    presence.remove_children(|c| c.name() != "status");
    if let Some(s) = status {
        presence.remove_children(|_| true);
        presence.push(s);
    }
    leaving.sessions = vec![Session {
        full: session.full,
        presence,
    }];
    let extra = Extra {
        codes: codes.to_vec(),
        ..Extra::default()
    };
    broadcast_unavailable(ctx, state, &leaving, was, &extra, gone_for_good);
    after_leaving(ctx, state);
}

/// Occupant `i` is removed (kicked, banned, no longer a member): it and
/// those who saw it hear it, with `extra`'s codes.
pub fn remove_occupant(ctx: &mut Ctx<'_>, state: &mut RoomState, i: usize, extra: Extra) {
    let mut o = state.occupants.remove(i);
    let was = o.role;
    o.role = Role::None;
    for s in &o.sessions {
        ctx.shared.set_joined(&s.full, ctx.room, false);
    }
    broadcast_unavailable(ctx, state, &o, was, &extra, true);
}

/// A temporary room whose last occupant left is destroyed (§10.1.3).
pub fn after_leaving(ctx: &mut Ctx<'_>, state: &mut RoomState) {
    if state.occupants.is_empty() && !state.config.persistent {
        state.destroyed = true;
        ctx.out.delete = true;
    }
}

// ---------------------------------------------------------------------
// Presence stanzas

/// What a presence says beyond the occupant's own.
#[derive(Default)]
pub struct Extra {
    pub unavailable: bool,
    /// Status codes for everyone.
    pub codes: Vec<u16>,
    /// Status codes for the occupant's own sessions only (110 is added).
    pub self_codes: Vec<u16>,
    pub actor: Option<String>,
    pub reason: Option<String>,
    pub new_nick: Option<String>,
    pub destroy: Option<Element>,
}

/// Whether `viewer` is shown `o`'s real JID (§5.2.? whois, §7.2.3).
pub fn sees_jid(state: &RoomState, viewer: &Occupant, o: &Occupant) -> bool {
    state.config.whois_anyone || viewer.role == Role::Moderator || viewer.bare == o.bare
}

/// The presence of `o`'s session `s` as `to` is to see it.
pub fn occupant_presence(
    room: &BareJid,
    state: &RoomState,
    o: &Occupant,
    s: &Session,
    to: &FullJid,
    show_jid: bool,
    extra: &Extra,
) -> Element {
    let mut p = s.presence.clone();
    if extra.unavailable {
        p.set_attr("type", "unavailable");
    }
    p.set_attr("from", format!("{room}/{}", o.nick));
    p.set_attr("to", to.to_string());
    let mine = o.bare == to.bare();
    let mut item = Element::new("item", MUC_USER)
        .with_attr("affiliation", state.affiliation(&o.bare).as_str())
        .with_attr("role", o.role.as_str());
    if show_jid {
        item.set_attr("jid", s.full.to_string());
    }
    if let Some(n) = &extra.new_nick {
        item.set_attr("nick", n.as_str());
    }
    if let Some(a) = &extra.actor {
        item.push(Element::new("actor", MUC_USER).with_attr("nick", a.as_str()));
    }
    if let Some(r) = &extra.reason {
        item.push(Element::new("reason", MUC_USER).with_text(r.as_str()));
    }
    let mut x = Element::new("x", MUC_USER).with_child(item);
    if let Some(d) = &extra.destroy {
        x.push(d.clone());
    }
    let mut codes: Vec<u16> = extra.codes.clone();
    if mine && s.full == *to {
        codes.push(110);
        codes.extend(&extra.self_codes);
    }
    codes.sort_unstable();
    codes.dedup();
    for c in codes {
        x.push(Element::new("status", MUC_USER).with_attr("code", c.to_string()));
    }
    p.push(x);
    p.push(Element::new("occupant-id", OCCUPANT_ID).with_attr("id", o.id.as_str()));
    p
}

/// Occupant `i`'s session `full` presence, to every session in the room
/// that is to see it.
pub fn broadcast_session(
    ctx: &mut Ctx<'_>,
    state: &RoomState,
    i: usize,
    full: &FullJid,
    extra: &Extra,
) {
    let o = &state.occupants[i];
    let Some(s) = o.sessions.iter().find(|s| s.full == *full) else {
        return;
    };
    for viewer in &state.occupants {
        let own = viewer.bare == o.bare;
        if !own && !state.config.broadcasts(o.role) {
            continue;
        }
        let show = sees_jid(state, viewer, o);
        for v in &viewer.sessions {
            let p = occupant_presence(ctx.room, state, o, s, &v.full, show, extra);
            ctx.send(p);
        }
    }
}

/// Every session of occupant `i`, as it is now, to everyone who is to see
/// it (each of its own clients gets its own with 110).
pub fn broadcast_occupant(ctx: &mut Ctx<'_>, state: &RoomState, i: usize, extra: &Extra) {
    let sessions: Vec<FullJid> = state.occupants[i]
        .sessions
        .iter()
        .map(|s| s.full.clone())
        .collect();
    for full in sessions {
        broadcast_session(ctx, state, i, &full, extra);
    }
}

/// `o`'s presence as `viewer` is to see it, sent to `to`: that of its
/// latest session.
fn current_presence(
    ctx: &Ctx<'_>,
    state: &RoomState,
    o: &Occupant,
    viewer: &Occupant,
    to: &FullJid,
) -> Option<Element> {
    let s = o.sessions.last()?;
    let show = sees_jid(state, viewer, o);
    Some(occupant_presence(
        ctx.room,
        state,
        o,
        s,
        to,
        show,
        &Extra::default(),
    ))
}

/// `o` (no longer, or no longer under this nick, in the room) leaves: its
/// sessions (when `to_self`) and everyone who saw it hear it.
pub fn broadcast_unavailable(
    ctx: &mut Ctx<'_>,
    state: &RoomState,
    o: &Occupant,
    was: Role,
    extra: &Extra,
    to_self: bool,
) {
    let extra = Extra {
        unavailable: true,
        codes: extra.codes.clone(),
        self_codes: extra.self_codes.clone(),
        actor: extra.actor.clone(),
        reason: extra.reason.clone(),
        new_nick: extra.new_nick.clone(),
        destroy: extra.destroy.clone(),
    };
    let Some(s) = o.sessions.first() else { return };
    for viewer in &state.occupants {
        if viewer.nick == o.nick && viewer.bare == o.bare {
            continue;
        }
        // Whom nobody saw arrive, nobody sees leave.
        if !state.config.broadcasts(was) {
            continue;
        }
        let show = sees_jid(state, viewer, o);
        for v in &viewer.sessions {
            let p = occupant_presence(ctx.room, state, o, s, &v.full, show, &extra);
            ctx.send(p);
        }
    }
    if to_self {
        for own in &o.sessions {
            let p = occupant_presence(ctx.room, state, o, own, &own.full, true, &extra);
            ctx.send(p);
        }
    }
}

// ---------------------------------------------------------------------
// Messages

fn message(
    ctx: &mut Ctx<'_>,
    slot: &mut Option<RoomState>,
    from: Jid,
    nick: Option<String>,
    stanza: Element,
) {
    let mtype = MessageType::of(&stanza);
    let Some(state) = slot.as_mut().filter(|s| !s.destroyed && !s.locked) else {
        ctx.error(&stanza, C::ItemNotFound);
        return;
    };
    let full = FullJid::try_from(from.clone()).ok();
    if mtype == MessageType::Error {
        // A message the room sent bounced off an occupant's session: it is
        // not there any more.
        if let Some(full) = full {
            leave(ctx, state, &full, None, &[333]);
        }
        return;
    }
    let sender = full.as_ref().and_then(|f| state.by_full(f));
    match nick {
        Some(nick) => private_message(ctx, state, sender, &nick, stanza),
        None if mtype == MessageType::Groupchat => {
            groupchat(ctx, state, sender, stanza);
        }
        None => {
            if let Some(x) = stanza.get_child("x", MUC_USER) {
                let x = x.clone();
                invitations(ctx, state, &from, sender, &x, &stanza);
                return;
            }
            let form = stanza
                .get_child("x", ns::DATA_FORMS)
                .filter(|x| form_type(x).as_deref() == Some(REQUEST))
                .cloned();
            match form {
                Some(form) => voice_request(ctx, state, sender, &form, &stanza),
                // §7.4: only groupchat messages go to everyone.
                None => ctx.error(&stanza, C::BadRequest),
            }
        }
    }
}

/// §7.4 (and §8.1 for the subject): a message to everyone. False when it
/// was refused.
fn groupchat(
    ctx: &mut Ctx<'_>,
    state: &mut RoomState,
    sender: Option<usize>,
    stanza: Element,
) -> bool {
    // §7.4: from outside the room.
    let Some(i) = sender else {
        ctx.error(&stanza, C::NotAcceptable);
        return false;
    };
    // §7.4: a visitor in a moderated room has no voice.
    if state.occupants[i].role < Role::Participant {
        ctx.fail(
            &stanza,
            StanzaError::new(C::Forbidden).with_text("Only occupants with voice may speak here"),
        );
        return false;
    }
    let opts = &ctx.shared.options;
    let every = std::time::Duration::from_secs(60) / opts.message_rate_per_minute.max(1);
    if !state.occupants[i].bucket.take(opts.message_burst, every) {
        ctx.fail(
            &stanza,
            StanzaError::new(C::ResourceConstraint)
                .with_type(chorus_proto::ErrorType::Wait)
                .with_text("Too many messages; wait a little"),
        );
        return false;
    }
    let nick = state.occupants[i].nick.clone();
    let role = state.occupants[i].role;
    let subject = stanza.get_child("subject", ns::JABBER_CLIENT);
    let body = stanza.get_child("body", ns::JABBER_CLIENT);
    if let (Some(subject), None) = (subject, body) {
        // §8.1
        if role != Role::Moderator && !state.config.change_subject {
            ctx.fail(
                &stanza,
                StanzaError::new(C::Forbidden).with_text("Only moderators may change the subject"),
            );
            return false;
        }
        state.subject = Some((subject.text(), nick.clone()));
        ctx.out.changed = true;
    }
    // Sanitized: what only the room may say is the room's.
    let mut m = stanza.clone();
    m.remove_attr("to");
    m.set_attr("from", ctx.occupant_jid(&nick));
    let room = ctx.room.to_string();
    // XEP-0313 §8.4, XEP-0045 §7.4: a muc#user `<x/>` is the room's to
    // give (a sender could claim a real JID or a role with it).
    m.remove_children(|c| {
        (c.is("stanza-id", ns::SID) && c.attr("by") == Some(room.as_str()))
            || c.ns() == OCCUPANT_ID
            || c.is("delay", ns::DELAY)
            || c.is("x", MUC_USER)
    });
    // XEP-0359, XEP-0421.
    let stanza_id = random_token();
    m.push(
        Element::new("stanza-id", ns::SID)
            .with_attr("id", stanza_id.as_str())
            .with_attr("by", room.as_str()),
    );
    m.push(
        Element::new("occupant-id", OCCUPANT_ID).with_attr("id", state.occupants[i].id.as_str()),
    );
    for o in &state.occupants {
        for s in &o.sessions {
            let mut copy = m.clone();
            copy.set_attr("to", s.full.to_string());
            ctx.send(copy);
        }
    }
    // XEP-0313: what a client would show, while the room keeps a log.
    let archived = state.config.logging && (body.is_some() || subject.is_some());
    let kept = body.is_some() && ctx.shared.options.history_size > 0;
    // Serialized once, for the archive and for `maxchars`.
    let xml = if archived || kept {
        m.to_xml()
    } else {
        String::new()
    };
    let chars = xml.len();
    if archived {
        ctx.out.archive.push(chorus_storage::ArchivedMessage {
            stanza_id,
            timestamp: SystemTime::now(),
            with: ctx.occupant_jid(&nick),
            outgoing: false,
            stanza: xml,
        });
    }
    if kept {
        state.history.push_back(HistoryEntry {
            message: m,
            at: SystemTime::now(),
            chars,
        });
        while state.history.len() > ctx.shared.options.history_size as usize {
            state.history.pop_front();
        }
    }
    true
}

/// §7.5: a private message to one occupant, to all its sessions.
fn private_message(
    ctx: &mut Ctx<'_>,
    state: &mut RoomState,
    sender: Option<usize>,
    nick: &str,
    stanza: Element,
) {
    if MessageType::of(&stanza) == MessageType::Groupchat {
        ctx.error(&stanza, C::BadRequest);
        return;
    }
    let Some(i) = sender else {
        ctx.error(&stanza, C::NotAcceptable);
        return;
    };
    if !state.config.allow_pm.allows(state.occupants[i].role) {
        ctx.fail(
            &stanza,
            StanzaError::new(C::Forbidden).with_text("Private messages are not allowed here"),
        );
        return;
    }
    let Some(t) = state.by_nick(nick) else {
        ctx.error(&stanza, C::ItemNotFound);
        return;
    };
    let from_nick = state.occupants[i].nick.clone();
    let mut m = stanza.clone();
    m.set_attr("from", ctx.occupant_jid(&from_nick));
    m.remove_children(|c| c.is("x", MUC_USER) || c.ns() == OCCUPANT_ID);
    m.push(Element::new("x", MUC_USER));
    m.push(
        Element::new("occupant-id", OCCUPANT_ID).with_attr("id", state.occupants[i].id.as_str()),
    );
    for s in &state.occupants[t].sessions {
        let mut copy = m.clone();
        copy.set_attr("to", s.full.to_string());
        ctx.send(copy);
    }
}

/// §7.8.2 mediated invitations, and their declines (§7.8.3 ... §7.8.2's
/// decline).
fn invitations(
    ctx: &mut Ctx<'_>,
    state: &mut RoomState,
    from: &Jid,
    sender: Option<usize>,
    x: &Element,
    stanza: &Element,
) {
    let mut handled = false;
    for invite in x.children().filter(|c| c.is("invite", MUC_USER)) {
        handled = true;
        let Some(i) = sender else {
            ctx.error(stanza, C::NotAcceptable);
            return;
        };
        let inviter = state.occupants[i].bare.clone();
        let aff = state.affiliation(&inviter);
        if !state.config.allow_invites && aff < Affiliation::Admin {
            ctx.fail(
                stanza,
                StanzaError::new(C::Forbidden).with_text("Only admins and owners may invite here"),
            );
            return;
        }
        let Some(to) = invite.attr("to").and_then(|t| t.parse::<Jid>().ok()) else {
            ctx.error(stanza, C::JidMalformed);
            return;
        };
        // §7.8.2: in a members-only room the invitee becomes a member.
        if state.config.members_only && state.affiliation(&to.bare()) < Affiliation::Member {
            if state.affiliation(&to.bare()) == Affiliation::Outcast {
                ctx.fail(
                    stanza,
                    StanzaError::new(C::Forbidden).with_text("That user is banned"),
                );
                return;
            }
            state.set_affiliation(to.bare(), Affiliation::Member, String::new());
            ctx.out.changed = true;
        }
        let mut inv = Element::new("invite", MUC_USER).with_attr("from", from.to_string());
        if let Some(r) = invite.get_child("reason", MUC_USER) {
            inv.push(r.clone());
        }
        let mut ux = Element::new("x", MUC_USER).with_child(inv);
        if let Some(p) = &state.config.password {
            ux.push(Element::new("password", MUC_USER).with_text(p.as_str()));
        }
        let text = format!("{inviter} invites you to the room {}", ctx.room);
        ctx.send(
            Element::new("message", ns::JABBER_CLIENT)
                .with_attr("from", ctx.room.to_string())
                .with_attr("to", to.to_string())
                .with_attr("id", random_token())
                .with_child(ux)
                .with_child(Element::new("body", ns::JABBER_CLIENT).with_text(text)),
        );
    }
    for decline in x.children().filter(|c| c.is("decline", MUC_USER)) {
        handled = true;
        let Some(to) = decline.attr("to").and_then(|t| t.parse::<Jid>().ok()) else {
            ctx.error(stanza, C::JidMalformed);
            return;
        };
        let mut d = Element::new("decline", MUC_USER).with_attr("from", from.bare().to_string());
        if let Some(r) = decline.get_child("reason", MUC_USER) {
            d.push(r.clone());
        }
        ctx.send(
            Element::new("message", ns::JABBER_CLIENT)
                .with_attr("from", ctx.room.to_string())
                .with_attr("to", to.to_string())
                .with_attr("id", random_token())
                .with_child(Element::new("x", MUC_USER).with_child(d)),
        );
    }
    if !handled {
        ctx.error(stanza, C::BadRequest);
    }
}

/// §8.6: a visitor asks for voice (the form goes to the moderators), or
/// a moderator answers such a request.
fn voice_request(
    ctx: &mut Ctx<'_>,
    state: &mut RoomState,
    sender: Option<usize>,
    form: &Element,
    stanza: &Element,
) {
    let Some(i) = sender else {
        ctx.error(stanza, C::NotAcceptable);
        return;
    };
    let fields = form_fields(form);
    let field = |var: &str| {
        fields
            .iter()
            .find(|(v, _)| v == var)
            .and_then(|(_, vals)| vals.first().cloned())
    };
    if let Some(allow) = field("muc#request_allow") {
        // An answer: only a moderator's counts.
        if state.occupants[i].role != Role::Moderator {
            ctx.error(stanza, C::Forbidden);
            return;
        }
        let Some(nick) = field("muc#roomnick") else {
            ctx.error(stanza, C::BadRequest);
            return;
        };
        state.voice_requests.retain(|n| *n != nick);
        if !matches!(allow.as_str(), "1" | "true") {
            return;
        }
        let actor = state.occupants[i].nick.clone();
        if let Some(t) = state.by_nick(&nick) {
            if state.occupants[t].role == Role::Visitor {
                admin::set_role(ctx, state, t, Role::Participant, Some(actor), None);
            }
        }
        return;
    }
    if field("muc#role").as_deref() != Some("participant") {
        ctx.error(stanza, C::BadRequest);
        return;
    }
    if state.occupants[i].role != Role::Visitor {
        // Already has voice: nothing to ask for.
        ctx.error(stanza, C::UnexpectedRequest);
        return;
    }
    let o = &state.occupants[i];
    if state.voice_requests.contains(&o.nick) {
        return;
    }
    state.voice_requests.push(o.nick.clone());
    let jid = o
        .sessions
        .first()
        .map(|s| s.full.to_string())
        .unwrap_or_default();
    let field = |var: &str, typ: &str, label: &str, value: &str| {
        Element::new("field", ns::DATA_FORMS)
            .with_attr("var", var)
            .with_attr("type", typ)
            .with_attr("label", label)
            .with_child(Element::new("value", ns::DATA_FORMS).with_text(value))
    };
    let mut x = form_head("form", REQUEST);
    x.push(Element::new("title", ns::DATA_FORMS).with_text("Voice request"));
    x.push(field(
        "muc#role",
        "list-single",
        "Requested role",
        "participant",
    ));
    x.push(field("muc#jid", "jid-single", "User ID", &jid));
    x.push(field(
        "muc#roomnick",
        "text-single",
        "Room nickname",
        &o.nick,
    ));
    x.push(field(
        "muc#request_allow",
        "boolean",
        "Grant voice to this person?",
        "false",
    ));
    for m in state.occupants.iter().filter(|m| m.role == Role::Moderator) {
        for s in &m.sessions {
            ctx.send(
                Element::new("message", ns::JABBER_CLIENT)
                    .with_attr("from", ctx.room.to_string())
                    .with_attr("to", s.full.to_string())
                    .with_attr("id", random_token())
                    .with_child(x.clone()),
            );
        }
    }
}

// ---------------------------------------------------------------------
// Retractions (XEP-0424 by the sender, XEP-0425 by a moderator)

/// The archived or kept `original` as its tombstone: who sent it and its
/// ids stay, what it said goes.
fn tombstone(original: &Element, retracted: Element) -> String {
    let mut t = Element::new("message", ns::JABBER_CLIENT).with_attr("type", "groupchat");
    for attr in ["from", "id"] {
        if let Some(v) = original.attr(attr) {
            t.set_attr(attr, v);
        }
    }
    t.push(retracted);
    for c in original.children() {
        if c.ns() == OCCUPANT_ID || c.is("stanza-id", ns::SID) {
            t.push(c.clone());
        }
    }
    t.to_xml()
}

fn now_stamp() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Forgets the message from the history joiners get.
fn forget(state: &mut RoomState, id: &str) {
    state.history.retain(|h| {
        !h.message
            .children()
            .any(|c| c.is("stanza-id", ns::SID) && c.attr("id") == Some(id))
    });
}

/// XEP-0425 §4: a moderator retracts `id` (`original`, found by the
/// service): everyone is told, and the archive keeps a tombstone.
pub fn moderate(
    ctx: &mut Ctx<'_>,
    slot: &mut Option<RoomState>,
    iq: &Element,
    id: &str,
    original: &Element,
) {
    let Some(state) = slot.as_mut().filter(|s| !s.destroyed) else {
        ctx.error(iq, C::ItemNotFound);
        return;
    };
    let from = iq.attr("from").and_then(|f| f.parse::<FullJid>().ok());
    let Some(i) = from.as_ref().and_then(|f| state.by_full(f)) else {
        ctx.error(iq, C::Forbidden);
        return;
    };
    if state.occupants[i].role != Role::Moderator {
        ctx.fail(
            iq,
            StanzaError::new(C::Forbidden)
                .with_text("Only moderators may retract others' messages"),
        );
        return;
    }
    let by = ctx.occupant_jid(&state.occupants[i].nick);
    let moderated = Element::new("moderated", MODERATE)
        .with_attr("by", by.as_str())
        .with_child(
            Element::new("occupant-id", OCCUPANT_ID)
                .with_attr("id", state.occupants[i].id.as_str()),
        );
    let reason = iq
        .get_child("moderate", MODERATE)
        .and_then(|m| m.get_child("reason", MODERATE))
        .map(Element::text);
    let mut retract = Element::new("retract", RETRACT)
        .with_attr("id", id)
        .with_child(moderated.clone());
    let mut retracted = Element::new("retracted", RETRACT)
        .with_attr("stamp", now_stamp())
        .with_child(moderated);
    if let Some(r) = &reason {
        retract.push(Element::new("reason", RETRACT).with_text(r.as_str()));
        retracted.push(Element::new("reason", RETRACT).with_text(r.as_str()));
    }
    let room = ctx.room.to_string();
    let stanza_id = random_token();
    let m = Element::new("message", ns::JABBER_CLIENT)
        .with_attr("type", "groupchat")
        .with_attr("from", room.as_str())
        .with_attr("id", random_token())
        .with_child(retract)
        .with_child(
            Element::new("stanza-id", ns::SID)
                .with_attr("id", stanza_id.as_str())
                .with_attr("by", room.as_str()),
        );
    for o in &state.occupants {
        for s in &o.sessions {
            let mut copy = m.clone();
            copy.set_attr("to", s.full.to_string());
            ctx.send(copy);
        }
    }
    if state.config.logging {
        // The retraction is in the archive too, for clients catching up.
        ctx.out.archive.push(chorus_storage::ArchivedMessage {
            stanza_id,
            timestamp: SystemTime::now(),
            with: room,
            outgoing: false,
            stanza: m.to_xml(),
        });
    }
    ctx.out
        .tombstones
        .push((id.to_owned(), tombstone(original, retracted)));
    forget(state, id);
    ctx.send(crate::result_iq(iq, None));
}

/// XEP-0424: an occupant retracts its own message (the service checked
/// that `original` is its): the retraction goes to everyone like any
/// message, and the archive keeps a tombstone.
pub fn retract(
    ctx: &mut Ctx<'_>,
    slot: &mut Option<RoomState>,
    stanza: Element,
    id: &str,
    original: &Element,
) {
    let Some(state) = slot.as_mut().filter(|s| !s.destroyed && !s.locked) else {
        ctx.error(&stanza, C::ItemNotFound);
        return;
    };
    let sender = stanza
        .attr("from")
        .and_then(|f| f.parse::<FullJid>().ok())
        .and_then(|f| state.by_full(&f));
    if groupchat(ctx, state, sender, stanza) {
        let retracted = Element::new("retracted", RETRACT).with_attr("stamp", now_stamp());
        ctx.out
            .tombstones
            .push((id.to_owned(), tombstone(original, retracted)));
        forget(state, id);
    }
}
