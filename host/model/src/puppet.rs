//! Occopus's `puppet_solo` config management: the three strings its
//! templates read (`puppet.modules`, `puppet.manifests`,
//! `puppet.attributes`), made exactly as Occopus makes them from the rendered
//! section: the items of each list joined by spaces, each item as Python 3's
//! `str()` shows it (a mapping reads `{'dbuser': 'wp'}`). The text matters:
//! the puppet-solo-wordpress tutorial's cloud-init turns the attributes into
//! Hiera data with `sed`, expecting exactly that shape.

use crate::yaml::{Value, Yaml};
use serde_json::Value as Json;

/// `{"modules": .., "manifests": .., "attributes": ..}` of a `puppet_solo`
/// section: `raw` as written (for the order of mapping keys, which Python
/// keeps and JSON objects here do not), `rendered` with its templates
/// rendered (for the values).
pub fn names(raw: &Yaml, rendered: &Json) -> Json {
    let joined = |key: &str| match (raw.get(key), rendered.get(key)) {
        (Some(raw), Some(rendered)) => joined(raw, rendered),
        _ => String::new(),
    };
    serde_json::json!({
        "modules": joined("modules"),
        "manifests": joined("manifests"),
        "attributes": joined("attributes"),
    })
}

/// `' '.join(str(item) for item in value)`: a list's items, a mapping's keys
/// (Python iterates those). A lone string is taken whole (Python would
/// spell it out letter by letter, which no template can use).
fn joined(raw: &Yaml, rendered: &Json) -> String {
    match (&raw.value, rendered) {
        (Value::Seq(items), Json::Array(values)) => items
            .iter()
            .zip(values)
            .map(|(raw, value)| python_str(raw, value))
            .collect::<Vec<_>>()
            .join(" "),
        (Value::Map(entries), _) => entries
            .iter()
            .map(|(key, _)| key.key_text())
            .collect::<Vec<_>>()
            .join(" "),
        _ => python_str(raw, rendered),
    }
}

/// Python's `str(value)`: a string as itself, anything else as its repr.
fn python_str(raw: &Yaml, value: &Json) -> String {
    match value {
        Json::String(text) => text.clone(),
        _ => python_repr(raw, value),
    }
}

/// Python 3's `repr(value)` of what `yaml.load` makes of the section.
fn python_repr(raw: &Yaml, value: &Json) -> String {
    match (value, &raw.value) {
        (Json::Null, _) => "None".into(),
        (Json::Bool(true), _) => "True".into(),
        (Json::Bool(false), _) => "False".into(),
        (Json::Number(n), _) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) => repr_float(f),
            _ => n.to_string(),
        },
        (Json::String(text), _) => repr_str(text),
        (Json::Array(values), Value::Seq(items)) => {
            let shown: Vec<String> = items
                .iter()
                .zip(values)
                .map(|(raw, value)| python_repr(raw, value))
                .collect();
            format!("[{}]", shown.join(", "))
        }
        (Json::Object(map), Value::Map(entries)) => {
            let shown: Vec<String> = entries
                .iter()
                .filter_map(|(key, raw)| {
                    let value = map.get(&key.key_text())?;
                    let key = match &key.value {
                        Value::String(text) => repr_str(text),
                        _ => python_repr(key, &key.to_json()),
                    };
                    Some(format!("{key}: {}", python_repr(raw, value)))
                })
                .collect();
            format!("{{{}}}", shown.join(", "))
        }
        // The rendered value has another shape than the written one (a
        // template cannot do that to a mapping or list): JSON's order.
        (other, _) => {
            let raw = Yaml::from_json(other, &raw.location);
            python_repr(&raw, other)
        }
    }
}

