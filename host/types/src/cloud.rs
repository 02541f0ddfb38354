//! The plugin contract (`wit/plugin.wit`) as plain Rust types, and the traits
//! through which the engine calls clouds.
//!
//! The plugin host implements [`Driver`] and [`Contextualiser`] with
//! sandboxed WebAssembly components; the engine's tests implement them with
//! in-memory clouds. Structured sections cross as JSON objects
//! ([`ResourceSection`]), as they cross the WIT boundary as JSON text.

use crate::{Credentials, InstanceAddresses};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A node definition's `resource` (or `contextualisation`) section as a JSON
/// object.
pub type ResourceSection = serde_json::Map<String, serde_json::Value>;

/// `type` of a resource or contextualisation section (empty when missing).
pub fn resource_type(section: &ResourceSection) -> &str {
    section
        .get("type")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
}

/// A named string value: a credential, a tag or an environment entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    /// The name.
    pub key: String,
    /// The value.
    pub value: String,
}

/// How to start a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// Environment entries; each key is unique.
    pub env: Vec<KeyValue>,
    /// The command and its arguments; none means the image's default command.
    pub command: Option<Vec<String>>,
}

/// What a contextualiser produces and a driver hands to the new instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// The node has no contextualisation.
    None,
    /// User-data for a virtual machine (a cloud-config or a script).
    UserData(String),
    /// The environment and command of a container.
    Container(ContainerSpec),
}

/// The lifecycle state of an instance as its cloud reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CloudState {
    /// Being created or booting.
    Pending,
    /// Up; its health checks come next.
    Running,
    /// Broken.
    Failed,
    /// Stopped or terminated.
    Shutdown,
    /// The cloud's answer could not be interpreted.
    Unknown,
}

impl CloudState {
    /// The state's name.
    pub fn as_str(self) -> &'static str {
        match self {
            CloudState::Pending => "pending",
            CloudState::Running => "running",
            CloudState::Failed => "failed",
            CloudState::Shutdown => "shutdown",
            CloudState::Unknown => "unknown",
        }
    }
}

/// The observed status of one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatus {
    /// The lifecycle state.
    pub state: CloudState,
    /// Addresses reachable from outside the cloud.
    pub public_addresses: Vec<String>,
    /// Addresses inside the cloud's network.
    pub private_addresses: Vec<String>,
    /// A short detail, such as the cloud's own state name.
    pub detail: Option<String>,
}

impl InstanceStatus {
    /// The addresses as occopus records them.
    pub fn addresses(&self) -> InstanceAddresses {
        InstanceAddresses {
            public: self.public_addresses.clone(),
            private: self.private_addresses.clone(),
        }
    }
}

/// The tags occopus puts on every instance so that `list` finds it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceTags {
    /// The infrastructure's id.
    pub infra_id: String,
    /// The infrastructure's name.
    pub infra_name: String,
    /// The node's name.
    pub node_name: String,
}

/// One instance found by `list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedInstance {
    /// The cloud's id of it, as `create` returned it.
    pub cloud_id: String,
    /// The occopus instance id it was created with.
    pub instance_id: String,
    /// Its tags.
    pub tags: InstanceTags,
    /// Its state now.
    pub state: CloudState,
}

/// Where a driver call is aimed: a resource section and its credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudTarget {
    /// The node definition's `resource` section.
    pub resource: ResourceSection,
    /// The credentials selected for exactly this resource.
    pub credentials: Credentials,
}

impl CloudTarget {
    /// A target with no credentials.
    pub fn new(resource: ResourceSection) -> Self {
        CloudTarget {
            resource,
            credentials: Credentials::default(),
        }
    }

    /// The resource's `endpoint`, if it has one.
    pub fn endpoint(&self) -> Option<&str> {
        self.resource
            .get("endpoint")
            .and_then(serde_json::Value::as_str)
    }
}

/// What `create` needs.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateRequest {
    /// The node instance id: the idempotency key of the create.
    pub instance_id: String,
    /// Where to create it.
    pub target: CloudTarget,
    /// What the contextualiser produced.
    pub payload: Payload,
    /// The tags to put on the instance.
    pub tags: InstanceTags,
}

