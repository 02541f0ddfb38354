//! Where occopus keeps its files by default (XDG base directories).

use directories::ProjectDirs;
use std::path::PathBuf;

fn project() -> Option<ProjectDirs> {
    ProjectDirs::from("", "", "occopus")
}

/// `$XDG_CONFIG_HOME/occopus/occopus.yaml`.
pub fn config_file() -> Option<PathBuf> {
    project().map(|p| p.config_dir().join("occopus.yaml"))
}

/// `$XDG_DATA_HOME/occopus/plugins`: the default plugin directory.
pub fn plugin_dir() -> Option<PathBuf> {
    project().map(|p| p.data_dir().join("plugins"))
}

/// `$XDG_CACHE_HOME/occopus/compiled`: the default cache of compiled plugins.
pub fn compiled_cache_dir() -> Option<PathBuf> {
    project().map(|p| p.cache_dir().join("compiled"))
}

/// `$XDG_DATA_HOME/occopus/local-cloud`: the local cloud's nodes and records.
pub fn local_cloud_dir() -> Option<PathBuf> {
    project().map(|p| p.data_dir().join("local-cloud"))
}
