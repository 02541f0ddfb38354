//! The library API: everything the `occopus` command does, callable from Rust.
//!
//! ```no_run
//! # async fn demo() -> Result<(), occopus::api::ApiError> {
//! use occopus::api::{Occopus, Options};
//! use occopus::engine::{BuildOptions, StopSignal};
//! use occopus::model::Sources;
//!
//! let occopus = Occopus::open(Options::default()).await?;
//! let sources = Sources { infra: "examples/hello/infra.yaml".into(), ..Sources::default() };
//! let mut progress = occopus.subscribe();
//! tokio::spawn(async move {
//!     while let Ok(event) = progress.recv().await {
//!         println!("{} {} {}", event.node, event.instance_id, event.phase.as_str());
//!     }
//! });
//! let options = BuildOptions { infra_id: None, rollback: false, stop: StopSignal::never() };
//! let report = occopus.build(&sources, options).await?;
//! println!("built {} ({} instances)", report.infra_id, report.instances.len());
//! occopus.destroy(&report.infra_id, None, StopSignal::never()).await?;
//! # Ok(())
//! # }
//! ```

use crate::config::Config;
use crate::engine::maintain::{ScaleBy, ScaleQueued};
use crate::engine::{
    BuildOptions, BuildReport, DestroyReport, EngineError, Orchestrator, PassReport, Plan,
    StopSignal,
};
use crate::local_cloud::LocalCloudSettings;
use crate::model::check::{self, Strictness};
use crate::model::{
    AuthData, Diagnostics, LoadLimits, Model, NodeDefinitions, Sources, Yaml, yaml,
};
use crate::plugin::{PluginCatalog, PluginRuntime, RuntimeError};
use crate::store::{
    InfraRecord, InstanceRecord, NodeSnapshot, NodeTarget, ScaleRequest, Store, StoreError,
};
use crate::template::Renderer;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Errors of the library API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Invalid(Diagnostics),
    #[error(transparent)]
    Plugin(#[from] RuntimeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(EngineError),
    #[error("no state database location: pass --state FILE (no home directory)")]
    NoStateLocation,
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::Invalid(diagnostics) => ApiError::Invalid(diagnostics),
            other => ApiError::Engine(other),
        }
    }
}

/// How to open occopus.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The configuration (plugins, local cloud, engine).
    pub config: Config,
    /// The state database [default: `$XDG_DATA_HOME/occopus/state.db`].
    pub state: Option<PathBuf>,
    /// Let templates run commands on this machine with `cmd()`.
    pub allow_template_commands: bool,
}

/// An open occopus: plugins loaded, state database open.
pub struct Occopus {
    orchestrator: Orchestrator,
    renderer: Renderer,
}

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

impl Occopus {
    /// Loads the plugins and opens the state database.
    pub async fn open(options: Options) -> Result<Self, ApiError> {
        let runtime = PluginRuntime::new(&options.config.plugins)?;
        let catalog = PluginCatalog::discover(&runtime, &options.config.plugins).await?;
        let store = open_state(options.state)?;
        let local_cloud = LocalCloudSettings::from_config(None, &options.config.local_cloud)
            .inspect_err(|e| tracing::warn!(error = %e, "the local cloud is unavailable"))
            .ok();
        let renderer = Renderer::new(options.allow_template_commands);
        let orchestrator = Orchestrator::new(
            Arc::new(catalog),
            Arc::new(store),
            options.config.engine.clone(),
            renderer.clone(),
            local_cloud,
        );
        Ok(Occopus {
            orchestrator,
            renderer,
        })
    }

    /// The engine, for progress events and lower-level calls.
    pub fn orchestrator(&self) -> &Orchestrator {
        &self.orchestrator
    }

