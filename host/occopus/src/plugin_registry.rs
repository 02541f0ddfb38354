//! Plugins from OCI registries: `occopus plugins install`, `push`, `verify`
//! and `remove`. A component installed is checked like any plugin (it must
//! load and speak this host's contract) before it is stored in the plugin
//! directory, and pinned by digest in the lock file ([`occopus_plugin_host::lock`]),
//! which every later load checks.

use crate::error::ApiError;
use crate::plugins::plugin_runtime;
use occopus_plugin_host::lock::{LockedPlugin, PluginLock, digest_of, write_atomically};
use occopus_plugin_host::provenance::PluginOrigin;
use occopus_plugin_host::{PluginRuntime, PluginSettings};
use occopus_registry::{
    ComponentInfo, ComponentReference, Registry, RegistryLogin, RegistryOptions,
};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// How to reach registries; the caller finds where the logins are.
#[derive(Debug, Clone, Default)]
pub struct RegistryAccess {
    /// Plain HTTP to a registry that is not on the loopback.
    pub plain_http: bool,
    /// Docker's `config.json`, holding `docker login`'s logins.
    pub docker_config: Option<PathBuf>,
}

impl RegistryAccess {
    fn client(&self, reference: &ComponentReference) -> Result<Registry, ApiError> {
        let login = match &self.docker_config {
            Some(path) => RegistryLogin::from_docker_config(path, reference.registry())?,
            None => None,
        };
        let options = RegistryOptions {
            plain_http: self.plain_http,
            login,
        };
        Ok(Registry::new(reference, options)?)
    }
}

/// What an install did to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstallAction {
    /// Stored where there was no file.
    Installed,
    /// Replaced a file (another version, or one that failed its digest).
    Replaced,
    /// The file already had the pinned digest: nothing was downloaded.
    UpToDate,
}

/// One plugin installed.
#[derive(Debug, Clone, Serialize)]
pub struct Installed {
    /// The file in the plugin directory.
    pub file: PathBuf,
    /// What was done.
    pub action: InstallAction,
    /// Its lock entry.
    #[serde(flatten)]
    pub locked: LockedPlugin,
}

/// Where installs go: the plugin directory and the lock file.
struct InstallPlaces<'a> {
    dir: &'a Path,
    lock: &'a Path,
}

