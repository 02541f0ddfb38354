//! Calling a cloud driver plugin.

use crate::bindings::driver::DriverPluginPre;
use crate::bindings::driver_api;
use crate::bindings::types::PluginError;
use crate::error::{ContractError, RuntimeError};
use crate::provenance::LoadReport;
use crate::runtime::{AnswerSize, PluginRuntime, contract_error};
use crate::sandbox::{CallPolicy, LogContext, SandboxState};
use crate::session::Sessions;
use crate::unix_bridge;
use async_trait::async_trait;
use occopus_types::{
    CallError, CloudTarget, ContractErrorKind, CreateRequest, Driver, DriverInfo, InstanceStatus,
    ListedInstance, ResourceSection,
};
use std::fmt;
use std::sync::Arc;
use wasmtime::Store;
use wasmtime::component::ComponentExportIndex;

/// What `status-batch.status-many` answers.
type StatusManyAnswer = Result<Vec<Result<driver_api::InstanceStatus, PluginError>>, PluginError>;

/// A loaded cloud driver. Cheap to clone; calls may run concurrently, each in
/// its own sandbox.
#[derive(Clone)]
pub struct DriverPlugin {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: PluginRuntime,
    pre: DriverPluginPre<SandboxState>,
    /// `status-batch.status-many`, if the driver exports it (0.1.3).
    status_many: Option<ComponentExportIndex>,
    info: DriverInfo,
    policy: CallPolicy,
    report: LoadReport,
    sessions: Sessions,
}

impl DriverPlugin {
    /// A driver that described itself as `info`; its calls run under `policy`
    /// plus each call's endpoint.
    pub(crate) fn new(
        runtime: PluginRuntime,
        pre: DriverPluginPre<SandboxState>,
        status_many: Option<ComponentExportIndex>,
        info: driver_api::DriverInfo,
        policy: CallPolicy,
        report: LoadReport,
    ) -> Self {
        DriverPlugin {
            inner: Arc::new(Inner {
                runtime,
                pre,
                status_many,
                info: info.into(),
                policy,
                report,
                sessions: Sessions::default(),
            }),
        }
    }

    /// What the driver says about itself.
    pub fn info(&self) -> &DriverInfo {
        &self.inner.info
    }

    /// How it was loaded.
    pub fn load_report(&self) -> &LoadReport {
        &self.inner.report
    }

    pub(crate) fn base_policy(&self) -> &CallPolicy {
        &self.inner.policy
    }

    /// The policy of a call on `target`: its endpoint joins the allow-list,
    /// and the call gets the session of its endpoint and credentials.
    fn policy_for(&self, target: Option<&CloudTarget>) -> CallPolicy {
        let mut policy = self.inner.policy.clone();
        policy.session = target.and_then(|t| self.inner.sessions.of(t));
        if let Some(endpoint) = target.and_then(CloudTarget::endpoint) {
            policy.allow_list = Arc::new(policy.allow_list.with_endpoint(endpoint));
            if policy.unix_endpoints {
                policy.unix_socket = unix_bridge::socket_path(endpoint).map(Arc::new);
            }
        }
        policy
    }

    fn log_context(&self, subject: Option<&str>, target: Option<&CloudTarget>) -> LogContext {
        LogContext {
            plugin: self.inner.info.name.as_str().into(),
            subject: subject.map(str::to_owned),
            secrets: target
                .map(|t| t.credentials.values().map(str::to_owned).collect())
                .unwrap_or_default(),
            session: None,
        }
    }

