//! Driver requests to a `unix://PATH` endpoint, such as Docker's usual
//! `unix:///var/run/docker.sock`.
//!
//! A plugin has no sockets, and `wasi:http` only speaks TCP. When a resource's
//! endpoint is `unix://PATH` and the driver may use unix endpoints (config
//! `plugins.settings.NAME.unix_endpoints`; by default only the `docker` driver),
//! the driver sends its requests to `http://unix-endpoint.invalid/...` and the
//! host carries them over the socket at PATH. No other plugin, and no call whose
//! resource does not name that socket, can reach it: the bridge is part of one
//! call's policy, built from that call's resource.

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use std::time::Duration;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// The host name a driver sends its requests to when its endpoint is a unix
/// socket. `.invalid` is reserved (RFC 6761): it can never be a real host.
pub const BRIDGE_HOST: &str = "unix-endpoint.invalid";

/// How long connecting and waiting for the response head may take when the
/// plugin set no timeouts of its own.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// The socket path of a `unix://PATH` endpoint (`unix:///run/docker.sock` ->
/// `/run/docker.sock`); `None` for any other endpoint.
pub fn socket_path(endpoint: &str) -> Option<PathBuf> {
    let path = endpoint.strip_prefix("unix://")?;
    path.starts_with('/').then(|| PathBuf::from(path))
}

/// The response and the future that drives the rest of the connection, as
/// `wasi:http`'s hooks want them.
type Sent = (
    http::Response<UnsyncBoxBody<Bytes, Error>>,
    Box<dyn Future<Output = Result<(), Error>> + Send>,
);

/// Sends one HTTP/1.1 request over the unix socket at `path`.
pub async fn send(
    path: &Path,
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<Sent, Error> {
    let connect_timeout = options
        .and_then(|o| o.connect_timeout)
        .unwrap_or(DEFAULT_TIMEOUT);
    let first_byte_timeout = options
        .and_then(|o| o.first_byte_timeout)
        .unwrap_or(DEFAULT_TIMEOUT);
    let stream = tokio::time::timeout(connect_timeout, tokio::net::UnixStream::connect(path))
        .await
        .map_err(|_| Error::ConnectionTimeout)?
        .map_err(Error::Connect)?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(Error::from)?;
    // On the wire a request names only its path; the host stays in `Host`.
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(path_and_query)
        .build()
        .map_err(|_| Error::HttpRequestUriInvalid)?;
    let connection = tokio::spawn(connection);
    let response = tokio::time::timeout(first_byte_timeout, sender.send_request(request))
        .await
        .map_err(|_| Error::ConnectionReadTimeout)?
        .map_err(Error::from)?;
    let response = response.map(|body| body.map_err(Error::from).boxed_unsync());
    let rest = async move {
        match connection.await {
            Ok(result) => result.map_err(Error::from),
            Err(_) => Err(Error::ConnectionTerminated),
        }
    };
    Ok((response, Box::new(rest)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_absolute_unix_endpoints_have_a_socket() {
        assert_eq!(
            socket_path("unix:///var/run/docker.sock"),
            Some(PathBuf::from("/var/run/docker.sock"))
        );
        assert_eq!(socket_path("unix://relative.sock"), None);
        assert_eq!(socket_path("tcp://127.0.0.1:2375"), None);
        assert_eq!(socket_path("http://unix-endpoint.invalid"), None);
    }
}
