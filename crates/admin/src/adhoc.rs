//! XEP-0050: Ad-Hoc Commands (version 1.3.0): the command list in service
//! discovery, command sessions and their stages, and the protocol's
//! errors. The commands themselves are data ([`AdhocCommand`]): the
//! XEP-0050 ping here, and the XEP-0133 service administration commands in
//! `xep0133.rs`, which run the same handlers as `chorusctl`.
//!
//! - Discovery (§2.1-§2.2): the server advertises
//!   `http://jabber.org/protocol/commands`; disco#items on that node lists
//!   the commands the requester may run (an admin sees the XEP-0133 ones,
//!   everybody the ping); disco#info on a command node answers its
//!   identity, or `forbidden` to one who may not run it.
//! - Execution (§2.4): a command is a sequence of stages, each a data form;
//!   the answer to each stage carries the session id, the status
//!   (`executing`, `completed`, `canceled`) and, while executing, the
//!   actions allowed (`<actions execute='...'>`). A command without a form
//!   completes at once.
//! - Sessions are kept per requesting full JID and session id, at most
//!   [`MAX_SESSIONS`] live ones per requester (a new one evicts the oldest),
//!   for [`SESSION_TTL`]; they go with the requester's session (the
//!   `session_closed` hook), and those of a requester gone without it (a
//!   session that closed while its command ran) with the sweep that runs,
//!   over the whole table at once, when it has grown to twice what the
//!   last sweep left ([`REQUESTERS_KEPT`] at least): a constant cost per
//!   session opened. An ended one (completed, canceled, evicted or
//!   expired) is remembered for as long, so that a late request is told
//!   `session-expired` rather than `bad-sessionid`, in one table for all
//!   requesters holding the last [`MAX_ENDED`]: past it the oldest is
//!   forgotten (its late request is told `bad-sessionid`).
//! - Errors (§4.4): `bad-request` with `<malformed-action/>`,
//!   `<bad-action/>`, `<bad-payload/>` or `<bad-sessionid/>`; `not-allowed`
//!   with `<session-expired/>`; `forbidden` for a command the requester may
//!   not run; `item-not-found` for an unknown node.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use chorus_jid::{BareJid, FullJid};
use chorus_modules::{
    HookSet, IqCtx, IqReply, IqSpec, Module, ModuleInfo, SessionCtx, Support, Xep,
};
use chorus_proto::{ns, StanzaError, StanzaErrorCondition};
use chorus_xml::Element;
use futures_util::future::BoxFuture;

use crate::AdminContext;

/// How long a command session lives without a request.
pub const SESSION_TTL: Duration = Duration::from_secs(600);
/// Live sessions one requester may hold; a new one evicts the oldest.
pub const MAX_SESSIONS: usize = 5;
/// Ended sessions remembered, all requesters together, to answer
/// `session-expired`.
pub const MAX_ENDED: usize = 4096;
/// Requesters with live sessions past which the next new one sweeps the
/// table (see the module docs).
pub const REQUESTERS_KEPT: usize = 1024;

/// Where the server puts its admin context once built. The module list is
/// built before the context (the context names the modules' MUC rooms and
/// the router they are installed in), so the ad-hoc module starts with an
/// empty slot: until the server fills it, admin commands answer
/// `service-unavailable`. Weak, because the context holds the router,
/// which holds the modules: a strong reference would be a cycle that
/// outlives the server.
pub type AdminSlot = Arc<OnceLock<Weak<AdminContext>>>;

/// A submitted data form's fields by var, FORM_TYPE left out.
pub type Fields = BTreeMap<String, Vec<String>>;

/// An action of XEP-0050 §4.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Execute,
    Cancel,
    Prev,
    Next,
    Complete,
}

impl Action {
    fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "execute" => Action::Execute,
            "cancel" => Action::Cancel,
            "prev" => Action::Prev,
            "next" => Action::Next,
            "complete" => Action::Complete,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Action::Execute => "execute",
            Action::Cancel => "cancel",
            Action::Prev => "prev",
            Action::Next => "next",
            Action::Complete => "complete",
        }
    }
}

