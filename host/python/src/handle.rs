//! `occopus.Occopus`: an open occopus (plugins loaded, state database open)
//! and everything the command line does with one, as methods. Every
//! blocking method releases the GIL while it waits (see `running.rs`).

use crate::errors::{failure, from_api};
use crate::objects::{Diagnostic, Infra, report_to_python, to_python};
use crate::running::run;
use occopus::engine::{
    BuildOptions, BuildReport, DestroyOptions, ErrorPolicy, LeasePolicy, Phase, ScaleBy,
    StopSignal, Upkeep,
};
use occopus::local_cloud::{LocalCloud, NodeRunner};
use occopus::model::Sources;
use occopus::types::{ErrorCode, HasErrorCode};
use occopus::{ApiError, Config, Occopus, Options};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyAny;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// An open occopus: its plugins loaded, its state database open.
///
/// `Occopus(state, *, config=None, plugin_dir=None, cache_dir=None,
/// local_cloud_dir=None, auth_data=None, read_only=False)`: `state` is the
/// state database (a file, or a `postgres://` URL); `config` an occopus
/// config file (`occopus.yaml`); `plugin_dir`, `cache_dir` and
/// `local_cloud_dir` override its directories; `auth_data` is the clouds'
/// credentials file. Nothing is read from the environment.
#[pyclass(name = "Occopus", module = "occopus", frozen, subclass)]
pub struct PyOccopus {
    occopus: Arc<Occopus>,
    options: Options,
    auth_data: Option<PathBuf>,
}

/// How long a command waits for another one's lease, in seconds (0: fail
/// at once with `LeaseHeld`).
fn lease(command: &str, wait: f64) -> PyResult<LeasePolicy> {
    if wait.is_nan() || wait < 0.0 {
        return Err(PyValueError::new_err(
            "wait must be a number of seconds >= 0",
        ));
    }
    Ok(LeasePolicy {
        command: format!("{command} (Python)"),
        wait: if wait.is_infinite() {
            Duration::MAX
        } else {
            Duration::from_secs_f64(wait)
        },
    })
}

/// This interpreter running the package's node supervisor: the local cloud
/// starts one per node.
fn node_runner(py: Python<'_>) -> PyResult<NodeRunner> {
    let program: PathBuf = py.import("sys")?.getattr("executable")?.extract()?;
    Ok(NodeRunner {
        program,
        args: vec!["-m".into(), "occopus._boot_node".into()],
    })
}