    /// Runs one call of the driver interface in a fresh sandbox whose policy
    /// and log context follow from `target`.
    async fn invoke<R: AnswerSize>(
        &self,
        operation: &'static str,
        target: Option<&CloudTarget>,
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

    /// Checks a resource section beyond its schema (no cloud call: the call
    /// runs with no endpoint on its allow-list).
    pub async fn validate(&self, resource: &ResourceSection) -> Result<(), RuntimeError> {
        let json = serde_json::Value::Object(resource.clone()).to_string();
        self.invoke("validate", None, None, async |driver, store| {
            driver.call_validate(store, &json).await
        })
        .await
    }

    /// Creates the instance (or finds the one made earlier with the same id)
    /// and returns its cloud id.
    pub async fn create(&self, request: &CreateRequest) -> Result<String, RuntimeError> {
        let contract = driver_api::CreateRequest::from(request);
        let (target, subject) = (Some(&request.target), Some(request.instance_id.as_str()));
        self.invoke("create", target, subject, async |driver, store| {
            driver.call_create(store, &contract).await
        })
        .await
    }

    /// Reports an instance's state and addresses.
    pub async fn status(
        &self,
        target: &CloudTarget,
        cloud_id: &str,
    ) -> Result<InstanceStatus, RuntimeError> {
        let contract = driver_api::Target::from(target);
        self.invoke(
            "status",
            Some(target),
            Some(cloud_id),
            async |driver, store| driver.call_status(store, &contract, cloud_id).await,
        )
        .await
        .map(InstanceStatus::from)
    }

    /// Whether the driver answers for many instances in one call.
    pub fn batches_status(&self) -> bool {
        self.inner.status_many.is_some()
    }

    /// The state of each of `cloud_ids` on `target`, in one sandboxed call
    /// of `status-batch.status-many` (an error if the driver does not
    /// export it); each answer's error is told as `status`'s would be.
    pub async fn status_many(
        &self,
        target: &CloudTarget,
        cloud_ids: &[String],
    ) -> Result<Vec<Result<InstanceStatus, RuntimeError>>, RuntimeError> {
        let Some(function) = &self.inner.status_many else {
            return Err(RuntimeError::Engine(format!(
                "driver {} does not export status-batch",
                self.inner.info.name
            )));
        };
        let contract = driver_api::Target::from(target);
        let ids = cloud_ids.to_vec();
        let pre = self.inner.pre.instance_pre();
        let answers = self
            .inner
            .runtime
            .run(
                "status",
                &self.policy_for(Some(target)),
                self.log_context(None, Some(target)),
                async |store| {
                    let instance = pre.instantiate_async(&mut *store).await?;
                    let status_many = instance
                        .get_typed_func::<(driver_api::Target, Vec<String>), (StatusManyAnswer,)>(
                            &mut *store,
                            function,
                        )?;
                    let (answer,) = status_many.call_async(&mut *store, (contract, ids)).await?;
                    Ok(answer)
                },
            )
            .await?;
        if answers.len() != cloud_ids.len() {
            return Err(RuntimeError::Plugin {
                plugin: self.inner.info.name.clone(),
                operation: "status",
                error: ContractError {
                    kind: ContractErrorKind::Internal,
                    message: format!(
                        "status-many answered {} states for {} instances",
                        answers.len(),
                        cloud_ids.len()
                    ),
                },
            });
        }
        let log = self.log_context(None, Some(target));
        Ok(answers
            .into_iter()
            .map(|answer| {
                answer
                    .map(InstanceStatus::from)
                    .map_err(|error| RuntimeError::Plugin {
                        plugin: self.inner.info.name.clone(),
                        operation: "status",
                        error: contract_error(error, &log),
                    })
            })
            .collect())
    }

    /// Destroys an instance; one already gone counts as destroyed.
    pub async fn destroy(&self, target: &CloudTarget, cloud_id: &str) -> Result<(), RuntimeError> {
        let contract = driver_api::Target::from(target);
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
        target: &CloudTarget,
        infra_id: &str,
    ) -> Result<Vec<ListedInstance>, RuntimeError> {
        let contract = driver_api::Target::from(target);
        let listed = self
            .invoke(
                "list",
                Some(target),
                Some(infra_id),
                async |driver, store| driver.call_list(store, &contract, infra_id).await,
            )
            .await?;
        Ok(listed.into_iter().map(ListedInstance::from).collect())
    }
}

#[async_trait]
impl Driver for DriverPlugin {
    fn info(&self) -> &DriverInfo {
        DriverPlugin::info(self)
    }

    async fn validate(&self, resource: &ResourceSection) -> Result<(), CallError> {
        Ok(DriverPlugin::validate(self, resource).await?)
    }

    async fn create(&self, request: &CreateRequest) -> Result<String, CallError> {
        Ok(DriverPlugin::create(self, request).await?)
    }

    async fn status(
        &self,
        target: &CloudTarget,
        cloud_id: &str,
    ) -> Result<InstanceStatus, CallError> {
        Ok(DriverPlugin::status(self, target, cloud_id).await?)
    }

    fn batches_status(&self) -> bool {
        DriverPlugin::batches_status(self)
    }

    async fn status_many(
        &self,
        target: &CloudTarget,
        cloud_ids: &[String],
    ) -> Result<Vec<Result<InstanceStatus, CallError>>, CallError> {
        let answers = DriverPlugin::status_many(self, target, cloud_ids).await?;
        Ok(answers
            .into_iter()
            .map(|answer| answer.map_err(CallError::from))
            .collect())
    }

    async fn destroy(&self, target: &CloudTarget, cloud_id: &str) -> Result<(), CallError> {
        Ok(DriverPlugin::destroy(self, target, cloud_id).await?)
    }

    async fn list(
        &self,
        target: &CloudTarget,
        infra_id: &str,
    ) -> Result<Vec<ListedInstance>, CallError> {
        Ok(DriverPlugin::list(self, target, infra_id).await?)
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
