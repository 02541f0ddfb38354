//! The model: Occopus files read into validated types, with every problem
//! reported at its file, line and column. Knows nothing of plugins or clouds.
//!
//! - [`yaml`]: YAML with locations, aliases and `!yaml_import`/`!text_import`;
//! - [`infra`]: the infrastructure description;
//! - [`node_def`]: node definitions and their health checks;
//! - [`auth`]: `auth_data.yaml` and credential selection;
//! - [`model`]: a description with its definitions and credentials, read by
//!   `load.rs`;
//! - [`stored`]: the model as kept in the state database, node fingerprints;
//! - [`template`]: Jinja2 templates with Occopus's names;
//! - [`render`]: rendering a node's sections, and a dry render of them all;
//! - [`diagnostics`] and [`location`]: the problems found, and where.

pub mod auth;
pub mod diagnostics;
mod fields;
pub mod infra;
mod load;
pub mod location;
pub mod model;
pub mod node_def;
pub mod render;
pub mod stored;
pub mod template;
pub mod yaml;

pub use auth::AuthData;
pub use diagnostics::{Diagnostic, Diagnostics, Severity};
pub use infra::{AttributeMapping, Dependency, InfraDescription, NodeSpec, Reconfigure, Scaling};
pub use location::Location;
pub use model::{Model, Sources};
pub use node_def::{HealthCheck, Implementation, NodeDefinitions};
pub use template::{AddressBook, NodeContext, Renderer, TemplateError};
pub use yaml::{LoadLimits, Value, Yaml};
