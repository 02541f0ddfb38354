//! Nova servers: the create request, finding a server by its occopus
//! metadata, and reading its state and addresses.

use crate::api::Service;
use occopus_plugin_sdk::PluginError;
use occopus_plugin_sdk::driver::{InstanceState, InstanceTags};
use serde_json::{Map, Value};

/// Metadata keys occopus puts on every server (Compute 2.1 metadata, set in
/// the create request itself, so a server never exists without them).
pub const META_INFRA_ID: &str = "occopus:infra-id";
pub const META_INFRA_NAME: &str = "occopus:infra-name";
pub const META_NODE_NAME: &str = "occopus:node-name";
pub const META_INSTANCE_ID: &str = "occopus:instance-id";

/// A server as `GET /servers/detail` shows it.
pub struct Server(pub Value);

impl Server {
    pub fn id(&self) -> String {
        self.text("id").to_owned()
    }

    fn text(&self, key: &str) -> &str {
        self.0.get(key).and_then(Value::as_str).unwrap_or_default()
    }

    /// A metadata value.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.0.get("metadata")?.get(key)?.as_str()
    }

    pub fn status(&self) -> &str {
        self.text("status")
    }

    /// The state of the contract, and a detail that says why.
    pub fn state(&self) -> (InstanceState, String) {
        let status = self.status();
        match status {
            "BUILD" | "REBUILD" | "RESIZE" | "VERIFY_RESIZE" | "REVERT_RESIZE" | "MIGRATING"
            | "REBOOT" | "HARD_REBOOT" | "PASSWORD" => (InstanceState::Pending, status.to_owned()),
            "ACTIVE" => (InstanceState::Running, status.to_owned()),
            "ERROR" => {
                let fault = self
                    .0
                    .get("fault")
                    .and_then(|f| f.get("message"))
                    .and_then(Value::as_str)
                    .unwrap_or("Nova gave no fault message");
                (InstanceState::Failed, format!("ERROR: {fault}"))
            }
            "DELETED" | "SOFT_DELETED" => (InstanceState::Shutdown, status.to_owned()),
            // Stopped, paused, suspended, shelved or rescued outside occopus:
            // the node no longer serves, so occopus replaces it (the original
            // stopped with an error on these).
            "SHUTOFF" | "STOPPED" | "PAUSED" | "SUSPENDED" | "SHELVED" | "SHELVED_OFFLOADED"
            | "RESCUE" => (
                InstanceState::Failed,
                format!("{status}: the server was taken out of service outside occopus"),
            ),
            _ => (InstanceState::Unknown, format!("Nova status `{status}`")),
        }
    }

    /// Each address with whether it is floating, network by network.
    fn addresses(&self) -> Vec<(String, bool)> {
        let Some(networks) = self.0.get("addresses").and_then(Value::as_object) else {
            return Vec::new();
        };
        networks
            .values()
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(|address| {
                let addr = address.get("addr")?.as_str()?.to_owned();
                let floating =
                    address.get("OS-EXT-IPS:type").and_then(Value::as_str) == Some("floating");
                Some((addr, floating))
            })
            .collect()
    }

    /// Public addresses: the floating ones, else the first address (as the
    /// original did).
    pub fn public_addresses(&self) -> Vec<String> {
        let all = self.addresses();
        let floating: Vec<String> = all
            .iter()
            .filter(|(_, f)| *f)
            .map(|(a, _)| a.clone())
            .collect();
        if floating.is_empty() {
            all.into_iter().take(1).map(|(a, _)| a).collect()
        } else {
            floating
        }
    }

    /// Private addresses: the fixed ones.
    pub fn private_addresses(&self) -> Vec<String> {
        self.addresses()
            .into_iter()
            .filter(|(_, f)| !*f)
            .map(|(a, _)| a)
            .collect()
    }

    pub fn has_floating_address(&self) -> bool {
        self.addresses().iter().any(|(_, floating)| *floating)
    }

    pub fn tags(&self) -> InstanceTags {
        let meta = |key| self.meta(key).unwrap_or_default().to_owned();
        InstanceTags {
            infra_id: meta(META_INFRA_ID),
            infra_name: meta(META_INFRA_NAME),
            node_name: meta(META_NODE_NAME),
        }
    }
}

