//! A driver that tries to break out of its sandbox, one attack per `status`
//! call. The cloud id names the attack:
//! - `read-file:PATH`: read a file of the host;
//! - `http:URL`: send a request to a URL;
//! - `tcp:ADDRESS`: open a TCP connection;
//! - `sleep:SECONDS`: wait without using the CPU;
//! - `loop`: spin forever;
//! - `alloc:BYTES`: allocate and touch that much memory;
//! - `trap`: panic (a trap);
//! - `huge-result:BYTES`: answer with a detail string that long;
//! - `env`: read the environment;
//! - `leak`: log the call's credentials and send them back in an error;
//! - `discover:URL`: claim the endpoint named URL (contract 0.1.1 session), then GET it;
//! - `catalog-discover:URL`: GET the endpoint's `/catalog` first, then as `discover`;
//! - `session-leak:NAME`: keep `token-of-NAME` in the session, then log it and send it back;
//! - anything else: answer `running` like a well-behaved driver.

use occopus_plugin_sdk::driver::*;
use occopus_plugin_sdk::http::Request;

struct Hostile;

fn discover(url: &str) -> Result<InstanceStatus, PluginError> {
    occopus_plugin_sdk::session::allow_discovered(url)?;
    Request::new("GET", url)
        .send()
        .map(|response| running(response.text()))
}

fn endpoint(target: &Target) -> Result<String, PluginError> {
    let resource: serde_json::Value = occopus_plugin_sdk::parse_section(&target.resource)?;
    resource["endpoint"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| PluginError::InvalidConfig("no endpoint".into()))
}

fn running(detail: String) -> InstanceStatus {
    InstanceStatus {
        state: InstanceState::Running,
        public_addresses: vec![],
        private_addresses: vec![],
        detail: Some(detail),
    }
}

fn number(text: &str) -> Result<usize, PluginError> {
    text.parse()
        .map_err(|_| PluginError::InvalidConfig(format!("`{text}` is not a number")))
}

impl Driver for Hostile {
    fn describe() -> DriverInfo {
        DriverInfo {
            name: "hostile".into(),
            version: "6.6.6".into(),
            resource_types: vec!["hostile".into()],
            resource_schema: r#"{"type": "object"}"#.into(),
        }
    }

    fn validate(_resource: String) -> Result<(), PluginError> {
        Ok(())
    }

    fn create(request: CreateRequest) -> Result<String, PluginError> {
        Ok(request.instance_id)
    }

    fn status(target: Target, cloud_id: String) -> Result<InstanceStatus, PluginError> {
        let (attack, argument) = cloud_id.split_once(':').unwrap_or((&cloud_id, ""));
        match attack {
            "read-file" => std::fs::read_to_string(argument)
                .map(running)
                .map_err(|e| PluginError::Internal(format!("reading {argument}: {e}"))),
            "http" => Request::new("GET", argument)
                .send()
                .map(|response| running(response.text())),
            "tcp" => std::net::TcpStream::connect(argument)
                .map(|_| running("connected".into()))
                .map_err(|e| PluginError::Transient(format!("connecting to {argument}: {e}"))),
            "sleep" => {
                occopus_plugin_sdk::clock::sleep(std::time::Duration::from_secs(
                    number(argument)? as u64
                ));
                Ok(running("slept".into()))
            }
            "loop" => {
                let mut counter: u64 = 0;
                loop {
                    counter = std::hint::black_box(counter.wrapping_add(1));
                }
            }
            "alloc" => {
                let bytes = number(argument)?;
                let mut block = vec![0u8; bytes];
                for page in block.chunks_mut(4096) {
                    page[0] = 1;
                }
                Ok(running(format!(
                    "allocated {}",
                    std::hint::black_box(block).len()
                )))
            }
            "trap" => panic!("hostile plugin panics on purpose"),
            "huge-result" => Ok(running("x".repeat(number(argument)?))),
            "env" => Ok(running(format!(
                "{:?}",
                std::env::vars().collect::<Vec<_>>()
            ))),
            "leak" => {
                let values: Vec<&str> = target
                    .credentials
                    .iter()
                    .map(|c| c.value.as_str())
                    .collect();
                occopus_plugin_sdk::log(Level::Warn, &format!("credentials: {values:?}"));
                Err(PluginError::Unauthorized(format!("rejected {values:?}")))
            }
            "discover" => discover(argument),
            "catalog-discover" => {
                Request::new("GET", &format!("{}/catalog", endpoint(&target)?)).send()?;
                discover(argument)
            }
            "session-leak" => {
                occopus_plugin_sdk::session::put(
                    "token",
                    &format!("token-of-{argument}"),
                    std::time::Duration::from_secs(60),
                );
                let kept = occopus_plugin_sdk::session::get("token").unwrap_or_default();
                occopus_plugin_sdk::log(Level::Warn, &format!("token: {kept}"));
                Err(PluginError::Unauthorized(format!("rejected {kept}")))
            }
            _ => Ok(running("well-behaved".into())),
        }
    }

    fn destroy(_target: Target, _cloud_id: String) -> Result<(), PluginError> {
        Ok(())
    }

    fn list(_target: Target, _infra_id: String) -> Result<Vec<ListedInstance>, PluginError> {
        Ok(Vec::new())
    }
}

export_driver!(Hostile);
