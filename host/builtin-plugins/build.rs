//! Builds the first-party plugins (`plugins/`) for wasm32-wasip2, all in one
//! cargo invocation, so that `src/lib.rs` can embed them.

use occopus_plugin_build::Package;

fn main() {
    let dir = occopus_plugin_build::build(&[
        Package {
            name: "occopus-driver-dummy",
            dir: "dummy",
        },
        Package {
            name: "occopus-driver-local",
            dir: "local",
        },
        Package {
            name: "occopus-driver-ec2",
            dir: "ec2",
        },
        Package {
            name: "occopus-driver-nova",
            dir: "nova",
        },
        Package {
            name: "occopus-driver-cloudsigma",
            dir: "cloudsigma",
        },
        Package {
            name: "occopus-driver-cloudbroker",
            dir: "cloudbroker",
        },
        Package {
            name: "occopus-driver-azure-vm",
            dir: "azure-vm",
        },
        Package {
            name: "occopus-driver-azure-aci",
            dir: "azure-aci",
        },
        Package {
            name: "occopus-driver-docker",
            dir: "docker",
        },
        Package {
            name: "occopus-context-cloudinit",
            dir: "cloudinit",
        },
        Package {
            name: "occopus-context-docker",
            dir: "docker-context",
        },
        Package {
            name: "occopus-cm-chef",
            dir: "chef",
        },
        Package {
            name: "occopus-cm-puppet-solo",
            dir: "puppet-solo",
        },
    ]);
    println!("cargo:rustc-env=OCCOPUS_BUILTIN_WASM_DIR={}", dir.display());
}
