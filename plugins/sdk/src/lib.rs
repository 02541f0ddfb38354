//! Write occopus plugins in Rust.
//!
//! A plugin is a WebAssembly component built for `wasm32-wasip2` against the
//! `occopus:plugin` contract, whose WIT this crate carries (`wit/`, kept equal
//! to the occopus repository's `wit/` by a test). This crate generates the
//! bindings and adds what every plugin needs: typed errors,
//! logging, JSON parsing of the resource section and a small HTTP client over
//! `wasi:http` (the only network access a driver has).
//!
//! Enable the feature of the kind of plugin you write, `driver`,
//! `contextualiser` or `config-manager`, implement its `Guest` trait and
//! export it:
//!
//! ```ignore
//! use occopus_plugin_sdk::driver::*;
//!
//! struct MyCloud;
//! impl Driver for MyCloud { /* describe, validate, create, status, destroy, list */ }
//! export_driver!(MyCloud);
//! ```
//!
//! See `docs/plugins.md` for building, checking (`occopus plugins check`),
//! installing and swapping plugins. The contract version appears below in
//! the names wit-bindgen needs spelt out; occopus's tests check that it is
//! the one of `wit/plugin.wit`.

/// The types and imports shared by both kinds of plugin.
pub mod common {
    wit_bindgen::generate!({
        path: "wit",
        inline: "
            package occopus:sdk;
            world common {
                import occopus:plugin/types@0.1.3;
                import occopus:plugin/logging@0.1.3;
            }
        ",
        world: "occopus:sdk/common",
        generate_all,
        generate_unused_types: true,
    });

    pub use occopus::plugin::logging::{Level, log};
    pub use occopus::plugin::types::{ContainerSpec, KeyValue, Payload, PluginError};
}

pub use common::{ContainerSpec, KeyValue, Level, Payload, PluginError};

/// Bindings of the `driver-plugin` world: implement [`driver::Driver`] and call
/// [`driver::export_driver!`].
#[cfg(feature = "driver")]
pub mod driver {
    wit_bindgen::generate!({
        path: "wit",
        world: "occopus:plugin/driver-plugin",
        with: {
            "occopus:plugin/types@0.1.3": crate::common::occopus::plugin::types,
            "occopus:plugin/logging@0.1.3": crate::common::occopus::plugin::logging,
        },
        generate_all,
        pub_export_macro: true,
        export_macro_name: "export_driver",
        default_bindings_module: "occopus_plugin_sdk::driver",
    });

    pub use self::exports::occopus::plugin::driver::{
        CreateRequest, DriverInfo, Guest as Driver, InstanceState, InstanceStatus, InstanceTags,
        ListedInstance, Target,
    };
    pub use crate::{ContainerSpec, KeyValue, Level, Payload, PluginError};

    /// A create request of instance `instance_id` of node `node_name` in
    /// infra `demo` (id `i`), with no resource or credentials: for a driver's
    /// unit tests of the bodies it builds.
    pub fn example_request(instance_id: &str, node_name: &str, payload: Payload) -> CreateRequest {
        CreateRequest {
            instance_id: instance_id.into(),
            target: Target {
                resource: String::new(),
                credentials: vec![],
            },
            payload,
            tags: InstanceTags {
                infra_id: "i".into(),
                infra_name: "demo".into(),
                node_name: node_name.into(),
            },
        }
    }
}

/// Bindings of the `contextualiser-plugin` world: implement
/// [`contextualiser::Contextualiser`] and call [`contextualiser::export_contextualiser!`].
#[cfg(feature = "contextualiser")]
pub mod contextualiser {
    wit_bindgen::generate!({
        path: "wit",
        world: "occopus:plugin/contextualiser-plugin",
        with: {
            "occopus:plugin/types@0.1.3": crate::common::occopus::plugin::types,
            "occopus:plugin/logging@0.1.3": crate::common::occopus::plugin::logging,
        },
        pub_export_macro: true,
        export_macro_name: "export_contextualiser",
        default_bindings_module: "occopus_plugin_sdk::contextualiser",
    });

    pub use self::exports::occopus::plugin::contextualiser::{
        ContextualiserInfo, Guest as Contextualiser, NodeFacts,
    };
    pub use crate::{ContainerSpec, KeyValue, Level, Payload, PluginError};
}

/// Bindings of the `config-manager-plugin` world (contract 0.1.2 and later): implement
/// [`config_manager::ConfigManager`] and call
/// [`config_manager::export_config_manager!`]. A config manager has the same
/// HTTP client ([`http`]) and clocks ([`clock`]) as a driver.
#[cfg(feature = "config-manager")]
pub mod config_manager {
    wit_bindgen::generate!({
        path: "wit",
        world: "occopus:plugin/config-manager-plugin",
        with: {
            "occopus:plugin/types@0.1.3": crate::common::occopus::plugin::types,
            "occopus:plugin/logging@0.1.3": crate::common::occopus::plugin::logging,
            "wasi:http/types@0.2.12": crate::driver::wasi::http::types,
            "wasi:http/outgoing-handler@0.2.12": crate::driver::wasi::http::outgoing_handler,
            "wasi:io/error@0.2.12": crate::driver::wasi::io::error,
            "wasi:io/poll@0.2.12": crate::driver::wasi::io::poll,
            "wasi:io/streams@0.2.12": crate::driver::wasi::io::streams,
            "wasi:clocks/monotonic-clock@0.2.12": crate::driver::wasi::clocks::monotonic_clock,
            "wasi:clocks/wall-clock@0.2.12": crate::driver::wasi::clocks::wall_clock,
        },
        pub_export_macro: true,
        export_macro_name: "export_config_manager",
        default_bindings_module: "occopus_plugin_sdk::config_manager",
    });

