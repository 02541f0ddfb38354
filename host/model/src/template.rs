//! Jinja2 templates in node definitions, rendered with Occopus's names.
//!
//! A node's templates (its contextualisation, resource and config-management
//! strings, health-check URLs) are rendered just before the node is created,
//! with `infra_id`, `infra_name`, `user_id`, `name`, `node_id`, `variables`,
//! the node's own sections, and the functions `getip(node)`,
//! `getprivip(node)`, `getipall(node)` and `cut(text, start, end)`. `cmd()`
//! runs a command on this machine, so it exists only when the user passes an
//! explicit flag. Undefined names are errors, never empty strings.
//!
//! Every string of a YAML section is rendered on its own, so an error points
//! at the file and line of that string.

use crate::fields::closest;
use crate::location::Location;
use crate::yaml::{Value, Yaml};
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};
use occopus_types::InstanceAddresses;
use serde_json::{Map, Value as Json};
use std::cell::LazyCell;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Where templates look up other nodes' addresses.
pub trait AddressBook: Send + Sync {
    /// The addresses of every instance of `node`, oldest first; `None` when
    /// the infra has no such node, empty when it has no instance yet.
    fn addresses(&self, node: &str) -> Option<Vec<InstanceAddresses>>;
    /// The infra's nodes, for an error that names one it has not.
    fn nodes(&self) -> Vec<String>;
}

/// The identity of the node instance being rendered.
#[derive(Debug, Clone)]
pub struct NodeContext {
    /// The infra's id.
    pub infra_id: String,
    /// `infra_name`.
    pub infra_name: String,
    /// `user_id`.
    pub user_id: Option<String>,
    /// The node's name.
    pub name: String,
    /// The instance id.
    pub node_id: String,
    /// The node's merged variables (shared by its instances' contexts).
    pub variables: Arc<Map<String, Json>>,
    /// Other top-level names (the node's type, scaling, resource, ...),
    /// shared by its instances' contexts.
    pub extra: Arc<Map<String, Json>>,
}

impl NodeContext {
    /// The context of instance `instance_id` of the same node: its own id,
    /// the node's names shared, not copied.
    pub fn for_instance(&self, instance_id: &str) -> NodeContext {
        NodeContext {
            node_id: instance_id.to_string(),
            ..self.clone()
        }
    }
}

/// Why a template did not render.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{location}: {}; {}", self.describe(), self.help)]
pub struct TemplateError {
    /// The node being rendered.
    pub node: String,
    /// Where the error is: the template string's line plus the line inside it.
    pub location: Location,
    /// The line inside a template of several lines, when known.
    line: Option<usize>,
    /// What went wrong.
    pub message: String,
    /// What to do about it.
    pub help: String,
}

impl TemplateError {
    /// The error without its location.
    pub fn describe(&self) -> String {
        format!(
            "template of node `{}`{}: {}",
            self.node,
            self.line
                .map(|l| format!(" (template line {l})"))
                .unwrap_or_default(),
            self.message
        )
    }
}

/// The variables (`variables.NAME`) that `templates` read, or `None` when
/// they may read any: one reads `variables` as a whole (a loop over it, a
/// computed key) or does not parse. What a node's instances are made from
/// depends on these only, so a change to another variable leaves them be.
pub fn variables_used<'a>(templates: impl Iterator<Item = &'a str>) -> Option<BTreeSet<String>> {
    let env = Environment::new();
    let mut used = BTreeSet::new();
    for text in templates.filter(|t| t.contains("{{") || t.contains("{%")) {
        let template = env.template_from_str(text).ok()?;
        for name in template.undeclared_variables(true) {
            if name == "variables" {
                return None;
            }
            if let Some(key) = name.strip_prefix("variables.") {
                used.insert(key.split('.').next().unwrap_or(key).to_string());
            }
        }
    }
    Some(used)
}

/// Renders templates; cheap to clone.
#[derive(Clone)]
pub struct Renderer {
    allow_commands: bool,
    undefined: UndefinedBehavior,
}

impl Renderer {
    /// A renderer; `allow_commands` enables `cmd()`. An undefined name is an
    /// error.
    pub fn new(allow_commands: bool) -> Self {
        Renderer {
            allow_commands,
            undefined: UndefinedBehavior::Strict,
        }
    }

    /// A renderer for scanning what templates ask for: no `cmd()`, and an
    /// undefined name (or any attribute of one) renders empty instead of
    /// stopping the template.
    pub fn scanning() -> Self {
        Renderer {
            allow_commands: false,
            undefined: UndefinedBehavior::Chainable,
        }
    }