impl<'a> InstallPlaces<'a> {
    fn of(settings: &'a PluginSettings) -> Result<InstallPlaces<'a>, ApiError> {
        Ok(InstallPlaces {
            dir: settings.dir.as_deref().ok_or(ApiError::NoPluginDir)?,
            lock: settings.lock_file.as_deref().ok_or(ApiError::NoLockFile)?,
        })
    }
}

/// Pulls the component `source` names (`oci://REGISTRY/REPOSITORY:TAG` or
/// `@sha256:…`), checks that it loads as a plugin of this host's contract,
/// stores it as `NAME.wasm` in the plugin directory and pins it in the lock
/// file. A file of that name that the lock does not pin is replaced only with
/// `force`.
pub async fn install_plugin(
    settings: &PluginSettings,
    source: &str,
    access: &RegistryAccess,
    force: bool,
) -> Result<Installed, ApiError> {
    let places = InstallPlaces::of(settings)?;
    let reference = ComponentReference::parse(source)?;
    let pulled = access.client(&reference)?.pull(&reference).await?;
    let runtime = plugin_runtime(settings)?;
    let plugin = runtime
        .load(
            PluginOrigin::Registry(reference.to_string()),
            pulled.bytes.clone(),
        )
        .await?;
    let file_name = format!("{}.wasm", plugin.name());
    let path = places.dir.join(&file_name);
    let mut lock = PluginLock::read(places.lock)?;
    if path.exists() && !lock.plugins.contains_key(&file_name) && !force {
        return Err(ApiError::UnpinnedFileInTheWay {
            path,
            lock: places.lock.to_owned(),
        });
    }
    let locked = LockedPlugin {
        name: plugin.name().to_owned(),
        kind: plugin.kind(),
        types: plugin.types_served().to_vec(),
        version: plugin.version().to_owned(),
        contract: plugin.load_report().contract_version.clone(),
        source: reference.to_string(),
        manifest: pulled.manifest_digest,
        digest: digest_of(&pulled.bytes),
    };
    let action = store(&path, &pulled.bytes, &locked.digest)?;
    lock.plugins.insert(file_name, locked.clone());
    lock.write(places.lock)?;
    Ok(Installed {
        file: path,
        action,
        locked,
    })
}

/// Fetches every plugin the lock file pins whose file is missing or altered,
/// by the pinned manifest digest (what `plugins install` without a source
/// does, as `terraform init` does with its lock file).
pub async fn install_locked(
    settings: &PluginSettings,
    access: &RegistryAccess,
) -> Result<Vec<Installed>, ApiError> {
    let places = InstallPlaces::of(settings)?;
    let lock = PluginLock::read(places.lock)?;
    let mut installed = Vec::new();
    for (file_name, locked) in &lock.plugins {
        let path = places.dir.join(file_name);
        let current = std::fs::read(&path).ok().map(|bytes| digest_of(&bytes));
        let action = if current.as_deref() == Some(locked.digest.as_str()) {
            InstallAction::UpToDate
        } else {
            let reference = ComponentReference::parse(&locked.source)?.at_digest(&locked.manifest);
            let pulled = access.client(&reference)?.pull(&reference).await?;
            if digest_of(&pulled.bytes) != locked.digest {
                return Err(ApiError::Registry(
                    occopus_registry::RegistryError::DigestMismatch {
                        reference: reference.to_string(),
                        message: format!(
                            "the manifest holds a component of digest {}, the lock pins {}",
                            pulled.digest, locked.digest
                        ),
                    },
                ));
            }
            store(&path, &pulled.bytes, &locked.digest)?
        };
        installed.push(Installed {
            file: path,
            action,
            locked: locked.clone(),
        });
    }
    Ok(installed)
}

/// Writes `bytes` to `path` atomically; says whether a file was there.
fn store(path: &Path, bytes: &[u8], digest: &str) -> Result<InstallAction, ApiError> {
    let existing = std::fs::read(path).ok();
    if existing
        .as_deref()
        .is_some_and(|old| digest_of(old) == digest)
    {
        return Ok(InstallAction::UpToDate);
    }
    write_atomically(path, &[bytes]).map_err(|source| ApiError::Write {
        path: path.to_owned(),
        source,
    })?;
    Ok(if existing.is_some() {
        InstallAction::Replaced
    } else {
        InstallAction::Installed
    })
}

/// A component pushed.
#[derive(Debug, Clone, Serialize)]
pub struct Pushed {
    /// Where (`oci://…:TAG`).
    pub reference: String,
    /// The same by digest: what `plugins install` pins.
    pub pinned_reference: String,
    /// The manifest's digest.
    pub manifest: String,
    /// The component's digest.
    pub digest: String,
    /// The plugin's name, kind, version and contract.
    pub name: String,
    pub kind: occopus_types::PluginKind,
    pub version: String,
    pub contract: String,
}

/// Pushes the component `file` to `destination` (`oci://…:TAG`), after
/// checking that it loads as a plugin of this host's contract; the manifest
/// says its name, kind, version, contract and types.
pub async fn push_plugin(
    settings: &PluginSettings,
    file: &Path,
    destination: &str,
    access: &RegistryAccess,
) -> Result<Pushed, ApiError> {
    let reference = ComponentReference::parse(destination)?;
    let bytes = std::fs::read(file).map_err(|source| occopus_plugin_host::RuntimeError::Read {
        path: file.to_owned(),
        source,
    })?;
    let runtime = plugin_runtime(settings)?;
    let plugin = runtime
        .load(PluginOrigin::File(file.to_owned()), bytes.clone())
        .await?;
    let report = plugin.load_report();
    let info = ComponentInfo {
        name: plugin.name().to_owned(),
        version: plugin.version().to_owned(),
        kind: plugin.kind().as_str().to_owned(),
        contract: report.contract_version.clone(),
        types: plugin.types_served().to_vec(),
        imports: report.imports.clone(),
        exports: report.exports.clone(),
    };
    let pushed = access
        .client(&reference)?
        .push(&reference, bytes, &info)
        .await?;
    Ok(Pushed {
        pinned_reference: reference.at_digest(&pushed.manifest_digest).to_string(),
        reference: reference.to_string(),
        manifest: pushed.manifest_digest,
        digest: pushed.digest,
        name: info.name,
        kind: plugin.kind(),
        version: info.version,
        contract: info.contract,
    })
}

/// How one pinned file is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum FileStatus {
    /// It has the pinned digest and loads.
    Verified,
    /// Its bytes hash to another digest.
    Altered { found: String },
    /// It is gone.
    Missing,
    /// It has the pinned digest but does not load (a host too old, say).
    Broken { error: String },
}

