//! Node configuration (XEP-0060 §16.4.4, FORM_TYPE `pubsub#node_config`):
//! the options Chorus honours, their XEP-0004 forms, and how a submitted
//! form or a publish-options precondition (§7.1.5) is checked against them.
//! A node's configuration is stored as its own submit form, so what is in
//! the database reads like what a client sends.

use chorus_proto::ns;
use chorus_xml::Element;

pub use crate::forms::{form_fields, form_head, form_type};

/// Who may retrieve items and subscribe (XEP-0060 §4.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessModel {
    Open,
    /// Contacts with a presence subscription to the owner (PEP default).
    Presence,
    /// Contacts in the allowed roster groups.
    Roster,
    /// Entities the owner affiliated with the node.
    Whitelist,
    /// Subscribers the owner approved.
    Authorize,
}

impl AccessModel {
    const ALL: [(&'static str, AccessModel); 5] = [
        ("authorize", AccessModel::Authorize),
        ("open", AccessModel::Open),
        ("presence", AccessModel::Presence),
        ("roster", AccessModel::Roster),
        ("whitelist", AccessModel::Whitelist),
    ];

    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("open", |(s, _)| s)
    }

    fn parse(s: &str) -> Option<AccessModel> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, m)| *m)
    }
}

/// Who may publish (XEP-0060 §4.6 `pubsub#publish_model`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishModel {
    Publishers,
    Subscribers,
    Open,
}

impl PublishModel {
    const ALL: [(&'static str, PublishModel); 3] = [
        ("publishers", PublishModel::Publishers),
        ("subscribers", PublishModel::Subscribers),
        ("open", PublishModel::Open),
    ];

    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("publishers", |(s, _)| s)
    }

    fn parse(s: &str) -> Option<PublishModel> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, m)| *m)
    }
}

/// When the last item goes to a new subscriber (XEP-0060 §6.1.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendLast {
    Never,
    OnSub,
    /// Also when a subscriber with an interest comes online (XEP-0163 §6.2).
    OnSubAndPresence,
}

impl SendLast {
    const ALL: [(&'static str, SendLast); 3] = [
        ("never", SendLast::Never),
        ("on_sub", SendLast::OnSub),
        ("on_sub_and_presence", SendLast::OnSubAndPresence),
    ];

    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("never", |(s, _)| s)
    }

    fn parse(s: &str) -> Option<SendLast> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, m)| *m)
    }
}

/// `pubsub#max_items`: a count, or `max`, the most the service allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxItems {
    Count(u64),
    Max,
}

impl MaxItems {
    /// The number of items kept under a service limit of `limit`.
    pub fn resolve(self, limit: u64) -> u64 {
        match self {
            MaxItems::Count(n) => n.min(limit),
            MaxItems::Max => limit,
        }
    }

    fn as_string(self) -> String {
        match self {
            MaxItems::Count(n) => n.to_string(),
            MaxItems::Max => "max".to_owned(),
        }
    }
}

/// A node's configuration: the options Chorus honours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    pub access_model: AccessModel,
    pub publish_model: PublishModel,
    pub max_items: MaxItems,
    pub persist_items: bool,
    pub deliver_notifications: bool,
    pub deliver_payloads: bool,
    pub notify_config: bool,
    pub notify_delete: bool,
    pub notify_retract: bool,
    pub send_last_published_item: SendLast,
    /// `pubsub#itemreply = publisher`: notifications name the publisher.
    pub itemreply_publisher: bool,
    pub roster_groups_allowed: Vec<String>,
    pub title: String,
    pub description: String,
    /// `pubsub#type`: the payload's namespace, informational.
    pub payload_type: String,
}

/// Why a form or a precondition was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// A field Chorus does not know, or a value it cannot take: the
    /// offending field's name.
    Invalid(String),
    /// A publish-options field whose value differs from the node's.
    PreconditionNotMet(String),
}

