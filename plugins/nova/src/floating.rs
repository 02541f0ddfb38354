//! Floating IPs through OpenStack Networking (Neutron).
//!
//! Nova's own `addFloatingIp` action exists only below Compute microversion
//! 2.44, so occopus associates through Neutron, which every cloud with
//! Neutron supports whatever its Nova: a free address of the pool is reused,
//! else one is allocated straight onto the server's port. An allocated one
//! carries [`allocated_for`] in its description; destroy gives back exactly
//! those, never an address the project had before.

use crate::api::Service;
use occopus_plugin_sdk::PluginError;
use occopus_plugin_sdk::http::percent_encode;
use serde_json::{Value, json};

/// The description of a floating IP occopus allocated for a server.
fn allocated_for(server_id: &str) -> String {
    format!("occopus: allocated for server {server_id}")
}

fn list(neutron: &Service, path: &str, key: &str) -> Result<Vec<Value>, PluginError> {
    let answer = neutron.call("GET", path, None)?;
    Ok(answer
        .get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default())
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The floating addresses on the server's ports.
pub fn addresses(neutron: &Service, server_id: &str) -> Result<Vec<String>, PluginError> {
    let mut found = Vec::new();
    for port in ports(neutron, server_id)? {
        let path = format!("/v2.0/floatingips?port_id={}", percent_encode(&port));
        found.extend(
            list(neutron, &path, "floatingips")?
                .iter()
                .map(|ip| text(ip, "floating_ip_address").to_owned()),
        );
    }
    Ok(found)
}

fn ports(neutron: &Service, server_id: &str) -> Result<Vec<String>, PluginError> {
    let path = format!("/v2.0/ports?device_id={}", percent_encode(server_id));
    Ok(list(neutron, &path, "ports")?
        .iter()
        .map(|port| text(port, "id").to_owned())
        .collect())
}

/// Gives the server a floating address from `pool` (an external network's
/// name or id; the first external network when none is given). Returns the
/// address, or `None` while the server has no port yet.
pub fn attach(
    neutron: &Service,
    server_id: &str,
    pool: Option<&str>,
) -> Result<Option<String>, PluginError> {
    let Some(port) = ports(neutron, server_id)?.into_iter().next() else {
        return Ok(None);
    };
    let network = external_network(neutron, pool)?;
    let path = format!(
        "/v2.0/floatingips?floating_network_id={}",
        percent_encode(&network)
    );
    let free = list(neutron, &path, "floatingips")?.into_iter().find(|ip| {
        ip.get("port_id").is_none_or(Value::is_null)
            && !text(ip, "description").starts_with("occopus: allocated for server ")
    });
    let attached = match free {
        Some(ip) => neutron.call(
            "PUT",
            &format!("/v2.0/floatingips/{}", text(&ip, "id")),
            Some(&json!({"floatingip": {"port_id": port}})),
        )?,
        None => neutron.call(
            "POST",
            "/v2.0/floatingips",
            Some(&json!({"floatingip": {
                "floating_network_id": network,
                "port_id": port,
                "description": allocated_for(server_id),
            }})),
        )?,
    };
    Ok(Some(
        text(&attached["floatingip"], "floating_ip_address").to_owned(),
    ))
}

/// The id of the external network `pool` names, or of the first one.
fn external_network(neutron: &Service, pool: Option<&str>) -> Result<String, PluginError> {
    let external = list(neutron, "/v2.0/networks?router:external=true", "networks")?;
    let chosen = match pool {
        Some(pool) => external
            .iter()
            .find(|n| text(n, "name") == pool || text(n, "id") == pool),
        None => external.first(),
    };
    if let Some(network) = chosen {
        return Ok(text(network, "id").to_owned());
    }
    let names: Vec<&str> = external.iter().map(|n| text(n, "name")).collect();
    let names = if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    };
    Err(PluginError::InvalidConfig(match pool {
        Some(pool) => format!(
            "floating_ip_pool `{pool}`: Neutron has no external network of that name or id; \
             external networks: {names}"
        ),
        None => "floating_ip: Neutron has no external network to take a floating IP from; \
                 remove floating_ip, or ask the cloud's operator"
            .to_owned(),
    }))
}

/// Gives back the floating IPs occopus allocated for the server.
pub fn release(neutron: &Service, server_id: &str) -> Result<usize, PluginError> {
    let mine = allocated_for(server_id);
    let path = format!("/v2.0/floatingips?description={}", percent_encode(&mine));
    let mut released = 0;
    // The description filter narrows the list where Neutron supports it; the
    // check here keeps a cloud that ignores the filter from losing others' IPs.
    for ip in list(neutron, &path, "floatingips")?
        .iter()
        .filter(|ip| text(ip, "description") == mine)
    {
        match neutron.call(
            "DELETE",
            &format!("/v2.0/floatingips/{}", text(ip, "id")),
            None,
        ) {
            Ok(_) | Err(PluginError::NotFound(_)) => released += 1,
            Err(error) => return Err(error),
        }
    }
    Ok(released)
}
