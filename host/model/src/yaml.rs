//! YAML with locations: every value remembers the file, line and column it came
//! from, so that validation can point at the exact spot.
//!
//! Occopus files rely on YAML features that a plain `serde_yaml` load would
//! either lose (locations) or reject (custom tags), so files are read from the
//! parser's marked events:
//! - anchors and aliases are expanded (a dependency names its nodes by alias),
//!   within a budget of values so that an alias bomb cannot exhaust memory;
//! - `!yaml_import {url: file://rel.yaml}` is replaced by the parsed file and
//!   `!text_import {url: file://rel.txt}` by its text; relative paths resolve
//!   against the importing file, other URL schemes are refused;
//! - plain scalars are typed as PyYAML (YAML 1.1) types them, because that is
//!   what Occopus users' files were written against (`ping: False`, `yes`).

use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::location::Location;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A YAML value with its location.
#[derive(Debug, Clone, PartialEq)]
pub struct Yaml {
    /// The value.
    pub value: Value,
    /// Where it starts.
    pub location: Location,
}

/// The kinds of YAML value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    Seq(Vec<Yaml>),
    /// Keys in file order; duplicate keys are reported when loading.
    Map(Vec<(Yaml, Yaml)>),
}

impl Yaml {
    /// A short name of the value's kind, for messages.
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "empty (null)",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::String(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The entries, if this is a mapping.
    pub fn as_map(&self) -> Option<&[(Yaml, Yaml)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The items, if this is a list.
    pub fn as_seq(&self) -> Option<&[Yaml]> {
        match &self.value {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// The value under the string key `key`, if this is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Yaml> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// The value as JSON (what drivers and templates receive). Non-string keys
    /// become their text.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::String(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Yaml::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.key_text(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// JSON as YAML, every value located at `location` (for definitions that
    /// were stored, whose original positions are gone).
    pub fn from_json(json: &serde_json::Value, location: &Location) -> Yaml {
        use serde_json::Value as J;
        let value = match json {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => n
                .as_i64()
                .map_or_else(|| Value::Float(n.as_f64().unwrap_or(f64::NAN)), Value::Int),
            J::String(s) => Value::String(s.clone()),
            J::Array(items) => {
                Value::Seq(items.iter().map(|i| Yaml::from_json(i, location)).collect())
            }
            J::Object(map) => Value::Map(
                map.iter()
                    .map(|(k, v)| {
                        (
                            Yaml::from_json(&J::String(k.clone()), location),
                            Yaml::from_json(v, location),
                        )
                    })
                    .collect(),
            ),
        };
        Yaml {
            value,
            location: location.clone(),
        }
    }

    /// A key as text.
    pub fn key_text(&self) -> String {
        match &self.value {
            Value::String(s) => s.clone(),
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Seq(_) | Value::Map(_) => self.to_json().to_string(),
        }
    }

    /// The value at a JSON pointer (`/a/0/b`) into [`Yaml::to_json`]'s shape.
    pub fn pointer(&self, pointer: &str) -> Option<&Yaml> {
        let mut here = self;
        for raw in pointer.split('/').skip(1) {
            let segment = raw.replace("~1", "/").replace("~0", "~");
            here = match &here.value {
                Value::Map(entries) => entries
                    .iter()
                    .find(|(k, _)| k.key_text() == segment)
                    .map(|(_, v)| v)?,
                Value::Seq(items) => items.get(segment.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(here)
    }

    /// The location of the key `key` in this mapping, else this value's.
    pub fn key_location(&self, key: &str) -> &Location {
        self.as_map()
            .and_then(|entries| entries.iter().find(|(k, _)| k.as_str() == Some(key)))
            .map_or(&self.location, |(k, _)| &k.location)
    }
}

/// Which files `!yaml_import` / `!text_import` may read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Imports {
    /// Any file the process can read (the user's own files on the command line).
    #[default]
    Anywhere,
    /// Only files inside this directory (after resolving `..` and symlinks):
    /// descriptions posted to the REST service, whose operator allowed it.
    Within(Arc<Path>),
    /// None: the input may not read files at all.
    Nowhere,
}

/// Limits on what one load may expand to.
#[derive(Debug, Clone)]
pub struct LoadLimits {
    /// Most values after alias expansion, over the file and its imports.
    pub max_values: usize,
    /// Deepest nesting of lists and mappings.
    pub max_depth: usize,
    /// Deepest chain of imports.
    pub max_import_depth: usize,
    /// Which files `!yaml_import` / `!text_import` may read.
    pub imports: Imports,
}

impl Default for LoadLimits {
    fn default() -> Self {
        LoadLimits {
            max_values: 1_000_000,
            max_depth: 128,
            max_import_depth: 16,
            imports: Imports::Anywhere,
        }
    }
}

/// Whether `path` exists and lies inside `root` once both are resolved
/// (`..`, symlinks), so that no path trick leaves the root.
fn is_within(path: &Path, root: &Path) -> bool {
    match (path.canonicalize(), root.canonicalize()) {
        (Ok(path), Ok(root)) => path.starts_with(root),
        _ => false,
    }
}

/// The directory of `file`, where its relative imports resolve.
fn beside(file: &Path) -> Arc<Path> {
    Arc::from(file.parent().unwrap_or(Path::new(".")))
}

/// Loads a YAML file with its imports. Every problem is added to `diagnostics`;
/// `None` when the file could not be read or parsed at all.
pub fn load_file(path: &Path, limits: LoadLimits, diagnostics: &mut Diagnostics) -> Option<Yaml> {
    let file: Arc<Path> = Arc::from(path);
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mut budget = limits.max_values;
            load_nested(
                &text,
                file,
                beside(path),
                limits,
                &mut budget,
                &mut Vec::new(),
                diagnostics,
            )
        }
        Err(e) => {
            diagnostics.push(Diagnostic::error(
                None,
                format!("cannot read {}: {e}", path.display()),
                "check the path and its permissions",
            ));
            None
        }
    }
}

/// Loads YAML text that came from no file (posted to the REST service),
/// named `name` in messages (say `<posted description>`, as compilers say
/// `<stdin>`). Its relative imports resolve against the one directory imports
/// are confined to, if any, else against `name`'s directory.
pub fn load_str(
    text: &str,
    name: Arc<Path>,
    limits: LoadLimits,
    diagnostics: &mut Diagnostics,
) -> Option<Yaml> {
    let base: Arc<Path> = match &limits.imports {
        Imports::Within(root) => root.clone(),
        _ => beside(&name),
    };
    let mut budget = limits.max_values;
    load_nested(
        text,
        name,
        base,
        limits,
        &mut budget,
        &mut Vec::new(),
        diagnostics,
    )
}

/// Loads `text` named `file`, its relative imports resolving against `base`.
fn load_nested(
    text: &str,
    file: Arc<Path>,
    base: Arc<Path>,
    limits: LoadLimits,
    budget: &mut usize,
    import_chain: &mut Vec<PathBuf>,
    diagnostics: &mut Diagnostics,
) -> Option<Yaml> {
    let mut builder = TreeBuilder {
        file: file.clone(),
        base,
        limits,
        budget,
        import_chain,
        diagnostics,
        stack: Vec::new(),
        anchors: HashMap::new(),
        root: None,
        aborted: false,
    };
    // A UTF-8 byte-order mark (some editors write one) is no content:
    // PyYAML, the original's parser, skips it too.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, false) {
        let location = marker_location(&file, e.marker());
        let (message, help) = describe_syntax_error(text, e.marker(), e.info());
        builder
            .diagnostics
            .push(Diagnostic::error(Some(location), message, help));
        return None;
    }
    if builder.aborted {
        return None;
    }
    Some(builder.root.take().unwrap_or(Yaml {
        value: Value::Null,
        location: Location::start_of(file),
    }))
}

/// The deepest nesting of `[ ]` and `{ }` the parser takes.
const MAX_FLOW_NESTING: u32 = u8::MAX as u32;

/// What a parse error says, in the user's terms: the limit and its value,
/// the alias and its anchor, or the parser's own words.
fn describe_syntax_error(text: &str, marker: &Marker, info: &str) -> (String, &'static str) {
    if info == "recursion limit exceeded" {
        return (
            format!(
                "`[ ]` and `{{ }}` are nested deeper than {MAX_FLOW_NESTING} levels, the YAML \
                 parser's limit"
            ),
            "flatten the structure: no description needs that much nesting",
        );
    }
    if info.ends_with("unknown anchor") {
        let name: String = text
            .chars()
            .skip(marker.index() + 1)
            .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | ']' | '}'))
            .collect();
        return (
            format!("the alias `*{name}` names an anchor `&{name}` that is not defined before it"),
            "define the anchor (`&name`) before its first alias (`*name`), or fix the spelling",
        );
    }
    (
        format!("invalid YAML: {info}"),
        "fix the YAML syntax here (indentation, quotes, a missing ':' or '-')",
    )
}

fn marker_location(file: &Arc<Path>, marker: &Marker) -> Location {
    Location {
        file: file.clone(),
        line: marker.line().max(1),
        column: marker.col() + 1,
    }
}

/// A list or mapping being built, with its anchor and tag.
struct Frame {
    location: Location,
    anchor: usize,
    tag: Option<Tag>,
    items: Vec<Yaml>,
    is_map: bool,
}

/// Builds a [`Yaml`] tree from the parser's events.
struct TreeBuilder<'a> {
    file: Arc<Path>,
    /// Where relative imports resolve.
    base: Arc<Path>,
    limits: LoadLimits,
    budget: &'a mut usize,
    import_chain: &'a mut Vec<PathBuf>,
    diagnostics: &'a mut Diagnostics,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Yaml>,
    root: Option<Yaml>,
    aborted: bool,
}

