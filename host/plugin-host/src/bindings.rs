//! Host bindings generated from `wit/plugin.wit`.
//!
//! The `wasi:*` interfaces a driver imports are bound to wasmtime-wasi's own
//! implementations; the occopus interfaces are generated here once and shared
//! by both worlds.

/// The `driver-plugin` world (and the shared `types` and `logging` interfaces).
pub mod driver {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "occopus:plugin/driver-plugin",
        imports: { default: trappable },
        exports: { default: async },
        additional_derives: [PartialEq, Eq],
        with: {
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
    });
}

/// The `contextualiser-plugin` world.
pub mod contextualiser {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "occopus:plugin/contextualiser-plugin",
        imports: { default: trappable },
        exports: { default: async },
        additional_derives: [PartialEq, Eq],
        with: {
            "occopus:plugin/types": crate::bindings::driver::occopus::plugin::types,
            "occopus:plugin/logging": crate::bindings::driver::occopus::plugin::logging,
        },
    });
}

/// The `config-manager-plugin` world (contract 0.1.2).
pub mod config_manager {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "occopus:plugin/config-manager-plugin",
        imports: { default: trappable },
        exports: { default: async },
        additional_derives: [PartialEq, Eq],
        with: {
            "occopus:plugin/types": crate::bindings::driver::occopus::plugin::types,
            "occopus:plugin/logging": crate::bindings::driver::occopus::plugin::logging,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
    });
}

pub use config_manager::exports::occopus::plugin::config_manager as config_manager_api;
pub use contextualiser::exports::occopus::plugin::contextualiser as contextualiser_api;
pub use driver::exports::occopus::plugin::driver as driver_api;
pub use driver::occopus::plugin::logging;
pub use driver::occopus::plugin::session;
pub use driver::occopus::plugin::types;
