//! One stable code per kind of failure, shared by every layer's error type.
//!
//! Each layer keeps its own typed error (with the details that layer knows)
//! and says which kind of failure it is through [`HasErrorCode`]. The front
//! ends decide what a kind means to their users, each with one exhaustive
//! `match`: the command line picks its exit code, the REST service its HTTP
//! status and the `error.code` of its answers, which is [`ErrorCode::as_str`].

use std::fmt;

/// What kind of failure an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// The description, node definitions or credentials file has problems;
    /// the user changes the file.
    InvalidDescription,
    /// occopus's own configuration is wrong (config file, option values, a
    /// directory it cannot use); the operator changes it.
    BadConfiguration,
    /// No infrastructure with that id is recorded.
    UnknownInfra,
    /// The infrastructure has no node of that name.
    UnknownNode,
    /// A scaling request asks for what the node's limits (or its instances)
    /// do not allow.
    ScaleRefused,
    /// Another operation holds the infrastructure.
    Conflict,
    /// No plugin serves a type, or a plugin could not be loaded.
    PluginUnavailable,
    /// A call to a cloud (through its driver) failed.
    CloudCallFailed,
    /// An operation ran and ended with failures (instances that failed or
    /// could not be destroyed); its report says which.
    OperationFailed,
    /// The state database could not be read or written.
    StateDatabase,
    /// The operation was stopped on request (Ctrl-C, a stop signal).
    Interrupted,
    /// A bug or an unexpected condition inside occopus.
    Internal,
}

impl ErrorCode {
    /// The stable name: the REST service's `error.code`, the CLI's `--json`
    /// errors.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidDescription => "invalid-description",
            ErrorCode::BadConfiguration => "bad-configuration",
            ErrorCode::UnknownInfra => "unknown-infra",
            ErrorCode::UnknownNode => "unknown-node",
            ErrorCode::ScaleRefused => "scaling-refused",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PluginUnavailable => "plugin-unavailable",
            ErrorCode::CloudCallFailed => "cloud-call-failed",
            ErrorCode::OperationFailed => "operation-failed",
            ErrorCode::StateDatabase => "state-database",
            ErrorCode::Interrupted => "interrupted",
            ErrorCode::Internal => "internal",
        }
    }

    /// Whether trying the same thing again later, unchanged, may succeed
    /// (a loop such as `maintain` goes on after such a failure and stops
    /// after any other).
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorCode::CloudCallFailed
                | ErrorCode::StateDatabase
                | ErrorCode::Conflict
                | ErrorCode::OperationFailed
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error that knows which kind of failure it is.
pub trait HasErrorCode: std::error::Error {
    /// Its kind.
    fn code(&self) -> ErrorCode;
}
