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

    use std::path::{Path, PathBuf};

    fn repository() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                files.extend(files_under(&path));
            } else {
                files.push(path);
            }
        }
        files.sort();
        files
    }

    #[test]
    fn the_version_is_the_one_in_the_wit_package_line() {
        let wit = include_str!("../../../wit/plugin.wit");
        assert!(
            wit.contains(&format!("package occopus:plugin@{CONTRACT_VERSION};")),
            "CONTRACT_VERSION {CONTRACT_VERSION} is not wit/plugin.wit's"
        );
    }

    /// The SDK carries its own copy of the contract, so that a plugin can be
    /// built outside this repository: it must be the contract itself.
    #[test]
    fn the_sdk_carries_the_contract_unchanged() {
        let contract = repository().join("wit");
        let copy = repository().join("plugins/sdk/wit");
        let relative = |dir: &Path, files: Vec<PathBuf>| -> Vec<PathBuf> {
            files
                .into_iter()
                .map(|f| f.strip_prefix(dir).unwrap().to_owned())
                .collect()
        };
        let originals = files_under(&contract);
        assert_eq!(
            relative(&contract, originals.clone()),
            relative(&copy, files_under(&copy)),
            "plugins/sdk/wit must hold the files of wit/"
        );
        for original in originals {
            let copied = copy.join(original.strip_prefix(&contract).unwrap());
            assert_eq!(
                std::fs::read(&original).unwrap(),
                std::fs::read(&copied).unwrap(),
                "{} differs from {}: copy wit/ into plugins/sdk/wit",
                copied.display(),
                original.display()
            );
        }
    }

    /// Where the version is spelt out besides the WIT (the names wit-bindgen
    /// needs in the SDK, the docs), it is this one.
    #[test]
    fn every_spelt_out_version_is_the_contract_version() {
        let sdk = std::fs::read_to_string(repository().join("plugins/sdk/src/lib.rs")).unwrap();
        let spelt: Vec<&str> = sdk
            .split("occopus:plugin/")
            .skip(1)
            .filter_map(|rest| rest.split_once('@'))
            .map(|(_, version)| version.split(['"', ';']).next().unwrap_or_default())
            .collect();
        assert!(!spelt.is_empty(), "the SDK names the contract's interfaces");
        assert!(
            spelt.iter().all(|v| *v == CONTRACT_VERSION),
            "plugins/sdk/src/lib.rs spells {spelt:?}, the contract is {CONTRACT_VERSION}"
        );
        let docs = std::fs::read_to_string(repository().join("docs/plugins.md")).unwrap();
        assert!(
            docs.contains(&format!("package `occopus:plugin@{CONTRACT_VERSION}`")),
            "docs/plugins.md must name the contract version {CONTRACT_VERSION}"
        );
    }
}
