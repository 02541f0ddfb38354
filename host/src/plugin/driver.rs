//! Calling a cloud driver plugin.

use super::bindings::driver::DriverPluginPre;
use super::bindings::driver_api;
use super::bindings::types::PluginError;
use super::error::RuntimeError;
use super::runtime::{AnswerSize, LoadReport, PluginRuntime};
use super::sandbox::{CallPolicy, LogContext, SandboxState};
use super::unix_bridge;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::Store;

pub use super::bindings::driver_api::{
    DriverInfo, InstanceState, InstanceStatus, InstanceTags, ListedInstance,
};
pub use super::bindings::types::{ContainerSpec, KeyValue, Payload};

/// The `auth_data` selected for one resource. Its `Debug` never shows values,
/// and every value is masked in what the plugin logs or reports.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials(Vec<(String, String)>);

impl Credentials {
    /// Credentials from key/value pairs.
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Credentials(pairs.into_iter().collect())
    }

    fn to_contract(&self) -> Vec<KeyValue> {
        self.0
            .iter()
            .map(|(key, value)| KeyValue {
                key: key.clone(),
                value: value.clone(),
            })
            .collect()
    }

    fn secrets(&self) -> Vec<String> {
        self.0.iter().map(|(_, v)| v.clone()).collect()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&str> = self.0.iter().map(|(k, _)| k.as_str()).collect();
        write!(f, "Credentials({keys:?}, values hidden)")
    }
}

/// Where a driver call is aimed: a resource section and its credentials.
#[derive(Debug, Clone)]
pub struct Target {
    /// The node definition's `resource` section.
    pub resource: serde_json::Map<String, serde_json::Value>,
    /// The credentials selected for exactly this resource.
    pub credentials: Credentials,
}

impl Target {
    /// A target with no credentials.
    pub fn new(resource: serde_json::Map<String, serde_json::Value>) -> Self {
        Target {
            resource,
            credentials: Credentials::default(),
        }
    }

    fn endpoint(&self) -> Option<&str> {
        self.resource.get("endpoint").and_then(|e| e.as_str())
    }

    fn to_contract(&self) -> driver_api::Target {
        driver_api::Target {
            resource: serde_json::Value::Object(self.resource.clone()).to_string(),
            credentials: self.credentials.to_contract(),
        }
    }
}

/// What `create` needs.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    /// The node instance id: the idempotency key of the create.
    pub instance_id: String,
    /// Where to create it.
    pub target: Target,
    /// What the contextualiser produced.
    pub payload: Payload,
    /// The tags to put on the instance.
    pub tags: InstanceTags,
}

/// A loaded cloud driver. Cheap to clone; calls may run concurrently, each in
/// its own sandbox.
#[derive(Clone)]
pub struct DriverPlugin {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: PluginRuntime,
    pre: DriverPluginPre<SandboxState>,
    info: DriverInfo,
    policy: CallPolicy,
    report: LoadReport,
}

