//! What the state database says of infrastructures, read without loading
//! any plugin (so reporting stays cheap), and Occopus's report shape.

use crate::error::ApiError;
use occopus_engine::orchestrator::recorded_infra;
use occopus_store::{
    InfraRecord, InstanceRecord, LeaseRecord, NodeSnapshot, NodeTarget, ScaleRequest, StateStore,
};
use std::path::PathBuf;

/// An infrastructure and its instances, as recorded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InfraInfo {
    /// The infra's record.
    pub infra: InfraRecord,
    /// Its instances.
    pub instances: Vec<InstanceRecord>,
    /// Its nodes' scaled targets and healing backoff.
    pub targets: Vec<NodeTarget>,
    /// Scaling requests not applied yet.
    pub scale_requests: Vec<ScaleRequest>,
    /// The lease of the operation changing it now, if one is.
    pub lease: Option<LeaseRecord>,
}

impl InfraInfo {
    /// How many instances `node` should have: its scaled target, else its
    /// `scaling.min`, within its limits.
    pub fn target(&self, node: &NodeSnapshot) -> u32 {
        let scaled = self.targets.iter().find(|t| t.node_name == node.name);
        node.scaling.target(scaled.and_then(|t| t.target))
    }

    /// The instances of one node, in any state.
    pub fn instances_of<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a InstanceRecord> {
        self.instances.iter().filter(move |i| i.node_name == node)
    }

    /// Occopus's report shape (of `occopus info --json` and the REST service): `{NODE: {instances: {ID: {resource_address, state}}, scaling}}`.
    pub fn occopus_report(&self) -> serde_json::Value {
        let mut report = serde_json::Map::new();
        for node in &self.infra.snapshot.nodes {
            let instances: Vec<_> = self.instances_of(&node.name).collect();
            let actual = instances.iter().filter(|i| i.state.is_live()).count();
            let entries: serde_json::Map<String, serde_json::Value> = instances
                .iter()
                .map(|i| {
                    (
                        i.id.clone(),
                        serde_json::json!({
                            "resource_address": i.addresses.primary(),
                            "state": i.state.as_str(),
                            "cloud_id": i.cloud_id,
                            "private_address": i.addresses.private.first(),
                            "error": i.error,
                            "health": i.health,
                        }),
                    )
                })
                .collect();
            report.insert(
                node.name.clone(),
                serde_json::json!({
                    "instances": entries,
                    "scaling": {"actual": actual, "min": node.scaling.min, "max": node.scaling.max, "target": self.target(node)},
                }),
            );
        }
        serde_json::Value::Object(report)
    }
}

/// Opens the state database at `state` (the front end says where): a file,
/// to read only if `read_only`, or a PostgreSQL database named by its URL
/// (`postgres://user:password@host:port/database`), which several occopus
/// processes and hosts may share.
pub fn open_state(state: Option<PathBuf>, read_only: bool) -> Result<StateStore, ApiError> {
    let path = state.ok_or(ApiError::NoStateLocation)?;
    if let Some(url) = path
        .to_str()
        .filter(|p| p.starts_with("postgres://") || p.starts_with("postgresql://"))
    {
        return Ok(if read_only {
            StateStore::open_postgres_read_only(url)?
        } else {
            StateStore::open_postgres(url)?
        });
    }
    Ok(if read_only {
        StateStore::open_read_only(&path)?
    } else {
        StateStore::open(&path)?
    })
}

/// The recorded infra id that `given` names: itself when recorded (or when
/// nothing matches, so that the caller's "unknown infrastructure" names what
/// the user typed), else the one id it is the start of, as git completes a
/// commit's prefix. A prefix of several ids is refused with them listed.
pub fn complete_infra_id(store: &StateStore, given: &str) -> Result<String, ApiError> {
    if given.is_empty() || store.infra(given)?.is_some() {
        return Ok(given.to_string());
    }
    let mut matching: Vec<String> = store
        .infra_ids()?
        .into_iter()
        .filter(|id| id.starts_with(given))
        .collect();
    match matching.len() {
        0 => Ok(given.to_string()),
        1 => Ok(matching.remove(0)),
        _ => Err(ApiError::AmbiguousInfraId {
            given: given.to_string(),
            candidates: matching,
        }),
    }
}

/// The infrastructures recorded in `store` (all, or the one named). Needs no
/// plugin, so reporting stays cheap.
pub fn info(store: &StateStore, infra_id: Option<&str>) -> Result<Vec<InfraInfo>, ApiError> {
    let ids = match infra_id {
        Some(id) => vec![id.to_string()],
        None => store.infra_ids()?,
    };
    let mut infos = Vec::with_capacity(ids.len());
    for id in ids {
        let infra = recorded_infra(store, &id)?;
        infos.push(InfraInfo {
            instances: store.instances(&id)?,
            targets: store.node_targets(&id)?,
            scale_requests: store.scale_requests(&id)?,
            lease: store.lease(&id)?,
            infra,
        });
    }
    Ok(infos)
}
