//! Which plugin serves which type: discovery and swapping.
//!
//! Plugins are gathered in this order, a later one replacing an earlier one for
//! the types it serves:
//! 1. the plugins built into the binary (given by the caller: the first-party
//!    ones are in `occopus-builtin-plugins`);
//! 2. every `*.wasm` file in the plugin directory (in file-name order), so
//!    dropping a component there replaces a driver without rebuilding occopus;
//! 3. the explicit `plugins.drivers` / `plugins.contextualisers` /
//!    `plugins.config_managers` mappings of the config, which bind a type to a file whatever the file says it serves.
//!
//! A broken file in the plugin directory does not stop the others: it is kept
//! as a [`LoadFailure`], shown by `occopus plugins list` and named when its type
//! is asked for. A broken explicitly mapped file is an error.
//!
//! A file the lock file pins ([`crate::lock`]) is loaded only if its bytes
//! have the pinned digest; refused (or missing, or broken), the types its lock
//! entry names are served by no plugin of the directory or the binary — asking
//! for one names the refusal — since the operator pinned that component, not
//! whatever else serves the type. An explicit mapping still wins.

use crate::config_manager::ConfigManagerPlugin;
use crate::contextualiser::ContextualiserPlugin;
use crate::driver::DriverPlugin;
use crate::error::RuntimeError;
use crate::lock::{LockedPlugin, PluginLock, digest_of};
use crate::plugin::Plugin;
use crate::provenance::PluginOrigin;
use crate::runtime::PluginRuntime;
use crate::settings::PluginSettings;
use occopus_types::{ConfigManager, Contextualiser, Driver, NoPlugin, PluginKind, Plugins};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A component shipped inside the binary: its name and bytes.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    /// The name it is known by (`builtin:NAME`).
    pub name: &'static str,
    /// The component.
    pub bytes: &'static [u8],
}

/// A plugin file that could not be loaded.
#[derive(Debug)]
pub struct LoadFailure {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub error: RuntimeError,
}

/// Every plugin found, and which serves each type.
pub struct PluginCatalog {
    runtime: PluginRuntime,
    plugins: Vec<Plugin>,
    drivers: BTreeMap<String, DriverPlugin>,
    contextualisers: BTreeMap<String, ContextualiserPlugin>,
    config_managers: BTreeMap<String, ConfigManagerPlugin>,
    failures: Vec<LoadFailure>,
    /// The types of pinned files that were refused, with the index of the
    /// failure saying why.
    refused: BTreeMap<(PluginKind, String), usize>,
    plugin_dir: Option<PathBuf>,
}

impl PluginCatalog {
    /// Loads `builtins`, the plugin directory and the explicit mappings.
    pub async fn discover(
        runtime: &PluginRuntime,
        settings: &PluginSettings,
        builtins: &[Builtin],
    ) -> Result<Self, RuntimeError> {
        let plugin_dir = settings.dir.clone();
        let mut catalog = PluginCatalog {
            runtime: runtime.clone(),
            plugins: Vec::new(),
            drivers: BTreeMap::new(),
            contextualisers: BTreeMap::new(),
            config_managers: BTreeMap::new(),
            failures: Vec::new(),
            refused: BTreeMap::new(),
            plugin_dir: plugin_dir.clone(),
        };
        let builtins = builtins
            .iter()
            .map(|b| runtime.load(PluginOrigin::Builtin(b.name), b.bytes.to_vec()));
        for plugin in futures::future::join_all(builtins).await {
            catalog.add(plugin?, None);
        }
        if let Some(dir) = &plugin_dir {
            let lock = match &settings.lock_file {
                Some(path) => PluginLock::read(path)?,
                None => PluginLock::empty(),
            };
            let lock_path = settings.lock_file.clone().unwrap_or_default();
            for path in wasm_files(dir) {
                let pinned = path
                    .file_name()
                    .and_then(|name| lock.plugins.get(name.to_string_lossy().as_ref()));
                match load_pinned(runtime, &path, pinned, &lock_path).await {
                    Ok(plugin) => catalog.add(plugin, None),
                    Err(error) => catalog.fail(path, error, pinned),
                }
            }
            for (file, pinned) in &lock.plugins {
                let path = dir.join(file);
                if !path.is_file() {
                    let error = RuntimeError::PinnedFileMissing {
                        path: path.clone(),
                        lock: lock_path.clone(),
                        name: pinned.name.clone(),
                        installed_from: pinned.source.clone(),
                    };
                    catalog.fail(path, error, Some(pinned));
                }
            }
        }
        let mapped = settings
            .drivers
            .iter()
            .chain(&settings.contextualisers)
            .chain(&settings.config_managers);
        for (name, path) in mapped {
            let plugin = runtime.load_file(path.clone()).await?;
            catalog.add(plugin, Some(name));
        }
        Ok(catalog)
    }

