//! The built-in local cloud: nodes that are real process groups on this
//! machine, each with its own loopback address and directory, whose records
//! outlive the process that created them.
//!
//! - [`user_data`]: what a local node does with its cloud-init user-data;
//! - [`node`]: the supervisor process of one node;
//! - [`store`]: the records, in SQLite;
//! - [`cloud`]: creating, observing and destroying nodes;
//! - [`service`]: the HTTP API the `local` driver talks to.

pub mod cloud;
pub mod node;
pub mod service;
pub mod store;
pub mod user_data;

pub use cloud::{CreateNode, LocalCloud, LocalCloudError, LocalCloudSettings, NodeState, NodeView};