    pub use self::exports::occopus::plugin::config_manager::{
        ConfigManagerInfo, ConfigState, Guest as ConfigManager, InfraFacts, NodeFacts, Target,
    };
    pub use crate::{KeyValue, Level, PluginError};
}

/// Bindings of contract 0.1.3's `status-batch` interface, for a driver that
/// answers for many instances in one call: implement
/// [`status_batch::StatusBatch`] next to [`driver::Driver`] and call
/// [`status_batch::export_status_batch!`] next to `export_driver!` (the
/// component then is a `batched-driver-plugin`). Its types are the
/// `driver` module's.
#[cfg(feature = "status-batch")]
pub mod status_batch {
    wit_bindgen::generate!({
        path: "wit",
        inline: "
            package occopus:sdk;
            world status-batch {
                export occopus:plugin/status-batch@0.1.3;
            }
        ",
        world: "occopus:sdk/status-batch",
        with: {
            "occopus:plugin/types@0.1.3": crate::common::occopus::plugin::types,
        },
        pub_export_macro: true,
        export_macro_name: "export_status_batch",
        default_bindings_module: "occopus_plugin_sdk::status_batch",
    });

    pub use self::exports::occopus::plugin::status_batch::Guest as StatusBatch;
}

#[cfg(feature = "driver")]
pub mod http;

/// What a driver keeps between its calls, and the hosts its endpoint names
/// (contract 0.1.1). Each call runs in a fresh instance; the host keeps this
/// store per driver, resource endpoint and credentials, treats the values as
/// secrets and lets them expire.
#[cfg(feature = "driver")]
pub mod session {
    use crate::PluginError;
    use crate::driver::occopus::plugin::session as host;
    use std::time::Duration;

    /// The value kept under `key`, unless it expired.
    pub fn get(key: &str) -> Option<String> {
        host::get(key)
    }

    /// Keeps `value` under `key` for `ttl` (at most a day). A value the host
    /// will not keep (too large, too many keys) is only logged: the driver
    /// then works as if nothing were cached.
    pub fn put(key: &str, value: &str, ttl: Duration) {
        let seconds = u32::try_from(ttl.as_secs()).unwrap_or(u32::MAX);
        if let Err(why) = host::put(key, value, seconds) {
            crate::log(crate::Level::Warn, &format!("not cached: {why}"));
        }
    }

    /// Lets this call reach the host and port of `url`, a URL the resource's
    /// endpoint named in a successful answer (such as an OpenStack catalog
    /// entry). Refused: an `invalid-config` error saying why and what the user
    /// can configure instead.
    pub fn allow_discovered(url: &str) -> Result<(), PluginError> {
        host::allow_discovered(url).map_err(PluginError::InvalidConfig)
    }
}

/// Time for drivers (`wasi:clocks`, the only clocks a plugin has).
#[cfg(feature = "driver")]
pub mod clock {
    use crate::driver::wasi::clocks::{monotonic_clock, wall_clock};
    use std::time::Duration;

    /// Milliseconds since the Unix epoch.
    pub fn unix_millis() -> u64 {
        let now = wall_clock::now();
        now.seconds * 1000 + u64::from(now.nanoseconds) / 1_000_000
    }

    /// Nanoseconds since the Unix epoch.
    pub fn unix_nanos() -> u128 {
        let now = wall_clock::now();
        u128::from(now.seconds) * 1_000_000_000 + u128::from(now.nanoseconds)
    }

    /// Waits without busying the host: the call yields until the time has passed.
    pub fn sleep(duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        monotonic_clock::subscribe_duration(nanos).block();
    }
}

/// Writes a line to the host's log (tagged there with the plugin and node).
pub fn log(level: Level, message: &str) {
    common::log(level, message);
}

/// Parses a JSON section handed over by the host (a `resource` or
/// `contextualisation` section) into the plugin's own type.
///
/// A section that does not match is an `invalid-config` error naming the problem.
pub fn parse_section<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, PluginError> {
    serde_json::from_str(json).map_err(|e| PluginError::InvalidConfig(e.to_string()))
}

/// Checks that a resource's `endpoint` is an `http://` or `https://` URL; the
/// error says what the cloud's URL looks like (`example`).
pub fn require_http_endpoint(endpoint: &str, example: &str) -> Result<(), PluginError> {
    if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
        return Ok(());
    }
    Err(PluginError::InvalidConfig(format!(
        "endpoint `{endpoint}` is not an http:// or https:// URL; give {example}"
    )))
}

/// The `Authorization` header value of HTTP basic authentication with the
/// credentials `user_key` and `password_key` of the call.
pub fn basic_authorization(
    credentials: &[KeyValue],
    user_key: &str,
    password_key: &str,
) -> Result<String, PluginError> {
    use base64::Engine as _;
    let pair = format!(
        "{}:{}",
        credential(credentials, user_key)?,
        credential(credentials, password_key)?
    );
    Ok(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    ))
}

/// Looks up a credential by key among those the host selected for this call.
pub fn credential<'a>(credentials: &'a [KeyValue], key: &str) -> Result<&'a str, PluginError> {
    credentials
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| kv.value.as_str())
        .ok_or_else(|| {
            PluginError::Unauthorized(format!(
                "no `{key}` in the auth_data selected for this resource; add it to auth_data.yaml"
            ))
        })
}
