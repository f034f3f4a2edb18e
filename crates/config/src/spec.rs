//! The machinery behind "each option declared once": the `options!`
//! macro, the [`OptionSpec`] rows it produces, the per-type facts in
//! [`OptionType`], and the TOML rendering of values.
//!
//! One declaration (name, type, default, bounds, reloadable, doc) yields the
//! section struct and its `Default` impl as well as a row in
//! [`crate::SECTIONS`]. The annotated `config/chorus.toml`, `docs/CONFIG.md`,
//! the validator (types, bounds, did-you-mean, deprecated names) and the
//! reload diff all read those rows, so none of them can drift from the
//! structs the server uses.

use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::Config;

/// One option as declared: everything the loader, the reload diff and the
/// generated documents know about it.
pub struct OptionSpec {
    /// The full key, `c2s.ping_interval_secs`; a top-level option such as
    /// `listeners` has no section part.
    pub key: &'static str,
    /// The key within its section, `ping_interval_secs`.
    pub name: &'static str,
    /// The type as the reference shows it: `integer`, `list of strings`.
    pub type_name: &'static str,
    /// What an error says was expected: `an unsigned integer`.
    pub expected: &'static str,
    /// An array of tables (`[[listeners]]`, `[[tls.sni]]`): rendered as
    /// tables after the section's plain keys, as TOML requires.
    pub tables: bool,
    /// The keys of each such table, in the order they are shown.
    pub fields: &'static [&'static str],
    /// Floor of a safety limit: a configuration may tighten it, never
    /// disable it.
    pub min: Option<u64>,
    /// Ceiling, where a larger value is a mistake rather than a choice.
    pub max: Option<u64>,
    /// `chorusctl config reload` applies a change; otherwise the change
    /// only takes effect after a restart.
    pub reloadable: bool,
    /// The `///` lines of the declaration, one leading space included.
    pub doc: &'static [&'static str],
    /// Former names, still accepted with a warning.
    pub aliases: &'static [&'static str],
    /// TOML shown (commented out) when the default is empty.
    pub example: Option<&'static str>,
    /// The option's current value, as serde serializes it.
    pub(crate) get: fn(&Config) -> serde_json::Value,
    /// Whether a value from the file or environment has the right type.
    pub(crate) check: fn(&figment::value::Value) -> Result<(), Box<figment::Error>>,
    /// Copies the option from the second configuration into the first (a
    /// reload applying what it can).
    pub(crate) take: fn(&mut Config, &Config),
}

impl OptionSpec {
    /// The option's value in `config`, rendered as TOML.
    pub fn value_toml(&self, config: &Config) -> String {
        toml_inline(&(self.get)(config))
    }

    /// The default, rendered as TOML.
    pub fn default_toml(&self) -> String {
        self.value_toml(&Config::default())
    }

    /// The doc lines as sentences, without the leading space rustdoc keeps.
    pub fn doc_lines(&self) -> impl Iterator<Item = &'static str> {
        doc_lines(self.doc)
    }

    /// `at least 4`, `at most 1000000`, `1 to 10`; `None` without bounds.
    pub fn bounds_text(&self) -> Option<String> {
        match (self.min, self.max) {
            (Some(lo), Some(hi)) => Some(format!("{lo} to {hi}")),
            (Some(lo), None) => Some(format!("at least {lo}")),
            (None, Some(hi)) => Some(format!("at most {hi}")),
            (None, None) => None,
        }
    }
}

/// One top-level entry of the file: a `[section]` of options, or a
/// top-level option of its own (`[[listeners]]`).
pub struct Section {
    /// `server` for `[server]`; the key of a top-level option.
    pub name: &'static str,
    /// The `///` lines above the section's declaration.
    pub doc: &'static [&'static str],
    /// A `[section]` table; false for a top-level option, whose only entry
    /// in `options` is itself.
    pub table: bool,
    pub options: &'static [OptionSpec],
}

