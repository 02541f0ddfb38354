//! The first-party plugins, compiled into the binary: the `dummy`, `local`,
//! `ec2`, `nova`, `cloudsigma`, `cloudbroker`, `azure_vm`, `azure_aci` and
//! `docker` drivers, the `cloudinit` and `docker` contextualisers and the
//! `chef` and `puppet_solo` config managers.
//! A component in the plugin directory or mapped in the config replaces any
//! of them (see the plugin host's catalog).

use occopus_plugin_host::Builtin;

macro_rules! builtin {
    ($name:literal, $file:literal) => {
        Builtin {
            name: $name,
            bytes: include_bytes!(concat!(env!("OCCOPUS_BUILTIN_WASM_DIR"), "/", $file)),
        }
    };
}

/// Every first-party plugin, by the name it is known by (`builtin:NAME`).
pub const BUILTINS: &[Builtin] = &[
    builtin!("dummy", "occopus_driver_dummy.wasm"),
    builtin!("local", "occopus_driver_local.wasm"),
    builtin!("cloudinit", "occopus_context_cloudinit.wasm"),
    builtin!("ec2", "occopus_driver_ec2.wasm"),
    builtin!("nova", "occopus_driver_nova.wasm"),
    builtin!("cloudsigma", "occopus_driver_cloudsigma.wasm"),
    builtin!("cloudbroker", "occopus_driver_cloudbroker.wasm"),
    builtin!("azure_vm", "occopus_driver_azure_vm.wasm"),
    builtin!("azure_aci", "occopus_driver_azure_aci.wasm"),
    builtin!("docker", "occopus_driver_docker.wasm"),
    builtin!("docker-context", "occopus_context_docker.wasm"),
    builtin!("chef", "occopus_cm_chef.wasm"),
    builtin!("puppet_solo", "occopus_cm_puppet_solo.wasm"),
];

/// The first-party drivers that get a `unix://` endpoint bridged to them
/// unless the configuration says otherwise: `docker`, whose usual endpoint is
/// `unix:///var/run/docker.sock`. Every other plugin needs the operator's
/// `plugins.settings.NAME.unix_endpoints: true`.
pub const UNIX_ENDPOINT_DRIVERS: &[&str] = &["docker"];

/// The directory of the first-party plugins' `.wasm` files, for tools and
/// tests that load them as files.
pub fn wasm_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("OCCOPUS_BUILTIN_WASM_DIR"))
}
