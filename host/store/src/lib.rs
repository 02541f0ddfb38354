//! occopus's state: infrastructures, their node instances, imported node
//! definitions and an event log, in one SQLite database.
//!
//! The engine writes an instance's *intent* (its id, node and target) before
//! the cloud call that creates it and the *result* after, each committed
//! before the engine goes on (writes from concurrent instances share a commit:
//! see `committer.rs`), so that a process killed at any instant leaves a
//! record of every machine it may have made. Running the command again reads
//! these records and finishes the job.
//!
//! [`StateStore`] is the handle; its methods live one file per table group:
//! `infras.rs`, `instances.rs`, `scaling.rs` (node targets and scaling
//! requests), `definitions.rs` (imported node definitions), `events.rs`,
//! `service.rs` (the REST service's operations), `leases.rs` (one writer per
//! infra: every write about an infra is fenced by its lease); `schema.rs`
//! holds the migrations and `records.rs` the plain types.

mod backend;
mod committer;
mod copy;
mod definitions;
mod error;
mod events;
mod infras;
mod instances;
mod leases;
mod postgres;
mod records;
mod scaling;
mod schema;
mod service;
mod sql;
mod state_store;
#[cfg(test)]
mod testing;

pub use copy::CopyReport;
pub use error::StoreError;
pub use instances::HealthObserved;
pub use leases::{Acquired, LeaseHolder, LeaseRecord, Liveness};
pub use postgres::mask_password;
pub use records::{
    EventRecord, Health, HealthStatus, InfraRecord, InfraSnapshot, InstanceCount, InstanceRecord,
    InstanceState, NodeSnapshot, NodeTarget, ScaleRequest,
};
pub use service::{ServiceOperation, ServiceRecord};
pub use state_store::StateStore;
