//! Loading a component: compile it (or take it from the cache), find which
//! kind of plugin it is and check its contract version, pre-instantiate it
//! and ask it to describe itself.

use crate::bindings;
use crate::cache;
use crate::config_manager::ConfigManagerPlugin;
use crate::contextualiser::ContextualiserPlugin;
use crate::contract::{CONTRACT_PACKAGE, CONTRACT_VERSION, contract_compatible};
use crate::driver::DriverPlugin;
use crate::error::RuntimeError;
use crate::plugin::Plugin;
use crate::provenance::{LoadReport, PluginOrigin};
use crate::runtime::{AnswerSize, PluginRuntime};
use crate::sandbox::{LogContext, SandboxState};
use occopus_types::PluginKind;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::Store;
use wasmtime::component::{Component, ComponentExportIndex};

impl PluginRuntime {
    /// Reads and loads a component file.
    pub async fn load_file(&self, path: PathBuf) -> Result<Plugin, RuntimeError> {
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|source| RuntimeError::Read {
                path: path.clone(),
                source,
            })?;
        self.load(PluginOrigin::File(path), bytes).await
    }

    /// Compiles (or loads from the cache), checks, pre-instantiates and
    /// describes a component.
    pub async fn load(&self, origin: PluginOrigin, bytes: Vec<u8>) -> Result<Plugin, RuntimeError> {
        let started = Instant::now();
        let shared = self.shared.clone();
        let (component, cache) = tokio::task::spawn_blocking(move || {
            let engine = &shared.engine;
            match &shared.cache {
                Some(cache) => cache.load(engine, &bytes),
                None => cache::compile_uncached(engine, &bytes),
            }
        })
        .await
        .map_err(|e| RuntimeError::Engine(format!("the compiler thread failed: {e}")))?
        .map_err(|e| RuntimeError::InvalidComponent {
            origin: origin.to_string(),
            message: format!("{e:#}"),
        })?;

        let (kind, contract_version) = self.contract_of(&component, &origin)?;
        let link_error = |e: wasmtime::Error| RuntimeError::Link {
            origin: origin.to_string(),
            message: format!("{e:#}"),
        };
        let pre = self
            .shared
            .linker
            .instantiate_pre(&component)
            .map_err(link_error)?;
        let engine = &self.shared.engine;
        let names = |items: &mut dyn Iterator<Item = &str>| items.map(str::to_owned).collect();
        let ty = component.component_type();
        let report = LoadReport {
            origin: origin.clone(),
            contract_version,
            imports: names(&mut ty.imports(engine).map(|(name, _)| name)),
            exports: names(&mut ty.exports(engine).map(|(name, _)| name)),
            cache,
            elapsed: Duration::ZERO,
        };
        Ok(match kind {
            PluginKind::Driver => {
                let pre = bindings::driver::DriverPluginPre::new(pre).map_err(link_error)?;
                let info = self
                    .describe(&origin, async |store| {
                        let bindings = pre.instantiate_async(&mut *store).await?;
                        let driver = bindings.occopus_plugin_driver();
                        driver.call_describe(&mut *store).await
                    })
                    .await?;
                let policy = self.base_policy(&info.name)?;
                let report = report.loaded_since(started);
                let status_many = status_many_of(&component, &self.shared.engine);
                Plugin::Driver(DriverPlugin::new(
                    self.clone(),
                    pre,
                    status_many,
                    info,
                    policy,
                    report,
                ))
            }
            PluginKind::Contextualiser => {
                let pre = bindings::contextualiser::ContextualiserPluginPre::new(pre)
                    .map_err(link_error)?;
                let info = self
                    .describe(&origin, async |store| {
                        let bindings = pre.instantiate_async(&mut *store).await?;
                        let contextualiser = bindings.occopus_plugin_contextualiser();
                        contextualiser.call_describe(&mut *store).await
                    })
                    .await?;
                let mut policy = self.base_policy(&info.name)?;
                // A contextualiser may only log: no host is ever allowed.
                policy.allow_list = Arc::default();
                let report = report.loaded_since(started);
                Plugin::Contextualiser(ContextualiserPlugin::new(
                    self.clone(),
                    pre,
                    info,
                    policy,
                    report,
                ))
            }
            PluginKind::ConfigManager => {
                let pre = bindings::config_manager::ConfigManagerPluginPre::new(pre)
                    .map_err(link_error)?;
                let info = self
                    .describe(&origin, async |store| {
                        let bindings = pre.instantiate_async(&mut *store).await?;
                        let manager = bindings.occopus_plugin_config_manager();
                        manager.call_describe(&mut *store).await
                    })
                    .await?;
                let policy = self.base_policy(&info.name)?;
                let report = report.loaded_since(started);
                Plugin::ConfigManager(ConfigManagerPlugin::new(
                    self.clone(),
                    pre,
                    info,
                    policy,
                    report,
                ))
            }
        })
    }

    /// Asks a freshly compiled plugin to describe itself, under the general
    /// policy: the plugin's own settings are keyed by the name it gives, so
    /// they apply from its first real call on.
    async fn describe<Info: AnswerSize>(
        &self,
        origin: &PluginOrigin,
        call: impl AsyncFnOnce(&mut Store<SandboxState>) -> wasmtime::Result<Info>,
    ) -> Result<Info, RuntimeError> {
        let general = self.base_policy("")?;
        let log = LogContext {
            plugin: origin.to_string().into(),
            subject: None,
            secrets: Vec::new(),
            session: None,
        };
        self.run("describe", &general, log, async |store| {
            Ok(Ok(call(store).await?))
        })
        .await
    }

    /// Finds which occopus interface a component exports and checks its version.
    fn contract_of(
        &self,
        component: &Component,
        origin: &PluginOrigin,
    ) -> Result<(PluginKind, String), RuntimeError> {
        let engine = &self.shared.engine;
        let ty = component.component_type();
        let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_owned()).collect();
        let found = exports.iter().find_map(|name| {
            let (interface, version) = name.strip_prefix(CONTRACT_PACKAGE)?.split_once('@')?;
            let kind = match interface {
                "driver" => PluginKind::Driver,
                "contextualiser" => PluginKind::Contextualiser,
                "config-manager" => PluginKind::ConfigManager,
                _ => return None,
            };
            Some((kind, version.to_owned()))
        });
        let Some((kind, version)) = found else {
            return Err(RuntimeError::NotAPlugin {
                origin: origin.to_string(),
                exports: if exports.is_empty() {
                    "nothing".into()
                } else {
                    exports.join(", ")
                },
            });
        };
        if !contract_compatible(&version, CONTRACT_VERSION) {
            return Err(RuntimeError::ContractMismatch {
                origin: origin.to_string(),
                found: version,
                supported: CONTRACT_VERSION,
            });
        }
        Ok((kind, version))
    }
}

/// `status-batch.status-many` (contract 0.1.3), if `component` exports it in
/// a version of the contract this host accepts.
fn status_many_of(
    component: &Component,
    engine: &wasmtime::Engine,
) -> Option<ComponentExportIndex> {
    let interface = component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .find(|name| {
            name.strip_prefix(CONTRACT_PACKAGE)
                .and_then(|rest| rest.strip_prefix("status-batch@"))
                .is_some_and(|version| contract_compatible(version, CONTRACT_VERSION))
        })?;
    let (_, interface) = component.get_export(None, &interface)?;
    let (_, function) = component.get_export(Some(&interface), "status-many")?;
    Some(function)
}
