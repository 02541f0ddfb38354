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
//! | plugin lock file | the config's `plugins.lock_file`, `occopus-plugins.lock` next to the config file, `$XDG_CONFIG_HOME/occopus/occopus-plugins.lock` |
//! | registry credentials (`plugins install`/`push`) | `$DOCKER_CONFIG/config.json` or `~/.docker/config.json` (what `docker login` writes) |
//! | compiled-plugin cache | `--cache-dir` / `$OCCOPUS_CACHE_DIR`, the config's `plugins.cache_dir`, `$XDG_CACHE_HOME/occopus/compiled` |
//! | state database | `--state` / `$OCCOPUS_STATE`, `$XDG_DATA_HOME/occopus/state.db` |
//! | local cloud directory | `local-cloud --root` / `$OCCOPUS_LOCAL_CLOUD_DIR`, the config's `local_cloud.root`, `$XDG_DATA_HOME/occopus/local-cloud` |
//! | credentials | `--auth-data`, `$OCCOPUS_AUTH_DATA_PATH`, `~/.occopus/auth_data.yaml`, `$XDG_CONFIG_HOME/occopus/auth_data.yaml` |
//! | REST token | `$OCCOPUS_API_TOKEN` (never a flag: `ps` would show it) |
//! | `ec2` credentials where auth_data has none for the resource | as the AWS tools: `$AWS_ACCESS_KEY_ID` and `$AWS_SECRET_ACCESS_KEY` (and `$AWS_SESSION_TOKEN`), then profile `$AWS_PROFILE` (default `default`) of `$AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials`, then of `$AWS_CONFIG_FILE` or `~/.aws/config` (`[profile NAME]`) |

use directories::ProjectDirs;
use occopus::Config;
use occopus::local_cloud::NodeRunner;
use occopus::types::{AmbientCredentials, Credentials};
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
    if plugins.lock_file.is_none() {
        plugins.lock_file = project().map(|p| p.config_dir().join(occopus::config::LOCK_FILE_NAME));
    }
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

/// The credentials the environment gives resources that auth_data has none
/// for: `ec2`'s from the AWS tools' sources ([`aws_credentials`]).
pub fn ambient_credentials() -> AmbientCredentials {
    let mut ambient = AmbientCredentials::default();
    let home = directories::BaseDirs::new().map(|b| b.home_dir().to_owned());
    let variable = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some((credentials, source)) = aws_credentials(variable, home.as_deref()) {
        ambient.add("ec2", credentials, source);
    }
    ambient
}

