//! The `occopus` command line. Every subcommand parses its flags, calls the
//! library and prints; nothing else happens here.
//!
//! Exit codes: 0 success, 1 the operation failed, 2 bad usage (unknown flag or
//! argument), 3 bad configuration.

mod local_cloud;
mod plugins;

use crate::config::{Config, ConfigError};
use crate::plugin::RuntimeError;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Deploy, heal, scale and destroy multi-node infrastructures described in
/// Occopus files.
#[derive(Debug, Parser)]
#[command(name = "occopus", version, about, long_about = None)]
pub struct Cli {
    /// The occopus config file [default: $OCCOPUS_CONFIG, then
    /// $XDG_CONFIG_HOME/occopus/occopus.yaml if it exists].
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The plugin directory: every *.wasm in it is loaded [default: from the
    /// config, then $XDG_DATA_HOME/occopus/plugins].
    #[arg(long, global = true, value_name = "DIR", env = "OCCOPUS_PLUGIN_DIR")]
    pub plugin_dir: Option<PathBuf>,

    /// Where compiled plugins are cached [default: from the config, then
    /// $XDG_CACHE_HOME/occopus/compiled].
    #[arg(long, global = true, value_name = "DIR", env = "OCCOPUS_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Log more (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List and inspect the installed plugins.
    #[command(subcommand)]
    Plugins(plugins::PluginsCommand),
    /// The built-in local cloud: nodes that are processes on this machine.
    LocalCloud {
        /// The local cloud's directory [default: $XDG_DATA_HOME/occopus/local-cloud].
        #[arg(long, value_name = "DIR", env = "OCCOPUS_LOCAL_CLOUD_DIR")]
        root: Option<PathBuf>,
        #[command(subcommand)]
        command: local_cloud::LocalCloudCommand,
    },
}

/// Why a command failed, and its exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Plugin(#[from] RuntimeError),
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Config(_) => ExitCode::from(3),
            CliError::Plugin(_) | CliError::Failed(_) => ExitCode::FAILURE,
        }
    }
}

/// Parses the command line, runs the command and returns the exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            error.exit_code()
        }
    }
}

async fn execute(cli: Cli) -> Result<(), CliError> {
    let mut config = Config::discover(cli.config.as_deref())?;
    if let Some(dir) = cli.plugin_dir {
        config.plugins.dir = Some(dir);
    }
    if let Some(dir) = cli.cache_dir {
        config.plugins.cache_dir = Some(dir);
    }
    match cli.command {
        Command::Plugins(command) => plugins::run(command, &config).await,
        Command::LocalCloud { root, command } => {
            local_cloud::run(command, root, &config.local_cloud).await
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
