//! A strict replay server: test scaffolding written here, standing in for a
//! cloud that has no emulator. It serves a vendor's own recorded answers (the
//! fixture files `scripts/fetch-recordings` fetches) in the order a cassette
//! (`tests/support/replay/*.json`, written here) lists them, on 127.0.0.1, and
//! records as a failure any request the cassette does not expect next: its
//! method, path, query and the body keys (JSON pointers) the vendor's API
//! takes must match. A driver that drifts from the recorded API fails its test.
//!
//! Loosenings, each marked in the cassette: an exchange with `repeat` may be
//! asked again until the next one is asked (a poll, whose count depends on
//! timing); one with `anytime` may be asked at any point (a read-only listing
//! occopus makes when it looks for instances it does not know); a `*` path
//! segment matches an id the client made up; `capture` keeps a value the
//! client sent for a later answer to echo, as the cloud would.
//! Answers no recording has are `stub`s, whose text says why. Addresses in
//! the answers are rewritten (`rewrite`) to loopback ones, so that a health
//! check of a replayed instance never leaves the machine.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Deserialize)]
pub struct Cassette {
    /// Where the answers come from (for messages).
    pub source: String,
    /// The directory of the fixture files, relative to the repository.
    pub fixtures: PathBuf,
    /// `user:password` of the basic credentials the cloud accepts.
    pub basic_auth: Option<String>,
    /// The answer to other credentials (a stub: no recording has one).
    pub unauthorized: Option<Answer>,
    /// Text replaced in every answer.
    #[serde(default)]
    pub rewrite: BTreeMap<String, String>,
    pub exchanges: Vec<Exchange>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Exchange {
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// JSON pointers that must exist in the request's body.
    #[serde(default)]
    pub body_keys: Vec<String>,
    #[serde(default)]
    pub repeat: bool,
    #[serde(default)]
    pub anytime: bool,
    /// Values of the request's body kept for later answers: name -> JSON
    /// pointer. A patch value `"${name}"` is replaced by the kept value (what
    /// a real cloud would echo, such as the meta a server was created with).
    #[serde(default)]
    pub capture: BTreeMap<String, String>,
    pub answer: Answer,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Answer {
    pub status: u16,
    /// A recorded answer: a fixture file.
    pub fixture: Option<String>,
    /// Keys replaced in the fixture (each use says why): a top-level key, or
    /// a JSON pointer (`/objects/0/meta/key`) for a value deeper down.
    #[serde(default)]
    pub patch: serde_json::Map<String, Value>,
    /// An answer written here because no recording has one: why.
    pub stub: Option<String>,
    /// The stub's body.
    pub body: Option<Value>,
}

struct Progress {
    /// The next exchange expected.
    next: usize,
    /// Values captured from requests.
    captured: BTreeMap<String, Value>,
    /// What did not match, in order.
    mismatches: Vec<String>,
}

struct Shared {
    cassette: Cassette,
    progress: Mutex<Progress>,
}

/// A running replay server; stopped when dropped.
pub struct Replay {
    pub url: String,
    shared: Arc<Shared>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Cassette {
    pub fn load(file: &str) -> Cassette {
        let path = crate::common::repository()
            .join("tests/support/replay")
            .join(file);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn fixture_dir(&self) -> PathBuf {
        crate::common::repository().join(&self.fixtures)
    }
}

impl Replay {
    /// Serves `cassette` on a free port of 127.0.0.1 (from its own thread, so
    /// that synchronous tests can use it).
    pub fn start(cassette: Cassette) -> Replay {
        let dir = cassette.fixture_dir();
        assert!(
            dir.join("LICENSE").exists(),
            "{} is missing: run scripts/fetch-recordings (scripts/setup --test does)",
            dir.display()
        );
        let shared = Arc::new(Shared {
            cassette,
            progress: Mutex::new(Progress {
                next: 0,
                captured: BTreeMap::new(),
                mismatches: Vec::new(),
            }),
        });
        let app = axum::Router::new()
            .fallback(serve)
            .with_state(shared.clone());
        let (url, stop) = crate::common::serve_in_thread(app);
        Replay {
            url,
            shared,
            _stop: stop,
        }
    }

    /// What did not match the cassette, in order.
    pub fn mismatches(&self) -> Vec<String> {
        self.shared.progress.lock().unwrap().mismatches.clone()
    }

    /// Every exchange was asked, and nothing else.
    pub fn assert_complete(&self) {
        let progress = self.shared.progress.lock().unwrap();
        let cassette = &self.shared.cassette;
        assert!(
            progress.mismatches.is_empty(),
            "requests the recording ({}) does not have:\n{}",
            cassette.source,
            progress.mismatches.join("\n")
        );
        let left: Vec<String> = cassette.exchanges[progress.next..]
            .iter()
            .filter(|e| !e.anytime)
            .map(|e| format!("{} {}", e.method, e.path))
            .collect();
        assert!(left.is_empty(), "recorded exchanges never asked: {left:?}");
    }
}

/// A request as the matcher sees it.
struct Asked {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    body: Option<Value>,
}

impl Exchange {
    /// Why `asked` is not this exchange, if it is not.
    fn differs(&self, asked: &Asked) -> Option<String> {
        // A `*` segment of the recorded path stands for any one segment (an
        // id the client makes up).
        let recorded: Vec<&str> = self.path.split('/').collect();
        let path_matches = recorded.len() == asked.path.split('/').count()
            && recorded
                .iter()
                .zip(asked.path.split('/'))
                .all(|(r, a)| *r == "*" || *r == a);
        if self.method != asked.method || !path_matches {
            return Some(format!("expected {} {}", self.method, self.path));
        }
        if self.query != asked.query {
            return Some(format!(
                "expected the query {:?}, got {:?}",
                self.query, asked.query
            ));
        }
        let missing: Vec<&String> = self
            .body_keys
            .iter()
            .filter(|key| asked.body.as_ref().and_then(|b| b.pointer(key)).is_none())
            .collect();
        (!missing.is_empty()).then(|| format!("the body lacks {missing:?}"))
    }
}

async fn serve(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let cassette = &shared.cassette;
    let asked = Asked {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri
            .query()
            .map(|q| {
                q.split('&')
                    .filter_map(|pair| pair.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect()
            })
            .unwrap_or_default(),
        body: serde_json::from_slice(&body).ok(),
    };
    if let (Some(expected), Some(refusal)) = (&cassette.basic_auth, &cassette.unauthorized) {
        use base64::Engine as _;
        let wanted = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(expected)
        );
        if headers.get("authorization").and_then(|h| h.to_str().ok()) != Some(wanted.as_str()) {
            return answer(cassette, refusal, &BTreeMap::new());
        }
    }
    let chosen = {
        let mut progress = shared.progress.lock().unwrap();
        let next = progress.next;
        let exchanges = &cassette.exchanges;
        let expected = exchanges.get(next);
        let previous = next.checked_sub(1).map(|i| &exchanges[i]);
        if let Some(e) = expected.filter(|e| e.differs(&asked).is_none()) {
            progress.next += 1;
            Ok(e.clone())
        } else if let Some(e) = previous.filter(|e| e.repeat && e.differs(&asked).is_none()) {
            Ok(e.clone())
        } else if let Some(e) = exchanges
            .iter()
            .find(|e| e.anytime && e.differs(&asked).is_none())
        {
            Ok(e.clone())
        } else {
            let why = match expected {
                Some(e) => e.differs(&asked).unwrap_or_default(),
                None => "the recording has ended".to_owned(),
            };
            let mismatch = format!(
                "{} {}{} (exchange {next}): {why}",
                asked.method,
                asked.path,
                uri.query().map(|q| format!("?{q}")).unwrap_or_default()
            );
            progress.mismatches.push(mismatch.clone());
            Err(mismatch)
        }
    };
    match chosen {
        Ok(exchange) => {
            let mut progress = shared.progress.lock().unwrap();
            for (name, pointer) in &exchange.capture {
                if let Some(value) = asked.body.as_ref().and_then(|b| b.pointer(pointer)) {
                    progress.captured.insert(name.clone(), value.clone());
                }
            }
            answer(cassette, &exchange.answer, &progress.captured)
        }
        Err(mismatch) => (
            StatusCode::from_u16(599).unwrap(),
            format!(
                "replay: not in the recording {}: {mismatch}",
                cassette.source
            ),
        )
            .into_response(),
    }
}

fn answer(
    cassette: &Cassette,
    answer: &Answer,
    captured: &BTreeMap<String, Value>,
) -> axum::response::Response {
    let status = StatusCode::from_u16(answer.status).unwrap();
    let body = match (&answer.fixture, &answer.body) {
        (Some(file), _) => {
            let path: PathBuf = cassette.fixture_dir().join(file);
            let mut json: Value = read_json(&path);
            for (key, value) in &answer.patch {
                let (parent, name) = match key.rsplit_once('/') {
                    Some((parent, name)) if key.starts_with('/') => (parent, name),
                    _ => ("", key.as_str()),
                };
                let object = json.pointer_mut(parent).and_then(Value::as_object_mut);
                let value = match value.as_str().and_then(|v| v.strip_prefix("${")) {
                    Some(name) => captured
                        .get(name.trim_end_matches('}'))
                        .cloned()
                        .unwrap_or_else(|| panic!("{file}: nothing captured as `{value}`")),
                    None => value.clone(),
                };
                object
                    .unwrap_or_else(|| panic!("{file}: no object at `{parent}` to patch"))
                    .insert(name.to_owned(), value);
            }
            json.to_string()
        }
        (None, Some(body)) => body.to_string(),
        (None, None) => String::new(),
    };
    let body = cassette
        .rewrite
        .iter()
        .fold(body, |body, (from, to)| body.replace(from.as_str(), to));
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        axum::http::HeaderValue::from_static("application/json"),
    );
    // A stub says so in the traffic too, for whoever debugs a driver with it.
    if let Some(why) = answer.stub.as_deref().and_then(|w| w.parse().ok()) {
        headers.insert("x-replay-stub", why);
    }
    response
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