impl Section {
    pub fn doc_lines(&self) -> impl Iterator<Item = &'static str> {
        doc_lines(self.doc)
    }
}

fn doc_lines(doc: &'static [&'static str]) -> impl Iterator<Item = &'static str> {
    // `/// text` arrives as " text": strip that one space and keep any
    // further indentation, which aligns lists in the doc.
    doc.iter().map(|l| l.strip_prefix(' ').unwrap_or(l))
}

/// What an option's Rust type means to an operator. Implemented once per
/// type; every option of that type shares the wording.
pub trait OptionType {
    /// The type column of the reference.
    const TYPE: &'static str;
    /// The "expected ..." of a type error.
    const EXPECTED: &'static str;
    /// An array of tables rather than a plain value.
    const TABLES: bool = false;
    /// For an array of tables: the order its keys are shown in.
    const FIELDS: &'static [&'static str] = &[];

    /// Whether a value from the file or environment has this type. serde
    /// stops at the first bad item of a list; a type whose items are
    /// checked one by one (a list of networks) overrides this to report
    /// each.
    fn check(value: &figment::value::Value) -> Result<(), Box<figment::Error>>
    where
        Self: DeserializeOwned + Sized,
    {
        check_as::<Self>(value)
    }
}

impl OptionType for u32 {
    const TYPE: &'static str = "integer";
    const EXPECTED: &'static str = "an unsigned integer (at most 4294967295)";
}

impl OptionType for u64 {
    const TYPE: &'static str = "integer";
    const EXPECTED: &'static str = "an unsigned integer";
}

impl OptionType for usize {
    const TYPE: &'static str = "integer";
    const EXPECTED: &'static str = "an unsigned integer";
}

impl OptionType for bool {
    const TYPE: &'static str = "boolean";
    const EXPECTED: &'static str = "true or false";
}

impl OptionType for String {
    const TYPE: &'static str = "string";
    const EXPECTED: &'static str = "a string";
}

impl OptionType for PathBuf {
    const TYPE: &'static str = "path";
    const EXPECTED: &'static str = "a path (a string)";
}

impl OptionType for Vec<String> {
    const TYPE: &'static str = "list of strings";
    const EXPECTED: &'static str = "a list of strings";
}

/// A value as serde serializes it; the generated `get` of each option.
pub(crate) fn to_json<T: Serialize>(value: &T) -> serde_json::Value {
    // Every option type serializes; Null would only show a bug in a new
    // type's Serialize impl, in the generated documents' tests.
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// The generated `check` of each option: does the value deserialize as the
/// declared type? The error keeps figment's path inside the value
/// (`0.address` in a list of tables) for the message.
pub(crate) fn check_as<T: DeserializeOwned>(
    value: &figment::value::Value,
) -> Result<(), Box<figment::Error>> {
    // Boxed: figment's error is large and this is a plain fn pointer in
    // every spec.
    value.deserialize::<T>().map(|_| ()).map_err(Box::new)
}

/// [`OptionType::check`] for a list whose items are checked one by one:
/// every bad item is reported, each with its index in the path.
pub(crate) fn check_items<T: DeserializeOwned>(
    value: &figment::value::Value,
) -> Result<(), Box<figment::Error>> {
    let figment::value::Value::Array(_, items) = value else {
        // Not a list at all: one error, worded for the option.
        return check_as::<Vec<T>>(value);
    };
    let mut errors: Vec<figment::Error> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if let Err(e) = item.deserialize::<T>() {
            for mut one in e {
                one.path.insert(0, i.to_string());
                errors.push(one);
            }
        }
    }
    // figment iterates a chain from the error chained last: chain them
    // from the last, so that they come out in the list's order.
    match errors
        .into_iter()
        .rev()
        .reduce(|chain, earlier| chain.chain(earlier))
    {
        None => Ok(()),
        Some(chain) => Err(Box::new(chain)),
    }
}

