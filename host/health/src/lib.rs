//! Health checks of a node instance, all of Occopus's: `ping` (ICMP echo, or
//! a TCP probe where ICMP is not permitted), TCP `ports`, HTTP `urls` (2xx or
//! 3xx) and `mysqldbs` (a MySQL protocol login). Each probe has its own
//! timeout; all of an instance's probes run concurrently.

mod failure;
pub mod mysql;
pub mod ping;

pub use failure::{ProbeError, ProbeFailure};

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long one probe may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What to probe on one instance.
#[derive(Debug, Clone, Default)]
pub struct Probes {
    /// The address of the instance.
    pub address: String,
    /// TCP ports that must accept a connection.
    pub ports: Vec<u16>,
    /// Rendered URLs that must answer 2xx or 3xx.
    pub urls: Vec<String>,
    /// Whether the address must answer a ping.
    pub ping: bool,
    /// Databases that must accept a login (port 3306 of the address).
    pub mysqldbs: Vec<mysql::Login>,
}

/// Shares one HTTP client (and its connection pool) between all checks.
#[derive(Clone)]
pub struct HealthChecker {
    http: reqwest::Client,
    pinger: Arc<ping::Pinger>,
}

impl Default for HealthChecker {
    fn default() -> Self {
        HealthChecker {
            http: reqwest::Client::builder()
                .timeout(PROBE_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .build()
                .unwrap_or_default(),
            pinger: Arc::default(),
        }
    }
}

impl Probes {
    /// Whether there is nothing to probe.
    pub fn is_empty(&self) -> bool {
        !self.ping && self.ports.is_empty() && self.urls.is_empty() && self.mysqldbs.is_empty()
    }
}

/// Runs an instance's probes. The engine checks health through this, so that
/// its tests can answer for the network.
#[async_trait::async_trait]
pub trait Prober: Send + Sync {
    /// Runs every probe; `Ok` when all pass, else the first failure.
    async fn check(&self, probes: &Probes) -> Result<(), ProbeFailure>;
}

#[async_trait::async_trait]
impl Prober for HealthChecker {
    async fn check(&self, probes: &Probes) -> Result<(), ProbeFailure> {
        let ports = probes
            .ports
            .iter()
            .map(|port| self.port(&probes.address, *port));
        let urls = probes.urls.iter().map(|url| self.url(url));
        let databases = probes
            .mysqldbs
            .iter()
            .map(|login| mysql::check(&probes.address, mysql::PORT, login, PROBE_TIMEOUT));
        let ping = async {
            match probes.ping {
                true => self.pinger.ping(&probes.address, PROBE_TIMEOUT).await,
                false => Ok(()),
            }
        };
        let (ping, ports, urls, databases) = tokio::join!(
            ping,
            futures::future::join_all(ports),
            futures::future::join_all(urls),
            futures::future::join_all(databases),
        );
        std::iter::once(ping)
            .chain(ports)
            .chain(urls)
            .chain(databases)
            .collect::<Result<Vec<()>, ProbeFailure>>()
            .map(drop)
    }
}

impl HealthChecker {
    async fn port(&self, address: &str, port: u16) -> Result<(), ProbeFailure> {
        let failure = |error| ProbeFailure {
            probe: format!("port {port}"),
            error,
        };
        let target = match address.parse::<IpAddr>() {
            Ok(ip) => std::net::SocketAddr::new(ip, port).to_string(),
            Err(_) => format!("{address}:{port}"),
        };
        match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(&target)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(failure(ProbeError::Unreachable(e.to_string()))),
            Err(_) => Err(failure(ProbeError::NoAnswer(PROBE_TIMEOUT))),
        }
    }

    async fn url(&self, url: &str) -> Result<(), ProbeFailure> {
        let failure = |error| ProbeFailure {
            probe: url.to_string(),
            error,
        };
        match self.http.get(url).send().await {
            Ok(answer) if answer.status().is_success() || answer.status().is_redirection() => {
                Ok(())
            }
            Ok(answer) => Err(failure(ProbeError::HttpStatus(answer.status().to_string()))),
            Err(e) => Err(failure(ProbeError::Unreachable(
                occopus_types::error_chain(&e),
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ports_and_urls_pass_and_fail_for_real() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = axum::Router::new()
            .route("/ok", axum::routing::get(|| async { "ok" }))
            .route(
                "/moved",
                axum::routing::get(|| async { axum::response::Redirect::temporary("/ok") }),
            );
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let checker = HealthChecker::default();
        let good = Probes {
            address: "127.0.0.1".into(),
            ports: vec![port],
            urls: vec![
                format!("http://127.0.0.1:{port}/ok"),
                format!("http://127.0.0.1:{port}/moved"),
            ],
            ping: true,
            mysqldbs: vec![],
        };
        checker.check(&good).await.unwrap();
        let bad_url = Probes {
            urls: vec![format!("http://127.0.0.1:{port}/missing")],
            ..good.clone()
        };
        assert!(
            checker
                .check(&bad_url)
                .await
                .unwrap_err()
                .to_string()
                .contains("HTTP 404")
        );
        server.abort();
        let _ = server.await;
        let closed = Probes {
            urls: vec![],
            ..good
        };
        assert!(
            checker
                .check(&closed)
                .await
                .unwrap_err()
                .to_string()
                .starts_with(&format!("port {port}:"))
        );
    }
}