/// AWS credentials where the AWS tools find them, first found wins: the
/// variables `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (with
/// `AWS_SESSION_TOKEN`), then the profile `AWS_PROFILE` names (`default`
/// without it) in the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`,
/// else `~/.aws/credentials`), then in the config file (`AWS_CONFIG_FILE`,
/// else `~/.aws/config`, where a profile's section is `[profile NAME]`).
/// As the ec2 driver's keys (`accesskey`, `secretkey`, `sessiontoken`), with
/// where they were found. No instance metadata service is asked: occopus
/// sends no request on its own.
fn aws_credentials(
    variable: impl Fn(&str) -> Option<String>,
    home: Option<&Path>,
) -> Option<(Credentials, String)> {
    if let (Some(access), Some(secret)) = (
        variable("AWS_ACCESS_KEY_ID"),
        variable("AWS_SECRET_ACCESS_KEY"),
    ) {
        let keys = ec2_keys(access, secret, variable("AWS_SESSION_TOKEN"));
        return Some((keys, "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into()));
    }
    let profile = variable("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let file = |name: &str, default: &str| {
        variable(name)
            .map(PathBuf::from)
            .or_else(|| home.map(|h| h.join(default)))
    };
    let config_section = if profile == "default" {
        profile.clone()
    } else {
        format!("profile {profile}")
    };
    [
        (
            file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"),
            profile.clone(),
        ),
        (file("AWS_CONFIG_FILE", ".aws/config"), config_section),
    ]
    .into_iter()
    .find_map(|(path, section)| {
        let path = path?;
        let keys = profile_keys(&path, &section)?;
        Some((keys, format!("profile `{profile}` of {}", path.display())))
    })
}

/// The keys of `section` in the INI file at `path`, if it has both.
fn profile_keys(path: &Path, section: &str) -> Option<Credentials> {
    let file = match ini::Ini::load_from_file(path) {
        Ok(file) => file,
        Err(ini::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!("cannot read AWS credentials from {}: {e}", path.display());
            return None;
        }
    };
    let keys = file.section(Some(section))?;
    Some(ec2_keys(
        keys.get("aws_access_key_id")?.to_owned(),
        keys.get("aws_secret_access_key")?.to_owned(),
        keys.get("aws_session_token").map(str::to_owned),
    ))
}

/// AWS keys as the ec2 driver's credentials.
fn ec2_keys(access: String, secret: String, token: Option<String>) -> Credentials {
    let mut pairs = vec![
        ("accesskey".to_owned(), access),
        ("secretkey".to_owned(), secret),
    ];
    pairs.extend(token.map(|token| ("sessiontoken".to_owned(), token)));
    Credentials::new(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The chain with these variables and this home directory.
    fn found(variables: &[(&str, &str)], home: &Path) -> Option<(Vec<(String, String)>, String)> {
        let variables: HashMap<String, String> = variables
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        aws_credentials(|name| variables.get(name).cloned(), Some(home))
            .map(|(keys, source)| (keys.pairs().to_vec(), source))
    }

    fn keys(access: &str, secret: &str) -> Vec<(String, String)> {
        ec2_keys(access.into(), secret.into(), None)
            .pairs()
            .to_vec()
    }

    #[test]
    fn aws_credentials_are_found_in_the_aws_tools_order() {
        let home = tempfile::tempdir().unwrap();
        let aws = home.path().join(".aws");
        std::fs::create_dir(&aws).unwrap();
        assert_eq!(found(&[], home.path()), None, "nothing anywhere");

        std::fs::write(
            aws.join("config"),
            "[default]\nregion = eu-west-1\naws_access_key_id = CONFIG\naws_secret_access_key = c\n\
             [profile ci]\naws_access_key_id = CONFIG-CI\naws_secret_access_key = cc\n",
        )
        .unwrap();
        let (pairs, source) = found(&[], home.path()).unwrap();
        assert_eq!(pairs, keys("CONFIG", "c"));
        assert!(
            source.contains("profile `default`") && source.ends_with("config"),
            "{source}"
        );
        let (pairs, _) = found(&[("AWS_PROFILE", "ci")], home.path()).unwrap();
        assert_eq!(
            pairs,
            keys("CONFIG-CI", "cc"),
            "[profile ci] in the config file"
        );

        // The credentials file before the config file.
        std::fs::write(
            aws.join("credentials"),
            "# comment\n[default]\naws_access_key_id = FILE\naws_secret_access_key = f\n\
             [ci]\naws_access_key_id = FILE-CI\naws_secret_access_key = fc\naws_session_token = t\n",
        )
        .unwrap();
        assert_eq!(found(&[], home.path()).unwrap().0, keys("FILE", "f"));
        let (pairs, _) = found(&[("AWS_PROFILE", "ci")], home.path()).unwrap();
        assert_eq!(
            pairs,
            ec2_keys("FILE-CI".into(), "fc".into(), Some("t".into())).pairs()
        );
        // Files named by variables instead of ~/.aws.
        let elsewhere = home.path().join("elsewhere");
        std::fs::write(
            &elsewhere,
            "[default]\naws_access_key_id = ELSE\naws_secret_access_key = e\n",
        )
        .unwrap();
        let named = [("AWS_SHARED_CREDENTIALS_FILE", elsewhere.to_str().unwrap())];
        assert_eq!(found(&named, home.path()).unwrap().0, keys("ELSE", "e"));

        // The variables before any file; a lone key is not credentials.
        let variables = [("AWS_ACCESS_KEY_ID", "ENV"), ("AWS_SECRET_ACCESS_KEY", "v")];
        let (pairs, source) = found(&variables, home.path()).unwrap();
        assert_eq!(pairs, keys("ENV", "v"));
        assert_eq!(
            source, "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            "names, not values"
        );
        let lone = [("AWS_ACCESS_KEY_ID", "ENV")];
        assert_eq!(found(&lone, home.path()).unwrap().0, keys("FILE", "f"));
    }
}
