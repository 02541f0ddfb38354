//! An in-memory cloud for the engine's tests: a `memory` driver whose
//! instances live in a map, on tokio's clock (so tests run on paused time),
//! a `cloudinit` contextualiser that hands the template through as
//! user-data, a `memory` config manager, and a prober whose answers the test
//! sets. The driver and the config manager write their calls into one log,
//! so a test sees their order.
//!
//! What an instance does comes from its resource section, as with the
//! `dummy` plugin:
//! - `boot` (seconds): how long it stays pending after its create;
//! - `fail: true`: it reports failed once booted;
//! - `never_runs: true`: it stays pending forever;
//! - `transient_creates: N`: the first N creates of an instance id answer
//!   `transient`.
//!
//! The config manager's section: `pending_polls: N` (each node is pending
//! for its first N state calls), `fail: true` (configuring fails; a test can
//! also fail one node's configuration later); it
//! resolves `memo.node` (the instance id) and `memo.greeting` (the
//! section's `greeting`) for the templates.

use async_trait::async_trait;
use occopus_health::{ProbeError, ProbeFailure, Prober, Probes};
use occopus_types::{
    CallError, CloudState, CloudTarget, ConfigManager, ConfigManagerInfo, ConfigNodeFacts,
    ConfigState, ConfigTarget, Contextualiser, ContextualiserInfo, ContractErrorKind,
    CreateRequest, Driver, DriverInfo, InfraFacts, InstanceStatus, InstanceTags, ListedInstance,
    NoPlugin, NodeFacts, Payload, PluginKind, Plugins, ResourceSection,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// One instance of the memory cloud.
#[derive(Debug, Clone)]
pub(crate) struct MemoryInstance {
    pub instance_id: String,
    pub tags: InstanceTags,
    pub address: String,
    pub user_data: Option<String>,
    pub created: Instant,
    pub destroyed: Option<Instant>,
    resource: ResourceSection,
}

/// A call the driver or the config manager received, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Call {
    Create(String),
    Destroy(String),
    Prepare(String),
    Register(String),
    State(String),
    DropNode(String),
    DropInfra(String),
}

/// The calls received, shared by the driver and the config manager.
type CallLog = Arc<Mutex<Vec<Call>>>;

#[derive(Default)]
struct State {
    instances: BTreeMap<String, MemoryInstance>,
    creates_per_instance: HashMap<String, u32>,
}

/// The `memory` driver.
pub(crate) struct MemoryDriver {
    info: DriverInfo,
    state: Mutex<State>,
    log: CallLog,
}

fn number(resource: &ResourceSection, key: &str) -> f64 {
    resource.get(key).and_then(|v| v.as_f64()).unwrap_or(0.0)
}

fn flag(resource: &ResourceSection, key: &str) -> bool {
    resource.get(key).and_then(|v| v.as_bool()).unwrap_or(false)
}

