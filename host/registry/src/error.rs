//! How talking to a registry fails. Each message names the reference and
//! says what to do.

use oci_client::errors::{OciDistributionError, OciErrorCode};
use std::path::PathBuf;

/// An error of the registry layer.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The reference is not `oci://REGISTRY/REPOSITORY:TAG` or `@sha256:…`.
    #[error(
        "`{reference}` is not a component reference: {problem}; write \
         oci://REGISTRY[:PORT]/REPOSITORY:TAG or oci://REGISTRY[:PORT]/REPOSITORY@sha256:DIGEST"
    )]
    BadReference { reference: String, problem: String },

    /// Docker's config file holding the registry logins is unreadable.
    #[error(
        "cannot read the registry logins in {path}: {problem}; fix it, or log in again with \
         `docker login REGISTRY`"
    )]
    Credentials { path: PathBuf, problem: String },

    /// The registry cannot be reached.
    #[error(
        "cannot reach the registry {registry} ({message}); check the address, and that it \
         speaks {protocol}"
    )]
    Unreachable {
        registry: String,
        protocol: &'static str,
        message: String,
    },

    /// The registry refused the login, or wants one.
    #[error("the registry refused to let occopus {operation} {reference} ({message}); {advice}")]
    Unauthorized {
        operation: &'static str,
        reference: String,
        message: String,
        advice: &'static str,
    },

    /// Nothing is stored under the tag or digest.
    #[error(
        "the registry has no {reference} ({message}); check the repository and the tag, or \
         push it with `occopus plugins push FILE {reference}`"
    )]
    NotFound { reference: String, message: String },

    /// What is stored is not one WebAssembly component.
    #[error(
        "{reference} is not a WebAssembly component: its manifest has {found}, where a \
         component has one layer of type application/wasm; push one with `occopus plugins push`"
    )]
    NotAComponent { reference: String, found: String },

    /// The component is larger than occopus accepts.
    #[error("{reference} is a component of {bytes} bytes, more than the {limit} occopus downloads")]
    TooLarge {
        reference: String,
        bytes: u64,
        limit: u64,
    },

    /// What came does not hash to the digest it was asked for by.
    #[error(
        "what the registry sent for {reference} does not match its digest ({message}); \
         nothing was installed. The registry or something on the way altered it"
    )]
    DigestMismatch { reference: String, message: String },

    /// Any other failure of the exchange.
    #[error("cannot {operation} {reference}: {message}")]
    Failed {
        operation: &'static str,
        reference: String,
        message: String,
    },
}

/// What was being done, for the messages.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Operation {
    Pull,
    Push,
}

impl Operation {
    fn verb(self) -> &'static str {
        match self {
            Operation::Pull => "pull",
            Operation::Push => "push",
        }
    }
}

impl RegistryError {
    /// The error of `operation` on `reference` that the client reported.
    pub(crate) fn from_client(
        error: OciDistributionError,
        operation: Operation,
        reference: &crate::ComponentReference,
        has_login: bool,
    ) -> RegistryError {
        let message = error.to_string().trim_end().to_owned();
        let reference_text = reference.to_string();
        let envelope_has = |codes: &[OciErrorCode]| match &error {
            OciDistributionError::RegistryError { envelope, .. } => {
                envelope.errors.iter().any(|e| codes.contains(&e.code))
            }
            _ => false,
        };
        let status = match &error {
            OciDistributionError::ServerError { code, .. } => Some(*code),
            _ => None,
        };
        let unauthorized = matches!(
            error,
            OciDistributionError::AuthenticationFailure(_)
                | OciDistributionError::UnauthorizedError { .. }
        ) || envelope_has(&[OciErrorCode::Unauthorized, OciErrorCode::Denied])
            || matches!(status, Some(401 | 403));
        if unauthorized {
            return RegistryError::Unauthorized {
                operation: operation.verb(),
                reference: reference_text,
                message,
                advice: if has_login {
                    "the login in Docker's config.json for this registry was refused: log in \
                     again with `docker login REGISTRY`"
                } else {
                    "log in with `docker login REGISTRY` (occopus reads the login from \
                     $DOCKER_CONFIG/config.json or ~/.docker/config.json)"
                },
            };
        }
        let not_found = matches!(error, OciDistributionError::ImageManifestNotFoundError(_))
            || envelope_has(&[
                OciErrorCode::ManifestUnknown,
                OciErrorCode::NameUnknown,
                OciErrorCode::NotFound,
            ])
            || status == Some(404);
        if not_found && matches!(operation, Operation::Pull) {
            return RegistryError::NotFound {
                reference: reference_text,
                message,
            };
        }
        match error {
            OciDistributionError::DigestError(_) => RegistryError::DigestMismatch {
                reference: reference_text,
                message,
            },
            OciDistributionError::RequestError(e) if e.is_connect() || e.is_timeout() => {
                RegistryError::Unreachable {
                    registry: reference.registry().to_owned(),
                    protocol: if e.url().is_some_and(|u| u.scheme() == "http") {
                        "plain HTTP"
                    } else {
                        "HTTPS (for plain HTTP, pass --plain-http)"
                    },
                    message: occopus_types::error_chain(&e),
                }
            }
            _ => RegistryError::Failed {
                operation: operation.verb(),
                reference: reference_text,
                message,
            },
        }
    }
}
