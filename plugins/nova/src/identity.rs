//! Signing in to Keystone (Identity v3) and finding the services in its
//! catalog.
//!
//! A token and the endpoints it came with are kept in the driver's session
//! (contract 0.1.1) until five minutes before the token expires, so status
//! polls do not sign in again; a service that refuses a cached token makes
//! the next sign-in fresh. Each service URL the catalog names is asked for
//! with `allow_discovered`, which the host grants because the URL came from
//! the answer of the user's own endpoint.

use crate::Resource;
use crate::api::{Service, error_of};
use occopus_plugin_sdk::{KeyValue, PluginError, clock, session};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::Duration;

/// How long before its expiry a token is renewed.
const RENEW_BEFORE_SECS: u64 = 300;

/// How to sign in, from `auth_data`.
pub enum Credentials {
    /// `username` + `password`, scoped to the resource's `project_id`.
    Password { username: String, password: String },
    /// `type: application_credential` with `id` + `secret`.
    ApplicationCredential { id: String, secret: String },
}

impl Credentials {
    /// Reads the `auth_data` entries selected for the resource.
    pub fn from_auth_data(entries: &[KeyValue]) -> Result<Credentials, PluginError> {
        let get = |key: &str| {
            entries
                .iter()
                .find(|kv| kv.key == key)
                .map(|kv| kv.value.clone())
        };
        let need = |key: &str, kind: &str| {
            get(key).ok_or_else(|| {
                PluginError::Unauthorized(format!(
                    "auth_data for nova ({kind}) has no `{key}`; add it to auth_data.yaml"
                ))
            })
        };
        match get("type").as_deref() {
            None => Ok(Credentials::Password {
                username: need("username", "password sign-in")?,
                password: need("password", "password sign-in")?,
            }),
            Some("application_credential") => Ok(Credentials::ApplicationCredential {
                id: need("id", "type: application_credential")?,
                secret: need("secret", "type: application_credential")?,
            }),
            // A wrong auth_data is the user's to fix in auth_data.yaml: unauthorized.
            Some("voms") => Err(PluginError::Unauthorized(
                "auth_data type `voms` is not supported: Occopus dropped VOMS proxy sign-in in \
                 1.10; use `username` + `password`, or `type: application_credential` with `id` \
                 + `secret`"
                    .into(),
            )),
            Some(other) => Err(PluginError::Unauthorized(format!(
                "auth_data type `{other}` is not one nova knows; leave `type` out for `username` \
                 + `password`, or write `type: application_credential` with `id` + `secret`"
            ))),
        }
    }

    fn auth_body(&self, resource: &Resource) -> Value {
        match self {
            Credentials::Password { username, password } => json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {
                    "name": username,
                    "domain": {"name": resource.user_domain_name},
                    "password": password,
                }}},
                "scope": {"project": {"id": resource.project_id}},
            }}),
            Credentials::ApplicationCredential { id, secret } => json!({"auth": {
                "identity": {"methods": ["application_credential"],
                    "application_credential": {"id": id, "secret": secret}},
            }}),
        }
    }

    fn describe(&self, resource: &Resource) -> String {
        match self {
            Credentials::Password { username, .. } => format!(
                "user `{username}` of domain `{}` for project_id `{}`",
                resource.user_domain_name, resource.project_id
            ),
            Credentials::ApplicationCredential { id, .. } => {
                format!("application credential `{id}`")
            }
        }
    }
}

/// A token and the service endpoints it may be used at.
#[derive(Serialize, Deserialize)]
pub struct Cloud {
    pub token: String,
    /// Unix seconds.
    expires: u64,
    pub compute: String,
    pub network: Option<String>,
    pub image: Option<String>,
    /// Block Storage (Cinder), which Nova asks for a server's boot volume;
    /// the driver itself never calls it.
    pub volume: Option<String>,
    /// Whether the token came from the session rather than a sign-in now.
    #[serde(skip)]
    cached: bool,
}

