//! The engine: builds, maintains, scales and destroys infrastructures,
//! recording every step in the store before and after the cloud call it
//! leads to. It calls clouds only through the [`occopus_types::Plugins`]
//! traits and checks health through [`occopus_health::Prober`], so it runs as
//! well against the sandboxed plugins as against an in-memory cloud (its
//! tests do).
//!
//! - [`orchestrator`]: what every operation shares, and [`Wiring`];
//! - [`build`] (with `converge.rs`, `rolling.rs`, `lifecycle.rs`,
//!   `probes.rs`, `listing.rs`): a graph of node instances, each created the moment every
//!   node it depends on is ready (no waves), resumable after a crash;
//! - [`plan`]: what bringing an infra in line with a description changes;
//! - [`maintain`], [`scaling`] and [`upkeep`]: reconcile passes (observe,
//!   heal, scale), scaling requests, and the loop with its error policy;
//! - [`destroy`]: dependents first, including instances only the cloud knows;
//! - [`check`]: the checks of a model that need the plugins;
//! - [`endpoints`]: who provides an endpoint a resource does not name;
//! - [`lease`]: the one writer of an infra, held for an operation's run;
//! - [`events`], [`stop`], [`report`], [`config`], [`error`].

pub mod build;
pub mod check;
pub mod config;
mod config_management;
mod converge;
pub mod destroy;
pub mod endpoints;
pub mod error;
pub mod events;
pub mod lease;
mod lifecycle;
mod listing;
pub mod maintain;
pub mod orchestrator;
pub mod plan;
mod polling;
mod probes;
pub mod report;
mod rolling;
mod run;
pub mod scaling;
mod status_batches;
pub mod stop;
pub mod upkeep;

#[cfg(test)]
mod memory_cloud;
#[cfg(test)]
mod tests;

pub use build::BuildOptions;
pub use config::EngineConfig;
pub use destroy::{DestroyOptions, DestroyReport};
pub use endpoints::{EndpointError, EndpointResolver, NoEndpoints};
pub use error::{EngineError, InstanceFailure, ScaleAsk, ScaleError};
pub use events::{Event, Phase};
pub use lease::{Lease, LeasePolicy};
pub use maintain::PassReport;
pub use orchestrator::{Orchestrator, Wiring};
pub use plan::{Action, Change, Plan};
pub use report::{BuildReport, InstanceOutcome};
pub use scaling::{ScaleBy, ScaleQueued};
pub use stop::{StopHandle, StopSignal};
pub use upkeep::{ErrorPolicy, Upkeep};
