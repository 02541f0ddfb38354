//! The command line: the flags every command takes, the subcommands, and
//! [`run`], which parses, resolves the environment and dispatches.

use crate::output::errln;

use crate::args::StateArgs;
use crate::environment;
use crate::error::CliError;
use crate::{infra, local_cloud, plugins, serve, upkeep};
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

    #[command(flatten)]
    pub state: StateArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build an infrastructure (or resume one): prints its id.
    Build(infra::BuildArgs),
    /// Destroy an infrastructure, dependents first.
    Destroy(infra::DestroyArgs),
    /// List the infrastructures, or show one's nodes and instances.
    Info(infra::InfoArgs),
    /// Keep an infrastructure alive: heal failed instances, apply scaling.
    Maintain(upkeep::MaintainArgs),
    /// Queue a scaling request (within the node's limits) for `maintain`.
    Scale(upkeep::ScaleArgs),
    /// Show what `build` would change on an existing infrastructure.
    Plan(upkeep::PlanArgs),
    /// Free the lease a command that is gone left on an infrastructure.
    Unlock(infra::UnlockArgs),
    /// Check the files: every problem with its file, line and column.
    Validate(infra::ValidateArgs),
    /// Store node definitions for later builds (Occopus's occopus-import).
    Import {
        /// The node definitions file.
        file: PathBuf,
    },
    /// Print the dependency graph in Graphviz DOT.
    Graph {
        #[command(flatten)]
        files: crate::args::FileArgs,
    },
    /// Run the REST service (Occopus's occopus-rest-service): build, report,
    /// scale, maintain and destroy over HTTP.
    #[command(
        visible_alias = "rest-service",
        after_help = "Authentication: set the bearer token in the OCCOPUS_API_TOKEN environment \
                      variable (never on the command line, where other users could read it). \
                      Without one the service answers anyone who can reach it, so it then \
                      listens on a loopback address only."
    )]
    Serve(serve::ServeArgs),
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

/// The command line, with `serve` added when the binary is called by
/// Occopus's name for it (a symlink `occopus-rest-service -> occopus`).
fn arguments(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let called = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .is_some_and(|name| name == "occopus-rest-service");
    if called {
        args.insert(1, "serve".into());
    }
    args
}

/// Parses the command line, runs the command and returns the exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse_from(arguments(std::env::args_os().collect()));
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            errln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // A description's problems carry their own `FILE:LINE: error:`.
            // An intended stop (Ctrl-C) is no error.
            match &error {
                CliError::Api(occopus::ApiError::Invalid(diagnostics)) => errln!("{diagnostics}"),
                CliError::Ended {
                    code: occopus::types::ErrorCode::Interrupted,
                    message,
                } => errln!("{message}"),
                _ => errln!("error: {error}"),
            }
            error.exit_code()
        }
    }
}

async fn execute(cli: Cli) -> Result<(), CliError> {
    let config = environment::config(cli.config.as_deref(), cli.plugin_dir, cli.cache_dir)?;
    let state = &cli.state;
    match cli.command {
        Command::Build(args) => infra::build(args, &config, state).await,
        Command::Destroy(args) => infra::destroy(args, &config, state).await,
        Command::Info(args) => infra::info(args, state),
        Command::Maintain(args) => upkeep::maintain(args, &config, state).await,
        Command::Scale(args) => upkeep::scale(args, &config, state).await,
        Command::Plan(args) => upkeep::plan(args, &config, state).await,
        Command::Unlock(args) => infra::unlock(args, state),
        Command::Validate(args) => infra::validate(args, &config, state).await,
        Command::Import { file } => infra::import(file, &config, state).await,
        Command::Graph { files } => infra::graph(files),
        Command::Serve(args) => serve::serve(args, &config, state).await,
        Command::Plugins(command) => plugins::run(command, &config, state).await,
        Command::LocalCloud { root, command } => {
            let mut local_cloud = config.local_cloud.clone();
            local_cloud.root = root.or(local_cloud.root);
            local_cloud::run(command, &local_cloud).await
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
