//! XEP-0059 Result Set Management over a list already in memory: the page
//! a `<set/>` asks for, and the `<set/>` that answers it.

use chorus_proto::{ns, StanzaErrorCondition as C};
use chorus_xml::Element;

/// Narrows `items` (in their order) to the page `set` asks for, and
/// returns the answer's `<set/>`: `<after>` and `<before>` name an item by
/// `id`, an empty `<before/>` asks for the last page, `<index>` an offset,
/// and `<max>` the page size (`default_max` when absent).
pub fn page<T>(
    set: &Element,
    items: &mut Vec<T>,
    default_max: usize,
    id: impl Fn(&T) -> &str,
) -> Result<Element, C> {
    let text = |name: &str| set.get_child(name, ns::RSM).map(Element::text);
    let number = |name: &str| -> Result<Option<usize>, C> {
        text(name)
            .map(|t| t.trim().parse::<usize>().map_err(|_| C::BadRequest))
            .transpose()
    };
    let count = items.len();
    let max = number("max")?.unwrap_or(default_max);
    let position = |wanted: &str| items.iter().position(|i| id(i) == wanted);
    let (start, end) = if let Some(after) = text("after") {
        let p = position(&after).ok_or(C::ItemNotFound)?;
        (p + 1, (p + 1).saturating_add(max).min(count))
    } else if let Some(before) = text("before") {
        let end = if before.is_empty() {
            count
        } else {
            position(&before).ok_or(C::ItemNotFound)?
        };
        (end.saturating_sub(max), end)
    } else {
        let start = number("index")?.unwrap_or(0).min(count);
        (start, start.saturating_add(max).min(count))
    };
    let page: Vec<T> = items.drain(start..end.max(start)).collect();
    *items = page;
    let mut answer = Element::new("set", ns::RSM);
    if let (Some(first), Some(last)) = (items.first(), items.last()) {
        answer.push(
            Element::new("first", ns::RSM)
                .with_attr("index", start.to_string())
                .with_text(id(first)),
        );
        answer.push(Element::new("last", ns::RSM).with_text(id(last)));
    }
    answer.push(Element::new("count", ns::RSM).with_text(count.to_string()));
    Ok(answer)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn set(children: &[(&str, &str)]) -> Element {
        let mut s = Element::new("set", ns::RSM);
        for (name, text) in children {
            s.push(Element::new(*name, ns::RSM).with_text(*text));
        }
        s
    }

    fn ids(v: &[&'static str]) -> Vec<&'static str> {
        v.to_vec()
    }

    #[test]
    fn pages_go_forward_backward_and_by_index() {
        let all = ["a", "b", "c", "d", "e"];
        let mut items = ids(&all);
        let answer = page(&set(&[("max", "2"), ("after", "b")]), &mut items, 10, |s| s).unwrap();
        assert_eq!(items, ["c", "d"]);
        assert!(answer.to_xml().contains("<count>5</count>"));
        let mut items = ids(&all);
        page(&set(&[("max", "2"), ("before", "")]), &mut items, 10, |s| s).unwrap();
        assert_eq!(items, ["d", "e"]);
        let mut items = ids(&all);
        page(
            &set(&[("max", "2"), ("before", "c")]),
            &mut items,
            10,
            |s| s,
        )
        .unwrap();
        assert_eq!(items, ["a", "b"]);
        let mut items = ids(&all);
        page(&set(&[("index", "4")]), &mut items, 10, |s| s).unwrap();
        assert_eq!(items, ["e"]);
        let mut items = ids(&all);
        assert_eq!(
            page(&set(&[("after", "zz")]), &mut items, 10, |s| s),
            Err(C::ItemNotFound)
        );
        let mut items = ids(&all);
        assert_eq!(
            page(
                &set(&[("max", "18446744073709551615"), ("after", "a")]),
                &mut items,
                10,
                |s| s
            )
            .map(|_| items.len()),
            Ok(4)
        );
    }
}
