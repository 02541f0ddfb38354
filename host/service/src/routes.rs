//! The service's paths. Occopus's own paths and answer shapes, so that its
//! clients keep working, plus `/validate`, `/nodedefs` and `/healthz`.

use crate::cache::{entity_tag, tagged_json};
use crate::error::HttpError;
use crate::requests::{body_text, checked, path};
use crate::service::Service;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use occopus::ApiError;
use occopus::engine::ScaleBy;
use occopus::store::ServiceOperation;
use serde_json::{Value, json};
use std::sync::Arc;

type Answer = Result<axum::Json<Value>, HttpError>;

/// Every route of the service.
pub fn router(service: Arc<Service>) -> Router {
    let limit = service.settings.max_body_bytes;
    let metrics = get(crate::metrics::metrics);
    let (protected_metrics, public_metrics) = if service.settings.metrics_public {
        (None, Some(metrics))
    } else {
        (Some(metrics), None)
    };
    let mut api = Router::new()
        .route("/infrastructures", get(list).post(create))
        .route("/infrastructures/", get(list).post(create))
        .route("/infrastructures/{id}", get(report).delete(delete))
        .route("/infrastructures/{id}/scaleup/{node}", post(scale_up_one))
        .route(
            "/infrastructures/{id}/scaleup/{node}/{count}",
            post(scale_up),
        )
        .route(
            "/infrastructures/{id}/scaledown/{node}",
            post(scale_down_youngest),
        )
        .route(
            "/infrastructures/{id}/scaledown/{node}/{instance}",
            post(scale_down),
        )
        .route(
            "/infrastructures/{id}/scaleto/{node}/{count}",
            post(scale_to),
        )
        .route("/infrastructures/{id}/events", get(events))
        .route("/validate", post(validate))
        .route("/nodedefs", post(import_definitions))
        .merge(crate::dashboard::protected_routes());
    if let Some(metrics) = protected_metrics {
        api = api.route("/metrics", metrics);
    }
    let mut api = api
        .route_layer(from_fn_with_state(service.clone(), require_token))
        .route("/healthz", get(|| async { "ok" }))
        .merge(crate::dashboard::public_routes());
    if let Some(metrics) = public_metrics {
        api = api.route("/metrics", metrics);
    }
    api.route("/openapi.json", get(openapi))
        .method_not_allowed_fallback(|| async {
            HttpError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "this path does not take that method; see GET /openapi.json",
            )
        })
        .fallback(|| async { HttpError::not_found("no such path; see GET /openapi.json") })
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn(request_id))
        .with_state(service)
}

/// Gives every request an id: in the `x-request-id` header of its answer and
/// on every log line written while it is handled.
async fn request_id(request: Request, next: Next) -> Response {
    use tracing::Instrument;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let span = tracing::info_span!(
        "request",
        id = %id,
        method = %request.method(),
        path = %request.uri().path()
    );
    let mut response = next.run(request).instrument(span.clone()).await;
    tracing::info!(parent: &span, status = response.status().as_u16(), "answered");
    if let Ok(value) = header::HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// Refuses a request without the service's bearer token (when it has one).
async fn require_token(
    State(service): State<Arc<Service>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = &service.settings.token else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => {
            next.run(request).await
        }
        _ => {
            let mut response = HttpError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send the service's token as `Authorization: Bearer TOKEN`",
            )
            .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            response
        }
    }
}

/// Compares without stopping at the first difference, so that the time taken
/// says nothing about how much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `GET /infrastructures/`: the documented key, and the misspelt one the
/// original sent, for its old clients; tagged, 304 when the client has it.
#[utoipa::path(get, path = "/infrastructures/", tag = "occopus", responses((status = 200, description = "`{\"infrastructures\": [ID, ...]}` (also under the original's misspelt key `infrastuctures`); `ETag` set"), (status = 304, description = "unchanged since the `If-None-Match` tag"), (status = 401, description = "no or wrong bearer token")))]
async fn list(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    const PATH: &str = "/infrastructures/";
    let generation = service.store().generation();
    let tag = service
        .rendered
        .tag(PATH, generation, || service.store().list_tag().map(Some))
        .map_err(ApiError::from)?
        .unwrap_or_default();
    tagged_json(&headers, &entity_tag(&tag), || {
        service.rendered.get_or_render(PATH, &tag, generation, || {
            let ids = service.store().infra_ids().map_err(ApiError::from)?;
            // Which of them the service (any replica) builds, maintains or
            // destroys (the others are the command line's: it reports them,
            // but does not change them).
            let managed = service.managed()?;
            let managed: Vec<&String> = ids.iter().filter(|id| managed.contains(*id)).collect();
            json_bytes(&json!({"infrastructures": ids, "infrastuctures": ids, "managed": managed}))
        })
    })
}

