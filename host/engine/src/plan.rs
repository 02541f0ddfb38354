//! What bringing the recorded instances of an infra in line with a
//! description changes: instances to create, to destroy, to replace, each
//! with its reason. `occopus plan` prints it; `build` on an existing infra and
//! every maintenance pass carry it out (destroys first, dependents before
//! their dependencies; then creates, dependencies before their dependents).
//!
//! Per node, the wanted count is its *target*: `scaling.min` until the node
//! is scaled, then the scaled count, always within the current
//! `[min, max]`. The oldest instances are kept; above the target the youngest
//! go. A kept instance made from an older version of its node (its
//! fingerprint differs) is replaced after the rest, a batch at a time (a
//! rolling replacement); a failed one is replaced at once.

use crate::run::Book;
use occopus_model::render::{
    ResolvedNames, node_context, render_config_management, render_sections, with_config_names,
};
use occopus_model::stored::{basis_changes, fingerprint_of};
use occopus_model::{AddressBook, Model, NodeSpec, Reconfigure, Renderer};
use occopus_store::{InfraSnapshot, InstanceRecord, InstanceState, NodeTarget};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// One change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    /// What happens.
    pub action: Action,
    /// The node.
    pub node: String,
    /// The instance concerned (none for a create).
    pub instance_id: Option<String>,
    /// Why.
    pub reason: String,
    /// A replacement of a live instance of a changed node: done after the
    /// rest of the plan, a few at a time (`engine.replace_batch`), the new
    /// instance ready before the old one goes where the node's `max` allows.
    pub rolling: bool,
}

/// What happens to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A new instance.
    Create,
    /// An instance goes.
    Destroy,
    /// An instance goes and a new one takes its place.
    Replace,
}

impl Action {
    /// Terraform's sign for it.
    pub fn sign(self) -> char {
        match self {
            Action::Create => '+',
            Action::Destroy => '-',
            Action::Replace => '~',
        }
    }
}

/// The changes, and the target each node ends at.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Plan {
    /// Destroys and replaces by node, then creates by node.
    pub changes: Vec<Change>,
    /// Each node's target.
    pub targets: BTreeMap<String, u32>,
    /// Instances kept although their templates would now render otherwise
    /// (the addresses they read changed), their node keeping such instances
    /// (`reconfigure: keep`, the default).
    pub outdated: Vec<Outdated>,
}

/// An instance whose templates would now render otherwise.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Outdated {
    /// The node.
    pub node: String,
    /// The instance.
    pub instance_id: String,
    /// What changed, and what to do.
    pub reason: String,
}

impl Plan {
    /// The instances that go before anything is created (destroyed, or
    /// replaced because they failed).
    pub fn victims(&self) -> impl Iterator<Item = &str> {
        self.changes
            .iter()
            .filter(|c| c.action != Action::Create && !c.rolling)
            .filter_map(|c| c.instance_id.as_deref())
    }

    /// The live instances replaced one batch at a time, by node.
    pub fn rolling(&self) -> BTreeMap<&str, Vec<&str>> {
        let mut by_node: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for change in self.changes.iter().filter(|c| c.rolling) {
            if let Some(id) = &change.instance_id {
                by_node.entry(&change.node).or_default().push(id);
            }
        }
        by_node
    }

    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The plan in Terraform's style, one line per change and a summary.
    pub fn render(&self) -> String {
        let mut text = String::new();
        for change in &self.changes {
            let what = match &change.instance_id {
                Some(id) => format!("{} {id}", change.node),
                None => format!("{} (new instance)", change.node),
            };
            let rolling = if change.rolling { " (rolling)" } else { "" };
            text.push_str(&format!(
                "{} {what}: {}{rolling}\n",
                change.action.sign(),
                change.reason
            ));
        }
        for outdated in &self.outdated {
            text.push_str(&format!(
                "! {} {}: {}\n",
                outdated.node, outdated.instance_id, outdated.reason
            ));
        }
        let count = |action| self.changes.iter().filter(|c| c.action == action).count();
        text.push_str(&format!(
            "Plan: {} to create, {} to destroy, {} to replace.\n",
            count(Action::Create),
            count(Action::Destroy),
            count(Action::Replace)
        ));
        text
    }
}

