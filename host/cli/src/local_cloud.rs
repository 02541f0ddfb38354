//! `occopus local-cloud ...`: the built-in cloud of local process nodes.

use crate::output::{errln, out, outln};

use crate::environment;
use crate::error::CliError;
use clap::Subcommand;
use occopus::ApiError;
use occopus::local_cloud::node::{self, ControlFiles};
use occopus::local_cloud::{LocalCloud, LocalCloudConfig, LocalCloudSettings, http};
use occopus::types::ErrorCode;
use std::path::PathBuf;

/// The `local-cloud` subcommands.
#[derive(Debug, Subcommand)]
pub enum LocalCloudCommand {
    /// List the local nodes: id, address, state, pid, infra and node tags.
    Ls {
        /// Only the nodes of this infra id.
        #[arg(long, short = 'i')]
        infra: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print a node's output (its boot steps and its commands').
    Logs {
        /// The node's id (`local-N`).
        node: String,
    },
    /// Destroy a node: its process group, its directory and its record.
    Destroy {
        /// The node's id (`local-N`).
        node: String,
    },
    /// Serve the local cloud's HTTP API (for the `local` driver) until stopped.
    Serve {
        /// The loopback address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        host: std::net::IpAddr,
        /// The port (0 picks a free one).
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// Supervise one node (started by the local cloud, not by hand).
    #[command(hide = true)]
    BootNode {
        #[arg(long)]
        control: PathBuf,
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        address: String,
    },
}

/// Opens the local cloud whose directory `config` names.
fn open(config: &LocalCloudConfig) -> Result<LocalCloud, CliError> {
    let root = config.root.clone().ok_or(ApiError::NoLocalCloudRoot)?;
    let runner = environment::node_runner().ok_or_else(|| {
        CliError::ended(
            ErrorCode::Internal,
            "cannot find this executable to run nodes",
        )
    })?;
    Ok(LocalCloud::open(LocalCloudSettings::new(
        root, config, runner,
    ))?)
}

pub async fn run(command: LocalCloudCommand, config: &LocalCloudConfig) -> Result<(), CliError> {
    match command {
        LocalCloudCommand::BootNode {
            control,
            dir,
            address,
        } => {
            let code = node::boot(&ControlFiles::new(control), &dir, &address);
            Err(CliError::ended(
                ErrorCode::OperationFailed,
                format!("the node stopped with code {code}"),
            ))
        }
        LocalCloudCommand::Serve { host, port } => {
            let cloud = std::sync::Arc::new(open(config)?);
            http::serve(cloud, (host, port).into(), |bound| {
                // The endpoint is the first line, for scripts and tests.
                outln!("http://{bound}");
            })
            .await
            .map_err(|e| {
                CliError::ended(
                    ErrorCode::OperationFailed,
                    format!("the local cloud service stopped: {e}"),
                )
            })
        }
        LocalCloudCommand::Ls { infra, json } => {
            let nodes = open(config)?.list(infra.as_deref())?;
            if json {
                outln!("{:#}", serde_json::json!({ "nodes": nodes }));
                return Ok(());
            }
            outln!(
                "{:<10} {:<15} {:<8} {:>7}  {:<38} NODE",
                "ID",
                "ADDRESS",
                "STATE",
                "PID",
                "INFRA"
            );
            for node in nodes {
                let r = &node.record;
                let state = serde_json::to_value(node.state).unwrap_or_default();
                outln!(
                    "{:<10} {:<15} {:<8} {:>7}  {:<38} {}",
                    r.id,
                    r.address,
                    state.as_str().unwrap_or_default(),
                    r.pid.map_or("-".into(), |p| p.to_string()),
                    r.infra_id,
                    r.node_name
                );
            }
            Ok(())
        }
        LocalCloudCommand::Logs { node } => {
            out!("{}", open(config)?.logs(&node)?);
            Ok(())
        }
        LocalCloudCommand::Destroy { node } => {
            let cloud = open(config)?;
            // Destroying is idempotent; say which case it was.
            let existed = cloud.list(None)?.iter().any(|n| n.record.id == node);
            cloud.destroy(&node)?;
            if existed {
                errln!("node {node} destroyed (its processes, directory and record)");
            } else {
                errln!("no node {node} in the local cloud: nothing to destroy");
            }
            Ok(())
        }
    }
}