/// The severity of a `<note/>` (§4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoteType {
    Info,
    Warn,
    Error,
}

impl NoteType {
    fn as_str(self) -> &'static str {
        match self {
            NoteType::Info => "info",
            NoteType::Warn => "warn",
            NoteType::Error => "error",
        }
    }
}

/// A command that ran to its end.
pub struct Done {
    /// A result form, if the command has something to show.
    pub payload: Option<Element>,
    pub notes: Vec<(NoteType, String)>,
    /// What it acted on, for the log line every use leaves.
    pub target: String,
}

/// Why a stage or a command refused: the stanza error it answers with.
#[derive(Debug)]
pub enum Failure {
    /// The submitted form is unusable (a missing field, an invalid JID,
    /// passwords that differ): `bad-request` with `<bad-payload/>` and a
    /// text saying what; the session stays, so the form can be sent again.
    BadPayload(String),
    /// Any other stanza error, with a text.
    Error(StanzaErrorCondition, String),
}

/// What one requester may do, as the command sees it.
pub struct Env<'a> {
    /// The server's admin context; `None` until the server built it.
    pub admin: Option<&'a AdminContext>,
    pub requester: &'a FullJid,
    /// The served domain the command was sent to.
    pub domain: &'a str,
}

impl Env<'_> {
    /// The admin context, or `service-unavailable` while the server starts.
    pub fn ctx(&self) -> Result<&AdminContext, Failure> {
        self.admin.ok_or_else(|| {
            Failure::Error(
                StanzaErrorCondition::ServiceUnavailable,
                "the server is still starting".into(),
            )
        })
    }
}

/// One ad-hoc command: its node, its stages and what it does.
pub trait AdhocCommand: Send + Sync {
    /// The disco node that names it (§2.2).
    fn node(&self) -> &'static str;
    /// Its label in the command list.
    fn name(&self) -> &'static str;
    /// Only `admin.admins` may list and run it.
    fn admin_only(&self) -> bool;
    /// How many forms it asks for before it runs; 0 runs it at once.
    fn stages(&self) -> usize;
    /// Whether `complete` may end it at `stage` (always at the last one).
    fn completes_at(&self, stage: usize) -> bool {
        stage + 1 == self.stages()
    }
    /// The form of `stage`, given what earlier stages submitted and, when
    /// the requester came back to it, what it held.
    fn form<'a>(
        &'a self,
        env: &'a Env<'a>,
        stage: usize,
        earlier: &'a [Fields],
        prefill: Option<&'a Fields>,
    ) -> BoxFuture<'a, Result<Element, Failure>>;
    /// Checks what `stage` submitted before the command goes on.
    fn check(&self, env: &Env<'_>, stage: usize, fields: &Fields) -> Result<(), Failure>;
    /// Runs the command with every stage's submission.
    fn run<'a>(
        &'a self,
        env: &'a Env<'a>,
        submitted: &'a [Fields],
    ) -> BoxFuture<'a, Result<Done, Failure>>;
}

/// XEP-0050's own example, as Prosody's mod_adhoc has it: `ping` answers
/// "Pong", for any local user; a client can tell commands work at all.
pub struct PingCommand;

impl AdhocCommand for PingCommand {
    fn node(&self) -> &'static str {
        "ping"
    }
    fn name(&self) -> &'static str {
        "Ping"
    }
    fn admin_only(&self) -> bool {
        false
    }
    fn stages(&self) -> usize {
        0
    }
    fn form<'a>(
        &'a self,
        _: &'a Env<'a>,
        _: usize,
        _: &'a [Fields],
        _: Option<&'a Fields>,
    ) -> BoxFuture<'a, Result<Element, Failure>> {
        Box::pin(async {
            Err(Failure::Error(
                StanzaErrorCondition::InternalServerError,
                "ping has no form".into(),
            ))
        })
    }
    fn check(&self, _: &Env<'_>, _: usize, _: &Fields) -> Result<(), Failure> {
        Ok(())
    }
    fn run<'a>(&'a self, _: &'a Env<'a>, _: &'a [Fields]) -> BoxFuture<'a, Result<Done, Failure>> {
        Box::pin(async {
            Ok(Done {
                payload: None,
                notes: vec![(NoteType::Info, "Pong".into())],
                target: String::new(),
            })
        })
    }
}

