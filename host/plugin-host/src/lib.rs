//! The plugin host: cloud drivers and contextualisers as sandboxed
//! WebAssembly components behind the `occopus:plugin` contract (`wit/`).
//! It knows nothing of Occopus files: it loads components, and runs calls in
//! them under the sandbox's rules.
//!
//! - [`settings`]: the `plugins` section of the configuration;
//! - [`contract`]: the contract version this host speaks;
//! - [`wasm_engine`]: the shared wasmtime engine, pooling allocator and epoch clock;
//! - [`cache`]: compiled components on disk, keyed by content and engine;
//! - [`sandbox`], [`allow_list`] and [`unix_bridge`]: what one call may touch;
//! - [`session`]: what a driver keeps between calls, and the hosts its endpoint names;
//! - [`runtime`]: running one call under the sandbox rules;
//! - [`driver`] and [`contextualiser`]: typed calls of each kind of plugin;
//! - [`loader`]: compiling, checking and describing a component;
//! - [`plugin`] and [`provenance`]: a loaded plugin, where it came from;
//! - [`catalog`]: which plugin serves which type, built-in or dropped in;
//! - [`lock`]: the digests pinned for the components installed from registries.

pub mod allow_list;
mod bindings;
pub mod cache;
pub mod catalog;
pub mod config_manager;
pub mod contextualiser;
pub mod contract;
mod convert;
pub mod driver;
mod error;
pub mod loader;
pub mod lock;
pub mod metrics;
pub mod plugin;
pub mod provenance;
pub mod runtime;
pub mod sandbox;
pub mod session;
pub mod settings;
pub mod unix_bridge;
pub mod wasm_engine;

pub use catalog::{Builtin, LoadFailure, PluginCatalog};
pub use config_manager::ConfigManagerPlugin;
pub use contextualiser::ContextualiserPlugin;
pub use contract::{CONTRACT_VERSION, contract_compatible};
pub use driver::DriverPlugin;
pub use error::{ContractError, RuntimeError, Violation};
pub use plugin::Plugin;
pub use provenance::{LoadReport, PluginOrigin};
pub use runtime::PluginRuntime;
pub use settings::{PluginOverrides, PluginSettings, SandboxLimits};
