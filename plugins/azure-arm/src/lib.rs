//! Azure Resource Manager (ARM) for the `azure_vm` and `azure_aci` drivers:
//! what both need and neither owns.
//!
//! - **Sign-in** ([`Arm::connect`]): OAuth2 client credentials of a service
//!   principal (`tenant_id`, `client_id`, `client_secret` of auth_data) at the
//!   login endpoint, which is the resource's `login_endpoint` or the one the
//!   ARM endpoint's own metadata (`/metadata/endpoints`) names, so that only
//!   the ARM URL needs writing (Microsoft's login host joins the call's
//!   allow-list as a discovered URL). The token is kept in the driver's
//!   session until five minutes before it expires.
//! - **Requests** with the bearer token under `/subscriptions/<id>`, ARM's
//!   error bodies turned into the contract's cases with the resource key at
//!   fault ([`Keys`]).
//! - **Long-running operations** followed through `Azure-AsyncOperation`,
//!   else `Location`, waiting what `Retry-After` asks (the poll's, else the
//!   first answer's, else the resource's `poll_interval`), states compared
//!   case-insensitively.

use occopus_plugin_sdk::driver::{InstanceState, InstanceTags, ListedInstance};
use occopus_plugin_sdk::http::{Request, Response, encode_pairs};
use occopus_plugin_sdk::{KeyValue, PluginError, clock, credential, session};
use serde_json::Value;
use std::time::Duration;

/// The tags occopus puts on everything it makes, so that `list` finds an
/// infra's instances after a crash.
const TAG_INFRA_ID: &str = "occopus-infra-id";
const TAG_INFRA_NAME: &str = "occopus-infra-name";
const TAG_NODE_NAME: &str = "occopus-node-name";
const TAG_INSTANCE_ID: &str = "occopus-instance-id";

/// The API version of resource groups (that of Microsoft's recordings).
const GROUPS_API: &str = "2021-04-01";
/// The metadata API version that lists a cloud's endpoints.
const METADATA_API: &str = "2019-05-01";
/// A kept token is renewed this long before it expires.
const RENEW_BEFORE_SECS: u64 = 300;

/// Which resource key an ARM error is about: `(word in the error's target or
/// message, resource key)`, first match wins (case-insensitive).
pub type Keys = &'static [(&'static str, &'static str)];

/// A provisioning state of ARM (`Creating`, `Updating`, `Succeeded`,
/// `Failed`, `Deleting`, `Canceled`, and ACI's `Pending`, ...), read
/// case-insensitively: services differ in case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provisioning {
    InProgress,
    Succeeded,
    Failed,
    Deleting,
    Unknown,
}

impl Provisioning {
    pub fn parse(state: &str) -> Provisioning {
        match state.to_ascii_lowercase().as_str() {
            "creating" | "updating" | "pending" | "accepted" | "inprogress" | "running"
            | "repairing" | "provisioning" => Provisioning::InProgress,
            "succeeded" => Provisioning::Succeeded,
            "failed" | "canceled" | "cancelled" => Provisioning::Failed,
            "deleting" => Provisioning::Deleting,
            _ => Provisioning::Unknown,
        }
    }
}

/// How a resource reaches ARM: its keys `endpoint`, `login_endpoint` and
/// `poll_interval` (flattened into each driver's resource).
#[derive(serde::Deserialize)]
pub struct Access {
    endpoint: String,
    login_endpoint: Option<String>,
    poll_interval: Option<f64>,
}

impl Access {
    /// Signs in with the call's credentials.
    pub fn connect(&self, credentials: &[KeyValue]) -> Result<Arm, PluginError> {
        Arm::connect(
            &self.endpoint,
            self.login_endpoint.as_deref(),
            credentials,
            Duration::from_secs_f64(self.poll_interval.unwrap_or(5.0)),
        )
    }
}

/// The service principal of auth_data.
struct Principal<'a> {
    tenant: &'a str,
    client: &'a str,
    secret: &'a str,
}

/// A signed-in connection to one subscription at one ARM endpoint.
pub struct Arm {
    base: String,
    subscription: String,
    token: String,
    poll_interval: Duration,
}

/// An answer of ARM: status, headers and JSON (`null` when empty).
pub struct Reply {
    pub status: u16,
    pub json: Value,
    response: Response,
}