/// A serialized value as TOML: `30`, `"data"`, `["localhost"]`, an inline
/// table for a table inside a list.
pub fn toml_inline(value: &serde_json::Value) -> String {
    use serde_json::Value as J;
    match value {
        // No option is optional; an absent value shows as an empty string
        // rather than as something TOML cannot parse.
        J::Null => "\"\"".to_owned(),
        J::Bool(b) => b.to_string(),
        J::Number(n) => n.to_string(),
        J::String(s) => toml_string(s),
        J::Array(items) => {
            let items: Vec<String> = items.iter().map(toml_inline).collect();
            format!("[{}]", items.join(", "))
        }
        J::Object(map) => {
            // Sorted explicitly: serde_json's map keeps insertion order
            // when another crate turns on its `preserve_order` feature,
            // and the generated files must not depend on that.
            let mut fields: Vec<(&String, &J)> = map.iter().collect();
            fields.sort_by_key(|(k, _)| *k);
            let fields: Vec<String> = fields
                .into_iter()
                .map(|(k, v)| format!("{} = {}", toml_key(k), toml_inline(v)))
                .collect();
            format!("{{ {} }}", fields.join(", "))
        }
    }
}

/// A key bare when TOML allows it, quoted otherwise.
pub(crate) fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_owned()
    } else {
        toml_string(key)
    }
}

