//! occopus: deploy, heal, scale and destroy multi-node infrastructures
//! described in Occopus files, with cloud drivers and contextualisers as
//! sandboxed WebAssembly plugins.
//!
//! This crate is the library API front ends call (the `occopus` command, the
//! REST service, the Python bindings): it composes the configuration of the
//! capabilities below it and wires them together. Library users need only
//! this crate; the lower ones are re-exported under their capability's name.
//!
//! ```no_run
//! # async fn demo() -> Result<(), occopus::ApiError> {
//! use occopus::engine::{BuildOptions, DestroyOptions, LeasePolicy, StopSignal};
//! use occopus::model::Sources;
//! use occopus::{Occopus, Options};
//!
//! let mut options = Options::default();
//! options.state = Some("state.db".into());
//! let occopus = Occopus::open(options).await?;
//! let sources = Sources { infra: "examples/scale-sim/infra.yaml".into(), ..Sources::default() };
//! let mut progress = occopus.subscribe();
//! tokio::spawn(async move {
//!     while let Ok(event) = progress.recv().await {
//!         println!("{} {} {}", event.node, event.instance_id, event.phase.as_str());
//!     }
//! });
//! // Another process building the same infra makes this one wait (or, with
//! // `LeasePolicy::no_wait`, refuse at once naming it).
//! let lease = LeasePolicy { command: "demo".into(), wait: std::time::Duration::MAX };
//! let options = BuildOptions {
//!     infra_id: None,
//!     rollback: false,
//!     stop: StopSignal::never(),
//!     lease: lease.clone(),
//! };
//! let report = occopus.build(&sources, options).await?;
//! println!("built {} ({} instances)", report.infra_id, report.instances.len());
//! let options = DestroyOptions { stop: StopSignal::never(), lease };
//! occopus.destroy(&report.infra_id, None, options).await?;
//! # Ok(())
//! # }
//! ```
//!
//! - [`api`]: [`Occopus`] and its [`Options`];
//! - [`config`]: the configuration file, composed of each capability's section;
//! - [`info`]: what the state database says, without loading plugins;
//! - [`plugins`]: loading the plugins (with the first-party ones), checking a driver;
//! - [`plugin_registry`]: installing plugins from OCI registries, pinned by digest;
//! - [`graph`]: the dependency graph in Graphviz DOT;
//! - `local_endpoint.rs`: the local cloud, started for `local` resources without endpoint.

pub mod api;
pub mod config;
mod error;
mod files;
pub mod graph;
pub mod info;
mod local_endpoint;
pub mod plugin_registry;
pub mod plugins;

pub use api::{Occopus, Options};
pub use config::{Config, ConfigError};
pub use error::ApiError;
pub use info::InfraInfo;

pub use occopus_conformance as conformance;
pub use occopus_engine as engine;
pub use occopus_local_cloud as local_cloud;
pub use occopus_model as model;
pub use occopus_plugin_host as plugin_host;
pub use occopus_registry as registry;
pub use occopus_store as store;
pub use occopus_types as types;
