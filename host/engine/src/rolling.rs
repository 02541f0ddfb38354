//! Rolling replacement: the live instances of a changed node are replaced
//! after the rest of a plan is carried out, a batch at a time
//! (`engine.replace_batch`, default 1), nodes in dependency order. Where the
//! node's `max` leaves room, a batch's new instances are ready before the
//! old ones go (the node never has fewer ready instances than before);
//! otherwise the old ones go first. A new instance that fails stops the
//! node's roll: the instances not yet replaced keep serving, and the next
//! pass or build tries again.

use crate::error::EngineError;
use crate::events::Phase;
use crate::orchestrator::Orchestrator;
use crate::report::InstanceOutcome;
use crate::run::{Book, NodeTracker, Planned, Run};
use crate::stop::StopSignal;
use occopus_model::{Model, NodeSpec};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::watch;

/// What a roll did.
#[derive(Default)]
pub(crate) struct Rolled {
    /// The new instances' outcomes.
    pub created: Vec<InstanceOutcome>,
    /// The old instances destroyed.
    pub replaced: HashSet<String>,
}

impl Orchestrator {
    /// Replaces `rolling` (instance ids by node) of `infra_id` a batch at a
    /// time, as the module's header says.
    pub(crate) async fn roll(
        &self,
        model: &Arc<Model>,
        infra_id: &str,
        rolling: &BTreeMap<&str, Vec<&str>>,
        stop: &StopSignal,
    ) -> Result<Rolled, EngineError> {
        let store = &self.inner.store;
        let batch_size = self.inner.config.replace_batch.max(1);
        let mut rolled = Rolled::default();
        for node in model.infra.topological_order() {
            let Some(old) = rolling.get(node.name.as_str()) else {
                continue;
            };
            for batch in old.chunks(batch_size) {
                if stop.is_stopped() {
                    return Ok(rolled);
                }
                let live = store
                    .instances(infra_id)?
                    .iter()
                    .filter(|r| r.node_name == node.name && r.state.is_live())
                    .count();
                let new_first = live + batch.len() <= node.scaling.max as usize;
                let models: [&Model; 1] = [model];
                let destroy_batch = || {
                    self.destroy_instances(
                        infra_id,
                        &model.auth,
                        &models,
                        |r| batch.contains(&r.id.as_str()),
                        stop.clone(),
                    )
                };
                if !new_first {
                    destroy_batch().await?;
                }
                let created = self
                    .create_instances(model, infra_id, node, batch.len(), stop)
                    .await?;
                let all_ready = created.iter().all(|o| o.phase == Phase::Ready);
                rolled.created.extend(created);
                if !new_first {
                    rolled
                        .replaced
                        .extend(batch.iter().map(|id| id.to_string()));
                }
                if !all_ready {
                    break;
                }
                if new_first {
                    destroy_batch().await?;
                    rolled
                        .replaced
                        .extend(batch.iter().map(|id| id.to_string()));
                }
            }
        }
        Ok(rolled)
    }

    /// Creates `count` new instances of `node` beside the infra's live ones
    /// (whose addresses its templates see), and follows them until ready.
    async fn create_instances(
        &self,
        model: &Arc<Model>,
        infra_id: &str,
        node: &NodeSpec,
        count: usize,
        stop: &StopSignal,
    ) -> Result<Vec<InstanceOutcome>, EngineError> {
        let store = &self.inner.store;
        let book = Book::of_ready(model, &store.instances(infra_id)?);
        let tracker = NodeTracker::new(model, node, infra_id, count);
        let run = Run {
            infra_id: infra_id.to_string(),
            model: model.clone(),
            book: Arc::new(book),
            nodes: HashMap::from([(node.name.clone(), tracker)]),
            halt: watch::channel(false).0,
            stop: stop.clone(),
            config_prepared: Default::default(),
        };
        let first = store.next_seq(infra_id, &node.name)?;
        let tasks = (first..)
            .take(count)
            .map(|seq| (node.name.clone(), Planned::new_instance(&node.name, seq)))
            .collect();
        Ok(self.follow(Arc::new(run), tasks).await)
    }
}