impl Cloud {
    /// Signs in (or takes the token kept in the session) and allows this call
    /// to reach the catalog's services.
    pub fn connect(resource: &Resource, credentials: &Credentials) -> Result<Cloud, PluginError> {
        let key = session_key(resource);
        let now = clock::unix_millis() / 1000;
        let cached = session::get(&key)
            .and_then(|text| serde_json::from_str::<Cloud>(&text).ok())
            .filter(|cloud| cloud.expires > now + RENEW_BEFORE_SECS);
        let cloud = match cached {
            Some(mut cloud) => {
                cloud.cached = true;
                cloud
            }
            None => {
                let cloud = sign_in(resource, credentials)?;
                if let Ok(text) = serde_json::to_string(&cloud) {
                    let ttl = cloud.expires.saturating_sub(now + RENEW_BEFORE_SECS);
                    session::put(&key, &text, Duration::from_secs(ttl));
                }
                cloud
            }
        };
        for url in [
            Some(&cloud.compute),
            cloud.network.as_ref(),
            cloud.image.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            session::allow_discovered(url)?;
        }
        Ok(cloud)
    }

    /// Whether an unauthorized answer may be cured by signing in again.
    pub fn was_cached(&self) -> bool {
        self.cached
    }

    /// Forgets the kept token, so the next [`Cloud::connect`] signs in.
    pub fn forget(resource: &Resource) {
        session::put(&session_key(resource), "", Duration::ZERO);
    }

    /// Nova, at this token.
    pub fn nova(&self) -> Service<'_> {
        Service {
            name: "Nova",
            url: &self.compute,
            token: &self.token,
        }
    }

    /// Neutron, at this token; an error when the catalog has none.
    pub fn neutron(&self) -> Result<Service<'_>, PluginError> {
        let url = self.network.as_deref().ok_or_else(|| {
            PluginError::InvalidConfig(
                "floating IPs need OpenStack Networking (Neutron), and the catalog names no \
                 public `network` endpoint; remove `floating_ip`/`floating_ip_pool`"
                    .into(),
            )
        })?;
        Ok(Service {
            name: "Neutron",
            url,
            token: &self.token,
        })
    }

    /// Glance, at this token, when the catalog has one.
    pub fn glance(&self) -> Option<Service<'_>> {
        self.image.as_deref().map(|url| Service {
            name: "Glance",
            url,
            token: &self.token,
        })
    }
}

/// Where a token is kept: the session is already per endpoint and
/// credentials; the scope and region make the rest of a sign-in.
fn session_key(resource: &Resource) -> String {
    format!(
        "token:{}:{}:{}",
        resource.project_id,
        resource.user_domain_name,
        resource.region_name.as_deref().unwrap_or("")
    )
}

/// The Identity v3 URL of an endpoint: `/v3` is appended unless the URL
/// already ends in a version.
pub fn identity_url(endpoint: &str) -> Result<String, PluginError> {
    let base = endpoint.trim_end_matches('/');
    let last = base.rsplit('/').next().unwrap_or_default();
    let is_version = last.len() > 1
        && last.starts_with(['v', 'V'])
        && last[1..].chars().all(|c| c.is_ascii_digit() || c == '.');
    match last {
        "v3" | "V3" => Ok(base.to_owned()),
        _ if is_version => Err(PluginError::InvalidConfig(format!(
            "endpoint `{endpoint}` names Identity {last}; occopus signs in with Identity v3: \
             write the Keystone URL without a version, or ending in /v3"
        ))),
        _ => Ok(format!("{base}/v3")),
    }
}

