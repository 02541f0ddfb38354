//! A driver exporting `occopus:plugin/driver@0.1.0` and importing
//! `occopus:plugin/logging@0.1.0`: every call answers from its arguments, so
//! a test can check that a 0.1.1 host still instantiates and calls it.

wit_bindgen::generate!({ path: "wit", world: "driver-plugin", generate_all });

use exports::occopus::plugin::driver::*;
use occopus::plugin::logging::{Level, log};
use occopus::plugin::types::PluginError;

struct Previous;

impl Guest for Previous {
    fn describe() -> DriverInfo {
        DriverInfo {
            name: "previous".into(),
            version: "0.1.0".into(),
            resource_types: vec!["previous".into()],
            resource_schema: r#"{"type": "object"}"#.into(),
        }
    }

    fn validate(_resource: String) -> Result<(), PluginError> {
        Ok(())
    }

    fn create(request: CreateRequest) -> Result<String, PluginError> {
        log(Level::Info, "created by a 0.1.0 plugin");
        Ok(request.instance_id)
    }

    fn status(_target: Target, cloud_id: String) -> Result<InstanceStatus, PluginError> {
        Ok(InstanceStatus {
            state: InstanceState::Running,
            public_addresses: vec![],
            private_addresses: vec![],
            detail: Some(format!("{cloud_id} answered by contract 0.1.0")),
        })
    }

    fn destroy(_target: Target, _cloud_id: String) -> Result<(), PluginError> {
        Ok(())
    }

    fn list(_target: Target, _infra_id: String) -> Result<Vec<ListedInstance>, PluginError> {
        Ok(Vec::new())
    }
}

export!(Previous);
