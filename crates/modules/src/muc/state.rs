//! A room's state (XEP-0045): its configuration, affiliations, occupants,
//! subject and history, and how its persistent part is stored.
//!
//! The configuration is stored as its own `muc#roomconfig` submit form, so
//! what is in the database reads like what an owner sends.

use std::collections::{BTreeMap, VecDeque};
use std::time::SystemTime;

use base64::Engine;
use chorus_jid::{BareJid, FullJid};
use chorus_proto::ns;
use chorus_xml::Element;
use sha2::Digest;

use crate::forms::{form_fields, form_head};

pub const MUC: &str = "http://jabber.org/protocol/muc";
pub const MUC_USER: &str = "http://jabber.org/protocol/muc#user";
pub const MUC_ADMIN: &str = "http://jabber.org/protocol/muc#admin";
pub const MUC_OWNER: &str = "http://jabber.org/protocol/muc#owner";
pub const ROOMCONFIG: &str = "http://jabber.org/protocol/muc#roomconfig";
pub const ROOMINFO: &str = "http://jabber.org/protocol/muc#roominfo";
pub const REQUEST: &str = "http://jabber.org/protocol/muc#request";
pub const OCCUPANT_ID: &str = "urn:xmpp:occupant-id:0";
pub const RETRACT: &str = "urn:xmpp:message-retract:1";
pub const MODERATE: &str = "urn:xmpp:message-moderate:1";
/// The namespace of the stored room (Chorus's own).
const STORED: &str = "urn:chorus:muc:0";

/// A long-lived association with the room (XEP-0045 §5.2), in rank order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Affiliation {
    Outcast,
    None,
    Member,
    Admin,
    Owner,
}

impl Affiliation {
    pub fn as_str(self) -> &'static str {
        match self {
            Affiliation::Outcast => "outcast",
            Affiliation::None => "none",
            Affiliation::Member => "member",
            Affiliation::Admin => "admin",
            Affiliation::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Affiliation> {
        Some(match s {
            "outcast" => Affiliation::Outcast,
            "none" => Affiliation::None,
            "member" => Affiliation::Member,
            "admin" => Affiliation::Admin,
            "owner" => Affiliation::Owner,
            _ => return None,
        })
    }
}

/// A temporary position in the room while one is in it (XEP-0045 §5.1),
/// in rank order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    None,
    Visitor,
    Participant,
    Moderator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::None => "none",
            Role::Visitor => "visitor",
            Role::Participant => "participant",
            Role::Moderator => "moderator",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "none" => Role::None,
            "visitor" => Role::Visitor,
            "participant" => Role::Participant,
            "moderator" => Role::Moderator,
            _ => return None,
        })
    }
}

/// Who may send private messages (`muc#roomconfig_allowpm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PmPolicy {
    Anyone,
    Participants,
    Moderators,
    Nobody,
}

impl PmPolicy {
    fn as_str(self) -> &'static str {
        match self {
            PmPolicy::Anyone => "anyone",
            PmPolicy::Participants => "participants",
            PmPolicy::Moderators => "moderators",
            PmPolicy::Nobody => "none",
        }
    }

    fn parse(s: &str) -> Option<PmPolicy> {
        Some(match s {
            "anyone" => PmPolicy::Anyone,
            "participants" => PmPolicy::Participants,
            "moderators" => PmPolicy::Moderators,
            "none" => PmPolicy::Nobody,
            _ => return None,
        })
    }

    /// Whether an occupant of `role` may send one.
    pub fn allows(self, role: Role) -> bool {
        match self {
            PmPolicy::Anyone => true,
            PmPolicy::Participants => role >= Role::Participant,
            PmPolicy::Moderators => role == Role::Moderator,
            PmPolicy::Nobody => false,
        }
    }
}

