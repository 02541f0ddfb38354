//! A node's config manager (its `config_management` section: Chef, Puppet),
//! asked at the points of the node's life where Occopus asks it:
//! its names resolved before the node's other sections render; the
//! infrastructure prepared (once per run) and the node registered before its
//! instance is created; the node's configuration state part of its readiness,
//! between running and the health checks; the node dropped after its
//! instance is destroyed, the infrastructure after its last instance.

use crate::error::{DestroyFailure, InstanceFailure};
use crate::lifecycle::Halted;
use crate::orchestrator::Orchestrator;
use crate::plan::ResolvedForPlan;
use crate::polling;
use crate::run::{Book, Run};
use occopus_model::auth::{AuthData, AuthSelectionError};
use occopus_model::render::{self, ResolvedNames};
use occopus_model::{AddressBook, Implementation, Model, NodeContext, Yaml};
use occopus_store::{InstanceRecord, InstanceState};
use occopus_types::{
    CallError, CallErrorKind, ConfigManager, ConfigNodeFacts, ConfigState, ConfigTarget,
    InfraFacts, Plugins,
};
use serde_json::Value as Json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// An instance's config manager and where its calls go.
pub(crate) struct NodeConfig<'a> {
    manager: &'a dyn ConfigManager,
    target: ConfigTarget,
    facts: ConfigNodeFacts,
}

/// The target of a config-management section written as `raw` and
/// rendered as `rendered`, with the credentials auth_data has for it.
fn config_target(
    raw: &Yaml,
    rendered: &Json,
    auth: &AuthData,
) -> Result<ConfigTarget, AuthSelectionError> {
    let section = rendered.as_object().cloned().unwrap_or_default();
    Ok(ConfigTarget {
        section: render::ordered_json(raw, rendered),
        endpoint: section
            .get("endpoint")
            .and_then(Json::as_str)
            .map(str::to_owned),
        credentials: auth.select_config(&section)?,
    })
}

fn infra_facts(model: &Model, infra_id: &str) -> InfraFacts {
    InfraFacts {
        infra_id: infra_id.to_owned(),
        infra_name: model.infra.name.clone(),
    }
}

/// How a node's config-management section is rendered for a call.
enum Rendering<'a> {
    /// With these addresses; a template that cannot render is an error.
    With(&'a Arc<dyn AddressBook>, &'a occopus_model::Renderer),
    /// With these addresses, or as written where a template cannot render
    /// (when destroying, the nodes it reads may be gone already).
    BestEffort(&'a Arc<dyn AddressBook>, &'a occopus_model::Renderer),
}

/// The config manager of `implementation`'s section and its target, the
/// section rendered in `context`; none without a section.
fn node_config<'p>(
    plugins: &'p dyn Plugins,
    model: &Model,
    implementation: &Implementation,
    context: &NodeContext,
    rendering: Rendering<'_>,
) -> Result<Option<(NodeConfig<'p>, Json)>, InstanceFailure> {
    let (Some(raw), Some(kind)) = (
        &implementation.config_management,
        implementation.config_management_type(),
    ) else {
        return Ok(None);
    };
    let manager = plugins.config_manager(kind)?;
    let rendered = match rendering {
        Rendering::With(book, renderer) => {
            render::render_config_management(renderer, implementation, context, book)?
                .unwrap_or_default()
        }
        Rendering::BestEffort(book, renderer) => {
            render::render_config_management(renderer, implementation, context, book)
                .ok()
                .flatten()
                .unwrap_or_else(|| raw.to_json())
        }
    };
    let target = config_target(raw, &rendered, &model.auth)?;
    let facts = ConfigNodeFacts {
        infra: infra_facts(model, &context.infra_id),
        node_name: context.name.clone(),
        instance_id: context.node_id.clone(),
        attributes: serde_json::Map::new(),
    };
    Ok(Some((
        NodeConfig {
            manager,
            target,
            facts,
        },
        rendered,
    )))
}

/// What the config managers resolve, by node, from each section as written:
/// the names `validate`'s dry render gives the node's templates.
pub(crate) async fn resolved_as_written(
    model: &Model,
    plugins: &dyn Plugins,
) -> HashMap<String, ResolvedNames> {
    let mut resolved = HashMap::new();
    for node in &model.infra.nodes {
        let Some(implementation) = model.implementation(&node.name) else {
            continue;
        };
        let (Some(raw), Some(kind)) = (
            &implementation.config_management,
            implementation.config_management_type(),
        ) else {
            continue;
        };
        // A missing plugin is reported by the schema checks.
        let Ok(manager) = plugins.config_manager(kind) else {
            continue;
        };
        let written = raw.to_json();
        let Ok(target) = config_target(raw, &written, &model.auth) else {
            continue;
        };
        let facts = ConfigNodeFacts {
            infra: infra_facts(model, "dry-run"),
            node_name: node.name.clone(),
            instance_id: format!("{}-dry-run", node.name),
            attributes: serde_json::Map::new(),
        };
        if let Ok(names) = manager.resolve_attributes(&target, &facts).await {
            resolved.insert(node.name.clone(), names);
        }
    }
    resolved
}

