//! Facts about instances and nodes that the model, the store and the engine
//! all speak of.

use serde::{Deserialize, Serialize};

/// The addresses of one instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceAddresses {
    /// Public (reachable) addresses, best first.
    pub public: Vec<String>,
    /// Private addresses.
    pub private: Vec<String>,
}

impl InstanceAddresses {
    /// The address to reach the instance at: the first public, else private.
    pub fn primary(&self) -> Option<&str> {
        self.public
            .first()
            .or(self.private.first())
            .map(String::as_str)
    }

    /// Whether `address` is one of them.
    pub fn contains(&self, address: &str) -> bool {
        self.public
            .iter()
            .chain(&self.private)
            .any(|a| a == address)
    }
}

/// How many instances of a node there may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scaling {
    /// At least this many (created by build; at least 1).
    pub min: u32,
    /// At most this many (at least `min`).
    pub max: u32,
}

impl Scaling {
    /// The instance count wanted: the `scaled` target if the node was
    /// scaled, else `min`; always within `[min, max]`.
    pub fn target(self, scaled: Option<u32>) -> u32 {
        scaled.unwrap_or(self.min).clamp(self.min, self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_stays_within_the_limits() {
        let scaling = Scaling { min: 2, max: 5 };
        assert_eq!(scaling.target(None), 2);
        assert_eq!(scaling.target(Some(4)), 4);
        assert_eq!(scaling.target(Some(9)), 5);
        assert_eq!(scaling.target(Some(0)), 2);
    }

    #[test]
    fn the_primary_address_is_the_first_public_else_private() {
        let private_only = InstanceAddresses {
            public: vec![],
            private: vec!["10.0.0.2".into()],
        };
        assert_eq!(private_only.primary(), Some("10.0.0.2"));
        let both = InstanceAddresses {
            public: vec!["127.100.0.7".into()],
            ..private_only.clone()
        };
        assert_eq!(both.primary(), Some("127.100.0.7"));
        assert!(both.contains("10.0.0.2"));
        assert!(!both.contains("10.0.0.3"));
    }
}
