//! The running service: the library, its settings, and its background jobs
//! (a build, a destroy or the maintenance loop of each infra it manages).
//!
//! What the service is asked to do to an infra is recorded in the store
//! (`service_infras`, with a revision per request), not kept here: several
//! replicas of the service may share one database, and a restarted one
//! resumes from it. A replica runs an infra's job only while it holds the
//! infra's lease, which makes the work of each infra run on exactly one
//! replica at a time. A request reaching any replica is recorded there; the
//! replica holding the lease (or, if none does, whichever takes it) replaces
//! its job by the one the newest revision asks for: at once when the request
//! reached it, else at its next claim pass ([`Service::claim`], every
//! [`ServiceSettings::claim_interval`]). The same pass picks up the infras
//! of a replica that died, once its lease is dead or expired, and the
//! engine resumes them from their recorded intents.

use occopus::engine::{
    BuildOptions, DestroyOptions, EngineError, ErrorPolicy, LeasePolicy, StopHandle, StopSignal,
    Upkeep,
};
use occopus::model::Sources;
use occopus::model::yaml::Imports;
use occopus::store::{Liveness, ServiceOperation, ServiceRecord, StateStore};
use occopus::types::now_ms;
use occopus::{ApiError, Occopus};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use std::collections::{HashMap, HashSet};
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
    /// The time between claim passes: looks for requests other replicas
    /// recorded and for infras whose lease holder is gone.
    pub claim_interval: Duration,
    /// How long a stopping service waits for its jobs' calls under way to
    /// finish and be recorded; a job still running then is left to the next
    /// start (its intents are recorded, so it resumes).
    pub drain_timeout: Duration,
    /// Whether `GET /metrics` answers without the bearer token (for a
    /// scraper on a trusted network).
    pub metrics_public: bool,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        ServiceSettings {
            token: None,
            auth_data: None,
            import_dir: None,
            max_body_bytes: 1 << 20,
            maintain_interval: Duration::from_secs(10),
            claim_interval: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(20),
            metrics_public: false,
        }
    }
}

/// How a job of the service takes its infra's lease: at once or not at
/// all. A lease held elsewhere (another replica, a command line) is looked
/// at again by the next claim pass, so no task of this replica waits on one.
fn job_lease(operation: &str) -> LeasePolicy {
    LeasePolicy::no_wait(format!("occopus serve ({operation} job)"))
}

/// Whether a job ended because its infra is someone else's to change: its
/// lease was held (by another replica or a command line) or lost to another
/// holder. That one does the work; this replica says nothing of it.
fn done_elsewhere(error: &ApiError) -> bool {
    matches!(
        error,
        ApiError::Engine(EngineError::Held { .. } | EngineError::LeaseLost { .. })
    )
}

/// What this replica runs for an infra: a revision of its record.
struct Job {
    revision: i64,
    operation: ServiceOperation,
    stop: StopHandle,
    /// Closes when the job's task has ended (its sender is dropped).
    finished: tokio::sync::watch::Receiver<()>,
}

/// Held by a job's task; dropping it marks the job finished.
struct Running {
    /// The record whose revision the job does.
    record: ServiceRecord,
    stop: StopSignal,
    _finished: tokio::sync::watch::Sender<()>,
    /// The job this one replaced, asked to stop; wait for it before acting.
    previous: Option<tokio::sync::watch::Receiver<()>>,
}

impl Running {
    /// Waits until the replaced job's task has ended (its cloud calls done
    /// and recorded, its lease given back), so that two jobs never act on
    /// one infra at once.
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
    /// This replica's jobs, by infra id.
    jobs: Mutex<HashMap<String, Job>>,
    /// The infras' reports and their list, as last rendered (see `cache.rs`).
    pub(crate) rendered: crate::cache::Rendered,
    /// The event streams' channels (see `fanout.rs`).
    pub(crate) fanout: Arc<crate::fanout::Fanout>,
    /// How the jobs ended, for the event streams.
    outcomes: broadcast::Sender<Outcome>,
    /// Set when the service is stopping: no job starts, every job is asked
    /// to stop, the event streams end.
    closing: tokio::sync::watch::Sender<bool>,
    /// This replica's maintenance passes' durations, in seconds (shown by
    /// `/metrics`).
    pub(crate) maintenance_passes: Histogram,
}

