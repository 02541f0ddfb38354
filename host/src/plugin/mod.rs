//! The plugin runtime: cloud drivers and contextualisers as sandboxed
//! WebAssembly components behind the `occopus:plugin` contract (`wit/`).
//!
//! - [`engine`]: the shared wasmtime engine, pooling allocator and epoch clock;
//! - [`cache`]: compiled components on disk, keyed by content and engine;
//! - [`sandbox`], [`allow_list`] and [`unix_bridge`]: what one call may touch;
//! - [`runtime`]: loading components and running a call under the sandbox rules;
//! - [`driver`] and [`contextualiser`]: typed calls of each kind of plugin;
//! - [`catalog`]: which plugin serves which type, built-in or dropped in.

pub mod allow_list;
mod bindings;
pub mod cache;
pub mod catalog;
pub mod contextualiser;
pub mod driver;
pub mod engine;
mod error;
pub mod runtime;
pub mod sandbox;
pub mod unix_bridge;

pub use bindings::types;
pub use catalog::{LoadFailure, PluginCatalog};
pub use contextualiser::{ContextualiserInfo, ContextualiserPlugin, NodeFacts};
pub use driver::{
    ContainerSpec, CreateRequest, Credentials, DriverInfo, DriverPlugin, InstanceState,
    InstanceStatus, InstanceTags, KeyValue, ListedInstance, Payload, Target,
};
pub use error::{ContractError, ContractErrorKind, RuntimeError, Violation};
pub use runtime::{
    CONTRACT_VERSION, LoadReport, Plugin, PluginKind, PluginOrigin, PluginRuntime,
    contract_compatible,
};
