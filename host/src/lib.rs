//! occopus: deploy, heal, scale and destroy multi-node infrastructures described
//! in Occopus files, with cloud drivers and contextualisers as sandboxed
//! WebAssembly plugins.
//!
//! The library is the product; the `occopus` binary ([`cli`]) only calls it.
//! - [`api`]: the library API (build, destroy, info, validate, import);
//! - [`model`]: Occopus files read into validated types, with locations;
//! - [`template`]: Jinja2 templates with Occopus's names;
//! - [`engine`]: building and destroying through the drivers;
//! - [`health`]: node health checks;
//! - [`store`]: the state database;
//! - [`plugin`]: the sandboxed plugin runtime and the plugin catalog;
//! - [`local_cloud`]: the built-in cloud of local process nodes;
//! - [`config`]: the occopus configuration file;
//! - [`dirs`]: default locations of occopus's files.

pub mod api;
pub mod cli;
pub mod config;
pub mod dirs;
pub mod engine;
pub mod health;
pub mod local_cloud;
pub mod model;
pub mod plugin;
pub mod service;
mod sqlite;
pub mod store;
pub mod template;