/// The room configuration (XEP-0045 §10.2, §15.5.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomConfig {
    pub name: String,
    pub description: String,
    pub lang: String,
    pub persistent: bool,
    pub public: bool,
    pub members_only: bool,
    pub moderated: bool,
    /// The password, when the room is password-protected.
    pub password: Option<String>,
    /// Real JIDs are shown to every occupant (non-anonymous), not only to
    /// moderators (semi-anonymous).
    pub whois_anyone: bool,
    pub max_users: u32,
    /// Messages go to the room's archive.
    pub logging: bool,
    /// Participants, not only moderators, may change the subject.
    pub change_subject: bool,
    /// Participants, not only admins and owners, may invite.
    pub allow_invites: bool,
    pub allow_pm: PmPolicy,
    /// Roles whose presence is broadcast.
    pub presence_broadcast: [bool; 3],
    /// Roles that may read the member list.
    pub get_member_list: [bool; 3],
}

/// Index of a role with presence in the per-role settings.
fn role_index(role: Role) -> Option<usize> {
    match role {
        Role::Visitor => Some(0),
        Role::Participant => Some(1),
        Role::Moderator => Some(2),
        Role::None => None,
    }
}

const ROLES: [Role; 3] = [Role::Visitor, Role::Participant, Role::Moderator];

impl RoomConfig {
    /// What a new room starts with: temporary, public, open, unmoderated
    /// and semi-anonymous (XEP-0045 §10.1.2's instant room).
    pub fn new(max_users: u32) -> RoomConfig {
        RoomConfig {
            name: String::new(),
            description: String::new(),
            lang: String::new(),
            persistent: false,
            public: true,
            members_only: false,
            moderated: false,
            password: None,
            whois_anyone: false,
            max_users,
            logging: false,
            change_subject: true,
            allow_invites: false,
            allow_pm: PmPolicy::Anyone,
            presence_broadcast: [true; 3],
            get_member_list: [true; 3],
        }
    }

    pub fn broadcasts(&self, role: Role) -> bool {
        role_index(role).is_some_and(|i| self.presence_broadcast[i])
    }

    pub fn member_list_for(&self, role: Role) -> bool {
        role_index(role).is_some_and(|i| self.get_member_list[i])
    }

    /// The form an owner fills in (§10.2), with the room's current values
    /// and its admin and owner lists.
    pub fn to_form(&self, kind: &str, admins: &[String], owners: &[String], limit: u32) -> Element {
        let mut x = form_head(kind, ROOMCONFIG);
        let form = kind == "form";
        let mut add = |var: &str, typ: &str, label: &str, values: Vec<String>, options: &[&str]| {
            let mut f = Element::new("field", ns::DATA_FORMS).with_attr("var", var);
            if form {
                f.set_attr("type", typ);
                f.set_attr("label", label);
                for o in options {
                    f.push(
                        Element::new("option", ns::DATA_FORMS)
                            .with_child(Element::new("value", ns::DATA_FORMS).with_text(*o)),
                    );
                }
            }
            for v in values {
                f.push(Element::new("value", ns::DATA_FORMS).with_text(v));
            }
            x.push(f);
        };
        let b = |v: bool| vec![if v { "1" } else { "0" }.to_owned()];
        let roles = |set: &[bool; 3]| -> Vec<String> {
            ROLES
                .iter()
                .zip(set)
                .filter(|(_, on)| **on)
                .map(|(r, _)| r.as_str().to_owned())
                .collect()
        };
        add(
            "muc#roomconfig_roomname",
            "text-single",
            "Name",
            vec![self.name.clone()],
            &[],
        );
        add(
            "muc#roomconfig_roomdesc",
            "text-single",
            "Description",
            vec![self.description.clone()],
            &[],
        );
        add(
            "muc#roomconfig_lang",
            "text-single",
            "Language",
            vec![self.lang.clone()],
            &[],
        );
        add(
            "muc#roomconfig_persistentroom",
            "boolean",
            "Keep the room when it is empty",
            b(self.persistent),
            &[],
        );
        add(
            "muc#roomconfig_publicroom",
            "boolean",
            "List the room publicly",
            b(self.public),
            &[],
        );
        add(
            "muc#roomconfig_membersonly",
            "boolean",
            "Members only",
            b(self.members_only),
            &[],
        );
        add(
            "muc#roomconfig_moderatedroom",
            "boolean",
            "Moderated: only those with voice may speak",
            b(self.moderated),
            &[],
        );
        add(
            "muc#roomconfig_passwordprotectedroom",
            "boolean",
            "Password-protected",
            b(self.password.is_some()),
            &[],
        );
        add(
            "muc#roomconfig_roomsecret",
            "text-private",
            "Password",
            vec![self.password.clone().unwrap_or_default()],
            &[],
        );
        add(
            "muc#roomconfig_whois",
            "list-single",
            "Who may see real JIDs",
            vec![if self.whois_anyone {
                "anyone"
            } else {
                "moderators"
            }
            .to_owned()],
            &["moderators", "anyone"],
        );
        // Free text rather than XEP-0045's list: any number up to the
        // server's limit is taken.
        add(
            "muc#roomconfig_maxusers",
            "text-single",
            &format!("Most occupants (at most {limit})"),
            vec![self.max_users.to_string()],
            &[],
        );
        add(
            "muc#roomconfig_enablelogging",
            "boolean",
            "Archive messages",
            b(self.logging),
            &[],
        );
        add(
            "muc#roomconfig_changesubject",
            "boolean",
            "Participants may change the subject",
            b(self.change_subject),
            &[],
        );
        add(
            "muc#roomconfig_allowinvites",
            "boolean",
            "Participants may invite",
            b(self.allow_invites),
            &[],
        );
        add(
            "muc#roomconfig_allowpm",
            "list-single",
            "Who may send private messages",
            vec![self.allow_pm.as_str().to_owned()],
            &["anyone", "participants", "moderators", "none"],
        );
        add(
            "muc#roomconfig_presencebroadcast",
            "list-multi",
            "Roles whose presence is broadcast",
            roles(&self.presence_broadcast),
            &["moderator", "participant", "visitor"],
        );
        add(
            "muc#roomconfig_getmemberlist",
            "list-multi",
            "Roles that may see the member list",
            roles(&self.get_member_list),
            &["moderator", "participant", "visitor"],
        );
        add(
            "muc#roomconfig_roomadmins",
            "jid-multi",
            "Admins",
            admins.to_vec(),
            &[],
        );
        add(
            "muc#roomconfig_roomowners",
            "jid-multi",
            "Owners",
            owners.to_vec(),
            &[],
        );
        x
    }