/// One command session (§4.1 `sessionid`).
struct CommandSession {
    id: String,
    node: &'static str,
    /// The stage whose form the requester was last sent.
    stage: usize,
    /// What each stage submitted so far (index = stage).
    submitted: Vec<Fields>,
    touched: Instant,
}

/// Ended sessions, for `session-expired`: bounded in number and in time.
#[derive(Default)]
struct Ended {
    /// By (requester, session id): the command's node and when it ended.
    by_id: HashMap<(String, String), (&'static str, Instant)>,
    /// The same keys, oldest first.
    order: VecDeque<(String, String)>,
}

impl Ended {
    /// Remembers a session as ended, forgetting first what is too old and,
    /// past [`MAX_ENDED`], the oldest: each one is forgotten once, so the
    /// work per call stays constant.
    fn insert(&mut self, requester: &str, id: &str, node: &'static str) {
        while let Some(oldest) = self.order.front() {
            let stale = self
                .by_id
                .get(oldest)
                .is_none_or(|(_, at)| at.elapsed() > SESSION_TTL);
            if !stale && self.order.len() < MAX_ENDED {
                break;
            }
            if let Some(key) = self.order.pop_front() {
                self.by_id.remove(&key);
            }
        }
        let key = (requester.to_owned(), id.to_owned());
        if self
            .by_id
            .insert(key.clone(), (node, Instant::now()))
            .is_none()
        {
            self.order.push_back(key);
        }
    }

    /// The node of the requester's session `id`, if it ended lately.
    fn node_of(&self, requester: &str, id: &str) -> Option<&'static str> {
        self.by_id
            .get(&(requester.to_owned(), id.to_owned()))
            .filter(|(_, at)| at.elapsed() <= SESSION_TTL)
            .map(|(node, _)| *node)
    }
}

/// The XEP-0050 module: discovery of the commands, their sessions and
/// their execution.
pub struct AdHoc {
    commands: Vec<Box<dyn AdhocCommand>>,
    /// `admin.admins`, normalized.
    admins: HashSet<BareJid>,
    admin: AdminSlot,
    /// Live sessions by requesting full JID.
    sessions: dashmap::DashMap<String, Vec<CommandSession>>,
    /// The number of requesters at which the next new session sweeps.
    sweep_at: AtomicUsize,
    /// Sessions that ended lately.
    ended: Mutex<Ended>,
    next_id: AtomicU64,
}

static INFO: ModuleInfo = ModuleInfo {
    name: "adhoc",
    file: file!(),
    xeps: &[Xep {
        number: 50,
        name: "Ad-Hoc Commands",
        version: "1.3.0",
        support: Support::Complete,
        note: "Commands on the server for its local users: ping for everyone, XEP-0133 for admin.admins. Forms only (no jabber:x:oob payloads); English only.",
    }],
    iqs: &[IqSpec::local("command", ns::COMMANDS)],
    features: &[ns::COMMANDS],
    hooks: HookSet::SESSION_CLOSED,
    ..ModuleInfo::EMPTY
};

impl AdHoc {
    /// The module with `commands`, `admins` (bare JIDs as configured;
    /// unparsable ones are skipped, config validation having refused them
    /// already) and the slot the server fills.
    pub fn new(commands: Vec<Box<dyn AdhocCommand>>, admins: &[String], admin: AdminSlot) -> AdHoc {
        AdHoc {
            commands,
            admins: admins.iter().filter_map(|a| a.parse().ok()).collect(),
            admin,
            sessions: dashmap::DashMap::new(),
            sweep_at: AtomicUsize::new(REQUESTERS_KEPT),
            ended: Mutex::new(Ended::default()),
            next_id: AtomicU64::new(1),
        }
    }

