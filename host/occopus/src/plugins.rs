//! Loading the plugins with the first-party ones built in, and checking a
//! driver against the contract (`occopus plugins check`).

use crate::config::Config;
use crate::error::ApiError;
use crate::files::{load_auth, load_resource};
use crate::local_endpoint::LocalCloudEndpoint;
use occopus_builtin_plugins::{BUILTINS, UNIX_ENDPOINT_DRIVERS};
use occopus_conformance::{CheckOptions, Report};
use occopus_engine::EndpointResolver;
use occopus_local_cloud::LocalCloudSettings;
use occopus_plugin_host::{Plugin, PluginCatalog, PluginRuntime, PluginSettings, RuntimeError};
use occopus_types::{CloudTarget, Credentials};
use std::path::PathBuf;

/// `settings` with the defaults of the first-party plugins: the drivers of
/// [`UNIX_ENDPOINT_DRIVERS`] may use a `unix://` endpoint unless the
/// configuration says otherwise.
pub fn with_builtin_defaults(settings: &PluginSettings) -> PluginSettings {
    let mut settings = settings.clone();
    for driver in UNIX_ENDPOINT_DRIVERS {
        let overrides = settings.settings.entry((*driver).to_string()).or_default();
        overrides.unix_endpoints.get_or_insert(true);
    }
    settings
}

/// The plugin runtime of `settings` (with the first-party defaults).
pub fn plugin_runtime(settings: &PluginSettings) -> Result<PluginRuntime, RuntimeError> {
    PluginRuntime::new(&with_builtin_defaults(settings))
}

/// Every plugin: the first-party ones, the plugin directory's, the config's
/// mappings (each replacing the earlier for the types it serves).
pub async fn load_plugins(settings: &PluginSettings) -> Result<PluginCatalog, RuntimeError> {
    let settings = with_builtin_defaults(settings);
    let runtime = PluginRuntime::new(&settings)?;
    PluginCatalog::discover(&runtime, &settings, BUILTINS).await
}

/// What `occopus plugins check` checks.
#[derive(Debug, Clone)]
pub struct DriverCheck {
    /// The driver's component file.
    pub file: PathBuf,
    /// A resource section it serves, pointing at a live cloud.
    pub resource: PathBuf,
    /// The credentials file, if the cloud needs credentials.
    pub auth_data: Option<PathBuf>,
    /// How long to wait for the cloud.
    pub options: CheckOptions,
}

/// Checks the driver of `check.file` against the contract's promises on the
/// cloud its resource section points at (a `local` resource without
/// `endpoint` gets the local cloud of `local_cloud`, started in this process).
pub async fn check_driver(
    config: &Config,
    local_cloud: Option<LocalCloudSettings>,
    check: &DriverCheck,
) -> Result<Report, ApiError> {
    let runtime = plugin_runtime(&config.plugins)?;
    let driver = match runtime.load_file(check.file.clone()).await? {
        Plugin::Driver(driver) => driver,
        other => {
            return Err(ApiError::BadResource {
                path: check.file.display().to_string(),
                problem: format!(
                    "is a {}; `plugins check` checks cloud drivers",
                    other.kind()
                ),
            });
        }
    };
    let mut resource = load_resource(&check.resource)?;
    let credentials = match &check.auth_data {
        Some(path) => load_auth(path)?
            .select(&resource)
            .map_err(|e| ApiError::BadResource {
                path: path.display().to_string(),
                problem: e.to_string(),
            })?,
        None => Credentials::default(),
    };
    if !resource.contains_key("endpoint") {
        let endpoints = LocalCloudEndpoint::new(local_cloud);
        if let Some(endpoint) =
            endpoints
                .endpoint(&resource)
                .await
                .map_err(|e| ApiError::BadResource {
                    path: check.resource.display().to_string(),
                    problem: e.to_string(),
                })?
        {
            resource.insert("endpoint".into(), endpoint.into());
        }
    }
    let target = CloudTarget {
        resource,
        credentials,
    };
    Ok(occopus_conformance::check(&driver, &target, &check.options).await)
}