    /// The configuration a submitted form asks for, and the admin and
    /// owner lists when it names them. A field Chorus does not know is
    /// ignored (XEP-0004 §3.2 lets a form carry more than was asked); a
    /// value it cannot take is `not-acceptable`.
    pub fn apply(&self, x: &Element, limit: u32) -> Result<Applied, ()> {
        let mut c = self.clone();
        let mut admins = None;
        let mut owners = None;
        let mut secret: Option<String> = None;
        let mut protected = self.password.is_some();
        for (var, values) in form_fields(x) {
            let one = values.first().map(String::as_str).unwrap_or_default();
            let flag = || match one {
                "1" | "true" => Ok(true),
                "0" | "false" | "" => Ok(false),
                _ => Err(()),
            };
            let roles = || -> Result<[bool; 3], ()> {
                let mut set = [false; 3];
                for v in &values {
                    let role = Role::parse(v).ok_or(())?;
                    set[role_index(role).ok_or(())?] = true;
                }
                Ok(set)
            };
            match var.as_str() {
                "muc#roomconfig_roomname" => c.name = one.to_owned(),
                "muc#roomconfig_roomdesc" => c.description = one.to_owned(),
                "muc#roomconfig_lang" => c.lang = one.to_owned(),
                "muc#roomconfig_persistentroom" => c.persistent = flag()?,
                "muc#roomconfig_publicroom" => c.public = flag()?,
                "muc#roomconfig_membersonly" => c.members_only = flag()?,
                "muc#roomconfig_moderatedroom" => c.moderated = flag()?,
                "muc#roomconfig_passwordprotectedroom" => protected = flag()?,
                "muc#roomconfig_roomsecret" => secret = Some(one.to_owned()),
                "muc#roomconfig_whois" => {
                    c.whois_anyone = match one {
                        "anyone" => true,
                        "moderators" | "" => false,
                        _ => return Err(()),
                    }
                }
                "muc#roomconfig_maxusers" => {
                    c.max_users = match one {
                        "" | "none" => limit,
                        n => n.parse::<u32>().map_err(|_| ())?.clamp(1, limit),
                    }
                }
                "muc#roomconfig_enablelogging" => c.logging = flag()?,
                "muc#roomconfig_changesubject" => c.change_subject = flag()?,
                "muc#roomconfig_allowinvites" => c.allow_invites = flag()?,
                "muc#roomconfig_allowpm" => c.allow_pm = PmPolicy::parse(one).ok_or(())?,
                "muc#roomconfig_presencebroadcast" => c.presence_broadcast = roles()?,
                "muc#roomconfig_getmemberlist" => c.get_member_list = roles()?,
                "muc#roomconfig_roomadmins" => admins = Some(jid_list(&values)?),
                "muc#roomconfig_roomowners" => owners = Some(jid_list(&values)?),
                _ => {}
            }
        }
        c.password = match (protected, secret) {
            (false, _) => None,
            (true, Some(s)) if !s.is_empty() => Some(s),
            (true, Some(_)) => return Err(()),
            (true, None) => self.password.clone().map(Some).ok_or(())?,
        };
        Ok(Applied {
            config: c,
            admins,
            owners,
        })
    }
}

