//! The REST service (`occopus serve`): Occopus's REST API over the library,
//! with real status codes, a bearer token and background operations.
//!
//! - [`routes`]: the paths (Occopus's own, plus validation and node
//!   definitions) and their handlers;
//! - [`error`]: the one JSON error shape every failure answers with;
//! - this module: the service's settings, its background jobs (a build, a
//!   destroy or the maintenance loop of each infra it manages), and `serve`.

mod error;
mod routes;

use crate::api::Occopus;
use crate::engine::{BuildOptions, StopHandle, StopSignal};
use crate::model::Sources;
use crate::model::yaml::Imports;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use error::HttpError;
pub use routes::router;

/// How the service runs.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// The bearer token every route but `/healthz` requires; `None` only on loopback.
    pub token: Option<String>,
    /// The credentials file of the clouds the service builds on.
    pub auth_data: Option<PathBuf>,
    /// The one directory posted descriptions may `!yaml_import` from; none: no imports.
    pub import_dir: Option<PathBuf>,
    /// The largest request body accepted.
    pub max_body_bytes: usize,
    /// The time between maintenance passes of each infra.
    pub maintain_interval: Duration,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        ServiceSettings {
            token: None,
            auth_data: None,
            import_dir: None,
            max_body_bytes: 1 << 20,
            maintain_interval: Duration::from_secs(10),
        }
    }
}

/// What the service is doing to an infra.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Building,
    Maintaining,
    Destroying,
}

struct Job {
    operation: Operation,
    stop: StopHandle,
    /// Closes when the job's task has ended (its sender is dropped).
    finished: tokio::sync::watch::Receiver<()>,
}

/// Held by a job's task; dropping it marks the job finished.
struct Running {
    stop: StopSignal,
    _finished: tokio::sync::watch::Sender<()>,
    /// The job this one replaced, asked to stop; wait for it before acting.
    previous: Option<tokio::sync::watch::Receiver<()>>,
}

impl Running {
    /// Waits until the replaced job's task has ended (its cloud calls done
    /// and recorded), so that two jobs never act on one infra at once.
    async fn after_previous(&mut self) {
        if let Some(previous) = &mut self.previous {
            while previous.changed().await.is_ok() {}
        }
    }
}

/// The running service: the library, its settings and its jobs.
pub struct Service {
    occopus: Occopus,
    settings: ServiceSettings,
    jobs: Mutex<HashMap<String, Job>>,
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "refusing to listen on {0} without a token: set OCCOPUS_API_TOKEN (or use a loopback address)"
    )]
    NoToken(SocketAddr),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
}

impl Service {
    /// A service over an open occopus.
    pub fn new(occopus: Occopus, settings: ServiceSettings) -> Arc<Service> {
        Arc::new(Service {
            occopus,
            settings,
            jobs: Mutex::new(HashMap::new()),
        })
    }

    /// The sources of a posted description: its imports confined to the
    /// operator's directory (or refused), the service's credentials.
    fn posted_sources(&self, text: String) -> Sources {
        // Named inside the import directory, so that its relative imports
        // resolve there.
        let infra = match &self.settings.import_dir {
            Some(dir) => dir.join("posted-description.yaml"),
            None => PathBuf::from("posted-description"),
        };
        Sources {
            infra,
            infra_text: Some(text),
            imports: self.imports(),
            auth_data: self.settings.auth_data.clone(),
            ..Sources::default()
        }
    }

    /// What posted YAML may import: the operator's directory, else nothing.
    fn imports(&self) -> Imports {
        match &self.settings.import_dir {
            Some(dir) => Imports::Within(dir.as_path().into()),
            None => Imports::Nowhere,
        }
    }

    /// The operation under way on an infra, if any.
    fn operation(&self, infra_id: &str) -> Option<Operation> {
        self.jobs
            .lock()
            .ok()?
            .get(infra_id)
            .map(|job| job.operation)
    }

    /// Records a job for `infra_id`, stopping the one it replaces.
    fn start_job(&self, infra_id: &str, operation: Operation) -> Running {
        let (stop, signal) = StopHandle::new();
        let (finished_tx, finished) = tokio::sync::watch::channel(());
        let job = Job {
            operation,
            stop,
            finished,
        };
        let previous = self
            .jobs
            .lock()
            .ok()
            .and_then(|mut jobs| jobs.insert(infra_id.to_owned(), job))
            .map(|previous| {
                previous.stop.stop();
                previous.finished
            });
        Running {
            stop: signal,
            _finished: finished_tx,
            previous,
        }
    }

    fn end_job(&self, infra_id: &str, operation: Operation) {
        if let Ok(mut jobs) = self.jobs.lock()
            && jobs.get(infra_id).is_some_and(|j| j.operation == operation)
        {
            jobs.remove(infra_id);
        }
    }

