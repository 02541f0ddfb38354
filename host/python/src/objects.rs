//! The typed objects a Python program gets: read-only, with a useful
//! `repr`. Reports without a class of their own (a build's, a plan's) are
//! plain dicts, in the shapes of the command line's `--json` documents.

use occopus::InfraInfo;
use occopus::model::Diagnostic as Problem;
use pyo3::prelude::*;
use pyo3::types::PyAny;

/// One state change of an instance, as a build, a destroy or a maintenance
/// pass reports it.
#[pyclass(frozen, get_all, module = "occopus")]
#[derive(Debug, Clone)]
pub struct Event {
    /// When, in milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// The infrastructure.
    pub infra_id: String,
    /// The node.
    pub node: String,
    /// The instance.
    pub instance_id: String,
    /// `waiting`, `creating`, `pending`, `checking`, `ready`, `failed`,
    /// `stopped`, `destroying` or `destroyed`.
    pub phase: String,
    /// More words: an error, the addresses, ...
    pub detail: Option<String>,
}

#[pymethods]
impl Event {
    fn __repr__(&self) -> String {
        format!(
            "Event({} {} {}{})",
            self.node,
            self.instance_id,
            self.phase,
            self.detail
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        )
    }
}

impl From<occopus::engine::Event> for Event {
    fn from(event: occopus::engine::Event) -> Self {
        let phase = serde_json::to_value(event.phase)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        Event {
            time_ms: event.time_ms,
            infra_id: event.infra_id,
            node: event.node,
            instance_id: event.instance_id,
            phase,
            detail: event.detail,
        }
    }
}

/// A problem of the files: where it is and what to do.
#[pyclass(frozen, get_all, module = "occopus")]
#[derive(Debug, Clone)]
pub struct Diagnostic {
    /// `error` (the files cannot be used) or `warning`.
    pub severity: String,
    /// The file, if the problem has a place.
    pub file: Option<String>,
    /// Its line (1-based).
    pub line: Option<usize>,
    /// Its column (1-based).
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub help: String,
    text: String,
}

#[pymethods]
impl Diagnostic {
    fn __repr__(&self) -> String {
        format!("Diagnostic({:?})", self.text)
    }

    fn __str__(&self) -> String {
        self.text.clone()
    }
}

impl From<&Problem> for Diagnostic {
    fn from(problem: &Problem) -> Self {
        Diagnostic {
            severity: format!("{:?}", problem.severity).to_lowercase(),
            file: problem
                .location
                .as_ref()
                .map(|l| l.file.display().to_string()),
            line: problem.location.as_ref().map(|l| l.line),
            column: problem.location.as_ref().map(|l| l.column),
            message: problem.message.clone(),
            help: problem.help.clone(),
            text: problem.to_string(),
        }
    }
}

/// One instance of a node, as recorded.
#[pyclass(frozen, get_all, module = "occopus")]
#[derive(Debug, Clone)]
pub struct Instance {
    /// Its id.
    pub id: String,
    /// Its node.
    pub node: String,
    /// `creating`, `pending`, `running`, `ready`, `failed` or `destroying`.
    pub state: String,
    /// Its address (the public one if it has one).
    pub address: Option<String>,
    /// Its private address.
    pub private_address: Option<String>,
    /// The cloud's id for it.
    pub cloud_id: Option<String>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// `healthy`, `failing` or `unknown`.
    pub health: String,
    /// The last health check's words.
    pub health_detail: Option<String>,
}

#[pymethods]
impl Instance {
    fn __repr__(&self) -> String {
        format!(
            "Instance({} of {}: {}{})",
            self.id,
            self.node,
            self.state,
            self.address
                .as_deref()
                .map(|a| format!(" at {a}"))
                .unwrap_or_default()
        )
    }
}

/// A recorded infrastructure.
#[pyclass(frozen, get_all, module = "occopus")]
#[derive(Debug)]
pub struct Infra {
    /// Its id.
    pub id: String,
    /// Its `infra_name`.
    pub name: String,
    /// `building`, `ready`, `failed`, `interrupted` or `destroying`.
    pub status: String,
    /// Its nodes, by name, with their scaling: `{name: {"min", "max",
    /// "target", "depends_on"}}`.
    pub nodes: Py<PyAny>,
    /// Its instances.
    pub instances: Vec<Instance>,
    report: Py<PyAny>,
}

#[pymethods]
impl Infra {
    /// The report Occopus's own library gives: `{node: {"instances": {id:
    /// {"resource_address", "state", ...}}, "scaling": {...}}}`.
    fn occopus_report(&self, py: Python<'_>) -> Py<PyAny> {
        self.report.clone_ref(py)
    }

    /// The instances of `node`.
    fn instances_of(&self, node: &str) -> Vec<Instance> {
        self.instances
            .iter()
            .filter(|i| i.node == node)
            .cloned()
            .collect()
    }

    fn __repr__(&self) -> String {
        format!(
            "Infra({} {:?}: {}, {} instances)",
            self.id,
            self.name,
            self.status,
            self.instances.len()
        )
    }
}

impl Infra {
    pub fn new(py: Python<'_>, info: &InfraInfo) -> PyResult<Infra> {
        let nodes: serde_json::Map<String, serde_json::Value> = info
            .infra
            .snapshot
            .nodes
            .iter()
            .map(|node| {
                (
                    node.name.clone(),
                    serde_json::json!({
                        "min": node.scaling.min,
                        "max": node.scaling.max,
                        "target": info.target(node),
                        "depends_on": node.dependencies,
                    }),
                )
            })
            .collect();
        let instances = info
            .instances
            .iter()
            .map(|i| {
                let health = serde_json::to_value(&i.health).unwrap_or_default();
                Instance {
                    id: i.id.clone(),
                    node: i.node_name.clone(),
                    state: i.state.as_str().to_owned(),
                    address: i.addresses.primary().map(str::to_owned),
                    private_address: i.addresses.private.first().cloned(),
                    cloud_id: i.cloud_id.clone(),
                    error: i.error.clone(),
                    health: health["status"].as_str().unwrap_or("unknown").to_owned(),
                    health_detail: health["detail"].as_str().map(str::to_owned),
                }
            })
            .collect();
        Ok(Infra {
            id: info.infra.id.clone(),
            name: info.infra.name.clone(),
            status: info.infra.status.clone(),
            nodes: to_python(py, &serde_json::Value::Object(nodes))?,
            instances,
            report: to_python(py, &info.occopus_report())?,
        })
    }
}

/// A JSON value as Python's `json` module reads it (dicts, lists, str,
/// int, float, bool, None).
pub fn to_python(py: Python<'_>, value: &serde_json::Value) -> PyResult<Py<PyAny>> {
    let text = serde_json::to_string(value)
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
}

/// A serializable report as Python values.
pub fn report_to_python(py: Python<'_>, report: &impl serde::Serialize) -> PyResult<Py<PyAny>> {
    let value = serde_json::to_value(report)
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    to_python(py, &value)
}
