//! occopus: deploy, heal, scale and destroy multi-node infrastructures described
//! in Occopus files, with cloud drivers and contextualisers as sandboxed
//! WebAssembly plugins.
//!
//! The library is the product; the `occopus` binary ([`cli`]) only calls it.
//! - [`plugin`]: the sandboxed plugin runtime and the plugin catalog;
//! - [`local_cloud`]: the built-in cloud of local process nodes;
//! - [`config`]: the occopus configuration file;
//! - [`dirs`]: default locations of occopus's files.

pub mod cli;
pub mod config;
pub mod dirs;
pub mod local_cloud;
pub mod model;
pub mod plugin;
pub mod template;