    fn is_admin(&self, who: &FullJid) -> bool {
        self.admins.contains(&who.bare())
    }

    fn may_run(&self, who: Option<&FullJid>, command: &dyn AdhocCommand) -> bool {
        match who {
            Some(w) => !command.admin_only() || self.is_admin(w),
            None => false,
        }
    }

    fn command(&self, node: &str) -> Option<&dyn AdhocCommand> {
        self.commands
            .iter()
            .find(|c| c.node() == node)
            .map(|c| c.as_ref())
    }

    fn ended(&self) -> MutexGuard<'_, Ended> {
        self.ended.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets, over the whole table, the sessions past their time (those
    /// of requesters gone without `session_closed`), once the table has
    /// `sweep_at` requesters; the next sweep waits until it has twice what
    /// this one left. Never called with a reference into the table held.
    fn make_room(&self) {
        if self.sessions.len() < self.sweep_at.load(Ordering::Relaxed) {
            return;
        }
        self.sessions.retain(|_, list| {
            list.retain(|s| s.touched.elapsed() <= SESSION_TTL);
            !list.is_empty()
        });
        let left = self.sessions.len();
        self.sweep_at
            .store((left * 2).max(REQUESTERS_KEPT), Ordering::Relaxed);
    }

    /// Ends the requester's sessions past their time: remembered as ended.
    fn expire(&self, requester: &str, list: &mut Vec<CommandSession>) {
        if list.iter().all(|s| s.touched.elapsed() <= SESSION_TTL) {
            return;
        }
        let mut ended = self.ended();
        list.retain(|s| {
            let live = s.touched.elapsed() <= SESSION_TTL;
            if !live {
                ended.insert(requester, &s.id, s.node);
            }
            live
        });
    }

    fn new_session_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        format!("{t}-{n}")
    }

    /// Executes one `<command/>` from a local session.
    async fn execute(&self, ctx: &IqCtx<'_>, iq: &Element) -> IqReply {
        if iq.attr("type") != Some("set") {
            return IqReply::Error(StanzaErrorCondition::BadRequest);
        }
        let Some(cmd) = iq.get_child("command", ns::COMMANDS) else {
            return IqReply::Error(StanzaErrorCondition::BadRequest);
        };
        // Commands are the server's, not an account's.
        if ctx.account.is_some() {
            return IqReply::Error(StanzaErrorCondition::ServiceUnavailable);
        }
        let Ok(requester) = ctx.me() else {
            return IqReply::Error(StanzaErrorCondition::Forbidden);
        };
        let Some(node) = cmd.attr("node") else {
            return bad_request(None, "the command has no node");
        };
        let action = match cmd.attr("action") {
            None => Action::Execute,
            Some(a) => match Action::parse(a) {
                Some(a) => a,
                None => return bad_request(Some("malformed-action"), "unknown action"),
            },
        };
        let Some(command) = self.command(node) else {
            return IqReply::failed(
                StanzaError::new(StanzaErrorCondition::ItemNotFound).with_text("no such command"),
            );
        };
        if !self.may_run(Some(requester), command) {
            tracing::warn!(requester = %requester, node, "ad-hoc command refused: not an admin");
            return IqReply::Error(StanzaErrorCondition::Forbidden);
        }
        let admin = self.admin.get().and_then(Weak::upgrade);
        let env = Env {
            admin: admin.as_deref(),
            requester,
            domain: ctx.domain,
        };
        match cmd.attr("sessionid") {
            None => self.start(&env, command, action).await,
            Some(id) => self.resume(&env, command, id, action, cmd).await,
        }
    }