fn sign_in(resource: &Resource, credentials: &Credentials) -> Result<Cloud, PluginError> {
    let identity = identity_url(&resource.endpoint)?;
    let url = format!("{identity}/auth/tokens");
    let keystone = Service {
        name: "Keystone",
        url: &identity,
        token: "",
    };
    let response = keystone.send("POST", &url, Some(&credentials.auth_body(resource)))?;
    if response.status == 401 || response.status == 403 {
        let refused = error_of("Keystone", "POST", &url, &response);
        let PluginError::Unauthorized(said) = refused else {
            return Err(refused);
        };
        return Err(PluginError::Unauthorized(format!(
            "Keystone at {identity} refused {}: {said}; check auth_data.yaml (and the \
             resource's project_id and user_domain_name)",
            credentials.describe(resource)
        )));
    }
    if !(200..300).contains(&response.status) {
        return Err(error_of("Keystone", "POST", &url, &response));
    }
    let token = response
        .header("x-subject-token")
        .ok_or_else(|| {
            PluginError::Internal(format!("Keystone answered {url} without X-Subject-Token"))
        })?
        .to_owned();
    let answer: TokenAnswer = serde_json::from_slice(&response.body).map_err(|e| {
        PluginError::Internal(format!("Keystone's answer to {url} is not a token: {e}"))
    })?;
    let expires = unix_seconds(&answer.token.expires_at).ok_or_else(|| {
        PluginError::Internal(format!(
            "Keystone's token expiry `{}` is not an ISO 8601 time",
            answer.token.expires_at
        ))
    })?;
    let region = resource.region_name.as_deref();
    let catalog = &answer.token.catalog;
    let compute = find_endpoint(catalog, "compute", region).ok_or_else(|| {
        PluginError::InvalidConfig(format!(
            "Keystone's catalog has no public compute (Nova) endpoint{}; it has: {}",
            region
                .map(|r| format!(" in region_name `{r}`"))
                .unwrap_or_default(),
            describe_catalog(catalog)
        ))
    })?;
    Ok(Cloud {
        token,
        expires,
        compute,
        network: find_endpoint(catalog, "network", region),
        image: find_endpoint(catalog, "image", region),
        volume: ["volumev3", "block-storage", "volume"]
            .into_iter()
            .find_map(|kind| find_endpoint(catalog, kind, region)),
        cached: false,
    })
}

#[derive(Deserialize)]
struct TokenAnswer {
    token: Token,
}

#[derive(Deserialize)]
struct Token {
    expires_at: String,
    #[serde(default)]
    catalog: Vec<CatalogEntry>,
}

#[derive(Deserialize)]
struct CatalogEntry {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    endpoints: Vec<Endpoint>,
}

#[derive(Deserialize)]
struct Endpoint {
    interface: String,
    url: String,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    region_id: Option<String>,
}

/// The public URL of a service type, in `region` when one is given.
fn find_endpoint(catalog: &[CatalogEntry], kind: &str, region: Option<&str>) -> Option<String> {
    catalog
        .iter()
        .filter(|entry| entry.kind == kind)
        .flat_map(|entry| &entry.endpoints)
        .find(|endpoint| {
            endpoint.interface == "public"
                && region.is_none_or(|r| {
                    endpoint.region.as_deref() == Some(r)
                        || endpoint.region_id.as_deref() == Some(r)
                })
        })
        .map(|endpoint| endpoint.url.trim_end_matches('/').to_owned())
}

fn describe_catalog(catalog: &[CatalogEntry]) -> String {
    let found: Vec<String> = catalog
        .iter()
        .flat_map(|entry| {
            entry
                .endpoints
                .iter()
                .filter(|e| e.interface == "public")
                .map(move |e| {
                    format!(
                        "{} in region {}",
                        entry.kind,
                        e.region_id
                            .as_deref()
                            .or(e.region.as_deref())
                            .unwrap_or("-")
                    )
                })
        })
        .collect();
    if found.is_empty() {
        "no public endpoints".into()
    } else {
        found.join(", ")
    }
}

