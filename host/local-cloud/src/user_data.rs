//! How a local node applies its cloud-init user-data.
//!
//! A local node is a process group in its own directory, not a virtual
//! machine, so only the parts of cloud-config that make sense there are
//! applied, in cloud-init's order: `bootcmd`, then `write_files` (deferred ones
//! too), then `runcmd`. Every other key is reported as "not applied on local
//! nodes" in the node's log, never silently dropped. A user-data script
//! (`#!...`) is written to the node's directory and run as its only command.
//!
//! Files are written through a capability handle on the node's directory
//! (cap-std): an absolute path is placed under the directory, and a path that
//! would leave it (`..`, or a symlink pointing outside) is refused by the
//! operating-system-level checks of cap-std rather than by string tests.

use base64::Engine as _;
use cap_std::fs::{Dir, OpenOptions, Permissions, PermissionsExt};
use serde_yaml::Value;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

/// What goes wrong applying user-data to a local node.
#[derive(Debug, thiserror::Error)]
pub enum UserDataError {
    /// The user-data is not something a local node can run.
    #[error("user-data: {0}")]
    Invalid(String),
    /// A `write_files` path would leave the node's directory.
    #[error(
        "write_files: `{path}` would be written outside the node's directory ({reason}); \
         paths are placed under the node's directory and may not leave it"
    )]
    Escape { path: String, reason: String },
    /// Writing a file failed for another reason.
    #[error("write_files: cannot write `{path}`: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// One command: its argument vector (a string entry becomes `sh -c ENTRY`).
pub type Command = Vec<String>;

/// A file `write_files` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileToWrite {
    /// The path as written in the user-data.
    pub path: String,
    /// The decoded content.
    pub content: Vec<u8>,
    /// Unix permission bits.
    pub mode: u32,
    /// Append instead of replacing.
    pub append: bool,
}

/// Everything a local node does at boot, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootPlan {
    /// `bootcmd` entries, run first, each to completion.
    pub bootcmd: Vec<Command>,
    /// `write_files` entries, written after `bootcmd`.
    pub files: Vec<FileToWrite>,
    /// `runcmd` entries, run last; the node is running while they run.
    pub runcmd: Vec<Command>,
    /// What the user-data asked for that a local node does not do, one line each.
    pub not_applied: Vec<String>,
}

impl BootPlan {
    /// Reads user-data: a `#cloud-config` document, a `#!` script, or nothing.
    pub fn parse(user_data: &str) -> Result<BootPlan, UserDataError> {
        let trimmed = user_data.trim_start();
        if trimmed.is_empty() {
            return Ok(BootPlan::default());
        }
        if trimmed.starts_with("#!") {
            return Ok(BootPlan {
                files: vec![FileToWrite {
                    path: "user-data.script".into(),
                    content: user_data.as_bytes().to_vec(),
                    mode: 0o755,
                    append: false,
                }],
                runcmd: vec![vec!["./user-data.script".into()]],
                ..BootPlan::default()
            });
        }
        if !trimmed.starts_with("#cloud-config") {
            let first = trimmed.lines().next().unwrap_or_default();
            return Err(UserDataError::Invalid(format!(
                "local nodes run a `#cloud-config` document or a `#!` script; this starts with `{first}`"
            )));
        }
        let document: Value = serde_yaml::from_str(user_data)
            .map_err(|e| UserDataError::Invalid(format!("the cloud-config is not YAML: {e}")))?;
        let mapping = match document {
            Value::Null => return Ok(BootPlan::default()),
            Value::Mapping(mapping) => mapping,
            _ => {
                return Err(UserDataError::Invalid(
                    "the cloud-config must be a mapping of cloud-init keys".into(),
                ));
            }
        };
        let mut plan = BootPlan::default();
        for (key, value) in &mapping {
            let key = key.as_str().unwrap_or_default();
            match key {
                "bootcmd" => plan.bootcmd = commands(key, value)?,
                "runcmd" => plan.runcmd = commands(key, value)?,
                "write_files" => plan.files = files(value, &mut plan.not_applied)?,
                other => plan
                    .not_applied
                    .push(format!("`{other}` is not applied on local nodes")),
            }
        }
        Ok(plan)
    }

    /// Writes the plan's files into the node's directory.
    pub fn write_files(&self, node_dir: &Dir) -> Result<(), UserDataError> {
        self.files
            .iter()
            .try_for_each(|file| write_file(node_dir, file))
    }
}

