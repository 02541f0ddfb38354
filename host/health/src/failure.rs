//! Why a probe failed.

use std::time::Duration;

/// One probe's failure: which probe (its kind and target, never a password)
/// and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{probe}: {error}")]
pub struct ProbeFailure {
    /// The probe, as `port 80`, `ping 10.0.0.2`, a URL, `mysql USER@HOST:3306/DB`.
    pub probe: String,
    /// Why it failed.
    pub error: ProbeError,
}

/// Why a probe failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// Nothing answered in time.
    #[error("no answer within {0:?}")]
    NoAnswer(Duration),
    /// An ICMP echo got no reply in time.
    #[error("no echo reply within {0:?}")]
    NoEchoReply(Duration),
    /// The target could not be reached (the system's words).
    #[error("{0}")]
    Unreachable(String),
    /// An HTTP URL answered with a status other than 2xx or 3xx.
    #[error("HTTP {0}")]
    HttpStatus(String),
    /// The server answered and refused (its words).
    #[error("{0}")]
    Refused(String),
    /// The server's answer was not what the protocol says.
    #[error("{0}")]
    Protocol(String),
    /// The instance's address is not an IP address.
    #[error("not an IP address")]
    NotAnAddress,
}
