//! A resource section that names no `endpoint` may still have one that this
//! process provides: the facade answers for the built-in local cloud by
//! starting it. The engine asks through [`EndpointResolver`] and knows no
//! cloud by name.

use async_trait::async_trait;
use occopus_types::{ErrorCode, HasErrorCode, ResourceSection};

/// Provides endpoints for resources that name none.
#[async_trait]
pub trait EndpointResolver: Send + Sync {
    /// The endpoint for `resource` (which has no `endpoint` key), or `None`
    /// when this process provides none for it: the driver then sees the
    /// section as written.
    async fn endpoint(&self, resource: &ResourceSection) -> Result<Option<String>, EndpointError>;
}

/// Provides no endpoint for any resource.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEndpoints;

#[async_trait]
impl EndpointResolver for NoEndpoints {
    async fn endpoint(&self, _: &ResourceSection) -> Result<Option<String>, EndpointError> {
        Ok(None)
    }
}

/// An endpoint that should have been provided could not be.
#[derive(Debug, thiserror::Error)]
#[error("cannot provide an endpoint for `{resource_type}` resources: {source}")]
pub struct EndpointError {
    /// The resource type.
    pub resource_type: String,
    /// What kind of failure it was.
    pub code: ErrorCode,
    /// Why.
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl HasErrorCode for EndpointError {
    fn code(&self) -> ErrorCode {
        self.code
    }
}
