//! The version of the `occopus:plugin` contract this host speaks, read at
//! build time from `wit/plugin.wit`, and which plugin versions it accepts.

/// The contract version this host speaks.
pub const CONTRACT_VERSION: &str = env!("OCCOPUS_CONTRACT_VERSION");

/// The prefix of the contract's interface names in a component's exports.
pub(crate) const CONTRACT_PACKAGE: &str = "occopus:plugin/";

/// Whether a plugin built against `found` works with a host of `supported`:
/// the same major version, and for 0.x the same minor version too (semver).
pub fn contract_compatible(found: &str, supported: &str) -> bool {
    let parse = |v: &str| -> Option<(u64, u64)> {
        let mut parts = v.split(['.', '-', '+']);
        Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
    };
    match (parse(found), parse(supported)) {
        (Some((0, found_minor)), Some((0, minor))) => found_minor == minor,
        (Some((found_major, _)), Some((major, _))) => found_major == major,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_compatibility_of_the_contract() {
        assert!(contract_compatible("0.1.0", "0.1.0"));
        assert!(contract_compatible("0.1.3", "0.1.0"));
        assert!(!contract_compatible("0.2.0", "0.1.0"));
        assert!(!contract_compatible("1.0.0", "0.1.0"));
        assert!(contract_compatible("1.4.0", "1.0.0"));
        assert!(!contract_compatible("2.0.0", "1.0.0"));
        assert!(!contract_compatible("garbage", "0.1.0"));
    }

    #[test]
    fn the_version_is_the_one_in_the_wit_package_line() {
        let wit = include_str!("../../../wit/plugin.wit");
        assert!(
            wit.contains(&format!("package occopus:plugin@{CONTRACT_VERSION};")),
            "CONTRACT_VERSION {CONTRACT_VERSION} is not wit/plugin.wit's"
        );
    }
}
