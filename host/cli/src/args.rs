//! Arguments several commands share, each defined once: the files of an
//! infrastructure, the credentials file, the state database, the infra id
//! (each command words the id's help for itself with `mut_arg`).

use crate::environment;
use clap::Args;
use occopus::engine::LeasePolicy;
use occopus::model::Sources;
use occopus::{Config, Options};
use std::path::PathBuf;

/// The files that describe an infrastructure.
#[derive(Debug, Args)]
pub struct FileArgs {
    /// The infrastructure description (Occopus's infra.yaml).
    pub infra: PathBuf,
    /// Node definition files [default: nodes/node_definitions.yaml next to
    /// INFRA if it exists, plus the definitions imported with `occopus import`].
    #[arg(long, value_name = "PATH")]
    pub nodes: Vec<PathBuf>,
    #[command(flatten)]
    pub auth_data: AuthDataArg,
}

impl FileArgs {
    /// The files as the library reads them.
    pub fn sources(&self) -> Sources {
        Sources {
            infra: self.infra.clone(),
            nodes: self.nodes.clone(),
            auth_data: self.auth_data.path(),
            ..Sources::default()
        }
    }
}

/// `--auth-data FILE`.
#[derive(Debug, Args)]
pub struct AuthDataArg {
    /// The credentials file [default: $OCCOPUS_AUTH_DATA_PATH, then
    /// ~/.occopus/auth_data.yaml, then $XDG_CONFIG_HOME/occopus/auth_data.yaml].
    #[arg(
        long = "auth-data",
        visible_alias = "auth_data_path",
        value_name = "FILE"
    )]
    pub auth_data: Option<PathBuf>,
}

impl AuthDataArg {
    /// The file given, else the default one if it exists.
    pub fn path(&self) -> Option<PathBuf> {
        self.auth_data.clone().or_else(environment::auth_data_file)
    }
}

/// `-i ID`, required.
#[derive(Debug, Args)]
pub struct InfraIdArg {
    /// The infrastructure's id.
    #[arg(
        short = 'i',
        long = "infra-id",
        visible_alias = "infra_id",
        value_name = "ID"
    )]
    pub infra_id: String,
}

/// `-i ID`, optional.
#[derive(Debug, Args)]
pub struct MaybeInfraIdArg {
    /// The infrastructure's id.
    #[arg(
        short = 'i',
        long = "infra-id",
        visible_alias = "infra_id",
        value_name = "ID"
    )]
    pub infra_id: Option<String>,
}

/// Options shared by the commands that use the state database.
#[derive(Debug, Args)]
pub struct StateArgs {
    /// The state database: a file [default: $XDG_DATA_HOME/occopus/state.db],
    /// or a shared PostgreSQL database, postgres://USER:PASSWORD@HOST:PORT/DB.
    #[arg(long, global = true, value_name = "FILE|URL", env = "OCCOPUS_STATE")]
    pub state: Option<PathBuf>,
    /// Let templates run commands on this machine with cmd() (a security
    /// risk: only for files you trust).
    #[arg(long, global = true)]
    pub allow_template_commands: bool,
}

impl StateArgs {
    /// The state database given (`--state`, `$OCCOPUS_STATE`), else the
    /// config file's `state`, else the default file.
    pub fn state_file(&self, config: &Config) -> Option<PathBuf> {
        self.state
            .clone()
            .or_else(|| config.state.clone().map(PathBuf::from))
            .or_else(environment::state_file)
    }

    /// How to open the library with `config`, for a command that may
    /// change infrastructures.
    pub fn options(&self, config: &Config) -> Options {
        Options {
            config: config.clone(),
            state: self.state_file(config),
            read_only: false,
            allow_template_commands: self.allow_template_commands,
            node_runner: environment::node_runner(),
            ambient_credentials: environment::ambient_credentials(),
        }
    }

    /// How to open the library for a command that only reads (`plan`,
    /// `validate`): the state database opened to read only.
    pub fn read_only_options(&self, config: &Config) -> Options {
        Options {
            read_only: true,
            ..self.options(config)
        }
    }
}

/// `--json` and `--progress`, for the commands that follow instances
/// (build, destroy).
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Print the outcome as one JSON document on stdout (docs/json.md).
    #[arg(long)]
    pub json: bool,
    /// How progress is shown on stderr: `auto` (a live table on a terminal,
    /// else log lines) or `json` (one JSON object per state change).
    #[arg(long, value_enum, default_value = "auto", value_name = "MODE")]
    pub progress: crate::progress::ProgressMode,
}

/// `--wait[=SECONDS]`, for the commands that change an infrastructure.
#[derive(Debug, Args)]
pub struct WaitArg {
    /// When another command is changing the infrastructure, wait for it to
    /// end (at most SECONDS; without a value, as long as it takes) instead
    /// of exiting at once naming it.
    #[arg(
        long,
        value_name = "SECONDS",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "inf"
    )]
    pub wait: Option<f64>,
}

impl WaitArg {
    /// How the command `command` takes the infra's lease.
    pub fn lease(&self, command: &str) -> Result<LeasePolicy, crate::error::CliError> {
        let wait = match self.wait {
            None => std::time::Duration::ZERO,
            Some(seconds) if seconds == f64::INFINITY => std::time::Duration::MAX,
            Some(seconds) => positive_seconds("--wait", seconds)?,
        };
        Ok(LeasePolicy {
            command: command.to_string(),
            wait,
        })
    }
}

/// A positive number of seconds given as `flag`.
pub fn positive_seconds(
    flag: &str,
    seconds: f64,
) -> Result<std::time::Duration, crate::error::CliError> {
    if seconds.is_finite() && seconds > 0.0 {
        Ok(std::time::Duration::from_secs_f64(seconds))
    } else {
        Err(crate::error::CliError::Usage(format!(
            "{flag} {seconds} is not a positive number of seconds"
        )))
    }
}