    /// Renders every string in `yaml` and returns the result as JSON.
    pub fn render_yaml(
        &self,
        yaml: &Yaml,
        node: &NodeContext,
        addresses: Arc<dyn AddressBook>,
        extra: &[(&str, Json)],
    ) -> Result<Json, TemplateError> {
        let templating = LazyCell::new(|| (self.environment(addresses), context(node, extra)));
        render_tree(&templating, yaml, &node.name)
    }

    /// Renders one string that came from `location`.
    pub fn render_str(
        &self,
        text: &str,
        location: &Location,
        node: &NodeContext,
        addresses: Arc<dyn AddressBook>,
        extra: &[(&str, Json)],
    ) -> Result<String, TemplateError> {
        let templating = LazyCell::new(|| (self.environment(addresses), context(node, extra)));
        render_one(&templating, text, location, &node.name)
    }

    fn environment(&self, addresses: Arc<dyn AddressBook>) -> Environment<'static> {
        let mut env = Environment::new();
        env.set_undefined_behavior(self.undefined);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_fuel(Some(10_000_000));
        let book = addresses.clone();
        env.add_function("getip", move |node: String| {
            first_of(&*book, &node, |a| a.primary().map(str::to_string))
        });
        let book = addresses.clone();
        env.add_function("getprivip", move |node: String| {
            first_of(&*book, &node, |a| {
                a.private.first().or(a.public.first()).cloned()
            })
        });
        let book = addresses;
        env.add_function("getipall", move |node: String| {
            let all = instances(&*book, &node)?;
            Ok(all
                .iter()
                .filter_map(|a| a.primary().map(str::to_string))
                .collect::<Vec<_>>())
        });
        env.add_function(
            "cut",
            |text: String, start: Option<i64>, end: Option<i64>| Ok(slice(&text, start, end)),
        );
        env.add_filter("b64encode", |text: String| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(text)
        });
        let allow = self.allow_commands;
        env.add_function("cmd", move |command: String| run_command(allow, &command));
        env
    }
}

fn context(node: &NodeContext, extra: &[(&str, Json)]) -> minijinja::Value {
    let mut map = (*node.extra).clone();
    map.insert("infra_id".into(), node.infra_id.clone().into());
    map.insert("infra_name".into(), node.infra_name.clone().into());
    map.insert("user_id".into(), node.user_id.clone().into());
    map.insert("name".into(), node.name.clone().into());
    map.insert("node_id".into(), node.node_id.clone().into());
    map.insert("variables".into(), Json::Object((*node.variables).clone()));
    for (key, value) in extra {
        map.insert((*key).into(), value.clone());
    }
    minijinja::Value::from(minijinja::value::Serde(&map))
}

/// The environment and context templates render in, made when the first
/// string that is a template is met: most sections have none, and making
/// them (minijinja's built-ins, the node's variables) cost more than the
/// rest of an instance's preparation.
type Templating<F> = LazyCell<(Environment<'static>, minijinja::Value), F>;

fn render_tree<F: FnOnce() -> (Environment<'static>, minijinja::Value)>(
    templating: &Templating<F>,
    yaml: &Yaml,
    node: &str,
) -> Result<Json, TemplateError> {
    Ok(match &yaml.value {
        Value::String(text) => Json::String(render_one(templating, text, &yaml.location, node)?),
        Value::Seq(items) => Json::Array(
            items
                .iter()
                .map(|item| render_tree(templating, item, node))
                .collect::<Result<_, _>>()?,
        ),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| Ok((k.key_text(), render_tree(templating, v, node)?)))
                .collect::<Result<_, TemplateError>>()?,
        ),
        _ => yaml.to_json(),
    })
}

fn render_one<F: FnOnce() -> (Environment<'static>, minijinja::Value)>(
    templating: &Templating<F>,
    text: &str,
    location: &Location,
    node: &str,
) -> Result<String, TemplateError> {
    if !text.contains("{{") && !text.contains("{%") && !text.contains("{#") {
        return Ok(text.to_string());
    }
    let (env, context) = &**templating;
    env.render_str(text, context).map_err(|error| {
        // Block scalars and imported texts start their first line at
        // `location`, so the template's line N is N - 1 lines below it, and
        // its lines start at `location`'s column.
        let line = error.line().filter(|_| text.contains('\n'));
        let mut location = location.clone();
        if let Some(line) = line {
            location.line += line.saturating_sub(1);
        }
        let explained = explain(&error, text);
        if let Some(column) = explained.column {
            location.column += column - 1;
        }
        TemplateError {
            node: node.to_string(),
            location,
            line,
            message: explained.message,
            help: explained.help,
        }
    })
}

