//! The installed plugins as the engine asks for them: by the type each
//! serves.

use crate::cloud::{Contextualiser, Driver, NoPlugin};
use crate::config::ConfigManager;

/// The installed plugins, by the type each serves.
pub trait Plugins: Send + Sync {
    /// The driver serving a `resource.type`.
    fn driver(&self, resource_type: &str) -> Result<&dyn Driver, NoPlugin>;
    /// The contextualiser serving a `contextualisation.type`.
    fn contextualiser(&self, context_type: &str) -> Result<&dyn Contextualiser, NoPlugin>;
    /// The config manager serving a `config_management.type`.
    fn config_manager(&self, config_type: &str) -> Result<&dyn ConfigManager, NoPlugin>;
}
