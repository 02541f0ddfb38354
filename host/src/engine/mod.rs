//! The engine: builds and destroys infrastructures through the driver plugins,
//! recording every step in the [`Store`].
//!
//! - [`build`]: a graph of node instances, each created the moment every node
//!   it depends on is ready (no waves), resumable after a crash;
//! - [`destroy`]: dependents first, including instances only the cloud knows;
//! - [`maintain`]: reconcile passes: observe, heal, scale;
//! - [`plan`]: what bringing an infra in line with a description changes;
//! - this module: the [`Orchestrator`] that owns the plugins, the store, the
//!   per-endpoint concurrency limits and the progress events.

pub mod build;
pub mod destroy;
pub mod maintain;
pub mod plan;
mod polling;
mod targets;

pub use build::{BuildOptions, BuildReport, InstanceOutcome};
pub use destroy::DestroyReport;
pub use maintain::PassReport;
pub use plan::{Action, Change, Plan};

use crate::config::EngineConfig;
use crate::health::HealthChecker;
use crate::model::Diagnostics;
use crate::plugin::PluginCatalog;
use crate::store::{Store, StoreError};
use crate::template::Renderer;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, broadcast, watch};

/// Errors of the engine as a whole (a node's own failure is in the report).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the files have problems:\n{0}")]
    Invalid(Diagnostics),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no infrastructure `{0}` in the state database; see `occopus info` for the known ones")]
    UnknownInfra(String),
    #[error(
        "infrastructure `{0}` was built by an older occopus that did not store its description; run `occopus build` on it once more"
    )]
    NoDescription(String),
    #[error("{0}")]
    Scale(String),
    #[error("cannot start the local cloud: {0}")]
    LocalCloud(String),
}

/// A progress event of a build or destroy.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Event {
    /// When, ms since the epoch.
    pub time_ms: i64,
    /// The infra.
    pub infra_id: String,
    /// The node.
    pub node: String,
    /// The instance.
    pub instance_id: String,
    /// What the instance is doing now.
    pub phase: Phase,
    /// More words (an error, the addresses, ...).
    pub detail: Option<String>,
}

/// The phases an instance goes through, as shown to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Waiting for the nodes it depends on.
    Waiting,
    /// The create call is under way.
    Creating,
    /// Created; the cloud reports it booting.
    Pending,
    /// Running; health checks not passed yet.
    Checking,
    /// Running and healthy.
    Ready,
    /// Failed; see the detail.
    Failed,
    /// Not started or stopped waiting, because the run was stopped.
    Stopped,
    /// Being destroyed.
    Destroying,
    /// Gone.
    Destroyed,
}

impl Phase {
    /// The phase's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Waiting => "waiting",
            Phase::Creating => "creating",
            Phase::Pending => "pending",
            Phase::Checking => "checking",
            Phase::Ready => "ready",
            Phase::Failed => "failed",
            Phase::Stopped => "stopped",
            Phase::Destroying => "destroying",
            Phase::Destroyed => "destroyed",
        }
    }
}

/// Asks a running build or destroy to stop: no new cloud calls start, calls
/// under way finish and are recorded.
#[derive(Debug, Clone)]
pub struct StopHandle(Arc<watch::Sender<bool>>);

/// The receiving side of a [`StopHandle`].
#[derive(Debug, Clone)]
pub struct StopSignal(watch::Receiver<bool>);

impl StopHandle {
    /// A new handle and its signal.
    pub fn new() -> (StopHandle, StopSignal) {
        let (sender, receiver) = watch::channel(false);
        (StopHandle(Arc::new(sender)), StopSignal(receiver))
    }

    /// Asks to stop.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

impl StopSignal {
    /// A signal that never fires.
    pub fn never() -> StopSignal {
        StopHandle::new().1
    }

    /// Whether a stop was asked for.
    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once a stop is asked for (never, if the handle is gone
    /// without asking).
    pub async fn stopped(&mut self) {
        if self.0.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Builds and destroys infrastructures. Cheap to clone.
#[derive(Clone)]
pub struct Orchestrator {
    inner: Arc<Inner>,
}

struct Inner {
    catalog: Arc<PluginCatalog>,
    store: Arc<Store>,
    config: EngineConfig,
    renderer: Renderer,
    health: HealthChecker,
    targets: targets::Targets,
    limits: Mutex<HashMap<String, Arc<Semaphore>>>,
    boot_estimates: polling::BootEstimates,
    events: broadcast::Sender<Event>,
}

impl Orchestrator {
    /// An orchestrator over these plugins and this store. `renderer` decides
    /// whether templates may run commands; `local_cloud` is where the local
    /// cloud lives when a `local` resource names no endpoint.
    pub fn new(
        catalog: Arc<PluginCatalog>,
        store: Arc<Store>,
        config: EngineConfig,
        renderer: Renderer,
        local_cloud: Option<crate::local_cloud::LocalCloudSettings>,
    ) -> Self {
        Orchestrator {
            inner: Arc::new(Inner {
                catalog,
                store,
                config,
                renderer,
                health: HealthChecker::default(),
                targets: targets::Targets::new(local_cloud),
                limits: Mutex::new(HashMap::new()),
                boot_estimates: polling::BootEstimates::default(),
                events: broadcast::channel(8192).0,
            }),
        }
    }

    /// Progress events of every build and destroy from now on. A receiver that
    /// falls more than 8192 events behind misses the oldest.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// The state store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The plugins.
    pub fn catalog(&self) -> &PluginCatalog {
        &self.inner.catalog
    }

    /// Sends a progress event (what is worth keeping is logged by the store
    /// with the state change itself).
    fn emit(
        &self,
        infra_id: &str,
        node: &str,
        instance_id: &str,
        phase: Phase,
        detail: Option<String>,
    ) {
        let _ = self.inner.events.send(Event {
            time_ms: crate::store::now_ms(),
            infra_id: infra_id.to_string(),
            node: node.to_string(),
            instance_id: instance_id.to_string(),
            phase,
            detail,
        });
    }

    /// The concurrency limit of one driver endpoint.
    fn endpoint_limit(&self, driver: &str, endpoint: Option<&str>) -> Arc<Semaphore> {
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
    async fn with_retries<T, F>(
        &self,
        mut call: impl FnMut() -> F,
    ) -> Result<T, crate::plugin::RuntimeError>
    where
        F: Future<Output = Result<T, crate::plugin::RuntimeError>>,
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
