//! Where a component is in a registry: `oci://REGISTRY[:PORT]/REPOSITORY`
//! followed by `:TAG`, `@sha256:DIGEST`, or both.

use crate::error::RegistryError;
use oci_client::Reference;
use std::fmt;
use std::net::IpAddr;

/// The scheme every component reference starts with.
const SCHEME: &str = "oci://";

/// A parsed `oci://` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentReference {
    inner: Reference,
}

impl ComponentReference {
    /// Parses `oci://REGISTRY/REPOSITORY:TAG` (or `@sha256:…`). The registry
    /// must be named: nothing defaults to Docker Hub.
    pub fn parse(text: &str) -> Result<ComponentReference, RegistryError> {
        let bad = |problem: &str| RegistryError::BadReference {
            reference: text.to_owned(),
            problem: problem.to_owned(),
        };
        let rest = text
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad("it does not start with oci://"))?;
        let (registry, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("it names no repository after the registry"))?;
        if registry.is_empty() || !(registry.contains(['.', ':']) || registry == "localhost") {
            return Err(bad(
                "its first part is not a registry host (a name with a dot, a host:port, or \
                 localhost)",
            ));
        }
        let (name, digest) = match path.split_once('@') {
            Some((name, digest)) => (name, Some(digest)),
            None => (path, None),
        };
        let tag = name.rsplit_once(':').map(|(_, tag)| tag);
        if tag.is_none() && digest.is_none() {
            return Err(bad(
                "it names neither a tag (:TAG) nor a digest (@sha256:…)",
            ));
        }
        if digest.is_some_and(|d| !d.starts_with("sha256:")) {
            return Err(bad("its digest is not a sha256: one"));
        }
        let inner = Reference::try_from(rest).map_err(|e| bad(&e.to_string()))?;
        Ok(ComponentReference { inner })
    }

    /// The same repository at `digest` (what a lock file pins).
    pub fn at_digest(&self, digest: &str) -> ComponentReference {
        ComponentReference {
            inner: Reference::with_digest(
                self.inner.registry().to_owned(),
                self.inner.repository().to_owned(),
                digest.to_owned(),
            ),
        }
    }

    /// The registry, `HOST[:PORT]`.
    pub fn registry(&self) -> &str {
        self.inner.registry()
    }

    /// The repository, without the registry.
    pub fn repository(&self) -> &str {
        self.inner.repository()
    }

    /// The tag, if one is named.
    pub fn tag(&self) -> Option<&str> {
        self.inner.tag()
    }

    /// The digest, if one is named.
    pub fn digest(&self) -> Option<&str> {
        self.inner.digest()
    }

    /// The last part of the repository (`ec2` of `occopus/ec2`).
    pub fn short_name(&self) -> &str {
        let repository = self.repository();
        repository.rsplit('/').next().unwrap_or(repository)
    }

    /// Whether the registry is on this machine's loopback (reached over
    /// plain HTTP, as Docker does).
    pub fn is_loopback(&self) -> bool {
        // (References cannot name an IPv6 literal: the reference grammar has none.)
        let registry = self.registry();
        let host = registry.rsplit_once(':').map_or(registry, |(host, _)| host);
        host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    pub(crate) fn oci(&self) -> &Reference {
        &self.inner
    }
}

impl fmt::Display for ComponentReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}", self.inner.whole())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn tags_and_digests_parse_and_print_back() {
        let tagged = ComponentReference::parse("oci://127.0.0.1:5000/occopus/ec2:0.3.0").unwrap();
        assert_eq!(tagged.registry(), "127.0.0.1:5000");
        assert_eq!(tagged.repository(), "occopus/ec2");
        assert_eq!(tagged.tag(), Some("0.3.0"));
        assert_eq!(tagged.short_name(), "ec2");
        assert_eq!(tagged.to_string(), "oci://127.0.0.1:5000/occopus/ec2:0.3.0");
        let pinned = ComponentReference::parse(&format!("oci://ghcr.io/o/ec2@{DIGEST}")).unwrap();
        assert_eq!(pinned.digest(), Some(DIGEST));
        assert_eq!(pinned.to_string(), format!("oci://ghcr.io/o/ec2@{DIGEST}"));
        assert_eq!(tagged.at_digest(DIGEST).digest(), Some(DIGEST));
    }

    #[test]
    fn only_loopback_registries_are_loopback() {
        for (text, loopback) in [
            ("oci://127.0.0.1:5000/a:1", true),
            ("oci://localhost:5000/a:1", true),
            ("oci://ghcr.io/a:1", false),
            ("oci://10.0.0.1:5000/a:1", false),
        ] {
            let reference = ComponentReference::parse(text).unwrap();
            assert_eq!(reference.is_loopback(), loopback, "{text}");
        }
    }

    #[test]
    fn bad_references_say_what_is_wrong() {
        for (text, problem) in [
            ("127.0.0.1:5000/a:1", "oci://"),
            ("oci://ghcr.io", "no repository"),
            ("oci://occopus/ec2:1", "not a registry host"),
            ("oci://ghcr.io/occopus/ec2", "neither a tag"),
            ("oci://ghcr.io/occopus/ec2@md5:00", "not a sha256"),
        ] {
            let error = ComponentReference::parse(text).unwrap_err().to_string();
            assert!(error.contains(problem), "{text}: {error}");
            assert!(error.contains(text), "{text}: {error}");
        }
    }
}
