//! Calling a config-manager plugin (contract 0.1.2).

use crate::bindings::config_manager::ConfigManagerPluginPre;
use crate::bindings::config_manager_api;
use crate::bindings::types::PluginError;
use crate::error::RuntimeError;
use crate::provenance::LoadReport;
use crate::runtime::{AnswerSize, PluginRuntime};
use crate::sandbox::{CallPolicy, LogContext, SandboxState};
use async_trait::async_trait;
use occopus_types::{
    CallError, ConfigManager, ConfigManagerInfo, ConfigNodeFacts, ConfigState, ConfigTarget,
    ContractErrorKind, InfraFacts,
};
use std::fmt;
use std::sync::Arc;
use wasmtime::Store;

/// A loaded config manager. Cheap to clone; calls may run concurrently, each
/// in its own sandbox.
#[derive(Clone)]
pub struct ConfigManagerPlugin {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: PluginRuntime,
    pre: ConfigManagerPluginPre<SandboxState>,
    info: ConfigManagerInfo,
    policy: CallPolicy,
    report: LoadReport,
}

type Map = serde_json::Map<String, serde_json::Value>;

impl ConfigManagerPlugin {
    /// A config manager that described itself as `info`; its calls run under
    /// `policy` plus each call's endpoint.
    pub(crate) fn new(
        runtime: PluginRuntime,
        pre: ConfigManagerPluginPre<SandboxState>,
        info: config_manager_api::ConfigManagerInfo,
        policy: CallPolicy,
        report: LoadReport,
    ) -> Self {
        ConfigManagerPlugin {
            inner: Arc::new(Inner {
                runtime,
                pre,
                info: info.into(),
                policy,
                report,
            }),
        }
    }

    /// What the config manager says about itself.
    pub fn info(&self) -> &ConfigManagerInfo {
        &self.inner.info
    }

    /// How it was loaded.
    pub fn load_report(&self) -> &LoadReport {
        &self.inner.report
    }

    pub(crate) fn base_policy(&self) -> &CallPolicy {
        &self.inner.policy
    }

    /// Runs one call in a fresh sandbox that may reach the section's
    /// endpoint, with the section's credentials masked in its log.
    async fn invoke<R: AnswerSize>(
        &self,
        operation: &'static str,
        target: &ConfigTarget,
        subject: &str,
        call: impl AsyncFnOnce(
            &config_manager_api::Guest,
            &mut Store<SandboxState>,
            &config_manager_api::Target,
        ) -> wasmtime::Result<Result<R, PluginError>>,
    ) -> Result<R, RuntimeError> {
        let mut policy = self.inner.policy.clone();
        if let Some(endpoint) = &target.endpoint {
            policy.allow_list = Arc::new(policy.allow_list.with_endpoint(endpoint));
        }
        let log = LogContext {
            plugin: self.inner.info.name.as_str().into(),
            subject: Some(subject.to_owned()),
            secrets: target.credentials.values().map(str::to_owned).collect(),
            session: None,
        };
        let contract = config_manager_api::Target::from(target);
        let pre = &self.inner.pre;
        self.inner
            .runtime
            .run(operation, &policy, log, async |store| {
                let bindings = pre.instantiate_async(&mut *store).await?;
                call(bindings.occopus_plugin_config_manager(), store, &contract).await
            })
            .await
    }
}

impl ConfigManagerPlugin {
    /// A call about one node: its facts in the contract's form, the node
    /// instance as the log's subject.
    async fn on_node<R: AnswerSize>(
        &self,
        operation: &'static str,
        target: &ConfigTarget,
        node: &ConfigNodeFacts,
        call: impl AsyncFnOnce(
            &config_manager_api::Guest,
            &mut Store<SandboxState>,
            &config_manager_api::Target,
            &config_manager_api::NodeFacts,
        ) -> wasmtime::Result<Result<R, PluginError>>,
    ) -> Result<R, CallError> {
        let facts = config_manager_api::NodeFacts::from(node);
        let subject = &node.instance_id;
        Ok(self
            .invoke(operation, target, subject, async |cm, store, t| {
                call(cm, store, t, &facts).await
            })
            .await?)
    }

    /// A call about an infrastructure, its id as the log's subject.
    async fn on_infra(
        &self,
        operation: &'static str,
        target: &ConfigTarget,
        infra: &InfraFacts,
        call: impl AsyncFnOnce(
            &config_manager_api::Guest,
            &mut Store<SandboxState>,
            &config_manager_api::Target,
            &config_manager_api::InfraFacts,
        ) -> wasmtime::Result<Result<(), PluginError>>,
    ) -> Result<(), CallError> {
        let facts = config_manager_api::InfraFacts::from(infra);
        Ok(self
            .invoke(operation, target, &infra.infra_id, async |cm, store, t| {
                call(cm, store, t, &facts).await
            })
            .await?)
    }
}

#[async_trait]
impl ConfigManager for ConfigManagerPlugin {
    fn info(&self) -> &ConfigManagerInfo {
        ConfigManagerPlugin::info(self)
    }

    async fn prepare_infra(
        &self,
        target: &ConfigTarget,
        infra: &InfraFacts,
    ) -> Result<(), CallError> {
        self.on_infra("prepare-infra", target, infra, async |cm, store, t, f| {
            cm.call_prepare_infra(store, t, f).await
        })
        .await
    }

    async fn resolve_attributes(
        &self,
        target: &ConfigTarget,
        node: &ConfigNodeFacts,
    ) -> Result<Map, CallError> {
        let json = self
            .on_node(
                "resolve-attributes",
                target,
                node,
                async |cm, store, t, f| cm.call_resolve_attributes(store, t, f).await,
            )
            .await?;
        match serde_json::from_str(&json) {
            Ok(serde_json::Value::Object(names)) => Ok(names),
            _ => Err(CallError::plugin(
                ContractErrorKind::Internal,
                format!(
                    "config manager `{}` resolved the attributes of node `{}` into something \
                     other than a JSON object; report this to the plugin's author",
                    self.inner.info.name, node.node_name
                ),
            )),
        }
    }

    async fn register_node(
        &self,
        target: &ConfigTarget,
        node: &ConfigNodeFacts,
    ) -> Result<(), CallError> {
        self.on_node("register-node", target, node, async |cm, store, t, f| {
            cm.call_register_node(store, t, f).await
        })
        .await
    }

    async fn node_state(
        &self,
        target: &ConfigTarget,
        node: &ConfigNodeFacts,
    ) -> Result<ConfigState, CallError> {
        self.on_node("node-state", target, node, async |cm, store, t, f| {
            cm.call_node_state(store, t, f).await
        })
        .await
        .map(ConfigState::from)
    }

    async fn drop_node(
        &self,
        target: &ConfigTarget,
        node: &ConfigNodeFacts,
    ) -> Result<(), CallError> {
        self.on_node("drop-node", target, node, async |cm, store, t, f| {
            cm.call_drop_node(store, t, f).await
        })
        .await
    }

    async fn drop_infra(&self, target: &ConfigTarget, infra: &InfraFacts) -> Result<(), CallError> {
        self.on_infra("drop-infra", target, infra, async |cm, store, t, f| {
            cm.call_drop_infra(store, t, f).await
        })
        .await
    }
}

impl fmt::Debug for ConfigManagerPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigManagerPlugin")
            .field("name", &self.inner.info.name)
            .field("version", &self.inner.info.version)
            .field("origin", &self.inner.report.origin)
            .finish()
    }
}
