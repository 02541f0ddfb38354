//! [`Occopus`]: everything the `occopus` command does, callable from Rust.

use crate::config::Config;
use crate::error::ApiError;
use crate::files::load_auth_or_default;
use crate::info::{InfraInfo, complete_infra_id, info, open_state};
use crate::local_endpoint::{LocalCloudEndpoint, check_local_cloud};
use crate::plugins::load_plugins;
use occopus_engine::check;
use occopus_engine::{
    BuildOptions, BuildReport, DestroyOptions, DestroyReport, EngineError, Event, Orchestrator,
    PassReport, Plan, ScaleBy, ScaleQueued, Upkeep, Wiring,
};
use occopus_health::HealthChecker;
use occopus_local_cloud::{LocalCloudSettings, NodeRunner};
use occopus_model::yaml::{self, LoadLimits};
use occopus_model::{Diagnostics, Location, Model, NodeDefinitions, Renderer, Sources, Yaml};
use occopus_plugin_host::PluginCatalog;
use occopus_types::AmbientCredentials;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How to open occopus. The front end resolves every location: the library
/// reads no environment variable and knows no default directory.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The configuration (plugins, local cloud, engine).
    pub config: Config,
    /// The state database.
    pub state: Option<PathBuf>,
    /// Open the state database to read only (for commands that change no
    /// infrastructure): works on a read-only file, never waits for a lease.
    pub read_only: bool,
    /// Let templates run commands on this machine with `cmd()`.
    pub allow_template_commands: bool,
    /// The command that supervises a local cloud node (the `occopus` binary
    /// gives itself); without it, `local` resources need an `endpoint`.
    pub node_runner: Option<NodeRunner>,
    /// Credentials for the resources the credentials file has none for,
    /// which the caller found in its environment (the command line: the AWS
    /// tools' sources for `ec2`).
    pub ambient_credentials: AmbientCredentials,
}

impl Options {
    /// The local cloud's settings, when the config names its directory and a
    /// node runner is given.
    pub fn local_cloud(&self) -> Option<LocalCloudSettings> {
        let config = &self.config.local_cloud;
        Some(LocalCloudSettings::new(
            config.root.clone()?,
            config,
            self.node_runner.clone()?,
        ))
    }
}

/// An open occopus: plugins loaded, state database open.
pub struct Occopus {
    orchestrator: Orchestrator,
    /// The local cloud, when configured: what it will refuse is checked
    /// before anything is built.
    local_cloud: Option<LocalCloudSettings>,
    renderer: Renderer,
    catalog: Arc<PluginCatalog>,
}

impl Occopus {
    /// Loads the plugins and opens the state database.
    pub async fn open(options: Options) -> Result<Self, ApiError> {
        let catalog = Arc::new(load_plugins(&options.config.plugins).await?);
        let store = open_state(options.state.clone(), options.read_only)?;
        let renderer = Renderer::new(options.allow_template_commands);
        let local_cloud = options.local_cloud();
        let orchestrator = Orchestrator::new(
            Wiring {
                plugins: catalog.clone(),
                store: Arc::new(store),
                prober: Arc::new(HealthChecker::default()),
                endpoints: Arc::new(LocalCloudEndpoint::new(local_cloud.clone())),
                ambient_credentials: options.ambient_credentials.clone(),
            },
            options.config.engine.clone(),
            renderer.clone(),
        );
        Ok(Occopus {
            orchestrator,
            local_cloud,
            renderer,
            catalog,
        })
    }

    /// The engine, for progress events and lower-level calls.
    pub fn orchestrator(&self) -> &Orchestrator {
        &self.orchestrator
    }

    /// The plugins loaded.
    pub fn catalog(&self) -> &PluginCatalog {
        &self.catalog
    }

    /// Progress events of builds, maintenance and destroys.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Event> {
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
                self.orchestrator.plugins(),
                &self.renderer,
                &mut diagnostics,
            )
            .await;
            check_local_cloud(self.local_cloud.as_ref(), &model, &mut diagnostics);
            diagnostics.sort();
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
        options: DestroyOptions,
    ) -> Result<DestroyReport, ApiError> {
        let auth = load_auth_or_default(auth_data)?;
        Ok(self.orchestrator.destroy(infra_id, &auth, options).await?)
    }

    /// What building the files onto `infra_id` (default: the description's
    /// `infra_id`; none: a new infra) would change; nothing is touched.
    pub async fn plan(&self, sources: &Sources, infra_id: Option<&str>) -> Result<Plan, ApiError> {
        let model = self.valid_model(sources)?;
        let infra_id = infra_id.or(model.infra.id.as_deref()).unwrap_or_default();
        Ok(self.orchestrator.plan(&model, infra_id).await?)
    }

    /// One maintenance pass over `infra_id` (see [`occopus_engine::maintain`]).
    pub async fn maintain_pass(
        &self,
        infra_id: &str,
        auth_data: Option<&Path>,
        upkeep: &Upkeep,
    ) -> Result<PassReport, ApiError> {
        let auth = load_auth_or_default(auth_data)?;
        Ok(self
            .orchestrator
            .maintain_pass(infra_id, &auth, upkeep)
            .await?)
    }

    /// Maintains `infra_id` until stopped, or until `upkeep.policy` ends the
    /// loop after a failed pass (see [`occopus_engine::upkeep`]); `on_pass`
    /// sees each pass's outcome.
    pub async fn maintain(
        &self,
        infra_id: &str,
        auth_data: Option<&Path>,
        upkeep: Upkeep,
        on_pass: impl FnMut(&Result<PassReport, EngineError>),
    ) -> Result<(), ApiError> {
        let auth = load_auth_or_default(auth_data)?;
        Ok(self
            .orchestrator
            .maintain(infra_id, &auth, upkeep, on_pass)
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

    /// The recorded infra id that `given` names: itself, or the one id it is
    /// the start of (see [`complete_infra_id`]).
    pub fn complete_infra_id(&self, given: &str) -> Result<String, ApiError> {
        complete_infra_id(self.orchestrator.store(), given)
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
            let location = Location::start_of(Path::new(&format!("{source} (imported)")).into());
            let document = serde_json::json!({ format!("node_def:{node_type}"): implementations });
            definitions.extend(NodeDefinitions::from_yaml(
                &Yaml::from_json(&document, &location),
                &mut diagnostics,
            ));
        }
        Ok(definitions)
    }

    fn valid_model(&self, sources: &Sources) -> Result<Model, ApiError> {
        let (model, mut diagnostics) = self.load(sources)?;
        if let Some(model) = &model {
            check_local_cloud(self.local_cloud.as_ref(), model, &mut diagnostics);
        }
        match model {
            Some(model) if !diagnostics.has_errors() => Ok(model),
            _ => Err(ApiError::Invalid(diagnostics)),
        }
    }
}
