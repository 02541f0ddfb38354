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
//!
//! An exchange may come whole from a vcrpy recording (`recorded:
//! "file.yaml#N"`, as Microsoft's Azure SDKs ship them): its method, path,
//! query (with the `api-version`) and answer (status, body, and the
//! `Azure-AsyncOperation`, `Location` and `Retry-After` headers) are the
//! recording's, and every key of the body the vendor's SDK sent is required,
//! but for the `unsent` ones the cassette names. Resource names the client
//! makes up are `names`: a recorded name binds to the client's name the
//! first time it is asked, must be the same afterwards, and is replaced by
//! it in every answer. `bearer` requires the token a sign-in exchange gave;
//! `retry_after` asks the client not to wait as long as the real operation took.

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
    /// Text replaced in every answer (`${url}` in a replacement: this
    /// server's own URL).
    #[serde(default)]
    pub rewrite: BTreeMap<String, String>,
    /// The fixture directory's file that carries the recordings' licence.
    #[serde(default = "default_licence")]
    pub licence: String,
    /// Recorded resource names the client chooses -> the name of the binding
    /// (several recordings may name one resource differently).
    #[serde(default)]
    pub names: BTreeMap<String, String>,
    /// The bearer token every exchange but the `sign_in` ones must carry.
    pub bearer: Option<String>,
    /// `Retry-After` sent with each recorded answer that starts a
    /// long-running operation (the recording's timing is not replayed: a
    /// test need not wait as long as Azure took).
    pub retry_after: Option<String>,
    pub exchanges: Vec<Exchange>,
}

fn default_licence() -> String {
    "LICENSE".into()
}

#[derive(Debug, Clone, Deserialize)]
pub struct Exchange {
    /// `file.yaml#N`: the N-th interaction of a vcrpy recording of the
    /// fixture directory gives what the exchange leaves out.
    pub recorded: Option<String>,
    #[serde(default)]
    pub method: String,
    #[serde(default)]
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
    /// JSON pointers of a recorded request body the client need not send
    /// (the SDK's test set things the driver does not use).
    #[serde(default)]
    pub unsent: Vec<String>,
    /// A sign-in: no bearer token required.
    #[serde(default)]
    pub sign_in: bool,
    /// Body values that must be sent as given; otherwise `refusal` answers
    /// (credentials).
    #[serde(default)]
    pub expect: BTreeMap<String, Value>,
    pub refusal: Option<Answer>,
    #[serde(default)]
    pub answer: Answer,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Answer {
    /// The status; 0 (left out): the recorded one.
    #[serde(default)]
    pub status: u16,
    /// Headers sent with the answer (a recorded exchange's
    /// `Azure-AsyncOperation`, `Location`, `Retry-After`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A recorded exchange's answer body.
    #[serde(skip)]
    pub recorded_body: Option<String>,
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
    /// Binding -> the name the client gave.
    bound: BTreeMap<String, String>,
}

struct Shared {
    cassette: Cassette,
    progress: Mutex<Progress>,
    /// This server's URL, known once it listens.
    url: Mutex<String>,
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
        let mut cassette: Cassette =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut recordings = BTreeMap::new();
        let dir = cassette.fixture_dir();
        for exchange in &mut cassette.exchanges {
            if let Some(reference) = exchange.recorded.clone() {
                let (file, index) = reference
                    .split_once('#')
                    .unwrap_or_else(|| panic!("{file}: `{reference}` is not `file.yaml#N`"));
                let interactions = recordings
                    .entry(file.to_owned())
                    .or_insert_with(|| vcr_interactions(&dir.join(file)));
                let index: usize = index.parse().expect("an interaction number");
                exchange.fill_from(&interactions[index]);
                let headers = &mut exchange.answer.headers;
                if let Some(seconds) = &cassette.retry_after
                    && (headers.contains_key("azure-asyncoperation")
                        || headers.contains_key("location"))
                {
                    headers
                        .entry("retry-after".into())
                        .or_insert(seconds.clone());
                }
            }
        }
        cassette
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
            dir.join(&cassette.licence).exists(),
            "{} is missing: run scripts/fetch-recordings (scripts/setup --test does)",
            dir.display()
        );
        let shared = Arc::new(Shared {
            url: Mutex::new(String::new()),
            cassette,
            progress: Mutex::new(Progress::empty()),
        });
        let app = axum::Router::new()
            .fallback(serve)
            .with_state(shared.clone());
        let (url, stop) = crate::common::serve_in_thread(app);
        *shared.url.lock().unwrap() = url.clone();
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
    /// A JSON body, or a form's fields as a JSON object of strings.
    body: Option<Value>,
    authorization: Option<String>,
}

