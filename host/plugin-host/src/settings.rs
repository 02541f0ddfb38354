//! The `plugins` section of the occopus configuration: where plugins come
//! from and how they are sandboxed.
//!
//! ```yaml
//! plugins:
//!   dir: /srv/occopus/plugins        # every *.wasm here is loaded
//!   cache_dir: /var/cache/occopus     # compiled plugins
//!   lock_file: ./occopus-plugins.lock # digests of installed plugins (default: next to the config)
//!   drivers:                          # resource.type -> component file
//!     ec2: ./my-ec2.wasm
//!   contextualisers:                  # contextualisation.type -> component file
//!     cloudinit: ./my-cloudinit.wasm
//!   config_managers:                  # config_management.type -> component file
//!     chef: ./my-chef.wasm
//!   allowed_hosts: [metadata.example.org, "*.s3.example.org:443"]
//!   limits: {call_deadline_secs: 60, memory_limit_mib: 64, max_result_mib: 16}
//!   settings:                         # per plugin name
//!     my-ec2: {allowed_hosts: [sts.example.org], memory_limit_mib: 128}
//! ```

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The `plugins` section.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSettings {
    /// The plugin directory: every `*.wasm` file in it is loaded (none: no
    /// directory is searched).
    pub dir: Option<PathBuf>,
    /// Where compiled plugins are cached (none: compiled on every load).
    pub cache_dir: Option<PathBuf>,
    /// The lock file pinning the digests of the plugin directory's files
    /// installed from registries ([`crate::lock`]); none: nothing is pinned.
    pub lock_file: Option<PathBuf>,
    /// Explicit `resource.type` -> component file mappings (win over the directory).
    #[serde(default)]
    pub drivers: BTreeMap<String, PathBuf>,
    /// Explicit `contextualisation.type` -> component file mappings.
    #[serde(default)]
    pub contextualisers: BTreeMap<String, PathBuf>,
    /// Explicit `config_management.type` -> component file mappings.
    #[serde(default)]
    pub config_managers: BTreeMap<String, PathBuf>,
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
    /// Whether a `unix://PATH` endpoint of this plugin's resources is bridged
    /// to it (see [`crate::unix_bridge`]); unset means no. A local socket such
    /// as Docker's grants root on the machine, so only a plugin the operator
    /// (or the built-in defaults, for the first-party `docker` driver) names
    /// gets one.
    pub unix_endpoints: Option<bool>,
}

impl PluginSettings {
    /// Makes every relative path absolute against `base` (the directory of
    /// the file that named them).
    pub fn make_paths_absolute(&mut self, base: &Path) {
        let absolute = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        self.dir.iter_mut().for_each(absolute);
        self.cache_dir.iter_mut().for_each(absolute);
        self.lock_file.iter_mut().for_each(absolute);
        self.drivers.values_mut().for_each(absolute);
        self.contextualisers.values_mut().for_each(absolute);
        self.config_managers.values_mut().for_each(absolute);
    }

    /// This plugin's overrides, if the configuration has any.
    pub fn overrides(&self, plugin: &str) -> Option<&PluginOverrides> {
        self.settings.get(plugin)
    }
}
