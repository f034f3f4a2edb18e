//! XEP-0157: Contact Addresses for XMPP Services (version 1.1.1).
//!
//! The addresses of `[contact]` are published in the server's disco#info
//! as a XEP-0128 form with FORM_TYPE `http://jabber.org/network/serverinfo`
//! (§3), one `<role>-addresses` field per configured role, so that a client
//! or another server finds whom to tell about abuse or a security problem
//! without guessing mailboxes. With nothing configured there is no form:
//! an empty one would tell the asker there is nobody to contact.

use chorus_proto::ns;
use chorus_xml::Element;

use crate::forms::form_head;
use crate::{Module, ModuleInfo, Support, Xep};

/// The form, built once from the configuration.
pub struct Contact {
    form: Option<Element>,
}

static INFO: ModuleInfo = ModuleInfo {
    name: "contact",
    file: file!(),
    xeps: &[Xep {
        number: 157,
        name: "Contact Addresses for XMPP Services",
        version: "1.1.1",
        support: Support::Complete,
        note: "Addresses from `[contact]`, in the server's disco#info; no form when none are configured.",
    }],
    ..ModuleInfo::EMPTY
};

impl Contact {
    pub fn from_config(config: &chorus_config::Config) -> Contact {
        Contact {
            form: form(&config.contact.lists()),
        }
    }
}

/// The serverinfo form for these (role, addresses) lists; None when every
/// list is empty. Fields follow the XEP-0157 §5 registry names.
fn form(lists: &[(&str, &[String])]) -> Option<Element> {
    let mut x = form_head("result", ns::SERVERINFO);
    let mut any = false;
    for (role, addresses) in lists {
        if addresses.is_empty() {
            continue;
        }
        any = true;
        let mut field = Element::new("field", ns::DATA_FORMS)
            .with_attr("var", format!("{role}-addresses"))
            .with_attr("type", "list-multi");
        for a in *addresses {
            field.push(Element::new("value", ns::DATA_FORMS).with_text(a.as_str()));
        }
        x.push(field);
    }
    any.then_some(x)
}

impl Module for Contact {
    fn info(&self) -> &'static ModuleInfo {
        &INFO
    }

    fn server_info_forms(&self, out: &mut Vec<Element>) {
        out.extend(self.form.iter().cloned());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::forms::{form_fields, form_type};

    #[test]
    fn configured_roles_become_fields_and_nothing_makes_no_form() {
        let empty: Vec<String> = Vec::new();
        assert!(form(&[("abuse", &empty), ("admin", &empty)]).is_none());
        let abuse = vec![
            "mailto:abuse@example.org".to_owned(),
            "xmpp:abuse@example.org".to_owned(),
        ];
        let status = vec!["https://status.example.org".to_owned()];
        let x = form(&[("abuse", &abuse), ("admin", &empty), ("status", &status)]).unwrap();
        assert_eq!(x.attr("type"), Some("result"));
        assert_eq!(form_type(&x).as_deref(), Some(ns::SERVERINFO));
        assert_eq!(
            form_fields(&x),
            vec![
                ("abuse-addresses".to_owned(), abuse),
                ("status-addresses".to_owned(), status),
            ]
        );
    }
}
