//! Builds the plugins workspace (`plugins/`) for wasm32-wasip2 so that the
//! first-party plugins can be embedded in the binary and the test fixtures are
//! ready for the tests.
//!
//! Each plugin is built by its own cargo run: plugins enable different features
//! of the SDK, which one run would unify. The wasm32-wasip2 target must be
//! installed (`scripts/setup` does it); the error says so if it is not.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Packages of the plugins workspace built here.
const PLUGIN_PACKAGES: &[&str] = &[
    "occopus-driver-dummy",
    "occopus-driver-local",
    "occopus-driver-ec2",
    "occopus-driver-docker",
    "occopus-context-cloudinit",
    "occopus-context-docker",
    "occopus-test-hostile",
    "occopus-test-contract-next",
    "occopus-example-restcloud",
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_owned();
    let plugins = root.join("plugins");
    let target_dir = plugins.join("target");

    watch(&root.join("wit"));
    watch(&plugins);

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for package in PLUGIN_PACKAGES {
        let status = Command::new(&cargo)
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--package",
            ])
            .arg(package)
            .arg("--manifest-path")
            .arg(plugins.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir)
            // The outer build's settings are for the host, not for wasm.
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("CARGO_BUILD_TARGET")
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove("CARGO_PROFILE_RELEASE_DEBUG")
            .status()
            .expect("cannot run cargo to build the plugins");
        if !status.success() {
            panic!(
                "building plugin {package} for wasm32-wasip2 failed (see above). If the target \
                 is missing, run `rustup target add wasm32-wasip2` (scripts/setup does)."
            );
        }
    }
    let wasm_dir = target_dir.join("wasm32-wasip2").join("release");
    println!(
        "cargo:rustc-env=OCCOPUS_PLUGIN_WASM_DIR={}",
        wasm_dir.display()
    );
}

/// Re-runs this script when a source file under `dir` changes (but not for
/// build outputs, which would re-run it forever).
fn watch(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            watch(&path);
        } else {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}
