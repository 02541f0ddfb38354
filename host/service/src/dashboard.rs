//! The web dashboard (`occopus-dashboard`'s pages) and the JSON its pages
//! read besides Occopus's own paths:
//! - `GET /` (no token): the sign-in page, with a fresh nonce in its Content
//!   Security Policy; `GET /ui/NAME` (token): the application's assets;
//! - `GET /overview`: every infrastructure's name, state, instances up and in
//!   all, lease holder, and whether this service manages it;
//! - `GET /infrastructures/ID/detail`: its nodes (dependencies, limits,
//!   target) and instances (states, addresses, health, times); an infra
//!   accepted and not recorded yet answers with status `accepted` and no
//!   nodes, not 404;
//! - `POST /check`: a description's problems, each with its place;
//! - `POST /infrastructures/ID/plan`: what building a changed description
//!   would do, as `occopus plan` says it.
//!
//! `/check` and `/plan` answer an invalid description with 200 and
//! `"valid": false` (finding problems is what they are for), where the REST
//! API's `POST /validate` answers 400: a browser logs every 4xx answer as a
//! console error.

use crate::error::{HttpError, problem_details};
use crate::requests::{body_text, path};
use crate::service::Service;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use occopus::InfraInfo;
use occopus::model::Diagnostics;
use occopus::store::LeaseRecord;
use occopus::types::{ErrorCode, HasErrorCode};
use serde_json::{Value, json};
use std::sync::Arc;

type Answer = Result<axum::Json<Value>, HttpError>;

/// The paths served without the token: the sign-in page only.
pub fn public_routes() -> Router<Arc<Service>> {
    Router::new().route("/", get(sign_in_page))
}

/// The paths that need the token.
pub fn protected_routes() -> Router<Arc<Service>> {
    Router::new()
        .route("/ui/{name}", get(asset))
        .route("/overview", get(overview))
        .route("/infrastructures/{id}/detail", get(detail))
        .route("/infrastructures/{id}/plan", post(plan))
        .route("/check", post(check))
}