impl TreeBuilder<'_> {
    fn abort(&mut self, location: Location, message: String, help: &str) {
        if !self.aborted {
            self.diagnostics
                .push(Diagnostic::error(Some(location), message, help));
        }
        self.aborted = true;
    }

    /// Charges `count` values against the budget; false once it is exhausted.
    fn charge(&mut self, count: usize, location: &Location) -> bool {
        if *self.budget < count {
            let max = self.limits.max_values;
            self.abort(
                location.clone(),
                format!("the document expands to more than {max} values (an alias bomb?)"),
                "use fewer aliases of large anchors",
            );
            return false;
        }
        *self.budget -= count;
        true
    }

    fn finish(&mut self, anchor: usize, value: Yaml) {
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.stack.last_mut() {
            Some(frame) => frame.items.push(value),
            None => self.root = Some(value),
        }
    }

    fn scalar(
        &mut self,
        text: String,
        style: TScalarStyle,
        anchor: usize,
        tag: Option<Tag>,
        mut loc: Location,
    ) {
        // A quoted scalar's place is its first character, not its quote, so
        // that a column inside it (a template's error) counts from there.
        if matches!(
            style,
            TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted
        ) {
            loc.column += 1;
        }
        let value = match tag.as_ref().map(tag_name) {
            Some(TagName::Str) => Value::String(text),
            Some(TagName::Import(kind)) => {
                self.abort(
                    loc,
                    format!("`!{kind}` needs a mapping with a `url`, not a string"),
                    "write it as `!yaml_import {url: file://relative/path}`",
                );
                return;
            }
            Some(TagName::Other(name)) => {
                self.abort(
                    loc,
                    format!("unknown YAML tag `{name}`"),
                    "occopus knows !yaml_import, !text_import and the standard !!str",
                );
                return;
            }
            None if style == TScalarStyle::Plain => plain_scalar(text),
            None => Value::String(text),
        };
        self.finish(
            anchor,
            Yaml {
                value,
                location: loc,
            },
        );
    }

    fn close(&mut self) {
        let Some(frame) = self.stack.pop() else {
            return;
        };
        let value = if frame.is_map {
            let mut entries = Vec::with_capacity(frame.items.len() / 2);
            let mut items = frame.items.into_iter();
            while let (Some(k), Some(v)) = (items.next(), items.next()) {
                if let Some((first, _)) = entries.iter().find(|(seen, _): &&(Yaml, Yaml)| {
                    seen.value == k.value && matches!(k.value, Value::String(_))
                }) {
                    let first: &Yaml = first;
                    self.diagnostics.push(Diagnostic::error(
                        Some(k.location.clone()),
                        format!(
                            "duplicate key `{}` (first at line {})",
                            k.key_text(),
                            first.location.line
                        ),
                        "remove one of them; YAML keeps only one",
                    ));
                    continue;
                }
                entries.push((k, v));
            }
            Value::Map(entries)
        } else {
            Value::Seq(frame.items)
        };
        // A block mapping's start event comes at its first `:`; its first
        // key is where a reader sees it start.
        let location = match &value {
            Value::Map(entries) => entries
                .first()
                .map(|(k, _)| k.location.clone())
                .filter(|first| *first < frame.location)
                .unwrap_or(frame.location),
            _ => frame.location,
        };
        let mut node = Yaml { value, location };
        match frame.tag.as_ref().map(tag_name) {
            None | Some(TagName::Str) => {}
            Some(TagName::Import(kind)) => match self.import(kind, &node) {
                Some(imported) => node = imported,
                None => {
                    self.aborted = true;
                    return;
                }
            },
            Some(TagName::Other(name)) => {
                self.abort(
                    node.location,
                    format!("unknown YAML tag `{name}`"),
                    "occopus knows !yaml_import and !text_import",
                );
                return;
            }
        }
        self.finish(frame.anchor, node);
    }

    /// Resolves `!yaml_import` / `!text_import` `{url: file://...}`.
    fn import(&mut self, kind: ImportKind, node: &Yaml) -> Option<Yaml> {
        let help = "write it as `!yaml_import {url: file://path/relative/to/this/file}`";
        let Some(url) = node.get("url").and_then(Yaml::as_str) else {
            self.abort(
                node.location.clone(),
                format!("`!{kind}` needs a `url` key with a string value"),
                help,
            );
            return None;
        };
        let url_location = node
            .get("url")
            .map_or(&node.location, |u| &u.location)
            .clone();
        if self.limits.imports == Imports::Nowhere {
            self.abort(
                url_location,
                format!("`!{kind}` of `{url}` is not allowed here"),
                "inline the imported content; this input may not read files",
            );
            return None;
        }
        let Some(relative) = url.strip_prefix("file://") else {
            self.abort(
                url_location,
                format!("`!{kind}` supports only file:// URLs, not `{url}`"),
                "download the file next to this one and import it as file://NAME",
            );
            return None;
        };
        let path = self.base.join(relative);
        if let Imports::Within(root) = &self.limits.imports
            && !is_within(&path, root)
        {
            self.abort(
                url_location,
                format!(
                    "`!{kind}` of `{url}` reads outside {}, the only directory imports may read here",
                    root.display()
                ),
                "put the file in that directory and import it by a path relative to it",
            );
            return None;
        }
        if self.import_chain.contains(&path)
            || self.import_chain.len() >= self.limits.max_import_depth
        {
            self.abort(
                url_location,
                format!(
                    "`!{kind}` of {} would import itself (or nests too deep)",
                    path.display()
                ),
                "remove the circular import",
            );
            return None;
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                self.abort(
                    url_location,
                    format!("cannot read {} (from `{url}`): {e}", path.display()),
                    "the path is relative to the file that imports it",
                );
                return None;
            }
        };
        let file: Arc<Path> = Arc::from(path.as_path());
        match kind {
            ImportKind::Text => {
                if !self.charge(1, &url_location) {
                    return None;
                }
                Some(Yaml {
                    value: Value::String(text),
                    location: Location::start_of(file),
                })
            }
            ImportKind::Yaml => {
                let base = beside(&path);
                self.import_chain.push(path);
                let loaded = load_nested(
                    &text,
                    file,
                    base,
                    self.limits.clone(),
                    self.budget,
                    self.import_chain,
                    self.diagnostics,
                );
                self.import_chain.pop();
                loaded
            }
        }
    }
}