impl Service {
    /// A service over an open occopus.
    pub fn new(occopus: Occopus, settings: ServiceSettings) -> Arc<Service> {
        Arc::new(Service {
            occopus,
            settings,
            jobs: Mutex::new(HashMap::new()),
            rendered: crate::cache::Rendered::default(),
            fanout: Arc::default(),
            outcomes: broadcast::channel(256).0,
            closing: tokio::sync::watch::channel(false).0,
            // 10 ms to about 40 s, by fours.
            maintenance_passes: Histogram::new(exponential_buckets(0.01, 4.0, 7)),
        })
    }

    /// The operation of each job this replica runs.
    pub(crate) fn job_operations(&self) -> Vec<&'static str> {
        self.lock_jobs()
            .values()
            .map(|job| job.operation.as_str())
            .collect()
    }

    /// Stops the service's work: no job starts from now on and every job
    /// is asked to stop (calls under way finish and are recorded; the
    /// records keep their operations, so the next start resumes them); the
    /// event streams end. Wait for the jobs with [`Service::drained`].
    pub fn close(&self) {
        self.closing.send_replace(true);
        for job in self.lock_jobs().values() {
            job.stop.stop();
        }
    }

    /// Waits at most `bound` for the jobs of a closed service to end;
    /// returns how many were still running then.
    pub async fn drained(&self, bound: Duration) -> usize {
        let mut running: Vec<_> = self
            .lock_jobs()
            .values()
            .map(|job| job.finished.clone())
            .collect();
        // A job's task ends by dropping the sender its receiver watches
        // (nothing is ever sent: `changed` fails when it is dropped).
        let all = futures::future::join_all(running.iter_mut().map(|finished| finished.changed()));
        let _ = tokio::time::timeout(bound, all).await;
        running
            .iter()
            .filter(|finished| finished.has_changed().is_ok())
            .count()
    }

    /// Whether the service is stopping (see [`Service::close`]).
    pub(crate) fn closing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.closing.subscribe()
    }

    fn lock_jobs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Job>> {
        self.jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn store(&self) -> &StateStore {
        self.occopus.orchestrator().store()
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

    /// Whether `infra_id` is gone: not managed and not recorded.
    pub(crate) fn is_gone(&self, infra_id: &str) -> bool {
        matches!(self.operation(infra_id), Ok(None))
            && matches!(self.store().infra(infra_id), Ok(None))
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

    /// The operation the service (any replica) is asked to run on an infra,
    /// if it manages it and something is under way.
    pub(crate) fn operation(&self, infra_id: &str) -> Result<Option<ServiceOperation>, ApiError> {
        Ok(self
            .store()
            .service_infra(infra_id)?
            .map(|record| record.operation)
            .filter(|operation| *operation != ServiceOperation::Idle))
    }

    /// The infras the service (any replica) builds, maintains or destroys.
    pub(crate) fn managed(&self) -> Result<HashSet<String>, ApiError> {
        Ok(self
            .store()
            .service_infras()?
            .into_iter()
            .filter(|record| record.operation != ServiceOperation::Idle)
            .map(|record| record.infra_id)
            .collect())
    }

    /// Records a request for `operation` on `infra_id` (posted with
    /// `description` if it is new) and has it done: here if this replica
    /// runs the infra's job or nobody holds its lease, else by the replica
    /// (or command line) that holds it.
    pub(crate) fn request(
        self: &Arc<Self>,
        infra_id: &str,
        description: &str,
        operation: ServiceOperation,
    ) -> Result<(), ApiError> {
        let record = self
            .store()
            .request_service_operation(infra_id, description, operation)?;
        let held_elsewhere = self.lease_alive(infra_id)?;
        self.take_up(record, held_elsewhere);
        Ok(())
    }

    /// Whether someone holds the lease on `infra_id` now.
    fn lease_alive(&self, infra_id: &str) -> Result<bool, ApiError> {
        Ok(self
            .store()
            .lease(infra_id)?
            .is_some_and(|lease| lease.liveness(now_ms()) == Liveness::Alive))
    }

    /// One claim pass: every managed infra whose newest revision this
    /// replica does not run yet is taken up, if this replica runs an older
    /// one or nobody holds its lease.
    pub fn claim(self: &Arc<Self>) -> Result<(), ApiError> {
        let store = self.store();
        let records = store.service_infras()?;
        let now = now_ms();
        let alive: HashSet<String> = store
            .leases()?
            .into_iter()
            .filter(|lease| lease.liveness(now) == Liveness::Alive)
            .map(|lease| lease.infra_id)
            .collect();
        for record in records {
            let held_elsewhere = alive.contains(&record.infra_id);
            self.take_up(record, held_elsewhere);
        }
        Ok(())
    }

    /// Starts the service's background work: the event streams' fan-out;
    /// claiming what a previous run of the service (or a replica that died)
    /// left, then claiming again every claim interval.
    pub fn start(self: &Arc<Self>) {
        let fanout = self.fanout.clone();
        let events = self.occopus.subscribe();
        tokio::spawn(async move { fanout.run(events).await });
        let service = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(service.settings.claim_interval);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut closing = service.closing();
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    _ = closing.wait_for(|closing| *closing) => return,
                }
                if let Err(error) = service.claim() {
                    tracing::warn!(%error, "cannot look for work; trying again");
                }
            }
        });
    }

    /// Starts the job `record` asks for, unless this replica runs that
    /// revision (or a newer one) already, or runs none and the lease is
    /// `held_elsewhere` (its holder does it).
    fn take_up(self: &Arc<Self>, record: ServiceRecord, held_elsewhere: bool) {
        if record.operation == ServiceOperation::Idle {
            return;
        }
        let replaced = |running: Option<i64>| match running {
            Some(revision) => revision < record.revision,
            None => !held_elsewhere,
        };
        if let Some(running) = self.replace_job(record.clone(), replaced, |_| Ok(())) {
            tracing::info!(infra = %record.infra_id, operation = record.operation.as_str(), revision = record.revision, "taking up");
            self.spawn(running);
        }
    }

    /// Records a job for `record` if the revision this replica runs for its
    /// infra passes `replaces` and `recorded` succeeds, stopping the job it
    /// replaces. All under the jobs' lock, so that no other job slips in
    /// between.
    fn replace_job(
        &self,
        mut record: ServiceRecord,
        replaces: impl FnOnce(Option<i64>) -> bool,
        recorded: impl FnOnce(&mut ServiceRecord) -> Result<(), ()>,
    ) -> Option<Running> {
        let mut jobs = self.lock_jobs();
        // Checked under the jobs' lock, which `close` takes after setting
        // it: a job is either refused here or stopped there.
        if *self.closing.borrow() || !replaces(jobs.get(&record.infra_id).map(|job| job.revision)) {
            return None;
        }
        recorded(&mut record).ok()?;
        let (stop, signal) = StopHandle::new();
        let (finished_tx, finished) = tokio::sync::watch::channel(());
        let job = Job {
            revision: record.revision,
            operation: record.operation,
            stop,
            finished,
        };
        let previous = jobs.insert(record.infra_id.clone(), job).map(|previous| {
            previous.stop.stop();
            previous.finished
        });
        Some(Running {
            record,
            stop: signal,
            _finished: finished_tx,
            previous,
        })
    }

    /// Forgets the job of `running`'s revision (a newer one stays).
    fn end_job(&self, running: &Running) {
        if let Ok(mut jobs) = self.jobs.lock()
            && jobs
                .get(&running.record.infra_id)
                .is_some_and(|job| job.revision == running.record.revision)
        {
            jobs.remove(&running.record.infra_id);
        }
    }

    /// Moves the record of `running` on to `operation` (its job's own
    /// transition); nothing if a newer request came meanwhile.
    fn advance(&self, running: &Running, operation: ServiceOperation) {
        let record = &running.record;
        if let Err(error) =
            self.store()
                .advance_service_operation(&record.infra_id, record.revision, operation)
        {
            tracing::error!(infra = %record.infra_id, %error, "cannot record the service's operation");
        }
    }

    /// Runs the job of `running`'s record.
    fn spawn(self: &Arc<Self>, running: Running) {
        match running.record.operation {
            ServiceOperation::Build => self.spawn_build(running),
            ServiceOperation::Maintain => self.spawn_maintenance(running),
            ServiceOperation::Destroy => self.spawn_destroy(running),
            ServiceOperation::Idle => {}
        }
    }

    /// Builds the record's description (or resumes its build) in the
    /// background, then maintains it.
    fn spawn_build(self: &Arc<Self>, mut running: Running) {
        let service = self.clone();
        tokio::spawn(async move {
            running.after_previous().await;
            let infra_id = running.record.infra_id.clone();
            let sources = service.posted_sources(running.record.description.clone());
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
                Err(error) if done_elsewhere(&error) => {
                    tracing::info!(infra = %infra_id, %error, "its build runs elsewhere");
                    service.end_job(&running);
                    return;
                }
                Err(error) => {
                    tracing::warn!(infra = %infra_id, %error, "build failed");
                    service.tell(&infra_id, "infra-failed", Some(error.to_string()));
                }
            }
            // Maintain it next, unless another job replaced this build
            // meanwhile (checked and done under the jobs' lock; in the store,
            // only if no newer request came).
            let revision = running.record.revision;
            let maintain = ServiceRecord {
                operation: ServiceOperation::Maintain,
                ..running.record.clone()
            };
            let store = service.store();
            let handed_over = service.replace_job(
                maintain,
                |now| now == Some(revision) && !stop.is_stopped(),
                |record| {
                    let advanced = store
                        .advance_service_operation(&record.infra_id, revision, record.operation)
                        .map_err(|error| tracing::error!(infra = %record.infra_id, %error, "cannot record the service's operation"))?;
                    *record = advanced.ok_or(())?;
                    Ok(())
                },
            );
            match handed_over {
                Some(next) => {
                    drop(running);
                    service.spawn_maintenance(next);
                }
                None => service.end_job(&running),
            }
        });
    }

    /// Keeps the record's infra alive: a maintenance pass every interval
    /// until stopped, with the engine's default error policy: a transient
    /// failure is retried, any other ends the maintenance (logged, and
    /// recorded as idle; the infra stays listed until it is deleted).
    fn spawn_maintenance(self: &Arc<Self>, mut running: Running) {
        let service = self.clone();
        tokio::spawn(async move {
            running.after_previous().await;
            let infra_id = running.record.infra_id.clone();
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
                    |pass| {
                        if let Ok(pass) = pass {
                            let seconds = pass.elapsed_ms as f64 / 1000.0;
                            service.maintenance_passes.observe(seconds);
                        }
                    },
                )
                .await;
            match ended {
                Err(error) if done_elsewhere(&error) => {
                    tracing::info!(infra = %infra_id, %error, "its maintenance runs elsewhere");
                }
                Err(error) => {
                    tracing::error!(infra = %infra_id, %error, "maintenance ended");
                    service.advance(&running, ServiceOperation::Idle);
                }
                Ok(()) => {}
            }
            service.end_job(&running);
        });
    }

    /// Destroys the record's infra in the background, after its other job
    /// here has stopped.
    fn spawn_destroy(self: &Arc<Self>, mut running: Running) {
        let service = self.clone();
        tokio::spawn(async move {
            running.after_previous().await;
            let infra_id = running.record.infra_id.clone();
            let options = DestroyOptions {
                stop: running.stop.clone(),
                lease: job_lease("destroy"),
            };
            let auth = service.settings.auth_data.clone();
            let destroyed = service
                .occopus
                .destroy(&infra_id, auth.as_deref(), options)
                .await;
            service.end_job(&running);
            match destroyed {
                Ok(report) if !report.failed.is_empty() => {
                    let why = format!(
                        "{} instance(s) could not be destroyed and stay recorded; DELETE again",
                        report.failed.len()
                    );
                    tracing::warn!(infra = %infra_id, "{why}");
                    service.advance(&running, ServiceOperation::Idle);
                    service.tell(&infra_id, "infra-destroy-failed", Some(why));
                }
                // Unknown: its build was stopped before it recorded anything.
                Ok(_) | Err(ApiError::Engine(EngineError::UnknownInfra(_))) => {
                    tracing::info!(infra = %infra_id, "destroyed");
                    let store = service.store();
                    if let Err(error) =
                        store.forget_service_infra(&infra_id, running.record.revision)
                    {
                        tracing::error!(infra = %infra_id, %error, "cannot forget the infra");
                    }
                    service.tell(&infra_id, "infra-destroyed", None);
                }
                Err(error) if done_elsewhere(&error) => {
                    tracing::info!(infra = %infra_id, %error, "its destroy runs elsewhere");
                }
                Err(error) => {
                    tracing::warn!(infra = %infra_id, %error, "destroy failed");
                    service.advance(&running, ServiceOperation::Idle);
                    service.tell(&infra_id, "infra-destroy-failed", Some(error.to_string()));
                }
            }
        });
    }
}
