//! The REST service (`occopus serve`): Occopus's REST API over the library,
//! with real status codes, a bearer token and background operations.
//!
//! - `routes.rs`: the paths (Occopus's own, plus validation and node
//!   definitions) and their handlers; `requests.rs`: what they take from a
//!   request;
//! - `dashboard.rs`: the web dashboard (`/`, `/ui/`) and the JSON its pages
//!   read (`/overview`, `/infrastructures/ID/detail`, `.../plan`);
//! - `cache.rs`: reports kept rendered while their infra's tag holds, and
//!   the entity tags (`ETag`, `If-None-Match`) that go with them;
//! - `error.rs`: the one JSON error shape every failure answers with;
//! - `events.rs`: an infra's event stream, ending with its last outcome;
//! - `fanout.rs`: each event rendered once for all the streams of its infra;
//! - `metrics.rs`: `GET /metrics` in Prometheus's text format;
//! - `service.rs`: the service's settings and its background jobs (a build,
//!   a destroy or the maintenance loop of each infra it manages), shared
//!   with the other replicas on one database through the store;
//! - `server.rs`: listening, resuming, serving (through `occopus-http`'s
//!   accept loop and its limits);
//! - `time_limit.rs`: 408 for a request that takes too long.

mod cache;
mod dashboard;
mod error;
mod events;
mod fanout;
mod metrics;
mod requests;
mod routes;
mod server;
mod service;
mod time_limit;

pub use error::HttpError;
pub use occopus_http::ServerLimits;
pub use routes::router;
pub use server::{ServeError, serve};
pub use service::{Service, ServiceSettings};