    /// A first request: runs a command without forms, or opens a session
    /// at its first stage.
    async fn start(&self, env: &Env<'_>, command: &dyn AdhocCommand, action: Action) -> IqReply {
        if action != Action::Execute {
            return bad_request(Some("bad-action"), "a command starts with execute");
        }
        let id = self.new_session_id();
        if command.stages() == 0 {
            return self.finish(env, command, &id, &[]).await;
        }
        let form = match command.form(env, 0, &[], None).await {
            Ok(f) => f,
            Err(f) => return failure(f),
        };
        let requester = env.requester.to_string();
        self.make_room();
        let mut list = self.sessions.entry(requester.clone()).or_default();
        self.expire(&requester, &mut list);
        if list.len() >= MAX_SESSIONS {
            // The oldest live one goes: a client that forgot its sessions
            // can still start new ones.
            if let Some(oldest) = (0..list.len()).min_by_key(|&i| list[i].touched) {
                let old = list.remove(oldest);
                self.ended().insert(&requester, &old.id, old.node);
            }
        }
        list.push(CommandSession {
            id: id.clone(),
            node: command.node(),
            stage: 0,
            submitted: Vec::new(),
            touched: Instant::now(),
        });
        drop(list);
        IqReply::Result(Some(executing(command, &id, 0, form)))
    }

    /// A request in a session.
    async fn resume(
        &self,
        env: &Env<'_>,
        command: &dyn AdhocCommand,
        id: &str,
        action: Action,
        cmd: &Element,
    ) -> IqReply {
        let requester = env.requester.to_string();
        // The session's state is copied out, so that no lock is held while
        // the command awaits storage.
        let live = match self.sessions.get_mut(&requester) {
            None => None,
            Some(mut list) => {
                self.expire(&requester, &mut list);
                match list.iter_mut().find(|s| s.id == id) {
                    None => None,
                    Some(s) if s.node != command.node() => {
                        return bad_request(
                            Some("bad-sessionid"),
                            "the session is another command's",
                        );
                    }
                    Some(s) => {
                        s.touched = Instant::now();
                        Some((s.stage, s.submitted.clone()))
                    }
                }
            }
        };
        let Some((stage, mut submitted)) = live else {
            return match self.ended().node_of(&requester, id) {
                Some(node) if node == command.node() => IqReply::failed(
                    StanzaError::new(StanzaErrorCondition::NotAllowed)
                        .with_app(Element::new("session-expired", ns::COMMANDS))
                        .with_text("the session has ended"),
                ),
                Some(_) => bad_request(Some("bad-sessionid"), "the session is another command's"),
                None => bad_request(Some("bad-sessionid"), "no such session"),
            };
        };
        let payload = cmd
            .children()
            .find(|c| c.is("x", ns::DATA_FORMS))
            .filter(|x| x.attr("type") != Some("cancel"));
        let canceled_form = cmd
            .children()
            .any(|c| c.is("x", ns::DATA_FORMS) && c.attr("type") == Some("cancel"));
        let action = match action {
            Action::Execute if canceled_form => Action::Cancel,
            // §4.1: execute is whatever the stage's <actions execute=...> said.
            Action::Execute => default_action(command, stage),
            a => a,
        };
        match action {
            Action::Cancel => {
                self.end(&requester, id, command.node());
                IqReply::Result(Some(command_el(command.node(), id, "canceled")))
            }
            Action::Prev => {
                if stage == 0 {
                    return bad_request(Some("bad-action"), "this is the first stage");
                }
                let back = stage - 1;
                let form = match command
                    .form(env, back, &submitted[..back], submitted.get(back))
                    .await
                {
                    Ok(f) => f,
                    Err(f) => return failure(f),
                };
                self.update(&requester, id, back, None);
                IqReply::Result(Some(executing(command, id, back, form)))
            }
            Action::Next | Action::Complete => {
                let allowed = if action == Action::Next {
                    stage + 1 < command.stages()
                } else {
                    command.completes_at(stage)
                };
                if !allowed {
                    return bad_request(
                        Some("bad-action"),
                        &format!("{} is not allowed at this stage", action.as_str()),
                    );
                }
                let Some(x) = payload.filter(|x| x.attr("type") == Some("submit")) else {
                    return bad_request(Some("bad-payload"), "a submitted data form is needed");
                };
                let fields = fields_of(x);
                if let Err(f) = command.check(env, stage, &fields) {
                    return failure(f);
                }
                submitted.truncate(stage);
                submitted.push(fields);
                if action == Action::Complete {
                    return self.finish(env, command, id, &submitted).await;
                }
                let next = stage + 1;
                let form = match command.form(env, next, &submitted, None).await {
                    Ok(f) => f,
                    Err(f) => return failure(f),
                };
                self.update(&requester, id, next, Some(submitted));
                IqReply::Result(Some(executing(command, id, next, form)))
            }
            Action::Execute => bad_request(Some("bad-action"), "no default action"),
        }
    }