/// Every server whose metadata has `key` = `value`, deleted ones left out.
/// Compute 2.1 cannot filter on metadata, so pages of `/servers/detail` are
/// read (narrowed by name when one is known) and filtered here.
pub fn find(
    nova: &Service,
    name: Option<&str>,
    key: &str,
    value: &str,
) -> Result<Vec<Server>, PluginError> {
    let mut path = String::from("/servers/detail?limit=1000");
    if let Some(name) = name {
        path.push_str("&name=");
        path.push_str(&occopus_plugin_sdk::http::percent_encode(&format!(
            "^{}$",
            regex_escape(name)
        )));
    }
    let mut found = Vec::new();
    let mut next = Some(path);
    while let Some(page_path) = next.take() {
        let page = nova.call("GET", &page_path, None)?;
        let servers = page
            .get("servers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        found.extend(servers.into_iter().map(Server).filter(|s| {
            s.meta(key) == Some(value) && !matches!(s.status(), "DELETED" | "SOFT_DELETED")
        }));
        next = page
            .get("servers_links")
            .and_then(Value::as_array)
            .and_then(|links| {
                links
                    .iter()
                    .find(|l| l.get("rel").and_then(Value::as_str) == Some("next"))
            })
            .and_then(|l| l.get("href")?.as_str().map(str::to_owned));
    }
    Ok(found)
}

/// The server with this id; `None` when Nova no longer knows it.
pub fn get(nova: &Service, id: &str) -> Result<Option<Server>, PluginError> {
    match nova.call("GET", &format!("/servers/{id}"), None) {
        Ok(answer) => Ok(answer.get("server").cloned().map(Server)),
        Err(PluginError::NotFound(_)) => Ok(None),
        Err(error) => Err(error),
    }
}

