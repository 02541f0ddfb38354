//! The running service: the library, its settings, and its background jobs
//! (a build, a destroy or the maintenance loop of each infra it manages),
//! recorded in the store so that a restarted service resumes them.

use occopus::engine::{
    BuildOptions, DestroyOptions, EngineError, ErrorPolicy, LeasePolicy, StopHandle, StopSignal,
    Upkeep,
};
use occopus::model::Sources;
use occopus::model::yaml::Imports;
use occopus::{ApiError, Occopus};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

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

/// How a job of the service takes its infra's lease: it waits for another
/// holder (a command line run on the same state database) to end, however
/// long that takes; a holder that died is taken over at once.
fn job_lease(operation: &str) -> LeasePolicy {
    LeasePolicy {
        command: format!("occopus serve ({operation} job)"),
        wait: Duration::MAX,
    }
}

/// What a restarted service does with an infra: the description it was
/// posted with (empty: keep the stored one) and the operation to resume.
struct Resume<'a> {
    description: &'a str,
    operation: &'static str,
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

/// The name a posted document goes by in messages (`<posted description>`,
/// as compilers say `<stdin>`): it is no file. Its relative imports resolve
/// against the import directory.
pub(crate) fn posted_name(what: &str) -> PathBuf {
    PathBuf::from(format!("<{what}>"))
}

/// How one of the service's operations on an infra ended, for its event
/// streams (`events.rs`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// The infra.
    pub infra_id: String,
    /// `infra-built`, `infra-failed`, `infra-stopped`, `infra-destroyed` or
    /// `infra-destroy-failed`.
    pub event: &'static str,
    /// Why, when it did not go as asked.
    pub detail: Option<String>,
}

impl Outcome {
    /// Whether the infra is gone: nothing more will happen to it.
    pub(crate) fn is_last(&self) -> bool {
        self.event == "infra-destroyed"
    }
}

/// The running service: the library, its settings and its jobs.
pub struct Service {
    pub(crate) occopus: Occopus,
    pub(crate) settings: ServiceSettings,
    jobs: Mutex<HashMap<String, Job>>,
    /// How the jobs ended, for the event streams.
    outcomes: broadcast::Sender<Outcome>,
}

impl Service {
    /// A service over an open occopus.
    pub fn new(occopus: Occopus, settings: ServiceSettings) -> Arc<Service> {
        Arc::new(Service {
            occopus,
            settings,
            jobs: Mutex::new(HashMap::new()),
            outcomes: broadcast::channel(256).0,
        })
    }

    /// How the service's jobs end, from now on.
    pub(crate) fn outcomes(&self) -> broadcast::Receiver<Outcome> {
        self.outcomes.subscribe()
    }

    /// Tells the event streams how a job on `infra_id` ended.
    fn tell(&self, infra_id: &str, event: &'static str, detail: Option<String>) {
        // No stream listening is no error.
        let _ = self.outcomes.send(Outcome {
            infra_id: infra_id.to_string(),
            event,
            detail,
        });
    }

    /// Whether `infra_id` is gone: no job of this service and no record.
    pub(crate) fn is_gone(&self, infra_id: &str) -> bool {
        let store = self.occopus.orchestrator().store();
        self.operation(infra_id).is_none() && matches!(store.infra(infra_id), Ok(None))
    }

    /// The sources of a posted description: its imports confined to the
    /// operator's directory (or refused), the service's credentials.
    pub(crate) fn posted_sources(&self, text: String) -> Sources {
        Sources {
            infra: posted_name("posted description"),
            infra_text: Some(text),
            imports: self.imports(),
            auth_data: self.settings.auth_data.clone(),
            ..Sources::default()
        }
    }

    /// What posted YAML may import: the operator's directory, else nothing.
    pub(crate) fn imports(&self) -> Imports {
        match &self.settings.import_dir {
            Some(dir) => Imports::Within(dir.as_path().into()),
            None => Imports::Nowhere,
        }
    }

    /// The operation under way on an infra, if any.
    pub(crate) fn operation(&self, infra_id: &str) -> Option<Operation> {
        self.jobs
            .lock()
            .ok()?
            .get(infra_id)
            .map(|job| job.operation)
    }

    /// Records a job for `infra_id`, stopping the one it replaces.
    fn start_job(
        &self,
        infra_id: &str,
        operation: Operation,
        resume_as: Option<Resume>,
    ) -> Running {
        self.replace_job(infra_id, operation, resume_as, |_| true)
            .expect("an unconditional replacement always happens")
    }