/// `value` as JSON text.
fn json_bytes(value: &Value) -> Result<Bytes, HttpError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
}

/// `POST /infrastructures/`: checks the description, answers with the new id
/// at once and builds in the background.
#[utoipa::path(post, path = "/infrastructures/", tag = "occopus", request_body(content = String, content_type = "application/yaml", description = "an Occopus infrastructure description"), responses((status = 200, description = "`{\"infraid\": ID}`; built in the background, then maintained"), (status = 400, description = "the description's problems, each with its location"), (status = 401, description = "no or wrong bearer token"), (status = 413, description = "body over the limit")))]
async fn create(
    State(service): State<Arc<Service>>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let description = body_text(body)?;
    checked(&service, description.clone()).await?;
    let infra_id = uuid::Uuid::new_v4().to_string();
    service.request(&infra_id, &description, ServiceOperation::Build)?;
    Ok(axum::Json(json!({"infraid": infra_id})))
}

/// `GET /infrastructures/ID`: Occopus's report, with health per instance;
/// tagged with the infra's tag (see `cache.rs`), 304 when the client has it.
#[utoipa::path(get, path = "/infrastructures/{id}", tag = "occopus", params(("id" = String, Path, description = "the infrastructure id")), responses((status = 200, description = "Occopus's report: `{NODE: {instances: {ID: {resource_address, state, health, ...}}, scaling: {actual, min, max, target}}}`; `ETag` set"), (status = 304, description = "unchanged since the `If-None-Match` tag: nothing read or rendered"), (status = 401, description = "no or wrong bearer token"), (status = 404, description = "no such infrastructure")))]
async fn report(
    State(service): State<Arc<Service>>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let id = path(id)?;
    let generation = service.store().generation();
    let tag = service
        .rendered
        .tag(&id, generation, || service.store().infra_tag(&id))
        .map_err(ApiError::from)?;
    let Some(tag) = tag else {
        // Accepted, and its build has not recorded it yet (or was stopped
        // first by a delete, whose destroy is still to run): not gone yet.
        if service.operation(&id)?.is_some() {
            return Ok(axum::Json(json!({})).into_response());
        }
        // Unknown (404), or recorded this very moment.
        let infos = service.occopus.info(Some(&id))?;
        return Ok(axum::Json(infos[0].occopus_report()).into_response());
    };
    tagged_json(&headers, &entity_tag(&tag), || {
        service.rendered.get_or_render(&id, &tag, generation, || {
            let infos = service.occopus.info(Some(&id))?;
            json_bytes(&infos[0].occopus_report())
        })
    })
}

/// `DELETE /infrastructures/ID`: stops its build or maintenance and destroys
/// it in the background.
#[utoipa::path(delete, path = "/infrastructures/{id}", tag = "occopus", params(("id" = String, Path, description = "the infrastructure id")), responses((status = 200, description = "`{\"infraid\": ID}`; destroyed in the background"), (status = 401, description = "no or wrong bearer token"), (status = 404, description = "no such infrastructure"), (status = 409, description = "already being destroyed")))]
async fn delete(
    State(service): State<Arc<Service>>,
    id: Result<Path<String>, PathRejection>,
) -> Answer {
    let id = path(id)?;
    match service.operation(&id)? {
        Some(ServiceOperation::Destroy) => {
            return Err(HttpError::conflict(format!(
                "infrastructure `{id}` is being destroyed already"
            )));
        }
        Some(_) => {}
        None => drop(service.occopus.info(Some(&id))?),
    }
    service.request(&id, "", ServiceOperation::Destroy)?;
    Ok(axum::Json(json!({"infraid": id})))
}