/// The names a template sees besides the node's variables.
const NAMES: &[&str] = &[
    "infra_id",
    "infra_name",
    "user_id",
    "name",
    "node_id",
    "variables",
    "resource",
    "config_management",
    "scaling",
    "filter",
    "type",
    "puppet",
    "ip",
];

/// Functions whose argument is a node's name.
const NODE_FUNCTIONS: &[&str] = &["getip", "getprivip", "getipall"];

/// A template error in words a user can act on.
struct Explained {
    message: String,
    help: String,
    /// 1-based column of the culprit in its template line, when found.
    column: Option<usize>,
}

fn explain(error: &Error, text: &str) -> Explained {
    let detail = error.detail().unwrap_or_default();
    match error.kind() {
        ErrorKind::UndefinedError => explain_undefined(detail, error.line().unwrap_or(1), text),
        ErrorKind::SyntaxError => Explained {
            message: format!("template syntax error: {detail}"),
            help: "text for another template engine goes inside {% raw %}...{% endraw %}"
                .to_string(),
            column: None,
        },
        _ => Explained {
            message: if detail.is_empty() {
                error.to_string()
            } else {
                detail.to_string()
            },
            help: "fix the template".to_string(),
            column: None,
        },
    }
}

/// An undefined name: which, where in its line, and what was meant (a node
/// name left unquoted in `getip(master)`, a typo of a known name).
fn explain_undefined(detail: &str, line: usize, text: &str) -> Explained {
    // minijinja says "`variables.nope` is undefined".
    let name = detail.split('`').nth(1).unwrap_or_default();
    let first = name.split('.').next().unwrap_or_default();
    let line_text = text.lines().nth(line.saturating_sub(1)).unwrap_or_default();
    let at = whole_word(line_text, first);
    let column = at.map(|byte| line_text[..byte].chars().count() + 1);
    let called_by = at.and_then(|byte| {
        let before = line_text[..byte].trim_end().strip_suffix('(')?.trim_end();
        NODE_FUNCTIONS
            .iter()
            .find(|function| before.ends_with(*function))
    });
    let (message, help) = match called_by {
        Some(function) => (
            format!("`{first}` is undefined: {function}() takes a node's name as a string"),
            format!("quote the node's name: {function}('{first}')"),
        ),
        None if name.is_empty() => (
            "undefined name".to_string(),
            "check the spelling, or define it under `variables:`".to_string(),
        ),
        None => {
            let known = format!(
                "the names available are {}, getip(), getprivip(), getipall(), cut()",
                NAMES.join(", ")
            );
            let help = match (first, closest(first, NAMES)) {
                ("variables", _) => format!(
                    "define `{}` under `variables:` (of the infra or of the node), or check its spelling",
                    name.trim_start_matches("variables.")
                ),
                (_, Some(near)) if near != first => format!("did you mean `{near}`? ({known})"),
                _ => format!(
                    "{known}; or define it under `variables:` and write `variables.{first}`"
                ),
            };
            (format!("undefined name `{name}`"), help)
        }
    };
    Explained {
        message,
        help,
        column,
    }
}

/// The byte offset of `word` in `line` as a whole identifier, if there.
fn whole_word(line: &str, word: &str) -> Option<usize> {
    if word.is_empty() {
        return None;
    }
    let is_identifier = |c: char| c.is_alphanumeric() || c == '_';
    line.match_indices(word).map(|(at, _)| at).find(|&at| {
        let before = line[..at].chars().next_back();
        let after = line[at + word.len()..].chars().next();
        !before.is_some_and(|c| is_identifier(c) || c == '.' || c == '\'' || c == '"')
            && !after.is_some_and(is_identifier)
    })
}

fn instances(book: &dyn AddressBook, node: &str) -> Result<Vec<InstanceAddresses>, Error> {
    book.addresses(node).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "there is no node named `{node}` in this infrastructure; its nodes: {}",
                book.nodes().join(", ")
            ),
        )
    })
}

fn first_of(
    book: &dyn AddressBook,
    node: &str,
    pick: impl Fn(&InstanceAddresses) -> Option<String>,
) -> Result<String, Error> {
    instances(book, node)?.iter().find_map(pick).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "node `{node}` has no instance with an address yet; make this node depend on `{node}` so it is created after it"
            ),
        )
    })
}

/// Python's `s[start:end]` on characters.
fn slice(text: &str, start: Option<i64>, end: Option<i64>) -> String {
    let chars: Vec<char> = text.chars().collect();
    let len = chars.len() as i64;
    let clamp = |i: i64| if i < 0 { (len + i).max(0) } else { i.min(len) } as usize;
    let from = clamp(start.unwrap_or(0));
    let to = clamp(end.unwrap_or(len));
    if from >= to {
        return String::new();
    }
    chars[from..to].iter().collect()
}