/// The interactions of a vcrpy recording.
fn vcr_interactions(path: &Path) -> Vec<serde_yaml::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run scripts/fetch-recordings (scripts/setup --test does)",
            path.display()
        )
    });
    let recording: serde_yaml::Value =
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    recording["interactions"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{}: no interactions", path.display()))
        .clone()
}

/// A recorded body as text: vcrpy keeps some as Python's `b'...'` repr.
fn recorded_text(body: &serde_yaml::Value) -> Option<String> {
    let text = body.as_str().or_else(|| body["string"].as_str())?;
    let text = text
        .strip_prefix("b'")
        .and_then(|t| t.strip_suffix('\''))
        .unwrap_or(text);
    Some(text.to_owned())
}

/// Every leaf of a JSON document as a JSON pointer (array items by index).
fn leaf_pointers(value: &Value, at: &str, into: &mut Vec<String>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, item) in map {
                leaf_pointers(item, &format!("{at}/{key}"), into);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (index, item) in items.iter().enumerate() {
                leaf_pointers(item, &format!("{at}/{index}"), into);
            }
        }
        _ => into.push(at.to_owned()),
    }
}

fn parse_query(query: Option<&str>) -> BTreeMap<String, String> {
    query
        .map(|q| {
            q.split('&')
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

impl Exchange {
    /// Takes what the cassette left out from a recorded interaction.
    fn fill_from(&mut self, interaction: &serde_yaml::Value) {
        let request = &interaction["request"];
        let uri: Uri = request["uri"]
            .as_str()
            .expect("a recorded uri")
            .parse()
            .unwrap();
        if self.method.is_empty() {
            self.method = request["method"].as_str().unwrap().to_owned();
        }
        if self.path.is_empty() {
            self.path = uri.path().to_owned();
            self.query = parse_query(uri.query());
        }
        if let Some(body) = recorded_text(&request["body"])
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        {
            let mut pointers = Vec::new();
            leaf_pointers(&body, "", &mut pointers);
            pointers.retain(|p| !self.unsent.iter().any(|u| p.starts_with(u.as_str())));
            self.body_keys.extend(pointers);
        }
        let response = &interaction["response"];
        if self.answer.status == 0 {
            self.answer.status = response["status"]["code"].as_u64().unwrap() as u16;
        }
        if self.answer.fixture.is_none() && self.answer.body.is_none() {
            self.answer.recorded_body = recorded_text(&response["body"]);
        }
        if let Some(headers) = response["headers"].as_mapping() {
            for (name, values) in headers {
                let name = name.as_str().unwrap_or_default().to_ascii_lowercase();
                let value = values
                    .as_sequence()
                    .and_then(|v| v.first())
                    .or(Some(values))
                    .and_then(serde_yaml::Value::as_str);
                if let (true, Some(value)) = (
                    matches!(
                        name.as_str(),
                        "azure-asyncoperation" | "location" | "retry-after"
                    ),
                    value,
                ) {
                    self.answer.headers.entry(name).or_insert(value.to_owned());
                }
            }
        }
    }

    /// Why `asked` is not this exchange, if it is not. A `*` segment of the
    /// recorded path stands for any one segment (an id the client made up); a
    /// recorded name stands for the name bound to it, or any while unbound.
    fn differs(
        &self,
        asked: &Asked,
        names: &BTreeMap<String, String>,
        bound: &BTreeMap<String, String>,
    ) -> Option<String> {
        let recorded: Vec<&str> = self.path.split('/').collect();
        let path_matches = recorded.len() == asked.path.split('/').count()
            && recorded.iter().zip(asked.path.split('/')).all(|(r, a)| {
                *r == "*"
                    || names.get(*r).is_some_and(|key| !bound.contains_key(key))
                    || with_bound_names(r, names, bound) == a
            });
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

    /// Binds the recorded names of this exchange's path to the asked ones.
    fn bind(
        &self,
        asked: &Asked,
        names: &BTreeMap<String, String>,
        bound: &mut BTreeMap<String, String>,
    ) {
        for (r, a) in self.path.split('/').zip(asked.path.split('/')) {
            if let Some(key) = names.get(r) {
                bound.entry(key.clone()).or_insert_with(|| a.to_owned());
            }
        }
    }
}

/// `text` with each recorded name that is bound replaced by the client's
/// name (longer names first, so that no name is cut inside another).
fn with_bound_names(
    text: &str,
    names: &BTreeMap<String, String>,
    bound: &BTreeMap<String, String>,
) -> String {
    let mut recorded: Vec<(&String, &String)> = names.iter().collect();
    recorded.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    recorded
        .iter()
        .fold(text.to_owned(), |text, (name, key)| match bound.get(*key) {
            Some(given) => text.replace(name.as_str(), given),
            None => text,
        })
}

async fn serve(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let cassette = &shared.cassette;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
    };
    let form =
        header("content-type").is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let asked = Asked {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: parse_query(uri.query()),
        body: if form {
            Some(Value::Object(
                form_urlencoded::parse(&body)
                    .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                    .collect(),
            ))
        } else {
            serde_json::from_slice(&body).ok()
        },
        authorization: header("authorization"),
    };
    let url = shared.url.lock().unwrap().clone();
    if let (Some(expected), Some(refusal)) = (&cassette.basic_auth, &cassette.unauthorized) {
        use base64::Engine as _;
        let wanted = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(expected)
        );
        if asked.authorization.as_deref() != Some(wanted.as_str()) {
            return answer(cassette, refusal, &Progress::empty(), &url);
        }
    }
    let chosen = {
        let mut progress = shared.progress.lock().unwrap();
        let exchanges = &cassette.exchanges;
        // `anytime` exchanges have no place in the order.
        while exchanges.get(progress.next).is_some_and(|e| e.anytime) {
            progress.next += 1;
        }
        let next = progress.next;
        let expected = exchanges.get(next);
        let previous = next.checked_sub(1).map(|i| &exchanges[i]);
        let fits = |e: &Exchange| {
            e.differs(&asked, &cassette.names, &progress.bound)
                .is_none()
        };
        let found = if let Some(e) = expected.filter(|e| fits(e)) {
            Some((e.clone(), true))
        } else if let Some(e) = previous.filter(|e| e.repeat && fits(e)) {
            Some((e.clone(), false))
        } else {
            exchanges
                .iter()
                .find(|e| e.anytime && fits(e))
                .map(|e| (e.clone(), false))
        };
        let unsigned = |e: &Exchange| {
            cassette.bearer.as_ref().is_some_and(|token| {
                !e.sign_in && asked.authorization.as_deref() != Some(&format!("Bearer {token}"))
            })
        };
        match found {
            Some((e, _)) if unsigned(&e) => {
                let mismatch = format!(
                    "{} {} (exchange {next}): the request lacks the bearer token of the sign-in",
                    asked.method, asked.path
                );
                progress.mismatches.push(mismatch.clone());
                Err(mismatch)
            }
            Some((e, advance)) => {
                if advance {
                    progress.next += 1;
                }
                let bound = &mut progress.bound;
                e.bind(&asked, &cassette.names, bound);
                Ok(e)
            }
            None => {
                let why = match expected {
                    Some(e) => e
                        .differs(&asked, &cassette.names, &progress.bound)
                        .unwrap_or_default(),
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
            let refused = exchange.expect.iter().any(|(pointer, value)| {
                asked.body.as_ref().and_then(|b| b.pointer(pointer)) != Some(value)
            });
            match (&exchange.refusal, refused) {
                (Some(refusal), true) => answer(cassette, refusal, &progress, &url),
                _ => answer(cassette, &exchange.answer, &progress, &url),
            }
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

impl Progress {
    /// Nothing asked yet.
    fn empty() -> Progress {
        Progress {
            next: 0,
            captured: BTreeMap::new(),
            mismatches: Vec::new(),
            bound: BTreeMap::new(),
        }
    }
}

fn answer(
    cassette: &Cassette,
    answer: &Answer,
    progress: &Progress,
    url: &str,
) -> axum::response::Response {
    let status = StatusCode::from_u16(answer.status).unwrap();
    let source = match (&answer.fixture, &answer.recorded_body, &answer.body) {
        (Some(file), _, _) => Some((file.clone(), read_json(&cassette.fixture_dir().join(file)))),
        (None, Some(text), _) if !text.is_empty() => Some((
            "the recorded answer".to_owned(),
            serde_json::from_str(text).unwrap_or_else(|e| panic!("a recorded answer: {e}")),
        )),
        (None, _, Some(body)) => Some(("the stub".to_owned(), body.clone())),
        _ => None,
    };
    let body = match source {
        Some((file, mut json)) => {
            for (key, value) in &answer.patch {
                let (parent, name) = match key.rsplit_once('/') {
                    Some((parent, name)) if key.starts_with('/') => (parent, name),
                    _ => ("", key.as_str()),
                };
                let object = json.pointer_mut(parent).and_then(Value::as_object_mut);
                let value = match value.as_str().and_then(|v| v.strip_prefix("${")) {
                    Some(name) => progress
                        .captured
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
        None => String::new(),
    };
    let replace = |text: &str| {
        let text = cassette
            .rewrite
            .iter()
            .fold(text.to_owned(), |text, (from, to)| {
                text.replace(from.as_str(), &to.replace("${url}", url))
            });
        with_bound_names(&text, &cassette.names, &progress.bound)
    };
    let mut response = (status, replace(&body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        axum::http::HeaderValue::from_static("application/json"),
    );
    for (name, value) in &answer.headers {
        headers.insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            replace(value).parse().unwrap(),
        );
    }
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