    /// Runs the command and ends its session; every use is logged with who
    /// ran what on what.
    async fn finish(
        &self,
        env: &Env<'_>,
        command: &dyn AdhocCommand,
        id: &str,
        submitted: &[Fields],
    ) -> IqReply {
        match command.run(env, submitted).await {
            Ok(done) => {
                tracing::info!(
                    admin = %env.requester,
                    node = command.node(),
                    target = %done.target,
                    "ad-hoc command completed"
                );
                self.end(&env.requester.to_string(), id, command.node());
                let mut el = command_el(command.node(), id, "completed");
                for (kind, text) in done.notes {
                    el.push(note(kind, &text));
                }
                if let Some(p) = done.payload {
                    el.push(p);
                }
                IqReply::Result(Some(el))
            }
            Err(f) => {
                tracing::info!(
                    admin = %env.requester,
                    node = command.node(),
                    failure = ?f,
                    "ad-hoc command failed"
                );
                failure(f)
            }
        }
    }

    fn update(&self, requester: &str, id: &str, stage: usize, submitted: Option<Vec<Fields>>) {
        if let Some(mut list) = self.sessions.get_mut(requester) {
            if let Some(s) = list.iter_mut().find(|s| s.id == id) {
                s.stage = stage;
                if let Some(sub) = submitted {
                    s.submitted = sub;
                }
            }
        }
    }

    /// Ends the session: out of the live ones (a command without stages
    /// never was one), remembered in the bounded table of ended ones so
    /// that a late request for it is told `session-expired`. Nothing is
    /// added to the live table, so a command that ends after its
    /// requester's session closed leaves nothing behind there.
    fn end(&self, requester: &str, id: &str, node: &'static str) {
        if let Some(mut list) = self.sessions.get_mut(requester) {
            list.retain(|s| s.id != id);
        }
        self.sessions
            .remove_if(requester, |_, list| list.is_empty());
        self.ended().insert(requester, id, node);
    }

    /// disco#items or disco#info on the command list or a command node.
    fn disco(&self, ctx: &IqCtx<'_>, query: &Element, node: &str) -> Option<IqReply> {
        let items = query.ns() == ns::DISCO_ITEMS;
        if node == ns::COMMANDS {
            let mut q = Element::new("query", query.ns()).with_attr("node", node);
            if items {
                // §2.2: the commands this requester may run.
                for c in self
                    .commands
                    .iter()
                    .filter(|c| self.may_run(ctx.user, c.as_ref()))
                {
                    q.push(
                        Element::new("item", ns::DISCO_ITEMS)
                            .with_attr("jid", ctx.domain)
                            .with_attr("node", c.node())
                            .with_attr("name", c.name()),
                    );
                }
            } else {
                q.push(identity("command-list", "Commands"));
            }
            return Some(IqReply::Result(Some(q)));
        }
        let command = self.command(node)?;
        if !self.may_run(ctx.user, command) {
            // §2.2: "If the command is not available to the requester, the
            // responder SHOULD respond with a 403 Forbidden error."
            return Some(IqReply::Error(StanzaErrorCondition::Forbidden));
        }
        let mut q = Element::new("query", query.ns()).with_attr("node", node);
        if !items {
            q.push(identity("command-node", command.name()));
            for f in [ns::COMMANDS, ns::DATA_FORMS] {
                q.push(Element::new("feature", ns::DISCO_INFO).with_attr("var", f));
            }
        }
        Some(IqReply::Result(Some(q)))
    }
}

