//! The `ping` health check: one ICMP echo, through an unprivileged ICMP
//! socket (or a raw one as root), by the surge-ping crate.
//!
//! Where this process may not send ICMP (no raw socket, and its group is
//! outside `net.ipv4.ping_group_range`), occopus says so once and probes with
//! TCP instead: a connection to port 22 that is accepted *or refused* proves
//! the host is up (a refusal comes from the host's own stack); no answer
//! within the timeout counts as down.

use crate::failure::{ProbeError, ProbeFailure};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;
use tokio::sync::OnceCell;

/// The port of the TCP fallback probe.
pub const FALLBACK_PORT: u16 = 22;

/// Sends pings through one shared ICMP socket, or knows it cannot.
#[derive(Default)]
pub struct Pinger {
    client: OnceCell<Option<surge_ping::Client>>,
    sequence: AtomicU16,
}

impl Pinger {
    /// Whether `address` answers: an ICMP echo reply, or with the fallback a
    /// TCP connection accepted or refused.
    pub async fn ping(&self, address: &str, timeout: Duration) -> Result<(), ProbeFailure> {
        let failure = |error| ProbeFailure {
            probe: format!("ping {address}"),
            error,
        };
        let ip: IpAddr = address
            .parse()
            .map_err(|_| failure(ProbeError::NotAnAddress))?;
        let Some(client) = self.client().await else {
            return tcp_probe(ip, timeout).await;
        };
        let identifier = surge_ping::PingIdentifier(rand_identifier());
        let sequence = surge_ping::PingSequence(self.sequence.fetch_add(1, Ordering::Relaxed));
        let mut pinger = client.pinger(ip, identifier).await;
        pinger.timeout(timeout);
        match pinger.ping(sequence, &[0; 16]).await {
            Ok(_) => Ok(()),
            Err(surge_ping::SurgeError::Timeout { .. }) => {
                Err(failure(ProbeError::NoEchoReply(timeout)))
            }
            Err(e) => Err(failure(ProbeError::Unreachable(e.to_string()))),
        }
    }

    async fn client(&self) -> Option<&surge_ping::Client> {
        self.client
            .get_or_init(|| async {
                match surge_ping::Client::new(&surge_ping::Config::default()) {
                    Ok(client) => Some(client),
                    Err(e) => {
                        tracing::warn!(
                            "this process may not send ICMP ({e}); `ping` health checks fall back to a TCP probe of port {FALLBACK_PORT} (accepted or refused = up). Run as root or widen net.ipv4.ping_group_range for real pings"
                        );
                        None
                    }
                }
            })
            .await
            .as_ref()
    }
}

/// A TCP connection attempt: accepted or refused means the host is up.
async fn tcp_probe(ip: IpAddr, timeout: Duration) -> Result<(), ProbeFailure> {
    let target = std::net::SocketAddr::new(ip, FALLBACK_PORT);
    let failure = |error| ProbeFailure {
        probe: format!("ping {ip} (TCP probe of port {FALLBACK_PORT})"),
        error,
    };
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(target)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(()),
        Ok(Err(e)) => Err(failure(ProbeError::Unreachable(e.to_string()))),
        Err(_) => Err(failure(ProbeError::NoAnswer(timeout))),
    }
}

/// Echo identifiers tell concurrent pingers' replies apart.
fn rand_identifier() -> u16 {
    uuid::Uuid::new_v4().as_u128() as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loopback_answers_and_the_fallback_counts_a_refusal_as_up() {
        let pinger = Pinger::default();
        pinger
            .ping("127.0.0.1", Duration::from_secs(2))
            .await
            .unwrap();
        assert!(
            pinger
                .ping("not-an-ip", Duration::from_secs(1))
                .await
                .unwrap_err()
                .to_string()
                .contains("not an IP address")
        );
        // Nothing listens on 127.0.0.1:22 here, or something does: up either way.
        tcp_probe("127.0.0.1".parse().unwrap(), Duration::from_secs(2))
            .await
            .unwrap();
    }
}