async fn scale(
    service: &Service,
    id: &str,
    node: &str,
    by: ScaleBy,
    instance: Option<&str>,
) -> Result<(), HttpError> {
    match service.operation(id)? {
        Some(ServiceOperation::Destroy) => {
            return Err(HttpError::conflict(format!(
                "infrastructure `{id}` is being destroyed"
            )));
        }
        // Queued, the request would wait for a maintenance that never comes.
        None => {
            service.occopus.info(Some(id))?;
            return Err(HttpError::conflict(format!(
                "infrastructure `{id}` is not managed by this service (it was built with the \
                 command line, or its maintenance ended): nothing here would apply a scaling \
                 request; scale it with `occopus scale -i {id} ...` and keep it alive with \
                 `occopus maintain -i {id}`"
            )));
        }
        Some(_) => {}
    }
    service.occopus.scale(id, node, by, instance)?;
    Ok(())
}

#[utoipa::path(post, path = "/infrastructures/{id}/scaleup/{node}", tag = "occopus", params(("id" = String, Path, description = "the infrastructure id"), ("node" = String, Path, description = "the node name")), responses((status = 200, description = "`{method, infraid, nodename, count: 1}`; queued"), (status = 401, description = "no or wrong bearer token"), (status = 404, description = "no such infrastructure"), (status = 409, description = "being destroyed, or not managed by this service (built with the command line)"), (status = 422, description = "outside the node's limits")))]
async fn scale_up_one(
    State(service): State<Arc<Service>>,
    p: Result<Path<(String, String)>, PathRejection>,
) -> Answer {
    let (id, node) = path(p)?;
    scale(&service, &id, &node, ScaleBy::Change(1), None).await?;
    Ok(axum::Json(
        json!({"method": "scaleup", "infraid": id, "nodename": node, "count": 1}),
    ))
}

#[utoipa::path(post, path = "/infrastructures/{id}/scaleup/{node}/{count}", tag = "occopus", params(("id" = String, Path, description = "the infrastructure id"), ("node" = String, Path, description = "the node name"), ("count" = u32, Path, description = "how many instances")), responses((status = 200, description = "`{method, infraid, nodename, count}`; queued"), (status = 401, description = "no or wrong bearer token"), (status = 404, description = "no such infrastructure"), (status = 409, description = "being destroyed, or not managed by this service (built with the command line)"), (status = 422, description = "outside the node's limits")))]
async fn scale_up(
    State(service): State<Arc<Service>>,
    p: Result<Path<(String, String, u32)>, PathRejection>,
) -> Answer {
    let (id, node, count) = path(p)?;
    scale(
        &service,
        &id,
        &node,
        ScaleBy::Change(i64::from(count)),
        None,
    )
    .await?;
    Ok(axum::Json(
        json!({"method": "scaleup", "infraid": id, "nodename": node, "count": count}),
    ))
}

#[utoipa::path(post, path = "/infrastructures/{id}/scaledown/{node}", tag = "occopus", params(("id" = String, Path, description = "the infrastructure id"), ("node" = String, Path, description = "the node name")), responses((status = 200, description = "`{method, infraid, nodename, nodeid: null}`; the youngest goes"), (status = 401, description = "no or wrong bearer token"), (status = 404, description = "no such infrastructure"), (status = 409, description = "being destroyed, or not managed by this service (built with the command line)"), (status = 422, description = "outside the node's limits")))]
async fn scale_down_youngest(
    State(service): State<Arc<Service>>,
    p: Result<Path<(String, String)>, PathRejection>,
) -> Answer {
    let (id, node) = path(p)?;
    scale(&service, &id, &node, ScaleBy::Change(-1), None).await?;
    Ok(axum::Json(
        json!({"method": "scaledown", "infraid": id, "nodename": node, "nodeid": null}),
    ))
}

#[utoipa::path(post, path = "/infrastructures/{id}/scaledown/{node}/{instance}", tag = "occopus", params(("id" = String, Path, description = "the infrastructure id"), ("node" = String, Path, description = "the node name"), ("instance" = String, Path, description = "the instance id or address to remove")), responses((status = 200, description = "`{method, infraid, nodename, nodeid}`; queued"), (status = 401, description = "no or wrong bearer token"), (status = 404, description = "no such infrastructure"), (status = 409, description = "being destroyed, or not managed by this service (built with the command line)"), (status = 422, description = "outside the node's limits or no such instance")))]
async fn scale_down(
    State(service): State<Arc<Service>>,
    p: Result<Path<(String, String, String)>, PathRejection>,
) -> Answer {
    let (id, node, instance) = path(p)?;
    scale(&service, &id, &node, ScaleBy::Change(-1), Some(&instance)).await?;
    Ok(axum::Json(
        json!({"method": "scaledown", "infraid": id, "nodename": node, "nodeid": instance}),
    ))
}