/// Seconds since the epoch of an ISO 8601 UTC time as Keystone writes it,
/// `2026-12-02T08:41:00.000000Z`.
fn unix_seconds(time: &str) -> Option<u64> {
    let number = |range: std::ops::Range<usize>| time.get(range)?.parse::<i64>().ok();
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    u64::try_from(days * 86_400 + hour * 3600 + minute * 60 + second).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_is_appended_unless_a_version_is_named() {
        assert_eq!(
            identity_url("http://127.0.0.1:5000").unwrap(),
            "http://127.0.0.1:5000/v3"
        );
        assert_eq!(
            identity_url("http://127.0.0.1:5000/").unwrap(),
            "http://127.0.0.1:5000/v3"
        );
        assert_eq!(
            identity_url("https://keystone.example.org/identity/v3/").unwrap(),
            "https://keystone.example.org/identity/v3"
        );
        assert_eq!(
            identity_url("https://keystone.example.org/identity").unwrap(),
            "https://keystone.example.org/identity/v3"
        );
        let Err(PluginError::InvalidConfig(message)) = identity_url("http://k:5000/v2.0") else {
            panic!("v2.0 must be refused");
        };
        assert!(message.contains("Identity v3"), "{message}");
    }

    #[test]
    fn keystone_times() {
        assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            unix_seconds("2026-12-02T08:41:00.000000Z"),
            Some(1_796_200_860)
        );
        assert_eq!(unix_seconds("2000-02-29T12:00:00Z"), Some(951_825_600));
        assert_eq!(unix_seconds("not a time"), None);
    }

    #[test]
    fn catalog_endpoints_by_type_interface_and_region() {
        let catalog: Vec<CatalogEntry> = serde_json::from_value(json!([
            {"type": "compute", "endpoints": [
                {"interface": "internal", "region_id": "RegionOne", "url": "http://internal:8774/v2.1"},
                {"interface": "public", "region_id": "RegionOne", "url": "http://one:8774/v2.1/"},
                {"interface": "public", "region_id": "RegionTwo", "url": "http://two:8774/v2.1"}]},
            {"type": "network", "endpoints": [
                {"interface": "public", "region": "RegionOne", "url": "http://one:9696"}]}
        ]))
        .unwrap();
        assert_eq!(
            find_endpoint(&catalog, "compute", None).as_deref(),
            Some("http://one:8774/v2.1")
        );
        assert_eq!(
            find_endpoint(&catalog, "compute", Some("RegionTwo")).as_deref(),
            Some("http://two:8774/v2.1")
        );
        assert_eq!(find_endpoint(&catalog, "network", Some("RegionTwo")), None);
        assert_eq!(find_endpoint(&catalog, "image", None), None);
        assert!(describe_catalog(&catalog).contains("compute in region RegionTwo"));
    }

    #[test]
    fn auth_data_kinds() {
        let kv = |pairs: &[(&str, &str)]| -> Vec<KeyValue> {
            pairs
                .iter()
                .map(|(k, v)| KeyValue {
                    key: (*k).into(),
                    value: (*v).into(),
                })
                .collect()
        };
        assert!(matches!(
            Credentials::from_auth_data(&kv(&[("username", "u"), ("password", "p")])),
            Ok(Credentials::Password { .. })
        ));
        assert!(matches!(
            Credentials::from_auth_data(&kv(&[
                ("type", "application_credential"),
                ("id", "i"),
                ("secret", "s")
            ])),
            Ok(Credentials::ApplicationCredential { .. })
        ));
        let Err(PluginError::Unauthorized(message)) =
            Credentials::from_auth_data(&kv(&[("type", "voms")]))
        else {
            panic!("voms must be refused");
        };
        assert!(message.contains("1.10"), "{message}");
        let Err(PluginError::Unauthorized(message)) =
            Credentials::from_auth_data(&kv(&[("username", "u")]))
        else {
            panic!("a missing password must be refused");
        };
        assert!(message.contains("`password`"), "{message}");
    }
}