impl Orchestrator {
    /// What the plan needs to render again the templates of the kept
    /// instances of nodes with a config manager whose templates read
    /// addresses (see [`crate::plan::ResolvedForPlan`]); one that cannot be
    /// resolved now is left out, and so left be by the plan.
    pub(crate) async fn resolved_for_plan(
        &self,
        model: &Model,
        infra_id: &str,
        records: &[InstanceRecord],
    ) -> ResolvedForPlan {
        let mut resolved = ResolvedForPlan::new();
        // The nodes the plan renders again and that have a config manager:
        // usually none, and then no address book is made on this path (it
        // runs on every maintenance pass).
        let concerned = |node: &str| {
            model
                .addresses_read
                .get(node)
                .is_some_and(|read| !read.is_empty())
                && model
                    .implementation(node)
                    .is_some_and(|i| i.config_management.is_some())
        };
        if !model.infra.nodes.iter().any(|n| concerned(&n.name)) {
            return resolved;
        }
        let ready = || records.iter().filter(|r| r.state == InstanceState::Ready);
        let book: Arc<dyn AddressBook> = Arc::new(Book::of_ready(model, ready()));
        for record in ready().filter(|r| r.rendered.is_some() && concerned(&r.node_name)) {
            let (Some(node), Some(implementation)) = (
                model.infra.node(&record.node_name),
                model.implementation(&record.node_name),
            ) else {
                continue;
            };
            let context = render::node_context(model, node, implementation, infra_id, &record.id);
            let renderer = &self.inner.renderer;
            let Ok(Some((config, rendered))) = node_config(
                self.plugins(),
                model,
                implementation,
                &context,
                Rendering::With(&book, renderer),
            ) else {
                continue;
            };
            if let Ok(names) = config
                .manager
                .resolve_attributes(&config.target, &config.facts)
                .await
            {
                resolved.insert(record.id.clone(), (rendered, names));
            }
        }
        resolved
    }

