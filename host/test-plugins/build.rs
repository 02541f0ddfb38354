//! Builds the test-only plugins of `plugins/` for wasm32-wasip2, in one cargo
//! invocation. Only tests depend on this crate, so `cargo build` of the
//! binary never builds them.

use occopus_plugin_build::Package;

fn main() {
    let dir = occopus_plugin_build::build(&[
        Package {
            name: "occopus-test-hostile",
            dir: "test-fixtures/hostile",
        },
        Package {
            name: "occopus-test-forgetful",
            dir: "test-fixtures/forgetful",
        },
        Package {
            name: "occopus-test-contract-next",
            dir: "test-fixtures/contract-next",
        },
        Package {
            name: "occopus-test-contract-previous",
            dir: "test-fixtures/contract-0.1.0",
        },
        Package {
            name: "occopus-test-contract-0-1-1",
            dir: "test-fixtures/contract-0.1.1",
        },
        Package {
            name: "occopus-example-restcloud",
            dir: "examples/restcloud",
        },
    ]);
    println!("cargo:rustc-env=OCCOPUS_TEST_WASM_DIR={}", dir.display());
}
