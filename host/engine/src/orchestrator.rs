//! The [`Orchestrator`]: what every operation of the engine shares (the
//! plugins, the store, the health prober, the endpoint resolver, the
//! per-endpoint concurrency limits, the progress events), and the few steps
//! they all take: resolving a resource into a cloud target, calling a cloud
//! with retries, and asking an instance's state (batched where the driver
//! can).

use crate::config::EngineConfig;
use crate::endpoints::EndpointResolver;
use crate::error::{EngineError, TargetError};
use crate::events::{Event, Phase};
use crate::polling::{BootEstimates, PollGrid};
use crate::status_batches::{Poll, StatusBatches};
use occopus_health::Prober;
use occopus_model::{AuthData, Renderer};
use occopus_store::{InfraRecord, StateStore};
use occopus_types::{
    AmbientCredentials, CallError, CloudTarget, InstanceStatus, Plugins, ResourceSection, now_ms,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, broadcast};

/// Builds, maintains and destroys infrastructures. Cheap to clone.
#[derive(Clone)]
pub struct Orchestrator {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) plugins: Arc<dyn Plugins>,
    pub(crate) store: Arc<StateStore>,
    pub(crate) config: EngineConfig,
    pub(crate) renderer: Renderer,
    pub(crate) prober: Arc<dyn Prober>,
    endpoints: Arc<dyn EndpointResolver>,
    ambient_credentials: AmbientCredentials,
    limits: Mutex<HashMap<String, Arc<Semaphore>>>,
    pub(crate) boot_estimates: BootEstimates,
    pub(crate) poll_grid: PollGrid,
    status_batches: StatusBatches,
    events: broadcast::Sender<Event>,
}

/// What an orchestrator is made of: the plugins it calls clouds through, the
/// store it records every step in, how it checks health, and who provides
/// endpoints for resources that name none.
pub struct Wiring {
    /// The installed plugins.
    pub plugins: Arc<dyn Plugins>,
    /// The state database.
    pub store: Arc<StateStore>,
    /// Runs health checks.
    pub prober: Arc<dyn Prober>,
    /// Provides missing endpoints.
    pub endpoints: Arc<dyn EndpointResolver>,
    /// Credentials a resource gets when the credentials file has none for
    /// it (the environment's).
    pub ambient_credentials: AmbientCredentials,
}

impl Orchestrator {
    /// An orchestrator over `wiring`; `renderer` decides whether templates
    /// may run commands.
    pub fn new(wiring: Wiring, config: EngineConfig, renderer: Renderer) -> Self {
        Orchestrator {
            inner: Arc::new(Inner {
                plugins: wiring.plugins,
                store: wiring.store,
                prober: wiring.prober,
                endpoints: wiring.endpoints,
                ambient_credentials: wiring.ambient_credentials,
                config,
                renderer,
                limits: Mutex::new(HashMap::new()),
                boot_estimates: BootEstimates::default(),
                poll_grid: PollGrid::default(),
                status_batches: StatusBatches::default(),
                events: broadcast::channel(8192).0,
            }),
        }
    }

    /// Progress events of every operation from now on. A receiver that falls
    /// more than 8192 events behind misses the oldest.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// The state store.
    pub fn store(&self) -> &StateStore {
        &self.inner.store
    }

    /// The plugins.
    pub fn plugins(&self) -> &dyn Plugins {
        &*self.inner.plugins
    }

    /// An instance's state, as its cloud reports it: asked with the other
    /// instances of its target whose poll is due when the driver answers
    /// for many at once (see `status_batches.rs`).
    pub(crate) async fn instance_status(
        &self,
        poll: &Poll<'_>,
        cloud_id: &str,
    ) -> Result<InstanceStatus, CallError> {
        self.inner.status_batches.status(poll, cloud_id).await
    }

    /// The record of `infra_id`, or why there is none.
    pub(crate) fn recorded_infra(&self, infra_id: &str) -> Result<InfraRecord, EngineError> {
        recorded_infra(&self.inner.store, infra_id)
    }

    /// Sends a progress event (what is worth keeping is logged by the store
    /// with the state change itself).
    pub(crate) fn emit(
        &self,
        infra_id: &str,
        node: &str,
        instance_id: &str,
        phase: Phase,
        detail: Option<String>,
    ) {
        let _ = self.inner.events.send(Event {
            time_ms: now_ms(),
            infra_id: infra_id.to_string(),
            node: node.to_string(),
            instance_id: instance_id.to_string(),
            phase,
            detail,
        });
    }

    /// The target of a call on `resource` (as stored: without a provided
    /// endpoint): the credentials selected for it (the environment's for its
    /// type when the credentials file has none for it), and the endpoint
    /// this process provides when the section names none.
    pub(crate) async fn target(
        &self,
        resource: &ResourceSection,
        auth: &AuthData,
    ) -> Result<CloudTarget, TargetError> {
        let mut credentials = auth.select(resource)?;
        if credentials.is_empty()
            && let Some(resource_type) = resource.get("type").and_then(|t| t.as_str())
            && let Some((ambient, source)) = self.inner.ambient_credentials.for_type(resource_type)
        {
            tracing::debug!(
                resource_type,
                source,
                "no auth_data entry applies: credentials from the environment"
            );
            credentials = ambient.clone();
        }
        let mut resource = resource.clone();
        if !resource.contains_key("endpoint")
            && let Some(endpoint) = self.inner.endpoints.endpoint(&resource).await?
        {
            resource.insert("endpoint".into(), endpoint.into());
        }
        Ok(CloudTarget {
            resource,
            credentials,
        })
    }

    /// The concurrency limit of one driver endpoint.
    pub(crate) fn endpoint_limit(&self, driver: &str, endpoint: Option<&str>) -> Arc<Semaphore> {
        let key = format!("{driver} {}", endpoint.unwrap_or(""));
        let mut limits = self
            .inner
            .limits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        limits
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Semaphore::new(
                    self.inner.config.max_concurrent_per_endpoint.max(1),
                ))
            })
            .clone()
    }

    /// Runs a cloud call, retrying transient errors with exponential backoff
    /// (0.5 s doubling to 10 s) up to the configured attempts.
    pub(crate) async fn with_retries<T, F>(
        &self,
        mut call: impl FnMut() -> F,
    ) -> Result<T, CallError>
    where
        F: Future<Output = Result<T, CallError>>,
    {
        let mut delay = Duration::from_millis(500);
        let mut attempt = 1;
        loop {
            match call().await {
                Err(error) if error.is_transient() && attempt < self.inner.config.call_attempts => {
                    tracing::info!(%error, attempt, "transient cloud error; retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                    attempt += 1;
                }
                result => return result,
            }
        }
    }
}

/// The record of `infra_id` in `store`, or why there is none.
pub fn recorded_infra(store: &StateStore, infra_id: &str) -> Result<InfraRecord, EngineError> {
    store
        .infra(infra_id)?
        .ok_or_else(|| EngineError::UnknownInfra(infra_id.to_string()))
}