/// Facts about the node instance being contextualised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFacts {
    /// The infrastructure's id.
    pub infra_id: String,
    /// The infrastructure's name.
    pub infra_name: String,
    /// The node's name.
    pub node_name: String,
    /// The node instance id.
    pub instance_id: String,
    /// The node's `resource.type`.
    pub resource_type: String,
}

/// What a driver says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriverInfo {
    /// Its name, such as `ec2`.
    pub name: String,
    /// Its own version (semver).
    pub version: String,
    /// The `resource.type` values it serves.
    pub resource_types: Vec<String>,
    /// A JSON Schema of the `resource` section, as JSON text.
    pub resource_schema: String,
}

/// The resource-schema keyword by which a driver says that its cloud keeps
/// no inventory (a simulated cloud, or machines that exist anyway): `list`
/// finds nothing and a repeated `create` answers for the same instance without
/// remembering it. `"x-occopus-inventory": false` at the schema's top level;
/// absent means the cloud keeps one, as the contract expects.
pub const NO_INVENTORY_KEYWORD: &str = "x-occopus-inventory";

impl DriverInfo {
    /// Whether the driver's cloud keeps an inventory (see
    /// [`NO_INVENTORY_KEYWORD`]).
    pub fn keeps_inventory(&self) -> bool {
        serde_json::from_str::<serde_json::Value>(&self.resource_schema)
            .ok()
            .and_then(|schema| schema.get(NO_INVENTORY_KEYWORD)?.as_bool())
            .unwrap_or(true)
    }
}

/// What a contextualiser says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextualiserInfo {
    /// Its name, such as `cloudinit`.
    pub name: String,
    /// Its own version (semver).
    pub version: String,
    /// The `contextualisation.type` values it serves.
    pub context_types: Vec<String>,
    /// A JSON Schema of the `contextualisation` section, as JSON text.
    pub context_schema: String,
}

/// The cases of the contract's `plugin-error`: what a plugin says went
/// wrong, which decides what the engine does about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContractErrorKind {
    /// The section or input is wrong; the user changes it.
    InvalidConfig,
    /// The cloud rejected the credentials.
    Unauthorized,
    /// The thing asked about does not exist.
    NotFound,
    /// A temporary failure: worth a retry.
    Transient,
    /// The cloud refused for lack of quota.
    Quota,
    /// A bug or an unexpected answer in the plugin or the cloud.
    Internal,
}

impl ContractErrorKind {
    /// The case's name in the contract (`invalid-config`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ContractErrorKind::InvalidConfig => "invalid-config",
            ContractErrorKind::Unauthorized => "unauthorized",
            ContractErrorKind::NotFound => "not-found",
            ContractErrorKind::Transient => "transient",
            ContractErrorKind::Quota => "quota",
            ContractErrorKind::Internal => "internal",
        }
    }

    /// The case in words, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            ContractErrorKind::InvalidConfig => "invalid configuration",
            ContractErrorKind::Unauthorized => "unauthorized",
            ContractErrorKind::NotFound => "not found",
            ContractErrorKind::Transient => "temporary failure",
            ContractErrorKind::Quota => "quota exceeded",
            ContractErrorKind::Internal => "internal error",
        }
    }
}

/// What kind of failure a plugin call was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallErrorKind {
    /// The plugin answered with one of the contract's errors.
    Plugin(ContractErrorKind),
    /// The call broke a sandbox rule (named) and was stopped.
    Sandbox(&'static str),
    /// The host could not make the call at all.
    Host,
}

impl CallErrorKind {
    /// A short name of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            CallErrorKind::Plugin(kind) => kind.as_str(),
            CallErrorKind::Sandbox(rule) => rule,
            CallErrorKind::Host => "host",
        }
    }
}

/// A failed driver or contextualiser call: its kind, to act on, and the whole
/// message (plugin, operation, what happened, what to do), to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CallError {
    /// What kind of failure.
    pub kind: CallErrorKind,
    /// The full message.
    pub message: String,
}

impl CallError {
    /// An error of `kind` saying `message`.
    pub fn new(kind: CallErrorKind, message: impl Into<String>) -> Self {
        CallError {
            kind,
            message: message.into(),
        }
    }

    /// An error the plugin answered with.
    pub fn plugin(kind: ContractErrorKind, message: impl Into<String>) -> Self {
        CallError::new(CallErrorKind::Plugin(kind), message)
    }