/// (var, type, label) of each field, in the order the form lists them.
const FIELDS: &[(&str, &str, &str)] = &[
    (
        "pubsub#title",
        "text-single",
        "A friendly name for the node",
    ),
    (
        "pubsub#description",
        "text-single",
        "A description of the node",
    ),
    (
        "pubsub#type",
        "text-single",
        "The type of node data, usually its namespace",
    ),
    (
        "pubsub#access_model",
        "list-single",
        "Who may subscribe and retrieve items",
    ),
    (
        "pubsub#publish_model",
        "list-single",
        "Who may publish items",
    ),
    (
        "pubsub#roster_groups_allowed",
        "list-multi",
        "Roster groups allowed to subscribe",
    ),
    (
        "pubsub#max_items",
        "text-single",
        "Maximum number of items to persist ('max' for the service's limit)",
    ),
    (
        "pubsub#persist_items",
        "boolean",
        "Persist items to storage",
    ),
    (
        "pubsub#deliver_notifications",
        "boolean",
        "Deliver event notifications",
    ),
    (
        "pubsub#deliver_payloads",
        "boolean",
        "Deliver payloads with event notifications",
    ),
    (
        "pubsub#notify_config",
        "boolean",
        "Notify subscribers when the node configuration changes",
    ),
    (
        "pubsub#notify_delete",
        "boolean",
        "Notify subscribers when the node is deleted",
    ),
    (
        "pubsub#notify_retract",
        "boolean",
        "Notify subscribers when items are removed from the node",
    ),
    (
        "pubsub#send_last_published_item",
        "list-single",
        "When to send the last published item",
    ),
    (
        "pubsub#itemreply",
        "list-single",
        "Whom replies to an item go to (publisher: notifications name the publisher)",
    ),
];

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

fn bool_str(b: bool) -> &'static str {
    if b {
        "1"
    } else {
        "0"
    }
}

impl NodeConfig {
    /// What a PEP node starts with (XEP-0163 §4.3: presence access; one
    /// item, the current state, as Prosody and ejabberd keep).
    pub fn pep_default() -> NodeConfig {
        NodeConfig {
            access_model: AccessModel::Presence,
            publish_model: PublishModel::Publishers,
            max_items: MaxItems::Count(1),
            persist_items: true,
            deliver_notifications: true,
            deliver_payloads: true,
            notify_config: false,
            notify_delete: true,
            notify_retract: true,
            send_last_published_item: SendLast::OnSubAndPresence,
            itemreply_publisher: false,
            roster_groups_allowed: Vec::new(),
            title: String::new(),
            description: String::new(),
            payload_type: String::new(),
        }
    }

    /// What a node of a hosted service starts with: open to anyone, the
    /// last ten items, the last one sent to a new subscriber.
    pub fn service_default() -> NodeConfig {
        NodeConfig {
            access_model: AccessModel::Open,
            max_items: MaxItems::Count(10),
            send_last_published_item: SendLast::OnSub,
            ..NodeConfig::pep_default()
        }
    }

    /// One field's current values.
    fn values(&self, var: &str) -> Vec<String> {
        let one = |s: &str| vec![s.to_owned()];
        match var {
            "pubsub#title" => one(&self.title),
            "pubsub#description" => one(&self.description),
            "pubsub#type" => one(&self.payload_type),
            "pubsub#access_model" => one(self.access_model.as_str()),
            "pubsub#publish_model" => one(self.publish_model.as_str()),
            "pubsub#roster_groups_allowed" => self.roster_groups_allowed.clone(),
            "pubsub#max_items" => vec![self.max_items.as_string()],
            "pubsub#persist_items" => one(bool_str(self.persist_items)),
            "pubsub#deliver_notifications" => one(bool_str(self.deliver_notifications)),
            "pubsub#deliver_payloads" => one(bool_str(self.deliver_payloads)),
            "pubsub#notify_config" => one(bool_str(self.notify_config)),
            "pubsub#notify_delete" => one(bool_str(self.notify_delete)),
            "pubsub#notify_retract" => one(bool_str(self.notify_retract)),
            "pubsub#send_last_published_item" => one(self.send_last_published_item.as_str()),
            "pubsub#itemreply" => one(if self.itemreply_publisher {
                "publisher"
            } else {
                "owner"
            }),
            _ => Vec::new(),
        }
    }

