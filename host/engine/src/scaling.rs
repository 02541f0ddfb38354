//! Scaling requests: queued by `occopus scale` or the REST service after a
//! check against the node's limits (counting the requests already queued),
//! applied by the next maintenance pass after the same check.

use crate::error::{EngineError, ScaleAsk, ScaleError};
use crate::orchestrator::Orchestrator;
use occopus_model::Model;
use occopus_store::{InstanceRecord, NodeTarget};
use occopus_types::Scaling;

/// Instances asked to go, with why.
pub(crate) type Removals = Vec<(String, String)>;

/// What a scaling request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleBy {
    /// `+N` or `-N` instances.
    Change(i64),
    /// Exactly N instances.
    To(u32),
}

/// A queued scaling request, as accepted.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScaleQueued {
    /// Its number.
    pub seq: i64,
    /// The node.
    pub node: String,
    /// The change it makes.
    pub change: i64,
    /// The node's target once it and the requests before it are applied.
    pub target: u32,
}

impl Orchestrator {
    /// Queues a scaling request for the next maintenance pass, after checking
    /// that, with the requests already queued, it keeps the node within its
    /// limits. `instance` (an instance id or address) names the instance to
    /// remove; it goes with a change of -1.
    pub fn request_scale(
        &self,
        infra_id: &str,
        node_name: &str,
        by: ScaleBy,
        instance: Option<&str>,
    ) -> Result<ScaleQueued, EngineError> {
        let store = &self.inner.store;
        let infra = self.recorded_infra(infra_id)?;
        let node = infra
            .snapshot
            .nodes
            .iter()
            .find(|n| n.name == node_name)
            .ok_or_else(|| ScaleError::UnknownNode {
                infra_id: infra_id.to_string(),
                node: node_name.to_string(),
                known: infra
                    .snapshot
                    .nodes
                    .iter()
                    .map(|n| n.name.clone())
                    .collect(),
            })?;
        let scaled = store
            .node_targets(infra_id)?
            .into_iter()
            .find(|t| t.node_name == node_name)
            .and_then(|t| t.target);
        let stored = node.scaling.target(scaled);
        let queued: i64 = store
            .scale_requests(infra_id)?
            .iter()
            .filter(|r| r.node_name == node_name)
            .map(|r| r.change)
            .sum();
        let current = (i64::from(stored) + queued).max(0) as u32;
        let (change, asked) = match (by, instance) {
            (ScaleBy::Change(-1), Some(chosen)) => (-1, ScaleAsk::Remove(chosen.to_string())),
            (_, Some(chosen)) => {
                return Err(ScaleError::ChosenIsOne {
                    chosen: chosen.to_string(),
                }
                .into());
            }
            (ScaleBy::Change(change), None) => (change, ScaleAsk::Change(change)),
            (ScaleBy::To(count), None) => {
                (i64::from(count) - i64::from(current), ScaleAsk::Set(count))
            }
        };
        if change == 0 {
            return Err(ScaleError::NothingToChange {
                node: node_name.to_string(),
                target: current,
            }
            .into());
        }
        // An instance that is not there is the first thing to say.
        if let Some(chosen) = instance {
            let known = store
                .instances(infra_id)?
                .into_iter()
                .any(|r| r.node_name == node_name && r.is_live_and_named(chosen));
            if !known {
                return Err(ScaleError::NoSuchInstance {
                    infra_id: infra_id.to_string(),
                    node: node_name.to_string(),
                    chosen: chosen.to_string(),
                }
                .into());
            }
        }
        let target = check_limits(node_name, node.scaling, current, queued, asked)?;
        let seq = store.queue_scale_request(infra_id, node_name, change, instance)?;
        Ok(ScaleQueued {
            seq,
            node: node_name.to_string(),
            change,
            target,
        })
    }

    /// Applies the queued scaling requests to the nodes' targets; returns the
    /// instances chosen to go and what was done, in words.
    pub(crate) fn apply_scale_requests(
        &self,
        model: &Model,
        infra_id: &str,
        records: &[InstanceRecord],
    ) -> Result<(Removals, Vec<String>), EngineError> {
        let store = &self.inner.store;
        let mut targets = store.node_targets(infra_id)?;
        let mut removals = Removals::new();
        let mut said = Vec::new();
        for request in store.scale_requests(infra_id)? {
            let outcome = (|| {
                let node = model.infra.node(&request.node_name).ok_or_else(|| {
                    ScaleError::NodeRemoved {
                        node: request.node_name.clone(),
                    }
                })?;
                let index = match targets.iter().position(|t| t.node_name == node.name) {
                    Some(index) => index,
                    None => {
                        targets.push(NodeTarget {
                            node_name: node.name.clone(),
                            ..NodeTarget::default()
                        });
                        targets.len() - 1
                    }
                };
                let current = node.scaling.target(targets[index].target);
                let asked = match &request.instance {
                    Some(chosen) => ScaleAsk::Remove(chosen.clone()),
                    None => ScaleAsk::Change(request.change),
                };
                let wanted = check_limits(&node.name, node.scaling, current, 0, asked)?;
                if let Some(chosen) = &request.instance {
                    let record = records
                        .iter()
                        .find(|r| r.node_name == node.name && r.is_live_and_named(chosen))
                        .ok_or_else(|| ScaleError::NoSuchInstance {
                            infra_id: infra_id.to_string(),
                            node: node.name.clone(),
                            chosen: chosen.clone(),
                        })?;
                    if removals.iter().any(|(id, _)| *id == record.id) {
                        return Err(ScaleError::AlreadyGoing {
                            chosen: chosen.clone(),
                        });
                    }
                    removals.push((record.id.clone(), "scaled down: chosen to go".into()));
                }
                targets[index].target = Some(wanted);
                Ok::<_, ScaleError>((index, current, wanted))
            })();
            let message = match outcome {
                Ok((index, current, wanted)) => {
                    store.set_node_target(infra_id, &targets[index])?;
                    format!(
                        "scaling request {} applied: node `{}`: target {current} -> {wanted}",
                        request.seq, request.node_name
                    )
                }
                Err(why) => format!("scaling request {} refused: {why}", request.seq),
            };
            store.log_event(infra_id, None, &message)?;
            store.delete_scale_request(infra_id, request.seq)?;
            said.push(message);
        }
        Ok((removals, said))
    }
}

/// The target `asked` leads to from `current` (which counts `queued`
/// changes not applied yet), or why it is refused.
fn check_limits(
    node: &str,
    scaling: Scaling,
    current: u32,
    queued: i64,
    asked: ScaleAsk,
) -> Result<u32, ScaleError> {
    let wanted = match &asked {
        ScaleAsk::Change(change) => i64::from(current) + change,
        ScaleAsk::Set(count) => i64::from(*count),
        ScaleAsk::Remove(_) => i64::from(current) - 1,
    };
    let (min, max) = (scaling.min, scaling.max);
    if wanted < i64::from(min) || wanted > i64::from(max) {
        return Err(ScaleError::OutsideLimits {
            node: node.to_string(),
            min,
            max,
            current,
            queued,
            asked,
            wanted,
        });
    }
    Ok(wanted as u32)
}