/// One pinned file, checked.
#[derive(Debug, Clone, Serialize)]
pub struct VerifiedFile {
    /// The file.
    pub file: PathBuf,
    /// What was found.
    #[serde(flatten)]
    pub status: FileStatus,
    /// Its lock entry.
    #[serde(flatten)]
    pub locked: LockedPlugin,
}

/// What `plugins verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// The lock file read.
    pub lock_file: PathBuf,
    /// Every pinned file.
    pub pinned: Vec<VerifiedFile>,
    /// The plugin directory's `*.wasm` files the lock does not pin (dropped
    /// in by hand: loaded, but nothing vouches for them).
    pub unpinned: Vec<PathBuf>,
}

impl Verification {
    /// Whether every pinned file is as pinned.
    pub fn passed(&self) -> bool {
        self.pinned.iter().all(|f| f.status == FileStatus::Verified)
    }
}

/// Checks every file the lock pins: there, with its digest, loading.
pub async fn verify_plugins(settings: &PluginSettings) -> Result<Verification, ApiError> {
    let places = InstallPlaces::of(settings)?;
    let lock = PluginLock::read(places.lock)?;
    let runtime = plugin_runtime(settings)?;
    let mut pinned = Vec::new();
    for (file_name, locked) in &lock.plugins {
        let path = places.dir.join(file_name);
        let status = verify_file(&runtime, &path, &locked.digest).await;
        pinned.push(VerifiedFile {
            file: path,
            status,
            locked: locked.clone(),
        });
    }
    let mut unpinned: Vec<PathBuf> = std::fs::read_dir(places.dir)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok())
        .filter(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            name.ends_with(".wasm") && !lock.plugins.contains_key(&name)
        })
        .map(|entry| entry.path())
        .collect();
    unpinned.sort();
    Ok(Verification {
        lock_file: places.lock.to_owned(),
        pinned,
        unpinned,
    })
}

async fn verify_file(runtime: &PluginRuntime, path: &Path, digest: &str) -> FileStatus {
    let Ok(bytes) = std::fs::read(path) else {
        return FileStatus::Missing;
    };
    let found = digest_of(&bytes);
    if found != digest {
        return FileStatus::Altered { found };
    }
    match runtime
        .load(PluginOrigin::File(path.to_owned()), bytes)
        .await
    {
        Ok(_) => FileStatus::Verified,
        Err(error) => FileStatus::Broken {
            error: error.to_string(),
        },
    }
}

/// A plugin removed.
#[derive(Debug, Clone, Serialize)]
pub struct Removed {
    /// The file deleted.
    pub file: PathBuf,
    /// The lock entry removed.
    #[serde(flatten)]
    pub locked: LockedPlugin,
}

/// Unpins the installed plugin `name` (its name or file name) and deletes
/// its file.
pub fn remove_plugin(settings: &PluginSettings, name: &str) -> Result<Removed, ApiError> {
    let places = InstallPlaces::of(settings)?;
    let mut lock = PluginLock::read(places.lock)?;
    let file_name = lock
        .plugins
        .iter()
        .find(|(file, locked)| file.as_str() == name || locked.name == name)
        .map(|(file, _)| file.clone())
        .ok_or_else(|| ApiError::NotPinned {
            name: name.to_owned(),
            lock: places.lock.to_owned(),
            pinned: pinned_names(&lock),
        })?;
    let locked = lock.plugins.remove(&file_name).expect("found above");
    let path = places.dir.join(&file_name);
    // Unpin first: a file left behind is then merely unpinned, never pinned
    // and missing.
    lock.write(places.lock)?;
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(ApiError::Write { path, source }),
    }
    Ok(Removed { file: path, locked })
}

fn pinned_names(lock: &PluginLock) -> String {
    if lock.plugins.is_empty() {
        return "none".into();
    }
    let names: Vec<&str> = lock.plugins.values().map(|l| l.name.as_str()).collect();
    names.join(", ")
}