/// What a submitted configuration form asks for.
pub struct Applied {
    pub config: RoomConfig,
    pub admins: Option<Vec<BareJid>>,
    pub owners: Option<Vec<BareJid>>,
}

fn jid_list(values: &[String]) -> Result<Vec<BareJid>, ()> {
    values
        .iter()
        .filter(|v| !v.is_empty())
        .map(|v| v.parse::<BareJid>().map_err(|_| ()))
        .collect()
}

/// A long-lived affiliation, with what was said when it was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AffiliationEntry {
    pub affiliation: Affiliation,
    pub reason: String,
}

/// One resource of an occupant: the same bare JID may be in the room from
/// several clients under one nick.
#[derive(Clone, Debug)]
pub struct Session {
    pub full: FullJid,
    /// The client's last presence to the room, its `<x/>` removed: what is
    /// broadcast for it.
    pub presence: Element,
}

/// Someone in the room.
#[derive(Clone, Debug)]
pub struct Occupant {
    pub nick: String,
    pub bare: BareJid,
    pub sessions: Vec<Session>,
    pub role: Role,
    /// Its XEP-0421 occupant id, worked out once on entering: every
    /// presence and message of the occupant carries it.
    pub id: String,
    /// The message bucket (`muc.message_burst`).
    pub bucket: crate::bucket::Bucket,
}

/// A message kept to replay to those who join (§7.2.15).
#[derive(Clone, Debug)]
pub struct HistoryEntry {
    /// As broadcast, without `to`.
    pub message: Element,
    pub at: SystemTime,
    /// The serialized size, what `maxchars` counts.
    pub chars: usize,
}

/// The room's state: what its actor changes.
pub struct RoomState {
    pub config: RoomConfig,
    pub affiliations: BTreeMap<BareJid, AffiliationEntry>,
    pub occupants: Vec<Occupant>,
    /// Text and the nick (or room) that set it.
    pub subject: Option<(String, String)>,
    pub history: VecDeque<HistoryEntry>,
    /// Created and not yet configured: nobody but an owner may enter
    /// (§10.1.1).
    pub locked: bool,
    /// Gone: destroyed, or a temporary room its last occupant left.
    pub destroyed: bool,
    /// The salt of occupant ids (XEP-0421): stable for the room's life.
    pub salt: String,
    /// Voice requests (§8.6) forwarded and not yet answered, by nick.
    pub voice_requests: Vec<String>,
    /// Nicks registered with the room (§7.10), by the user who holds it.
    pub nicks: BTreeMap<BareJid, String>,
    /// IQs relayed between occupants and not yet answered, oldest first.
    pub relayed: VecDeque<Relayed>,
}

/// An IQ relayed to an occupant: the opaque id it went out with, and
/// whose it was.
#[derive(Clone, Debug)]
pub struct Relayed {
    pub token: String,
    pub requester: FullJid,
    pub id: String,
    /// The session it was relayed to: only its answer counts.
    pub target: FullJid,
}

