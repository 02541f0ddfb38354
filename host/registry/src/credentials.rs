//! The registry logins `docker login` (and `oras login`, `helm registry
//! login`) keep in Docker's `config.json`: `{"auths": {"REGISTRY": {"auth":
//! base64("USER:PASSWORD")}}}`. Where the file is, is the caller's business
//! (`$DOCKER_CONFIG`, `~/.docker`). Credential helpers (`credsStore`,
//! `credHelpers`) run programs and are not followed: such a login must be
//! given another way.

use crate::error::RegistryError;
use base64::Engine;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// A user and password for one registry. Never printed: its `Debug` shows
/// the user only.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryLogin {
    /// The user name.
    pub user: String,
    pub(crate) password: String,
}

impl fmt::Debug for RegistryLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryLogin")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
}

#[derive(Deserialize)]
struct DockerAuth {
    auth: Option<String>,
}

impl RegistryLogin {
    /// A login given directly.
    pub fn new(user: String, password: String) -> RegistryLogin {
        RegistryLogin { user, password }
    }

    /// The login for `registry` (`HOST[:PORT]`) in Docker's config file at
    /// `path`; none if the file or the entry is missing.
    pub fn from_docker_config(
        path: &Path,
        registry: &str,
    ) -> Result<Option<RegistryLogin>, RegistryError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(bad_config(path, &e.to_string())),
        };
        let config: DockerConfig =
            serde_json::from_str(&text).map_err(|e| bad_config(path, &e.to_string()))?;
        // `docker login` writes the bare host, older versions a URL.
        let entry = config.auths.iter().find(|(key, _)| {
            let host = key
                .trim_start_matches("https://")
                .trim_start_matches("http://");
            host.split('/').next() == Some(registry)
        });
        let Some(encoded) = entry.and_then(|(_, auth)| auth.auth.as_deref()) else {
            return Ok(None);
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| bad_config(path, &format!("the `auth` of {registry} is not base64")))?;
        let (user, password) = decoded.split_once(':').ok_or_else(|| {
            bad_config(
                path,
                &format!("the `auth` of {registry} is not USER:PASSWORD"),
            )
        })?;
        Ok(Some(RegistryLogin::new(
            user.to_owned(),
            password.to_owned(),
        )))
    }
}

fn bad_config(path: &Path, problem: &str) -> RegistryError {
    RegistryError::Credentials {
        path: path.to_owned(),
        problem: problem.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_docker_login_is_found_by_registry_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("ann:s3cret:x");
        std::fs::write(
            &path,
            format!(
                r#"{{"auths": {{"https://reg.example.org:5000": {{"auth": "{auth}"}},
                               "other.example.org": {{}}}}}}"#
            ),
        )
        .unwrap();
        let login = RegistryLogin::from_docker_config(&path, "reg.example.org:5000")
            .unwrap()
            .unwrap();
        assert_eq!(login, RegistryLogin::new("ann".into(), "s3cret:x".into()));
        assert!(!format!("{login:?}").contains("s3cret"));
        assert_eq!(
            RegistryLogin::from_docker_config(&path, "other.example.org").unwrap(),
            None
        );
        assert_eq!(
            RegistryLogin::from_docker_config(&dir.path().join("none.json"), "x.org").unwrap(),
            None
        );
        std::fs::write(&path, "{").unwrap();
        let error = RegistryLogin::from_docker_config(&path, "x.org").unwrap_err();
        assert!(error.to_string().contains(&path.display().to_string()));
    }
}
