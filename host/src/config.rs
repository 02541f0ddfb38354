//! The occopus configuration file (`occopus.yaml`).
//!
//! Looked up in this order: `--config PATH`, `$OCCOPUS_CONFIG`, then
//! `$XDG_CONFIG_HOME/occopus/occopus.yaml`. Every key is optional:
//!
//! ```yaml
//! plugins:
//!   dir: /srv/occopus/plugins        # every *.wasm here is loaded (default: XDG data dir)
//!   cache_dir: /var/cache/occopus     # compiled plugins (default: XDG cache dir)
//!   drivers:                          # resource.type -> component file
//!     ec2: ./my-ec2.wasm
//!   contextualisers:                  # contextualisation.type -> component file
//!     cloudinit: ./my-cloudinit.wasm
//!   allowed_hosts: [metadata.example.org, "*.s3.example.org:443"]
//!   limits: {call_deadline_secs: 60, memory_limit_mib: 64, max_result_mib: 16}
//!   settings:                         # per plugin name
//!     my-ec2: {allowed_hosts: [sts.example.org], memory_limit_mib: 128}
//! local_cloud:
//!   root: /srv/occopus/local-cloud    # default: XDG data dir
//!   address_range: 127.77.0.0/16
//!   max_nodes: 64
//! engine:
//!   max_concurrent_per_endpoint: 64  # create/destroy calls in flight per cloud endpoint
//!   boot_timeout_secs: 1800           # pending longer than this = failed
//!   call_attempts: 5                  # tries of a transiently failing cloud call
//!   max_concurrent_checks: 256        # instances observed at once by `maintain`
//! ```
//!
//! Relative paths are relative to the file that names them.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Errors reading the configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the occopus config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}; see the keys documented in docs/plugins.md")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

/// The whole configuration file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where plugins come from and how they are sandboxed.
    #[serde(default)]
    pub plugins: PluginSettings,
    /// The built-in local cloud.
    #[serde(default)]
    pub local_cloud: LocalCloudConfig,
    /// How builds and destroys run.
    #[serde(default)]
    pub engine: EngineConfig,
}

/// The `engine` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Most create/destroy calls in flight per driver endpoint (a cloud's
    /// rate limit), not a global parallelism.
    pub max_concurrent_per_endpoint: usize,
    /// How long an instance may stay pending before it counts as failed.
    pub boot_timeout_secs: u64,
    /// Tries of a cloud call that fails with a transient error.
    pub call_attempts: u32,
    /// Most instances observed (status and health checks) at once by a
    /// maintenance pass.
    pub max_concurrent_checks: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_concurrent_per_endpoint: 64,
            boot_timeout_secs: 1800,
            call_attempts: 5,
            max_concurrent_checks: 256,
        }
    }
}

/// The `local_cloud` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalCloudConfig {
    /// Its directory [default: `$XDG_DATA_HOME/occopus/local-cloud`].
    pub root: Option<PathBuf>,
    /// Loopback addresses given to nodes, as CIDR inside 127.0.0.0/8.
    pub address_range: String,
    /// The most nodes at once.
    pub max_nodes: usize,
}

impl Default for LocalCloudConfig {
    fn default() -> Self {
        LocalCloudConfig {
            root: None,
            address_range: crate::local_cloud::cloud::DEFAULT_ADDRESS_RANGE.into(),
            max_nodes: crate::local_cloud::cloud::DEFAULT_MAX_NODES,
        }
    }
}

/// The `plugins` section.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSettings {
    /// The plugin directory: every `*.wasm` file in it is loaded.
    pub dir: Option<PathBuf>,
    /// Where compiled plugins are cached.
    pub cache_dir: Option<PathBuf>,
    /// Explicit `resource.type` -> component file mappings (win over the directory).
    #[serde(default)]
    pub drivers: BTreeMap<String, PathBuf>,
    /// Explicit `contextualisation.type` -> component file mappings.
    #[serde(default)]
    pub contextualisers: BTreeMap<String, PathBuf>,
    /// Hosts every driver may reach besides its resource's endpoint.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Sandbox limits of every plugin call.
    #[serde(default)]
    pub limits: SandboxLimits,
    /// Per-plugin settings, keyed by the plugin's name.
    #[serde(default)]
    pub settings: BTreeMap<String, PluginOverrides>,
}