/// A TOML basic string: quotes, backslashes and control characters escaped
/// (TOML forbids raw control characters, DEL included).
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Declares the whole configuration: the top-level struct, each section
/// struct with its `Default`, and [`crate::SECTIONS`].
///
/// ```text
/// options! {
///     /// The whole configuration.
///     pub struct Config;
///
///     /// Section doc.
///     [limits] LimitsConfig {
///         /// Option doc.
///         max_depth: usize = 64, reload, min 4;
///         /// `restart` or `reload`, then optional `min`, `max`, any number
///         /// of `alias "old_name"` and one `example "toml"`.
///         header_timeout_secs: u64 = 30, restart, min 1, alias "old";
///     }
///
///     /// A top-level array of tables.
///     [[listeners]]: Vec<ListenerConfig> = vec![], reload;
/// }
/// ```
///
/// Sections and top-level options accumulate, in order, until the last
/// arm writes the `Config` struct, its `Default` and the table.
macro_rules! options {
    (@opt) => { None };
    (@opt $e:expr) => { Some($e) };
    (@mode reload) => { true };
    (@mode restart) => { false };

    (
        $(#[doc = $cdoc:literal])*
        pub struct $Config:ident;
        $($items:tt)*
    ) => {
        $crate::spec::options!(@items [$(#[doc = $cdoc])*] $Config [] $($items)*);
    };

    // A `[section]`: its struct and Default now, its Config field and
    // specs into the accumulator.
    (@items $cdocs:tt $Config:ident [$($acc:tt)*]
        $(#[doc = $sdoc:literal])*
        [$section:ident] $Struct:ident {
            $(
                $(#[doc = $doc:literal])*
                $field:ident : $ty:ty = $default:expr, $mode:ident
                $(, min $min:expr)? $(, max $max:expr)?
                $(, alias $alias:literal)* $(, example $example:literal)? ;
            )*
        }
        $($rest:tt)*
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Clone, Debug, PartialEq, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct $Struct {
            $( $(#[doc = $doc])* pub $field: $ty, )*
        }

        impl Default for $Struct {
            fn default() -> Self {
                $Struct { $( $field: $default, )* }
            }
        }

        $crate::spec::options!(@items $cdocs $Config [$($acc)*
            ([$($sdoc)*] $section: $Struct = $Struct::default();
             $crate::spec::Section {
                name: stringify!($section),
                doc: &[$($sdoc),*],
                table: true,
                options: &[$(
                    $crate::spec::OptionSpec {
                        key: concat!(stringify!($section), ".", stringify!($field)),
                        name: stringify!($field),
                        type_name: <$ty as $crate::spec::OptionType>::TYPE,
                        expected: <$ty as $crate::spec::OptionType>::EXPECTED,
                        tables: <$ty as $crate::spec::OptionType>::TABLES,
                        fields: <$ty as $crate::spec::OptionType>::FIELDS,
                        min: $crate::spec::options!(@opt $($min)?),
                        max: $crate::spec::options!(@opt $($max)?),
                        reloadable: $crate::spec::options!(@mode $mode),
                        doc: &[$($doc),*],
                        aliases: &[$($alias),*],
                        example: $crate::spec::options!(@opt $($example)?),
                        get: |c: &$Config| $crate::spec::to_json(&c.$section.$field),
                        check: <$ty as $crate::spec::OptionType>::check,
                        take: |to: &mut $Config, from: &$Config| {
                            to.$section.$field.clone_from(&from.$section.$field)
                        },
                    }
                ),*],
            })
        ] $($rest)*);
    };

    // A top-level option (`[[listeners]]`): a Config field of its own.
    (@items $cdocs:tt $Config:ident [$($acc:tt)*]
        $(#[doc = $doc:literal])*
        [[$name:ident]] : $ty:ty = $default:expr, $mode:ident
        $(, example $example:literal)? ;
        $($rest:tt)*
    ) => {
        $crate::spec::options!(@items $cdocs $Config [$($acc)*
            ([$($doc)*] $name: $ty = $default;
             $crate::spec::Section {
                name: stringify!($name),
                doc: &[],
                table: false,
                options: &[$crate::spec::OptionSpec {
                    key: stringify!($name),
                    name: stringify!($name),
                    type_name: <$ty as $crate::spec::OptionType>::TYPE,
                    expected: <$ty as $crate::spec::OptionType>::EXPECTED,
                    tables: <$ty as $crate::spec::OptionType>::TABLES,
                    fields: <$ty as $crate::spec::OptionType>::FIELDS,
                    min: None,
                    max: None,
                    reloadable: $crate::spec::options!(@mode $mode),
                    doc: &[$($doc),*],
                    aliases: &[],
                    example: $crate::spec::options!(@opt $($example)?),
                    get: |c: &$Config| $crate::spec::to_json(&c.$name),
                    check: <$ty as $crate::spec::OptionType>::check,
                    take: |to: &mut $Config, from: &$Config| to.$name.clone_from(&from.$name),
                }],
            })
        ] $($rest)*);
    };

    // Everything accumulated: the top-level struct and the table.
    (@items [$($cdoc:tt)*] $Config:ident [$(
        ([$($fdoc:literal)*] $f:ident : $T:ty = $default:expr; $spec:expr)
    )*]) => {
        $($cdoc)*
        #[derive(Clone, Debug, PartialEq, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct $Config {
            $( $(#[doc = $fdoc])* pub $f: $T, )*
        }

        impl Default for $Config {
            fn default() -> Self {
                $Config { $( $f: $default, )* }
            }
        }

        /// Every top-level entry of the configuration, in declaration (and
        /// file) order, with each option's spec.
        pub static SECTIONS: &[$crate::spec::Section] = &[$($spec),*];
    };
}

pub(crate) use options;

/// Every option of every section, in declaration order.
pub fn all_options() -> impl Iterator<Item = &'static OptionSpec> {
    crate::SECTIONS.iter().flat_map(|s| s.options.iter())
}

/// The spec of one key (`limits.max_depth`), if declared.
pub fn option(key: &str) -> Option<&'static OptionSpec> {
    all_options().find(|o| o.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_render_as_toml() {
        let v = serde_json::json!({"kind": "c2s", "a b": [1, true, "q\"\u{7f}"]});
        assert_eq!(
            toml_inline(&v),
            r#"{ "a b" = [1, true, "q\"\u007F"], kind = "c2s" }"#
        );
    }
}
