//! `ec2`: the driver of Amazon EC2 and EC2-compatible clouds (OpenNebula,
//! Eucalyptus, ...), over the EC2 Query API signed with SigV4.
//!
//! Every instance carries `occopus:*` tags (infra id and name, node name,
//! instance id), which is how `list` finds it and how a repeated `create` finds
//! the instance an earlier, interrupted one made. `ClientToken` is set from the
//! instance id too, so a cloud that honours it never makes a second one either.

mod instances;
mod query;

use aws_credential_types::Credentials;
use base64::Engine as _;
use instances::Instance;
use occopus_plugin_sdk::driver::*;
use occopus_plugin_sdk::{credential, parse_section};
use query::Client;
use serde::Deserialize;
use std::collections::BTreeMap;

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "ec2 resource",
  "type": "object",
  "required": ["type", "endpoint", "regionname", "image_id", "instance_type"],
  "additionalProperties": false,
  "properties": {
    "type": {"const": "ec2"},
    "endpoint": {"type": "string", "description": "the EC2 API's URL, such as https://ec2.eu-west-1.amazonaws.com"},
    "regionname": {"type": "string", "description": "the region requests are signed for, such as eu-west-1"},
    "image_id": {"type": "string", "description": "the AMI to boot"},
    "instance_type": {"type": "string", "description": "such as t3.micro"},
    "key_name": {"type": "string", "description": "the key pair to install"},
    "security_group_ids": {"type": "array", "items": {"type": "string"}},
    "subnet_id": {"type": "string"},
    "tags": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
    "name": {"type": "string", "description": "selects auth_data entries"}
  }
}"#;

/// EC2 refuses user-data longer than this (before base64).
const MAX_USER_DATA_BYTES: usize = 16 * 1024;

/// Tag keys occopus puts on every instance.
const TAG_INFRA_ID: &str = "occopus:infra-id";
const TAG_INFRA_NAME: &str = "occopus:infra-name";
const TAG_NODE_NAME: &str = "occopus:node-name";
const TAG_INSTANCE_ID: &str = "occopus:instance-id";

#[derive(Deserialize)]
struct Resource {
    endpoint: String,
    regionname: String,
    image_id: String,
    instance_type: String,
    key_name: Option<String>,
    #[serde(default)]
    security_group_ids: Vec<String>,
    subnet_id: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, serde_json::Value>,
}

impl Resource {
    fn parse(json: &str) -> Result<Resource, PluginError> {
        let resource: Resource = parse_section(json)?;
        occopus_plugin_sdk::require_http_endpoint(
            &resource.endpoint,
            &format!(
                "the EC2 API's URL, such as https://ec2.{}.amazonaws.com",
                resource.regionname
            ),
        )?;
        if let Some(key) = resource.tags.keys().find(|k| k.starts_with("occopus:")) {
            return Err(PluginError::InvalidConfig(format!(
                "tag `{key}`: tags starting with `occopus:` are occopus's own; rename it"
            )));
        }
        Ok(resource)
    }

    fn client(&self, credentials: &[KeyValue]) -> Result<Client, PluginError> {
        let session_token = credentials
            .iter()
            .find(|kv| kv.key == "sessiontoken")
            .map(|kv| kv.value.clone());
        Ok(Client {
            endpoint: self.endpoint.trim_end_matches('/').to_owned(),
            region: self.regionname.clone(),
            credentials: Credentials::new(
                credential(credentials, "accesskey")?,
                credential(credentials, "secretkey")?,
                session_token,
                None,
                "occopus auth_data",
            ),
        })
    }
}

fn target_client(target: &Target) -> Result<Client, PluginError> {
    Resource::parse(&target.resource)?.client(&target.credentials)
}

