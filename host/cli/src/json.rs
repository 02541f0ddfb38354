//! The command line's JSON documents (`--json`, `--progress json`), whose
//! shapes docs/json.md describes. Every document names its schema and
//! version (`"schema": "occopus.build.v1"`): a field may be added within a
//! version, never renamed, removed or given another meaning.
//!
//! A command run with `--json` writes exactly one document on stdout: its
//! report, or, when it fails before it has one, an `occopus.error.v1`
//! document ([`error`]), which `cli::run` prints unless the command wrote
//! its own (`output::wrote_stdout`: the older `--json` outputs, such as
//! `validate`'s, are printed without this module).

use crate::error::CliError;
use crate::output::outln;
use occopus::types::HasErrorCode;
use serde_json::{Value, json};

/// Prints `body` on stdout as the command's document of `schema`.
pub fn print(schema: &str, body: Value) {
    let mut document = json!({ "schema": schema });
    if let (Some(document), Value::Object(body)) = (document.as_object_mut(), body) {
        document.extend(body);
    }
    outln!("{document:#}");
}

/// Prints the report `body` of `schema`, with the `error` member of `ended`
/// when the command did not succeed.
pub fn print_report(schema: &str, mut body: Value, ended: Option<&CliError>) {
    if let Some(ended) = ended {
        body["error"] = error(ended, ended.exit_status(crate::signals::received()));
    }
    print(schema, body);
}

/// The `error` member of a document: the failure's stable code (the REST
/// service's `error.code`), its message, the exit code, and for invalid
/// files every problem with its location.
pub fn error(error: &CliError, exit_code: u8) -> Value {
    let code = match error {
        CliError::Usage(_) => "usage",
        CliError::Api(occopus::ApiError::Invalid(_)) => "invalid-description",
        CliError::Api(api) => api.code().as_str(),
        CliError::Ended { code, .. } => code.as_str(),
    };
    let mut member = json!({ "code": code, "message": error.to_string(), "exit_code": exit_code });
    if let CliError::Api(occopus::ApiError::Invalid(diagnostics)) = error {
        member["problems"] = serde_json::to_value(diagnostics).unwrap_or_default();
    }
    member
}
