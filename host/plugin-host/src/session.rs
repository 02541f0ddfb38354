//! What a driver keeps between its calls, and the hosts its endpoint names:
//! the `session` interface of the contract (0.1.1).
//!
//! Each call runs in a fresh instance, so a driver that signs in (OpenStack's
//! Keystone) would otherwise sign in again on every status poll. The host
//! keeps a small store per driver, resource `endpoint` and credentials (the
//! [`Scope`]): calls for another endpoint or other credentials never see it.
//! Values are secrets to the host (masked in what the plugin logs), expire,
//! and live only in this process's memory.
//!
//! Discovered hosts: OpenStack's entry point answers with a catalog of the
//! cloud's other services, on other ports or hosts. A call may ask to reach
//! one; the host grants it for that call when the URL appeared in a
//! successful answer of the resource's endpoint itself, or was granted so
//! earlier in the same session (the catalog is cached, so later calls do not
//! fetch it again). A URL named only by another host, in an error answer, or
//! made up by the plugin stays refused: the chain of trust starts at the
//! endpoint the user wrote.

use crate::allow_list::Authority;
use occopus_types::CloudTarget;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest a value may be kept.
pub const MAX_TTL: Duration = Duration::from_secs(86_400);
/// The largest value a session keeps.
pub const MAX_VALUE_BYTES: usize = 256 << 10;
/// The most keys one session holds.
pub const MAX_KEYS: usize = 64;
/// How much of one call's answers from its endpoint is kept to check
/// discovered URLs against.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Which calls share a session: the resource's endpoint and a digest of the
/// credentials (the credentials themselves are not kept twice).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Scope {
    endpoint: String,
    credentials: blake3::Hash,
}

/// The sessions of one driver.
#[derive(Default)]
pub struct Sessions {
    by_scope: Mutex<HashMap<Scope, Arc<Session>>>,
}

impl Sessions {
    /// The session of calls on `target`; none when it has no endpoint (such
    /// a call reaches no host that could name another).
    pub fn of(&self, target: &CloudTarget) -> Option<Arc<Session>> {
        let endpoint = target.endpoint()?;
        let authority = Authority::of_url(endpoint);
        let mut pairs: Vec<&(String, String)> = target.credentials.pairs().iter().collect();
        pairs.sort();
        let mut digest = blake3::Hasher::new();
        for (key, value) in pairs {
            for part in [key, value] {
                digest.update(&(part.len() as u64).to_le_bytes());
                digest.update(part.as_bytes());
            }
        }
        let scope = Scope {
            endpoint: endpoint.to_owned(),
            credentials: digest.finalize(),
        };
        let mut sessions = self.by_scope.lock().unwrap_or_else(|e| e.into_inner());
        Some(
            sessions
                .entry(scope)
                .or_insert_with(|| Arc::new(Session::new(authority)))
                .clone(),
        )
    }
}

/// One scope's stored values and verified discovered hosts.
pub struct Session {
    /// The endpoint whose answers may name other hosts.
    endpoint: Option<Authority>,
    state: Mutex<SessionState>,
}

#[derive(Default)]
struct SessionState {
    values: HashMap<String, Stored>,
    discovered: HashSet<Authority>,
}

struct Stored {
    value: String,
    expires: Instant,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values are secrets: only their number is shown.
        let keys = self.lock().values.len();
        f.debug_struct("Session")
            .field("endpoint", &self.endpoint)
            .field("keys", &keys)
            .finish()
    }
}

