//! The `cloudbroker` driver against `CloudBrokerTestServer`, a test server
//! written here. CloudBroker has no emulator, recording or fixture anywhere
//! found; this server follows CloudBroker's Java client (CloudBroker/cbp-java-api:
//! `POST /instances.xml`, `GET /instances/ID.xml`, `GET /instances.xml`, `PUT
//! /instances/ID/stop.xml`, basic auth, `<instance>` documents with dashed
//! element names) and answers errors the way its Rails API does
//! (`<errors><error>...</error></errors>`), which no document confirms. It is
//! only as faithful as that: see docs/plugins.md.

use crate::common::{Occopus, fill_placeholders, instances, repository};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use occopus::types::{ContractErrorKind, CreateRequest, Credentials, InstanceTags, Payload};
use serde_json::json;
use std::sync::{Arc, Mutex};

const EMAIL: &str = "user@example.org";
const PASSWORD: &str = "test-server-password";
const DEPLOYMENT: &str = "a2d6e5f0-0000-4000-8000-00000000d001";
const INSTANCE_TYPE: &str = "a2d6e5f0-0000-4000-8000-00000000e001";

/// One instance the test server keeps.
#[derive(Clone)]
struct Held {
    id: String,
    name: String,
    status: &'static str,
    /// Status reads so far: an instance is `starting`, then `preparing`,
    /// then `running`, as the platform reports a boot.
    reads: u32,
    number: u32,
    cloud_init: String,
}

#[derive(Default)]
struct Platform {
    instances: Vec<Held>,
    /// Requests the platform's API does not have.
    unexpected: Vec<String>,
}

type Shared = Arc<Mutex<Platform>>;

/// CloudBrokerTestServer: written here from CloudBroker's Java client; not
/// CloudBroker's software.
struct CloudBrokerTestServer {
    url: String,
    platform: Shared,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn authorised(headers: &HeaderMap) -> bool {
    use base64::Engine as _;
    let wanted = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{EMAIL}:{PASSWORD}"))
    );
    headers.get("authorization").and_then(|h| h.to_str().ok()) == Some(wanted.as_str())
}

fn xml(
    status: StatusCode,
    body: String,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    (status, [("content-type", "application/xml")], body)
}

fn errors(
    status: StatusCode,
    message: &str,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    xml(
        status,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><errors><error>{message}</error></errors>"
        ),
    )
}

fn element<'a>(document: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = document.find(&open)? + open.len();
    let end = document[start..].find(&format!("</{name}>"))?;
    Some(&document[start..start + end])
}

impl Held {
    fn document(&self) -> String {
        format!(
            "<instance><id>{}</id><name>{}</name><status>{}</status>\
             <deployment-id>{DEPLOYMENT}</deployment-id><instance-type-id>{INSTANCE_TYPE}</instance-type-id>\
             <external-ip-address>127.216.0.{n}</external-ip-address><external-hostname></external-hostname>\
             <internal-ip-address>127.216.1.{n}</internal-ip-address><internal-hostname></internal-hostname></instance>",
            self.id,
            self.name,
            self.status,
            n = self.number
        )
    }
}