    /// Whether the plugin answered with `kind`.
    pub fn is(&self, kind: ContractErrorKind) -> bool {
        self.kind == CallErrorKind::Plugin(kind)
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        self.is(ContractErrorKind::Transient)
    }

    /// Whether the cloud says the thing does not exist.
    pub fn is_not_found(&self) -> bool {
        self.is(ContractErrorKind::NotFound)
    }
}

impl crate::HasErrorCode for CallError {
    fn code(&self) -> crate::ErrorCode {
        crate::ErrorCode::CloudCallFailed
    }
}

/// A cloud driver.
#[async_trait]
pub trait Driver: Send + Sync {
    /// What it says about itself.
    fn info(&self) -> &DriverInfo;
    /// Checks a resource section beyond its schema (no cloud call).
    async fn validate(&self, resource: &ResourceSection) -> Result<(), CallError>;
    /// Creates the instance, or finds the one made earlier with the same
    /// instance id, and returns its cloud id.
    async fn create(&self, request: &CreateRequest) -> Result<String, CallError>;
    /// An instance's state and addresses.
    async fn status(
        &self,
        target: &CloudTarget,
        cloud_id: &str,
    ) -> Result<InstanceStatus, CallError>;
    /// Whether [`Driver::status_many`] answers for many instances in one
    /// call (contract 0.1.3's `status-batch`); if not, the engine asks
    /// [`Driver::status`] instance by instance.
    fn batches_status(&self) -> bool {
        false
    }
    /// The state of each of `cloud_ids` on `target`, in the same order and
    /// as many, each as `status` would answer it alone; the outer error is a
    /// failure of the whole call. Without a batch call of its own a driver
    /// answers them one after the other.
    async fn status_many(
        &self,
        target: &CloudTarget,
        cloud_ids: &[String],
    ) -> Result<Vec<Result<InstanceStatus, CallError>>, CallError> {
        let mut answers = Vec::with_capacity(cloud_ids.len());
        for cloud_id in cloud_ids {
            answers.push(self.status(target, cloud_id).await);
        }
        Ok(answers)
    }
    /// Destroys an instance; one already gone counts as destroyed.
    async fn destroy(&self, target: &CloudTarget, cloud_id: &str) -> Result<(), CallError>;
    /// The instances tagged with an infra id, in any state but gone.
    async fn list(
        &self,
        target: &CloudTarget,
        infra_id: &str,
    ) -> Result<Vec<ListedInstance>, CallError>;
}

/// A contextualiser.
#[async_trait]
pub trait Contextualiser: Send + Sync {
    /// What it says about itself.
    fn info(&self) -> &ContextualiserInfo;
    /// Builds a node's payload from its rendered `contextualisation` section.
    async fn contextualise(
        &self,
        section: &ResourceSection,
        facts: &NodeFacts,
    ) -> Result<Payload, CallError>;
}

/// The kinds of plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// A cloud driver.
    Driver,
    /// A contextualiser.
    Contextualiser,
    /// A config manager (contract 0.1.2).
    #[serde(rename = "config-manager")]
    ConfigManager,
}

impl PluginKind {
    /// `driver`, `contextualiser` or `config-manager`.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Driver => "driver",
            PluginKind::Contextualiser => "contextualiser",
            PluginKind::ConfigManager => "config-manager",
        }
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// No plugin serves a type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no {kind} serves type `{name}`{hint}")]
pub struct NoPlugin {
    /// The kind looked for.
    pub kind: PluginKind,
    /// The type asked for.
    pub name: String,
    /// What is installed and how to add one.
    pub hint: String,
}

impl crate::HasErrorCode for NoPlugin {
    fn code(&self) -> crate::ErrorCode {
        crate::ErrorCode::PluginUnavailable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_driver_keeps_an_inventory_unless_its_schema_says_not() {
        let info = |schema: &str| DriverInfo {
            name: "d".into(),
            version: "1.0.0".into(),
            resource_types: vec!["d".into()],
            resource_schema: schema.into(),
        };
        assert!(info(r#"{"type": "object"}"#).keeps_inventory());
        assert!(info("not json").keeps_inventory());
        assert!(!info(r#"{"type": "object", "x-occopus-inventory": false}"#).keeps_inventory());
    }
}