    /// Records what the service does to an infra, for a restart to resume.
    fn record(&self, infra_id: &str, description: &str, operation: &str) {
        let store = self.occopus.orchestrator().store();
        if let Err(error) = store.set_service_operation(infra_id, description, operation) {
            tracing::error!(infra = %infra_id, %error, "cannot record the service's operation");
        }
    }

    /// Picks up the infras a previous run of the service managed: resumes
    /// builds and destroys that were under way, maintains the others.
    pub fn resume(self: &Arc<Self>) {
        let managed = match self.occopus.orchestrator().store().service_infras() {
            Ok(managed) => managed,
            Err(error) => {
                tracing::error!(%error, "cannot read the infras to resume");
                return;
            }
        };
        for (infra_id, description, operation) in managed {
            tracing::info!(infra = %infra_id, %operation, "resuming");
            match operation.as_str() {
                "build" => self.spawn_build(infra_id, description),
                "destroy" => self.spawn_destroy(infra_id),
                _ => self.spawn_maintenance(infra_id),
            }
        }
    }

    /// Builds the posted `description` as `infra_id` in the background (or
    /// resumes that build), then maintains it.
    fn spawn_build(self: &Arc<Self>, infra_id: String, description: String) {
        self.record(&infra_id, &description, "build");
        let sources = self.posted_sources(description.clone());
        let mut running = self.start_job(&infra_id, Operation::Building);
        let service = self.clone();
        tokio::spawn(async move {
            running.after_previous().await;
            let stop = running.stop.clone();
            let options = BuildOptions {
                infra_id: Some(infra_id.clone()),
                rollback: false,
                stop: stop.clone(),
            };
            match service.occopus.build(&sources, options).await {
                Ok(report) if report.succeeded() => {
                    tracing::info!(infra = %infra_id, "built");
                }
                Ok(_) => {
                    tracing::warn!(infra = %infra_id, "built with failures; maintenance heals them")
                }
                Err(error) => tracing::warn!(infra = %infra_id, %error, "build failed"),
            }
            if stop.is_stopped() {
                return;
            }
            service.record(&infra_id, &description, "maintain");
            service.end_job(&infra_id, Operation::Building);
            drop(running);
            service.spawn_maintenance(infra_id);
        });
    }

    /// Keeps `infra_id` alive: a maintenance pass every interval until stopped.
    fn spawn_maintenance(self: &Arc<Self>, infra_id: String) {
        let mut running = self.start_job(&infra_id, Operation::Maintaining);
        let service = self.clone();
        tokio::spawn(async move {
            running.after_previous().await;
            let stop = running.stop.clone();
            let interval = service.settings.maintain_interval;
            let mut stopped = stop.clone();
            while !stop.is_stopped() {
                if let Err(error) = service
                    .occopus
                    .maintain_pass(
                        &infra_id,
                        service.settings.auth_data.as_deref(),
                        interval,
                        stop.clone(),
                    )
                    .await
                {
                    tracing::warn!(infra = %infra_id, %error, "maintenance pass failed");
                }
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    () = stopped.stopped() => {}
                }
            }
        });
    }

    /// Destroys `infra_id` in the background, after stopping its other job.
    fn spawn_destroy(self: &Arc<Self>, infra_id: String) {
        self.record(&infra_id, "", "destroy");
        let mut running = self.start_job(&infra_id, Operation::Destroying);
        let service = self.clone();
        tokio::spawn(async move {
            running.after_previous().await;
            let stop = running.stop.clone();
            let auth = service.settings.auth_data.clone();
            match service
                .occopus
                .destroy(&infra_id, auth.as_deref(), stop)
                .await
            {
                Ok(_) => {
                    tracing::info!(infra = %infra_id, "destroyed");
                    let store = service.occopus.orchestrator().store();
                    if let Err(error) = store.forget_service_infra(&infra_id) {
                        tracing::error!(infra = %infra_id, %error, "cannot forget the infra");
                    }
                }
                Err(error) => tracing::warn!(infra = %infra_id, %error, "destroy failed"),
            }
            service.end_job(&infra_id, Operation::Destroying);
        });
    }
}

/// Serves the API on `address` until `shutdown` completes; `bound` learns the
/// address actually bound (port 0 picks one).
pub async fn serve(
    service: Arc<Service>,
    address: SocketAddr,
    bound: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    if !address.ip().is_loopback() && service.settings.token.is_none() {
        return Err(ServeError::NoToken(address));
    }
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| ServeError::Bind { address, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { address, source })?;
    bound(local);
    service.resume();
    axum::serve(listener, router(service))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| ServeError::Bind { address, source })
}
