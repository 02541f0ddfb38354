//! A driver exporting `occopus:plugin/driver@0.1.1` and importing that
//! version's `session`: `status` keeps a count in its session and answers
//! with it, so a test can check that a 0.1.2 host still instantiates it,
//! links its session and calls it.

wit_bindgen::generate!({ path: "wit", world: "driver-plugin", generate_all });

use exports::occopus::plugin::driver::*;
use occopus::plugin::session;
use occopus::plugin::types::PluginError;

struct Kept;

impl Guest for Kept {
    fn describe() -> DriverInfo {
        DriverInfo {
            name: "kept".into(),
            version: "0.1.1".into(),
            resource_types: vec!["kept".into()],
            resource_schema: r#"{"type": "object"}"#.into(),
        }
    }

    fn validate(_resource: String) -> Result<(), PluginError> {
        Ok(())
    }

    fn create(request: CreateRequest) -> Result<String, PluginError> {
        Ok(request.instance_id)
    }

    fn status(_target: Target, cloud_id: String) -> Result<InstanceStatus, PluginError> {
        let calls = session::get("calls")
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
            + 1;
        session::put("calls", &calls.to_string(), 60).map_err(PluginError::Internal)?;
        Ok(InstanceStatus {
            state: InstanceState::Running,
            public_addresses: vec![],
            private_addresses: vec![],
            detail: Some(format!("{cloud_id}: call {calls} of a 0.1.1 plugin")),
        })
    }

    fn destroy(_target: Target, _cloud_id: String) -> Result<(), PluginError> {
        Ok(())
    }

    fn list(_target: Target, _infra_id: String) -> Result<Vec<ListedInstance>, PluginError> {
        Ok(Vec::new())
    }
}

export!(Kept);