fn count_values(node: &Yaml) -> usize {
    1 + match &node.value {
        Value::Seq(items) => items.iter().map(count_values).sum(),
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| count_values(k) + count_values(v))
            .sum(),
        _ => 0,
    }
}

impl MarkedEventReceiver for TreeBuilder<'_> {
    fn on_event(&mut self, event: Event, mark: Marker) {
        if self.aborted {
            return;
        }
        let location = marker_location(&self.file, &mark);
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                if !self.charge(1, &location) {
                    return;
                }
                self.scalar(text, style, anchor, tag, location);
            }
            Event::SequenceStart(ref anchor, ref tag)
            | Event::MappingStart(ref anchor, ref tag) => {
                let (anchor, tag) = (*anchor, tag.clone());
                if !self.charge(1, &location) {
                    return;
                }
                if self.stack.len() >= self.limits.max_depth {
                    let max = self.limits.max_depth;
                    self.abort(
                        location,
                        format!("lists and mappings nest deeper than {max} levels"),
                        "flatten the document",
                    );
                    return;
                }
                let is_map = matches!(event, Event::MappingStart(..));
                self.stack.push(Frame {
                    location,
                    anchor,
                    tag,
                    items: Vec::new(),
                    is_map,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => self.close(),
            Event::Alias(anchor) => match self.anchors.get(&anchor).cloned() {
                Some(mut value) => {
                    if !self.charge(count_values(&value), &location) {
                        return;
                    }
                    value.location = location;
                    self.finish(0, value);
                }
                None => self.abort(
                    location,
                    "alias of an unknown anchor".into(),
                    "define the anchor (&name) before using it (*name)",
                ),
            },
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum ImportKind {
    Yaml,
    Text,
}

impl fmt::Display for ImportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ImportKind::Yaml => "yaml_import",
            ImportKind::Text => "text_import",
        })
    }
}

