//! Calling a contextualiser plugin.

use crate::bindings::contextualiser::ContextualiserPluginPre;
use crate::bindings::contextualiser_api;
use crate::error::RuntimeError;
use crate::provenance::LoadReport;
use crate::runtime::PluginRuntime;
use crate::sandbox::{CallPolicy, LogContext, SandboxState};
use async_trait::async_trait;
use occopus_types::{
    CallError, Contextualiser, ContextualiserInfo, NodeFacts, Payload, ResourceSection,
};
use std::fmt;
use std::sync::Arc;

/// A loaded contextualiser. Cheap to clone; calls may run concurrently.
#[derive(Clone)]
pub struct ContextualiserPlugin {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: PluginRuntime,
    pre: ContextualiserPluginPre<SandboxState>,
    info: ContextualiserInfo,
    policy: CallPolicy,
    report: LoadReport,
}

impl ContextualiserPlugin {
    /// A contextualiser that described itself as `info`; its calls run
    /// under `policy`.
    pub(crate) fn new(
        runtime: PluginRuntime,
        pre: ContextualiserPluginPre<SandboxState>,
        info: contextualiser_api::ContextualiserInfo,
        policy: CallPolicy,
        report: LoadReport,
    ) -> Self {
        ContextualiserPlugin {
            inner: Arc::new(Inner {
                runtime,
                pre,
                info: info.into(),
                policy,
                report,
            }),
        }
    }

    /// What the contextualiser says about itself.
    pub fn info(&self) -> &ContextualiserInfo {
        &self.inner.info
    }

    /// How it was loaded.
    pub fn load_report(&self) -> &LoadReport {
        &self.inner.report
    }

    /// Builds a node's payload from its rendered `contextualisation` section.
    pub async fn contextualise(
        &self,
        section: &ResourceSection,
        facts: &NodeFacts,
    ) -> Result<Payload, RuntimeError> {
        let json = serde_json::Value::Object(section.clone()).to_string();
        let contract_facts = contextualiser_api::NodeFacts::from(facts);
        let log = LogContext {
            plugin: self.inner.info.name.as_str().into(),
            subject: Some(facts.instance_id.clone()),
            secrets: Vec::new(),
            session: None,
        };
        let pre = &self.inner.pre;
        self.inner
            .runtime
            .run("contextualise", &self.inner.policy, log, async |store| {
                let bindings = pre.instantiate_async(&mut *store).await?;
                bindings
                    .occopus_plugin_contextualiser()
                    .call_contextualise(&mut *store, &json, &contract_facts)
                    .await
            })
            .await
            .map(Payload::from)
    }
}

#[async_trait]
impl Contextualiser for ContextualiserPlugin {
    fn info(&self) -> &ContextualiserInfo {
        ContextualiserPlugin::info(self)
    }

    async fn contextualise(
        &self,
        section: &ResourceSection,
        facts: &NodeFacts,
    ) -> Result<Payload, CallError> {
        Ok(ContextualiserPlugin::contextualise(self, section, facts).await?)
    }
}

impl fmt::Debug for ContextualiserPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextualiserPlugin")
            .field("name", &self.inner.info.name)
            .field("version", &self.inner.info.version)
            .field("origin", &self.inner.report.origin)
            .finish()
    }
}
