//! The contract's data between its plain Rust form (`occopus-types`, what
//! the engine speaks) and the bindings wasmtime generates from the WIT.

use crate::bindings::{config_manager_api, contextualiser_api, driver_api, types};
use occopus_types::{
    CloudState, CloudTarget, ConfigManagerInfo, ConfigNodeFacts, ConfigState, ConfigTarget,
    ContainerSpec, ContextualiserInfo, CreateRequest, Credentials, DriverInfo, InfraFacts,
    InstanceStatus, InstanceTags, KeyValue, ListedInstance, NodeFacts, Payload,
};

fn key_values(credentials: &Credentials) -> Vec<types::KeyValue> {
    credentials
        .pairs()
        .iter()
        .map(|(key, value)| types::KeyValue {
            key: key.clone(),
            value: value.clone(),
        })
        .collect()
}

impl From<&CloudTarget> for driver_api::Target {
    fn from(target: &CloudTarget) -> Self {
        driver_api::Target {
            resource: serde_json::Value::Object(target.resource.clone()).to_string(),
            credentials: key_values(&target.credentials),
        }
    }
}

impl From<&ConfigTarget> for config_manager_api::Target {
    fn from(target: &ConfigTarget) -> Self {
        config_manager_api::Target {
            section: target.section.clone(),
            credentials: key_values(&target.credentials),
        }
    }
}

impl From<&InfraFacts> for config_manager_api::InfraFacts {
    fn from(infra: &InfraFacts) -> Self {
        config_manager_api::InfraFacts {
            infra_id: infra.infra_id.clone(),
            infra_name: infra.infra_name.clone(),
        }
    }
}

impl From<&ConfigNodeFacts> for config_manager_api::NodeFacts {
    fn from(node: &ConfigNodeFacts) -> Self {
        config_manager_api::NodeFacts {
            infra: (&node.infra).into(),
            node_name: node.node_name.clone(),
            instance_id: node.instance_id.clone(),
            attributes: serde_json::Value::Object(node.attributes.clone()).to_string(),
        }
    }
}

impl From<config_manager_api::ConfigState> for ConfigState {
    fn from(state: config_manager_api::ConfigState) -> Self {
        match state {
            config_manager_api::ConfigState::Pending => ConfigState::Pending,
            config_manager_api::ConfigState::Ready => ConfigState::Ready,
            config_manager_api::ConfigState::Failed => ConfigState::Failed,
            config_manager_api::ConfigState::Unknown => ConfigState::Unknown,
        }
    }
}

impl From<config_manager_api::ConfigManagerInfo> for ConfigManagerInfo {
    fn from(info: config_manager_api::ConfigManagerInfo) -> Self {
        ConfigManagerInfo {
            name: info.name,
            version: info.version,
            config_types: info.config_types,
            config_schema: info.config_schema,
        }
    }
}

impl From<&CreateRequest> for driver_api::CreateRequest {
    fn from(request: &CreateRequest) -> Self {
        driver_api::CreateRequest {
            instance_id: request.instance_id.clone(),
            target: (&request.target).into(),
            payload: (&request.payload).into(),
            tags: (&request.tags).into(),
        }
    }
}

impl From<&InstanceTags> for driver_api::InstanceTags {
    fn from(tags: &InstanceTags) -> Self {
        driver_api::InstanceTags {
            infra_id: tags.infra_id.clone(),
            infra_name: tags.infra_name.clone(),
            node_name: tags.node_name.clone(),
        }
    }
}

impl From<driver_api::InstanceTags> for InstanceTags {
    fn from(tags: driver_api::InstanceTags) -> Self {
        InstanceTags {
            infra_id: tags.infra_id,
            infra_name: tags.infra_name,
            node_name: tags.node_name,
        }
    }
}

impl From<&Payload> for types::Payload {
    fn from(payload: &Payload) -> Self {
        match payload {
            Payload::None => types::Payload::None,
            Payload::UserData(text) => types::Payload::UserData(text.clone()),
            Payload::Container(spec) => types::Payload::Container(types::ContainerSpec {
                env: spec
                    .env
                    .iter()
                    .map(|kv| types::KeyValue {
                        key: kv.key.clone(),
                        value: kv.value.clone(),
                    })
                    .collect(),
                command: spec.command.clone(),
            }),
        }
    }
}

impl From<types::Payload> for Payload {
    fn from(payload: types::Payload) -> Self {
        match payload {
            types::Payload::None => Payload::None,
            types::Payload::UserData(text) => Payload::UserData(text),
            types::Payload::Container(spec) => Payload::Container(ContainerSpec {
                env: spec
                    .env
                    .into_iter()
                    .map(|kv| KeyValue {
                        key: kv.key,
                        value: kv.value,
                    })
                    .collect(),
                command: spec.command,
            }),
        }
    }
}

impl From<driver_api::InstanceState> for CloudState {
    fn from(state: driver_api::InstanceState) -> Self {
        match state {
            driver_api::InstanceState::Pending => CloudState::Pending,
            driver_api::InstanceState::Running => CloudState::Running,
            driver_api::InstanceState::Failed => CloudState::Failed,
            driver_api::InstanceState::Shutdown => CloudState::Shutdown,
            driver_api::InstanceState::Unknown => CloudState::Unknown,
        }
    }
}

impl From<driver_api::InstanceStatus> for InstanceStatus {
    fn from(status: driver_api::InstanceStatus) -> Self {
        InstanceStatus {
            state: status.state.into(),
            public_addresses: status.public_addresses,
            private_addresses: status.private_addresses,
            detail: status.detail,
        }
    }
}

impl From<driver_api::ListedInstance> for ListedInstance {
    fn from(listed: driver_api::ListedInstance) -> Self {
        ListedInstance {
            cloud_id: listed.cloud_id,
            instance_id: listed.instance_id,
            tags: listed.tags.into(),
            state: listed.state.into(),
        }
    }
}

impl From<driver_api::DriverInfo> for DriverInfo {
    fn from(info: driver_api::DriverInfo) -> Self {
        DriverInfo {
            name: info.name,
            version: info.version,
            resource_types: info.resource_types,
            resource_schema: info.resource_schema,
        }
    }
}

impl From<contextualiser_api::ContextualiserInfo> for ContextualiserInfo {
    fn from(info: contextualiser_api::ContextualiserInfo) -> Self {
        ContextualiserInfo {
            name: info.name,
            version: info.version,
            context_types: info.context_types,
            context_schema: info.context_schema,
        }
    }
}

impl From<&NodeFacts> for contextualiser_api::NodeFacts {
    fn from(facts: &NodeFacts) -> Self {
        contextualiser_api::NodeFacts {
            infra_id: facts.infra_id.clone(),
            infra_name: facts.infra_name.clone(),
            node_name: facts.node_name.clone(),
            instance_id: facts.instance_id.clone(),
            resource_type: facts.resource_type.clone(),
        }
    }
}
