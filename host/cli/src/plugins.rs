//! `occopus plugins list`, `inspect` and `check`; the registry subcommands
//! (`install`, `push`, `verify`, `remove`) are in `plugin_registry.rs`.

use crate::output::outln;

use crate::args::{AuthDataArg, StateArgs, positive_seconds};
use crate::error::CliError;
use crate::plugin_registry;
use clap::Subcommand;
use occopus::Config;
use occopus::conformance::CheckOptions;
use occopus::plugin_host::{Plugin, PluginCatalog};
use occopus::plugins::{DriverCheck, check_driver, load_plugins};
use occopus::types::{ErrorCode, PluginKind};
use serde_json::json;
use std::path::PathBuf;

/// The `plugins` subcommands.
#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// List every plugin: name, kind, version, types served, contract version,
    /// source file.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show a plugin's details: the JSON schema of the section it reads and
    /// the hosts it may reach (both plugins when a driver and a contextualiser
    /// share the name; `--json` prints an array).
    Inspect {
        /// The plugin's name or a type it serves.
        name: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check a driver against the contract's promises on a live cloud:
    /// validate without a cloud call, idempotent create, status transitions,
    /// addresses, list by infra tag, unknown ids, credentials, idempotent
    /// destroy. Each promise is reported passed, failed or not applicable;
    /// exits 1 when one fails. What the check creates, it destroys.
    Check {
        /// The driver's component file.
        file: PathBuf,
        /// A resource section the driver serves, pointing at the cloud to
        /// check against (a `local` one without `endpoint` uses the local cloud).
        #[arg(long, value_name = "FILE")]
        resource: PathBuf,
        #[command(flatten)]
        auth_data: AuthDataArg,
        /// Seconds a new instance may take to run.
        #[arg(long, value_name = "SECONDS", default_value_t = 300.0)]
        boot_timeout: f64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Install a plugin from an OCI registry into the plugin directory,
    /// pinning its digest in the lock file (`occopus-plugins.lock` next to
    /// the config), which every later load checks. Without SOURCE, fetches
    /// every pinned plugin whose file is missing or altered, by its pinned
    /// digest. Logins come from `docker login` (`~/.docker/config.json`).
    Install {
        /// `oci://REGISTRY[:PORT]/REPOSITORY:TAG` or `…@sha256:DIGEST`.
        source: Option<String>,
        /// Replace a file of the same name that was not installed from a registry.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        registry: RegistryArgs,
        /// Print an `occopus.plugins.install.v1` document.
        #[arg(long)]
        json: bool,
    },
    /// Push a plugin's component file to an OCI registry (for plugin
    /// authors), as a Wasm OCI artifact whose manifest names the plugin's
    /// kind, contract version and types. The file must load as a plugin.
    Push {
        /// The component file.
        file: PathBuf,
        /// `oci://REGISTRY[:PORT]/REPOSITORY:TAG`.
        destination: String,
        #[command(flatten)]
        registry: RegistryArgs,
        /// Print an `occopus.plugins.push.v1` document.
        #[arg(long)]
        json: bool,
    },
    /// Check every plugin the lock file pins: present, with its pinned
    /// digest, loading; list the directory's unpinned files. Exits 1 when
    /// one is missing, altered or broken.
    Verify {
        /// Print an `occopus.plugins.verify.v1` document.
        #[arg(long)]
        json: bool,
    },
    /// Delete an installed plugin's file and unpin it.
    Remove {
        /// Its name (or file name).
        name: String,
        /// Print an `occopus.plugins.remove.v1` document.
        #[arg(long)]
        json: bool,
    },
}

/// How the registry is reached.
#[derive(Debug, clap::Args)]
pub struct RegistryArgs {
    /// Plain HTTP to the registry (always for one on the loopback, as
    /// Docker does).
    #[arg(long)]
    plain_http: bool,
}

pub async fn run(
    command: PluginsCommand,
    config: &Config,
    state: &StateArgs,
) -> Result<(), CliError> {
    match command {
        PluginsCommand::List { json } => {
            let catalog = load_plugins(&config.plugins).await?;
            if json {
                list_json(&catalog);
            } else {
                list_table(&catalog);
            }
            Ok(())
        }
        PluginsCommand::Inspect { name, json } => {
            let catalog = load_plugins(&config.plugins).await?;
            inspect(&catalog, &name, json, config)
        }
        PluginsCommand::Check {
            file,
            resource,
            auth_data,
            boot_timeout,
            json,
        } => {
            let check = DriverCheck {
                file,
                resource,
                auth_data: auth_data.path(),
                options: CheckOptions {
                    boot_timeout: positive_seconds("--boot-timeout", boot_timeout)?,
                    ..CheckOptions::default()
                },
            };
            let local_cloud = state.options(config).local_cloud();
            let report = check_driver(config, local_cloud, &check).await?;
            if json {
                outln!("{:#}", json!({"passed": report.passed(), "report": report}));
            } else {
                outln!("{report}");
            }
            if report.passed() {
                return Ok(());
            }
            Err(CliError::ended(
                ErrorCode::OperationFailed,
                format!("{} breaks the contract (see above)", check.file.display()),
            ))
        }
        PluginsCommand::Install {
            source,
            force,
            registry,
            json,
        } => {
            let access = plugin_registry::access(registry.plain_http);
            plugin_registry::install(config, source.as_deref(), &access, force, json).await
        }
        PluginsCommand::Push {
            file,
            destination,
            registry,
            json,
        } => {
            let access = plugin_registry::access(registry.plain_http);
            plugin_registry::push(config, &file, &destination, &access, json).await
        }
        PluginsCommand::Verify { json } => plugin_registry::verify(config, json).await,
        PluginsCommand::Remove { name, json } => plugin_registry::remove(config, &name, json),
    }
}

/// `plugins inspect NAME`: both plugins when a driver and a contextualiser
/// share the name.
fn inspect(
    catalog: &PluginCatalog,
    name: &str,
    json: bool,
    config: &Config,
) -> Result<(), CliError> {
    let found = catalog.find(name);
    if found.is_empty() {
        let names: std::collections::BTreeSet<&str> =
            catalog.plugins().iter().map(Plugin::name).collect();
        let names: Vec<&str> = names.into_iter().collect();
        return Err(CliError::ended(
            ErrorCode::PluginUnavailable,
            format!(
                "no plugin is named or serves `{name}`; installed: {}",
                names.join(", ")
            ),
        ));
    }
    if json {
        let described: Vec<_> = found
            .iter()
            .map(|plugin| describe_json(catalog, plugin, config))
            .collect();
        outln!("{:#}", serde_json::Value::Array(described));
    } else {
        for (i, plugin) in found.iter().enumerate() {
            if i > 0 {
                outln!();
            }
            inspect_text(catalog, plugin, config);
        }
    }
    Ok(())
}

/// What `plugins list --json` shows of each plugin.
fn summary_json(catalog: &PluginCatalog, plugin: &Plugin) -> serde_json::Value {
    let report = plugin.load_report();
    json!({
        "name": plugin.name(),
        "kind": plugin.kind().as_str(),
        "version": plugin.version(),
        "types": plugin.types_served(),
        "contract": format!("occopus:plugin@{}", report.contract_version),
        "source": report.origin.to_string(),
        "active": catalog.is_active(plugin),
    })
}

/// The summary plus how the plugin was loaded, its limits and its schema.
fn describe_json(catalog: &PluginCatalog, plugin: &Plugin, config: &Config) -> serde_json::Value {
    let report = plugin.load_report();
    let overrides = config.plugins.settings.get(plugin.name());
    let schema: serde_json::Value =
        serde_json::from_str(plugin.schema()).unwrap_or_else(|_| json!(plugin.schema()));
    let mut details = summary_json(catalog, plugin);
    details.as_object_mut().unwrap().extend(
        json!({
            "load_ms": report.elapsed.as_secs_f64() * 1000.0,
            "cache": format!("{:?}", report.cache).to_lowercase(),
            "allowed_hosts": allowed_hosts(plugin),
            "memory_limit_mib": overrides.and_then(|o| o.memory_limit_mib)
                .unwrap_or(config.plugins.limits.memory_limit_mib),
            "call_deadline_secs": overrides.and_then(|o| o.call_deadline_secs)
                .unwrap_or(config.plugins.limits.call_deadline_secs),
            "schema": schema,
        })
        .as_object()
        .unwrap()
        .clone(),
    );
    details
}

fn allowed_hosts(plugin: &Plugin) -> Vec<String> {
    match plugin.kind() {
        PluginKind::Contextualiser => Vec::new(),
        PluginKind::ConfigManager => {
            std::iter::once("the host of each config_management section's `endpoint`".to_owned())
                .chain(plugin.allowed_hosts())
                .collect()
        }
        PluginKind::Driver => std::iter::once("the host of each resource's `endpoint`".to_owned())
            .chain(
                plugin
                    .uses_unix_endpoints()
                    .then(|| "the socket of a `unix://` endpoint (unix_endpoints)".to_owned()),
            )
            .chain(plugin.allowed_hosts())
            .collect(),
    }
}

fn list_json(catalog: &PluginCatalog) {
    let plugins: Vec<serde_json::Value> = catalog
        .plugins()
        .iter()
        .map(|p| summary_json(catalog, p))
        .collect();
    let failures: Vec<serde_json::Value> = catalog
        .failures()
        .iter()
        .map(|f| json!({"source": f.path.display().to_string(), "error": f.error.to_string()}))
        .collect();
    outln!("{:#}", json!({"plugins": plugins, "failed": failures}));
}

fn list_table(catalog: &PluginCatalog) {
    let rows: Vec<[String; 6]> = catalog
        .plugins()
        .iter()
        .map(|p| {
            let report = p.load_report();
            let mut source = report.origin.to_string();
            if let Some(refused) = catalog.refused_pin_over(p) {
                source.push_str(&format!(
                    " (not serving: {} is pinned and refused)",
                    refused.path.display()
                ));
            } else if !catalog.is_active(p) {
                source.push_str(" (replaced)");
            }
            [
                p.name().to_owned(),
                p.kind().as_str().to_owned(),
                p.version().to_owned(),
                p.types_served().join(","),
                format!("occopus:plugin@{}", report.contract_version),
                source,
            ]
        })
        .collect();
    let header = ["NAME", "KIND", "VERSION", "TYPES", "CONTRACT", "SOURCE"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        outln!("{}", line.join("  ").trim_end());
    }
    for failure in catalog.failures() {
        outln!(
            "\nnot loaded: {}\n  {}",
            failure.path.display(),
            failure.error
        );
    }
}

fn inspect_text(catalog: &PluginCatalog, plugin: &Plugin, config: &Config) {
    let details = describe_json(catalog, plugin, config);
    let field = |key: &str| match &details[key] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for key in [
        "name",
        "kind",
        "version",
        "types",
        "contract",
        "source",
        "active",
        "memory_limit_mib",
        "call_deadline_secs",
    ] {
        outln!("{key:<20}{}", field(key));
    }
    outln!("allowed hosts:");
    let hosts = allowed_hosts(plugin);
    if hosts.is_empty() {
        outln!(
            "  none (a {} makes no network calls)",
            plugin.kind().as_str()
        );
    }
    for host in hosts {
        outln!("  {host}");
    }
    outln!("schema:\n{:#}", details["schema"]);
}
