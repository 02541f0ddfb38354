//! Reads the contract version from `wit/plugin.wit` (its `package` line), so
//! that the version is written once, in the contract itself.

use std::path::PathBuf;

fn main() {
    let wit =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap()).join("../../wit/plugin.wit");
    println!("cargo:rerun-if-changed={}", wit.display());
    let text = std::fs::read_to_string(&wit)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", wit.display()));
    let version = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("package occopus:plugin@"))
        .and_then(|rest| rest.strip_suffix(';'))
        .unwrap_or_else(|| {
            panic!(
                "{} has no `package occopus:plugin@VERSION;` line",
                wit.display()
            )
        });
    println!("cargo:rustc-env=OCCOPUS_CONTRACT_VERSION={version}");
}