/// What a plan starts from.
pub struct PlanInput<'a> {
    /// The description to reach.
    pub model: &'a Model,
    /// Every recorded instance of the infra.
    pub records: &'a [InstanceRecord],
    /// What the infra was last built from, if it was.
    pub previous: Option<&'a InfraSnapshot>,
    /// The nodes' stored targets.
    pub targets: &'a [NodeTarget],
    /// Instances asked to go (a scale-down naming them), with why.
    pub removals: &'a [(String, String)],
    /// The infra's id (its templates' `infra_id`).
    pub infra_id: &'a str,
    /// Renders the templates of kept instances again, to see which would
    /// now render otherwise.
    pub renderer: &'a Renderer,
    /// What the config managers resolved for kept instances (see
    /// [`ResolvedForPlan`]).
    pub resolved: &'a ResolvedForPlan,
}

/// By instance id: its config-management section as rendered now, and what
/// its config manager resolved from that. The plan renders the section again
/// and uses the names only when it renders the same; otherwise it cannot tell
/// how the instance's templates would render and leaves it be.
pub type ResolvedForPlan = HashMap<String, (serde_json::Value, ResolvedNames)>;

/// Computes the plan.
pub fn plan(input: &PlanInput<'_>) -> Plan {
    let model = input.model;
    let mut plan = Plan::default();
    let mut creates = Vec::new();
    // Instances of nodes no longer described.
    for record in input.records {
        if model.infra.node(&record.node_name).is_none() {
            plan.changes.push(destroy(
                record,
                format!(
                    "node `{}` is no longer in the description",
                    record.node_name
                ),
            ));
        }
    }
    for node in &model.infra.nodes {
        let scaled = input.targets.iter().find(|t| t.node_name == node.name);
        let target = node.scaling.target(scaled.and_then(|t| t.target));
        plan.targets.insert(node.name.clone(), target);
        let limits = format!("[{}, {}]", node.scaling.min, node.scaling.max);
        let fingerprint = model.fingerprint(node);
        let as_recorded_before = model.fingerprint_with_every_variable(node);
        let mine = || input.records.iter().filter(|r| r.node_name == node.name);

        // Asked to go, then above the target (youngest first), then kept.
        let mut live: Vec<&InstanceRecord> = Vec::new();
        for record in mine().filter(|r| r.state.is_live()) {
            match input.removals.iter().find(|(id, _)| *id == record.id) {
                Some((_, reason)) => plan.changes.push(destroy(record, reason.clone())),
                None => live.push(record),
            }
        }
        live.sort_by_key(|r| r.seq);
        let keep = live.len().min(target as usize);
        for record in live.drain(keep..).rev() {
            plan.changes.push(destroy(
                record,
                format!("above the node's target of {target} (scaling {limits})"),
            ));
        }
        for record in &live {
            if let Some(old) = record
                .fingerprint
                .as_ref()
                .filter(|f| **f != fingerprint && **f != as_recorded_before)
            {
                plan.changes.push(Change {
                    action: Action::Replace,
                    node: node.name.clone(),
                    instance_id: Some(record.id.clone()),
                    reason: changed_reason(input, model, node, old),
                    rolling: true,
                });
            }
        }
        // Failed ones are replaced while the node is short; others just go.
        let mut missing = target as usize - live.len();
        for record in mine().filter(|r| !r.state.is_live()) {
            let failure = match record.state {
                InstanceState::Destroying => "its destroy did not finish".to_string(),
                _ => format!(
                    "failed: {}",
                    record.error.as_deref().unwrap_or("unknown reason")
                ),
            };
            if missing > 0 && record.state == InstanceState::Failed {
                missing -= 1;
                plan.changes.push(Change {
                    action: Action::Replace,
                    reason: failure,
                    ..destroy(record, String::new())
                });
            } else {
                plan.changes.push(destroy(record, failure));
            }
        }
        for _ in 0..missing {
            creates.push(Change {
                action: Action::Create,
                node: node.name.clone(),
                instance_id: None,
                reason: if mine().next().is_none() {
                    format!("new node, {target} instance(s) (scaling {limits})")
                } else {
                    format!("below the node's target of {target} (scaling {limits})")
                },
                rolling: false,
            });
        }
    }
    plan.changes.extend(creates);
    reconfiguration(input, &mut plan);
    plan
}

