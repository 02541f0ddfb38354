//! The Python exceptions: `OccopusError` and one subclass per kind of
//! failure the library reports ([`ErrorCode`], the same kinds the command
//! line's exit codes and the REST service's `error.code` follow). Each has
//! `code` (that kind's stable name); `InvalidDescription` also has
//! `diagnostics`, every problem with its file, line and column.

use crate::objects::Diagnostic;
use occopus::ApiError;
use occopus::types::{ErrorCode, HasErrorCode};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    occopus,
    OccopusError,
    PyException,
    "Any failure of occopus; `code` names its kind."
);
create_exception!(
    occopus,
    InvalidDescription,
    OccopusError,
    "The infrastructure or node files have problems; `diagnostics` lists them with their places."
);
create_exception!(
    occopus,
    BadConfiguration,
    OccopusError,
    "The occopus configuration (or a location given) is wrong."
);
create_exception!(
    occopus,
    NotFound,
    OccopusError,
    "No such infrastructure, or no such node in it."
);
create_exception!(
    occopus,
    LeaseHeld,
    OccopusError,
    "Another command is changing this infrastructure (its lease names it)."
);
create_exception!(
    occopus,
    ScaleRefused,
    OccopusError,
    "A scaling request outside the node's limits, or for an instance that is not there."
);
create_exception!(
    occopus,
    PluginUnavailable,
    OccopusError,
    "No plugin serves a type the files use, or a plugin failed to load."
);
create_exception!(
    occopus,
    CloudCallFailed,
    OccopusError,
    "A cloud call through a driver failed (credentials, quota, the cloud itself)."
);
create_exception!(
    occopus,
    OperationFailed,
    OccopusError,
    "The operation ran and failed (an instance failed, a health check timed out, ...)."
);
create_exception!(
    occopus,
    StateDatabaseError,
    OccopusError,
    "The state database cannot be read or written."
);

/// Adds the exceptions to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("OccopusError", py.get_type::<OccopusError>())?;
    m.add("InvalidDescription", py.get_type::<InvalidDescription>())?;
    m.add("BadConfiguration", py.get_type::<BadConfiguration>())?;
    m.add("NotFound", py.get_type::<NotFound>())?;
    m.add("LeaseHeld", py.get_type::<LeaseHeld>())?;
    m.add("ScaleRefused", py.get_type::<ScaleRefused>())?;
    m.add("PluginUnavailable", py.get_type::<PluginUnavailable>())?;
    m.add("CloudCallFailed", py.get_type::<CloudCallFailed>())?;
    m.add("OperationFailed", py.get_type::<OperationFailed>())?;
    m.add("StateDatabaseError", py.get_type::<StateDatabaseError>())?;
    Ok(())
}

/// The exception of kind `code` saying `message`, its `code` set.
pub fn failure(py: Python<'_>, code: ErrorCode, message: String) -> PyErr {
    let error = match code {
        ErrorCode::InvalidDescription => InvalidDescription::new_err(message),
        ErrorCode::BadConfiguration => BadConfiguration::new_err(message),
        ErrorCode::UnknownInfra | ErrorCode::UnknownNode => NotFound::new_err(message),
        ErrorCode::Conflict => LeaseHeld::new_err(message),
        ErrorCode::ScaleRefused => ScaleRefused::new_err(message),
        ErrorCode::PluginUnavailable => PluginUnavailable::new_err(message),
        ErrorCode::CloudCallFailed => CloudCallFailed::new_err(message),
        ErrorCode::StateDatabase => StateDatabaseError::new_err(message),
        ErrorCode::OperationFailed | ErrorCode::Interrupted | ErrorCode::Internal => {
            OperationFailed::new_err(message)
        }
    };
    // Setting an attribute on a fresh exception cannot fail in practice;
    // the message says it all if it did.
    let _ = error.value(py).setattr("code", code.as_str());
    error
}

/// The library's error as its Python exception.
pub fn from_api(py: Python<'_>, error: ApiError) -> PyErr {
    let diagnostics: Option<Vec<Diagnostic>> = match &error {
        ApiError::Invalid(found) => Some(found.iter().map(Diagnostic::from).collect()),
        _ => None,
    };
    let exception = failure(py, error.code(), error.to_string());
    if let Some(diagnostics) = diagnostics {
        let _ = exception.value(py).setattr("diagnostics", diagnostics);
    }
    exception
}
