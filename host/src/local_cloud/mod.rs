//! The built-in local cloud: nodes that are real process groups on this
//! machine, each with its own loopback address and directory.
//!
//! - [`user_data`]: what a local node does with its cloud-init user-data.

pub mod user_data;
