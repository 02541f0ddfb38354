//! What an instance is doing, as the engine tells whoever listens (the live
//! progress of the command line, the REST service's event stream).

/// A progress event of a build or destroy.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Event {
    /// When, ms since the epoch.
    pub time_ms: i64,
    /// The infra.
    pub infra_id: String,
    /// The node.
    pub node: String,
    /// The instance.
    pub instance_id: String,
    /// What the instance is doing now.
    pub phase: Phase,
    /// More words (an error, the addresses, ...).
    pub detail: Option<String>,
}

/// The phases an instance goes through, as shown to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Waiting for the nodes it depends on.
    Waiting,
    /// The create call is under way.
    Creating,
    /// Created; the cloud reports it booting.
    Pending,
    /// Running; health checks not passed yet.
    Checking,
    /// Running and healthy.
    Ready,
    /// Failed; see the detail.
    Failed,
    /// Not started or stopped waiting, because the run was stopped.
    Stopped,
    /// Being destroyed.
    Destroying,
    /// Gone.
    Destroyed,
}

impl Phase {
    /// The phase's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Waiting => "waiting",
            Phase::Creating => "creating",
            Phase::Pending => "pending",
            Phase::Checking => "checking",
            Phase::Ready => "ready",
            Phase::Failed => "failed",
            Phase::Stopped => "stopped",
            Phase::Destroying => "destroying",
            Phase::Destroyed => "destroyed",
        }
    }
}