/// Limits applied to each plugin call.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxLimits {
    /// Wall-clock seconds a call may take, I/O waits included.
    pub call_deadline_secs: f64,
    /// Linear memory a plugin instance may use, in MiB.
    pub memory_limit_mib: u64,
    /// The largest answer accepted from a plugin, in MiB.
    pub max_result_mib: u64,
    /// Calls in flight at once across all plugins; more wait for a free slot.
    pub max_concurrent_calls: u32,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        SandboxLimits {
            call_deadline_secs: 60.0,
            memory_limit_mib: 64,
            max_result_mib: 16,
            max_concurrent_calls: 1024,
        }
    }
}

impl SandboxLimits {
    /// The call deadline as a duration.
    pub fn call_deadline(&self) -> Duration {
        Duration::from_secs_f64(self.call_deadline_secs.max(0.001))
    }
}

/// Settings of one plugin that override the general ones.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginOverrides {
    /// Extra hosts this plugin may reach.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// This plugin's memory limit in MiB.
    pub memory_limit_mib: Option<u64>,
    /// This plugin's call deadline in seconds.
    pub call_deadline_secs: Option<f64>,
    /// Whether a `unix://PATH` endpoint of this plugin's resources is bridged to
    /// it (see `plugin::unix_bridge`). Default: only for the `docker` driver,
    /// since a local socket such as Docker's grants root on the machine.
    pub unix_endpoints: Option<bool>,
}

impl Config {
    /// Reads a configuration file; relative paths in it become relative to it.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config: Config = serde_yaml::from_str(&text).map_err(|e| {
            let location = e.location();
            ConfigError::Parse {
                path: path.to_owned(),
                line: location.as_ref().map_or(0, |l| l.line()),
                column: location.as_ref().map_or(0, |l| l.column()),
                message: e.to_string(),
            }
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.plugins.make_paths_absolute(base);
        if let Some(root) = config.local_cloud.root.as_mut().filter(|r| r.is_relative()) {
            *root = base.join(&*root);
        }
        Ok(config)
    }

    /// Finds and reads the configuration: an explicit path, `$OCCOPUS_CONFIG`, or
    /// the XDG config file if it exists; otherwise the defaults.
    pub fn discover(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        if let Some(path) = explicit {
            return Config::load(path);
        }
        if let Some(path) = std::env::var_os("OCCOPUS_CONFIG") {
            return Config::load(Path::new(&path));
        }
        match crate::dirs::config_file() {
            Some(path) if path.is_file() => Config::load(&path),
            _ => Ok(Config::default()),
        }
    }
}

impl PluginSettings {
    fn make_paths_absolute(&mut self, base: &Path) {
        let absolute = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        self.dir.iter_mut().for_each(absolute);
        self.cache_dir.iter_mut().for_each(absolute);
        self.drivers.values_mut().for_each(absolute);
        self.contextualisers.values_mut().for_each(absolute);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("occopus.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn reads_settings_and_resolves_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "plugins:\n  dir: plugins\n  drivers: {ec2: /opt/ec2.wasm, mine: mine.wasm}\n  \
             limits: {call_deadline_secs: 5}\n  settings: {mine: {memory_limit_mib: 128}}\n\
             local_cloud: {root: lc, max_nodes: 3}\n",
        );
        let config = Config::load(&path).unwrap();
        let plugins = &config.plugins;
        assert_eq!(
            plugins.dir.as_deref(),
            Some(dir.path().join("plugins").as_path())
        );
        assert_eq!(plugins.drivers["ec2"], Path::new("/opt/ec2.wasm"));
        assert_eq!(plugins.drivers["mine"], dir.path().join("mine.wasm"));
        assert_eq!(plugins.limits.call_deadline(), Duration::from_secs(5));
        assert_eq!(
            plugins.limits.memory_limit_mib, 64,
            "defaults fill the rest"
        );
        assert_eq!(plugins.settings["mine"].memory_limit_mib, Some(128));
        let local = &config.local_cloud;
        assert_eq!(local.root.as_deref(), Some(dir.path().join("lc").as_path()));
        assert_eq!(local.max_nodes, 3);
        assert_eq!(local.address_range, "127.77.0.0/16");
    }

    #[test]
    fn an_unknown_key_is_reported_with_its_location() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "plugins:\n  limits:\n    memory_mib: 5\n");
        let error = Config::load(&path).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("{}:3:5: ", path.display())),
            "{error}"
        );
        assert!(error.contains("unknown field `memory_mib`"), "{error}");
        assert!(
            error.contains("memory_limit_mib"),
            "the valid keys are listed: {error}"
        );
    }
}
