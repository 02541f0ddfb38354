//! The SDK's example driver (`plugins/examples/restcloud`) against a real HTTP
//! server on loopback: the SDK's HTTP client over `wasi:http`, the endpoint
//! allow-list, idempotent creates, `list` by infra tag and credentials.

use crate::common::{load_driver, settings, target};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use occopus::plugin_host::PluginRuntime;
use occopus::types::ContractErrorKind;
use occopus::types::{CloudState, CloudTarget, CreateRequest, Credentials, InstanceTags, Payload};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The cloud's servers by id.
type Servers = Arc<Mutex<HashMap<String, Value>>>;

fn authorised(headers: &HeaderMap) -> Result<(), StatusCode> {
    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        Some("Bearer right-token") => Ok(()),
        _ => Err(StatusCode::UNAUTHORIZED),
    }
}

async fn create(
    State(servers): State<Servers>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Value>), StatusCode> {
    authorised(&headers)?;
    let mut servers = servers.lock().unwrap();
    let token = body["client_token"].as_str().unwrap_or_default().to_owned();
    if let Some(existing) = servers
        .values()
        .find(|s| s["client_token"] == token.as_str())
    {
        return Ok((StatusCode::OK, Json(existing.clone())));
    }
    let id = format!("srv-{}", servers.len() + 1);
    let server = json!({
        "id": id, "state": "running", "ip": format!("127.102.0.{}", servers.len() + 1),
        "client_token": token, "infra": body["infra"], "node": body["node"],
        "user_data": body["user_data"],
    });
    servers.insert(id, server.clone());
    Ok((StatusCode::CREATED, Json(server)))
}

async fn show(
    State(servers): State<Servers>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, StatusCode> {
    authorised(&headers)?;
    let servers = servers.lock().unwrap();
    servers
        .get(&id)
        .cloned()
        .map(Json)
        .ok_or(StatusCode::NOT_FOUND)
}

async fn delete(
    State(servers): State<Servers>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, StatusCode> {
    authorised(&headers)?;
    match servers.lock().unwrap().remove(&id) {
        Some(_) => Ok(StatusCode::NO_CONTENT),
        None => Err(StatusCode::NOT_FOUND),
    }
}

async fn list(
    State(servers): State<Servers>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, StatusCode> {
    authorised(&headers)?;
    let infra = query.get("infra").cloned().unwrap_or_default();
    let servers = servers.lock().unwrap();
    let tagged: Vec<Value> = servers
        .values()
        .filter(|s| s["infra"] == infra.as_str())
        .cloned()
        .collect();
    Ok(Json(Value::Array(tagged)))
}

/// Starts the cloud on a loopback port; it stops with the test's runtime.
async fn restcloud() -> (String, Servers) {
    let servers = Servers::default();
    let app = Router::new()
        .route("/servers", get(list).post(create))
        .route("/servers/{id}", get(show).delete(delete))
        .with_state(servers.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (endpoint, servers)
}

fn with_token(endpoint: &str, token: &str) -> CloudTarget {
    let mut target =
        target(json!({"type": "restcloud", "endpoint": endpoint, "image": "debian-12"}));
    target.credentials = Credentials::new([("token".to_owned(), token.to_owned())]);
    target
}

#[tokio::test]
async fn the_example_driver_manages_servers_over_http() {
    let (endpoint, servers) = restcloud().await;
    let runtime = PluginRuntime::new(&settings(&crate::common::shared_cache_dir())).unwrap();
    let driver = load_driver(&runtime, occopus_test_plugins::restcloud()).await;
    let target = with_token(&endpoint, "right-token");

    let request = CreateRequest {
        instance_id: "web-1".into(),
        target: target.clone(),
        payload: Payload::UserData("#cloud-config\n".into()),
        tags: InstanceTags {
            infra_id: "infra-9".into(),
            infra_name: "demo".into(),
            node_name: "web".into(),
        },
    };
    let id = driver.create(&request).await.unwrap();
    // A repeated create (a retry, a resumed build) finds the same server.
    assert_eq!(driver.create(&request).await.unwrap(), id);
    assert_eq!(servers.lock().unwrap().len(), 1);
    assert_eq!(servers.lock().unwrap()[&id]["user_data"], "#cloud-config\n");

    let status = driver.status(&target, &id).await.unwrap();
    assert_eq!(status.state, CloudState::Running);
    assert_eq!(status.public_addresses, ["127.102.0.1"]);

    let listed = driver.list(&target, "infra-9").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].instance_id, "web-1");
    assert_eq!(listed[0].tags.node_name, "web");
    assert!(driver.list(&target, "other").await.unwrap().is_empty());

    driver.destroy(&target, &id).await.unwrap();
    // Gone counts as destroyed.
    driver.destroy(&target, &id).await.unwrap();
    let error = driver.status(&target, &id).await.unwrap_err();
    assert_eq!(
        error.contract_error().unwrap().kind,
        ContractErrorKind::NotFound
    );
}

#[tokio::test]
async fn a_wrong_token_is_unauthorized_and_never_shown() {
    let (endpoint, _servers) = restcloud().await;
    let runtime = PluginRuntime::new(&settings(&crate::common::shared_cache_dir())).unwrap();
    let driver = load_driver(&runtime, occopus_test_plugins::restcloud()).await;
    let error = driver
        .status(&with_token(&endpoint, "wrong-token"), "srv-1")
        .await
        .unwrap_err();
    assert_eq!(
        error.contract_error().unwrap().kind,
        ContractErrorKind::Unauthorized
    );
    assert!(!error.to_string().contains("wrong-token"), "{error}");
}