/// Nova's name filter is a regular expression: a name is matched literally.
fn regex_escape(name: &str) -> String {
    name.chars()
        .flat_map(|c| {
            let special = "\\.^$|?*+()[]{}".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

/// The `server` object of `POST /servers`.
pub struct NewServer<'a> {
    pub name: &'a str,
    pub image: &'a str,
    pub flavor: &'a str,
    pub user_data: Option<String>,
    pub key_name: Option<&'a str>,
    pub security_groups: &'a [String],
    pub network_id: Option<&'a str>,
    pub metadata: Map<String, Value>,
    /// Boot from a new volume of this many GB made from the image.
    pub volume: Option<(u64, bool)>,
}

impl NewServer<'_> {
    pub fn body(&self) -> Value {
        let mut server = Map::new();
        server.insert("name".into(), self.name.into());
        server.insert("flavorRef".into(), self.flavor.into());
        server.insert("metadata".into(), Value::Object(self.metadata.clone()));
        match self.volume {
            // The image becomes a new volume Nova asks Block Storage for; the
            // server boots from it (no imageRef then).
            Some((size_gb, persist)) => {
                server.insert("imageRef".into(), "".into());
                server.insert(
                    "block_device_mapping_v2".into(),
                    serde_json::json!([{
                        "boot_index": 0,
                        "uuid": self.image,
                        "source_type": "image",
                        "destination_type": "volume",
                        "volume_size": size_gb,
                        "delete_on_termination": !persist,
                    }]),
                );
            }
            None => {
                server.insert("imageRef".into(), self.image.into());
            }
        }
        if let Some(user_data) = &self.user_data {
            server.insert("user_data".into(), user_data.clone().into());
        }
        if let Some(key_name) = self.key_name {
            server.insert("key_name".into(), key_name.into());
        }
        if !self.security_groups.is_empty() {
            let groups: Vec<Value> = self
                .security_groups
                .iter()
                .map(|name| serde_json::json!({"name": name}))
                .collect();
            server.insert("security_groups".into(), groups.into());
        }
        // Without network_id Nova picks the project's only network, or says
        // why it cannot; occopus does not guess.
        if let Some(network) = self.network_id {
            server.insert("networks".into(), serde_json::json!([{"uuid": network}]));
        }
        serde_json::json!({"server": server})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn states_of_nova() {
        let state = |status: &str| Server(json!({"status": status})).state();
        for pending in ["BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING"] {
            assert_eq!(state(pending).0, InstanceState::Pending, "{pending}");
        }
        assert_eq!(state("ACTIVE").0, InstanceState::Running);
        assert_eq!(state("DELETED").0, InstanceState::Shutdown);
        for out in ["SHUTOFF", "PAUSED", "SUSPENDED", "SHELVED_OFFLOADED"] {
            let (state, detail) = state(out);
            assert_eq!(state, InstanceState::Failed, "{out}");
            assert!(detail.contains("outside occopus"), "{detail}");
        }
        assert_eq!(state("WHATEVER").0, InstanceState::Unknown);
        let failed = Server(
            json!({"status": "ERROR", "fault": {"code": 500, "message": "No valid host was found. "}}),
        );
        assert_eq!(
            failed.state(),
            (
                InstanceState::Failed,
                "ERROR: No valid host was found. ".into()
            )
        );
    }

    #[test]
    fn addresses_floating_first() {
        let server = Server(json!({"addresses": {"private": [
            {"addr": "10.0.0.5", "OS-EXT-IPS:type": "fixed"},
            {"addr": "172.24.4.9", "OS-EXT-IPS:type": "floating"}]}}));
        assert_eq!(server.public_addresses(), ["172.24.4.9"]);
        assert_eq!(server.private_addresses(), ["10.0.0.5"]);
        let fixed_only = Server(
            json!({"addresses": {"private": [{"addr": "10.0.0.5", "OS-EXT-IPS:type": "fixed"}]}}),
        );
        assert_eq!(fixed_only.public_addresses(), ["10.0.0.5"]);
        assert!(!fixed_only.has_floating_address());
        assert!(
            Server(json!({"addresses": {}}))
                .public_addresses()
                .is_empty()
        );
    }

    #[test]
    fn names_are_matched_literally() {
        assert_eq!(regex_escape("my.node-1 (a)"), r"my\.node-1 \(a\)");
    }

    #[test]
    fn the_create_body() {
        let mut metadata = Map::new();
        metadata.insert(META_INSTANCE_ID.into(), "web-0-abc".into());
        let groups = vec!["default".to_owned()];
        let server = NewServer {
            name: "web",
            image: "img-1",
            flavor: "2",
            user_data: Some("I2Nsb3VkLWNvbmZpZw==".into()),
            key_name: Some("key"),
            security_groups: &groups,
            network_id: Some("net-1"),
            metadata,
            volume: None,
        };
        let body = server.body();
        assert_eq!(body["server"]["imageRef"], "img-1");
        assert_eq!(body["server"]["networks"], json!([{"uuid": "net-1"}]));
        assert_eq!(
            body["server"]["security_groups"],
            json!([{"name": "default"}])
        );
        assert_eq!(body["server"]["metadata"][META_INSTANCE_ID], "web-0-abc");
        let from_volume = NewServer {
            volume: Some((20, false)),
            network_id: None,
            ..server
        }
        .body();
        assert_eq!(from_volume["server"]["imageRef"], "");
        assert_eq!(
            from_volume["server"]["block_device_mapping_v2"][0]["volume_size"],
            20
        );
        assert_eq!(
            from_volume["server"]["block_device_mapping_v2"][0]["delete_on_termination"],
            true
        );
        assert!(from_volume["server"].get("networks").is_none());
    }
}
