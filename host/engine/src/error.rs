//! The engine's errors: [`EngineError`] when an operation cannot run at all,
//! [`ScaleError`] when a scaling request is refused, and
//! [`InstanceFailure`] for why one instance failed (the operation goes on and
//! reports it).

use crate::endpoints::EndpointError;
use occopus_health::ProbeFailure;
use occopus_model::Diagnostics;
use occopus_model::TemplateError;
use occopus_model::auth::AuthSelectionError;
use occopus_store::StoreError;
use occopus_types::{CallError, CloudState, ErrorCode, HasErrorCode, NoPlugin};
use std::time::Duration;

/// Why an operation could not run (a node's own failure is in its report).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the files have problems:\n{0}")]
    Invalid(Diagnostics),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no infrastructure `{0}` in the state database; see `occopus info` for the known ones")]
    UnknownInfra(String),
    #[error(
        "infrastructure `{0}` was built by an older occopus that did not store its description; run `occopus build` on it once more"
    )]
    NoDescription(String),
    #[error(transparent)]
    ScaleRefused(#[from] ScaleError),
    #[error(
        "infrastructure `{infra_id}` is being changed by {holder}{}; wait for it to end \
         (the command line waits with --wait[=SECONDS]) or stop it; if it hangs, \
         `occopus unlock -i {infra_id}` frees its lease",
        if waited.is_zero() { String::new() } else { format!(" (waited {:.0?})", waited) }
    )]
    Held {
        infra_id: String,
        /// Who holds the lease, in words.
        holder: String,
        /// How long this operation waited for it.
        waited: Duration,
    },
    #[error(
        "infrastructure `{infra_id}` is held by {holder}, which is still running: stop it \
         (Ctrl-C lets its calls under way finish and be recorded); \
         `occopus unlock --force` frees the lease anyway, at the risk of a cloud resource \
         it is creating right now being left unrecorded"
    )]
    HolderAlive { infra_id: String, holder: String },
    #[error(
        "the lease on infrastructure `{infra_id}` was taken over{} while this operation ran: \
         it stopped and wrote nothing more; see `occopus info -i {infra_id}`",
        now_held_by.as_deref().map(|h| format!(" by {h}")).unwrap_or_else(|| " or broken".into())
    )]
    LeaseLost {
        infra_id: String,
        now_held_by: Option<String>,
    },
}

impl HasErrorCode for EngineError {
    fn code(&self) -> ErrorCode {
        match self {
            EngineError::Invalid(_) | EngineError::NoDescription(_) => {
                ErrorCode::InvalidDescription
            }
            EngineError::Store(e) => e.code(),
            EngineError::UnknownInfra(_) => ErrorCode::UnknownInfra,
            EngineError::ScaleRefused(ScaleError::UnknownNode { .. }) => ErrorCode::UnknownNode,
            EngineError::ScaleRefused(_) => ErrorCode::ScaleRefused,
            EngineError::Held { .. }
            | EngineError::LeaseLost { .. }
            | EngineError::HolderAlive { .. } => ErrorCode::Conflict,
        }
    }
}

/// Why a scaling request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScaleError {
    #[error("infrastructure {infra_id} has no node `{node}`; its nodes: {}", known.join(", "))]
    UnknownNode {
        infra_id: String,
        node: String,
        known: Vec<String>,
    },
    #[error("node `{node}` is not in the description")]
    NodeRemoved { node: String },
    #[error("removing the chosen instance `{chosen}` is a change of -1; leave out the count")]
    ChosenIsOne { chosen: String },
    #[error("node `{node}` already has a target of {target}: nothing to change")]
    NothingToChange { node: String, target: u32 },
    #[error(
        "node `{node}` may have between {min} and {max} instances (its scaling in the description); {}",
        outside_limits(*.current, *.queued, .asked, *.wanted)
    )]
    OutsideLimits {
        node: String,
        min: u32,
        max: u32,
        /// The target the request starts from, queued requests included.
        current: u32,
        /// The change of the requests queued before this one, in `current`.
        queued: i64,
        asked: ScaleAsk,
        wanted: i64,
    },
    #[error(
        "node `{node}` has no live instance with the id or address `{chosen}`; see `occopus info -i {infra_id}`"
    )]
    NoSuchInstance {
        infra_id: String,
        node: String,
        chosen: String,
    },
    #[error("instance `{chosen}` is already going")]
    AlreadyGoing { chosen: String },
}

/// What a scaling request asked for, in the user's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScaleAsk {
    /// `+N` or `-N` instances.
    Change(i64),
    /// Exactly N instances.
    Set(u32),
    /// This instance to go.
    Remove(String),
}