/// Parameters of `RunInstances` for one instance.
fn run_params(
    resource: &Resource,
    request: &CreateRequest,
    user_data: Option<&str>,
) -> Vec<(String, String)> {
    let mut params = vec![
        ("ImageId".into(), resource.image_id.clone()),
        ("InstanceType".into(), resource.instance_type.clone()),
        ("MinCount".into(), "1".into()),
        ("MaxCount".into(), "1".into()),
        ("ClientToken".into(), request.instance_id.clone()),
    ];
    if let Some(key_name) = &resource.key_name {
        params.push(("KeyName".into(), key_name.clone()));
    }
    if let Some(subnet_id) = &resource.subnet_id {
        params.push(("SubnetId".into(), subnet_id.clone()));
    }
    for (i, group) in resource.security_group_ids.iter().enumerate() {
        params.push((format!("SecurityGroupId.{}", i + 1), group.clone()));
    }
    if let Some(user_data) = user_data {
        let encoded = base64::engine::general_purpose::STANDARD.encode(user_data);
        params.push(("UserData".into(), encoded));
    }
    let tags = &request.tags;
    let name = format!("{}-{}", tags.infra_name, tags.node_name);
    let own = [
        (TAG_INFRA_ID, tags.infra_id.as_str()),
        (TAG_INFRA_NAME, tags.infra_name.as_str()),
        (TAG_NODE_NAME, tags.node_name.as_str()),
        (TAG_INSTANCE_ID, request.instance_id.as_str()),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    let user = resource.tags.iter().map(|(k, v)| {
        let value = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
        (k.clone(), value)
    });
    let name_tag = (!resource.tags.contains_key("Name")).then(|| ("Name".to_owned(), name));
    params.push(("TagSpecification.1.ResourceType".into(), "instance".into()));
    for (i, (key, value)) in own.into_iter().chain(user).chain(name_tag).enumerate() {
        params.push((format!("TagSpecification.1.Tag.{}.Key", i + 1), key));
        params.push((format!("TagSpecification.1.Tag.{}.Value", i + 1), value));
    }
    params
}

/// Every instance (all pages) matching `filters`, terminated ones left out.
fn describe(client: &Client, filters: &[(&str, &str)]) -> Result<Vec<Instance>, PluginError> {
    let mut found = Vec::new();
    let mut next_token: Option<String> = None;
    loop {
        let mut params: Vec<(String, String)> = Vec::new();
        for (i, (name, value)) in filters.iter().enumerate() {
            params.push((format!("Filter.{}.Name", i + 1), (*name).to_owned()));
            params.push((format!("Filter.{}.Value.1", i + 1), (*value).to_owned()));
        }
        params.push(("MaxResults".into(), "1000".into()));
        if let Some(token) = next_token.take() {
            params.push(("NextToken".into(), token));
        }
        let page = instances::parse(&client.call("DescribeInstances", &params)?)?;
        found.extend(page.instances.into_iter().filter(|i| !i.is_terminating()));
        match page.next_token {
            Some(token) => next_token = Some(token),
            None => return Ok(found),
        }
    }
}

/// The instance with this cloud id.
fn describe_one(client: &Client, cloud_id: &str) -> Result<Instance, PluginError> {
    let params = [("InstanceId.1".to_owned(), cloud_id.to_owned())];
    instances::parse(&client.call("DescribeInstances", &params)?)?
        .instances
        .into_iter()
        .find(|i| i.id == cloud_id)
        .ok_or_else(|| PluginError::NotFound(format!("EC2 knows no instance `{cloud_id}`")))
}

fn tags_of(instance: &Instance) -> InstanceTags {
    let tag = |key: &str| instance.tags.get(key).cloned().unwrap_or_default();
    InstanceTags {
        infra_id: tag(TAG_INFRA_ID),
        infra_name: tag(TAG_INFRA_NAME),
        node_name: tag(TAG_NODE_NAME),
    }
}

struct Ec2;

impl Driver for Ec2 {
    fn describe() -> DriverInfo {
        DriverInfo {
            name: "ec2".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            resource_types: vec!["ec2".into()],
            resource_schema: SCHEMA.into(),
        }
    }

    fn validate(resource: String) -> Result<(), PluginError> {
        Resource::parse(&resource).map(drop)
    }

    fn create(request: CreateRequest) -> Result<String, PluginError> {
        let resource = Resource::parse(&request.target.resource)?;
        let user_data = match &request.payload {
            Payload::None => None,
            Payload::UserData(text) => Some(text.as_str()),
            Payload::Container(_) => {
                return Err(PluginError::InvalidConfig(
                    "EC2 instances take cloud-init user-data (contextualisation type \
                     `cloudinit`), not a container spec"
                        .into(),
                ));
            }
        };
        if let Some(text) = user_data
            && text.len() > MAX_USER_DATA_BYTES
        {
            return Err(PluginError::InvalidConfig(format!(
                "the rendered user-data is {} bytes; EC2 takes at most {MAX_USER_DATA_BYTES}: \
                 shorten the context_template, or have it download the rest",
                text.len()
            )));
        }
        let client = resource.client(&request.target.credentials)?;
        // An earlier create of this instance may have succeeded before occopus
        // could record it: adopt that instance instead of making a second one.
        let tag_filter = format!("tag:{TAG_INSTANCE_ID}");
        if let Some(existing) = describe(&client, &[(&tag_filter, &request.instance_id)])?
            .into_iter()
            .next()
        {
            return Ok(existing.id);
        }
        let params = run_params(&resource, &request, user_data);
        instances::parse(&client.call("RunInstances", &params)?)?
            .instances
            .into_iter()
            .next()
            .map(|i| i.id)
            .ok_or_else(|| {
                PluginError::Internal("EC2 RunInstances answered without an instance".into())
            })
    }

    fn status(target: Target, cloud_id: String) -> Result<InstanceStatus, PluginError> {
        let instance = describe_one(&target_client(&target)?, &cloud_id)?;
        Ok(InstanceStatus {
            state: instance.contract_state(),
            public_addresses: instance.public_ip.clone().into_iter().collect(),
            private_addresses: instance.private_ip.clone().into_iter().collect(),
            detail: Some(instance.state),
        })
    }

    fn destroy(target: Target, cloud_id: String) -> Result<(), PluginError> {
        let client = target_client(&target)?;
        let params = [("InstanceId.1".to_owned(), cloud_id)];
        match client.call("TerminateInstances", &params) {
            Ok(_) | Err(PluginError::NotFound(_)) => Ok(()),
            Err(error) => Err(error),
        }
    }

    fn list(target: Target, infra_id: String) -> Result<Vec<ListedInstance>, PluginError> {
        let client = target_client(&target)?;
        let tag_filter = format!("tag:{TAG_INFRA_ID}");
        Ok(describe(&client, &[(&tag_filter, &infra_id)])?
            .into_iter()
            .map(|instance| ListedInstance {
                state: instance.contract_state(),
                tags: tags_of(&instance),
                instance_id: instance
                    .tags
                    .get(TAG_INSTANCE_ID)
                    .cloned()
                    .unwrap_or_default(),
                cloud_id: instance.id,
            })
            .collect())
    }
}

export_driver!(Ec2);