impl Module for AdHoc {
    fn info(&self) -> &'static ModuleInfo {
        &INFO
    }

    fn handle<'a>(&'a self, ctx: &'a IqCtx<'a>, iq: &'a Element) -> BoxFuture<'a, IqReply> {
        Box::pin(self.execute(ctx, iq))
    }

    fn disco_node<'a>(
        &'a self,
        ctx: &'a IqCtx<'a>,
        query: &'a Element,
        node: &'a str,
    ) -> Option<BoxFuture<'a, IqReply>> {
        let reply = self.disco(ctx, query, node)?;
        Some(Box::pin(async move { reply }))
    }

    /// The requester's command sessions go with its session.
    fn session_closed(&self, ctx: &SessionCtx<'_>) {
        self.sessions.remove(&ctx.full.to_string());
    }
}

/// What `execute` means at `stage`: complete where the command may end,
/// else next.
fn default_action(command: &dyn AdhocCommand, stage: usize) -> Action {
    if command.completes_at(stage) {
        Action::Complete
    } else {
        Action::Next
    }
}

fn command_el(node: &str, id: &str, status: &str) -> Element {
    Element::new("command", ns::COMMANDS)
        .with_attr("node", node)
        .with_attr("sessionid", id)
        .with_attr("status", status)
}

/// The answer to a stage: status executing, the actions allowed there,
/// then the form (§4.2, §4.4).
fn executing(command: &dyn AdhocCommand, id: &str, stage: usize, form: Element) -> Element {
    let mut el = command_el(command.node(), id, "executing");
    let mut actions = Element::new("actions", ns::COMMANDS)
        .with_attr("execute", default_action(command, stage).as_str());
    if stage > 0 {
        actions.push(Element::new("prev", ns::COMMANDS));
    }
    if stage + 1 < command.stages() {
        actions.push(Element::new("next", ns::COMMANDS));
    }
    if command.completes_at(stage) {
        actions.push(Element::new("complete", ns::COMMANDS));
    }
    el.push(actions);
    el.push(form);
    el
}

fn note(kind: NoteType, text: &str) -> Element {
    Element::new("note", ns::COMMANDS)
        .with_attr("type", kind.as_str())
        .with_text(text)
}

fn identity(typ: &str, name: &str) -> Element {
    Element::new("identity", ns::DISCO_INFO)
        .with_attr("category", "automation")
        .with_attr("type", typ)
        .with_attr("name", name)
}

/// `bad-request`, with XEP-0050's specific condition when there is one.
fn bad_request(specific: Option<&str>, text: &str) -> IqReply {
    let mut e = StanzaError::new(StanzaErrorCondition::BadRequest).with_text(text);
    if let Some(s) = specific {
        e = e.with_app(Element::new(s, ns::COMMANDS));
    }
    IqReply::failed(e)
}

fn failure(f: Failure) -> IqReply {
    match f {
        Failure::BadPayload(text) => bad_request(Some("bad-payload"), &text),
        Failure::Error(cond, text) => IqReply::failed(StanzaError::new(cond).with_text(text)),
    }
}