    /// Records a job for `infra_id` if the job there now passes `replaces`,
    /// stopping the one it replaces, and stores `resume_as` for a restart.
    /// All under the jobs' lock, so that neither another job nor another
    /// record slips in between (the record always names the running job).
    fn replace_job(
        &self,
        infra_id: &str,
        operation: Operation,
        resume_as: Option<Resume>,
        replaces: impl FnOnce(Option<Operation>) -> bool,
    ) -> Option<Running> {
        let (stop, signal) = StopHandle::new();
        let (finished_tx, finished) = tokio::sync::watch::channel(());
        let job = Job {
            operation,
            stop,
            finished,
        };
        let mut jobs = self
            .jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !replaces(jobs.get(infra_id).map(|j| j.operation)) {
            return None;
        }
        if let Some(Resume {
            description,
            operation,
        }) = resume_as
        {
            self.record(infra_id, description, operation);
        }
        let previous = jobs.insert(infra_id.to_owned(), job).map(|previous| {
            previous.stop.stop();
            previous.finished
        });
        Some(Running {
            stop: signal,
            _finished: finished_tx,
            previous,
        })
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
    pub(crate) fn spawn_build(self: &Arc<Self>, infra_id: String, description: String) {
        let sources = self.posted_sources(description.clone());
        let resume_as = Resume {
            description: &description,
            operation: "build",
        };
        let mut running = self.start_job(&infra_id, Operation::Building, Some(resume_as));
        let service = self.clone();
        tokio::spawn(async move {
            running.after_previous().await;
            let stop = running.stop.clone();
            let options = BuildOptions {
                infra_id: Some(infra_id.clone()),
                rollback: false,
                stop: stop.clone(),
                lease: job_lease("build"),
            };
            match service.occopus.build(&sources, options).await {
                Ok(report) if report.succeeded() => {
                    tracing::info!(infra = %infra_id, "built");
                    service.tell(&infra_id, "infra-built", None);
                }
                Ok(report) if report.stopped => service.tell(&infra_id, "infra-stopped", None),
                Ok(report) => {
                    tracing::warn!(infra = %infra_id, "built with failures; maintenance heals them");
                    let failed = report.failures().count();
                    let why = format!(
                        "{failed} of {} instances failed; maintenance heals them",
                        report.instances.len()
                    );
                    service.tell(&infra_id, "infra-failed", Some(why));
                }
                Err(error) => {
                    tracing::warn!(infra = %infra_id, %error, "build failed");
                    service.tell(&infra_id, "infra-failed", Some(error.to_string()));
                }
            }
            // Maintain it next, unless a delete replaced this build meanwhile
            // (checked and done under the jobs' lock: a delete that comes a
            // moment later replaces the maintenance instead).
            let resume_as = Resume {
                description: &description,
                operation: "maintain",
            };
            let handed_over =
                service.replace_job(&infra_id, Operation::Maintaining, Some(resume_as), |now| {
                    now == Some(Operation::Building) && !stop.is_stopped()
                });
            let Some(next) = handed_over else {
                return;
            };
            drop(running);
            service.spawn_maintenance_as(infra_id, next);
        });
    }

    /// Keeps `infra_id` alive: a maintenance pass every interval until
    /// stopped, with the engine's default error policy: a transient failure
    /// is retried, any other ends the maintenance (logged; the infra stays
    /// listed until it is deleted).
    fn spawn_maintenance(self: &Arc<Self>, infra_id: String) {
        let running = self.start_job(&infra_id, Operation::Maintaining, None);
        self.spawn_maintenance_as(infra_id, running);
    }

    /// The maintenance loop of `infra_id`, as the job `running`.
    fn spawn_maintenance_as(self: &Arc<Self>, infra_id: String, mut running: Running) {
        let service = self.clone();
        tokio::spawn(async move {
            running.after_previous().await;
            let upkeep = Upkeep {
                interval: service.settings.maintain_interval,
                policy: ErrorPolicy::default(),
                stop: running.stop.clone(),
                lease: job_lease("maintain"),
            };
            let ended = service
                .occopus
                .maintain(
                    &infra_id,
                    service.settings.auth_data.as_deref(),
                    upkeep,
                    |_| {},
                )
                .await;
            if let Err(error) = ended {
                tracing::error!(infra = %infra_id, %error, "maintenance ended");
                service.end_job(&infra_id, Operation::Maintaining);
            }
        });
    }

    /// Destroys `infra_id` in the background, after stopping its other job.
    pub(crate) fn spawn_destroy(self: &Arc<Self>, infra_id: String) {
        let resume_as = Resume {
            description: "",
            operation: "destroy",
        };
        let mut running = self.start_job(&infra_id, Operation::Destroying, Some(resume_as));
        let service = self.clone();
        tokio::spawn(async move {
            running.after_previous().await;
            let options = DestroyOptions {
                stop: running.stop.clone(),
                lease: job_lease("destroy"),
            };
            let auth = service.settings.auth_data.clone();
            match service
                .occopus
                .destroy(&infra_id, auth.as_deref(), options)
                .await
            {
                Ok(report) if !report.failed.is_empty() => {
                    let why = format!(
                        "{} instance(s) could not be destroyed and stay recorded; DELETE again",
                        report.failed.len()
                    );
                    tracing::warn!(infra = %infra_id, "{why}");
                    service.end_job(&infra_id, Operation::Destroying);
                    service.tell(&infra_id, "infra-destroy-failed", Some(why));
                }
                // Unknown: its build was stopped before it recorded anything.
                Ok(_) | Err(ApiError::Engine(EngineError::UnknownInfra(_))) => {
                    tracing::info!(infra = %infra_id, "destroyed");
                    let store = service.occopus.orchestrator().store();
                    if let Err(error) = store.forget_service_infra(&infra_id) {
                        tracing::error!(infra = %infra_id, %error, "cannot forget the infra");
                    }
                    service.end_job(&infra_id, Operation::Destroying);
                    service.tell(&infra_id, "infra-destroyed", None);
                }
                Err(error) => {
                    tracing::warn!(infra = %infra_id, %error, "destroy failed");
                    service.end_job(&infra_id, Operation::Destroying);
                    service.tell(&infra_id, "infra-destroy-failed", Some(error.to_string()));
                }
            }
        });
    }
}
