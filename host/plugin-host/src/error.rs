//! Errors of the plugin layer.

use occopus_types::{
    CallError, CallErrorKind, ContractErrorKind, ErrorCode, HasErrorCode, NoPlugin,
};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// How the plugin runtime fails. Every message names the plugin and says what
/// to do.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The engine could not be set up (no virtual memory, no thread, ...).
    #[error("cannot start the plugin engine: {0}")]
    Engine(String),

    /// The address space `ulimit -v` leaves cannot hold one plugin call.
    #[error(
        "a plugin call needs {needed_mib} MiB of address space (its memories of up to \
         {memory_limit_mib} MiB each, with guard pages), but the address-space limit \
         (`ulimit -v`) leaves {available_mib} MiB for plugins; raise the limit, or lower \
         `plugins.limits.memory_limit_mib` (and any `plugins.settings.NAME.memory_limit_mib`) \
         in the occopus config"
    )]
    AddressSpace {
        needed_mib: u64,
        available_mib: u64,
        memory_limit_mib: u64,
    },

    /// A setting of the `plugins` section is wrong.
    #[error("the occopus config's `{setting}` is wrong: {problem}")]
    BadSetting {
        setting: String,
        problem: crate::allow_list::BadHostEntry,
    },

    /// A component file could not be read.
    #[error("cannot read plugin {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    /// A component file pinned by the lock file hashes to another digest.
    #[error(
        "plugin {path} was refused: its digest is {found}, but {lock} pins {pinned} (installed \
         from {installed_from}); the file changed after it was installed. Run `occopus plugins \
         install` to fetch the pinned component again, or `occopus plugins install \
         {installed_from}` to pin what the registry holds now"
    )]
    DigestMismatch {
        path: PathBuf,
        lock: PathBuf,
        pinned: String,
        found: String,
        installed_from: String,
    },

    /// A component file pinned by the lock file is gone.
    #[error(
        "plugin {path} is pinned by {lock} (installed from {installed_from}) but is missing; run \
         `occopus plugins install` to fetch it again, or `occopus plugins remove {name}` to \
         unpin it"
    )]
    PinnedFileMissing {
        path: PathBuf,
        lock: PathBuf,
        name: String,
        installed_from: String,
    },

    /// The lock file cannot be read.
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),

    /// The bytes are not a valid WebAssembly component.
    #[error(
        "plugin {origin} is not a valid WebAssembly component ({message}); \
         build it for the wasm32-wasip2 target or with a component toolchain"
    )]
    InvalidComponent { origin: String, message: String },

    /// The component was built against a contract this host does not speak.
    #[error(
        "plugin {origin} was built against occopus:plugin@{found}, but this occopus speaks \
         occopus:plugin@{supported}; rebuild the plugin against the contract in occopus's wit/ \
         directory (version {supported})"
    )]
    ContractMismatch {
        origin: String,
        found: String,
        supported: &'static str,
    },

    /// The component exports no occopus interface.
    #[error(
        "plugin {origin} exports neither occopus:plugin/driver nor occopus:plugin/contextualiser \
         (it exports: {exports}); build it for the driver-plugin or contextualiser-plugin world"
    )]
    NotAPlugin { origin: String, exports: String },

    /// The component needs something the sandbox does not give plugins.
    #[error("plugin {origin} cannot be loaded into the sandbox: {message}")]
    Link { origin: String, message: String },

    /// No installed plugin serves the requested type.
    #[error(transparent)]
    NoPlugin(#[from] NoPlugin),

    /// A call broke a sandbox rule and was stopped.
    #[error("plugin `{plugin}` ({operation}): {violation}")]
    Sandbox {
        plugin: String,
        operation: &'static str,
        violation: Violation,
    },

    /// The plugin answered with an error of the contract.
    #[error("plugin `{plugin}` ({operation}) failed: {error}")]
    Plugin {
        plugin: String,
        operation: &'static str,
        error: ContractError,
    },
}