    /// Keeps a file that failed to load; if it is pinned, nothing serves the
    /// types its lock entry names.
    fn fail(&mut self, path: PathBuf, error: RuntimeError, pinned: Option<&LockedPlugin>) {
        tracing::warn!(file = %path.display(), %error, "plugin not loaded");
        if let Some(pinned) = pinned {
            for ty in &pinned.types {
                self.refused
                    .insert((pinned.kind, ty.clone()), self.failures.len());
                match pinned.kind {
                    PluginKind::Driver => self.drivers.remove(ty).map(drop),
                    PluginKind::Contextualiser => self.contextualisers.remove(ty).map(drop),
                    PluginKind::ConfigManager => self.config_managers.remove(ty).map(drop),
                };
            }
        }
        self.failures.push(LoadFailure { path, error });
    }

    /// Registers a plugin for the types it serves, or only for `only_type`.
    fn add(&mut self, plugin: Plugin, only_type: Option<&String>) {
        let types: Vec<String> = match only_type {
            Some(t) => vec![t.clone()],
            None => plugin.types_served().to_vec(),
        };
        for ty in types {
            if only_type.is_none() && self.refused.contains_key(&(plugin.kind(), ty.clone())) {
                continue;
            }
            match &plugin {
                Plugin::Driver(d) => {
                    self.drivers.insert(ty, d.clone());
                }
                Plugin::Contextualiser(c) => {
                    self.contextualisers.insert(ty, c.clone());
                }
                Plugin::ConfigManager(m) => {
                    self.config_managers.insert(ty, m.clone());
                }
            }
        }
        self.plugins.push(plugin);
    }

    /// The runtime the plugins run in.
    pub fn runtime(&self) -> &PluginRuntime {
        &self.runtime
    }

    /// Every plugin loaded, in load order (replaced ones included).
    pub fn plugins(&self) -> &[Plugin] {
        &self.plugins
    }

    /// The plugin files that failed to load.
    pub fn failures(&self) -> &[LoadFailure] {
        &self.failures
    }

    /// The plugin directory searched, if any.
    pub fn plugin_dir(&self) -> Option<&Path> {
        self.plugin_dir.as_deref()
    }

    /// Whether this plugin is the one serving each of its types (not replaced).
    pub fn is_active(&self, plugin: &Plugin) -> bool {
        let origin = &plugin.load_report().origin;
        match plugin {
            Plugin::Driver(_) => self
                .drivers
                .values()
                .any(|d| &d.load_report().origin == origin),
            Plugin::Contextualiser(_) => self
                .contextualisers
                .values()
                .any(|c| &c.load_report().origin == origin),
            Plugin::ConfigManager(_) => self
                .config_managers
                .values()
                .any(|m| &m.load_report().origin == origin),
        }
    }

    /// The refused pinned file that holds one of the types `plugin` serves,
    /// if one does (then that type is served by nothing, not by `plugin`).
    pub fn refused_pin_over(&self, plugin: &Plugin) -> Option<&LoadFailure> {
        plugin.types_served().iter().find_map(|ty| {
            let failure = self.refused.get(&(plugin.kind(), ty.clone()))?;
            self.failures.get(*failure)
        })
    }

    /// The driver serving a `resource.type`.
    pub fn driver(&self, resource_type: &str) -> Result<&DriverPlugin, NoPlugin> {
        self.drivers
            .get(resource_type)
            .ok_or_else(|| self.missing(PluginKind::Driver, resource_type))
    }

