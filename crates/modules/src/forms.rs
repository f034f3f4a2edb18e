//! XEP-0004 data forms: what every module that reads or writes one needs.

use chorus_proto::ns;
use chorus_xml::Element;

/// A data form's fields as (var, values), FORM_TYPE left out.
pub fn form_fields(x: &Element) -> Vec<(String, Vec<String>)> {
    x.children()
        .filter(|f| f.is("field", ns::DATA_FORMS))
        .filter_map(|f| {
            let var = f.attr("var")?;
            if var == "FORM_TYPE" {
                return None;
            }
            let values = f
                .children()
                .filter(|v| v.is("value", ns::DATA_FORMS))
                .map(Element::text)
                .collect();
            Some((var.to_owned(), values))
        })
        .collect()
}

/// The FORM_TYPE of a data form, if it has one.
pub fn form_type(x: &Element) -> Option<String> {
    x.children()
        .filter(|f| f.is("field", ns::DATA_FORMS))
        .find(|f| f.attr("var") == Some("FORM_TYPE"))
        .and_then(|f| f.get_child("value", ns::DATA_FORMS))
        .map(Element::text)
}

/// A form of `kind` with its hidden FORM_TYPE field.
pub fn form_head(kind: &str, form_type: &str) -> Element {
    Element::new("x", ns::DATA_FORMS)
        .with_attr("type", kind)
        .with_child(
            Element::new("field", ns::DATA_FORMS)
                .with_attr("var", "FORM_TYPE")
                .with_attr("type", "hidden")
                .with_child(Element::new("value", ns::DATA_FORMS).with_text(form_type)),
        )
}