/// Finds the kept instances whose templates would now render otherwise
/// (the addresses they read changed, say after a scale-down of the nodes a
/// load balancer lists): replaced, rolling, when their node says
/// `reconfigure: replace`, else listed as out of date. The addresses are
/// those of the ready instances the plan keeps, in creation order, as a
/// build gives them.
fn reconfiguration(input: &PlanInput<'_>, plan: &mut Plan) {
    let model = input.model;
    let going: BTreeSet<String> = plan
        .changes
        .iter()
        .filter_map(|c| c.instance_id.clone())
        .collect();
    let kept = || {
        input
            .records
            .iter()
            .filter(|r| r.state == InstanceState::Ready && !going.contains(&r.id))
    };
    let book: Arc<dyn AddressBook> = Arc::new(Book::of_ready(model, kept()));
    for node in &model.infra.nodes {
        let Some(read) = model
            .addresses_read
            .get(&node.name)
            .filter(|r| !r.is_empty())
        else {
            continue;
        };
        let Some(implementation) = model.implementation(&node.name) else {
            continue;
        };
        let read: Vec<String> = read.iter().map(|n| format!("`{n}`")).collect();
        for record in kept().filter(|r| r.node_name == node.name) {
            let Some(was) = &record.rendered else {
                continue;
            };
            let context = node_context(model, node, implementation, input.infra_id, &record.id);
            // One that no longer renders (a node it reads has no instance
            // now) is left to the pass that makes one.
            let context =
                match render_config_management(input.renderer, implementation, &context, &book) {
                    Ok(None) => context,
                    Ok(Some(config)) => match input.resolved.get(&record.id) {
                        Some((was, names)) if *was == config => {
                            with_config_names(&context, Some(config), names.clone())
                        }
                        _ => continue,
                    },
                    Err(_) => continue,
                };
            let Ok(now) = render_sections(input.renderer, implementation, &context, &book) else {
                continue;
            };
            if now.digest() == *was {
                continue;
            }
            let what = format!(
                "its templates read the addresses of {}, which changed since it was made",
                read.join(", ")
            );
            match node.reconfigure {
                Reconfigure::Replace => plan.changes.push(Change {
                    action: Action::Replace,
                    node: node.name.clone(),
                    instance_id: Some(record.id.clone()),
                    reason: format!("{what} (reconfigure: replace)"),
                    rolling: true,
                }),
                Reconfigure::Keep => plan.outdated.push(Outdated {
                    node: node.name.clone(),
                    instance_id: record.id.clone(),
                    reason: format!(
                        "{what}; kept as made (`reconfigure: replace` on the node replaces such instances)"
                    ),
                }),
            }
        }
    }
}

fn destroy(record: &InstanceRecord, reason: String) -> Change {
    Change {
        action: Action::Destroy,
        node: record.node_name.clone(),
        instance_id: Some(record.id.clone()),
        reason,
        rolling: false,
    }
}

/// Why an instance with fingerprint `old` no longer matches `node`: the
/// changed parts when the last build's basis is known and is the one it was
/// made from.
fn changed_reason(input: &PlanInput<'_>, model: &Model, node: &NodeSpec, old: &str) -> String {
    let previous = input
        .previous
        .and_then(|p| p.nodes.iter().find(|n| n.name == node.name))
        .and_then(|n| n.basis.as_ref())
        .filter(|basis| fingerprint_of(basis) == old);
    match previous {
        Some(basis) => {
            let changes = basis_changes(basis, &model.node_basis(node));
            format!("changed: {}", changes.join(", "))
        }
        None => "made from an earlier version of its node".to_string(),
    }
}
