//! The credentials of one resource.

use std::fmt;

/// The `auth_data` selected for one resource. Its `Debug` never shows values;
/// the plugin host masks every value in what a plugin logs or reports.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials(Vec<(String, String)>);

impl Credentials {
    /// Credentials from key/value pairs.
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Credentials(pairs.into_iter().collect())
    }

    /// The key/value pairs, in the order given.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// The secret values, for masking.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(_, v)| v.as_str())
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&str> = self.0.iter().map(|(k, _)| k.as_str()).collect();
        write!(f, "Credentials({keys:?}, values hidden)")
    }
}

/// Credentials a resource type gets where the credentials file has none for
/// a resource: what the environment provides (for `ec2`, the AWS tools' own
/// sources), each with where it came from. Its `Debug` shows the types and
/// sources, never a value.
#[derive(Clone, Default)]
pub struct AmbientCredentials(Vec<Ambient>);

#[derive(Clone)]
struct Ambient {
    resource_type: String,
    credentials: Credentials,
    source: String,
}

impl AmbientCredentials {
    /// Adds `credentials` for the resources of `resource_type`, found in
    /// `source` (said in logs: a variable's or a file's name, never a value).
    pub fn add(&mut self, resource_type: &str, credentials: Credentials, source: String) {
        self.0.push(Ambient {
            resource_type: resource_type.to_owned(),
            credentials,
            source,
        });
    }

    /// The credentials for a resource of `resource_type`, and where they
    /// came from.
    pub fn for_type(&self, resource_type: &str) -> Option<(&Credentials, &str)> {
        self.0
            .iter()
            .find(|a| a.resource_type == resource_type)
            .map(|a| (&a.credentials, a.source.as_str()))
    }
}

impl fmt::Debug for AmbientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sources: Vec<String> = self
            .0
            .iter()
            .map(|a| format!("{} from {}", a.resource_type, a.source))
            .collect();
        write!(f, "AmbientCredentials({sources:?}, values hidden)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ambient_credentials_are_found_by_type_and_never_shown() {
        let mut ambient = AmbientCredentials::default();
        ambient.add(
            "ec2",
            Credentials::new([("secretkey".into(), "s3cr3t".into())]),
            "AWS_SECRET_ACCESS_KEY".into(),
        );
        let (credentials, source) = ambient.for_type("ec2").unwrap();
        assert_eq!(credentials.pairs()[0].1, "s3cr3t");
        assert_eq!(source, "AWS_SECRET_ACCESS_KEY");
        assert!(ambient.for_type("nova").is_none());
        assert!(!format!("{ambient:?}").contains("s3cr3t"));
    }

    #[test]
    fn debug_shows_keys_only() {
        let credentials = Credentials::new([("secretkey".into(), "s3cr3t".into())]);
        let shown = format!("{credentials:?}");
        assert!(shown.contains("secretkey"), "{shown}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }
}
