//! The contract's `config-manager` interface (0.1.2) as plain Rust types and
//! the [`ConfigManager`] trait the engine calls a node definition's
//! `config_management` section through.

use crate::Credentials;
use crate::cloud::CallError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// What a config manager says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigManagerInfo {
    /// Its name, such as `chef`.
    pub name: String,
    /// Its own version (semver).
    pub version: String,
    /// The `config_management.type` values it serves.
    pub config_types: Vec<String>,
    /// A JSON Schema of the `config_management` section, as JSON text.
    pub config_schema: String,
}

/// Where a config-manager call is aimed.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigTarget {
    /// The rendered section as JSON text, its keys in the order the user
    /// wrote them (puppet_solo's names depend on it).
    pub section: String,
    /// The section's `endpoint`, if it has one: the host the call may reach.
    pub endpoint: Option<String>,
    /// The `auth_data` selected for this section.
    pub credentials: Credentials,
}

/// The infrastructure a config-manager call is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InfraFacts {
    /// The infrastructure's id.
    pub infra_id: String,
    /// The infrastructure's name.
    pub infra_name: String,
}

/// The node instance a config-manager call is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigNodeFacts {
    /// Its infrastructure.
    pub infra: InfraFacts,
    /// The node's name.
    pub node_name: String,
    /// The node instance id (Occopus's `node_id`).
    pub instance_id: String,
    /// The node's rendered `contextualisation.attributes` (empty when none).
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

/// What the configuration-management system says of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfigState {
    /// Not configured yet.
    Pending,
    /// Configured.
    Ready,
    /// Its configuration failed.
    Failed,
    /// The system does not know the node (yet).
    Unknown,
}

/// A config manager: what a `config_management` section asks of Chef,
/// Puppet and the like, at the points of a node's life Occopus asks it.
#[async_trait]
pub trait ConfigManager: Send + Sync {
    /// What it says about itself.
    fn info(&self) -> &ConfigManagerInfo;
    /// Makes the system ready for an infrastructure (idempotent).
    async fn prepare_infra(
        &self,
        target: &ConfigTarget,
        infra: &InfraFacts,
    ) -> Result<(), CallError>;
    /// The names the node's templates see besides Occopus's own.
    async fn resolve_attributes(
        &self,
        target: &ConfigTarget,
        node: &ConfigNodeFacts,
    ) -> Result<serde_json::Map<String, serde_json::Value>, CallError>;
    /// Registers a node before its instance is created.
    async fn register_node(
        &self,
        target: &ConfigTarget,
        node: &ConfigNodeFacts,
    ) -> Result<(), CallError>;
    /// The node's configuration state.
    async fn node_state(
        &self,
        target: &ConfigTarget,
        node: &ConfigNodeFacts,
    ) -> Result<ConfigState, CallError>;
    /// Forgets a node whose instance was destroyed.
    async fn drop_node(
        &self,
        target: &ConfigTarget,
        node: &ConfigNodeFacts,
    ) -> Result<(), CallError>;
    /// Forgets an infrastructure whose last instance was destroyed.
    async fn drop_infra(&self, target: &ConfigTarget, infra: &InfraFacts) -> Result<(), CallError>;
}