/// Python's repr of a `str`: single quotes unless the text has a single
/// quote and no double one; backslash, quote and control characters
/// escaped as Python escapes them.
fn repr_str(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut shown = String::with_capacity(text.len() + 2);
    shown.push(quote);
    for c in text.chars() {
        match c {
            '\\' => shown.push_str("\\\\"),
            '\n' => shown.push_str("\\n"),
            '\r' => shown.push_str("\\r"),
            '\t' => shown.push_str("\\t"),
            c if c == quote => {
                shown.push('\\');
                shown.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                shown.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if ('\u{80}'..='\u{a0}').contains(&c) => {
                shown.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => shown.push(c),
        }
    }
    shown.push(quote);
    shown
}

/// Python's repr of a `float`: the shortest text that reads back, with
/// `.0` on whole numbers and an exponent (`1e+16`, `1e-05`) outside
/// 1e-4..1e16.
fn repr_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let magnitude = f.abs();
    if magnitude != 0.0 && !(1e-4..1e16).contains(&magnitude) {
        let shown = format!("{f:e}");
        let (mantissa, exponent) = shown.split_once('e').unwrap_or((&shown, "0"));
        let exponent: i32 = exponent.parse().unwrap_or(0);
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exponent.abs());
    }
    let shown = f.to_string();
    if shown.contains('.') {
        shown
    } else {
        format!("{shown}.0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::Diagnostics;
    use crate::yaml::{LoadLimits, load_str};
    use std::path::Path;
    use std::sync::Arc;

    fn yaml(text: &str) -> Yaml {
        let mut diagnostics = Diagnostics::default();
        load_str(
            text,
            Arc::from(Path::new("t.yaml")),
            LoadLimits::default(),
            &mut diagnostics,
        )
        .expect("test YAML parses")
    }

    /// The puppet-solo-wordpress tutorial's wordpress node, its templates
    /// rendered; the expected strings are what Occopus's puppet_solo
    /// config manager (Python 3) makes of them:
    /// `' '.join(str(k) for k in [{'dbuser': 'wp'}, ...])`.
    #[test]
    fn the_tutorials_strings_are_occopus_own() {
        let raw = yaml(
            "type: puppet_solo\n\
             manifests:\n  - https://example.org/wordpress-init.pp\n\
             modules:\n  - example42-apache\n  - example42-php\n  - hunner-wordpress\n\
             attributes:\n  - dbuser: \"{{ variables.user }}\"\n  - dbpass: \"{{ variables.pass }}\"\n  \
             - dbname: \"{{ variables.db }}\"\n  - mysqlhost: \"{{getip('puppet-solo-mysql')}}\"\n",
        );
        let rendered = serde_json::json!({
            "type": "puppet_solo",
            "manifests": ["https://example.org/wordpress-init.pp"],
            "modules": ["example42-apache", "example42-php", "hunner-wordpress"],
            "attributes": [{"dbuser": "wp"}, {"dbpass": "s3cret"}, {"dbname": "wordpress"},
                {"mysqlhost": "127.0.0.7"}],
        });
        let names = names(&raw, &rendered);
        assert_eq!(names["manifests"], "https://example.org/wordpress-init.pp");
        assert_eq!(
            names["modules"],
            "example42-apache example42-php hunner-wordpress"
        );
        assert_eq!(
            names["attributes"],
            "{'dbuser': 'wp'} {'dbpass': 's3cret'} {'dbname': 'wordpress'} {'mysqlhost': '127.0.0.7'}"
        );
    }

    /// Each expected text is Python 3's `str()` of the same value (checked
    /// with python3), keys in the order written.
    #[test]
    fn values_read_as_python_shows_them() {
        let cases = [
            (
                "{b: 1, a: [true, null, 1.5]}",
                "{'b': 1, 'a': [True, None, 1.5]}",
            ),
            ("{q: \"it's\"}", r#"{'q': "it's"}"#),
            ("{q: 'say \"hi\" it''s'}", r#"{'q': 'say "hi" it\'s'}"#),
            ("{p: \"a\\\\b\\nc\\td\"}", r"{'p': 'a\\b\nc\td'}"),
            (
                "{u: café ☕, c: \"\\x01\"}",
                r"{'u': 'café ☕', 'c': '\x01'}",
            ),
            (
                "{f: 2.0, g: 1.0e+20, h: 0.00001, i: 123.25}",
                "{'f': 2.0, 'g': 1e+20, 'h': 1e-05, 'i': 123.25}",
            ),
        ];
        for (text, python) in cases {
            let raw = yaml(text);
            assert_eq!(python_str(&raw, &raw.to_json()), python, "{text}");
        }
        let raw = yaml("[x, 3]");
        assert_eq!(joined(&raw, &raw.to_json()), "x 3");
        let raw = yaml("{a: 1, b: 2}");
        assert_eq!(joined(&raw, &raw.to_json()), "a b");
    }
}