enum TagName {
    Str,
    Import(ImportKind),
    Other(String),
}

fn tag_name(tag: &Tag) -> TagName {
    match (tag.handle.as_str(), tag.suffix.as_str()) {
        ("!", "yaml_import") => TagName::Import(ImportKind::Yaml),
        ("!", "text_import") => TagName::Import(ImportKind::Text),
        ("!!", "str") | ("tag:yaml.org,2002:", "str") => TagName::Str,
        (handle, suffix) => TagName::Other(format!("{handle}{suffix}")),
    }
}

/// Types a plain scalar as YAML 1.1 (PyYAML) does.
fn plain_scalar(text: String) -> Value {
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => {
            return Value::Bool(true);
        }
        "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => {
            return Value::Bool(false);
        }
        ".inf" | ".Inf" | ".INF" | "+.inf" => return Value::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    let digits = text.replace('_', "");
    let (sign, unsigned) = match digits.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, digits.strip_prefix('+').unwrap_or(&digits)),
    };
    let radix_parse = |s: &str, radix| i64::from_str_radix(s, radix).ok().map(|v| sign * v);
    let int = if let Some(hex) = unsigned.strip_prefix("0x") {
        radix_parse(hex, 16)
    } else if let Some(oct) = unsigned.strip_prefix("0o") {
        radix_parse(oct, 8)
    } else if unsigned.starts_with(|c: char| c.is_ascii_digit())
        && unsigned.chars().all(|c| c.is_ascii_digit())
    {
        radix_parse(unsigned, 10)
    } else {
        None
    };
    if let Some(int) = int {
        return Value::Int(int);
    }
    let looks_numeric = digits
        .trim_start_matches(['-', '+'])
        .starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && digits.chars().any(|c| c.is_ascii_digit());
    if looks_numeric && let Ok(float) = digits.parse::<f64>() {
        return Value::Float(float);
    }
    Value::String(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> (Option<Yaml>, Diagnostics) {
        let mut diagnostics = Diagnostics::default();
        let yaml = load_str(
            text,
            Arc::from(Path::new("t.yaml")),
            LoadLimits::default(),
            &mut diagnostics,
        );
        (yaml, diagnostics)
    }

    #[test]
    fn values_carry_their_line_and_column() {
        let (yaml, _) = load("a: 1\nb:\n  - x\n  - {c: true}\n");
        let yaml = yaml.unwrap();
        let b = yaml.get("b").unwrap();
        assert_eq!((b.location.line, b.location.column), (3, 3));
        let c = yaml.pointer("/b/1/c").unwrap();
        assert_eq!(c.value, Value::Bool(true));
        assert_eq!((c.location.line, c.location.column), (4, 9));
        assert_eq!(yaml.key_location("b").line, 2);
    }

    #[test]
    fn syntax_errors_name_the_limit_and_the_anchor() {
        let deep = format!("a: {}{}\n", "[".repeat(300), "]".repeat(300));
        let (_, diagnostics) = load(&deep);
        let said = diagnostics.to_string();
        assert!(said.contains("deeper than 255 levels"), "{said}");
        let (_, diagnostics) = load("a: &one 1\nb: *onee\n");
        let said = diagnostics.to_string();
        assert!(
            said.contains("`*onee`") && said.contains("`&onee`"),
            "{said}"
        );
        assert!(said.contains("t.yaml:2:4"), "{said}");
    }

    #[test]
    fn a_byte_order_mark_is_skipped() {
        let (yaml, diagnostics) = load("\u{feff}infra_name: x\n");
        assert!(diagnostics.is_empty(), "{diagnostics}");
        let yaml = yaml.unwrap();
        let name = yaml.get("infra_name").unwrap();
        assert_eq!(name.value, Value::String("x".into()));
        assert_eq!(yaml.key_location("infra_name").line, 1);
    }

    #[test]
    fn scalars_are_typed_as_pyyaml_types_them() {
        let (yaml, _) = load("[False, yes, ~, 12, 0x1f, 1.5, '12', text, 1e3, -.inf]");
        let json = yaml.unwrap().to_json();
        assert_eq!(
            json.to_string(),
            r#"[false,true,null,12,31,1.5,"12","text",1000.0,null]"#
        );
    }

    #[test]
    fn aliases_expand_and_anchors_on_scalars_work() {
        let (yaml, d) = load("a: &A {name: x}\nb: *A\nc: &S hello\nd: *S\n");
        assert!(d.is_empty(), "{d}");
        let yaml = yaml.unwrap();
        assert_eq!(yaml.pointer("/b/name").unwrap().as_str(), Some("x"));
        assert_eq!(yaml.get("d").unwrap().as_str(), Some("hello"));
        assert_eq!(yaml.get("b").unwrap().location.line, 2);
    }

    #[test]
    fn imports_can_be_confined_to_one_directory_or_refused() {
        let root = tempfile::tempdir().unwrap();
        let allowed = root.path().join("allowed");
        std::fs::create_dir(&allowed).unwrap();
        std::fs::write(allowed.join("inner.yaml"), "k: v\n").unwrap();
        std::fs::write(root.path().join("secret.yaml"), "password: x\n").unwrap();
        std::os::unix::fs::symlink(root.path().join("secret.yaml"), allowed.join("link.yaml"))
            .unwrap();
        let posted: Arc<Path> = Arc::from(allowed.join("posted.yaml").as_path());
        let within = LoadLimits {
            imports: Imports::Within(Arc::from(allowed.as_path())),
            ..LoadLimits::default()
        };
        let load_posted = |text: &str, limits: &LoadLimits| {
            let mut d = Diagnostics::default();
            let yaml = load_str(text, posted.clone(), limits.clone(), &mut d);
            (yaml, d.to_string())
        };

        let (yaml, d) = load_posted("x: !yaml_import {url: file://inner.yaml}\n", &within);
        assert_eq!(
            yaml.unwrap().pointer("/x/k").unwrap().as_str(),
            Some("v"),
            "{d}"
        );
        for escape in [
            "file://../secret.yaml",
            "file://link.yaml",
            "file:///etc/passwd",
        ] {
            let (yaml, d) = load_posted(&format!("x: !text_import {{url: '{escape}'}}\n"), &within);
            assert!(yaml.is_none(), "{escape} was read");
            assert!(d.contains("reads outside"), "{d}");
            assert!(!d.contains("password"), "{d}");
        }
        let nowhere = LoadLimits {
            imports: Imports::Nowhere,
            ..LoadLimits::default()
        };
        let (yaml, d) = load_posted("x: !yaml_import {url: file://inner.yaml}\n", &nowhere);
        assert!(yaml.is_none());
        assert!(d.contains("is not allowed here"), "{d}");
    }

    #[test]
    fn an_alias_bomb_is_stopped() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (i, prev) in ('b'..='k').zip('a'..='j') {
            text.push_str(&format!(
                "{i}: &{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        let (yaml, d) = load(&text);
        assert!(yaml.is_none());
        assert!(d.to_string().contains("alias bomb"), "{d}");
    }

    #[test]
    fn syntax_errors_and_duplicates_have_locations() {
        let (_, d) = load("a: 1\n b: 2\n");
        assert!(d.to_string().starts_with("t.yaml:2:"), "{d}");
        let (_, d) = load("a: 1\nb: 2\na: 3\n");
        assert!(
            d.to_string()
                .contains("t.yaml:3:1: error: duplicate key `a` (first at line 1)"),
            "{d}"
        );
    }

    #[test]
    fn imports_resolve_relative_to_the_importing_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(
            dir.path().join("sub/inner.yaml"),
            "k: !text_import {url: file://t.txt}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("sub/t.txt"), "hello {{ name }}\n").unwrap();
        let main = dir.path().join("main.yaml");
        std::fs::write(&main, "x: !yaml_import\n  url: file://sub/inner.yaml\n").unwrap();
        let mut d = Diagnostics::default();
        let yaml = load_file(&main, LoadLimits::default(), &mut d).unwrap();
        assert!(d.is_empty(), "{d}");
        let k = yaml.pointer("/x/k").unwrap();
        assert_eq!(k.as_str(), Some("hello {{ name }}\n"));
        assert!(k.location.file.ends_with("sub/t.txt"));

        std::fs::write(
            &main,
            "x: !yaml_import {url: 'http://example.org/a.yaml'}\n",
        )
        .unwrap();
        let mut d = Diagnostics::default();
        assert!(load_file(&main, LoadLimits::default(), &mut d).is_none());
        assert!(
            d.to_string()
                .contains("main.yaml:1:24: error: `!yaml_import` supports only file:// URLs"),
            "{d}"
        );
    }
}