/// `bootcmd` / `runcmd`: a list whose entries are a string (run by `sh -c`) or
/// a list of arguments (run directly).
fn commands(key: &str, value: &Value) -> Result<Vec<Command>, UserDataError> {
    let Value::Sequence(entries) = value else {
        return Err(UserDataError::Invalid(format!(
            "`{key}` must be a list of commands"
        )));
    };
    entries
        .iter()
        .enumerate()
        .map(|(i, entry)| match entry {
            Value::Sequence(args) if !args.is_empty() => args
                .iter()
                .map(|a| scalar(a).ok_or_else(|| bad_command(key, i)))
                .collect(),
            other => scalar(other)
                .map(|line| vec!["sh".into(), "-c".into(), line])
                .ok_or_else(|| bad_command(key, i)),
        })
        .collect()
}

fn bad_command(key: &str, index: usize) -> UserDataError {
    UserDataError::Invalid(format!(
        "`{key}` entry {} must be a command line or a list of arguments",
        index + 1
    ))
}

/// A YAML scalar as text (cloud-init accepts numbers and booleans as words).
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn files(value: &Value, not_applied: &mut Vec<String>) -> Result<Vec<FileToWrite>, UserDataError> {
    let Value::Sequence(entries) = value else {
        return Err(UserDataError::Invalid(
            "`write_files` must be a list".into(),
        ));
    };
    entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let field = |name: &str| entry.get(name);
            let path = field("path").and_then(Value::as_str).ok_or_else(|| {
                UserDataError::Invalid(format!("`write_files` entry {} has no `path`", i + 1))
            })?;
            let content = field("content").and_then(scalar).unwrap_or_default();
            let content = match field("encoding").and_then(Value::as_str) {
                None | Some("text/plain") => content.into_bytes(),
                Some("b64" | "base64") => base64::engine::general_purpose::STANDARD
                    .decode(content.split_whitespace().collect::<String>())
                    .map_err(|e| {
                        UserDataError::Invalid(format!("`write_files` `{path}`: bad base64: {e}"))
                    })?,
                Some(other) => {
                    return Err(UserDataError::Invalid(format!(
                        "`write_files` `{path}`: encoding `{other}` is not supported on local \
                         nodes; use text or b64"
                    )));
                }
            };
            let mode = match field("permissions").and_then(scalar) {
                None => 0o644,
                Some(text) => u32::from_str_radix(text.trim_start_matches("0o"), 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| {
                        UserDataError::Invalid(format!(
                            "`write_files` `{path}`: permissions `{text}` are not octal like '0644'"
                        ))
                    })?,
            };
            if field("owner").is_some() {
                not_applied.push(format!(
                    "`write_files` `{path}`: `owner` is not applied on local nodes (files belong \
                     to the local cloud's user)"
                ));
            }
            Ok(FileToWrite {
                path: path.to_owned(),
                content,
                mode,
                append: field("append").and_then(Value::as_bool).unwrap_or(false),
            })
        })
        .collect()
}

/// The path inside the node's directory: absolute paths lose their root.
fn relative(path: &str) -> PathBuf {
    Path::new(path)
        .components()
        .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
        .collect()
}

fn write_file(node_dir: &Dir, file: &FileToWrite) -> Result<(), UserDataError> {
    let path = relative(&file.path);
    let failed = |source: std::io::Error| classify(&file.path, source);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        node_dir.create_dir_all(parent).map_err(|error| {
            // A symlink on the way makes this "already exists"; opening the
            // directory through the sandbox tells whether it leads outside.
            match node_dir.open_dir(parent) {
                Err(escape) if is_escape(&escape) => failed(escape),
                _ => failed(error),
            }
        })?;
    }
    let mut options = OpenOptions::new();
    options.write(true).create(true);
    if file.append {
        options.append(true);
    } else {
        options.truncate(true);
    }
    let mut handle = node_dir.open_with(&path, &options).map_err(failed)?;
    handle.write_all(&file.content).map_err(failed)?;
    node_dir
        .set_permissions(&path, Permissions::from_mode(file.mode))
        .map_err(failed)
}

/// cap-std reports an escape as `PermissionDenied` with this message.
fn is_escape(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::PermissionDenied
        && error.to_string().contains("led outside of the filesystem")
}

