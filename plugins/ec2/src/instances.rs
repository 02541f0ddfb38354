//! EC2's XML descriptions of instances, read into what the contract needs.

use occopus_plugin_sdk::PluginError;
use occopus_plugin_sdk::driver::InstanceState;
use roxmltree::{Document, Node};
use std::collections::BTreeMap;

/// One instance of a `DescribeInstances` or `RunInstances` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    /// EC2's state name: pending, running, shutting-down, terminated, stopping, stopped.
    pub state: String,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
    pub tags: BTreeMap<String, String>,
}

impl Instance {
    /// The contract's state. A stopped instance is not running a node any more,
    /// so occopus replaces it, as Occopus did (`stopped` -> temporary failure).
    pub fn contract_state(&self) -> InstanceState {
        match self.state.as_str() {
            "pending" => InstanceState::Pending,
            "running" => InstanceState::Running,
            "stopping" | "stopped" => InstanceState::Failed,
            "shutting-down" | "terminated" => InstanceState::Shutdown,
            _ => InstanceState::Unknown,
        }
    }

    /// Whether it is gone or going (the contract's `list` leaves those out).
    pub fn is_terminating(&self) -> bool {
        matches!(self.state.as_str(), "shutting-down" | "terminated")
    }
}

/// A page of instances and the token of the next page, if any.
pub struct Page {
    pub instances: Vec<Instance>,
    pub next_token: Option<String>,
}

/// Reads every `instancesSet` item of an answer, wherever it is nested
/// (`reservationSet/item/instancesSet` in DescribeInstances, `instancesSet`
/// at the top of RunInstances).
pub fn parse(xml: &str) -> Result<Page, PluginError> {
    let document = Document::parse(xml)
        .map_err(|e| PluginError::Internal(format!("EC2 answered with malformed XML: {e}")))?;
    let root = document.root_element();
    let instances = root
        .descendants()
        .filter(|n| n.has_tag_name("instancesSet"))
        .flat_map(|set| set.children().filter(|n| n.has_tag_name("item")))
        .map(instance)
        .collect::<Result<_, _>>()?;
    let next_token = child_text(root, "nextToken").filter(|t| !t.is_empty());
    Ok(Page {
        instances,
        next_token,
    })
}

fn instance(item: Node<'_, '_>) -> Result<Instance, PluginError> {
    let id = child_text(item, "instanceId")
        .ok_or_else(|| PluginError::Internal("EC2 described an instance without an id".into()))?;
    let state = child(item, "instanceState")
        .and_then(|s| child_text(s, "name"))
        .unwrap_or_default();
    let tags = child(item, "tagSet")
        .into_iter()
        .flat_map(|set| set.children().filter(|n| n.has_tag_name("item")))
        .filter_map(|tag| {
            Some((
                child_text(tag, "key")?,
                child_text(tag, "value").unwrap_or_default(),
            ))
        })
        .collect();
    Ok(Instance {
        id,
        state,
        private_ip: child_text(item, "privateIpAddress").filter(|a| !a.is_empty()),
        public_ip: child_text(item, "ipAddress").filter(|a| !a.is_empty()),
        tags,
    })
}

fn child<'a, 'input>(node: Node<'a, 'input>, name: &str) -> Option<Node<'a, 'input>> {
    node.children().find(|n| n.has_tag_name(name))
}

fn child_text(node: Node<'_, '_>, name: &str) -> Option<String> {
    child(node, name).map(|n| n.text().unwrap_or_default().trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like AWS's documented DescribeInstances answer.
    const DESCRIBE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>8f7724cf-496f-496e-8fe3-example</requestId>
  <reservationSet>
    <item>
      <reservationId>r-1234567890abcdef0</reservationId>
      <instancesSet>
        <item>
          <instanceId>i-1234567890abcdef0</instanceId>
          <instanceState><code>16</code><name>running</name></instanceState>
          <privateIpAddress>10.0.0.157</privateIpAddress>
          <ipAddress>54.194.252.215</ipAddress>
          <tagSet>
            <item><key>occopus:instance-id</key><value>abc</value></item>
            <item><key>Name</key><value></value></item>
          </tagSet>
        </item>
        <item>
          <instanceId>i-2</instanceId>
          <instanceState><code>0</code><name>pending</name></instanceState>
          <privateIpAddress/>
        </item>
      </instancesSet>
    </item>
  </reservationSet>
  <nextToken>page2</nextToken>
</DescribeInstancesResponse>"#;

    #[test]
    fn reads_instances_states_addresses_and_tags() {
        let page = parse(DESCRIBE).unwrap();
        assert_eq!(page.next_token.as_deref(), Some("page2"));
        let [first, second] = &page.instances[..] else {
            panic!("{:?}", page.instances);
        };
        assert_eq!(first.id, "i-1234567890abcdef0");
        assert_eq!(first.contract_state(), InstanceState::Running);
        assert_eq!(first.private_ip.as_deref(), Some("10.0.0.157"));
        assert_eq!(first.public_ip.as_deref(), Some("54.194.252.215"));
        assert_eq!(first.tags["occopus:instance-id"], "abc");
        assert_eq!(first.tags["Name"], "");
        assert_eq!(second.contract_state(), InstanceState::Pending);
        assert_eq!(second.private_ip, None);
        assert_eq!(second.public_ip, None);
    }

    #[test]
    fn maps_every_ec2_state() {
        let state = |name: &str| {
            Instance {
                id: "i".into(),
                state: name.into(),
                private_ip: None,
                public_ip: None,
                tags: BTreeMap::new(),
            }
            .contract_state()
        };
        assert_eq!(state("pending"), InstanceState::Pending);
        assert_eq!(state("running"), InstanceState::Running);
        assert_eq!(state("stopping"), InstanceState::Failed);
        assert_eq!(state("stopped"), InstanceState::Failed);
        assert_eq!(state("shutting-down"), InstanceState::Shutdown);
        assert_eq!(state("terminated"), InstanceState::Shutdown);
        assert_eq!(state("rebooting?"), InstanceState::Unknown);
    }

    #[test]
    fn malformed_answers_are_internal_errors() {
        assert!(matches!(parse("<a><b>"), Err(PluginError::Internal(_))));
        assert!(
            parse(
                "<RunInstancesResponse><instancesSet><item/></instancesSet></RunInstancesResponse>"
            )
            .is_err()
        );
    }
}