    /// Progress events of builds and destroys.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<crate::engine::Event> {
        self.orchestrator.subscribe()
    }

    /// Reads the files (with the imported node definitions). Errors only when
    /// the model could not be built at all; problems are in the diagnostics.
    pub fn load(&self, sources: &Sources) -> Result<(Option<Model>, Diagnostics), ApiError> {
        Ok(Model::load(
            sources,
            self.imported_definitions()?,
            LoadLimits::default(),
        ))
    }

    /// Validates the files and renders every template with placeholder
    /// addresses; returns every problem found (empty = all is well).
    pub async fn validate(&self, sources: &Sources) -> Result<Diagnostics, ApiError> {
        let (model, mut diagnostics) = self.load(sources)?;
        if let Some(model) = model {
            check::check_with_plugins(
                &model,
                self.orchestrator.catalog(),
                &self.renderer,
                Strictness::Validate,
                &mut diagnostics,
            )
            .await;
        }
        Ok(diagnostics)
    }

    /// Builds (or resumes) the infrastructure the files describe.
    pub async fn build(
        &self,
        sources: &Sources,
        options: BuildOptions,
    ) -> Result<BuildReport, ApiError> {
        let model = self.valid_model(sources)?;
        Ok(self.orchestrator.build(model, options).await?)
    }

    /// Destroys an infrastructure; `auth_data` holds the credentials its
    /// clouds need.
    pub async fn destroy(
        &self,
        infra_id: &str,
        auth_data: Option<&Path>,
        stop: StopSignal,
    ) -> Result<DestroyReport, ApiError> {
        let auth = load_auth_or_default(auth_data)?;
        Ok(self.orchestrator.destroy(infra_id, &auth, stop).await?)
    }

    /// What building the files onto `infra_id` (default: the description's
    /// `infra_id`; none: a new infra) would change; nothing is touched.
    pub fn plan(&self, sources: &Sources, infra_id: Option<&str>) -> Result<Plan, ApiError> {
        let model = self.valid_model(sources)?;
        let infra_id = infra_id.or(model.infra.id.as_deref()).unwrap_or_default();
        Ok(self.orchestrator.plan(&model, infra_id)?)
    }

    /// One maintenance pass over `infra_id` (see [`crate::engine::maintain`]).
    pub async fn maintain_pass(
        &self,
        infra_id: &str,
        auth_data: Option<&Path>,
        interval: std::time::Duration,
        stop: StopSignal,
    ) -> Result<PassReport, ApiError> {
        let auth = load_auth_or_default(auth_data)?;
        Ok(self
            .orchestrator
            .maintain_pass(infra_id, &auth, interval, stop)
            .await?)
    }

    /// Queues a scaling request that the next maintenance pass applies.
    pub fn scale(
        &self,
        infra_id: &str,
        node: &str,
        by: ScaleBy,
        instance: Option<&str>,
    ) -> Result<ScaleQueued, ApiError> {
        Ok(self
            .orchestrator
            .request_scale(infra_id, node, by, instance)?)
    }

    /// The recorded infrastructures (all, or the one named).
    pub fn info(&self, infra_id: Option<&str>) -> Result<Vec<InfraInfo>, ApiError> {
        info(self.orchestrator.store(), infra_id)
    }

    /// Stores the node definitions of `path` for later builds; returns the
    /// types imported. Nothing is stored when the file has errors.
    pub fn import(&self, path: &Path) -> Result<Vec<String>, ApiError> {
        let mut diagnostics = Diagnostics::default();
        let yaml = yaml::load_file(path, LoadLimits::default(), &mut diagnostics);
        self.import_yaml(yaml, diagnostics, &path.display().to_string())
    }

    /// Stores node definitions given as text (posted to the REST service);
    /// `name` names them in messages, and their imports obey `imports`.
    pub fn import_text(
        &self,
        text: &str,
        name: &str,
        imports: yaml::Imports,
    ) -> Result<Vec<String>, ApiError> {
        let mut diagnostics = Diagnostics::default();
        let limits = LoadLimits {
            imports,
            ..LoadLimits::default()
        };
        let yaml = yaml::load_str(text, Path::new(name).into(), limits, &mut diagnostics);
        self.import_yaml(yaml, diagnostics, name)
    }

    fn import_yaml(
        &self,
        yaml: Option<Yaml>,
        mut diagnostics: Diagnostics,
        source: &str,
    ) -> Result<Vec<String>, ApiError> {
        let definitions =
            yaml.map(|yaml| (NodeDefinitions::from_yaml(&yaml, &mut diagnostics), yaml));
        if diagnostics.has_errors() {
            return Err(ApiError::Invalid(diagnostics));
        }
        let Some((definitions, yaml)) = definitions else {
            return Err(ApiError::Invalid(diagnostics));
        };
        let types: Vec<(String, serde_json::Value)> = definitions
            .types
            .keys()
            .filter_map(|t| Some((t.clone(), yaml.get(&format!("node_def:{t}"))?.to_json())))
            .collect();
        self.orchestrator
            .store()
            .import_definitions(&types, source)?;
        Ok(types.into_iter().map(|(t, _)| t).collect())
    }

    fn imported_definitions(&self) -> Result<NodeDefinitions, ApiError> {
        let mut definitions = NodeDefinitions::default();
        let mut diagnostics = Diagnostics::default();
        for (node_type, implementations, source) in self.orchestrator.store().definitions()? {
            let location =
                crate::model::Location::start_of(Path::new(&format!("{source} (imported)")).into());
            let document = serde_json::json!({ format!("node_def:{node_type}"): implementations });
            definitions.extend(NodeDefinitions::from_yaml(
                &Yaml::from_json(&document, &location),
                &mut diagnostics,
            ));
        }
        Ok(definitions)
    }

    fn valid_model(&self, sources: &Sources) -> Result<Model, ApiError> {
        match self.load(sources)? {
            (Some(model), diagnostics) if !diagnostics.has_errors() => Ok(model),
            (_, diagnostics) => Err(ApiError::Invalid(diagnostics)),
        }
    }
}

