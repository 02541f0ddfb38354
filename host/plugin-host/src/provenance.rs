//! Where a plugin came from and how it was loaded.

use crate::cache::CacheOutcome;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Where a plugin came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginOrigin {
    /// Shipped inside the occopus binary.
    Builtin(&'static str),
    /// A component file.
    File(PathBuf),
    /// A component pulled from a registry, not yet stored (`oci://…`).
    Registry(String),
}

impl fmt::Display for PluginOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginOrigin::Builtin(name) => write!(f, "builtin:{name}"),
            PluginOrigin::File(path) => write!(f, "{}", path.display()),
            PluginOrigin::Registry(reference) => f.write_str(reference),
        }
    }
}

/// How a plugin was loaded.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Where it came from.
    pub origin: PluginOrigin,
    /// The contract version it was built against.
    pub contract_version: String,
    /// The interfaces the component imports (`wasi:http/outgoing-handler@…`).
    pub imports: Vec<String>,
    /// The interfaces it exports (`occopus:plugin/driver@…`).
    pub exports: Vec<String>,
    /// Whether the compiled form came from the cache.
    pub cache: CacheOutcome,
    /// Time to compile or load, pre-instantiate and describe it.
    pub elapsed: Duration,
}

impl LoadReport {
    /// The report with the time taken since `started`.
    pub(crate) fn loaded_since(self, started: std::time::Instant) -> Self {
        LoadReport {
            elapsed: started.elapsed(),
            ..self
        }
    }
}
