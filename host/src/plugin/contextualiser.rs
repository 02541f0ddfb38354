//! Calling a contextualiser plugin.

use super::bindings::contextualiser::ContextualiserPluginPre;
use super::error::RuntimeError;
use super::runtime::{LoadReport, PluginRuntime};
use super::sandbox::{CallPolicy, LogContext, SandboxState};
use super::types::Payload;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

pub use super::bindings::contextualiser_api::{ContextualiserInfo, NodeFacts};

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
    pub(super) async fn describe_new(
        runtime: PluginRuntime,
        pre: ContextualiserPluginPre<SandboxState>,
        mut report: LoadReport,
        started: Instant,
    ) -> Result<Self, RuntimeError> {
        let general = runtime.base_policy("")?;
        let log = LogContext {
            plugin: report.origin.to_string().into(),
            subject: None,
            secrets: Vec::new(),
        };
        let info = runtime
            .run("describe", &general, log, async |store| {
                let bindings = pre.instantiate_async(&mut *store).await?;
                Ok(Ok(bindings
                    .occopus_plugin_contextualiser()
                    .call_describe(&mut *store)
                    .await?))
            })
            .await?;
        let mut policy = runtime.base_policy(&info.name)?;
        // A contextualiser may only log: no host is ever allowed.
        policy.allow_list = Arc::default();
        report.elapsed = started.elapsed();
        Ok(ContextualiserPlugin {
            inner: Arc::new(Inner {
                runtime,
                pre,
                info,
                policy,
                report,
            }),
        })
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
        section: &serde_json::Map<String, serde_json::Value>,
        facts: &NodeFacts,
    ) -> Result<Payload, RuntimeError> {
        let json = serde_json::Value::Object(section.clone()).to_string();
        let log = LogContext {
            plugin: self.inner.info.name.as_str().into(),
            subject: Some(facts.instance_id.clone()),
            secrets: Vec::new(),
        };
        let pre = &self.inner.pre;
        self.inner
            .runtime
            .run("contextualise", &self.inner.policy, log, async |store| {
                let bindings = pre.instantiate_async(&mut *store).await?;
                bindings
                    .occopus_plugin_contextualiser()
                    .call_contextualise(&mut *store, &json, facts)
                    .await
            })
            .await
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