impl RoomState {
    pub fn new(config: RoomConfig) -> RoomState {
        RoomState {
            config,
            affiliations: BTreeMap::new(),
            occupants: Vec::new(),
            subject: None,
            history: VecDeque::new(),
            locked: false,
            destroyed: false,
            salt: random_token(),
            voice_requests: Vec::new(),
            nicks: BTreeMap::new(),
            relayed: VecDeque::new(),
        }
    }

    /// Who registered `nick`, if anyone.
    pub fn reserved_by(&self, nick: &str) -> Option<&BareJid> {
        self.nicks.iter().find(|(_, n)| *n == nick).map(|(j, _)| j)
    }

    pub fn affiliation(&self, jid: &BareJid) -> Affiliation {
        self.affiliations
            .get(jid)
            .map_or(Affiliation::None, |e| e.affiliation)
    }

    pub fn set_affiliation(&mut self, jid: BareJid, affiliation: Affiliation, reason: String) {
        // A registered nick goes with membership (§7.10).
        if affiliation < Affiliation::Member {
            self.nicks.remove(&jid);
        }
        if affiliation == Affiliation::None {
            self.affiliations.remove(&jid);
        } else {
            self.affiliations.insert(
                jid,
                AffiliationEntry {
                    affiliation,
                    reason,
                },
            );
        }
    }

    pub fn with_affiliation(&self, affiliation: Affiliation) -> Vec<BareJid> {
        self.affiliations
            .iter()
            .filter(|(_, e)| e.affiliation == affiliation)
            .map(|(j, _)| j.clone())
            .collect()
    }

    /// The role an occupant of `affiliation` gets when entering (§5.1.2).
    pub fn default_role(&self, affiliation: Affiliation) -> Role {
        match affiliation {
            Affiliation::Owner | Affiliation::Admin => Role::Moderator,
            Affiliation::Member => Role::Participant,
            Affiliation::None if self.config.moderated => Role::Visitor,
            Affiliation::None => Role::Participant,
            Affiliation::Outcast => Role::None,
        }
    }

    pub fn by_nick(&self, nick: &str) -> Option<usize> {
        self.occupants.iter().position(|o| o.nick == nick)
    }

    pub fn by_full(&self, full: &FullJid) -> Option<usize> {
        self.occupants
            .iter()
            .position(|o| o.sessions.iter().any(|s| s.full == *full))
    }

    pub fn by_bare(&self, bare: &BareJid) -> Option<usize> {
        self.occupants.iter().position(|o| o.bare == *bare)
    }

    /// The XEP-0421 occupant id of `bare` in this room: the same from every
    /// resource and across visits, and unlinkable across rooms.
    pub fn occupant_id(&self, room: &BareJid, bare: &BareJid) -> String {
        let mut h = sha2::Sha256::new();
        h.update(self.salt.as_bytes());
        h.update([0]);
        h.update(room.as_str().as_bytes());
        h.update([0]);
        h.update(bare.as_str().as_bytes());
        base64::engine::general_purpose::STANDARD.encode(&h.finalize()[..18])
    }

    /// The persistent part, as stored.
    pub fn to_stored(&self, max_users: u32) -> String {
        let admins: Vec<String> = Vec::new();
        let mut root = Element::new("room", STORED)
            .with_child(
                Element::new("config", STORED)
                    .with_child(self.config.to_form("submit", &admins, &admins, max_users)),
            )
            .with_child(Element::new("salt", STORED).with_text(self.salt.as_str()));
        for (jid, e) in &self.affiliations {
            root.push(
                Element::new("affiliation", STORED)
                    .with_attr("jid", jid.as_str())
                    .with_attr("affiliation", e.affiliation.as_str())
                    .with_attr("reason", e.reason.as_str()),
            );
        }
        for (jid, nick) in &self.nicks {
            root.push(
                Element::new("nick", STORED)
                    .with_attr("jid", jid.as_str())
                    .with_attr("nick", nick.as_str()),
            );
        }
        if let Some((text, by)) = &self.subject {
            root.push(
                Element::new("subject", STORED)
                    .with_attr("by", by.as_str())
                    .with_text(text.as_str()),
            );
        }
        root.to_xml()
    }