impl Session {
    fn new(endpoint: Option<Authority>) -> Self {
        Session {
            endpoint,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The endpoint whose answers are recorded for [`Session::check_discovered`].
    pub fn endpoint(&self) -> Option<&Authority> {
        self.endpoint.as_ref()
    }

    /// The value under `key`, unless it expired.
    pub fn get(&self, key: &str) -> Option<String> {
        let mut state = self.lock();
        match state.values.get(key) {
            Some(stored) if stored.expires > Instant::now() => Some(stored.value.clone()),
            Some(_) => {
                state.values.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keeps `value` under `key` for `ttl` (capped at [`MAX_TTL`]).
    pub fn put(&self, key: &str, value: String, ttl: Duration) -> Result<(), String> {
        if value.len() > MAX_VALUE_BYTES {
            return Err(format!(
                "the value of `{key}` is {} bytes; a session keeps values of at most {MAX_VALUE_BYTES} bytes",
                value.len()
            ));
        }
        let now = Instant::now();
        let mut state = self.lock();
        state.values.retain(|_, stored| stored.expires > now);
        if !state.values.contains_key(key) && state.values.len() >= MAX_KEYS {
            return Err(format!(
                "the session already holds {MAX_KEYS} keys; reuse a key instead of `{key}`"
            ));
        }
        let expires = now + ttl.min(MAX_TTL);
        state
            .values
            .insert(key.to_owned(), Stored { value, expires });
        Ok(())
    }

    /// The values now stored, to mask in what the plugin says.
    pub fn values(&self) -> Vec<String> {
        let now = Instant::now();
        self.lock()
            .values
            .values()
            .filter(|stored| stored.expires > now)
            .map(|stored| stored.value.clone())
            .collect()
    }

    /// Whether `url` may be reached in a call whose endpoint answered
    /// `answers`: its authority was verified earlier in this session, or `url`
    /// is in those answers (and is then remembered). The error says why not.
    pub fn check_discovered(
        &self,
        url: &str,
        answers: &EndpointAnswers,
    ) -> Result<Authority, String> {
        let refuse = |why: &str| {
            format!(
                "`{url}` {why}; if the plugin is meant to reach it, add its host to \
                 `plugins.allowed_hosts` (or `plugins.settings.<plugin>.allowed_hosts`)"
            )
        };
        let scheme_ok = ["http://", "https://"].iter().any(|s| {
            url.get(..s.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(s))
        });
        let authority = Authority::of_url(url)
            .filter(|_| scheme_ok)
            .ok_or_else(|| refuse("is not an http or https URL"))?;
        if self.lock().discovered.contains(&authority) {
            return Ok(authority);
        }
        if self.endpoint.is_none() {
            return Err(refuse(
                "cannot be discovered: the resource's endpoint is not a URL",
            ));
        }
        if !answers.contains(url) {
            return Err(refuse(
                "did not appear in a successful answer of the resource's endpoint in this session",
            ));
        }
        self.lock().discovered.insert(authority.clone());
        Ok(authority)
    }
}

/// The successful answers one call received from its resource's endpoint (up
/// to 1 MiB), recorded as they stream into the plugin.
#[derive(Clone, Default)]
pub struct EndpointAnswers(Arc<Mutex<Vec<u8>>>);

impl EndpointAnswers {
    /// Appends what fits of `bytes`.
    pub fn record(&self, bytes: &[u8]) {
        let mut answers = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let room = MAX_ANSWER_BYTES.saturating_sub(answers.len());
        answers.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// Whether `url` appears in the answers as written, or with its slashes
    /// escaped as JSON may write them (`\/`).
    fn contains(&self, url: &str) -> bool {
        let answers = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let escaped = url.replace('/', "\\/");
        [url, escaped.as_str()].iter().any(|needle| {
            !needle.is_empty()
                && answers
                    .windows(needle.len())
                    .any(|window| window == needle.as_bytes())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use occopus_types::Credentials;
    use serde_json::json;

    fn target(endpoint: &str, password: &str) -> CloudTarget {
        let mut target = CloudTarget::new(
            json!({"type": "nova", "endpoint": endpoint})
                .as_object()
                .unwrap()
                .clone(),
        );
        target.credentials = Credentials::new([("password".into(), password.into())]);
        target
    }

    #[test]
    fn a_session_is_shared_by_one_endpoint_and_credentials_only() {
        let sessions = Sessions::default();
        let one = sessions.of(&target("http://127.0.0.1:5000", "a")).unwrap();
        one.put("token", "t0k3n".into(), Duration::from_secs(60))
            .unwrap();
        let again = sessions.of(&target("http://127.0.0.1:5000", "a")).unwrap();
        assert_eq!(again.get("token").as_deref(), Some("t0k3n"));
        let other_password = sessions.of(&target("http://127.0.0.1:5000", "b")).unwrap();
        assert_eq!(other_password.get("token"), None);
        let other_endpoint = sessions.of(&target("http://127.0.0.1:5001", "a")).unwrap();
        assert_eq!(other_endpoint.get("token"), None);
        let no_endpoint = CloudTarget::new(json!({"type": "nova"}).as_object().unwrap().clone());
        assert!(sessions.of(&no_endpoint).is_none());
    }

    #[test]
    fn values_expire_and_are_bounded() {
        let session = Session::new(None);
        session.put("gone", "x".into(), Duration::ZERO).unwrap();
        assert_eq!(session.get("gone"), None);
        let error = session
            .put(
                "big",
                "x".repeat(MAX_VALUE_BYTES + 1),
                Duration::from_secs(1),
            )
            .unwrap_err();
        assert!(error.contains("at most"), "{error}");
        for n in 0..MAX_KEYS {
            session
                .put(&format!("k{n}"), "v".into(), Duration::from_secs(60))
                .unwrap();
        }
        let error = session
            .put("one-more", "v".into(), Duration::from_secs(60))
            .unwrap_err();
        assert!(error.contains("64 keys"), "{error}");
        session
            .put("k0", "replaced".into(), Duration::from_secs(60))
            .unwrap();
        assert_eq!(session.get("k0").as_deref(), Some("replaced"));
    }

    #[test]
    fn a_discovered_url_must_come_from_the_endpoint() {
        let session = Session::new(Authority::of_url("http://127.0.0.1:5000/v3"));
        let answers = EndpointAnswers::default();
        answers.record(br#"{"catalog": [{"url": "http:\/\/127.0.0.1:8774\/v2.1"}]}"#);
        let granted = session
            .check_discovered("http://127.0.0.1:8774/v2.1", &answers)
            .unwrap();
        assert_eq!(granted.to_string(), "127.0.0.1:8774");
        // Remembered for later calls, whose answers do not repeat the catalog.
        let later = EndpointAnswers::default();
        assert!(
            session
                .check_discovered("http://127.0.0.1:8774/v2.1", &later)
                .is_ok()
        );
        let error = session
            .check_discovered("http://127.0.0.1:9999/", &later)
            .unwrap_err();
        assert!(error.contains("plugins.allowed_hosts"), "{error}");
        let error = session
            .check_discovered("ftp://127.0.0.1/", &answers)
            .unwrap_err();
        assert!(error.contains("not an http"), "{error}");
    }
}
