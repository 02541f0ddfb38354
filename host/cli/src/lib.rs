//! The `occopus` command line: a thin front end over the library, and the
//! only part of occopus that reads the environment (`environment.rs`).
//! Every subcommand parses its flags, calls the library and prints.
//!
//! - `cli.rs`: the flags, the subcommands, [`run`];
//! - `args.rs`: arguments several commands share;
//! - `environment.rs`: defaults and variables, resolved for the library;
//! - `error.rs`: failures and exit codes; `json.rs`: the JSON documents;
//! - `infra.rs` (build, destroy, info, validate, import, graph),
//!   `upkeep.rs` (maintain, scale, plan), `serve.rs`, `plugins.rs` and
//!   `plugin_registry.rs` (plugins from OCI registries),
//!   `local_cloud.rs`, `state.rs` (state copy), `manual.rs` (completions,
//!   man pages): the commands;
//! - `progress.rs`, `summary.rs` and `signals.rs`: live progress, bounded
//!   summaries of many instances, and stop signals (Ctrl-C, SIGTERM, SIGHUP);
//! - `output.rs`: printing that ends quietly when the reader goes away.

mod args;
mod cli;
mod environment;
mod error;
mod infra;
mod json;
mod local_cloud;
mod manual;
mod output;
mod plugin_registry;
mod plugins;
mod progress;
mod serve;
mod signals;
mod state;
mod summary;
mod upkeep;

pub use cli::{Cli, run};
pub use error::CliError;
