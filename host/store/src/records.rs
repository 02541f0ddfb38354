//! What the store keeps, as plain types.

use occopus_types::{InstanceAddresses, ResourceSection, Scaling};
use serde::{Deserialize, Serialize};

/// What state an instance is in, as recorded.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, Hash,
)]
#[serde(rename_all = "lowercase")]
pub enum InstanceState {
    /// Intent written; the create call may or may not have happened.
    #[default]
    Creating,
    /// The cloud made it; it is booting.
    Pending,
    /// The cloud reports it running; health checks not passed yet.
    Running,
    /// Running and healthy: dependents may start.
    Ready,
    /// It failed (cloud, boot or health checks); see the error.
    Failed,
    /// Being destroyed.
    Destroying,
}

impl InstanceState {
    /// Whether it still holds a cloud resource worth keeping (not failed,
    /// not being destroyed).
    pub fn is_live(self) -> bool {
        !matches!(self, InstanceState::Failed | InstanceState::Destroying)
    }

    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Creating => "creating",
            InstanceState::Pending => "pending",
            InstanceState::Running => "running",
            InstanceState::Ready => "ready",
            InstanceState::Failed => "failed",
            InstanceState::Destroying => "destroying",
        }
    }

    pub(crate) fn parse(text: &str) -> Self {
        match text {
            "creating" => InstanceState::Creating,
            "pending" => InstanceState::Pending,
            "running" => InstanceState::Running,
            "ready" => InstanceState::Ready,
            "destroying" => InstanceState::Destroying,
            _ => InstanceState::Failed,
        }
    }
}

impl std::fmt::Display for InstanceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an instance's health checks said last.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// `unchecked`, `healthy` or `failing`.
    pub status: HealthStatus,
    /// Why it is failing, when it is.
    pub detail: Option<String>,
    /// When the checks last ran, ms since the epoch.
    pub checked_ms: Option<i64>,
    /// Since when the checks have failed without a pass in between.
    pub failing_since_ms: Option<i64>,
}

/// The outcome of an instance's last health checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Not checked yet.
    #[default]
    Unchecked,
    /// Every check passed.
    Healthy,
    /// A check failed.
    Failing,
}

impl HealthStatus {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Unchecked => "unchecked",
            HealthStatus::Healthy => "healthy",
            HealthStatus::Failing => "failing",
        }
    }

    pub(crate) fn parse(text: &str) -> Self {
        match text {
            "healthy" => HealthStatus::Healthy,
            "failing" => HealthStatus::Failing,
            _ => HealthStatus::Unchecked,
        }
    }
}

/// A node's wanted instance count and its healing backoff.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeTarget {
    /// The node.
    pub node_name: String,
    /// How many instances it should have (kept within its scaling limits),
    /// once it was scaled; until then it follows `scaling.min`.
    pub target: Option<u32>,
    /// Failed creations or replacements in a row.
    pub failures: u32,
    /// No new attempt before this time, ms since the epoch.
    pub retry_after_ms: i64,
}

/// A queued request to scale a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScaleRequest {
    /// Its number (requests apply in this order).
    pub seq: i64,
    /// The node.
    pub node_name: String,
    /// +N or -N instances.
    pub change: i64,
    /// With -1: the instance to remove (by id or address).
    pub instance: Option<String>,
    /// When it was made.
    pub created_ms: i64,
}

/// How many instances of one node of one infra are in one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceCount {
    /// The infra.
    pub infra_id: String,
    /// The node.
    pub node: String,
    /// The state, as recorded (`creating`, `ready`, ...).
    pub state: String,
    /// How many.
    pub count: i64,
}

/// One node instance's record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// The instance id: unique, and the driver's idempotency key.
    pub id: String,
    /// The infra it belongs to.
    pub infra_id: String,
    /// The node it is an instance of.
    pub node_name: String,
    /// Its number among the node's instances (creation order).
    pub seq: u32,
    /// The rendered resource section it was created with (no credentials).
    pub resource: ResourceSection,
    /// The cloud's id for it, once the create call returned.
    pub cloud_id: Option<String>,
    /// Its state.
    pub state: InstanceState,
    /// Its addresses, once known.
    pub addresses: InstanceAddresses,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// When the intent was written, ms since the epoch.
    pub created_ms: i64,
    /// When the record last changed.
    pub updated_ms: i64,
    /// What its node's description and definition were when it was made
    /// (a digest); an instance whose node changed since is replaced.
    pub fingerprint: Option<String>,
    /// Its last health checks.
    pub health: Health,
    /// A digest of its sections as rendered when it was made: when the same
    /// render now gives another digest (the addresses its templates read
    /// changed), its contextualisation is out of date.
    pub rendered: Option<String>,
}

impl InstanceRecord {
    /// Whether it is live and `chosen` is its id or one of its addresses
    /// (how a scale-down names the instance to remove).
    pub fn is_live_and_named(&self, chosen: &str) -> bool {
        self.state.is_live() && (self.id == chosen || self.addresses.contains(chosen))
    }

    /// `resource.type`.
    pub fn resource_type(&self) -> &str {
        self.resource
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or("")
    }
}

/// One infrastructure's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InfraRecord {
    /// The infra id.
    pub id: String,
    /// `infra_name`.
    pub name: String,
    /// building, ready, failed, interrupted, destroying.
    pub status: String,
    /// What was last built: nodes, their scaling and dependencies.
    pub snapshot: InfraSnapshot,
    /// When it was first built.
    pub created_ms: i64,
    /// When it last changed.
    pub updated_ms: i64,
}

/// The parts of a description the store needs after the files are gone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InfraSnapshot {
    /// `user_id`.
    pub user_id: Option<String>,
    /// The nodes.
    pub nodes: Vec<NodeSnapshot>,
    /// The description and definitions it was built from (see
    /// `Model::to_stored`), so it can be maintained without its files.
    #[serde(default)]
    pub description: Option<serde_json::Value>,
}

/// A node as built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSnapshot {
    /// What shaped its instances (see `Model::node_basis`), for plans to
    /// say what changed.
    #[serde(default)]
    pub basis: Option<serde_json::Value>,
    /// Its name.
    pub name: String,
    /// Its node type.
    pub node_type: String,
    /// Its scaling limits.
    pub scaling: Scaling,
    /// The nodes it depends on.
    pub dependencies: Vec<String>,
}

/// A logged event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// When, ms since the epoch.
    pub time_ms: i64,
    /// The instance concerned, if one.
    pub instance_id: Option<String>,
    /// What happened.
    pub message: String,
}