fn classify(path: &str, source: std::io::Error) -> UserDataError {
    if is_escape(&source) {
        UserDataError::Escape {
            path: path.to_owned(),
            reason: source.to_string(),
        }
    } else {
        UserDataError::Write {
            path: path.to_owned(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cap_std::ambient_authority;

    fn node_dir() -> (tempfile::TempDir, Dir) {
        let temp = tempfile::tempdir().unwrap();
        let dir = Dir::open_ambient_dir(temp.path().join(""), ambient_authority()).unwrap();
        (temp, dir)
    }

    fn plan_writing(path: &str) -> BootPlan {
        BootPlan::parse(&format!(
            "#cloud-config\nwrite_files:\n  - path: '{path}'\n    content: evil\n"
        ))
        .unwrap()
    }

    #[test]
    fn applies_commands_and_files_in_cloud_init_order() {
        let plan = BootPlan::parse(
            "#cloud-config\nruncmd:\n  - python3 -m http.server 8080\n  - [echo, 1]\n\
             bootcmd: [mkdir -p www]\npackages: [nginx]\n\
             write_files:\n  - path: /www/index.html\n    content: hello\n    permissions: '0600'\n\
             \x20 - path: data.bin\n    encoding: b64\n    content: aGk=\n    owner: root:root\n",
        )
        .unwrap();
        assert_eq!(plan.bootcmd, [["sh", "-c", "mkdir -p www"]]);
        assert_eq!(
            plan.runcmd,
            [
                vec!["sh", "-c", "python3 -m http.server 8080"],
                vec!["echo", "1"]
            ]
        );
        assert_eq!(plan.files[0].mode, 0o600);
        assert_eq!(plan.files[1].content, b"hi");
        assert_eq!(
            plan.not_applied,
            [
                "`packages` is not applied on local nodes",
                "`write_files` `data.bin`: `owner` is not applied on local nodes (files belong to \
                 the local cloud's user)"
            ]
        );

        let (temp, dir) = node_dir();
        plan.write_files(&dir).unwrap();
        let index = temp.path().join("www/index.html");
        assert_eq!(std::fs::read_to_string(&index).unwrap(), "hello");
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&index).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn a_script_is_written_and_run() {
        let plan = BootPlan::parse("#!/bin/sh\necho hi\n").unwrap();
        assert_eq!(plan.runcmd, [["./user-data.script"]]);
        assert_eq!(plan.files[0].mode, 0o755);
    }

    #[test]
    fn dot_dot_cannot_leave_the_node_directory() {
        let (temp, dir) = node_dir();
        let error = plan_writing("../outside.txt")
            .write_files(&dir)
            .unwrap_err();
        assert!(matches!(error, UserDataError::Escape { .. }), "{error}");
        assert!(!temp.path().parent().unwrap().join("outside.txt").exists());
        let error = plan_writing("/a/../../outside.txt")
            .write_files(&dir)
            .unwrap_err();
        assert!(matches!(error, UserDataError::Escape { .. }), "{error}");
    }

    #[test]
    fn symlinks_cannot_lead_out_of_the_node_directory() {
        let (temp, dir) = node_dir();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), temp.path().join("abs")).unwrap();
        std::os::unix::fs::symlink("..", temp.path().join("up")).unwrap();
        for path in ["/abs/evil", "abs/evil", "up/evil"] {
            let error = plan_writing(path).write_files(&dir).unwrap_err();
            assert!(
                matches!(error, UserDataError::Escape { .. }),
                "{path}: {error}"
            );
        }
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        assert!(!temp.path().parent().unwrap().join("evil").exists());
    }

    #[test]
    fn bad_user_data_is_named() {
        let cases = [
            ("runcmd: [x]", "`#cloud-config` document or a `#!` script"),
            ("#cloud-config\nruncmd: echo", "`runcmd` must be a list"),
            ("#cloud-config\nruncmd: [{a: 1}]", "`runcmd` entry 1"),
            ("#cloud-config\nbootcmd: [ls, []]", "`bootcmd` entry 2"),
            (
                "#cloud-config\nwrite_files: [{content: x}]",
                "entry 1 has no `path`",
            ),
            (
                "#cloud-config\nwrite_files: [{path: x, permissions: rw}]",
                "permissions `rw` are not octal",
            ),
            (
                "#cloud-config\nwrite_files: [{path: x, encoding: gzip}]",
                "encoding `gzip` is not supported",
            ),
        ];
        for (user_data, expected) in cases {
            let error = BootPlan::parse(user_data).unwrap_err().to_string();
            assert!(error.contains(expected), "{user_data:?}: {error}");
        }
    }
}
