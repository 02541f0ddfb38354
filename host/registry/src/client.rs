//! Pulling and pushing one component.

use crate::artifact::{CONFIG_MEDIA_TYPE, ComponentInfo, LAYER_MEDIA_TYPE};
use crate::credentials::RegistryLogin;
use crate::error::{Operation, RegistryError};
use crate::reference::ComponentReference;
use oci_client::Client;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::OciImageManifest;
use oci_client::secrets::RegistryAuth;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The largest component downloaded (the plugins built here are 0.1-3 MiB).
pub const MAX_COMPONENT_BYTES: u64 = 256 * 1024 * 1024;

/// How to reach a registry.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Plain HTTP even though the registry is not on the loopback.
    pub plain_http: bool,
    /// The login, if the registry wants one.
    pub login: Option<RegistryLogin>,
}

/// A component pulled.
#[derive(Debug, Clone)]
pub struct PulledComponent {
    /// The component's bytes, verified against `digest`.
    pub bytes: Vec<u8>,
    /// The digest of the manifest pulled (pin this to pull the same again).
    pub manifest_digest: String,
    /// The digest of the component (its layer).
    pub digest: String,
    /// The manifest's annotations.
    pub annotations: BTreeMap<String, String>,
}

/// A component pushed.
#[derive(Debug, Clone)]
pub struct PushedComponent {
    /// The digest of the manifest the registry now holds under the tag.
    pub manifest_digest: String,
    /// The digest of the component (its layer).
    pub digest: String,
}

/// A client of the registry one reference names.
pub struct Registry {
    client: Client,
    auth: RegistryAuth,
    has_login: bool,
}

impl Registry {
    /// A client for `reference`'s registry: HTTPS, except a loopback
    /// registry or when `options.plain_http` says so.
    pub fn new(
        reference: &ComponentReference,
        options: RegistryOptions,
    ) -> Result<Registry, RegistryError> {
        let protocol = if options.plain_http || reference.is_loopback() {
            ClientProtocol::HttpsExcept(vec![reference.registry().to_owned()])
        } else {
            ClientProtocol::Https
        };
        let client = Client::try_from(ClientConfig {
            protocol,
            // A registry that refuses chunked uploads is retried monolithically
            // by the client; components are small enough to send whole.
            use_monolithic_push: true,
            user_agent: concat!("occopus/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        })
        .map_err(|e| RegistryError::Failed {
            operation: "set up a client for",
            reference: reference.to_string(),
            message: e.to_string(),
        })?;
        let (auth, has_login) = match options.login {
            Some(login) => (RegistryAuth::Basic(login.user, login.password), true),
            None => (RegistryAuth::Anonymous, false),
        };
        Ok(Registry {
            client,
            auth,
            has_login,
        })
    }

    /// Pulls the component `reference` names, verifying the manifest (if a
    /// digest is named) and the component against their digests.
    pub async fn pull(
        &self,
        reference: &ComponentReference,
    ) -> Result<PulledComponent, RegistryError> {
        let failed = |e| RegistryError::from_client(e, Operation::Pull, reference, self.has_login);
        let (manifest, manifest_digest) = self
            .client
            .pull_image_manifest(reference.oci(), &self.auth)
            .await
            .map_err(failed)?;
        let layer = match manifest.layers.as_slice() {
            [layer] if layer.media_type == LAYER_MEDIA_TYPE => layer,
            layers => {
                let types: Vec<&str> = layers.iter().map(|l| l.media_type.as_str()).collect();
                return Err(RegistryError::NotAComponent {
                    reference: reference.to_string(),
                    found: format!("{} layer(s) of type(s) [{}]", types.len(), types.join(", ")),
                });
            }
        };
        let too_large = |bytes: u64| RegistryError::TooLarge {
            reference: reference.to_string(),
            bytes,
            limit: MAX_COMPONENT_BYTES,
        };
        let size = u64::try_from(layer.size).unwrap_or(u64::MAX);
        if size > MAX_COMPONENT_BYTES {
            return Err(too_large(size));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        self.client
            .pull_blob(reference.oci(), layer, &mut bytes)
            .await
            .map_err(failed)?;
        if bytes.len() as u64 > MAX_COMPONENT_BYTES {
            return Err(too_large(bytes.len() as u64));
        }
        Ok(PulledComponent {
            bytes,
            manifest_digest,
            digest: layer.digest.clone(),
            annotations: manifest.annotations.unwrap_or_default(),
        })
    }

    /// Pushes `component` under `reference`'s tag as a Wasm OCI artifact.
    pub async fn push(
        &self,
        reference: &ComponentReference,
        component: Vec<u8>,
        info: &ComponentInfo,
    ) -> Result<PushedComponent, RegistryError> {
        if reference.digest().is_some() || reference.tag().is_none() {
            return Err(RegistryError::BadReference {
                reference: reference.to_string(),
                problem: "a push names a tag, not a digest (the registry gives the digest)".into(),
            });
        }
        let failed = |e| RegistryError::from_client(e, Operation::Push, reference, self.has_login);
        let digest = format!("sha256:{:x}", Sha256::digest(&component));
        let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let layer = ImageLayer::new(component, LAYER_MEDIA_TYPE.to_owned(), None);
        let config = Config::new(
            info.config(&digest, &created),
            CONFIG_MEDIA_TYPE.to_owned(),
            None,
        );
        let layers = [layer];
        let manifest = OciImageManifest::build(&layers, &config, Some(info.annotations(&created)));
        self.client
            .push(reference.oci(), &layers, config, &self.auth, Some(manifest))
            .await
            .map_err(failed)?;
        let manifest_digest = self
            .client
            .fetch_manifest_digest(reference.oci(), &self.auth)
            .await
            .map_err(failed)?;
        Ok(PushedComponent {
            manifest_digest,
            digest,
        })
    }
}
