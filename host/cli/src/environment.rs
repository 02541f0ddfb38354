//! Everything the command line takes from its environment, in one place: the
//! library reads no environment variable and knows no default location, so
//! the defaults below (XDG base directories, Occopus's own
//! `~/.occopus/auth_data.yaml`) and the `OCCOPUS_*` variables are resolved
//! here and handed to it.
//!
//! | what | from, first found wins |
//! |---|---|
//! | config file | `--config`, `$OCCOPUS_CONFIG`, `$XDG_CONFIG_HOME/occopus/occopus.yaml` if it exists |
//! | plugin directory | `--plugin-dir` / `$OCCOPUS_PLUGIN_DIR`, the config's `plugins.dir`, `$XDG_DATA_HOME/occopus/plugins` |
//! | compiled-plugin cache | `--cache-dir` / `$OCCOPUS_CACHE_DIR`, the config's `plugins.cache_dir`, `$XDG_CACHE_HOME/occopus/compiled` |
//! | state database | `--state` / `$OCCOPUS_STATE`, `$XDG_DATA_HOME/occopus/state.db` |
//! | local cloud directory | `local-cloud --root` / `$OCCOPUS_LOCAL_CLOUD_DIR`, the config's `local_cloud.root`, `$XDG_DATA_HOME/occopus/local-cloud` |
//! | credentials | `--auth-data`, `$OCCOPUS_AUTH_DATA_PATH`, `~/.occopus/auth_data.yaml`, `$XDG_CONFIG_HOME/occopus/auth_data.yaml` |
//! | REST token | `$OCCOPUS_API_TOKEN` (never a flag: `ps` would show it) |

use directories::ProjectDirs;
use occopus::Config;
use occopus::local_cloud::NodeRunner;
use std::path::{Path, PathBuf};

fn project() -> Option<ProjectDirs> {
    ProjectDirs::from("", "", "occopus")
}

/// The configuration: the file `explicit` names, else `$OCCOPUS_CONFIG`'s,
/// else the XDG one if it exists, else the defaults; with the directories it
/// leaves open filled in from the flags and the XDG defaults.
pub fn config(
    explicit: Option<&Path>,
    plugin_dir: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
) -> Result<Config, occopus::ConfigError> {
    let file = explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("OCCOPUS_CONFIG").map(PathBuf::from))
        .or_else(|| {
            project()
                .map(|p| p.config_dir().join("occopus.yaml"))
                .filter(|p| p.is_file())
        });
    let mut config = match file {
        Some(file) => Config::load(&file)?,
        None => Config::default(),
    };
    let plugins = &mut config.plugins;
    plugins.dir = plugin_dir
        .or(plugins.dir.take())
        .or_else(|| project().map(|p| p.data_dir().join("plugins")));
    plugins.cache_dir = cache_dir
        .or(plugins.cache_dir.take())
        .or_else(|| project().map(|p| p.cache_dir().join("compiled")));
    let local = &mut config.local_cloud;
    local.root = std::env::var_os("OCCOPUS_LOCAL_CLOUD_DIR")
        .map(PathBuf::from)
        .or(local.root.take())
        .or_else(|| project().map(|p| p.data_dir().join("local-cloud")));
    Ok(config)
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

/// The REST service's bearer token, `$OCCOPUS_API_TOKEN` (unset or empty:
/// none).
pub fn api_token() -> Option<String> {
    std::env::var("OCCOPUS_API_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
}

/// Whether progress may be drawn in place: stderr is a terminal that is not
/// `TERM=dumb` (which cannot move the cursor).
pub fn live_progress() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("TERM").is_none_or(|term| term != "dumb")
}

/// How this binary supervises a local cloud node: itself, as
/// `occopus local-cloud boot-node`.
pub fn node_runner() -> Option<NodeRunner> {
    let program = std::env::current_exe()
        .inspect_err(|e| tracing::warn!(error = %e, "cannot find this executable: the local cloud is unavailable"))
        .ok()?;
    Some(NodeRunner {
        program,
        args: vec!["local-cloud".into(), "boot-node".into()],
    })
}