    /// A stored room, or None when what is stored cannot be read.
    pub fn from_stored(stored: &str, max_users: u32) -> Option<RoomState> {
        let root = Element::from_xml(stored).ok()?;
        let form = root
            .get_child("config", STORED)
            .and_then(|c| c.get_child("x", ns::DATA_FORMS))?;
        let config = RoomConfig::new(max_users)
            .apply(form, max_users)
            .ok()?
            .config;
        let mut state = RoomState::new(config);
        if let Some(salt) = root.get_child("salt", STORED) {
            state.salt = salt.text();
        }
        for a in root.children().filter(|c| c.is("affiliation", STORED)) {
            let (Some(jid), Some(aff)) = (
                a.attr("jid").and_then(|j| j.parse::<BareJid>().ok()),
                a.attr("affiliation").and_then(Affiliation::parse),
            ) else {
                continue;
            };
            let reason = a.attr("reason").unwrap_or_default().to_owned();
            state.set_affiliation(jid, aff, reason);
        }
        for n in root.children().filter(|c| c.is("nick", STORED)) {
            if let (Some(jid), Some(nick)) = (
                n.attr("jid").and_then(|j| j.parse::<BareJid>().ok()),
                n.attr("nick"),
            ) {
                state.nicks.insert(jid, nick.to_owned());
            }
        }
        if let Some(s) = root.get_child("subject", STORED) {
            state.subject = Some((s.text(), s.attr("by").unwrap_or_default().to_owned()));
        }
        Some(state)
    }
}

/// A random token (URL-safe base64 of 12 bytes), for salts and ids; a
/// clock-derived one if the system has no randomness to give.
pub fn random_token() -> String {
    let mut b = [0u8; 12];
    if getrandom::fill(&mut b).is_err() {
        let t = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        b.copy_from_slice(&t.to_le_bytes()[..12]);
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_room_round_trips_through_its_stored_form() {
        let mut config = RoomConfig::new(50);
        config.name = "Tea & <biscuits>".into();
        config.persistent = true;
        config.members_only = true;
        config.password = Some("s3cret".into());
        config.whois_anyone = true;
        config.allow_pm = PmPolicy::Moderators;
        config.presence_broadcast = [false, true, true];
        let mut state = RoomState::new(config.clone());
        state.set_affiliation(
            "owner@example.org".parse().unwrap(),
            Affiliation::Owner,
            String::new(),
        );
        state.set_affiliation(
            "troll@elsewhere.example".parse().unwrap(),
            Affiliation::Outcast,
            "spam".into(),
        );
        state.subject = Some(("Today".into(), "owner".into()));
        state
            .nicks
            .insert("owner@example.org".parse().unwrap(), "Boss".into());
        let back = RoomState::from_stored(&state.to_stored(50), 50).unwrap();
        assert_eq!(back.nicks, state.nicks);
        assert_eq!(back.config, config);
        assert_eq!(back.affiliations, state.affiliations);
        assert_eq!(back.subject, state.subject);
        assert_eq!(back.salt, state.salt);
    }

    #[test]
    fn a_form_without_a_password_for_a_protected_room_is_refused() {
        let mut x = form_head("submit", ROOMCONFIG);
        x.push(
            Element::new("field", ns::DATA_FORMS)
                .with_attr("var", "muc#roomconfig_passwordprotectedroom")
                .with_child(Element::new("value", ns::DATA_FORMS).with_text("1")),
        );
        assert!(RoomConfig::new(10).apply(&x, 10).is_err());
    }

    #[test]
    fn occupant_ids_are_stable_per_user_and_differ_across_rooms() {
        let state = RoomState::new(RoomConfig::new(10));
        let room: BareJid = "a@conference.example".parse().unwrap();
        let other: BareJid = "b@conference.example".parse().unwrap();
        let user: BareJid = "u@example".parse().unwrap();
        assert_eq!(
            state.occupant_id(&room, &user),
            state.occupant_id(&room, &user)
        );
        assert_ne!(
            state.occupant_id(&room, &user),
            state.occupant_id(&other, &user)
        );
    }
}