#[pymethods]
impl PyOccopus {
    #[new]
    #[pyo3(signature = (state, *, config=None, plugin_dir=None, cache_dir=None, local_cloud_dir=None, auth_data=None, read_only=false))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        state: PathBuf,
        config: Option<PathBuf>,
        plugin_dir: Option<PathBuf>,
        cache_dir: Option<PathBuf>,
        local_cloud_dir: Option<PathBuf>,
        auth_data: Option<PathBuf>,
        read_only: bool,
    ) -> PyResult<Self> {
        let mut loaded = match &config {
            Some(path) => Config::load(path).map_err(|e| failure(py, e.code(), e.to_string()))?,
            None => Config::default(),
        };
        // Relative paths are the caller's working directory's: made absolute
        // now, as the local cloud's node supervisors run elsewhere.
        let absolute = |path: Option<PathBuf>| -> PyResult<Option<PathBuf>> {
            path.map(|p| std::path::absolute(&p))
                .transpose()
                .map_err(|e| PyValueError::new_err(e.to_string()))
        };
        loaded.plugins.dir = absolute(plugin_dir)?.or(loaded.plugins.dir);
        loaded.plugins.cache_dir = absolute(cache_dir)?.or(loaded.plugins.cache_dir);
        loaded.local_cloud.root = absolute(local_cloud_dir)?.or(loaded.local_cloud.root);
        let auth_data = absolute(auth_data)?;
        let state = match state.to_str() {
            Some(url) if url.contains("://") => state,
            _ => absolute(Some(state))?.unwrap_or_default(),
        };
        let options = Options {
            config: loaded,
            state: Some(state),
            read_only,
            allow_template_commands: false,
            node_runner: Some(node_runner(py)?),
            ambient_credentials: Default::default(),
        };
        let opening = options.clone();
        let occopus = run(
            py,
            None,
            None,
            |_| async move { Occopus::open(opening).await },
        )?
        .map_err(|e| from_api(py, e))?;
        Ok(PyOccopus {
            occopus: Arc::new(occopus),
            options,
            auth_data,
        })
    }

    /// Validates the files (the infrastructure description, and node
    /// definitions if given) without building anything: renders every
    /// template, checks every plugin's section. Returns the warnings;
    /// raises `InvalidDescription` (with `diagnostics`) on an error.
    #[pyo3(signature = (infra, nodes=None))]
    fn validate(
        &self,
        py: Python<'_>,
        infra: PathBuf,
        nodes: Option<PathBuf>,
    ) -> PyResult<Vec<Diagnostic>> {
        let sources = self.sources(infra, nodes);
        let occopus = self.occopus.clone();
        let diagnostics = run(py, None, None, |_| async move {
            occopus.validate(&sources).await
        })?
        .map_err(|e| from_api(py, e))?;
        if diagnostics.has_errors() {
            return Err(from_api(py, occopus::ApiError::Invalid(diagnostics)));
        }
        Ok(diagnostics.iter().map(Diagnostic::from).collect())
    }

    /// Builds (or resumes, or completes) the infrastructure the files
    /// describe; returns the report (`infra_id`, `instances`, `elapsed_ms`,
    /// ... as `occopus build --json`). `on_event(event)` is called with every
    /// state change. Ctrl-C stops the build gracefully (what is under way is
    /// recorded) and raises `KeyboardInterrupt`: build again to resume. A
    /// failed build raises `OperationFailed` with the report as `report`.
    #[pyo3(signature = (infra, nodes=None, *, infra_id=None, rollback=false, on_event=None, wait=0.0))]
    #[allow(clippy::too_many_arguments)]
    fn build(
        &self,
        py: Python<'_>,
        infra: PathBuf,
        nodes: Option<PathBuf>,
        infra_id: Option<String>,
        rollback: bool,
        on_event: Option<Bound<'_, PyAny>>,
        wait: f64,
    ) -> PyResult<Py<PyAny>> {
        let sources = self.sources(infra, nodes);
        let lease = lease("build", wait)?;
        let occopus = self.occopus.clone();
        let events = Some(occopus.subscribe());
        let report = run(py, events, on_event.as_ref(), |stop| async move {
            let options = BuildOptions {
                infra_id,
                rollback,
                stop,
                lease,
            };
            occopus.build(&sources, options).await
        })?
        .map_err(|e| from_api(py, e))?;
        let document = report_to_python(py, &report)?;
        if report.succeeded() {
            return Ok(document);
        }
        let error = failure(py, ErrorCode::OperationFailed, build_failure(&report));
        error.value(py).setattr("report", document)?;
        Err(error)
    }

    /// Destroys an infrastructure (dependents first) and forgets it; returns
    /// the report (`infra_id`, `destroyed`, `failed`). `on_event` and
    /// Ctrl-C as for `build`.
    #[pyo3(signature = (infra_id, *, on_event=None, wait=0.0))]
    fn destroy(
        &self,
        py: Python<'_>,
        infra_id: String,
        on_event: Option<Bound<'_, PyAny>>,
        wait: f64,
    ) -> PyResult<Py<PyAny>> {
        let report = self.on_infra(py, infra_id, on_event, "destroy", wait, {
            |occopus, infra_id, auth_data, stop, lease| async move {
                let options = DestroyOptions { stop, lease };
                occopus
                    .destroy(&infra_id, auth_data.as_deref(), options)
                    .await
            }
        })?;
        let document = report_to_python(py, &report)?;
        if report.failed.is_empty() {
            return Ok(document);
        }
        let error = failure(
            py,
            ErrorCode::OperationFailed,
            format!(
                "{} instance(s) of {} could not be destroyed (they stay recorded): {}",
                report.failed.len(),
                report.infra_id,
                report
                    .failed
                    .iter()
                    .map(|(id, why)| format!("{id}: {why}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        );
        error.value(py).setattr("report", document)?;
        Err(error)
    }

    /// The recorded infrastructures, or the one whose id (or the start of
    /// it) is `infra_id` (`NotFound` if none).
    #[pyo3(signature = (infra_id=None))]
    fn info(&self, py: Python<'_>, infra_id: Option<String>) -> PyResult<Vec<Infra>> {
        let infos = match &infra_id {
            Some(given) => self
                .occopus
                .complete_infra_id(given)
                .and_then(|id| self.occopus.info(Some(&id))),
            None => self.occopus.info(None),
        }
        .map_err(|e| from_api(py, e))?;
        infos.iter().map(|info| Infra::new(py, info)).collect()
    }

    /// What building the files onto `infra_id` (default: a new
    /// infrastructure, or the description's `infra_id`) would change,
    /// touching nothing: `{"plan": {...}, "text": "..."}` (`occopus plan`).
    #[pyo3(signature = (infra, nodes=None, *, infra_id=None))]
    fn plan(
        &self,
        py: Python<'_>,
        infra: PathBuf,
        nodes: Option<PathBuf>,
        infra_id: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        let sources = self.sources(infra, nodes);
        let occopus = self.occopus.clone();
        let plan = run(py, None, None, |_| async move {
            occopus.plan(&sources, infra_id.as_deref()).await
        })?
        .map_err(|e| from_api(py, e))?;
        let text = plan.render();
        let plan = serde_json::to_value(&plan).unwrap_or_default();
        to_python(py, &serde_json::json!({"plan": plan, "text": text}))
    }

    /// One maintenance pass over `infra_id`: checks every instance, replaces
    /// failed ones, applies queued scaling; returns the pass's report.
    #[pyo3(signature = (infra_id, *, on_event=None, wait=0.0))]
    fn maintain_once(
        &self,
        py: Python<'_>,
        infra_id: String,
        on_event: Option<Bound<'_, PyAny>>,
        wait: f64,
    ) -> PyResult<Py<PyAny>> {
        let report = self.on_infra(py, infra_id, on_event, "maintain", wait, {
            |occopus, infra_id, auth_data, stop, lease| async move {
                let upkeep = Upkeep {
                    interval: Duration::ZERO,
                    policy: ErrorPolicy::default(),
                    stop,
                    lease,
                };
                occopus
                    .maintain_pass(&infra_id, auth_data.as_deref(), &upkeep)
                    .await
            }
        })?;
        report_to_python(py, &report)
    }

    /// Queues a scaling request of `node` that the next maintenance pass
    /// applies: `by=+N`/`-N` instances, or `to=N`; `instance` (an id or an
    /// address) names the one to remove. Outside the node's limits:
    /// `ScaleRefused`. Returns the request as accepted.
    #[pyo3(signature = (infra_id, node, *, by=None, to=None, instance=None))]
    fn scale(
        &self,
        py: Python<'_>,
        infra_id: String,
        node: String,
        by: Option<i64>,
        to: Option<u32>,
        instance: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        let change = match (by, to) {
            (Some(by), None) => ScaleBy::Change(by),
            (None, Some(to)) => ScaleBy::To(to),
            _ => return Err(PyValueError::new_err("give exactly one of by= and to=")),
        };
        let queued = self
            .occopus
            .complete_infra_id(&infra_id)
            .and_then(|id| self.occopus.scale(&id, &node, change, instance.as_deref()))
            .map_err(|e| from_api(py, e))?;
        report_to_python(py, &queued)
    }

    /// Stores the node definitions of `path` for later builds (Occopus's
    /// `occopus-import`); returns the node types imported.
    fn import_node_definitions(&self, py: Python<'_>, path: PathBuf) -> PyResult<Vec<String>> {
        self.occopus.import(&path).map_err(|e| from_api(py, e))
    }

    /// The built-in local cloud's nodes (of `infra_id`, or all): id,
    /// address, state, pid, infra.
    #[pyo3(signature = (infra_id=None))]
    fn local_cloud_nodes(&self, py: Python<'_>, infra_id: Option<String>) -> PyResult<Py<PyAny>> {
        let settings = self.options.local_cloud().ok_or_else(|| {
            failure(
                py,
                ErrorCode::BadConfiguration,
                "no local cloud directory: pass local_cloud_dir= or set `local_cloud.root` in the config"
                    .into(),
            )
        })?;
        let nodes = LocalCloud::open(settings)
            .and_then(|cloud| cloud.list(infra_id.as_deref()))
            .map_err(|e| from_api(py, e.into()))?;
        report_to_python(py, &nodes)
    }

    fn __repr__(&self) -> String {
        format!(
            "Occopus(state={:?})",
            self.options
                .state
                .as_deref()
                .map(|s| occopus::store::mask_password(&s.display().to_string()))
                .unwrap_or_default()
        )
    }
}

impl PyOccopus {
    /// Runs `operation` on the infrastructure `infra_id` names (its id or
    /// the start of it), holding its lease as `command` (waiting up to `wait`
    /// seconds for it), with its events to `on_event`.
    fn on_infra<T, F>(
        &self,
        py: Python<'_>,
        infra_id: String,
        on_event: Option<Bound<'_, PyAny>>,
        command: &str,
        wait: f64,
        operation: impl FnOnce(Arc<Occopus>, String, Option<PathBuf>, StopSignal, LeasePolicy) -> F
        + Send
        + 'static,
    ) -> PyResult<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, ApiError>> + Send + 'static,
    {
        let lease = lease(command, wait)?;
        let occopus = self.occopus.clone();
        let auth_data = self.auth_data.clone();
        let events = Some(occopus.subscribe());
        run(py, events, on_event.as_ref(), |stop| async move {
            let infra_id = occopus.complete_infra_id(&infra_id)?;
            operation(occopus, infra_id, auth_data, stop, lease).await
        })?
        .map_err(|e| from_api(py, e))
    }

    fn sources(&self, infra: PathBuf, nodes: Option<PathBuf>) -> Sources {
        Sources {
            infra,
            nodes: nodes.into_iter().collect(),
            auth_data: self.auth_data.clone(),
            ..Sources::default()
        }
    }
}

/// Why a build did not succeed, and how to go on.
fn build_failure(report: &BuildReport) -> String {
    let ready = report
        .instances
        .iter()
        .filter(|i| i.phase == Phase::Ready)
        .count();
    let failed: Vec<String> = report
        .failures()
        .map(|f| {
            format!(
                "{}: {}",
                f.instance_id,
                f.detail.as_deref().unwrap_or("failed")
            )
        })
        .collect();
    format!(
        "build of {} failed: {ready} of {} instances ready; failed: {}; {}",
        report.infra_id,
        report.instances.len(),
        failed.join("; "),
        if report.rolled_back {
            "what this run created was destroyed (rollback)"
        } else {
            "the state is saved: build again to resume, or destroy"
        }
    )
}

/// The local cloud's node supervisor (`python -m occopus._boot_node`):
/// supervises one node until it is stopped; returns its exit code.
#[pyfunction]
pub fn boot_node(py: Python<'_>, control: PathBuf, dir: PathBuf, address: String) -> i32 {
    py.detach(|| {
        occopus::local_cloud::node::boot(
            &occopus::local_cloud::node::ControlFiles::new(control),
            &dir,
            &address,
        )
    })
}
