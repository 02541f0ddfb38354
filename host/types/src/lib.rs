//! Plain types that several of occopus's layers need, so that none of them has
//! to depend on another for them:
//!
//! - [`cloud`]: the plugin contract's data as Rust types, and the [`Driver`],
//!   [`Contextualiser`] and [`Plugins`] traits (and, in [`config`], the
//!   [`ConfigManager`] one) the engine calls clouds through
//!   (the plugin host implements them with WebAssembly components, tests with
//!   in-memory clouds);
//! - [`Credentials`]: the `auth_data` selected for one resource;
//! - [`InstanceAddresses`] and [`Scaling`]: facts about instances and nodes;
//! - [`ErrorCode`]: one stable code per kind of failure, which the command
//!   line turns into its exit code and the REST service into its status;
//! - [`now_ms`]: the wall clock as the records keep it;
//! - [`error_chain`]: an error with its causes, for messages.
//!
//! Nothing here does I/O.

pub mod cloud;
pub mod config;
mod credentials;
mod error_code;
mod instance;
mod plugins;

pub use cloud::{
    CallError, CallErrorKind, CloudState, CloudTarget, ContainerSpec, Contextualiser,
    ContextualiserInfo, ContractErrorKind, CreateRequest, Driver, DriverInfo, InstanceStatus,
    InstanceTags, KeyValue, ListedInstance, NoPlugin, NodeFacts, Payload, PluginKind,
    ResourceSection, resource_type,
};
pub use config::{
    ConfigManager, ConfigManagerInfo, ConfigNodeFacts, ConfigState, ConfigTarget, InfraFacts,
};
pub use credentials::{AmbientCredentials, Credentials};
pub use error_code::{ErrorCode, HasErrorCode};
pub use instance::{InstanceAddresses, Scaling};
pub use plugins::Plugins;

/// An error and its causes as one line (`a: b: c`): what a connection
/// failure says is mostly in its sources.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Milliseconds since the Unix epoch: the time stamps of records and events.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
