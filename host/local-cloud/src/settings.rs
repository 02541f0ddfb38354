//! Where the local cloud keeps its nodes, what it allows, and the command
//! that supervises a node.

use crate::error::LocalCloudError;
use serde::Deserialize;
use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// The addresses nodes get unless configured otherwise.
pub const DEFAULT_ADDRESS_RANGE: &str = "127.77.0.0/16";
/// The most nodes at once unless configured otherwise.
pub const DEFAULT_MAX_NODES: usize = 64;
/// The `resource.type` of the local cloud's nodes.
pub const RESOURCE_TYPE: &str = "local";

/// The `local_cloud` section of the occopus configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalCloudConfig {
    /// Its directory (none: the front end's default).
    pub root: Option<PathBuf>,
    /// Loopback addresses given to nodes, as CIDR inside 127.0.0.0/8.
    pub address_range: String,
    /// The most nodes at once.
    pub max_nodes: usize,
}

impl Default for LocalCloudConfig {
    fn default() -> Self {
        LocalCloudConfig {
            root: None,
            address_range: DEFAULT_ADDRESS_RANGE.into(),
            max_nodes: DEFAULT_MAX_NODES,
        }
    }
}

/// The command that supervises one node: `program args... --control DIR
/// --dir DIR --address ADDRESS` runs [`crate::node::boot`]. The front end
/// that owns the local cloud says how it is spelt (the `occopus` binary
/// spells it `occopus local-cloud boot-node`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRunner {
    /// The program.
    pub program: PathBuf,
    /// Its arguments before the node's own.
    pub args: Vec<OsString>,
}

/// Where the local cloud keeps its nodes and what it allows.
#[derive(Debug, Clone)]
pub struct LocalCloudSettings {
    /// The directory of the database, node directories and control files.
    pub root: PathBuf,
    /// Loopback addresses given to nodes, as CIDR inside 127.0.0.0/8.
    pub address_range: String,
    /// The most nodes that may exist at once.
    pub max_nodes: usize,
    /// The command that supervises each node.
    pub runner: NodeRunner,
}

impl LocalCloudSettings {
    /// Settings for a local cloud in `root` with the `config` section's
    /// limits, whose nodes `runner` supervises.
    pub fn new(root: PathBuf, config: &LocalCloudConfig, runner: NodeRunner) -> Self {
        LocalCloudSettings {
            root,
            address_range: config.address_range.clone(),
            max_nodes: config.max_nodes,
            runner,
        }
    }
}

/// The first and last address of a CIDR range inside 127.0.0.0/8.
pub(crate) fn parse_range(range: &str) -> Result<(u32, u32), LocalCloudError> {
    let bad = || LocalCloudError::BadRange(range.to_owned());
    let (base, bits) = range.split_once('/').ok_or_else(bad)?;
    let base: Ipv4Addr = base.parse().map_err(|_| bad())?;
    let bits: u32 = bits.parse().map_err(|_| bad())?;
    if !(8..=30).contains(&bits) || base.octets()[0] != 127 {
        return Err(bad());
    }
    let mask = u32::MAX << (32 - bits);
    let first = u32::from(base) & mask;
    Ok((first, first | !mask))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges_stay_inside_loopback() {
        let (first, last) = parse_range("127.77.0.0/16").unwrap();
        assert_eq!(std::net::Ipv4Addr::from(first).to_string(), "127.77.0.0");
        assert_eq!(std::net::Ipv4Addr::from(last).to_string(), "127.77.255.255");
        for bad in ["10.0.0.0/8", "127.0.0.1", "127.0.0.0/31", "x/16"] {
            assert!(parse_range(bad).is_err(), "{bad}");
        }
    }
}
