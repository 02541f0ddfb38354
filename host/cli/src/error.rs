//! Why a command failed, and its exit code: 0 success, 1 the operation
//! failed, 2 bad usage, 3 bad configuration, 4 invalid infrastructure or node
//! files, 5 another command is changing the infrastructure (its lease: the
//! message names the holder; try again, or `--wait`), 6 no such
//! infrastructure is recorded, 128 + the signal's number when a stop signal
//! ended it gracefully (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP; see
//! `signals.rs`). The code follows from the kind of failure
//! ([`ErrorCode`]) the library's error says it is, so the command line and
//! the REST service classify every failure alike.

use occopus::ApiError;
use occopus::types::{ErrorCode, HasErrorCode};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The library failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// An option's value makes no sense (clap checks the rest).
    #[error("{0}")]
    Usage(String),
    /// The command ran and says why it did not succeed.
    #[error("{message}")]
    Ended { code: ErrorCode, message: String },
}

impl CliError {
    /// A command's own failure of kind `code`.
    pub fn ended(code: ErrorCode, message: impl Into<String>) -> Self {
        CliError::Ended {
            code,
            message: message.into(),
        }
    }

    /// The process's exit status; `stopped_by` is the number of the signal
    /// that stopped the command, if one did (see `signals.rs`).
    pub fn exit_status(&self, stopped_by: Option<i32>) -> u8 {
        let code = match self {
            CliError::Usage(_) => return 2,
            CliError::Api(ApiError::Invalid(_)) => ErrorCode::InvalidDescription,
            CliError::Api(error) => error.code(),
            CliError::Ended { code, .. } => *code,
        };
        match code {
            ErrorCode::InvalidDescription => 4,
            ErrorCode::BadConfiguration => 3,
            ErrorCode::Conflict => 5,
            ErrorCode::UnknownInfra => 6,
            // 128 + the signal's number, as a shell reports a process it
            // ended; 130 (Ctrl-C's) for a stop asked otherwise.
            ErrorCode::Interrupted => {
                stopped_by.map_or(130, |number| u8::try_from(128 + number).unwrap_or(130))
            }
            ErrorCode::UnknownNode
            | ErrorCode::ScaleRefused
            | ErrorCode::PluginUnavailable
            | ErrorCode::CloudCallFailed
            | ErrorCode::OperationFailed
            | ErrorCode::StateDatabase
            | ErrorCode::Internal => 1,
        }
    }
}

/// Errors of the layers the command line calls directly, by their kind.
macro_rules! from_layer {
    ($($error:ty),*) => {$(
        impl From<$error> for CliError {
            fn from(error: $error) -> Self {
                CliError::ended(error.code(), error.to_string())
            }
        }
    )*};
}

from_layer!(
    occopus::ConfigError,
    occopus::plugin_host::RuntimeError,
    occopus::local_cloud::LocalCloudError,
    occopus::engine::EngineError,
    occopus_service::ServeError
);
