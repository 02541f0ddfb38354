//! `forgetful`: a driver that breaks the contract's first promise on purpose.
//! Its `create` makes a new instance on every call, even when the instance id
//! is the same, as a driver that forgot its idempotency key would; everything
//! else is well-behaved. The conformance check must catch it.
//!
//! Like `dummy`, it simulates a cloud without an inventory (its schema says
//! `"x-occopus-inventory": false`): an instance is its cloud id, and its
//! address (on loopback) is derived from that id, so two creates of one
//! instance id show as two machines.

use occopus_plugin_sdk::clock;
use occopus_plugin_sdk::driver::*;

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["type"],
  "properties": {"type": {"const": "forgetful"}},
  "additionalProperties": false,
  "x-occopus-inventory": false
}"#;

struct Forgetful;

/// An address on loopback for a cloud id (FNV-1a of the id).
fn address(cloud_id: &str) -> String {
    let hash = cloud_id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    format!("127.0.{}.{}", hash % 250, 1 + (hash >> 8) % 250)
}

impl Driver for Forgetful {
    fn describe() -> DriverInfo {
        DriverInfo {
            name: "forgetful".into(),
            version: "0.1.0".into(),
            resource_types: vec!["forgetful".into()],
            resource_schema: SCHEMA.into(),
        }
    }

    fn validate(_resource: String) -> Result<(), PluginError> {
        Ok(())
    }

    fn create(request: CreateRequest) -> Result<String, PluginError> {
        // The bug: a fresh id every time, whatever the idempotency key says.
        Ok(format!("{}#{}", request.instance_id, clock::unix_nanos()))
    }

    fn status(_target: Target, cloud_id: String) -> Result<InstanceStatus, PluginError> {
        if !cloud_id.contains('#') {
            return Err(PluginError::NotFound(format!("no instance `{cloud_id}`")));
        }
        Ok(InstanceStatus {
            state: InstanceState::Running,
            public_addresses: vec![address(&cloud_id)],
            private_addresses: vec![],
            detail: None,
        })
    }

    fn destroy(_target: Target, _cloud_id: String) -> Result<(), PluginError> {
        Ok(())
    }

    fn list(_target: Target, _infra_id: String) -> Result<Vec<ListedInstance>, PluginError> {
        Ok(Vec::new())
    }
}

export_driver!(Forgetful);