    /// Sets one field; `Invalid` for an unknown field or a bad value.
    fn set(&mut self, var: &str, values: &[String]) -> Result<(), ConfigError> {
        let bad = || ConfigError::Invalid(var.to_owned());
        let single = || -> Result<&str, ConfigError> {
            match values {
                [] => Ok(""),
                [v] => Ok(v.as_str()),
                _ => Err(bad()),
            }
        };
        let boolean = || single().and_then(|v| parse_bool(v).ok_or_else(bad));
        match var {
            "pubsub#title" => self.title = single()?.to_owned(),
            "pubsub#description" => self.description = single()?.to_owned(),
            "pubsub#type" => self.payload_type = single()?.to_owned(),
            "pubsub#access_model" => {
                self.access_model = AccessModel::parse(single()?).ok_or_else(bad)?
            }
            "pubsub#publish_model" => {
                self.publish_model = PublishModel::parse(single()?).ok_or_else(bad)?
            }
            "pubsub#roster_groups_allowed" => self.roster_groups_allowed = values.to_vec(),
            "pubsub#max_items" => {
                self.max_items = match single()? {
                    "max" => MaxItems::Max,
                    n => MaxItems::Count(n.parse().map_err(|_| bad())?),
                }
            }
            "pubsub#persist_items" => self.persist_items = boolean()?,
            "pubsub#deliver_notifications" => self.deliver_notifications = boolean()?,
            "pubsub#deliver_payloads" => self.deliver_payloads = boolean()?,
            "pubsub#notify_config" => self.notify_config = boolean()?,
            "pubsub#notify_delete" => self.notify_delete = boolean()?,
            "pubsub#notify_retract" => self.notify_retract = boolean()?,
            "pubsub#send_last_published_item" => {
                self.send_last_published_item = SendLast::parse(single()?).ok_or_else(bad)?
            }
            "pubsub#itemreply" => {
                self.itemreply_publisher = match single()? {
                    "publisher" => true,
                    "owner" => false,
                    _ => return Err(bad()),
                }
            }
            _ => return Err(bad()),
        }
        Ok(())
    }

    /// Applies a submitted configuration form (XEP-0060 §8.2.4); fields it
    /// leaves out keep their values. Nothing changes on an error.
    pub fn apply(&self, x: &Element) -> Result<NodeConfig, ConfigError> {
        let mut next = self.clone();
        for (var, values) in form_fields(x) {
            next.set(&var, &values)?;
        }
        Ok(next)
    }

    /// Whether the node meets publish-options preconditions (XEP-0060
    /// §7.1.5): each field must hold the given value. Booleans compare by
    /// meaning ("true" is "1").
    pub fn check_preconditions(&self, x: &Element) -> Result<(), ConfigError> {
        for (var, values) in form_fields(x) {
            let mut wanted = self.clone();
            wanted.set(&var, &values)?;
            if wanted.values(&var) != self.values(&var) {
                return Err(ConfigError::PreconditionNotMet(var));
            }
        }
        Ok(())
    }