/// Headers every dashboard answer carries: not cached (the pages show live
/// state, and the assets are fetched with the token), not sniffed, no referrer.
fn dashboard_headers(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// `GET /`: the sign-in page, its scripts and styles allowed by a nonce made
/// for this answer alone.
async fn sign_in_page() -> Response {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let mut response = (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        occopus_dashboard::sign_in_page(&nonce),
    )
        .into_response();
    if let Ok(policy) = HeaderValue::from_str(&occopus_dashboard::content_security_policy(&nonce)) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    dashboard_headers(&mut response);
    response
}

/// `GET /ui/NAME`: an asset of the application.
async fn asset(name: Result<Path<String>, PathRejection>) -> Result<Response, HttpError> {
    let name = path(name)?;
    let asset = occopus_dashboard::asset(&name)
        .ok_or_else(|| HttpError::not_found(format!("the dashboard has no asset `{name}`")))?;
    let mut response = ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response();
    dashboard_headers(&mut response);
    Ok(response)
}

/// Who holds a lease, as the pages show it.
fn lease_json(lease: Option<&LeaseRecord>) -> Value {
    lease.map_or(Value::Null, |lease| {
        json!({"command": lease.holder.command, "host": lease.holder.host, "pid": lease.holder.pid, "since_ms": lease.since_ms})
    })
}

/// `GET /overview`: one line per infrastructure.
#[utoipa::path(get, path = "/overview", tag = "dashboard", responses((status = 200, description = "`{infrastructures: [{id, name, status, instances: {ready, total}, lease, managed, updated_ms}]}`"), (status = 401, description = "no or wrong bearer token")))]
pub(crate) async fn overview(State(service): State<Arc<Service>>) -> Answer {
    let managed = service.managed()?;
    let infos = service.occopus.info(None)?;
    let infrastructures: Vec<Value> = infos
        .iter()
        .map(|info| {
            let ready = info
                .instances
                .iter()
                .filter(|i| i.state.as_str() == "ready")
                .count();
            json!({
                "id": info.infra.id,
                "name": info.infra.name,
                "status": info.infra.status,
                "instances": {"ready": ready, "total": info.instances.len()},
                "lease": lease_json(info.lease.as_ref()),
                "managed": managed.contains(&info.infra.id),
                "updated_ms": info.infra.updated_ms,
            })
        })
        .collect();
    Ok(axum::Json(json!({ "infrastructures": infrastructures })))
}

/// `GET /infrastructures/ID/detail`: nodes and instances.
#[utoipa::path(get, path = "/infrastructures/{id}/detail", tag = "dashboard", params(("id" = String, Path, description = "the infrastructure id")), responses((status = 200, description = "`{id, name, status, created_ms, updated_ms, lease, managed, nodes: [{name, type, depends_on, scaling}], instances: [{id, node, seq, state, resource_address, private_address, cloud_id, error, health, created_ms, updated_ms}]}`"), (status = 401, description = "no or wrong bearer token"), (status = 404, description = "no such infrastructure")))]
pub(crate) async fn detail(
    State(service): State<Arc<Service>>,
    id: Result<Path<String>, PathRejection>,
) -> Answer {
    let id = path(id)?;
    let infos = match service.occopus.info(Some(&id)) {
        Ok(infos) => infos,
        // Accepted, and its build has not recorded it yet: a page opened
        // right after posting it must see it coming, not a 404 (which it
        // would take for "destroyed").
        Err(error)
            if error.code() == ErrorCode::UnknownInfra && service.operation(&id)?.is_some() =>
        {
            return Ok(axum::Json(accepted_detail_json(&id)));
        }
        Err(error) => return Err(error.into()),
    };
    let managed = service.managed()?.contains(&id);
    Ok(axum::Json(detail_json(&infos[0], managed)))
}

/// The detail of an infra accepted but not recorded yet: no name, nodes or
/// instances until its build reads its description.
fn accepted_detail_json(id: &str) -> Value {
    json!({
        "id": id,
        "name": null,
        "status": "accepted",
        "created_ms": null,
        "updated_ms": null,
        "lease": null,
        "managed": true,
        "nodes": [],
        "instances": [],
    })
}

fn detail_json(info: &InfraInfo, managed: bool) -> Value {
    let nodes: Vec<Value> = info
        .infra
        .snapshot
        .nodes
        .iter()
        .map(|node| {
            json!({
                "name": node.name,
                "type": node.node_type,
                "depends_on": node.dependencies,
                "scaling": {"min": node.scaling.min, "max": node.scaling.max, "target": info.target(node)},
            })
        })
        .collect();
    let instances: Vec<Value> = info
        .instances
        .iter()
        .map(|i| {
            json!({
                "id": i.id,
                "node": i.node_name,
                "seq": i.seq,
                "state": i.state.as_str(),
                "resource_address": i.addresses.primary(),
                "private_address": i.addresses.private.first(),
                "cloud_id": i.cloud_id,
                "error": i.error,
                "health": i.health,
                "created_ms": i.created_ms,
                "updated_ms": i.updated_ms,
            })
        })
        .collect();
    json!({
        "id": info.infra.id,
        "name": info.infra.name,
        "status": info.infra.status,
        "created_ms": info.infra.created_ms,
        "updated_ms": info.infra.updated_ms,
        "lease": lease_json(info.lease.as_ref()),
        "managed": managed,
        "nodes": nodes,
        "instances": instances,
    })
}

/// A posted description's problems.
async fn diagnose(service: &Service, description: String) -> Result<Diagnostics, HttpError> {
    let sources = service.posted_sources(description);
    Ok(service.occopus.validate(&sources).await?)
}

/// The answer listing `diagnostics`' problems; `valid` if none is an error.
fn problems_answer(diagnostics: &Diagnostics) -> Value {
    json!({"valid": !diagnostics.has_errors(), "problems": problem_details(diagnostics)})
}

/// `POST /check`: `{"valid", "problems": [...]}` (warnings too).
#[utoipa::path(post, path = "/check", tag = "dashboard", request_body(content = String, content_type = "application/yaml", description = "an Occopus infrastructure description"), responses((status = 200, description = "`{valid, problems: [{severity, location, file, line, column, message, help}]}`: an invalid description is a 200 too"), (status = 401, description = "no or wrong bearer token")))]
pub(crate) async fn check(
    State(service): State<Arc<Service>>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let diagnostics = diagnose(&service, body_text(body)?).await?;
    Ok(axum::Json(problems_answer(&diagnostics)))
}

/// `POST /infrastructures/ID/plan`: the plan of a changed description,
/// touching nothing: `{"valid": true, "plan": {...}, "text": "..."}`
/// (`occopus plan --json` and its text), or its problems.
#[utoipa::path(post, path = "/infrastructures/{id}/plan", tag = "dashboard", params(("id" = String, Path, description = "the infrastructure id")), request_body(content = String, content_type = "application/yaml", description = "the infrastructure's description, changed"), responses((status = 200, description = "`{valid: true, plan, text}`, or `{valid: false, problems}`; touches nothing"), (status = 401, description = "no or wrong bearer token"), (status = 404, description = "no such infrastructure")))]
pub(crate) async fn plan(
    State(service): State<Arc<Service>>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let id = path(id)?;
    let description = body_text(body)?;
    service.occopus.info(Some(&id))?;
    let diagnostics = diagnose(&service, description.clone()).await?;
    if diagnostics.has_errors() {
        return Ok(axum::Json(problems_answer(&diagnostics)));
    }
    let sources = service.posted_sources(description);
    let plan = service.occopus.plan(&sources, Some(&id)).await?;
    let rendered = serde_json::to_value(&plan).map_err(|e| {
        HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    })?;
    Ok(axum::Json(
        json!({"valid": true, "plan": rendered, "text": plan.render()}),
    ))
}