impl RuntimeError {
    /// The contract error the plugin reported, if that is what this is.
    pub fn contract_error(&self) -> Option<&ContractError> {
        match self {
            RuntimeError::Plugin { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The sandbox rule a call broke, if that is what this is.
    pub fn violation(&self) -> Option<&Violation> {
        match self {
            RuntimeError::Sandbox { violation, .. } => Some(violation),
            _ => None,
        }
    }

    /// Whether the cloud says the thing asked about does not exist.
    pub fn is_not_found(&self) -> bool {
        self.contract_error()
            .is_some_and(|e| e.kind == ContractErrorKind::NotFound)
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        self.contract_error()
            .is_some_and(|e| e.kind == ContractErrorKind::Transient)
    }

    /// The error as the engine sees a failed call: its kind and its message.
    pub fn to_call_error(&self) -> CallError {
        let kind = match self {
            RuntimeError::Plugin { error, .. } => CallErrorKind::Plugin(error.kind),
            RuntimeError::Sandbox { violation, .. } => CallErrorKind::Sandbox(violation.rule()),
            _ => CallErrorKind::Host,
        };
        CallError::new(kind, self.to_string())
    }
}

impl From<RuntimeError> for CallError {
    fn from(error: RuntimeError) -> Self {
        error.to_call_error()
    }
}

impl HasErrorCode for RuntimeError {
    fn code(&self) -> ErrorCode {
        match self {
            RuntimeError::Engine(_) => ErrorCode::Internal,
            RuntimeError::BadSetting { .. } | RuntimeError::AddressSpace { .. } => {
                ErrorCode::BadConfiguration
            }
            RuntimeError::Lock(_) => ErrorCode::BadConfiguration,
            RuntimeError::Read { .. }
            | RuntimeError::DigestMismatch { .. }
            | RuntimeError::PinnedFileMissing { .. }
            | RuntimeError::InvalidComponent { .. }
            | RuntimeError::ContractMismatch { .. }
            | RuntimeError::NotAPlugin { .. }
            | RuntimeError::Link { .. }
            | RuntimeError::NoPlugin(_) => ErrorCode::PluginUnavailable,
            RuntimeError::Sandbox { .. } | RuntimeError::Plugin { .. } => {
                ErrorCode::CloudCallFailed
            }
        }
    }
}

/// A sandbox rule a plugin call broke. Each names the rule and how to change it
/// where the user may.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// The call ran past its deadline.
    Deadline { limit: Duration },
    /// The plugin tried to grow its memory past the limit.
    Memory { limit_bytes: u64 },
    /// The plugin sent HTTP to a host that is not on its allow-list.
    OutboundHost { host: String },
    /// The plugin sent a request to a `unix://` endpoint it may not use.
    UnixEndpoint,
    /// The plugin tried to use a socket (`attempt` says how and where).
    Socket { attempt: String },
    /// The plugin tried to use the filesystem.
    Filesystem,
    /// The plugin trapped (a panic, an out-of-bounds access, `unreachable`).
    Trap { message: String },
    /// The plugin's answer was larger than the result limit.
    ResultTooLarge { bytes: usize, limit_bytes: usize },
}

impl Violation {
    /// A short stable name of the rule, for logs and tests.
    pub fn rule(&self) -> &'static str {
        match self {
            Violation::Deadline { .. } => "deadline",
            Violation::Memory { .. } => "memory-limit",
            Violation::OutboundHost { .. } => "outbound-http-allow-list",
            Violation::UnixEndpoint => "unix-endpoints",
            Violation::Socket { .. } => "no-sockets",
            Violation::Filesystem => "no-filesystem",
            Violation::Trap { .. } => "trap",
            Violation::ResultTooLarge { .. } => "result-size",
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rule = self.rule();
        match self {
            Violation::Deadline { limit } => write!(
                f,
                "stopped after the call deadline of {:.1} s [rule: {rule}]; if the cloud is \
                 just slow, raise `plugins.limits.call_deadline_secs` in the occopus config",
                limit.as_secs_f64()
            ),
            Violation::Memory { limit_bytes } => write!(
                f,
                "tried to use more than its memory limit of {} MiB [rule: {rule}]; raise \
                 `plugins.limits.memory_limit_mib` (or the plugin's own setting) if it needs more",
                limit_bytes / (1024 * 1024)
            ),
            Violation::OutboundHost { host } => write!(
                f,
                "sent an HTTP request to `{host}`, which is not on its allow-list [rule: {rule}]; \
                 a driver may reach the host of the resource's `endpoint`; to allow `{host}` too, \
                 add it to `plugins.allowed_hosts` in the occopus config"
            ),
            Violation::UnixEndpoint => write!(
                f,
                "sent a request to a `unix://` endpoint, which this plugin may not use \
                 [rule: {rule}]; a unix socket such as Docker's grants what its owner has, so \
                 only the `docker` driver may by default; to let this plugin, set \
                 `plugins.settings.<plugin>.unix_endpoints: true` in the occopus config"
            ),
            Violation::Socket { attempt } => write!(
                f,
                "tried to use a socket ({attempt}), which plugins may not [rule: {rule}]; \
                 a driver reaches its cloud with HTTP requests (wasi:http) to allowed hosts"
            ),
            Violation::Filesystem => write!(
                f,
                "tried to use the filesystem, which plugins may not [rule: {rule}]; \
                 a plugin gets all it needs through its call arguments"
            ),
            Violation::Trap { message } => {
                write!(
                    f,
                    "crashed (trap: {message}) [rule: {rule}]; this is a bug in the plugin"
                )
            }
            Violation::ResultTooLarge { bytes, limit_bytes } => write!(
                f,
                "answered with {bytes} bytes, over the limit of {limit_bytes} bytes [rule: {rule}]; \
                 raise `plugins.limits.max_result_mib` if such answers are expected"
            ),
        }
    }
}

/// An error reported by a plugin, in the contract's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractError {
    /// What kind of failure, which decides what the engine does about it.
    pub kind: ContractErrorKind,
    /// The plugin's message (with any credential value masked).
    pub message: String,
}

impl fmt::Display for ContractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.describe(), self.message)
    }
}