    /// The contextualiser serving a `contextualisation.type`.
    pub fn contextualiser(&self, context_type: &str) -> Result<&ContextualiserPlugin, NoPlugin> {
        self.contextualisers
            .get(context_type)
            .ok_or_else(|| self.missing(PluginKind::Contextualiser, context_type))
    }

    /// The config manager serving a `config_management.type`.
    pub fn config_manager(&self, config_type: &str) -> Result<&ConfigManagerPlugin, NoPlugin> {
        self.config_managers
            .get(config_type)
            .ok_or_else(|| self.missing(PluginKind::ConfigManager, config_type))
    }

    /// Finds the plugins with this name or serving this type, one per kind
    /// (a driver and a contextualiser may share a name, as `docker` does),
    /// preferring the active one of each kind.
    pub fn find(&self, name_or_type: &str) -> Vec<&Plugin> {
        let matches = |p: &&Plugin| {
            p.name() == name_or_type || p.types_served().iter().any(|t| t == name_or_type)
        };
        [
            PluginKind::Driver,
            PluginKind::Contextualiser,
            PluginKind::ConfigManager,
        ]
        .into_iter()
        .filter_map(|kind| {
            let of_kind = |p: &&Plugin| matches(p) && p.kind() == kind;
            self.plugins
                .iter()
                .rev()
                .filter(of_kind)
                .find(|p| self.is_active(p))
                .or_else(|| self.plugins.iter().rev().find(of_kind))
        })
        .collect()
    }

    fn missing(&self, kind: PluginKind, name: &str) -> NoPlugin {
        if let Some(&failure) = self.refused.get(&(kind, name.to_owned())) {
            return NoPlugin {
                kind,
                name: name.to_owned(),
                hint: format!(": {}", self.failures[failure].error),
            };
        }
        let served: Vec<&String> = match kind {
            PluginKind::Driver => self.drivers.keys().collect(),
            PluginKind::Contextualiser => self.contextualisers.keys().collect(),
            PluginKind::ConfigManager => self.config_managers.keys().collect(),
        };
        let mut hint = format!(
            "; installed {kind}s serve: {}. Put a component serving `{name}` in {} or map it \
             under `plugins.{}s` in the occopus config",
            served
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            self.plugin_dir
                .as_ref()
                .map_or("the plugin directory".to_owned(), |d| d
                    .display()
                    .to_string()),
            kind.as_str().replace('-', "_"),
        );
        for failure in &self.failures {
            hint.push_str(&format!(
                "\n  note: {} was not loaded: {}",
                failure.path.display(),
                failure.error
            ));
        }
        NoPlugin {
            kind,
            name: name.to_owned(),
            hint,
        }
    }
}

impl Plugins for PluginCatalog {
    fn driver(&self, resource_type: &str) -> Result<&dyn Driver, NoPlugin> {
        PluginCatalog::driver(self, resource_type).map(|d| d as &dyn Driver)
    }

    fn contextualiser(&self, context_type: &str) -> Result<&dyn Contextualiser, NoPlugin> {
        PluginCatalog::contextualiser(self, context_type).map(|c| c as &dyn Contextualiser)
    }

    fn config_manager(&self, config_type: &str) -> Result<&dyn ConfigManager, NoPlugin> {
        PluginCatalog::config_manager(self, config_type).map(|m| m as &dyn ConfigManager)
    }
}

/// Loads a file of the plugin directory, if `pinned` only when its bytes
/// have the pinned digest.
async fn load_pinned(
    runtime: &PluginRuntime,
    path: &Path,
    pinned: Option<&LockedPlugin>,
    lock: &Path,
) -> Result<Plugin, RuntimeError> {
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|source| RuntimeError::Read {
            path: path.to_owned(),
            source,
        })?;
    if let Some(pinned) = pinned {
        let found = digest_of(&bytes);
        if found != pinned.digest {
            return Err(RuntimeError::DigestMismatch {
                path: path.to_owned(),
                lock: lock.to_owned(),
                pinned: pinned.digest.clone(),
                found,
                installed_from: pinned.source.clone(),
            });
        }
    }
    runtime
        .load(PluginOrigin::File(path.to_owned()), bytes)
        .await
}

/// The `*.wasm` files of a directory, by name; a missing directory has none.
fn wasm_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wasm") && p.is_file())
        .collect();
    files.sort();
    files
}
