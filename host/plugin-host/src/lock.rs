//! The plugin lock file (`occopus-plugins.lock`, next to the config): which
//! component files of the plugin directory were installed from a registry,
//! and the digest each must have.
//!
//! `occopus plugins install` writes it; every load of the plugin directory
//! reads it ([`crate::catalog`]): a pinned file whose bytes no longer hash to
//! its digest, or that is gone, is refused, and the types it served are not
//! silently handed to another plugin (a built-in one, say). Teams commit it
//! with their config, as Terraform users commit `.terraform.lock.hcl`:
//! `occopus plugins install` without a source then fetches exactly the pinned
//! components.
//!
//! ```yaml
//! # occopus-plugins.lock: written by `occopus plugins install`; ...
//! version: 1
//! plugins:
//!   ec2.wasm:                      # the file in the plugin directory
//!     name: ec2
//!     kind: driver
//!     types: [ec2]
//!     version: 0.3.0               # the plugin's own version
//!     contract: 0.1.3              # occopus:plugin version it was built against
//!     source: oci://registry.example.org/occopus/ec2:0.3.0
//!     manifest: sha256:…           # the OCI manifest pulled
//!     digest: sha256:…             # the component file's own digest
//! ```

use occopus_types::PluginKind;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The lock file format this host writes and reads.
const FORMAT_VERSION: u32 = 1;

const HEADER: &str = "# occopus-plugins.lock: written by `occopus plugins install`; keep it with \
                      the config (commit it).\n# Every load checks each file below against its \
                      digest; `occopus plugins install` (no source) fetches them again.\n";

/// The lock file's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginLock {
    /// The format ([`FORMAT_VERSION`]).
    version: u32,
    /// The pinned files, by file name in the plugin directory.
    #[serde(default)]
    pub plugins: BTreeMap<String, LockedPlugin>,
}

/// One pinned component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedPlugin {
    /// The plugin's name, as it describes itself.
    pub name: String,
    /// Its kind.
    pub kind: PluginKind,
    /// The types it serves; refused with it when its file is.
    pub types: Vec<String>,
    /// The plugin's own version.
    pub version: String,
    /// The `occopus:plugin` contract version it was built against.
    pub contract: String,
    /// Where it was installed from (`oci://REGISTRY/REPOSITORY:TAG` or `@sha256:…`).
    pub source: String,
    /// The digest of the OCI manifest pulled: installing again pulls this one.
    pub manifest: String,
    /// The digest of the component file (`sha256:HEX`).
    pub digest: String,
}

/// The lock file cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Reading or writing failed.
    #[error("cannot {action} the plugin lock file {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not a lock file this host understands.
    #[error(
        "the plugin lock file {path} is damaged ({problem}); restore it from version control, \
         or delete it and install the plugins again with `occopus plugins install SOURCE`"
    )]
    Damaged { path: PathBuf, problem: String },
}

impl PluginLock {
    /// Reads `path`; a missing file is an empty lock.
    pub fn read(path: &Path) -> Result<PluginLock, LockError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(PluginLock::empty()),
            Err(source) => {
                return Err(LockError::Io {
                    action: "read",
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let damaged = |problem: String| LockError::Damaged {
            path: path.to_owned(),
            problem,
        };
        let lock: PluginLock = serde_yaml::from_str(&text).map_err(|e| {
            damaged(match e.location() {
                Some(at) => format!("line {}: {e}", at.line()),
                None => e.to_string(),
            })
        })?;
        if lock.version != FORMAT_VERSION {
            return Err(damaged(format!(
                "format version {} where this occopus reads {FORMAT_VERSION}",
                lock.version
            )));
        }
        Ok(lock)
    }

    /// A lock pinning nothing.
    pub fn empty() -> PluginLock {
        PluginLock {
            version: FORMAT_VERSION,
            plugins: BTreeMap::new(),
        }
    }

    /// Writes the lock to `path` atomically (a reader sees the old or the new
    /// file, never half of one).
    pub fn write(&self, path: &Path) -> Result<(), LockError> {
        let text = serde_yaml::to_string(self).expect("a lock serializes");
        write_atomically(path, &[HEADER.as_bytes(), text.as_bytes()]).map_err(|source| {
            LockError::Io {
                action: "write",
                path: path.to_owned(),
                source,
            }
        })
    }
}

/// Writes `parts` to `path` through a temporary file in its directory,
/// synced and renamed over it: a reader (or a crash) sees the old file or
/// the new one, never half of one. Used for the lock file and the component
/// files it pins.
pub fn write_atomically(path: &Path, parts: &[&[u8]]) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    for part in parts {
        file.write_all(part)?;
    }
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The digest a lock records for `bytes`: `sha256:` and the hex SHA-256, as
/// OCI registries name blobs.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> LockedPlugin {
        LockedPlugin {
            name: "dummy".into(),
            kind: PluginKind::Driver,
            types: vec!["dummy".into()],
            version: "0.1.0".into(),
            contract: "0.1.3".into(),
            source: "oci://127.0.0.1:5000/occopus/dummy:1".into(),
            manifest: digest_of(b"manifest"),
            digest: digest_of(b"component"),
        }
    }

    #[test]
    fn a_written_lock_reads_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/occopus-plugins.lock");
        let mut lock = PluginLock::empty();
        lock.plugins.insert("dummy.wasm".into(), entry());
        lock.write(&path).unwrap();
        assert_eq!(PluginLock::read(&path).unwrap(), lock);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# occopus-plugins.lock"), "{text}");
    }

    #[test]
    fn a_missing_lock_pins_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let lock = PluginLock::read(&dir.path().join("none.lock")).unwrap();
        assert!(lock.plugins.is_empty());
    }

    #[test]
    fn a_damaged_lock_is_an_error_naming_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("occopus-plugins.lock");
        std::fs::write(&path, "version: 1\nplugins:\n  x.wasm: {name: x}\n").unwrap();
        let error = PluginLock::read(&path).unwrap_err().to_string();
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert!(error.contains("line 3"), "{error}");
        std::fs::write(&path, "version: 9\n").unwrap();
        let error = PluginLock::read(&path).unwrap_err().to_string();
        assert!(error.contains("format version 9"), "{error}");
    }

    #[test]
    fn digests_are_named_as_registries_name_blobs() {
        assert_eq!(
            digest_of(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