impl MemoryDriver {
    fn new(log: CallLog) -> Self {
        MemoryDriver {
            info: DriverInfo {
                name: "memory".into(),
                version: "1.0.0".into(),
                resource_types: vec!["memory".into()],
                resource_schema: r#"{"type": "object", "required": ["type"]}"#.into(),
            },
            state: Mutex::default(),
            log,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// Every instance ever made (destroyed ones too), by cloud id.
    pub(crate) fn instances(&self) -> Vec<(String, MemoryInstance)> {
        self.state()
            .instances
            .iter()
            .map(|(id, i)| (id.clone(), i.clone()))
            .collect()
    }

    /// The instances not destroyed.
    pub(crate) fn live(&self) -> Vec<MemoryInstance> {
        self.state()
            .instances
            .values()
            .filter(|i| i.destroyed.is_none())
            .cloned()
            .collect()
    }

    /// The calls received (the config manager's too), in order.
    pub(crate) fn calls(&self) -> Vec<Call> {
        self.log.lock().unwrap().clone()
    }

    fn record(&self, call: Call) {
        self.log.lock().unwrap().push(call);
    }

    /// Makes an instance behind the engine's back (as a create whose answer
    /// was lost would have).
    pub(crate) fn plant(&self, request: &CreateRequest) -> String {
        let mut state = self.state();
        Self::make(&mut state, request)
    }

    fn make(state: &mut State, request: &CreateRequest) -> String {
        let n = state.instances.len() + 1;
        let cloud_id = format!("mem-{n}");
        state.instances.insert(
            cloud_id.clone(),
            MemoryInstance {
                instance_id: request.instance_id.clone(),
                tags: request.tags.clone(),
                address: format!("10.9.{}.{}", n / 250, 1 + n % 250),
                user_data: match &request.payload {
                    Payload::UserData(text) => Some(text.clone()),
                    _ => None,
                },
                created: Instant::now(),
                destroyed: None,
                resource: request.target.resource.clone(),
            },
        );
        cloud_id
    }
}

#[async_trait]
impl Driver for MemoryDriver {
    fn info(&self) -> &DriverInfo {
        &self.info
    }

    async fn validate(&self, _: &ResourceSection) -> Result<(), CallError> {
        Ok(())
    }

    async fn create(&self, request: &CreateRequest) -> Result<String, CallError> {
        self.record(Call::Create(request.instance_id.clone()));
        let mut state = self.state();
        let tries = state
            .creates_per_instance
            .entry(request.instance_id.clone())
            .or_default();
        *tries += 1;
        let transient = number(&request.target.resource, "transient_creates") as u32;
        if *tries <= transient {
            return Err(CallError::plugin(
                ContractErrorKind::Transient,
                "memory cloud: throttled",
            ));
        }
        // Idempotent: the instance made under this id, if it is there.
        if let Some((id, _)) = state
            .instances
            .iter()
            .find(|(_, i)| i.instance_id == request.instance_id && i.destroyed.is_none())
        {
            return Ok(id.clone());
        }
        Ok(Self::make(&mut state, request))
    }

    async fn status(&self, _: &CloudTarget, cloud_id: &str) -> Result<InstanceStatus, CallError> {
        let state = self.state();
        let Some(instance) = state.instances.get(cloud_id) else {
            return Err(CallError::plugin(
                ContractErrorKind::NotFound,
                "no such instance",
            ));
        };
        let resource = &instance.resource;
        let booted = instance.created + Duration::from_secs_f64(number(resource, "boot"));
        let cloud_state = if instance.destroyed.is_some() {
            CloudState::Shutdown
        } else if flag(resource, "never_runs") || Instant::now() < booted {
            CloudState::Pending
        } else if flag(resource, "fail") {
            CloudState::Failed
        } else {
            CloudState::Running
        };
        Ok(InstanceStatus {
            state: cloud_state,
            public_addresses: vec![],
            private_addresses: vec![instance.address.clone()],
            detail: (cloud_state == CloudState::Failed).then(|| "it broke".to_string()),
        })
    }

    async fn destroy(&self, _: &CloudTarget, cloud_id: &str) -> Result<(), CallError> {
        self.record(Call::Destroy(cloud_id.to_string()));
        let mut state = self.state();
        if let Some(instance) = state.instances.get_mut(cloud_id) {
            instance.destroyed.get_or_insert_with(Instant::now);
        }
        Ok(())
    }

    async fn list(
        &self,
        _: &CloudTarget,
        infra_id: &str,
    ) -> Result<Vec<ListedInstance>, CallError> {
        Ok(self
            .state()
            .instances
            .iter()
            .filter(|(_, i)| i.tags.infra_id == infra_id && i.destroyed.is_none())
            .map(|(id, i)| ListedInstance {
                cloud_id: id.clone(),
                instance_id: i.instance_id.clone(),
                tags: i.tags.clone(),
                state: CloudState::Running,
            })
            .collect())
    }
}

/// The `cloudinit` contextualiser: the rendered template is the user-data.
pub(crate) struct PassThrough(ContextualiserInfo);

#[async_trait]
impl Contextualiser for PassThrough {
    fn info(&self) -> &ContextualiserInfo {
        &self.0
    }

    async fn contextualise(
        &self,
        section: &ResourceSection,
        _: &NodeFacts,
    ) -> Result<Payload, CallError> {
        let template = section
            .get("context_template")
            .and_then(|t| t.as_str())
            .unwrap_or_default();
        Ok(Payload::UserData(template.to_string()))
    }
}

/// The `memory` config manager (see the module's header).
pub(crate) struct MemoryConfig {
    info: ConfigManagerInfo,
    log: CallLog,
    polls: Mutex<HashMap<String, u32>>,
    failed: Mutex<HashSet<String>>,
}

impl MemoryConfig {
    /// From now on, the configuration of `instance_id` has failed.
    pub(crate) fn fail(&self, instance_id: &str) {
        self.failed.lock().unwrap().insert(instance_id.to_string());
    }

    fn section(target: &ConfigTarget) -> serde_json::Value {
        serde_json::from_str(&target.section).unwrap_or_default()
    }

    fn record(&self, call: Call) {
        self.log.lock().unwrap().push(call);
    }
}

#[async_trait]
impl ConfigManager for MemoryConfig {
    fn info(&self) -> &ConfigManagerInfo {
        &self.info
    }

    async fn prepare_infra(&self, _: &ConfigTarget, infra: &InfraFacts) -> Result<(), CallError> {
        self.record(Call::Prepare(infra.infra_id.clone()));
        Ok(())
    }

    async fn resolve_attributes(
        &self,
        target: &ConfigTarget,
        node: &ConfigNodeFacts,
    ) -> Result<serde_json::Map<String, serde_json::Value>, CallError> {
        let greeting = Self::section(target)["greeting"].clone();
        let names = serde_json::json!({"memo": {"node": node.instance_id, "greeting": greeting}});
        Ok(names.as_object().cloned().unwrap_or_default())
    }

    async fn register_node(
        &self,
        _: &ConfigTarget,
        node: &ConfigNodeFacts,
    ) -> Result<(), CallError> {
        self.record(Call::Register(node.instance_id.clone()));
        Ok(())
    }

    async fn node_state(
        &self,
        target: &ConfigTarget,
        node: &ConfigNodeFacts,
    ) -> Result<ConfigState, CallError> {
        self.record(Call::State(node.instance_id.clone()));
        let section = Self::section(target);
        if section["fail"].as_bool() == Some(true)
            || self.failed.lock().unwrap().contains(&node.instance_id)
        {
            return Ok(ConfigState::Failed);
        }
        let pending = section["pending_polls"].as_u64().unwrap_or(0) as u32;
        let mut polls = self.polls.lock().unwrap();
        let seen = polls.entry(node.instance_id.clone()).or_default();
        *seen += 1;
        Ok(if *seen > pending {
            ConfigState::Ready
        } else {
            ConfigState::Pending
        })
    }

    async fn drop_node(&self, _: &ConfigTarget, node: &ConfigNodeFacts) -> Result<(), CallError> {
        self.record(Call::DropNode(node.instance_id.clone()));
        Ok(())
    }

    async fn drop_infra(&self, _: &ConfigTarget, infra: &InfraFacts) -> Result<(), CallError> {
        self.record(Call::DropInfra(infra.infra_id.clone()));
        Ok(())
    }
}

/// The memory driver, the pass-through contextualiser and the memory config
/// manager.
pub(crate) struct MemoryCloud {
    pub driver: MemoryDriver,
    contextualiser: PassThrough,
    pub config: MemoryConfig,
}

impl MemoryCloud {
    pub(crate) fn new() -> Self {
        let log = CallLog::default();
        MemoryCloud {
            driver: MemoryDriver::new(log.clone()),
            config: MemoryConfig {
                info: ConfigManagerInfo {
                    name: "memory".into(),
                    version: "1.0.0".into(),
                    config_types: vec!["memory".into()],
                    config_schema: r#"{"type": "object"}"#.into(),
                },
                log,
                polls: Mutex::default(),
                failed: Mutex::default(),
            },
            contextualiser: PassThrough(ContextualiserInfo {
                name: "cloudinit".into(),
                version: "1.0.0".into(),
                context_types: vec!["cloudinit".into()],
                context_schema: r#"{"type": "object"}"#.into(),
            }),
        }
    }
}

impl Plugins for MemoryCloud {
    fn driver(&self, resource_type: &str) -> Result<&dyn Driver, NoPlugin> {
        match resource_type {
            "memory" => Ok(&self.driver),
            other => Err(NoPlugin {
                kind: PluginKind::Driver,
                name: other.into(),
                hint: String::new(),
            }),
        }
    }

    fn contextualiser(&self, context_type: &str) -> Result<&dyn Contextualiser, NoPlugin> {
        match context_type {
            "cloudinit" => Ok(&self.contextualiser),
            other => Err(NoPlugin {
                kind: PluginKind::Contextualiser,
                name: other.into(),
                hint: String::new(),
            }),
        }
    }

    fn config_manager(&self, config_type: &str) -> Result<&dyn ConfigManager, NoPlugin> {
        match config_type {
            "memory" => Ok(&self.config),
            other => Err(NoPlugin {
                kind: PluginKind::ConfigManager,
                name: other.into(),
                hint: String::new(),
            }),
        }
    }
}

/// A prober whose answer per address the test decides: every address passes
/// but those marked failing.
#[derive(Default)]
pub(crate) struct ScriptedProber {
    failing: Mutex<HashSet<String>>,
}

impl ScriptedProber {
    /// From now on, the probes of `address` fail (or pass again).
    pub(crate) fn set_failing(&self, address: &str, failing: bool) {
        let mut set = self.failing.lock().unwrap();
        if failing {
            set.insert(address.to_string());
        } else {
            set.remove(address);
        }
    }
}

#[async_trait]
impl Prober for ScriptedProber {
    async fn check(&self, probes: &Probes) -> Result<(), ProbeFailure> {
        if self.failing.lock().unwrap().contains(&probes.address) {
            return Err(ProbeFailure {
                probe: format!("ping {}", probes.address),
                error: ProbeError::NoEchoReply(Duration::from_secs(5)),
            });
        }
        Ok(())
    }
}
