//! `docker`: turns a node's rendered `env` and `command` into a container spec.
//!
//! `env` is a list of `NAME=value` entries (Occopus's form) or a mapping.
//! `command` is a list of arguments, or a string split the way a POSIX shell
//! splits words (quotes and backslashes), as Occopus's docker plugin does.

use occopus_plugin_sdk::contextualiser::*;
use occopus_plugin_sdk::parse_section;
use serde::Deserialize;
use std::collections::BTreeMap;

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "docker contextualisation",
  "type": "object",
  "required": ["type"],
  "additionalProperties": false,
  "properties": {
    "type": {"const": "docker"},
    "env": {"type": ["array", "object"], "items": {"type": "string"}},
    "command": {"type": ["string", "array"], "items": {"type": "string"}},
    "attributes": {"type": "object"},
    "context_variables": {}
  }
}"#;

#[derive(Deserialize)]
#[serde(untagged)]
enum Env {
    List(Vec<String>),
    Map(BTreeMap<String, serde_json::Value>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Command {
    Line(String),
    Args(Vec<String>),
}

#[derive(Deserialize)]
struct Section {
    env: Option<Env>,
    command: Option<Command>,
}

fn env_entries(env: Env) -> Result<Vec<KeyValue>, PluginError> {
    let entries: Vec<KeyValue> = match env {
        Env::List(items) => items
            .into_iter()
            .map(|item| match item.split_once('=') {
                Some((key, value)) if !key.is_empty() => Ok(KeyValue {
                    key: key.to_owned(),
                    value: value.to_owned(),
                }),
                _ => Err(PluginError::InvalidConfig(format!(
                    "env entry `{item}` is not of the form NAME=value"
                ))),
            })
            .collect::<Result<_, _>>()?,
        Env::Map(map) => map
            .into_iter()
            .map(|(key, value)| KeyValue {
                value: match value {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                },
                key,
            })
            .collect(),
    };
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = entries.iter().find(|kv| !seen.insert(kv.key.as_str())) {
        return Err(PluginError::InvalidConfig(format!(
            "env sets `{}` more than once",
            dup.key
        )));
    }
    Ok(entries)
}

/// Splits a command line into words like a POSIX shell (without expansions).
fn split_words(line: &str) -> Result<Vec<String>, PluginError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(unterminated(line, "'")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(unterminated(line, "\"")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(unterminated(line, "\"")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') | None => {}
                    Some(c) => word.push(c),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

fn unterminated(line: &str, quote: &str) -> PluginError {
    PluginError::InvalidConfig(format!(
        "command `{line}` has an unterminated {quote} quote"
    ))
}

struct DockerContext;

impl Contextualiser for DockerContext {
    fn describe() -> ContextualiserInfo {
        ContextualiserInfo {
            name: "docker".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            context_types: vec!["docker".into()],
            context_schema: SCHEMA.into(),
        }
    }

    fn contextualise(section: String, _facts: NodeFacts) -> Result<Payload, PluginError> {
        let section: Section = parse_section(&section)?;
        let env = section
            .env
            .map(env_entries)
            .transpose()?
            .unwrap_or_default();
        let command = match section.command {
            None => None,
            Some(Command::Args(args)) => Some(args),
            Some(Command::Line(line)) => Some(split_words(&line)?),
        };
        if command.as_ref().is_some_and(|c| c.is_empty()) {
            return Err(PluginError::InvalidConfig(
                "command is empty; leave it out to run the image's default command".into(),
            ));
        }
        Ok(Payload::Container(ContainerSpec { env, command }))
    }
}

export_contextualiser!(DockerContext);

#[cfg(test)]
mod tests {
    use super::split_words;

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(
            split_words("sh -c /root/start.sh").unwrap(),
            ["sh", "-c", "/root/start.sh"]
        );
        assert_eq!(
            split_words(r#"sh -c 'echo "a b"; ls' x\ y "q\"t" ''"#).unwrap(),
            ["sh", "-c", "echo \"a b\"; ls", "x y", "q\"t", ""]
        );
        assert!(split_words("echo 'open").is_err());
    }
}