/// The second half of [`ScaleError::OutsideLimits`]: what the request would
/// do, said as it was asked.
fn outside_limits(current: u32, queued: i64, asked: &ScaleAsk, wanted: i64) -> String {
    let would = match asked {
        ScaleAsk::Set(count) => return format!("{count} is not between them"),
        ScaleAsk::Remove(chosen) => format!("removing `{chosen}` would leave {wanted}"),
        ScaleAsk::Change(change) => format!("{change:+} would make {wanted}"),
    };
    let counting = match queued {
        0 => String::new(),
        n => format!(" (counting queued requests of {n:+} that maintain has not applied yet)"),
    };
    format!("its target is {current}{counting}, so {would}")
}

/// Why one instance failed.
#[derive(Debug, thiserror::Error)]
pub enum InstanceFailure {
    #[error("node `{0}` is not in the description")]
    NotDescribed(String),
    #[error(transparent)]
    Render(#[from] TemplateError),
    #[error(transparent)]
    NoPlugin(#[from] NoPlugin),
    #[error(transparent)]
    Credentials(#[from] AuthSelectionError),
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error("contextualisation failed: {0}")]
    Contextualise(CallError),
    #[error("create failed: {0}")]
    Create(CallError),
    #[error("status failed: {0}")]
    Status(CallError),
    #[error("the cloud no longer knows {cloud_id}")]
    Gone { cloud_id: String },
    #[error("the cloud reports it {}{}", reported(*state), detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    CloudReports {
        state: CloudState,
        detail: Option<String>,
    },
    #[error("still not running after {secs}s (engine.boot_timeout_secs)")]
    BootTimeout { secs: u64 },
    #[error("config management ({operation}) failed: {source}")]
    ConfigManagement {
        operation: &'static str,
        source: CallError,
    },
    #[error("its config manager reports that configuring it failed")]
    ConfigFailed,
    #[error(
        "its config manager still does not report it configured after {secs}s (engine.boot_timeout_secs)"
    )]
    ConfigTimeout { secs: u64 },
    #[error("health checks failing for {failing_secs}s (health_check.timeout{}): {last}", timeout_secs.map(|t| format!(" {t}s")).unwrap_or_default())]
    Unhealthy {
        failing_secs: u64,
        /// The timeout, when it is worth repeating (a maintenance pass).
        timeout_secs: Option<u64>,
        last: ProbeFailure,
    },
    #[error("{what}: {source}")]
    Record {
        what: &'static str,
        source: StoreError,
    },
}

/// How a state the cloud reports reads in a sentence.
fn reported(state: CloudState) -> &'static str {
    match state {
        CloudState::Shutdown => "shut down",
        other => other.as_str(),
    }
}

impl InstanceFailure {
    /// A store write that failed while `what`.
    pub(crate) fn record(what: &'static str) -> impl FnOnce(StoreError) -> InstanceFailure {
        move |source| InstanceFailure::Record { what, source }
    }
}

/// Why one instance could not be destroyed (its record stays).
#[derive(Debug, thiserror::Error)]
pub enum DestroyFailure {
    #[error("stopped before destroying")]
    Stopped,
    #[error(transparent)]
    NoPlugin(#[from] NoPlugin),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("destroy of {cloud_id} failed: {source}")]
    Call { cloud_id: String, source: CallError },
    #[error("its config manager could not forget it ({operation}): {source}")]
    Config {
        operation: &'static str,
        source: CallError,
    },
    #[error("cannot record it in the state database: {0}")]
    Record(StoreError),
}

/// Why resolving a resource into a cloud target failed.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(transparent)]
    Credentials(#[from] AuthSelectionError),
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
}

impl From<TargetError> for InstanceFailure {
    fn from(error: TargetError) -> Self {
        match error {
            TargetError::Credentials(e) => InstanceFailure::Credentials(e),
            TargetError::Endpoint(e) => InstanceFailure::Endpoint(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_read_as_before() {
        let failed = InstanceFailure::CloudReports {
            state: CloudState::Failed,
            detail: Some("exit 3".into()),
        };
        assert_eq!(failed.to_string(), "the cloud reports it failed: exit 3");
        let gone = InstanceFailure::CloudReports {
            state: CloudState::Shutdown,
            detail: None,
        };
        assert_eq!(gone.to_string(), "the cloud reports it shut down");
        let refused = |queued, asked| ScaleError::OutsideLimits {
            node: "web".into(),
            min: 1,
            max: 3,
            current: 3,
            queued,
            asked,
            wanted: 4,
        };
        let said = refused(0, ScaleAsk::Change(1)).to_string();
        assert!(
            said.ends_with("its target is 3, so +1 would make 4"),
            "{said}"
        );
        let said = refused(0, ScaleAsk::Set(4)).to_string();
        assert!(said.ends_with("; 4 is not between them"), "{said}");
        let said = refused(2, ScaleAsk::Change(1)).to_string();
        assert!(
            said.contains("its target is 3 (counting queued requests of +2"),
            "{said}"
        );
    }
}