/// A submitted form's fields (FORM_TYPE left out); a var given twice keeps
/// its first values.
pub fn fields_of(x: &Element) -> Fields {
    let mut out = Fields::new();
    for f in x.children().filter(|f| f.is("field", ns::DATA_FORMS)) {
        let Some(var) = f.attr("var") else { continue };
        if var == "FORM_TYPE" || out.contains_key(var) {
            continue;
        }
        let values = f
            .children()
            .filter(|v| v.is("value", ns::DATA_FORMS))
            .map(Element::text)
            .collect();
        out.insert(var.to_owned(), values);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn actions_parse_and_print_as_the_xep_names_them() {
        for a in ["execute", "cancel", "prev", "next", "complete"] {
            assert_eq!(Action::parse(a).unwrap().as_str(), a);
        }
        assert_eq!(Action::parse("Execute"), None);
        assert_eq!(Action::parse("finish"), None);
    }

    #[test]
    fn a_field_given_twice_keeps_its_first_values() {
        let x = Element::from_xml(
            "<x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE'><value>http://jabber.org/protocol/admin</value></field>\
             <field var='accountjids'><value>a@b</value><value>c@b</value></field>\
             <field var='accountjids'><value>evil@b</value></field>\
             <field><value>no var</value></field></x>",
        )
        .unwrap();
        let f = fields_of(&x);
        assert_eq!(f.len(), 1);
        assert_eq!(f["accountjids"], ["a@b", "c@b"]);
    }

    #[test]
    fn ended_sessions_are_bounded_oldest_first() {
        let mut ended = Ended::default();
        for i in 0..MAX_ENDED + 5 {
            ended.insert("a@b/c", &i.to_string(), "ping");
        }
        assert_eq!(ended.by_id.len(), MAX_ENDED);
        assert_eq!(ended.order.len(), MAX_ENDED);
        // The oldest went first; the newest are there, for this requester
        // only.
        assert_eq!(ended.node_of("a@b/c", "0"), None);
        assert_eq!(ended.node_of("a@b/c", &MAX_ENDED.to_string()), Some("ping"));
        assert_eq!(ended.node_of("a@b/d", &MAX_ENDED.to_string()), None);
    }

    fn adhoc() -> AdHoc {
        AdHoc::new(vec![Box::new(PingCommand)], &[], AdminSlot::default())
    }

    fn session(id: &str, age: Duration) -> CommandSession {
        CommandSession {
            id: id.to_owned(),
            node: "ping",
            stage: 0,
            submitted: Vec::new(),
            touched: Instant::now().checked_sub(age).unwrap(),
        }
    }

    #[test]
    fn a_command_ending_after_its_requester_left_leaves_no_live_entry() {
        let m = adhoc();
        m.end("gone@b/c", "1-1", "ping");
        assert!(m.sessions.is_empty());
        assert_eq!(m.ended().node_of("gone@b/c", "1-1"), Some("ping"));
        // A live session ended: out of the table, and its requester too.
        m.sessions
            .insert("a@b/c".into(), vec![session("2-2", Duration::ZERO)]);
        m.end("a@b/c", "2-2", "ping");
        assert!(m.sessions.is_empty());
    }

    #[test]
    fn the_table_is_swept_of_expired_sessions_when_it_grows() {
        let m = adhoc();
        let old = SESSION_TTL + Duration::from_secs(1);
        for i in 0..REQUESTERS_KEPT {
            m.sessions
                .insert(format!("u{i}@b/c"), vec![session("1", old)]);
        }
        m.sessions
            .insert("fresh@b/c".into(), vec![session("1", Duration::ZERO)]);
        m.make_room();
        assert_eq!(m.sessions.len(), 1);
        assert!(m.sessions.contains_key("fresh@b/c"));
        assert_eq!(m.sweep_at.load(Ordering::Relaxed), REQUESTERS_KEPT);
        // An expired one seen on access is remembered as ended.
        let mut list = vec![session("x", old), session("y", Duration::ZERO)];
        m.expire("a@b/c", &mut list);
        assert_eq!(list.len(), 1);
        assert_eq!(m.ended().node_of("a@b/c", "x"), Some("ping"));
    }
}
