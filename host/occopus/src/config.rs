//! The occopus configuration file (`occopus.yaml`), composed of the sections
//! each capability owns: `state` (where the state database is),
//! `plugins` (the plugin host's [`PluginSettings`]), `local_cloud`
//! ([`LocalCloudConfig`]) and `engine` ([`EngineConfig`]). Every key is
//! optional:
//!
//! ```yaml
//! state: postgres://occopus:SECRET@db.example.org/occopus   # or a file
//! plugins:
//!   dir: /srv/occopus/plugins        # every *.wasm here is loaded
//!   cache_dir: /var/cache/occopus     # compiled plugins
//!   lock_file: ./occopus-plugins.lock # digests of installed plugins (this is the default)
//!   drivers: {ec2: ./my-ec2.wasm}     # resource.type -> component file
//!   contextualisers: {cloudinit: ./my-cloudinit.wasm}
//!   allowed_hosts: [metadata.example.org, "*.s3.example.org:443"]
//!   limits: {call_deadline_secs: 60, memory_limit_mib: 64, max_result_mib: 16}
//!   settings:                         # per plugin name
//!     my-ec2: {allowed_hosts: [sts.example.org], memory_limit_mib: 128}
//! local_cloud:
//!   root: /srv/occopus/local-cloud
//!   address_range: 127.77.0.0/16
//!   max_nodes: 64
//! engine:
//!   max_concurrent_per_endpoint: 64  # create/destroy calls in flight per cloud endpoint
//!   boot_timeout_secs: 1800           # pending longer than this = failed
//!   call_attempts: 5                  # tries of a transiently failing cloud call
//!   max_concurrent_checks: 256        # instances observed at once by `maintain`
//! ```
//!
//! Relative paths are relative to the file that names them. Where the file
//! is looked for, and the defaults of the directories, are the front end's
//! business (the command line reads `--config`, `$OCCOPUS_CONFIG` and the
//! XDG directories).

use occopus_engine::EngineConfig;
use occopus_local_cloud::LocalCloudConfig;
use occopus_plugin_host::PluginSettings;
use occopus_types::{ErrorCode, HasErrorCode};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The plugin lock file's name, next to the config unless it says otherwise.
pub const LOCK_FILE_NAME: &str = "occopus-plugins.lock";

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

impl HasErrorCode for ConfigError {
    fn code(&self) -> ErrorCode {
        ErrorCode::BadConfiguration
    }
}

/// The whole configuration file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The state database: a file, or a PostgreSQL URL that several occopus
    /// processes and hosts share (`--state` and `$OCCOPUS_STATE` win).
    #[serde(default)]
    pub state: Option<String>,
    /// Where plugins come from and how they are sandboxed.
    #[serde(default)]
    pub plugins: PluginSettings,
    /// The built-in local cloud.
    #[serde(default)]
    pub local_cloud: LocalCloudConfig,
    /// How builds, destroys and maintenance run.
    #[serde(default)]
    pub engine: EngineConfig,
}

impl Config {
    /// Reads a configuration file; relative paths in it become relative to
    /// it, and the plugin lock file defaults to [`LOCK_FILE_NAME`] next to it.
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
        config
            .plugins
            .lock_file
            .get_or_insert_with(|| PathBuf::from(LOCK_FILE_NAME));
        config.plugins.make_paths_absolute(base);
        if let Some(root) = config.local_cloud.root.as_mut().filter(|r| r.is_relative()) {
            *root = base.join(&*root);
        }
        if let Some(state) = config
            .state
            .as_mut()
            .filter(|s| !s.contains("://") && Path::new(s.as_str()).is_relative())
        {
            *state = base.join(&*state).display().to_string();
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