impl Arm {
    /// Signs in (or takes the token kept in the session) for the
    /// subscription of `credentials` at `endpoint`.
    fn connect(
        endpoint: &str,
        login_endpoint: Option<&str>,
        credentials: &[KeyValue],
        poll_interval: Duration,
    ) -> Result<Arm, PluginError> {
        occopus_plugin_sdk::require_http_endpoint(
            endpoint,
            "ARM's URL, such as https://management.azure.com",
        )?;
        let base = endpoint.trim_end_matches('/').to_owned();
        let principal = Principal {
            tenant: credential(credentials, "tenant_id")?,
            client: credential(credentials, "client_id")?,
            secret: credential(credentials, "client_secret")?,
        };
        let subscription = credential(credentials, "subscription_id")?.to_owned();
        let key = format!("token {base} {}", principal.tenant);
        let now = clock::unix_millis() / 1000;
        let kept = session::get(&key).and_then(|text| {
            let (expires, token) = text.split_once(' ')?;
            let expires: u64 = expires.parse().ok()?;
            (expires > now + RENEW_BEFORE_SECS).then(|| token.to_owned())
        });
        let token = match kept {
            Some(token) => token,
            None => {
                let login = match login_endpoint {
                    Some(login) => login.to_owned(),
                    None => discover_login(&base)?,
                };
                let (token, lifetime) = sign_in(&base, &login, &principal)?;
                session::put(
                    &key,
                    &format!("{} {token}", now + lifetime),
                    Duration::from_secs(lifetime.saturating_sub(RENEW_BEFORE_SECS)),
                );
                token
            }
        };
        Ok(Arm {
            base,
            subscription,
            token,
            poll_interval,
        })
    }

