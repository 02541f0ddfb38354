//! occopus plugins in OCI registries: a WebAssembly component stored as an
//! OCI artifact, in the layout other component registries use (the CNCF
//! "Wasm OCI artifact" layout that wasm-pkg-tools, `wkg oci` and oci-wasm
//! read and write): one layer of media type `application/wasm`, a config of
//! type `application/vnd.wasm.config.v0+json` naming the layer's digest and
//! the component's imports and exports.
//!
//! - [`reference`]: `oci://REGISTRY/REPOSITORY:TAG` and `@sha256:…`;
//! - [`credentials`]: the logins `docker login` keeps;
//! - [`artifact`]: the artifact's config and annotations;
//! - [`client`]: pulling and pushing one component;
//! - [`error`]: what fails, and what to do about it.
//!
//! The registry is reached over HTTPS, except a loopback one (as Docker does)
//! or when plain HTTP is asked for. The client verifies every blob and
//! manifest against its digest as it reads it.

pub mod artifact;
pub mod client;
pub mod credentials;
pub mod error;
pub mod reference;

pub use artifact::ComponentInfo;
pub use client::{PulledComponent, PushedComponent, Registry, RegistryOptions};
pub use credentials::RegistryLogin;
pub use error::RegistryError;
pub use reference::ComponentReference;
