//! What one build or converge shares between its instance tasks: the
//! addresses of the instances that are up (for `getip()`), each node's
//! progress, and whether the run was halted or stopped.

use crate::stop::StopSignal;
use occopus_model::render;
use occopus_model::template::NodeContext;
use occopus_model::{AddressBook, Model, NodeSpec};
use occopus_store::{InstanceRecord, InstanceState};
use occopus_types::InstanceAddresses;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use tokio::sync::watch;

/// Addresses of the instances that are up, for `getip()` and friends.
pub(crate) struct Book {
    nodes: RwLock<HashMap<String, BTreeMap<u32, InstanceAddresses>>>,
}

impl AddressBook for Book {
    fn addresses(&self, node: &str) -> Option<Vec<InstanceAddresses>> {
        let nodes = self
            .nodes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        nodes
            .get(node)
            .map(|instances| instances.values().cloned().collect())
    }

    fn nodes(&self) -> Vec<String> {
        let nodes = self
            .nodes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut names: Vec<String> = nodes.keys().cloned().collect();
        names.sort();
        names
    }
}

impl Book {
    /// A book of `nodes`, none of them with an instance yet.
    pub(crate) fn new<'a>(nodes: impl IntoIterator<Item = &'a str>) -> Book {
        Book {
            nodes: RwLock::new(
                nodes
                    .into_iter()
                    .map(|n| (n.to_string(), BTreeMap::new()))
                    .collect(),
            ),
        }
    }

    /// A book of `model`'s nodes with the addresses of the ready instances
    /// among `records`.
    pub(crate) fn of_ready<'a>(
        model: &Model,
        records: impl IntoIterator<Item = &'a InstanceRecord>,
    ) -> Book {
        let book = Book::new(model.infra.nodes.iter().map(|n| n.name.as_str()));
        for record in records {
            if record.state == InstanceState::Ready {
                book.add(&record.node_name, record.seq, record.addresses.clone());
            }
        }
        book
    }

    /// Records the addresses of instance `seq` of `node`.
    pub(crate) fn add(&self, node: &str, seq: u32, addresses: InstanceAddresses) {
        let mut nodes = self
            .nodes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        nodes
            .entry(node.to_string())
            .or_default()
            .insert(seq, addresses);
    }
}

/// A node's progress: how many of its instances are ready, of how many.
pub(crate) struct NodeTracker {
    pub(crate) target: usize,
    pub(crate) ready: watch::Sender<usize>,
    /// The node's fingerprint, recorded on each new instance (computed once
    /// per node, not per instance).
    pub(crate) fingerprint: String,
    /// What the node's instances render with, made once per node (each
    /// instance's is this one with its own id); none when the model does
    /// not describe the node (its instances fail saying so).
    pub(crate) context: Option<NodeContext>,
}

impl NodeTracker {
    /// The tracker of `node` of `model`, `target` instances to follow.
    pub(crate) fn new(model: &Model, node: &NodeSpec, infra_id: &str, target: usize) -> Self {
        NodeTracker {
            target,
            ready: watch::channel(0).0,
            fingerprint: model.fingerprint(node),
            context: model.implementation(&node.name).map(|implementation| {
                render::node_context(model, node, implementation, infra_id, "")
            }),
        }
    }

    /// Counts one more instance ready. Its dependents' tasks are woken only
    /// when the count reaches the target: woken at every instance, the
    /// tasks of a level of N waiting on a level of N were N² wake-ups
    /// (250,000 for 500 instances), in the very burst where the level's
    /// last instances become ready.
    pub(crate) fn ready_one(&self) {
        self.ready.send_if_modified(|n| {
            *n += 1;
            *n >= self.target
        });
    }
}

/// What one build shares between its instance tasks.
pub(crate) struct Run {
    pub(crate) infra_id: String,
    pub(crate) model: Arc<Model>,
    pub(crate) book: Arc<Book>,
    pub(crate) nodes: HashMap<String, NodeTracker>,
    /// Set on the first failure or a stop: no new creation starts.
    pub(crate) halt: watch::Sender<bool>,
    pub(crate) stop: StopSignal,
    /// The config-manager targets whose infrastructure this run prepared.
    pub(crate) config_prepared: tokio::sync::Mutex<std::collections::HashSet<String>>,
}

impl Run {
    pub(crate) fn halted(&self) -> bool {
        *self.halt.borrow() || self.stop.is_stopped()
    }

    /// Waits until every instance of `node` is ready; false if halted first.
    pub(crate) async fn wait_ready(&self, node: &str) -> bool {
        let Some(tracker) = self.nodes.get(node) else {
            return true;
        };
        let mut ready = tracker.ready.subscribe();
        let mut halt = self.halt.subscribe();
        let mut stop = self.stop.clone();
        tokio::select! {
            result = ready.wait_for(|n| *n >= tracker.target) => result.is_ok(),
            _ = halt.wait_for(|h| *h) => false,
            () = stop.stopped() => false,
        }
    }
}

/// An instance a build follows.
pub(crate) enum Planned {
    /// One the store knows (from an earlier run).
    Recorded(Box<InstanceRecord>),
    /// A new one: its number among the node's instances and its id.
    New(u32, String),
}

impl Planned {
    /// Instance `seq` of `node`, new: its id is `NODE-SEQ-` and a random
    /// suffix (never reused, so a cloud's idempotency key is never stale).
    pub(crate) fn new_instance(node: &str, seq: u32) -> Planned {
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
        Planned::New(seq, format!("{node}-{seq}-{suffix}"))
    }

    /// The instance's id.
    pub(crate) fn id(&self) -> &str {
        match self {
            Planned::Recorded(record) => &record.id,
            Planned::New(_, id) => id,
        }
    }
}