fn run_command(allowed: bool, command: &str) -> Result<String, Error> {
    if !allowed {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "cmd('{command}') would run a command on this machine; pass --allow-template-commands to allow it"
            ),
        ));
    }
    let mut words = command.split_whitespace();
    let program = words
        .next()
        .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "cmd() needs a command"))?;
    let output = std::process::Command::new(program)
        .args(words)
        .output()
        .map_err(|e| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!("cmd('{command}'): {e}"),
            )
        })?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::Path;

    struct Book(HashMap<&'static str, Vec<InstanceAddresses>>);
    impl AddressBook for Book {
        fn addresses(&self, node: &str) -> Option<Vec<InstanceAddresses>> {
            self.0.get(node).cloned()
        }

        fn nodes(&self) -> Vec<String> {
            let mut nodes: Vec<String> = self.0.keys().map(|n| n.to_string()).collect();
            nodes.sort();
            nodes
        }
    }

    fn node() -> NodeContext {
        NodeContext {
            infra_id: "i-1".into(),
            infra_name: "demo".into(),
            user_id: None,
            name: "web".into(),
            node_id: "web-1".into(),
            variables: Arc::new(
                serde_json::json!({"port": 8080})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
            extra: Arc::default(),
        }
    }

    fn book() -> Arc<dyn AddressBook> {
        let a = |p: &str, q: &str| InstanceAddresses {
            public: vec![p.into()],
            private: vec![q.into()],
        };
        Arc::new(Book(HashMap::from([
            (
                "db",
                vec![a("10.0.0.1", "192.168.0.1"), a("10.0.0.2", "192.168.0.2")],
            ),
            ("lb", vec![]),
        ])))
    }

    fn render(text: &str) -> Result<String, TemplateError> {
        let location = Location::start_of(Path::new("defs.yaml").into());
        Renderer::new(false).render_str(text, &location, &node(), book(), &[])
    }

    #[test]
    fn occopus_names_and_functions_render() {
        let out = render(
            "{{infra_name}}/{{infra_id}}/{{name}}/{{node_id}}:{{variables.port}} {{getip('db')}} {{getprivip('db')}} {{getipall('db')|join(',')}} {{cut('abcdef', 1, 3)}} {% raw %}{{range .}}{% endraw %}",
        )
        .unwrap();
        assert_eq!(
            out,
            "demo/i-1/web/web-1:8080 10.0.0.1 192.168.0.1 10.0.0.1,10.0.0.2 bc {{range .}}"
        );
    }

    #[test]
    fn undefined_names_and_missing_instances_are_errors_with_locations() {
        let error = render("line1\n{{ variables.nope }}").unwrap_err();
        let text = error.to_string();
        assert!(
            text.starts_with(
                "defs.yaml:2:4: template of node `web` (template line 2): undefined name `variables.nope`; define `nope` under `variables:`"
            ),
            "{text}"
        );
        let error = render("x {{ infra_nme }}").unwrap_err();
        assert_eq!(error.location.column, 6);
        assert_eq!(error.message, "undefined name `infra_nme`");
        assert!(
            error.help.starts_with("did you mean `infra_name`?"),
            "{}",
            error.help
        );
        // Occopus's cqueue tutorial wrote the node's name unquoted.
        let error = render("a: {{ getip(master) }}").unwrap_err();
        assert_eq!(error.location.column, 13);
        assert_eq!(
            error.message,
            "`master` is undefined: getip() takes a node's name as a string"
        );
        assert_eq!(error.help, "quote the node's name: getip('master')");
        let error = render("{{ getip('lb') }}").unwrap_err().to_string();
        assert!(
            error.contains("node `lb` has no instance with an address yet"),
            "{error}"
        );
        let error = render("{{ getip('ghost') }}").unwrap_err().to_string();
        assert!(error.contains("no node named `ghost`"), "{error}");
        assert!(error.contains("its nodes: db, lb"), "{error}");
    }

    #[test]
    fn cmd_needs_the_flag() {
        let error = render("{{ cmd('echo hi') }}").unwrap_err().to_string();
        assert!(error.contains("--allow-template-commands"), "{error}");
        let location = Location::start_of(Path::new("d.yaml").into());
        let out = Renderer::new(true)
            .render_str("{{ cmd('echo hi') }}", &location, &node(), book(), &[])
            .unwrap();
        assert_eq!(out, "hi\n");
    }
}