/// Opens the state database at `state`, else at its default place.
pub fn open_state(state: Option<PathBuf>) -> Result<Store, ApiError> {
    let path = state
        .or_else(crate::dirs::state_file)
        .ok_or(ApiError::NoStateLocation)?;
    Ok(Store::open(&path)?)
}

/// The infrastructures recorded in `store` (all, or the one named). Needs no
/// plugin, so reporting stays cheap.
pub fn info(store: &Store, infra_id: Option<&str>) -> Result<Vec<InfraInfo>, ApiError> {
    let ids = match infra_id {
        Some(id) => vec![id.to_string()],
        None => store.infra_ids()?,
    };
    let mut infos = Vec::with_capacity(ids.len());
    for id in ids {
        let infra = store
            .infra(&id)?
            .ok_or_else(|| ApiError::Engine(EngineError::UnknownInfra(id.clone())))?;
        infos.push(InfraInfo {
            instances: store.instances(&id)?,
            targets: store.node_targets(&id)?,
            scale_requests: store.scale_requests(&id)?,
            infra,
        });
    }
    Ok(infos)
}

fn load_auth_or_default(path: Option<&Path>) -> Result<AuthData, ApiError> {
    match path {
        Some(path) => load_auth(path),
        None => Ok(AuthData::default()),
    }
}

fn load_auth(path: &Path) -> Result<AuthData, ApiError> {
    let mut diagnostics = Diagnostics::default();
    let auth = yaml::load_file(path, LoadLimits::default(), &mut diagnostics)
        .map(|yaml| AuthData::from_yaml(&yaml, &mut diagnostics));
    match auth {
        Some(auth) if !diagnostics.has_errors() => Ok(auth),
        _ => Err(ApiError::Invalid(diagnostics)),
    }
}

/// The dependency graph of a description, in Graphviz DOT: an edge from each
/// node to each node it depends on, with the scaling limits as labels.
pub fn graph_dot(model: &Model) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut dot = format!(
        "digraph {} {{\n  rankdir=BT;\n  node [shape=box];\n",
        quote(&model.infra.name)
    );
    for node in &model.infra.nodes {
        let resource = model
            .implementation(&node.name)
            .map_or("?", |i| i.resource_type.as_str());
        let label = format!(
            "{}\\n{} on {} [{}..{}]",
            node.name, node.node_type, resource, node.scaling.min, node.scaling.max
        );
        dot.push_str(&format!(
            "  {} [label={}];\n",
            quote(&node.name),
            quote(&label).replace("\\\\n", "\\n")
        ));
    }
    for edge in &model.infra.dependencies {
        dot.push_str(&format!(
            "  {} -> {};\n",
            quote(&edge.dependent),
            quote(&edge.dependency)
        ));
    }
    dot.push_str("}\n");
    dot
}
