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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_keys_only() {
        let credentials = Credentials::new([("secretkey".into(), "s3cr3t".into())]);
        let shown = format!("{credentials:?}");
        assert!(shown.contains("secretkey"), "{shown}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }
}
