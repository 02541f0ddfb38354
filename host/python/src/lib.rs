//! `occopus._native`: the occopus library for Python programs, wrapped by
//! the pure-Python package `occopus` (`python/occopus/`), which adds the
//! type hints (`.pyi`) and the node supervisor's entry point.
//!
//! - `handle.rs`: [`handle::PyOccopus`], an open occopus and its operations;
//! - `running.rs`: running an operation on the library's runtime while the
//!   calling thread, GIL released, waits; its events go to a Python callback;
//!   Ctrl-C stops it gracefully;
//! - `objects.rs`: the typed objects handed to Python (events, problems,
//!   infrastructures, instances);
//! - `errors.rs`: one Python exception per kind of failure.

mod errors;
mod handle;
mod objects;
mod running;

use pyo3::prelude::*;

/// The native half of the `occopus` package (import `occopus` instead).
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<handle::PyOccopus>()?;
    m.add_class::<objects::Event>()?;
    m.add_class::<objects::Diagnostic>()?;
    m.add_class::<objects::Infra>()?;
    m.add_class::<objects::Instance>()?;
    m.add_function(wrap_pyfunction!(handle::boot_node, m)?)?;
    errors::register(m)?;
    Ok(())
}
