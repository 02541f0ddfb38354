//! The REST service over real HTTP, against the running binary: Occopus's
//! flow (create, report until ready, scale up and down, delete) on the local
//! cloud, and bad requests each answered with the right status and message.

use crate::common::{KillOnDrop, Occopus, WEB_NODE_DEFINITION};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

const TOKEN: &str = "test-token-7f3a";

const NODES: &str = WEB_NODE_DEFINITION;

const INFRA: &str =
    "infra_name: rest-flow\nnodes:\n  - {name: web, type: web, scaling: {min: 1, max: 3}}\n";

/// `occopus serve` on a free port of 127.0.0.1, with a token; killed when dropped.
struct RestService {
    _process: KillOnDrop,
    base: String,
    client: reqwest::Client,
}

impl RestService {
    fn start(occopus: &Occopus) -> RestService {
        RestService::start_with(occopus, &[])
    }

    /// With more `occopus serve` flags.
    fn start_with(occopus: &Occopus, flags: &[&str]) -> RestService {
        let mut args = vec!["serve", "--port", "0", "--maintain-interval", "0.3"];
        args.extend_from_slice(flags);
        let mut process = occopus
            .command(&args)
            .env("OCCOPUS_API_TOKEN", TOKEN)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = process.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let base = loop {
            let line = lines
                .next()
                .expect("the service ended before listening")
                .unwrap();
            if let Some(address) = line.strip_prefix("occopus REST service listening on ") {
                break address.to_owned();
            }
        };
        // Keep draining its log so that it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        RestService {
            _process: KillOnDrop(process),
            base,
            client: reqwest::Client::new(),
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// The infra's event stream, opened (200 and an uncached event stream
    /// asserted).
    async fn events(&self, infra_id: &str) -> reqwest::Response {
        let events = self
            .client
            .get(format!("{}/infrastructures/{infra_id}/events", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(events.status(), 200);
        assert_eq!(events.headers()["content-type"], "text/event-stream");
        assert_eq!(events.headers()["cache-control"], "no-cache");
        events
    }

    async fn call(&self, method: &str, path: &str, body: Option<String>) -> (u16, Value) {
        self.send(method, path, Some(TOKEN), body).await
    }

    /// Polls the report until `check` holds (60 s).
    async fn report_until(&self, id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, report) = self
                .call("GET", &format!("/infrastructures/{id}"), None)
                .await;
            if status == 200 && check(&report) {
                return report;
            }
            assert!(
                Instant::now() < deadline,
                "never {what}: {status} {report:#}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn ready_count(report: &Value) -> usize {
    report["web"]["instances"]
        .as_object()
        .map(|instances| instances.values().filter(|i| i["state"] == "ready").count())
        .unwrap_or(0)
}

#[tokio::test]
async fn occopus_flow_over_http() {
    let occopus = Occopus::new(51);
    let service = RestService::start(&occopus);

    let (status, imported) = service.call("POST", "/nodedefs", Some(NODES.into())).await;
    assert_eq!(
        (status, imported.clone()),
        (200, serde_json::json!({"imported": ["web"]}))
    );

    let (status, created) = service
        .call("POST", "/infrastructures/", Some(INFRA.into()))
        .await;
    assert_eq!(status, 200, "{created}");
    let id = created["infraid"].as_str().unwrap().to_owned();
    // At once, maybe before its build has recorded it: the dashboard's
    // detail says it is there (`accepted` until recorded), never 404.
    let (status, detail) = service
        .call("GET", &format!("/infrastructures/{id}/detail"), None)
        .await;
    assert_eq!(
        (status, detail["id"].as_str()),
        (200, Some(id.as_str())),
        "{detail}"
    );

    // Watch the infra's story from its build to its end.
    let mut events = service.events(&id).await;
    assert!(events.headers().contains_key("x-request-id"));
    let mut seen = String::new();
    read_events_until(&mut events, &mut seen, |seen| {
        seen.contains("event: infra-built")
    })
    .await;

    let report = service
        .report_until(&id, "ready", |r| ready_count(r) == 1)
        .await;
    let instance = &crate::common::instances(&report, "web")[0];
    assert!(
        instance["resource_address"]
            .as_str()
            .unwrap()
            .starts_with("127.80.51.")
    );
    assert_eq!(instance["health"]["status"], "healthy");
    assert_eq!(report["web"]["scaling"]["min"], 1);
    assert_eq!(report["web"]["scaling"]["max"], 3);

    let (status, list) = service.call("GET", "/infrastructures/", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["infrastructures"], serde_json::json!([id]));
    assert_eq!(list["infrastuctures"], list["infrastructures"]);

    let (status, answer) = service
        .call(
            "POST",
            &format!("/infrastructures/{id}/scaleup/web/2"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        serde_json::json!({"method": "scaleup", "infraid": id, "nodename": "web", "count": 2})
    );
    service
        .report_until(&id, "scaled up to 3", |r| ready_count(r) == 3)
        .await;
    read_events_until(&mut events, &mut seen, |seen| {
        seen.matches("event: ready").count() >= 3
    })
    .await;
    assert!(seen.contains("event: creating"), "{seen}");
    assert!(seen.contains(&format!("\"infra_id\":\"{id}\"")), "{seen}");

    let (status, answer) = service
        .call("POST", &format!("/infrastructures/{id}/scaleup/web"), None)
        .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["status_code"], 422);
    let (status, answer) = service
        .call("POST", &format!("/infrastructures/{id}/scaleup/nope"), None)
        .await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(answer["error"]["code"], "unknown-node", "{answer}");

    let (status, answer) = service
        .call(
            "POST",
            &format!("/infrastructures/{id}/scaledown/web"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["nodeid"], Value::Null);
    service
        .report_until(&id, "scaled down to 2", |r| ready_count(r) == 2)
        .await;

    let (status, answer) = service
        .call("DELETE", &format!("/infrastructures/{id}"), None)
        .await;
    assert_eq!((status, answer), (200, serde_json::json!({"infraid": id})));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, report) = service
            .call("GET", &format!("/infrastructures/{id}"), None)
            .await;
        let live = report["web"]["instances"]
            .as_object()
            .map(|i| i.values().filter(|i| i["state"] != "destroyed").count())
            .unwrap_or(0);
        if live == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "never destroyed: {report:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The stream's last event is `infra-destroyed`, then it ends.
    read_events_until(&mut events, &mut seen, |seen| {
        seen.contains("event: infra-destroyed")
    })
    .await;
    let rest = tokio::time::timeout(Duration::from_secs(10), events.chunk())
        .await
        .expect("the stream stays open after `infra-destroyed`")
        .unwrap();
    assert_eq!(rest, None, "{seen}");
}

/// Reads Server-Sent Events into `seen` until `enough` (30 s at most).
async fn read_events_until(
    events: &mut reqwest::Response,
    seen: &mut String,
    enough: impl Fn(&str) -> bool,
) {
    while !enough(seen) {
        let chunk = tokio::time::timeout(Duration::from_secs(30), events.chunk())
            .await
            .unwrap_or_else(|_| panic!("no such event within 30 s: {seen}"))
            .unwrap()
            .unwrap_or_else(|| panic!("the event stream ended: {seen}"));
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

/// method, path, token, body, expected status, words the answer must contain.
type BadRequest = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<String>,
    u16,
    &'static str,
);

#[tokio::test]
async fn bad_requests_get_the_right_status_and_a_clear_message() {
    let occopus = Occopus::new(52);
    let service = RestService::start(&occopus);
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for (name, prev) in ('b'..='k').zip('a'..='j') {
        bomb.push_str(&format!("{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
    }
    let deep = format!(
        "infra_name: d\nnodes: {}{}\n",
        "[".repeat(300),
        "]".repeat(300)
    );
    let cases: Vec<BadRequest> = vec![
        (
            "GET",
            "/infrastructures/",
            None,
            None,
            401,
            "Authorization: Bearer",
        ),
        (
            "GET",
            "/infrastructures/",
            Some("wrong-token"),
            None,
            401,
            "Authorization: Bearer",
        ),
        (
            "POST",
            "/infrastructures/",
            None,
            Some(INFRA.into()),
            401,
            "Authorization: Bearer",
        ),
        (
            "POST",
            "/infrastructures/",
            Some(TOKEN),
            None,
            400,
            "Empty POST data",
        ),
        (
            "POST",
            "/infrastructures/",
            Some(TOKEN),
            Some("nodes: [unclosed".into()),
            400,
            "<posted description>:",
        ),
        (
            "POST",
            "/infrastructures/",
            Some(TOKEN),
            Some("infra_name: 5\nnodes: {}\n".into()),
            400,
            "<posted description>:",
        ),
        (
            "POST",
            "/infrastructures/",
            Some(TOKEN),
            Some("infra_name: x\nnodes:\n  - {name: a, type: nope}\n".into()),
            400,
            "nope",
        ),
        (
            "POST",
            "/infrastructures/",
            Some(TOKEN),
            Some(bomb.clone()),
            400,
            "alias bomb",
        ),
        (
            "POST",
            "/infrastructures/",
            Some(TOKEN),
            Some(deep.clone()),
            400,
            "nested deeper than 255 levels",
        ),
        (
            "POST",
            "/infrastructures/",
            Some(TOKEN),
            Some("infra_name: x\nnodes: !yaml_import {url: file:///etc/passwd}\n".into()),
            400,
            "is not allowed here",
        ),
        (
            "POST",
            "/validate",
            Some(TOKEN),
            Some("infra_name: x\nnodes: !text_import {url: 'file://../../etc/passwd'}\n".into()),
            400,
            "is not allowed here",
        ),
        (
            "POST",
            "/nodedefs",
            Some(TOKEN),
            Some("'node_def:x': 5\n".into()),
            400,
            "<posted node definitions>",
        ),
        (
            "GET",
            "/infrastructures/no-such-infra",
            Some(TOKEN),
            None,
            404,
            "no infrastructure `no-such-infra`",
        ),
        (
            "DELETE",
            "/infrastructures/no-such-infra",
            Some(TOKEN),
            None,
            404,
            "no infrastructure",
        ),
        (
            "POST",
            "/infrastructures/no-such-infra/scaleup/web",
            Some(TOKEN),
            None,
            404,
            "no infrastructure",
        ),
        (
            "POST",
            "/infrastructures/x/scaleup/web/many",
            Some(TOKEN),
            None,
            400,
            "`many` is not a count: give a whole number from 1 to 4294967295",
        ),
        (
            "GET",
            "/no/such/path",
            Some(TOKEN),
            None,
            404,
            "no such path",
        ),
        (
            "GET",
            "/infrastructures/",
            Some(""),
            None,
            401,
            "Authorization: Bearer",
        ),
        (
            "GET",
            "/infrastructures/",
            Some("test-token-7f3a-and-more"),
            None,
            401,
            "Authorization: Bearer",
        ),
        (
            "GET",
            "/infrastructures/",
            Some("test-token-7f3"),
            None,
            401,
            "Authorization: Bearer",
        ),
        (
            "POST",
            "/validate",
            None,
            Some(INFRA.into()),
            401,
            "Authorization: Bearer",
        ),
        (
            "POST",
            "/nodedefs",
            None,
            Some(NODES.into()),
            401,
            "Authorization: Bearer",
        ),
        (
            "GET",
            "/infrastructures/x/events",
            None,
            None,
            401,
            "Authorization: Bearer",
        ),
        (
            "DELETE",
            "/infrastructures/x",
            None,
            None,
            401,
            "Authorization: Bearer",
        ),
        (
            "POST",
            "/infrastructures/x/scaleto/web/2",
            None,
            None,
            401,
            "Authorization: Bearer",
        ),
        (
            "POST",
            "/validate",
            Some(TOKEN),
            None,
            400,
            "Empty POST data",
        ),
        (
            "POST",
            "/nodedefs",
            Some(TOKEN),
            Some("  \n".into()),
            400,
            "Empty POST data",
        ),
        (
            "POST",
            "/infrastructures/",
            Some(TOKEN),
            Some("[1, 2]\n".into()),
            400,
            "<posted description>",
        ),
        (
            "POST",
            "/infrastructures/",
            Some(TOKEN),
            Some("infra_name: x\n".into()),
            400,
            "nodes",
        ),
        (
            "POST",
            "/infrastructures/",
            Some(TOKEN),
            Some("infra_name: x\nnodes: 5\n".into()),
            400,
            "<posted description>:2",
        ),
        (
            "POST",
            "/infrastructures/",
            Some(TOKEN),
            Some(
                "infra_name: x\nnodes:\n  - {name: a, type: web}\n  - {name: a, type: web}\n"
                    .into(),
            ),
            400,
            "<posted description>:4",
        ),
        (
            "POST",
            "/infrastructures/",
            Some(TOKEN),
            Some(
                "infra_name: x\nnodes:\n  - {name: a, type: web}\ndependencies:\n  - [a, ghost]\n"
                    .into(),
            ),
            400,
            "ghost",
        ),
        (
            "POST",
            "/infrastructures/",
            Some(TOKEN),
            Some(
                "infra_name: x\nnodes:\n  - {name: a, type: web, scaling: {min: 3, max: 1}}\n"
                    .into(),
            ),
            400,
            "<posted description>:3",
        ),
        (
            "POST",
            "/infrastructures/",
            Some(TOKEN),
            Some("infra_name: x\nnodes:\n\t- {name: a}\n".into()),
            400,
            "<posted description>:3",
        ),
        (
            "POST",
            "/validate",
            Some(TOKEN),
            Some(bomb.clone()),
            400,
            "alias bomb",
        ),
        (
            "POST",
            "/nodedefs",
            Some(TOKEN),
            Some("'node_def:x': !yaml_import {url: file://n.yaml}\n".into()),
            400,
            "is not allowed here",
        ),
        (
            "GET",
            "/infrastructures/no-such-infra/events",
            Some(TOKEN),
            None,
            404,
            "no infrastructure",
        ),
        (
            "POST",
            "/infrastructures/no-such-infra/scaledown/web",
            Some(TOKEN),
            None,
            404,
            "no infrastructure",
        ),
        (
            "POST",
            "/infrastructures/no-such-infra/scaleto/web/2",
            Some(TOKEN),
            None,
            404,
            "no infrastructure",
        ),
        (
            "POST",
            "/infrastructures/x/scaleto/web/-1",
            Some(TOKEN),
            None,
            400,
            "-1",
        ),
        (
            "POST",
            "/infrastructures/x/scaleup/web/99999999999",
            Some(TOKEN),
            None,
            400,
            "99999999999",
        ),
        (
            "PUT",
            "/infrastructures/",
            Some(TOKEN),
            Some(INFRA.into()),
            405,
            "does not take that method",
        ),
        (
            "GET",
            "/infrastructures/x/scaleup/web",
            Some(TOKEN),
            None,
            405,
            "does not take that method",
        ),
    ];
    for (method, path, token, body, status, message) in cases {
        let (got, answer) = service.send(method, path, token, body).await;
        assert_eq!(got, status, "{method} {path}: {answer}");
        let text = answer.to_string();
        assert!(text.contains(message), "{method} {path}: {text}");
        if got != 413 {
            assert_eq!(answer["status_code"], status, "{method} {path}: {text}");
        }
        assert!(!text.contains("root:x:0"), "{method} {path} leaked a file");
    }
    // A body over the limit (1 MiB) is refused once the limit is passed:
    // written by hand, since a client writing the rest of the body meets a
    // closed connection.
    let answer = raw_request(
        &service.base,
        &format!(
            "POST /infrastructures/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Length: {}\r\n\r\n{}",
            2 << 20,
            "x".repeat((1 << 20) + 4096)
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("length limit"), "{answer}");

    // The API description, generated from the code, needs no token.
    let (status, openapi) = service.send("GET", "/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert!(
        openapi["paths"]["/infrastructures/{id}/scaleup/{node}/{count}"]["post"].is_object(),
        "{openapi:#}"
    );
    assert_eq!(
        openapi["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    // Still healthy, and /healthz needs no token.
    let (status, answer) = service.send("GET", "/healthz", None, None).await;
    assert_eq!((status, answer), (200, Value::String("ok".into())));
}

/// Sends `request` as is over a new connection and reads the answer.
fn raw_request(base: &str, request: &str) -> String {
    use std::io::{Read, Write};
    let address = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    // The server may answer and close before all is written.
    let _ = stream.write_all(request.as_bytes());
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = vec![0; 4096];
    let n = stream.read(&mut answer).unwrap();
    String::from_utf8_lossy(&answer[..n]).into_owned()
}

/// Nodes that take a second to serve, so that a build can be cut in the middle.
const SLOW_NODES: &str = r#"'node_def:slow':
  - resource: {type: local}
    contextualisation:
      type: cloudinit
      context_template: |
        #cloud-config
        runcmd:
          - sleep 1
          - exec python3 -m http.server 8080 --bind "$OCCOPUS_NODE_ADDRESS"
    health_check: {ping: false, ports: [8080], timeout: 60}
"#;

#[tokio::test]
async fn a_killed_service_resumes_its_build_after_a_restart() {
    // SIGKILL: no goodbye.
    a_stopped_service_resumes_its_build_after_a_restart(53, drop).await;
}

/// SIGTERM (systemd, `docker stop`): the service ends its event streams,
/// asks its build to stop, waits for the calls under way to be recorded and
/// exits 0 within its drain timeout; the next start resumes the build.
#[tokio::test]
async fn a_service_stopped_with_sigterm_drains_and_its_build_resumes() {
    a_stopped_service_resumes_its_build_after_a_restart(122, |service| {
        let pid = rustix::process::Pid::from_child(&service._process.0);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let mut process = service._process;
        let deadline = Instant::now() + Duration::from_secs(40);
        let status = loop {
            if let Some(status) = process.0.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "not drained within its bound");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(status.code(), Some(0), "a drained service exits 0");
    })
    .await;
}

/// Starts a build of 7 slow nodes on a service, stops the service with
/// `stop` once the build is under way, and checks that a second service
/// resumes it: exactly 7 instances, 7 nodes in the cloud; then destroys it.
/// An event stream open at the stop has ended by the time `stop` returns.
async fn a_stopped_service_resumes_its_build_after_a_restart(
    subnet: u8,
    stop: impl FnOnce(RestService),
) {
    let occopus = Occopus::new(subnet);
    let first = RestService::start_with(&occopus, &["--drain-timeout", "30"]);
    first
        .call("POST", "/nodedefs", Some(SLOW_NODES.into()))
        .await;
    let infra = "infra_name: resumed\nnodes:\n  - {name: web, type: slow, scaling: {min: 6, max: 6}}\n  - {name: top, type: slow}\ndependencies:\n  - [top, web]\n";
    let (status, created) = first
        .call("POST", "/infrastructures/", Some(infra.into()))
        .await;
    assert_eq!(status, 200, "{created}");
    let id = created["infraid"].as_str().unwrap().to_owned();
    first
        .report_until(&id, "under way", |r| {
            r["web"]["instances"]
                .as_object()
                .is_some_and(|i| !i.is_empty())
        })
        .await;
    let mut events = first.events(&id).await;
    stop(first);
    let rest = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = events.chunk().await {}
    })
    .await;
    assert!(rest.is_ok(), "the event stream outlived its service");

    let second = RestService::start(&occopus);
    let report = second
        .report_until(&id, "resumed and ready", |r| {
            let ready = |node: &str| {
                r[node]["instances"]
                    .as_object()
                    .map_or(0, |i| i.values().filter(|i| i["state"] == "ready").count())
            };
            ready("web") == 6 && ready("top") == 1
        })
        .await;
    // Nothing duplicated: exactly the 7 instances, and 7 nodes in the cloud.
    let instances: usize = ["web", "top"]
        .iter()
        .map(|n| report[n]["instances"].as_object().unwrap().len())
        .sum();
    assert_eq!(instances, 7, "{report:#}");
    let nodes = occopus.local_cloud().list(Some(&id)).unwrap();
    assert_eq!(nodes.len(), 7, "{nodes:#?}");

    let (status, _) = second
        .call("DELETE", &format!("/infrastructures/{id}"), None)
        .await;
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !occopus.local_cloud().list(Some(&id)).unwrap().is_empty() {
        assert!(Instant::now() < deadline, "never destroyed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Occopus's name for the service works (a symlink), and off loopback the
/// service refuses to start without a token.
#[test]
fn the_rest_service_name_works_and_no_token_means_loopback_only() {
    let occopus = Occopus::new(54);
    let link = occopus.dir.path().join("occopus-rest-service");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_occopus"), &link).unwrap();
    let output = std::process::Command::new(&link)
        .args(["--host", "0.0.0.0", "--port", "0"])
        .env("OCCOPUS_STATE", occopus.dir.path().join("state.db"))
        .env("OCCOPUS_CACHE_DIR", crate::common::shared_cache_dir())
        .env("HOME", occopus.dir.path())
        .env_remove("OCCOPUS_API_TOKEN")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(3),
        "a configuration error: {stderr}"
    );
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without a token: set OCCOPUS_API_TOKEN"),
        "{stderr}"
    );
    // The help names the variable; on loopback without one, a warning.
    let help = occopus.ok(&["serve", "--help"]);
    assert!(help.contains("OCCOPUS_API_TOKEN"), "{help}");
    let mut service = KillOnDrop(
        occopus
            .command(&["serve", "--port", "0"])
            .env_remove("OCCOPUS_API_TOKEN")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let lines: Vec<String> = BufReader::new(service.0.stderr.take().unwrap())
        .lines()
        .take(2)
        .map(Result::unwrap)
        .collect();
    assert!(
        lines[1].starts_with("warning: no OCCOPUS_API_TOKEN is set"),
        "{lines:?}"
    );
}

/// Create and delete an infra 1,000 times (8 clients at once): once all are
/// gone, their events are gone too, and the file stays small.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_delete_cycles_leave_the_database_bounded() {
    let occopus = Occopus::new(55);
    let service = std::sync::Arc::new(RestService::start(&occopus));
    service
        .call(
            "POST",
            "/nodedefs",
            Some(
                "'node_def:sim':\n  - resource: {type: dummy}\n    health_check: {ping: false}\n"
                    .into(),
            ),
        )
        .await;
    let infra = "infra_name: cycle\nnodes:\n  - {name: sim, type: sim, scaling: {min: 2}}\n";
    const CYCLES: usize = 1000;
    const CLIENTS: usize = 8;
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move {
                for _ in 0..CYCLES / CLIENTS {
                    let (status, created) = service
                        .call("POST", "/infrastructures/", Some(infra.into()))
                        .await;
                    assert_eq!(status, 200, "{created}");
                    let id = created["infraid"].as_str().unwrap().to_owned();
                    let path = format!("/infrastructures/{id}");
                    let (status, answer) = service.call("DELETE", &path, None).await;
                    assert_eq!(status, 200, "{answer}");
                    // Wait for the destroy, so that at most CLIENTS infras live.
                    loop {
                        let (status, _) = service.call("GET", &path, None).await;
                        if status == 404 {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    let elapsed = started.elapsed();
    let db = rusqlite::Connection::open(occopus.dir.path().join("state.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    let count = |table: &str| -> i64 {
        db.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    };
    let (events, infras, instances) = (count("events"), count("infras"), count("instances"));
    let managed = count("service_infras");
    let size = |name: &str| std::fs::metadata(occopus.dir.path().join(name)).map_or(0, |m| m.len());
    let (file, wal) = (size("state.db"), size("state.db-wal"));
    println!(
        "{CYCLES} create/delete cycles in {elapsed:.1?}: {events} events, {infras} infras, \
         {instances} instances left; state.db {} KiB, WAL {} KiB",
        file >> 10,
        wal >> 10
    );
    let left: Vec<String> = db
        .prepare(
            "SELECT 'infra ' || id || ' ' || status FROM infras \
             UNION ALL SELECT 'event ' || infra_id || ': ' || message FROM events",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!((events, infras, instances), (0, 0, 0), "{left:#?}");
    assert_eq!(managed, 0, "infras the service still thinks it manages");
    assert!(file < 1 << 20, "state.db grew to {file} bytes");
    assert!(wal < 8 << 20, "the WAL grew to {wal} bytes");
    drop(db);
}

/// 200 connections that never finish their headers are closed by the
/// header timeout while normal requests keep being answered; a 1 MB
/// header is answered 431; a body that never finishes arriving, 408.
#[test]
fn slow_and_huge_headers_are_cut_off() {
    use std::io::{Read, Write};
    let occopus = Occopus::new(56);
    let service = RestService::start_with(
        &occopus,
        &["--header-timeout", "1", "--request-timeout", "1"],
    );
    let address = service.base.trim_start_matches("http://").to_owned();
    let mut slow: Vec<std::net::TcpStream> = (0..200)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(&address).unwrap();
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: slow\r\n")
                .unwrap();
            stream
        })
        .collect();
    // Meanwhile, normal requests are answered.
    for _ in 0..20 {
        let answer = raw_request(
            &service.base,
            "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    // Each slow one is closed by the server (EOF), not by the test's timeout.
    let started = Instant::now();
    for stream in &mut slow {
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut rest = Vec::new();
        let read = stream.read_to_end(&mut rest);
        assert!(
            read.is_ok()
                || read
                    .as_ref()
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "a slow connection was not closed by the server: {read:?}"
        );
    }
    println!(
        "200 slow-header connections closed within {:.1?} of the last normal answer",
        started.elapsed()
    );
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let answer = raw_request(&service.base, &huge);
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "a 1 MB header got: {answer:?}"
    );
    let trickle = format!(
        "POST /validate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Length: 100\r\n\r\ninfra_name"
    );
    let answer = raw_request(&service.base, &trickle);
    assert!(
        answer.starts_with("HTTP/1.1 408") && answer.contains("--request-timeout"),
        "a body that never ends got: {answer:?}"
    );
}

/// An infra built with the command line on the service's state file is
/// listed, not managed: a scale-up of it is refused (409) saying how, since
/// no maintenance of the service would ever apply it.
#[tokio::test]
async fn scaling_an_infra_the_service_does_not_manage_is_refused_saying_how() {
    let occopus = Occopus::new(57);
    let [infra, nodes] = occopus.describe(
        "infra_name: cli\nnodes:\n  - {name: sim, type: sim, scaling: {min: 1, max: 3}}\n",
        "'node_def:sim':\n  - resource: {type: dummy}\n",
    );
    occopus.ok(&["build", &infra, "--nodes", &nodes, "-i", "by-cli"]);
    let service = RestService::start(&occopus);
    let (status, list) = service.call("GET", "/infrastructures/", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["infrastructures"], serde_json::json!(["by-cli"]));
    assert_eq!(list["managed"], serde_json::json!([]));
    let (status, answer) = service
        .call("POST", "/infrastructures/by-cli/scaleup/sim", None)
        .await;
    assert_eq!(status, 409, "{answer}");
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("not managed by this service")
            && message.contains("occopus maintain -i by-cli"),
        "{answer}"
    );

    // Destroyed by the command line: the service's event stream sees it
    // gone, says so last, and ends.
    let mut events = service.events("by-cli").await;
    occopus.ok(&["destroy", "-i", "by-cli"]);
    let mut seen = String::new();
    read_events_until(&mut events, &mut seen, |seen| {
        seen.contains("event: infra-destroyed")
    })
    .await;
    assert!(seen.contains("no longer recorded"), "{seen}");
    assert_eq!(events.chunk().await.unwrap(), None, "{seen}");
}

/// With `--import-dir DIR`, a posted document's relative imports resolve
/// in DIR, as the refusal's help recommends (`file://ci_db.yaml`).
#[tokio::test]
async fn posted_node_definitions_import_relative_to_the_import_dir() {
    let occopus = Occopus::new(58);
    let shared = occopus.dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("ci_db.yaml"), "- resource: {type: dummy}\n").unwrap();
    let service = RestService::start_with(&occopus, &["--import-dir", shared.to_str().unwrap()]);
    let (status, answer) = service
        .call(
            "POST",
            "/nodedefs",
            Some("'node_def:db': !yaml_import {url: 'file://ci_db.yaml'}\n".into()),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["imported"], serde_json::json!(["db"]), "{answer}");
    // Outside the directory is still refused.
    let (status, answer) = service
        .call(
            "POST",
            "/nodedefs",
            Some("'node_def:db': !yaml_import {url: 'file://../state.db'}\n".into()),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["error"]["details"][0]["location"], "<posted node definitions>:1:36",
        "{answer}"
    );
    // A posted description names no directory: a `nodes/node_definitions.yaml`
    // in the import directory is not read behind the user's back, and its
    // problems are placed in "<posted description>".
    std::fs::create_dir(shared.join("nodes")).unwrap();
    std::fs::write(
        shared.join("nodes/node_definitions.yaml"),
        "'node_def:web': [{resource: {type: dummy}}]\n",
    )
    .unwrap();
    let (status, answer) = service
        .call(
            "POST",
            "/infrastructures/",
            Some("infra_name: x\nnodes:\n  - {name: w, type: web}\n".into()),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    let details = answer["error"]["details"].to_string();
    assert!(
        details.contains("<posted description>:3:")
            && details.contains("which no node definition defines"),
        "{answer}"
    );
}

/// `GET` answers carry an entity tag; asked again with it, the service
/// answers 304 with no body; a change made by another process (a command
/// line's maintenance pass on the same state) moves the tag within 100 ms.
#[tokio::test]
async fn conditional_gets_answer_304_until_the_infra_changes() {
    let occopus = Occopus::new(119);
    let [infra, nodes] = occopus.describe(
        "infra_name: tagged\nnodes:\n  - {name: sim, type: sim, scaling: {min: 2, max: 3}}\n",
        "'node_def:sim':\n  - resource: {type: dummy}\n    health_check: {ping: false}\n",
    );
    occopus.ok(&["build", &infra, "--nodes", &nodes, "-i", "tagged"]);
    let service = RestService::start(&occopus);
    let get = |path: &'static str, tag: Option<String>| {
        let mut request = service
            .client
            .get(format!("{}{path}", service.base))
            .bearer_auth(TOKEN);
        if let Some(tag) = tag {
            request = request.header("if-none-match", tag);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let etag = response.headers()["etag"].to_str().unwrap().to_owned();
            (status, etag, response.text().await.unwrap())
        }
    };
    for path in ["/infrastructures/tagged", "/infrastructures/"] {
        let (status, etag, body) = get(path, None).await;
        assert_eq!(status, 200, "{body}");
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
        let (status, again, body) = get(path, Some(etag.clone())).await;
        assert_eq!(
            (status, again.as_str(), body.as_str()),
            (304, etag.as_str(), "")
        );
        let (status, _, _) = get(path, Some("\"other\"".into())).await;
        assert_eq!(status, 200);
    }

    // Another process changes it: the tag moves (within the 100 ms a tag
    // read from the database is trusted), the new report comes.
    let (_, before, _) = get("/infrastructures/tagged", None).await;
    occopus.ok(&["scale", "-i", "tagged", "-n", "sim", "-c", "+1"]);
    occopus.ok(&["maintain", "-i", "tagged", "--once"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    let body = loop {
        let (status, after, body) = get("/infrastructures/tagged", Some(before.clone())).await;
        if status == 200 {
            assert_ne!(after, before);
            break body;
        }
        assert!(Instant::now() < deadline, "the tag never moved");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["sim"]["instances"].as_object().unwrap().len(), 3);
}

/// The samples of a `/metrics` text, as the Prometheus project's Python
/// client parses them (it refuses an invalid exposition).
fn parsed_metrics(text: &str) -> Vec<Value> {
    use std::io::Write;
    let mut parser = std::process::Command::new("python3")
        .arg(crate::common::repository().join("tests/support/parse_metrics.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    parser
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = parser.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the Prometheus parser refused it: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// The sum of the samples named `name` whose labels include `labels`.
fn sample_sum(samples: &[Value], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s["name"] == name)
        .filter(|s| labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .map(|s| s["value"].as_f64().unwrap())
        .sum()
}

/// `GET /metrics` scraped during a build and after it: the Prometheus
/// parser accepts it, the plugin calls and instances are counted as they
/// move, and it needs the token like the API.
#[tokio::test]
async fn metrics_follow_a_build_and_parse() {
    let occopus = Occopus::new(125);
    let service = RestService::start(&occopus);
    let nodes = "'node_def:sim':\n  - resource: {type: dummy, create_latency: 0.3, boot_time: 1}\n    health_check: {ping: false}\n";
    service.call("POST", "/nodedefs", Some(nodes.into())).await;
    let infra =
        "infra_name: measured\nnodes:\n  - {name: web, type: sim, scaling: {min: 5, max: 5}}\n";
    let (status, created) = service
        .call("POST", "/infrastructures/", Some(infra.into()))
        .await;
    assert_eq!(status, 200, "{created}");
    let id = created["infraid"].as_str().unwrap().to_owned();
    let scrape = || async {
        let (status, text) = service.call("GET", "/metrics", None).await;
        assert_eq!(status, 200, "{text}");
        parsed_metrics(text.as_str().unwrap())
    };
    // During the build: the creates are under way (0.3 s each).
    let during = scrape().await;
    let instances = |samples: &[Value], state: &str| {
        sample_sum(
            samples,
            "occopus_instances",
            &[("infra_id", &id), ("state", state)],
        )
    };
    let calls = |samples: &[Value], function: &str| {
        sample_sum(
            samples,
            "occopus_plugin_call_duration_seconds_count",
            &[("plugin", "dummy"), ("function", function)],
        )
    };
    assert!(instances(&during, "ready") < 5.0);
    service
        .report_until(&id, "built", |r| {
            r["web"]["instances"]
                .as_object()
                .is_some_and(|i| i.len() == 5 && i.values().all(|i| i["state"] == "ready"))
        })
        .await;
    let after = scrape().await;
    assert_eq!(instances(&after, "ready"), 5.0);
    assert_eq!(calls(&after, "create"), 5.0);
    assert!(
        calls(&after, "status") > calls(&during, "status"),
        "polls counted"
    );
    assert!(
        sample_sum(&after, "occopus_infrastructures", &[]) >= 1.0,
        "{after:?}"
    );
    assert_eq!(
        sample_sum(&after, "occopus_service_jobs", &[("operation", "maintain")]),
        1.0
    );
    assert_eq!(
        sample_sum(&after, "occopus_leases", &[("infra_id", &id)]),
        1.0,
        "the maintain job holds the lease"
    );

    let (status, _) = service.send("GET", "/metrics", None, None).await;
    assert_eq!(status, 401, "the metrics need the token like the API");
}

/// `--log-format json`: every log line is a JSON object, and a request's
/// line carries the id its answer's `x-request-id` gives.
#[tokio::test]
async fn json_logs_carry_the_request_id() {
    let occopus = Occopus::new(126);
    let mut process = occopus
        .command(&["--log-format", "json", "-v", "serve", "--port", "0"])
        .env("OCCOPUS_API_TOKEN", TOKEN)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, heard) = std::sync::mpsc::channel::<String>();
    let stderr = process.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let _process = KillOnDrop(process);
    let base = loop {
        let line = heard.recv_timeout(Duration::from_secs(60)).unwrap();
        if let Some(address) = line.strip_prefix("occopus REST service listening on ") {
            break address.to_owned();
        }
    };
    let answer = reqwest::Client::new()
        .get(format!("{base}/infrastructures/"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let id = answer.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let line = heard
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("no log line of the request");
        if !line.starts_with('{') {
            continue; // the command's own messages for people
        }
        let logged: Value = serde_json::from_str(&line).expect("a JSON log line");
        assert!(logged["level"].is_string(), "{logged}");
        if logged["fields"]["message"] == "answered" && logged["span"]["id"] == id {
            assert_eq!(logged["fields"]["status"], 200);
            assert_eq!(logged["span"]["path"], "/infrastructures/");
            break;
        }
    }
}
