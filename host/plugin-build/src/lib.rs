//! Builds packages of the plugins workspace (`plugins/`) for `wasm32-wasip2`,
//! from a build script: the first-party plugins for
//! `occopus-builtin-plugins`, the test plugins for `occopus-test-plugins`.
//!
//! Each call builds its packages in one cargo invocation, so cargo builds them
//! in parallel, into `plugins/target`. The target must be installed
//! (`rustup target add wasm32-wasip2`, which `scripts/setup` does); the panic
//! says so if it is not.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The plugins workspace, from the calling build script's manifest directory
/// (a crate under `host/`).
pub fn plugins_dir() -> PathBuf {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    manifest_dir.join("../../plugins")
}

/// A package of the plugins workspace: its name and its directory there.
pub struct Package {
    /// The cargo package name.
    pub name: &'static str,
    /// Its directory, relative to `plugins/`.
    pub dir: &'static str,
}

/// Builds `packages` in release mode and returns the directory of the
/// `.wasm` files. Tells cargo to run the build script again when a source of
/// these packages or of their path dependencies, the SDK, the workspace's
/// manifest or the contract changes
/// (not for other plugins, so that editing a test plugin does not rebuild
/// the binary).
pub fn build(packages: &[Package]) -> PathBuf {
    let plugins = plugins_dir();
    let target_dir = plugins.join("target");
    for package in packages {
        let dir = plugins.join(package.dir);
        watch(&dir);
        for library in path_dependencies(&dir) {
            watch(&library);
        }
    }
    watch(&plugins.join("sdk"));
    watch(&plugins.join("../wit"));
    for file in ["Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", plugins.join(file).display());
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .arg("--manifest-path")
        .arg(plugins.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    for package in packages {
        command.args(["--package", package.name]);
    }
    // The outer build's settings are for the host, not for wasm.
    for variable in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PROFILE_RELEASE_DEBUG",
    ] {
        command.env_remove(variable);
    }
    let status = command
        .status()
        .expect("cannot run cargo to build the plugins");
    if !status.success() {
        panic!(
            "building {} for wasm32-wasip2 failed (see above). If the target is missing, run \
             `rustup target add wasm32-wasip2` (scripts/setup does).",
            packages
                .iter()
                .map(|p| p.name)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    target_dir.join("wasm32-wasip2").join("release")
}

/// The directories of a package's path dependencies (`path = "../x"` in its
/// manifest), such as a library crate two drivers share.
fn path_dependencies(dir: &Path) -> Vec<PathBuf> {
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
    manifest
        .split("path = \"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|path| dir.join(path))
        .collect()
}

/// Re-runs the build script when a source file under `dir` changes (but not
/// for build outputs, which would re-run it forever).
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
