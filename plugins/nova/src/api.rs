//! JSON calls to an OpenStack service with a token, and the mapping of
//! OpenStack's error answers onto the contract's cases.

use occopus_plugin_sdk::PluginError;
use occopus_plugin_sdk::http::{Request, Response};
use serde_json::Value;

/// One service of the catalog, reached with a token.
pub struct Service<'a> {
    /// The service's name for messages: `Nova`, `Neutron`, `Glance`, `Keystone`.
    pub name: &'static str,
    /// Its base URL from the catalog (no trailing slash).
    pub url: &'a str,
    /// The token (`X-Auth-Token`); empty for none.
    pub token: &'a str,
}

impl Service<'_> {
    /// Sends `method path` with an optional JSON body; a 2xx answer's JSON (or
    /// `null` for an empty body), any other answer an error of the contract.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, PluginError> {
        let url = if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.url)
        };
        let response = self.send(method, &url, body)?;
        if !(200..300).contains(&response.status) {
            return Err(error_of(self.name, method, &url, &response));
        }
        if response.body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&response.body).map_err(|e| {
            PluginError::Internal(format!(
                "{} answered {method} {url} with invalid JSON: {e}",
                self.name
            ))
        })
    }

    /// Sends a request and returns the answer whatever its status.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Response, PluginError> {
        let mut request = Request::new(method, url).header("accept", "application/json");
        if !self.token.is_empty() {
            request = request.header("x-auth-token", self.token);
        }
        request = request.json_body(body);
        request.send()
    }
}

/// The message inside an OpenStack error answer: Nova's `{"badRequest":
/// {"message": ...}}`, Keystone's `{"error": {"message": ...}}`, Neutron's
/// `{"NeutronError": {"message": ...}}`, or the text itself.
pub fn message_of(response: &Response) -> String {
    let text = response.text();
    let from_json = serde_json::from_str::<Value>(&text).ok().and_then(|json| {
        json.as_object()?.values().find_map(|inner| {
            inner
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
    });
    let message = from_json.unwrap_or_else(|| text.trim().to_owned());
    let message: String = message.chars().take(500).collect();
    if message.is_empty() {
        format!("HTTP {}", response.status)
    } else {
        message
    }
}

/// The contract's case of an OpenStack error answer: 401/403 unauthorized
/// (but a quota refusal, which Nova answers 403, is quota), 404 not-found,
/// 409/429/5xx transient, 413 quota, other 4xx invalid-config.
pub fn error_of(service: &str, method: &str, url: &str, response: &Response) -> PluginError {
    let message = message_of(response);
    let said = format!(
        "{service} answered {method} {} with {}: {message}",
        path_of(url),
        response.status
    );
    let lower = message.to_ascii_lowercase();
    match response.status {
        413 => PluginError::Quota(said),
        _ if lower.contains("quota") && (400..500).contains(&response.status) => {
            PluginError::Quota(said)
        }
        401 | 403 => PluginError::Unauthorized(said),
        404 => PluginError::NotFound(said),
        409 | 429 | 500..=599 => PluginError::Transient(said),
        _ => PluginError::InvalidConfig(said),
    }
}

/// The path of a URL, for messages (the host is the user's own endpoint or
/// one its catalog named).
fn path_of(url: &str) -> &str {
    url.split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> Response {
        Response::new(status, body)
    }

    #[test]
    fn messages_of_each_service() {
        let nova = response(
            400,
            r#"{"badRequest": {"code": 400, "message": "Invalid key_name provided."}}"#,
        );
        assert_eq!(message_of(&nova), "Invalid key_name provided.");
        let neutron = response(
            404,
            r#"{"NeutronError": {"type": "NetworkNotFound", "message": "Network x could not be found.", "detail": ""}}"#,
        );
        assert_eq!(message_of(&neutron), "Network x could not be found.");
        let keystone = response(
            401,
            r#"{"error": {"code": 401, "message": "The request you have made requires authentication.", "title": "Unauthorized"}}"#,
        );
        assert_eq!(
            message_of(&keystone),
            "The request you have made requires authentication."
        );
        assert_eq!(message_of(&response(502, "")), "HTTP 502");
    }

    #[test]
    fn cases_of_errors() {
        let url = "http://127.0.0.1:8774/v2.1/servers";
        let case = |status, body| match error_of("Nova", "POST", url, &response(status, body)) {
            PluginError::InvalidConfig(m) => ("invalid-config", m),
            PluginError::Unauthorized(m) => ("unauthorized", m),
            PluginError::NotFound(m) => ("not-found", m),
            PluginError::Transient(m) => ("transient", m),
            PluginError::Quota(m) => ("quota", m),
            PluginError::Internal(m) => ("internal", m),
        };
        assert_eq!(case(401, "").0, "unauthorized");
        assert_eq!(
            case(403, r#"{"forbidden": {"message": "Policy doesn't allow"}}"#).0,
            "unauthorized"
        );
        let (kind, message) = case(
            403,
            r#"{"forbidden": {"message": "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances"}}"#,
        );
        assert_eq!(kind, "quota");
        assert!(
            message.starts_with("Nova answered POST /v2.1/servers with 403: Quota exceeded"),
            "{message}"
        );
        assert_eq!(case(404, "").0, "not-found");
        assert_eq!(case(409, "").0, "transient");
        assert_eq!(case(429, "").0, "transient");
        assert_eq!(case(503, "").0, "transient");
        assert_eq!(case(413, "").0, "quota");
        assert_eq!(case(400, "").0, "invalid-config");
    }
}
