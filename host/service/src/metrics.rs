//! `GET /metrics`: the service in Prometheus's (OpenMetrics) text format,
//! rendered at each scrape with prometheus-client:
//! - `occopus_infrastructures{status}` and
//!   `occopus_instances{infra_id,node,state}`: counted in the store by two
//!   grouped reads (every process's infras on the state database);
//! - `occopus_leases{infra_id,command,host,liveness}`: who holds which
//!   infra's lease (1 per lease);
//! - `occopus_service_jobs{operation}`: this replica's jobs;
//! - `occopus_plugin_call_duration_seconds{plugin,function}` and
//!   `occopus_plugin_call_failures_total{plugin,function,kind}`: this
//!   process's sandboxed calls, by the plugin runtime (`kind`: the
//!   contract's error case or the sandbox rule broken);
//! - `occopus_maintenance_pass_duration_seconds`: this replica's passes.

use crate::service::Service;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use occopus::types::now_ms;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceLabels {
    infra_id: String,
    node: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LeaseLabels {
    infra_id: String,
    command: String,
    host: String,
    liveness: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    operation: String,
}

/// The OpenMetrics text format's media type.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `GET /metrics`.
#[utoipa::path(get, path = "/metrics", tag = "occopus", responses((status = 200, description = "the service's metrics in Prometheus's (OpenMetrics) text format", content_type = "application/openmetrics-text"), (status = 401, description = "no or wrong bearer token (unless the service runs with --metrics-public)")))]
pub(crate) async fn metrics(State(service): State<Arc<Service>>) -> Response {
    match render(&service) {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot render the metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, error).into_response()
        }
    }
}

fn render(service: &Service) -> Result<String, String> {
    let store = service.store();
    let mut registry = Registry::default();

    let infras = Family::<StatusLabels, Gauge>::default();
    for (status, count) in store.infra_census().map_err(|e| e.to_string())? {
        infras.get_or_create(&StatusLabels { status }).set(count);
    }
    registry.register(
        "occopus_infrastructures",
        "Infrastructures recorded in the state database, by status",
        infras,
    );

    let instances = Family::<InstanceLabels, Gauge>::default();
    for count in store.instance_census().map_err(|e| e.to_string())? {
        let labels = InstanceLabels {
            infra_id: count.infra_id,
            node: count.node,
            state: count.state,
        };
        instances.get_or_create(&labels).set(count.count);
    }
    registry.register(
        "occopus_instances",
        "Instances recorded, by infrastructure, node and state",
        instances,
    );

    let leases = Family::<LeaseLabels, Gauge>::default();
    let now = now_ms();
    for lease in store.leases().map_err(|e| e.to_string())? {
        let labels = LeaseLabels {
            liveness: format!("{:?}", lease.liveness(now)).to_lowercase(),
            infra_id: lease.infra_id,
            command: lease.holder.command,
            host: lease.holder.host,
        };
        leases.get_or_create(&labels).set(1);
    }
    registry.register(
        "occopus_leases",
        "Infrastructure leases and who holds them (1 per lease)",
        leases,
    );

    let jobs = Family::<JobLabels, Gauge>::default();
    for operation in service.job_operations() {
        jobs.get_or_create(&JobLabels {
            operation: operation.to_owned(),
        })
        .inc();
    }
    registry.register(
        "occopus_service_jobs",
        "This replica's jobs, by operation",
        jobs,
    );

    let calls = service.occopus.catalog().runtime().call_metrics().clone();
    registry.register(
        "occopus_plugin_call_duration_seconds",
        "Sandboxed plugin calls of this process and how long they took",
        calls.durations,
    );
    registry.register(
        "occopus_plugin_call_failures",
        "Failed plugin calls, by the contract's error case or the sandbox rule broken",
        calls.failures,
    );
    registry.register(
        "occopus_maintenance_pass_duration_seconds",
        "This replica's maintenance passes and how long they took",
        service.maintenance_passes.clone(),
    );

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).map_err(|e| e.to_string())?;
    Ok(text)
}
