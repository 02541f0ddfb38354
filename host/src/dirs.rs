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

/// `$XDG_DATA_HOME/occopus/state.db`: infrastructures, instances, imported
/// node definitions.
pub fn state_file() -> Option<PathBuf> {
    project().map(|p| p.data_dir().join("state.db"))
}

/// The credentials file used when none is named: `$OCCOPUS_AUTH_DATA_PATH`,
/// then Occopus's `~/.occopus/auth_data.yaml`, then
/// `$XDG_CONFIG_HOME/occopus/auth_data.yaml`, whichever exists first.
pub fn auth_data_file() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("OCCOPUS_AUTH_DATA_PATH") {
        return Some(PathBuf::from(path));
    }
    let occopus =
        directories::BaseDirs::new().map(|b| b.home_dir().join(".occopus/auth_data.yaml"));
    let xdg = project().map(|p| p.config_dir().join("auth_data.yaml"));
    [occopus, xdg].into_iter().flatten().find(|p| p.is_file())
}