#[utoipa::path(post, path = "/infrastructures/{id}/scaleto/{node}/{count}", tag = "occopus", params(("id" = String, Path, description = "the infrastructure id"), ("node" = String, Path, description = "the node name"), ("count" = u32, Path, description = "how many instances")), responses((status = 200, description = "`{method, infraid, nodename, count}`; queued"), (status = 401, description = "no or wrong bearer token"), (status = 404, description = "no such infrastructure"), (status = 409, description = "being destroyed, or not managed by this service (built with the command line)"), (status = 422, description = "outside the node's limits")))]
async fn scale_to(
    State(service): State<Arc<Service>>,
    p: Result<Path<(String, String, u32)>, PathRejection>,
) -> Answer {
    let (id, node, count) = path(p)?;
    scale(&service, &id, &node, ScaleBy::To(count), None).await?;
    Ok(axum::Json(
        json!({"method": "scaleto", "infraid": id, "nodename": node, "count": count}),
    ))
}

/// `GET /infrastructures/ID/events`: the infra's instance state changes as
/// Server-Sent Events (event name: the phase; data: the event as JSON), from
/// now on, then the outcome of the service's operations; the stream ends
/// with `destroyed` (see `events.rs`).
#[utoipa::path(get, path = "/infrastructures/{id}/events", tag = "occopus", params(("id" = String, Path, description = "the infrastructure id")), responses((status = 200, description = "Server-Sent Events: event name = the phase, data = the event as JSON", content_type = "text/event-stream"), (status = 401, description = "no or wrong bearer token"), (status = 404, description = "no such infrastructure")))]
async fn events(
    State(service): State<Arc<Service>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, HttpError> {
    let id = path(id)?;
    if service.operation(&id)?.is_none() {
        service.occopus.info(Some(&id))?;
    }
    Ok(crate::events::response(service, id))
}

/// `POST /validate`: every problem of a description, without building it.
#[utoipa::path(post, path = "/validate", tag = "occopus", request_body(content = String, content_type = "application/yaml", description = "an Occopus infrastructure description"), responses((status = 200, description = "`{valid: true, warnings}`"), (status = 400, description = "the problems, each with its location"), (status = 401, description = "no or wrong bearer token")))]
async fn validate(
    State(service): State<Arc<Service>>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let diagnostics = checked(&service, body_text(body)?).await?;
    let warnings: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    Ok(axum::Json(json!({"valid": true, "warnings": warnings})))
}

/// `POST /nodedefs`: stores node definitions for later descriptions.
#[utoipa::path(post, path = "/nodedefs", tag = "occopus", request_body(content = String, content_type = "application/yaml", description = "Occopus node definitions"), responses((status = 200, description = "`{imported: [TYPE, ...]}`"), (status = 400, description = "the problems, each with its location"), (status = 401, description = "no or wrong bearer token")))]
async fn import_definitions(
    State(service): State<Arc<Service>>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let text = body_text(body)?;
    let name = crate::service::posted_name("posted node definitions");
    let imported =
        service
            .occopus
            .import_text(&text, &name.to_string_lossy(), service.imports())?;
    Ok(axum::Json(json!({"imported": imported})))
}

/// The API description, generated from the handlers' annotations above.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "occopus REST service", description = "Occopus's REST API, with real status codes and a bearer token"),
    paths(list, create, report, delete, scale_up_one, scale_up, scale_down_youngest, scale_down, scale_to, events, validate, import_definitions, crate::metrics::metrics, crate::dashboard::overview, crate::dashboard::detail, crate::dashboard::check, crate::dashboard::plan),
    modifiers(&BearerToken),
    security(("bearer" = []))
)]
struct ApiDoc;

/// Declares the bearer token every path but `/healthz` and `/openapi.json` needs.
struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// `GET /openapi.json` (no token needed: it describes, it reveals nothing).
async fn openapi() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(<ApiDoc as utoipa::OpenApi>::openapi())
}
