//! `occopus plugins install`, `push`, `verify` and `remove`: plugins from OCI
//! registries, pinned by digest in the lock file.

use crate::error::CliError;
use crate::json;
use crate::output::outln;
use occopus::Config;
use occopus::plugin_registry::{
    FileStatus, InstallAction, Installed, RegistryAccess, install_locked, install_plugin,
    push_plugin, remove_plugin, verify_plugins,
};
use occopus::types::ErrorCode;
use serde_json::json;
use std::path::Path;

/// How the registry is reached, from the command's flags and Docker's
/// logins (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`).
pub fn access(plain_http: bool) -> RegistryAccess {
    let docker_config = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| directories::BaseDirs::new().map(|b| b.home_dir().join(".docker")))
        .map(|dir| dir.join("config.json"));
    RegistryAccess {
        plain_http,
        docker_config,
    }
}

/// `plugins install [SOURCE]`.
pub async fn install(
    config: &Config,
    source: Option<&str>,
    access: &RegistryAccess,
    force: bool,
    as_json: bool,
) -> Result<(), CliError> {
    let installed = match source {
        Some(source) => vec![install_plugin(&config.plugins, source, access, force).await?],
        None => install_locked(&config.plugins, access).await?,
    };
    if as_json {
        json::print(
            "occopus.plugins.install.v1",
            json!({ "installed": installed }),
        );
        return Ok(());
    }
    if installed.is_empty() {
        outln!(
            "nothing to install: {} pins no plugin; install one with `occopus plugins install \
             oci://REGISTRY/REPOSITORY:TAG`",
            lock_file(config)
        );
    }
    for plugin in &installed {
        print_installed(plugin, config);
    }
    Ok(())
}

fn print_installed(plugin: &Installed, config: &Config) {
    let locked = &plugin.locked;
    let what = match plugin.action {
        InstallAction::Installed => "installed",
        InstallAction::Replaced => "replaced",
        InstallAction::UpToDate => "up to date:",
    };
    outln!(
        "{what} {} {} ({}, serves {}; occopus:plugin@{}) from {}",
        locked.name,
        locked.version,
        locked.kind,
        locked.types.join(", "),
        locked.contract,
        locked.source
    );
    outln!(
        "  {} pinned at {} in {}",
        plugin.file.display(),
        locked.digest,
        lock_file(config)
    );
}

fn lock_file(config: &Config) -> String {
    config
        .plugins
        .lock_file
        .as_deref()
        .map_or("the lock file".into(), |p| p.display().to_string())
}

/// `plugins push FILE DESTINATION`.
pub async fn push(
    config: &Config,
    file: &Path,
    destination: &str,
    access: &RegistryAccess,
    as_json: bool,
) -> Result<(), CliError> {
    let pushed = push_plugin(&config.plugins, file, destination, access).await?;
    if as_json {
        json::print(
            "occopus.plugins.push.v1",
            serde_json::to_value(&pushed).unwrap_or_default(),
        );
        return Ok(());
    }
    outln!(
        "pushed {} {} ({}, occopus:plugin@{}) to {}",
        pushed.name,
        pushed.version,
        pushed.kind,
        pushed.contract,
        pushed.reference
    );
    outln!(
        "  manifest {}, component {}",
        pushed.manifest,
        pushed.digest
    );
    outln!(
        "  install it with: occopus plugins install {}",
        pushed.pinned_reference
    );
    Ok(())
}

/// `plugins verify`: exits with plugin-unavailable when a pinned file is
/// missing, altered or broken.
pub async fn verify(config: &Config, as_json: bool) -> Result<(), CliError> {
    let verification = verify_plugins(&config.plugins).await?;
    if as_json {
        let mut body = serde_json::to_value(&verification).unwrap_or_default();
        body["passed"] = verification.passed().into();
        json::print("occopus.plugins.verify.v1", body);
    } else {
        if verification.pinned.is_empty() {
            outln!("{} pins no plugin", verification.lock_file.display());
        }
        for file in &verification.pinned {
            let status = match &file.status {
                FileStatus::Verified => format!("verified {}", file.locked.digest),
                FileStatus::Altered { found } => format!(
                    "ALTERED: its digest is {found}, the lock pins {}",
                    file.locked.digest
                ),
                FileStatus::Missing => "MISSING".to_owned(),
                FileStatus::Broken { error } => format!("BROKEN: {error}"),
            };
            outln!(
                "{}: {status} (from {})",
                file.file.display(),
                file.locked.source
            );
        }
        for path in &verification.unpinned {
            outln!(
                "{}: not pinned (not installed from a registry)",
                path.display()
            );
        }
    }
    if verification.passed() {
        return Ok(());
    }
    Err(CliError::ended(
        ErrorCode::PluginUnavailable,
        format!(
            "some plugins {} pins are not as pinned (see above); `occopus plugins install` \
             fetches them again",
            verification.lock_file.display()
        ),
    ))
}

/// `plugins remove NAME`.
pub fn remove(config: &Config, name: &str, as_json: bool) -> Result<(), CliError> {
    let removed = remove_plugin(&config.plugins, name)?;
    if as_json {
        json::print("occopus.plugins.remove.v1", json!({ "removed": removed }));
    } else {
        outln!(
            "removed {} ({}) and unpinned it from {}",
            removed.locked.name,
            removed.file.display(),
            lock_file(config)
        );
    }
    Ok(())
}