    /// `/subscriptions/<id>/resourceGroups/<group>/providers/<provider>/<path>`.
    pub fn resource_path(&self, group: &str, provider: &str, path: &str) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{group}/providers/{provider}/{path}",
            self.subscription
        )
    }

    /// Makes the resource group in `location` unless it exists (an ARM PUT
    /// of a group changes nothing of one that exists), as Occopus did.
    pub fn make_group(&self, group: &str, location: &str, keys: Keys) -> Result<(), PluginError> {
        let path = format!(
            "/subscriptions/{}/resourcegroups/{group}",
            self.subscription
        );
        let body = serde_json::json!({"location": location});
        self.call("PUT", &path, GROUPS_API, Some(&body), keys)
            .map(drop)
    }

    /// `method path?api-version=..`: a 2xx answer, else the contract's
    /// error naming the resource key at fault.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        api_version: &str,
        body: Option<&Value>,
        keys: Keys,
    ) -> Result<Reply, PluginError> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let url = format!("{}{path}{separator}api-version={api_version}", self.base);
        self.send(method, &url, body, keys)
    }

    fn send(
        &self,
        method: &str,
        url: &str,
        body: Option<&Value>,
        keys: Keys,
    ) -> Result<Reply, PluginError> {
        let request = Request::new(method, url)
            .header("authorization", &format!("Bearer {}", self.token))
            .header("accept", "application/json")
            .json_body(body);
        let response = request.send()?;
        if !(200..300).contains(&response.status) {
            let path = url.strip_prefix(&self.base).unwrap_or(url);
            return Err(error_of(
                method,
                path.split('?').next().unwrap_or(path),
                &response,
                keys,
            ));
        }
        let json = if response.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&response.body).map_err(|e| {
                PluginError::Internal(format!("ARM answered {method} with invalid JSON: {e}"))
            })?
        };
        Ok(Reply {
            status: response.status,
            json,
            response,
        })
    }

    /// The resource at `path`, or `None` when ARM does not know it.
    pub fn get(
        &self,
        path: &str,
        api_version: &str,
        keys: Keys,
    ) -> Result<Option<Value>, PluginError> {
        match self.call("GET", path, api_version, None, keys) {
            Ok(reply) => Ok(Some(reply.json)),
            Err(PluginError::NotFound(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// PUTs a resource and waits until its operation ends; the resource as
    /// the PUT answered it.
    pub fn put_and_wait(
        &self,
        path: &str,
        api_version: &str,
        body: &Value,
        keys: Keys,
    ) -> Result<Value, PluginError> {
        let reply = self.call("PUT", path, api_version, Some(body), keys)?;
        self.wait(&reply, path, keys)?;
        Ok(reply.json)
    }

    /// DELETEs a resource and waits until it is gone; one already gone is
    /// success.
    pub fn delete_and_wait(
        &self,
        path: &str,
        api_version: &str,
        keys: Keys,
    ) -> Result<(), PluginError> {
        match self.call("DELETE", path, api_version, None, keys) {
            Ok(reply) => self.wait(&reply, path, keys),
            Err(PluginError::NotFound(_)) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Follows a long-running operation to its end: `Azure-AsyncOperation`
    /// (its `status`), else `Location` (202 until done). A failed operation
    /// is the error it names.
    pub fn wait(&self, reply: &Reply, what: &str, keys: Keys) -> Result<(), PluginError> {
        let first = retry_after(&reply.response);
        if let Some(url) = reply.response.header("azure-asyncoperation") {
            let url = url.to_owned();
            let mut asked = first;
            loop {
                clock::sleep(asked.unwrap_or(self.poll_interval));
                let poll = self.send("GET", &url, None, keys)?;
                let status = poll.json["status"].as_str().unwrap_or_default();
                match Provisioning::parse(status) {
                    Provisioning::Succeeded => return Ok(()),
                    Provisioning::Failed => return Err(operation_error(what, &poll.json, keys)),
                    _ => asked = retry_after(&poll.response).or(first),
                }
            }
        }
        if reply.status == 202
            && let Some(url) = reply.response.header("location")
        {
            let url = url.to_owned();
            let mut asked = first;
            loop {
                clock::sleep(asked.unwrap_or(self.poll_interval));
                let poll = self.send("GET", &url, None, keys)?;
                if poll.status != 202 {
                    break;
                }
                asked = retry_after(&poll.response).or(first);
            }
        }
        Ok(())
    }
}

/// The wait an answer asks for in `Retry-After` (seconds).
fn retry_after(response: &Response) -> Option<Duration> {
    response
        .header("retry-after")
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// The login endpoint the ARM endpoint's metadata names (an array of clouds
/// in newer API versions, one object in older ones).
fn discover_login(base: &str) -> Result<String, PluginError> {
    let url = format!("{base}/metadata/endpoints?api-version={METADATA_API}");
    let response = Request::new("GET", &url)
        .header("accept", "application/json")
        .send()?;
    let metadata: Value = (response.status == 200)
        .then(|| serde_json::from_slice(&response.body).ok())
        .flatten()
        .ok_or_else(|| {
            PluginError::InvalidConfig(format!(
                "endpoint `{base}` answered its metadata request with {}, not the list of the \
                 cloud's endpoints; check the endpoint, or give the login URL as `login_endpoint`",
                response.status
            ))
        })?;
    let cloud = match &metadata {
        Value::Array(clouds) => clouds
            .iter()
            .find(|c| {
                c["resourceManager"]
                    .as_str()
                    .is_some_and(|r| r.trim_end_matches('/') == base)
            })
            .or(clouds.first())
            .cloned()
            .unwrap_or_default(),
        other => other.clone(),
    };
    let login = cloud["authentication"]["loginEndpoint"]
        .as_str()
        .ok_or_else(|| {
            PluginError::InvalidConfig(format!(
                "the metadata of `{base}` names no login endpoint; give it as `login_endpoint`"
            ))
        })?
        .to_owned();
    session::allow_discovered(&login)?;
    Ok(login)
}

/// The client-credentials sign-in: the token and its lifetime in seconds.
fn sign_in(base: &str, login: &str, principal: &Principal) -> Result<(String, u64), PluginError> {
    let url = format!(
        "{}/{}/oauth2/v2.0/token",
        login.trim_end_matches('/'),
        principal.tenant
    );
    let scope = format!("{base}/.default");
    let body = encode_pairs([
        ("grant_type", "client_credentials"),
        ("client_id", principal.client),
        ("client_secret", principal.secret),
        ("scope", scope.as_str()),
    ]);
    let response = Request::new("POST", &url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(body)
        .send()?;
    let answer: Value = serde_json::from_slice(&response.body).unwrap_or_default();
    if response.status != 200 {
        return Err(sign_in_error(response.status, &answer));
    }
    let token = answer["access_token"].as_str().ok_or_else(|| {
        PluginError::Internal("the login endpoint answered without an access_token".into())
    })?;
    // `expires_in` is a number, or a string in older endpoints.
    let lifetime = answer["expires_in"]
        .as_u64()
        .or_else(|| answer["expires_in"].as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(3600);
    Ok((token.to_owned(), lifetime))
}

/// A refused sign-in, naming the auth_data key its AADSTS code is about
/// (never its value).
fn sign_in_error(status: u16, answer: &Value) -> PluginError {
    let description = answer["error_description"]
        .as_str()
        .or_else(|| answer["error"].as_str())
        .unwrap_or("no reason given");
    // The first line holds the code and the reason; the rest is trace ids.
    let reason = description
        .lines()
        .next()
        .unwrap_or(description)
        .trim_end()
        .trim_end_matches('.');
    let key = if reason.contains("AADSTS7000215") || reason.contains("AADSTS7000222") {
        "client_secret"
    } else if reason.contains("AADSTS700016") {
        "client_id"
    } else if reason.contains("AADSTS90002") || reason.contains("AADSTS900023") {
        "tenant_id"
    } else {
        "tenant_id, client_id and client_secret"
    };
    let said =
        format!("Azure's sign-in answered {status}: {reason}; check {key} in auth_data.yaml");
    match status {
        400 | 401 | 403 => PluginError::Unauthorized(said),
        429 | 500..=599 => PluginError::Transient(said),
        _ => PluginError::Unauthorized(said),
    }
}

/// The resource key an ARM error is about, if the driver's table knows it.
fn key_of(code: &str, target: &str, message: &str, keys: Keys) -> Option<&'static str> {
    let haystack = format!("{code} {target} {message}").to_ascii_lowercase();
    keys.iter()
        .find(|(word, _)| haystack.contains(&word.to_ascii_lowercase()))
        .map(|(_, key)| *key)
}

/// ARM's `{"error": {"code", "message", "target"}}` as the contract's case:
/// 401/403 unauthorized (a quota refusal is quota), 404 not-found,
/// 409/429/5xx transient, other 4xx invalid-config; the message names the
/// resource key at fault where `keys` knows it.
fn error_of(method: &str, path: &str, response: &Response, keys: Keys) -> PluginError {
    let body: Value = serde_json::from_slice(&response.body).unwrap_or_default();
    let error = if body["error"].is_object() {
        &body["error"]
    } else {
        &body
    };
    let code = error["code"].as_str().unwrap_or_default();
    let message = error["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| response.text().trim().chars().take(300).collect());
    let target = error["target"].as_str().unwrap_or_default();
    let about = key_of(code, target, &message, keys)
        .map(|key| format!(" (check `{key}`)"))
        .unwrap_or_default();
    let said = format!(
        "ARM answered {method} {path} with {} {code}: {message}{about}",
        response.status
    );
    let quota = code.contains("Quota") || code.contains("LimitExceeded");
    match response.status {
        _ if quota => PluginError::Quota(said),
        401 | 403 => PluginError::Unauthorized(format!(
            "{said}; check subscription_id in auth_data.yaml and that the service principal \
             has a role on the resource group"
        )),
        404 => PluginError::NotFound(said),
        409 | 429 | 500..=599 => PluginError::Transient(said),
        _ => PluginError::InvalidConfig(said),
    }
}

/// A failed long-running operation (`{"status": "Failed", "error": {...}}`).
fn operation_error(what: &str, poll: &Value, keys: Keys) -> PluginError {
    let error = &poll["error"];
    let code = error["code"].as_str().unwrap_or("Failed");
    let message = error["message"].as_str().unwrap_or("no reason given");
    let about = key_of(
        code,
        error["target"].as_str().unwrap_or_default(),
        message,
        keys,
    )
    .map(|key| format!(" (check `{key}`)"))
    .unwrap_or_default();
    let said = format!("ARM's operation on {what} ended {code}: {message}{about}");
    if code.contains("Quota") || code.contains("LimitExceeded") {
        PluginError::Quota(said)
    } else if code.contains("InternalServerError") || code.contains("Retryable") {
        PluginError::Transient(said)
    } else {
        PluginError::InvalidConfig(said)
    }
}

/// A resource name made of an occopus instance id: lower-case letters,
/// digits and dashes (what every resource type here accepts), at most 63
/// characters, `occopus-` first.
pub fn resource_name(instance_id: &str) -> String {
    let cleaned: String = instance_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let mut name = format!("occopus-{cleaned}");
    name.truncate(63);
    name.trim_end_matches('-').to_owned()
}

/// The tags of an instance's resources.
pub fn tags(infra_id: &str, infra_name: &str, node_name: &str, instance_id: &str) -> Value {
    serde_json::json!({
        TAG_INFRA_ID: infra_id,
        TAG_INFRA_NAME: infra_name,
        TAG_NODE_NAME: node_name,
        TAG_INSTANCE_ID: instance_id,
    })
}

/// A tag of a resource, or "".
fn tag<'a>(resource: &'a Value, key: &str) -> &'a str {
    resource["tags"][key].as_str().unwrap_or_default()
}

/// The resources of an ARM listing (`{"value": [...]}`) tagged with
/// `infra_id`, as the contract lists instances; `state` reads each one's.
pub fn listed(
    listing: &Value,
    infra_id: &str,
    state: impl Fn(&Value) -> InstanceState,
) -> Vec<ListedInstance> {
    listing["value"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|resource| tag(resource, TAG_INFRA_ID) == infra_id)
        .map(|resource| ListedInstance {
            cloud_id: resource["name"].as_str().unwrap_or_default().to_owned(),
            instance_id: tag(resource, TAG_INSTANCE_ID).to_owned(),
            tags: InstanceTags {
                infra_id: infra_id.to_owned(),
                infra_name: tag(resource, TAG_INFRA_NAME).to_owned(),
                node_name: tag(resource, TAG_NODE_NAME).to_owned(),
            },
            state: state(resource),
        })
        .collect()
}

/// The last segment of an ARM id (`.../networkInterfaces/NAME` -> NAME).
pub fn last_segment(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: Keys = &[("vmSize", "vm_size"), ("adminPassword", "password")];

    #[test]
    fn states_are_read_whatever_their_case() {
        assert_eq!(Provisioning::parse("Succeeded"), Provisioning::Succeeded);
        assert_eq!(Provisioning::parse("succeeded"), Provisioning::Succeeded);
        assert_eq!(Provisioning::parse("Creating"), Provisioning::InProgress);
        assert_eq!(Provisioning::parse("Pending"), Provisioning::InProgress);
        assert_eq!(Provisioning::parse("Updating"), Provisioning::InProgress);
        assert_eq!(Provisioning::parse("FAILED"), Provisioning::Failed);
        assert_eq!(Provisioning::parse("Canceled"), Provisioning::Failed);
        assert_eq!(Provisioning::parse("Deleting"), Provisioning::Deleting);
        assert_eq!(Provisioning::parse("Migrating"), Provisioning::Unknown);
    }

    #[test]
    fn errors_name_the_key_and_the_case() {
        let body = r#"{"error": {"code": "InvalidParameter", "message": "The value Standard_X of parameter vmSize is not allowed.", "target": "vmSize"}}"#;
        let PluginError::InvalidConfig(message) =
            error_of("PUT", "/vm", &Response::new(400, body), KEYS)
        else {
            panic!("a bad parameter is invalid-config");
        };
        assert!(message.contains("InvalidParameter"), "{message}");
        assert!(message.ends_with("(check `vm_size`)"), "{message}");
        let quota = r#"{"error": {"code": "OperationNotAllowed", "message": "Operation could not be completed as it results in exceeding approved standardDSv2Family Cores quota."}}"#;
        assert!(matches!(
            error_of("PUT", "/vm", &Response::new(409, quota), KEYS),
            PluginError::Transient(_)
        ));
        let quota = r#"{"error": {"code": "QuotaExceeded", "message": "no"}}"#;
        assert!(matches!(
            error_of("PUT", "/vm", &Response::new(409, quota), KEYS),
            PluginError::Quota(_)
        ));
        assert!(matches!(
            error_of("GET", "/vm", &Response::new(403, "{}"), KEYS),
            PluginError::Unauthorized(_)
        ));
        assert!(matches!(
            error_of("GET", "/vm", &Response::new(404, "{}"), KEYS),
            PluginError::NotFound(_)
        ));
        assert!(matches!(
            error_of("GET", "/vm", &Response::new(503, ""), KEYS),
            PluginError::Transient(_)
        ));
    }

    #[test]
    fn sign_in_errors_name_the_key_not_the_secret() {
        let answer = serde_json::json!({"error": "invalid_client",
            "error_description": "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1"});
        let PluginError::Unauthorized(message) = sign_in_error(401, &answer) else {
            panic!("a wrong secret is unauthorized");
        };
        assert_eq!(
            message,
            "Azure's sign-in answered 401: AADSTS7000215: Invalid client secret provided; \
             check client_secret in auth_data.yaml"
        );
        let answer =
            serde_json::json!({"error_description": "AADSTS700016: Application not found"});
        assert!(
            matches!(sign_in_error(400, &answer), PluginError::Unauthorized(m) if m.contains("check client_id"))
        );
    }

    #[test]
    fn names_fit_every_resource_type() {
        assert_eq!(
            resource_name("Web_Server-1-ab12cd34"),
            "occopus-web-server-1-ab12cd34"
        );
        let long = resource_name(&"x".repeat(100));
        assert_eq!(long.len(), 63);
        assert_eq!(last_segment("/a/b/networkInterfaces/nic-1"), "nic-1");
    }
}