async fn create(
    State(platform): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> impl axum::response::IntoResponse {
    if !authorised(&headers) {
        return errors(StatusCode::UNAUTHORIZED, "Invalid email or password.");
    }
    let document = String::from_utf8_lossy(&body).into_owned();
    let mut platform = platform.lock().unwrap();
    for required in ["deployment-id", "instance-type-id", "name"] {
        if element(&document, required).is_none() {
            platform.unexpected.push(format!(
                "POST /instances.xml without <{required}>: {document}"
            ));
            return errors(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("{required} can't be blank"),
            );
        }
    }
    if element(&document, "deployment-id") != Some(DEPLOYMENT) {
        return errors(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Deployment can't be found",
        );
    }
    let number = platform.instances.len() as u32 + 2;
    let held = Held {
        id: format!("a2d6e5f0-0000-4000-8000-{number:012}"),
        name: element(&document, "name").unwrap_or_default().to_owned(),
        status: "starting",
        reads: 0,
        number,
        cloud_init: element(&document, "cloud-init")
            .unwrap_or_default()
            .to_owned(),
    };
    let answer = held.document();
    platform.instances.push(held);
    xml(StatusCode::CREATED, answer)
}

async fn show(
    State(platform): State<Shared>,
    headers: HeaderMap,
    Path(file): Path<String>,
) -> impl axum::response::IntoResponse {
    if !authorised(&headers) {
        return errors(StatusCode::UNAUTHORIZED, "Invalid email or password.");
    }
    let id = file.trim_end_matches(".xml");
    let mut platform = platform.lock().unwrap();
    let Some(held) = platform.instances.iter_mut().find(|i| i.id == id) else {
        return errors(StatusCode::NOT_FOUND, "Instance not found");
    };
    held.reads += 1;
    held.status = match (held.status, held.reads) {
        ("starting", 2..) => "preparing",
        ("preparing", 3..) => "running",
        ("stopping", _) => "halted",
        (status, _) => status,
    };
    xml(StatusCode::OK, held.document())
}

async fn list(
    State(platform): State<Shared>,
    headers: HeaderMap,
) -> impl axum::response::IntoResponse {
    if !authorised(&headers) {
        return errors(StatusCode::UNAUTHORIZED, "Invalid email or password.");
    }
    let platform = platform.lock().unwrap();
    let all: String = platform.instances.iter().map(Held::document).collect();
    xml(StatusCode::OK, format!("<instances>{all}</instances>"))
}

async fn stop(
    State(platform): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> impl axum::response::IntoResponse {
    if !authorised(&headers) {
        return errors(StatusCode::UNAUTHORIZED, "Invalid email or password.");
    }
    let mut platform = platform.lock().unwrap();
    let Some(held) = platform.instances.iter_mut().find(|i| i.id == id) else {
        return errors(StatusCode::NOT_FOUND, "Instance not found");
    };
    held.status = "stopping";
    xml(StatusCode::OK, held.document())
}

async fn unexpected(
    State(platform): State<Shared>,
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> StatusCode {
    platform
        .lock()
        .unwrap()
        .unexpected
        .push(format!("{method} {uri}"));
    StatusCode::NOT_IMPLEMENTED
}

impl CloudBrokerTestServer {
    fn start() -> CloudBrokerTestServer {
        let platform = Shared::default();
        let app = axum::Router::new()
            .route("/instances.xml", post(create).get(list))
            .route("/instances/{file}", get(show))
            .route("/instances/{id}/stop.xml", put(stop))
            .fallback(unexpected)
            .with_state(platform.clone());
        let (url, stop_tx) = crate::common::serve_in_thread(app);
        CloudBrokerTestServer {
            url,
            platform,
            _stop: stop_tx,
        }
    }

    fn held(&self) -> Vec<Held> {
        let platform = self.platform.lock().unwrap();
        assert!(
            platform.unexpected.is_empty(),
            "requests the API does not have: {:?}",
            platform.unexpected
        );
        platform.instances.clone()
    }
}

fn auth_file(dir: &std::path::Path) -> String {
    crate::common::auth_data_file(
        dir,
        "cloudbroker",
        &format!("{{email: {EMAIL}, password: {PASSWORD}}}"),
    )
}

fn resource(server: &CloudBrokerTestServer, deployment: &str) -> serde_json::Value {
    json!({
        "type": "cloudbroker",
        "endpoint": server.url,
        "description": {"deployment_id": deployment, "instance_type_id": INSTANCE_TYPE, "opened_port": "22"},
    })
}

/// Occopus's cloudbroker-ping tutorial, only its placeholders filled.
#[test]
fn the_cloudbroker_ping_tutorial_builds_and_destroys() {
    let server = CloudBrokerTestServer::start();
    let occopus = Occopus::new(101);
    let dir = occopus.dir.path();
    fill_placeholders(
        &repository().join("tests/compat/occopus-tutorials/cloudbroker-ping"),
        &dir.join("cloudbroker-ping"),
        &[
            (
                "replace_with_endpoint_of_cloudbroker_interface",
                server.url.clone(),
            ),
            ("replace_with_deployment_id", DEPLOYMENT.into()),
            ("replace_with_instance_type_id", INSTANCE_TYPE.into()),
            (
                "replace_with_keypair_id",
                "a2d6e5f0-0000-4000-8000-00000000f001".into(),
            ),
            (
                "replace_with_list_of_ports_separated_with_comma",
                "22,80".into(),
            ),
        ],
    );
    let auth = auth_file(dir);
    let infra = dir.join("cloudbroker-ping/infra-cloudbroker-ping.yaml");
    let out = occopus.ok(&["build", infra.to_str().unwrap(), "--auth-data", &auth]);
    let id = out.lines().last().unwrap().trim().to_owned();
    let report = occopus.report(&id);
    for node in ["ping-receiver", "ping-sender"] {
        let instance = &instances(&report, node)[0];
        assert_eq!(instance["state"], "ready", "{instance}");
        assert!(
            instance["resource_address"]
                .as_str()
                .unwrap()
                .starts_with("127.216.0.")
        );
    }
    let held = server.held();
    assert_eq!(held.len(), 2);
    assert!(
        held.iter()
            .all(|h| !h.cloud_init.is_empty() && h.name.starts_with(&format!("occopus:{id}:")))
    );
    occopus.ok(&["destroy", "-i", &id, "--auth-data", &auth]);
    assert!(
        server
            .held()
            .iter()
            .all(|h| h.status == "stopping" || h.status == "halted")
    );
}

fn request(target: occopus::types::CloudTarget, instance_id: &str) -> CreateRequest {
    CreateRequest {
        instance_id: instance_id.into(),
        target,
        payload: Payload::UserData("#cloud-config\n".into()),
        tags: InstanceTags {
            infra_id: "infra-1".into(),
            infra_name: "broker".into(),
            node_name: "node".into(),
        },
    }
}

fn target(
    server: &CloudBrokerTestServer,
    deployment: &str,
    password: &str,
) -> occopus::types::CloudTarget {
    let mut target = crate::common::target(resource(server, deployment));
    target.credentials = Credentials::new([
        ("email".to_owned(), EMAIL.to_owned()),
        ("password".to_owned(), password.to_owned()),
    ]);
    target
}

#[tokio::test]
async fn retried_creates_refusals_and_wrong_credentials() {
    let server = CloudBrokerTestServer::start();
    let driver = crate::common::builtin_driver("cloudbroker").await;
    let good = target(&server, DEPLOYMENT, PASSWORD);
    let first = driver
        .create(&request(good.clone(), "node-1-0123abcd"))
        .await
        .unwrap();
    let second = driver
        .create(&request(good.clone(), "node-1-0123abcd"))
        .await
        .unwrap();
    assert_eq!(first, second);
    assert_eq!(
        server.held().len(),
        1,
        "a retried create makes no second instance"
    );
    let listed = driver.list(&good, "infra-1").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].instance_id, "node-1-0123abcd");
    assert_eq!(
        listed[0].tags.infra_name,
        "broker",
        "{:?}",
        server
            .held()
            .iter()
            .map(|h| h.name.clone())
            .collect::<Vec<_>>()
    );

    let error = driver
        .create(&request(
            target(&server, "no-such-deployment", PASSWORD),
            "node-2-0123abcd",
        ))
        .await
        .unwrap_err();
    let contract = error.contract_error().unwrap_or_else(|| panic!("{error}"));
    assert_eq!(contract.kind, ContractErrorKind::InvalidConfig, "{error}");
    assert!(
        contract.message.contains("Deployment can't be found")
            && contract.message.contains("description"),
        "{error}"
    );
    assert_eq!(server.held().len(), 1);

    let error = driver
        .create(&request(
            target(&server, DEPLOYMENT, "not-the-password"),
            "node-3-0123abcd",
        ))
        .await
        .unwrap_err();
    assert_eq!(
        error.contract_error().unwrap().kind,
        ContractErrorKind::Unauthorized,
        "{error}"
    );
    assert!(!error.to_string().contains("not-the-password"), "{error}");

    driver.destroy(&good, &first).await.unwrap();
    driver.destroy(&good, &first).await.unwrap();
}

#[test]
fn plugins_check_passes_against_the_test_server() {
    let server = CloudBrokerTestServer::start();
    let occopus = Occopus::new(102);
    let auth = auth_file(occopus.dir.path());
    occopus.plugins_check(
        "occopus_driver_cloudbroker.wasm",
        &resource(&server, DEPLOYMENT),
        &auth,
    );
    server.held();
}
