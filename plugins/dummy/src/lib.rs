//! `dummy`: a simulated cloud for tests and benchmarks.
//!
//! No instance really exists. What an instance does is derived from its resource
//! section, its instance id and a seed, so runs are repeatable:
//! - `create_latency` (seconds): how long `create` takes;
//! - `boot_time` (seconds): how long an instance stays `pending` after creation
//!   (`create_latency` after the request reached the simulated cloud);
//! - `failure_probability` (0..1): the share of instances that end up `failed`
//!   instead of `running` once booted, chosen by hashing the seed and instance id;
//! - `seed`: changes which instances fail and which addresses they get.
//!
//! Addresses are on loopback: public from 127.100.0.0/16, private from
//! 127.101.0.0/16. Linux answers every 127.0.0.0/8 address on `lo`, so
//! Occopus's default checks (ping) pass without a packet leaving the host.
//! (Documentation ranges such as 192.0.2.0/24 are not safe: on some machines
//! they are the real network, and a probe reaches real neighbours.)
//!
//! The simulated cloud keeps no inventory: each call gets a fresh sandbox, so the
//! state of an instance is carried in its cloud id (`<instance-id>@<created-ms>`).
//! `list` therefore finds nothing, and a repeated `create` with the same instance
//! id gives the same instance (same addresses and fate) booting anew. The
//! schema says so (`"x-occopus-inventory": false`), for `occopus plugins check`.

use occopus_plugin_sdk::driver::*;
use occopus_plugin_sdk::status_batch::{StatusBatch, export_status_batch};
use occopus_plugin_sdk::{clock, parse_section};
use serde::Deserialize;
use std::time::Duration;

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "dummy resource",
  "type": "object",
  "required": ["type"],
  "additionalProperties": false,
  "properties": {
    "type": {"const": "dummy"},
    "name": {"type": "string", "description": "selects auth_data entries; unused"},
    "endpoint": {"type": "string", "description": "unused; a simulated cloud needs none"},
    "create_latency": {"type": "number", "minimum": 0, "default": 0},
    "boot_time": {"type": "number", "minimum": 0, "default": 0},
    "failure_probability": {"type": "number", "minimum": 0, "maximum": 1, "default": 0},
    "seed": {"type": "integer", "minimum": 0, "default": 0}
  },
  "x-occopus-inventory": false
}"#;

/// The resource section this driver reads.
#[derive(Debug, Deserialize)]
struct DummyResource {
    #[serde(default)]
    create_latency: f64,
    #[serde(default)]
    boot_time: f64,
    #[serde(default)]
    failure_probability: f64,
    #[serde(default)]
    seed: u64,
}

impl DummyResource {
    fn parse(json: &str) -> Result<Self, PluginError> {
        let resource: Self = parse_section(json)?;
        let seconds_ok = |v: f64| v.is_finite() && (0.0..=86_400.0).contains(&v);
        if !seconds_ok(resource.create_latency) || !seconds_ok(resource.boot_time) {
            return Err(PluginError::InvalidConfig(
                "create_latency and boot_time must be between 0 and 86400 seconds".into(),
            ));
        }
        if !(0.0..=1.0).contains(&resource.failure_probability) {
            return Err(PluginError::InvalidConfig(format!(
                "failure_probability must be between 0 and 1, not {}",
                resource.failure_probability
            )));
        }
        Ok(resource)
    }

    /// A stable pseudo-random number for this instance: FNV-1a over seed, id
    /// and salt, then MurmurHash3's finaliser so that every bit depends on
    /// every input byte (FNV alone barely changes its high bits for similar ids).
    fn hash(&self, instance_id: &str, salt: u8) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let bytes = self.seed.to_le_bytes();
        for byte in bytes.iter().chain(instance_id.as_bytes()).chain([&salt]) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash ^= hash >> 33;
        hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
        hash ^= hash >> 33;
        hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        hash ^ (hash >> 33)
    }

    fn fails(&self, instance_id: &str) -> bool {
        let draw = (self.hash(instance_id, 0) >> 11) as f64 / (1u64 << 53) as f64;
        draw < self.failure_probability
    }

    /// `<prefix>.X.Y` with X in 0..=255 and Y in 1..=254, from the hash.
    fn address(&self, prefix: &str, instance_id: &str, salt: u8) -> String {
        let hash = self.hash(instance_id, salt);
        format!("{prefix}.{}.{}", (hash >> 8) % 256, 1 + hash % 254)
    }
}

/// Splits a cloud id into the instance id and the creation time.
fn parse_cloud_id(cloud_id: &str) -> Result<(&str, u64), PluginError> {
    cloud_id
        .rsplit_once('@')
        .and_then(|(id, ms)| Some((id, ms.parse().ok()?)))
        .ok_or_else(|| PluginError::NotFound(format!("`{cloud_id}` is not a dummy instance id")))
}

struct Dummy;

impl Driver for Dummy {
    fn describe() -> DriverInfo {
        DriverInfo {
            name: "dummy".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            resource_types: vec!["dummy".into()],
            resource_schema: SCHEMA.into(),
        }
    }

    fn validate(resource: String) -> Result<(), PluginError> {
        DummyResource::parse(&resource).map(drop)
    }

    fn create(request: CreateRequest) -> Result<String, PluginError> {
        let resource = DummyResource::parse(&request.target.resource)?;
        // The simulated cloud makes the instance `create_latency` after the
        // request reaches it, as a real cloud does: when the host gets round
        // to waking this plugin after its sleep is the host's delay, which
        // must not push the instance's boot later too.
        let latency = Duration::from_secs_f64(resource.create_latency);
        let created_ms = clock::unix_millis() + latency.as_millis() as u64;
        if !latency.is_zero() {
            clock::sleep(latency);
        }
        Ok(format!("{}@{created_ms}", request.instance_id))
    }

    fn status(target: Target, cloud_id: String) -> Result<InstanceStatus, PluginError> {
        let resource = DummyResource::parse(&target.resource)?;
        resource.status(&cloud_id, clock::unix_millis())
    }

    fn destroy(_target: Target, cloud_id: String) -> Result<(), PluginError> {
        parse_cloud_id(&cloud_id).map(drop)
    }

    fn list(_target: Target, _infra_id: String) -> Result<Vec<ListedInstance>, PluginError> {
        Ok(Vec::new())
    }
}

/// The simulated cloud answers for many instances as cheaply as for one.
impl StatusBatch for Dummy {
    fn status_many(
        target: Target,
        cloud_ids: Vec<String>,
    ) -> Result<Vec<Result<InstanceStatus, PluginError>>, PluginError> {
        let resource = DummyResource::parse(&target.resource)?;
        let now = clock::unix_millis();
        Ok(cloud_ids
            .iter()
            .map(|cloud_id| resource.status(cloud_id, now))
            .collect())
    }
}

impl DummyResource {
    /// The state of instance `cloud_id` at `now_ms`.
    fn status(&self, cloud_id: &str, now_ms: u64) -> Result<InstanceStatus, PluginError> {
        let (instance_id, created_ms) = parse_cloud_id(cloud_id)?;
        let booted_ms = created_ms + (self.boot_time * 1000.0) as u64;
        let state = if now_ms < booted_ms {
            InstanceState::Pending
        } else if self.fails(instance_id) {
            InstanceState::Failed
        } else {
            InstanceState::Running
        };
        Ok(InstanceStatus {
            state,
            public_addresses: vec![self.address("127.100", instance_id, 1)],
            private_addresses: vec![self.address("127.101", instance_id, 2)],
            detail: None,
        })
    }
}

export_driver!(Dummy);
export_status_batch!(Dummy);