impl DriverPlugin {
    pub(super) async fn describe_new(
        runtime: PluginRuntime,
        pre: DriverPluginPre<SandboxState>,
        mut report: LoadReport,
        started: Instant,
    ) -> Result<Self, RuntimeError> {
        // Describe under the general policy; the plugin's own settings are
        // keyed by the name it gives.
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
                    .occopus_plugin_driver()
                    .call_describe(&mut *store)
                    .await?))
            })
            .await?;
        let policy = runtime.base_policy(&info.name)?;
        report.elapsed = started.elapsed();
        Ok(DriverPlugin {
            inner: Arc::new(Inner {
                runtime,
                pre,
                info,
                policy,
                report,
            }),
        })
    }

    /// What the driver says about itself.
    pub fn info(&self) -> &DriverInfo {
        &self.inner.info
    }

    /// How it was loaded.
    pub fn load_report(&self) -> &LoadReport {
        &self.inner.report
    }

    pub(super) fn base_policy(&self) -> &CallPolicy {
        &self.inner.policy
    }

    /// The policy of a call on `target`: its endpoint joins the allow-list.
    fn policy_for(&self, target: Option<&Target>) -> CallPolicy {
        let mut policy = self.inner.policy.clone();
        if let Some(endpoint) = target.and_then(Target::endpoint) {
            policy.allow_list = Arc::new(policy.allow_list.with_endpoint(endpoint));
            if policy.unix_endpoints {
                policy.unix_socket = unix_bridge::socket_path(endpoint).map(Arc::new);
            }
        }
        policy
    }

    fn log_context(&self, subject: Option<&str>, target: Option<&Target>) -> LogContext {
        LogContext {
            plugin: self.inner.info.name.as_str().into(),
            subject: subject.map(str::to_owned),
            secrets: target.map(|t| t.credentials.secrets()).unwrap_or_default(),
        }
    }

    /// Runs one call of the driver interface in a fresh sandbox whose policy
    /// and log context follow from `target`.
    async fn invoke<R: AnswerSize>(
        &self,
        operation: &'static str,
        target: Option<&Target>,
        subject: Option<&str>,
        call: impl AsyncFnOnce(
            &driver_api::Guest,
            &mut Store<SandboxState>,
        ) -> wasmtime::Result<Result<R, PluginError>>,
    ) -> Result<R, RuntimeError> {
        let pre = &self.inner.pre;
        self.inner
            .runtime
            .run(
                operation,
                &self.policy_for(target),
                self.log_context(subject, target),
                async |store| {
                    let bindings = pre.instantiate_async(&mut *store).await?;
                    call(bindings.occopus_plugin_driver(), store).await
                },
            )
            .await
    }

    /// Checks a resource section beyond its schema (no cloud call).
    pub async fn validate(
        &self,
        resource: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), RuntimeError> {
        let json = serde_json::Value::Object(resource.clone()).to_string();
        self.invoke("validate", None, None, async |driver, store| {
            driver.call_validate(store, &json).await
        })
        .await
    }

    /// Creates the instance (or finds the one made earlier with the same id)
    /// and returns its cloud id.
    pub async fn create(&self, request: &CreateRequest) -> Result<String, RuntimeError> {
        let contract = driver_api::CreateRequest {
            instance_id: request.instance_id.clone(),
            target: request.target.to_contract(),
            payload: request.payload.clone(),
            tags: request.tags.clone(),
        };
        let (target, subject) = (Some(&request.target), Some(request.instance_id.as_str()));
        self.invoke("create", target, subject, async |driver, store| {
            driver.call_create(store, &contract).await
        })
        .await
    }

    /// Reports an instance's state and addresses.
    pub async fn status(
        &self,
        target: &Target,
        cloud_id: &str,
    ) -> Result<InstanceStatus, RuntimeError> {
        let contract = target.to_contract();
        self.invoke(
            "status",
            Some(target),
            Some(cloud_id),
            async |driver, store| driver.call_status(store, &contract, cloud_id).await,
        )
        .await
    }

    /// Destroys an instance; one already gone counts as destroyed.
    pub async fn destroy(&self, target: &Target, cloud_id: &str) -> Result<(), RuntimeError> {
        let contract = target.to_contract();
        self.invoke(
            "destroy",
            Some(target),
            Some(cloud_id),
            async |driver, store| driver.call_destroy(store, &contract, cloud_id).await,
        )
        .await
    }

    /// Lists the instances tagged with an infra id.
    pub async fn list(
        &self,
        target: &Target,
        infra_id: &str,
    ) -> Result<Vec<ListedInstance>, RuntimeError> {
        let contract = target.to_contract();
        self.invoke(
            "list",
            Some(target),
            Some(infra_id),
            async |driver, store| driver.call_list(store, &contract, infra_id).await,
        )
        .await
    }
}

impl fmt::Debug for DriverPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DriverPlugin")
            .field("name", &self.inner.info.name)
            .field("version", &self.inner.info.version)
            .field("origin", &self.inner.report.origin)
            .finish()
    }
}
