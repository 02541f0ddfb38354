//! The built-in local cloud: nodes that are real process groups on this
//! machine, each with its own loopback address and directory, whose records
//! outlive the process that created them.
//!
//! - [`settings`]: its configuration section, limits and node runner;
//! - [`user_data`]: what a local node does with its cloud-init user-data;
//! - [`node`]: the supervisor process of one node;
//! - [`records`]: the records, in SQLite;
//! - [`cloud`]: creating, observing and destroying nodes;
//! - [`http`]: the HTTP API the `local` driver talks to;

pub mod cloud;
mod error;
pub mod http;
pub mod node;
pub mod records;
pub mod settings;
pub mod user_data;

pub use cloud::{CreateNode, LocalCloud, NodeState, NodeView};
pub use error::LocalCloudError;
pub use settings::{
    DEFAULT_ADDRESS_RANGE, DEFAULT_MAX_NODES, LocalCloudConfig, LocalCloudSettings, NodeRunner,
    RESOURCE_TYPE,
};
