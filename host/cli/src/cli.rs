//! The command line: the flags every command takes, the subcommands, and
//! [`run`], which parses, resolves the environment and dispatches.

use crate::output::errln;

use crate::args::StateArgs;
use crate::environment;
use crate::error::CliError;
use crate::{infra, json, local_cloud, manual, plugins, serve, state, upkeep};
use clap::{CommandFactory, Parser, Subcommand};
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

    /// How log lines are written on stderr: `text`, or `json` (one object a
    /// line with its level, target, fields and spans, such as a REST
    /// request's id, for a log collector).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        value_name = "FORMAT"
    )]
    pub log_format: LogFormat,

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
        /// Print the result as JSON (docs/json.md).
        #[arg(long)]
        json: bool,
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
    /// The state database as a whole: copy it between a file and PostgreSQL.
    #[command(subcommand)]
    State(state::StateCommand),
    /// Print the shell completion script (install: `occopus completions bash >
    /// ~/.local/share/bash-completion/completions/occopus`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages: occopus.1 and one per subcommand (install:
    /// `occopus man --out-dir ~/.local/share/man/man1`), or print occopus.1.
    Man {
        /// The directory to write the pages into [default: print occopus.1].
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
    /// The built-in local cloud: nodes that are processes on this machine.
    LocalCloud {
        /// The local cloud's directory [default: $XDG_DATA_HOME/occopus/local-cloud].
        #[arg(long, value_name = "DIR", env = "OCCOPUS_LOCAL_CLOUD_DIR")]
        root: Option<PathBuf>,
        #[command(subcommand)]
        command: local_cloud::LocalCloudCommand,
    },
}

impl Command {
    /// Whether the command was asked for JSON: its failure is then a JSON
    /// document too (see `json.rs`).
    fn json(&self) -> bool {
        match self {
            Command::Build(args) => args.report.json,
            Command::Destroy(args) => args.report.json,
            Command::Info(args) => args.json,
            Command::Maintain(args) => args.json,
            Command::Scale(args) => args.json,
            Command::Plan(args) => args.json,
            Command::Validate(args) => args.json,
            Command::Import { json, .. } => *json,
            _ => false,
        }
    }
}

/// Occopus's own command names, each a symlink to `occopus` away (see the
/// README), and the subcommand each stands for. Their flags are accepted as
/// Occopus spelt them (`--infra_id`, `--changescale`, ...).
const ORIGINAL_NAMES: &[(&str, &str)] = &[
    ("occopus-build", "build"),
    ("occopus-destroy", "destroy"),
    ("occopus-import", "import"),
    ("occopus-maintain", "maintain"),
    ("occopus-scale", "scale"),
    ("occopus-rest-service", "serve"),
];

/// The command line, with the subcommand added when the binary is called by
/// one of Occopus's names for it (a symlink `occopus-build -> occopus`).
fn arguments(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let called = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|name| {
            ORIGINAL_NAMES
                .iter()
                .find(|(original, _)| name == *original)
        });
    if let Some((_, subcommand)) = called {
        args.insert(1, subcommand.into());
    }
    args
}

/// When the first argument is a file rather than a command (`occopus
/// infra.yaml`), what the user most likely meant.
fn file_given_as_command(args: &[std::ffi::OsString]) -> Option<String> {
    let first = std::path::Path::new(args.get(1)?);
    let is_command = Cli::command().get_subcommands().any(|c| {
        c.get_name() == first.as_os_str() || c.get_all_aliases().any(|a| a == first.as_os_str())
    });
    (!is_command && first.is_file()).then(|| {
        format!(
            "error: `{0}` is a file, not a command; to deploy it: occopus build {0} \
             (or check it first: occopus validate {0})",
            first.display()
        )
    })
}

/// Parses the command line, runs the command and returns the exit code.
pub fn run() -> ExitCode {
    let args = arguments(std::env::args_os().collect());
    if let Some(hint) = file_given_as_command(&args) {
        errln!("{hint}");
        return ExitCode::from(2);
    }
    let cli = Cli::parse_from(args);
    init_logging(cli.verbose, cli.log_format);
    let json = cli.command.json();
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
            let status = error.exit_status(crate::signals::received());
            if json && !crate::output::wrote_stdout() {
                json::print(
                    "occopus.error.v1",
                    serde_json::json!({ "error": json::error(&error, status) }),
                );
            }
            ExitCode::from(status)
        }
    }
}

async fn execute(cli: Cli) -> Result<(), CliError> {
    // Generated from the definitions alone: no configuration is read.
    match &cli.command {
        Command::Completions { shell } => return manual::completions(*shell),
        Command::Man { out_dir } => return manual::man_pages(out_dir.as_deref()),
        _ => {}
    }
    let config = environment::config(cli.config.as_deref(), cli.plugin_dir, cli.cache_dir)?;
    let state = &cli.state;
    match cli.command {
        Command::Build(args) => infra::build(args, &config, state).await,
        Command::Destroy(args) => infra::destroy(args, &config, state).await,
        Command::Info(args) => infra::info(args, &config, state),
        Command::Maintain(args) => upkeep::maintain(args, &config, state).await,
        Command::Scale(args) => upkeep::scale(args, &config, state).await,
        Command::Plan(args) => upkeep::plan(args, &config, state).await,
        Command::Unlock(args) => infra::unlock(args, &config, state),
        Command::Validate(args) => infra::validate(args, &config, state).await,
        Command::Import { file, json } => infra::import(file, json, &config, state).await,
        Command::Graph { files } => infra::graph(files),
        Command::Serve(args) => serve::serve(args, &config, state).await,
        Command::Plugins(command) => plugins::run(command, &config, state).await,
        Command::State(command) => state::run(command),
        Command::Completions { .. } | Command::Man { .. } => Ok(()),
        Command::LocalCloud { root, command } => {
            let mut local_cloud = config.local_cloud.clone();
            local_cloud.root = root.or(local_cloud.root);
            local_cloud::run(command, &local_cloud).await
        }
    }
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people.
    Text,
    /// One JSON object a line.
    Json,
}

fn init_logging(verbose: u8, format: LogFormat) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
}
