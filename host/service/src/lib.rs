//! The REST service (`occopus serve`): Occopus's REST API over the library,
//! with real status codes, a bearer token and background operations.
//!
//! - `routes.rs`: the paths (Occopus's own, plus validation and node
//!   definitions) and their handlers;
//! - `error.rs`: the one JSON error shape every failure answers with;
//! - `service.rs`: the service's settings and its background jobs (a build,
//!   a destroy or the maintenance loop of each infra it manages);
//! - `server.rs`: listening, resuming, serving;
//! - `connections.rs`: the accept loop and its limits (timeouts, header
//!   size, connection count).

mod connections;
mod error;
mod routes;
mod server;
mod service;

pub use connections::ServerLimits;
pub use error::HttpError;
pub use routes::router;
pub use server::{ServeError, serve};
pub use service::{Operation, Service, ServiceSettings};