    /// The context the instance's other sections render in (its
    /// config-management section rendered, and what its config manager
    /// resolved), and its config manager, if it has one.
    pub(crate) async fn configured_context<'p>(
        &'p self,
        model: &Model,
        implementation: &Implementation,
        context: NodeContext,
        book: &Arc<dyn AddressBook>,
    ) -> Result<(NodeContext, Option<NodeConfig<'p>>), Halted> {
        let plugins = self.plugins();
        let renderer = &self.inner.renderer;
        let Some((config, rendered)) = node_config(
            plugins,
            model,
            implementation,
            &context,
            Rendering::With(book, renderer),
        )?
        else {
            return Ok((context, None));
        };
        let names = self
            .with_retries(|| {
                config
                    .manager
                    .resolve_attributes(&config.target, &config.facts)
            })
            .await
            .map_err(failed("resolve-attributes"))?;
        let context = render::with_config_names(&context, Some(rendered), names);
        Ok((context, Some(config)))
    }

    /// What the config manager of an instance whose node's templates render
    /// in `context` says of it now; none without one (a maintenance pass's
    /// observation).
    pub(crate) async fn configuration_state(
        &self,
        model: &Model,
        implementation: &Implementation,
        context: &NodeContext,
        book: &Arc<dyn AddressBook>,
    ) -> Result<Option<ConfigState>, InstanceFailure> {
        let rendering = Rendering::With(book, &self.inner.renderer);
        let Some((config, _)) =
            node_config(self.plugins(), model, implementation, context, rendering)?
        else {
            return Ok(None);
        };
        self.with_retries(|| config.manager.node_state(&config.target, &config.facts))
            .await
            .map(Some)
            .map_err(|source| InstanceFailure::ConfigManagement {
                operation: "node-state",
                source,
            })
    }

    /// Registers the node before its instance is created, the
    /// infrastructure prepared first (once per run and config target).
    /// `attributes` are the node's rendered `contextualisation.attributes`;
    /// as Occopus does, `connections` is added to them.
    pub(crate) async fn register(
        &self,
        run: &Run,
        config: &mut NodeConfig<'_>,
        attributes: Option<&Json>,
    ) -> Result<(), Halted> {
        let mut attributes = attributes
            .and_then(Json::as_object)
            .cloned()
            .unwrap_or_default();
        attributes.insert(
            "connections".into(),
            connections(&run.model, &run.infra_id, &config.facts.node_name),
        );
        config.facts.attributes = attributes;
        let key = format!(
            "{} {}",
            config.manager.info().name,
            config.target.endpoint.as_deref().unwrap_or_default()
        );
        {
            let mut prepared = run.config_prepared.lock().await;
            if !prepared.contains(&key) {
                self.with_retries(|| {
                    config
                        .manager
                        .prepare_infra(&config.target, &config.facts.infra)
                })
                .await
                .map_err(failed("prepare-infra"))?;
                prepared.insert(key);
            }
        }
        self.with_retries(|| config.manager.register_node(&config.target, &config.facts))
            .await
            .map_err(failed("register-node"))?;
        Ok(())
    }

    /// Waits until the config manager reports the node configured
    /// (`engine.boot_timeout_secs` at most).
    pub(crate) async fn wait_configured(
        &self,
        run: &Run,
        config: &NodeConfig<'_>,
    ) -> Result<(), Halted> {
        let started = Instant::now();
        let timeout = Duration::from_secs(self.inner.config.boot_timeout_secs);
        let mut stop = run.stop.clone();
        loop {
            let state = self
                .with_retries(|| config.manager.node_state(&config.target, &config.facts))
                .await
                .map_err(failed("node-state"))?;
            match state {
                ConfigState::Ready => return Ok(()),
                ConfigState::Failed => return Err(InstanceFailure::ConfigFailed.into()),
                ConfigState::Pending | ConfigState::Unknown => {}
            }
            let waited = started.elapsed();
            if waited > timeout {
                return Err(InstanceFailure::ConfigTimeout {
                    secs: timeout.as_secs(),
                }
                .into());
            }
            tokio::select! {
                () = tokio::time::sleep(polling::next_poll(waited, None, polling::Cadence::OneByOne)) => {}
                () = stop.stopped() => return Err(Halted::Stopped("waiting for its configuration")),
            }
        }
    }

    /// Drops the node of instance `instance_id` from its config manager
    /// after its instance was destroyed (nothing without a section).
    pub(crate) async fn forget_node(
        &self,
        model: &Model,
        infra_id: &str,
        node_name: &str,
        instance_id: &str,
    ) -> Result<(), DestroyFailure> {
        let Some(config) = self.config_for_destroy(model, infra_id, node_name, instance_id)? else {
            return Ok(());
        };
        self.with_retries(|| config.manager.drop_node(&config.target, &config.facts))
            .await
            .map_err(|source| DestroyFailure::Config {
                operation: "drop-node",
                source,
            })
    }

    /// Drops the infrastructure from the config manager of each node type
    /// it has, after its last instance was destroyed.
    pub(crate) async fn forget_infra(
        &self,
        model: &Model,
        infra_id: &str,
    ) -> Result<(), DestroyFailure> {
        let mut dropped = std::collections::HashSet::new();
        for node in &model.infra.nodes {
            let Some(config) = self.config_for_destroy(model, infra_id, &node.name, "")? else {
                continue;
            };
            let key = (
                config.manager.info().name.clone(),
                config.target.section.clone(),
            );
            if !dropped.insert(key) {
                continue;
            }
            self.with_retries(|| {
                config
                    .manager
                    .drop_infra(&config.target, &config.facts.infra)
            })
            .await
            .map_err(|source| DestroyFailure::Config {
                operation: "drop-infra",
                source,
            })?;
        }
        Ok(())
    }

    /// A node's config manager when destroying: its section rendered with the
    /// addresses of the instances still recorded, or as written where it
    /// reads a node that has none left.
    fn config_for_destroy(
        &self,
        model: &Model,
        infra_id: &str,
        node_name: &str,
        instance_id: &str,
    ) -> Result<Option<NodeConfig<'_>>, DestroyFailure> {
        let (Some(node), Some(implementation)) =
            (model.infra.node(node_name), model.implementation(node_name))
        else {
            return Ok(None);
        };
        // Most nodes have no config manager: no need to read every instance
        // for an address book (a destroy asks this once per instance).
        if implementation.config_management.is_none() {
            return Ok(None);
        }
        let context = render::node_context(model, node, implementation, infra_id, instance_id);
        let records = self
            .inner
            .store
            .instances(infra_id)
            .map_err(DestroyFailure::Record)?;
        let book: Arc<dyn AddressBook> = Arc::new(Book::of_ready(model, &records));
        let rendering = Rendering::BestEffort(&book, &self.inner.renderer);
        match node_config(self.plugins(), model, implementation, &context, rendering) {
            Ok(found) => Ok(found.map(|(config, _)| config)),
            Err(InstanceFailure::NoPlugin(e)) => Err(DestroyFailure::NoPlugin(e)),
            Err(InstanceFailure::Credentials(e)) => Err(DestroyFailure::Target(e.into())),
            Err(other) => Err(DestroyFailure::Config {
                operation: "render",
                source: CallError::new(CallErrorKind::Host, other.to_string()),
            }),
        }
    }
}

/// Occopus's `connections` attribute of `node`, for Chef's `connect`
/// cookbook: one entry per `mappings` item of the dependencies it waits for,
/// naming the dependency's role, its attribute and the node's.
fn connections(model: &Model, infra_id: &str, node: &str) -> Json {
    let entries = model
        .infra
        .dependencies
        .iter()
        .filter(|d| d.dependent == node)
        .flat_map(|d| {
            d.mappings.iter().map(move |m| {
                serde_json::json!({
                    "source_role": format!("{infra_id}_{}", d.dependency),
                    "source_attribute": m.source,
                    "destination_attribute": m.destination,
                })
            })
        });
    Json::Array(entries.collect())
}

/// A failed config-manager call as the instance's failure.
fn failed(operation: &'static str) -> impl FnOnce(CallError) -> Halted {
    move |source| InstanceFailure::ConfigManagement { operation, source }.into()
}
