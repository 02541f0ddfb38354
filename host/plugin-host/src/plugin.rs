//! A loaded plugin of any kind.

use crate::config_manager::ConfigManagerPlugin;
use crate::contextualiser::ContextualiserPlugin;
use crate::driver::DriverPlugin;
use crate::provenance::LoadReport;
use occopus_types::PluginKind;

/// A loaded plugin of any kind.
#[derive(Clone)]
pub enum Plugin {
    /// A cloud driver.
    Driver(DriverPlugin),
    /// A contextualiser.
    Contextualiser(ContextualiserPlugin),
    /// A config manager.
    ConfigManager(ConfigManagerPlugin),
}

impl Plugin {
    /// The plugin's own name.
    pub fn name(&self) -> &str {
        match self {
            Plugin::Driver(d) => &d.info().name,
            Plugin::Contextualiser(c) => &c.info().name,
            Plugin::ConfigManager(m) => &m.info().name,
        }
    }

    /// Which kind it is.
    pub fn kind(&self) -> PluginKind {
        match self {
            Plugin::Driver(_) => PluginKind::Driver,
            Plugin::Contextualiser(_) => PluginKind::Contextualiser,
            Plugin::ConfigManager(_) => PluginKind::ConfigManager,
        }
    }

    /// The plugin's own version.
    pub fn version(&self) -> &str {
        match self {
            Plugin::Driver(d) => &d.info().version,
            Plugin::Contextualiser(c) => &c.info().version,
            Plugin::ConfigManager(m) => &m.info().version,
        }
    }

    /// The `resource.type`, `contextualisation.type` or
    /// `config_management.type` values it serves.
    pub fn types_served(&self) -> &[String] {
        match self {
            Plugin::Driver(d) => &d.info().resource_types,
            Plugin::Contextualiser(c) => &c.info().context_types,
            Plugin::ConfigManager(m) => &m.info().config_types,
        }
    }

    /// The JSON schema of the section it reads.
    pub fn schema(&self) -> &str {
        match self {
            Plugin::Driver(d) => &d.info().resource_schema,
            Plugin::Contextualiser(c) => &c.info().context_schema,
            Plugin::ConfigManager(m) => &m.info().config_schema,
        }
    }

    /// How it was loaded.
    pub fn load_report(&self) -> &LoadReport {
        match self {
            Plugin::Driver(d) => d.load_report(),
            Plugin::Contextualiser(c) => c.load_report(),
            Plugin::ConfigManager(m) => m.load_report(),
        }
    }

    /// The hosts it may reach besides a section's endpoint.
    pub fn allowed_hosts(&self) -> Vec<String> {
        match self {
            Plugin::Driver(d) => d.base_policy().allow_list.entries(),
            Plugin::ConfigManager(m) => m.base_policy().allow_list.entries(),
            Plugin::Contextualiser(_) => Vec::new(),
        }
    }

    /// Whether a `unix://` endpoint of its resources is bridged to it.
    pub fn uses_unix_endpoints(&self) -> bool {
        match self {
            Plugin::Driver(d) => d.base_policy().unix_endpoints,
            Plugin::Contextualiser(_) | Plugin::ConfigManager(_) => false,
        }
    }
}
