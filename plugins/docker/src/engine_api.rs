//! Requests to the Docker Engine API and its error answers.

use occopus_plugin_sdk::PluginError;
use occopus_plugin_sdk::http::{Request, Response};
use serde_json::Value;

/// The API version asked for: Docker 20.10 and later speak it.
const API_VERSION: &str = "v1.41";

/// The host name the occopus host bridges to a `unix://` endpoint's socket.
const UNIX_BRIDGE_HOST: &str = "unix-endpoint.invalid";

/// The HTTP base URL of an endpoint.
pub fn base_url(endpoint: &str) -> Result<String, PluginError> {
    let endpoint = endpoint.trim_end_matches('/');
    if let Some(rest) = endpoint.strip_prefix("tcp://") {
        return Ok(format!("http://{rest}"));
    }
    if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
        return Ok(endpoint.to_owned());
    }
    if endpoint.starts_with("unix:///") {
        return Ok(format!("http://{UNIX_BRIDGE_HOST}"));
    }
    Err(PluginError::InvalidConfig(format!(
        "endpoint `{endpoint}` is not a Docker API address; write tcp://host:2375, \
         http(s)://host:port or unix:///var/run/docker.sock"
    )))
}

/// A failed request: the transport's error, or the daemon's answer.
pub enum ApiError {
    Transport(PluginError),
    Status { status: u16, message: String },
}

impl ApiError {
    /// The contract's error, saying what was being done.
    pub fn into_plugin_error(self, doing: &str) -> PluginError {
        let (status, message) = match self {
            ApiError::Transport(error) => return error,
            ApiError::Status { status, message } => (status, message),
        };
        let what = format!("Docker: {doing}: {message} (HTTP {status})");
        match status {
            400 | 409 => PluginError::InvalidConfig(what),
            401 | 403 => PluginError::Unauthorized(what),
            404 => PluginError::NotFound(what),
            429 | 502..=504 => PluginError::Transient(what),
            _ => PluginError::Internal(what),
        }
    }
}

/// One Docker daemon.
pub struct Engine {
    base: String,
}

impl Engine {
    pub fn new(endpoint: &str) -> Result<Engine, PluginError> {
        Ok(Engine {
            base: format!("{}/{API_VERSION}", base_url(endpoint)?),
        })
    }

    fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Response, ApiError> {
        let request = Request::new(method, &format!("{}{path}", self.base)).json_body(body);
        let response = request.send().map_err(ApiError::Transport)?;
        if (200..300).contains(&response.status) {
            return Ok(response);
        }
        let message = serde_json::from_slice::<Value>(&response.body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| response.text().trim().to_owned());
        Err(ApiError::Status {
            status: response.status,
            message,
        })
    }

    fn json(response: Response) -> Result<Value, ApiError> {
        serde_json::from_slice(&response.body).map_err(|e| {
            ApiError::Transport(PluginError::Internal(format!(
                "Docker answered with malformed JSON: {e}"
            )))
        })
    }

    pub fn get(&self, path: &str) -> Result<Value, ApiError> {
        Self::json(self.send("GET", path, None)?)
    }

    /// A POST whose answer is JSON, or empty (then `null`).
    pub fn post(&self, path: &str, body: Option<&Value>) -> Result<Value, ApiError> {
        let response = self.send("POST", path, Some(body.unwrap_or(&Value::Null)))?;
        if response.body.is_empty() {
            return Ok(Value::Null);
        }
        Self::json(response)
    }

    /// A POST that answers with a stream of JSON progress lines (pulls,
    /// imports). The daemon reports a failure inside the stream, after a 200.
    pub fn post_progress(&self, path: &str) -> Result<(), ApiError> {
        let response = self.send("POST", path, None)?;
        progress_error(&response.text()).map_or(Ok(()), |message| {
            Err(ApiError::Status {
                status: 500,
                message,
            })
        })
    }

    pub fn delete(&self, path: &str) -> Result<(), ApiError> {
        self.send("DELETE", path, None).map(drop)
    }
}

/// The first error reported in a progress stream, if any.
fn progress_error(stream: &str) -> Option<String> {
    serde_json::Deserializer::from_str(stream)
        .into_iter::<Value>()
        .filter_map(Result::ok)
        .find_map(|line| line["error"].as_str().map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_become_http_base_urls() {
        assert_eq!(
            base_url("tcp://127.0.0.1:2375").unwrap(),
            "http://127.0.0.1:2375"
        );
        assert_eq!(
            base_url("http://docker:2375/").unwrap(),
            "http://docker:2375"
        );
        assert_eq!(
            base_url("unix:///var/run/docker.sock").unwrap(),
            "http://unix-endpoint.invalid"
        );
        let Err(PluginError::InvalidConfig(message)) =
            base_url("replace_with_your_docker_endpoint")
        else {
            panic!("accepted a placeholder");
        };
        assert!(message.contains("tcp://host:2375"), "{message}");
    }

    #[test]
    fn finds_errors_inside_progress_streams() {
        let ok = "{\"status\":\"Downloading\"}\r\n{\"status\":\"sha256:abc\"}\r\n";
        assert_eq!(progress_error(ok), None);
        let failed = "{\"status\":\"Downloading\"}\n{\"errorDetail\":{\"message\":\"Get \
                      \\\"http://x/\\\": dial tcp: connection refused\"},\"error\":\"Get \
                      \\\"http://x/\\\": dial tcp: connection refused\"}\n";
        assert!(
            progress_error(failed)
                .unwrap()
                .contains("connection refused")
        );
    }

    #[test]
    fn daemon_errors_map_to_contract_cases() {
        let error = |status| ApiError::Status {
            status,
            message: "m".into(),
        };
        assert!(matches!(
            error(404).into_plugin_error("x"),
            PluginError::NotFound(_)
        ));
        assert!(matches!(
            error(400).into_plugin_error("x"),
            PluginError::InvalidConfig(_)
        ));
        assert!(matches!(
            error(503).into_plugin_error("x"),
            PluginError::Transient(_)
        ));
        assert!(matches!(
            error(500).into_plugin_error("x"),
            PluginError::Internal(_)
        ));
        let PluginError::Internal(message) = error(500).into_plugin_error("starting container c")
        else {
            unreachable!()
        };
        assert_eq!(message, "Docker: starting container c: m (HTTP 500)");
    }
}