    /// The configuration form (`type='form'`, §8.2.1) with current values.
    pub fn to_form(&self) -> Element {
        let mut x = form_head("form", ns::PUBSUB_NODE_CONFIG);
        for (var, kind, label) in FIELDS {
            let mut f = Element::new("field", ns::DATA_FORMS)
                .with_attr("var", *var)
                .with_attr("type", *kind)
                .with_attr("label", *label);
            let options: &[&str] = match *var {
                "pubsub#access_model" => &["authorize", "open", "presence", "roster", "whitelist"],
                "pubsub#publish_model" => &["publishers", "subscribers", "open"],
                "pubsub#send_last_published_item" => &["never", "on_sub", "on_sub_and_presence"],
                "pubsub#itemreply" => &["owner", "publisher"],
                _ => &[],
            };
            for o in options {
                f.push(
                    Element::new("option", ns::DATA_FORMS)
                        .with_child(Element::new("value", ns::DATA_FORMS).with_text(*o)),
                );
            }
            for v in self.values(var) {
                f.push(Element::new("value", ns::DATA_FORMS).with_text(v));
            }
            x.push(f);
        }
        x
    }

    /// Every option as a submit form: what is stored, and what XEP-0227
    /// exports.
    pub fn to_submit_form(&self) -> Element {
        let mut x = form_head("submit", ns::PUBSUB_NODE_CONFIG);
        for (var, _, _) in FIELDS {
            let mut f = Element::new("field", ns::DATA_FORMS).with_attr("var", *var);
            for v in self.values(var) {
                f.push(Element::new("value", ns::DATA_FORMS).with_text(v));
            }
            x.push(f);
        }
        x
    }

    /// The configuration as stored: its own submit form.
    pub fn to_stored(&self) -> String {
        self.to_submit_form().to_xml()
    }

    /// Reads a stored configuration; what cannot be read keeps the default.
    pub fn from_stored(stored: &str) -> NodeConfig {
        let mut config = NodeConfig::pep_default();
        if let Ok(x) = Element::from_xml(stored) {
            for (var, values) in form_fields(&x) {
                let _ = config.set(&var, &values);
            }
        }
        config
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn submit(fields: &[(&str, &str)]) -> Element {
        let mut x = form_head("submit", ns::PUBSUB_PUBLISH_OPTIONS);
        for (var, v) in fields {
            x.push(
                Element::new("field", ns::DATA_FORMS)
                    .with_attr("var", *var)
                    .with_child(Element::new("value", ns::DATA_FORMS).with_text(*v)),
            );
        }
        x
    }

    #[test]
    fn a_stored_configuration_reads_back_the_same() {
        let mut c = NodeConfig::pep_default();
        c.access_model = AccessModel::Whitelist;
        c.max_items = MaxItems::Max;
        c.roster_groups_allowed = vec!["Friends".into(), "Family <3".into()];
        c.title = "Bookmarks".into();
        assert_eq!(NodeConfig::from_stored(&c.to_stored()), c);
    }

    #[test]
    fn a_form_changes_what_it_names_and_refuses_what_it_cannot_set() {
        let c = NodeConfig::pep_default();
        let next = c
            .apply(&submit(&[
                ("pubsub#access_model", "open"),
                ("pubsub#max_items", "max"),
            ]))
            .unwrap();
        assert_eq!(next.access_model, AccessModel::Open);
        assert_eq!(next.max_items, MaxItems::Max);
        assert!(next.persist_items);
        assert_eq!(
            c.apply(&submit(&[("pubsub#access_model", "friends")])),
            Err(ConfigError::Invalid("pubsub#access_model".into()))
        );
        assert_eq!(
            c.apply(&submit(&[("pubsub#colour", "blue")])),
            Err(ConfigError::Invalid("pubsub#colour".into()))
        );
    }

    #[test]
    fn preconditions_compare_meaning_not_spelling() {
        let mut c = NodeConfig::pep_default();
        c.persist_items = true;
        c.access_model = AccessModel::Whitelist;
        let ok = submit(&[
            ("pubsub#persist_items", "true"),
            ("pubsub#access_model", "whitelist"),
        ]);
        assert_eq!(c.check_preconditions(&ok), Ok(()));
        let not = submit(&[("pubsub#access_model", "open")]);
        assert_eq!(
            c.check_preconditions(&not),
            Err(ConfigError::PreconditionNotMet(
                "pubsub#access_model".into()
            ))
        );
    }
}
