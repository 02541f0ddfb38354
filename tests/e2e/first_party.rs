//! The first-party plugins as the host sees them: the dummy cloud and the
//! cloudinit and docker contextualisers.

use crate::common::{settings, target};
use occopus::plugin_host::{
    ContextualiserPlugin, DriverPlugin, PluginCatalog, PluginRuntime, RuntimeError,
};
use occopus::types::{
    CloudState, ContainerSpec, CreateRequest, InstanceTags, KeyValue, NodeFacts, Payload,
};
use occopus_builtin_plugins::BUILTINS;
use serde_json::{Value, json};
use std::net::Ipv4Addr;

async fn catalog() -> PluginCatalog {
    let settings = settings(&crate::common::shared_cache_dir());
    let runtime = PluginRuntime::new(&settings).unwrap();
    PluginCatalog::discover(&runtime, &settings, BUILTINS)
        .await
        .unwrap()
}

fn section(value: Value) -> serde_json::Map<String, Value> {
    value.as_object().unwrap().clone()
}

fn facts(resource_type: &str) -> NodeFacts {
    NodeFacts {
        infra_id: "infra-1".into(),
        infra_name: "demo".into(),
        node_name: "web".into(),
        instance_id: "web-1".into(),
        resource_type: resource_type.into(),
    }
}

async fn create(dummy: &DriverPlugin, resource: &Value, instance_id: &str) -> String {
    dummy
        .create(&CreateRequest {
            instance_id: instance_id.into(),
            target: target(resource.clone()),
            payload: Payload::None,
            tags: InstanceTags {
                infra_id: "infra-1".into(),
                infra_name: "demo".into(),
                node_name: "web".into(),
            },
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn dummy_instances_boot_then_run_at_loopback_addresses() {
    let catalog = catalog().await;
    let dummy = catalog.driver("dummy").unwrap();
    let resource = json!({"type": "dummy", "boot_time": 0.3});
    let cloud_id = create(dummy, &resource, "web-1").await;

    let status = dummy
        .status(&target(resource.clone()), &cloud_id)
        .await
        .unwrap();
    assert_eq!(status.state, CloudState::Pending);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let status = dummy.status(&target(resource), &cloud_id).await.unwrap();
    assert_eq!(status.state, CloudState::Running);

    let public: Ipv4Addr = status.public_addresses[0].parse().unwrap();
    let private: Ipv4Addr = status.private_addresses[0].parse().unwrap();
    assert_eq!(public.octets()[..2], [127, 100]);
    assert_eq!(private.octets()[..2], [127, 101]);
}

#[tokio::test]
async fn dummy_failures_follow_the_probability_and_the_seed() {
    let catalog = catalog().await;
    let dummy = catalog.driver("dummy").unwrap();
    let states = async |seed: u64| {
        let resource = json!({"type": "dummy", "failure_probability": 0.5, "seed": seed});
        let mut failed = Vec::new();
        for i in 0..40 {
            let status = dummy
                .status(&target(resource.clone()), &format!("web-{i}@0"))
                .await
                .unwrap();
            failed.push(status.state == CloudState::Failed);
        }
        failed
    };
    let first = states(7).await;
    assert_eq!(first, states(7).await, "the same seed gives the same fates");
    assert_ne!(first, states(8).await, "another seed gives other fates");
    let failures = first.iter().filter(|f| **f).count();
    assert!(
        (8..=32).contains(&failures),
        "{failures} of 40 failed at p=0.5"
    );
}

#[tokio::test]
async fn dummy_validation_names_the_bad_key() {
    let catalog = catalog().await;
    let dummy = catalog.driver("dummy").unwrap();
    let error = dummy
        .validate(&section(json!({"type": "dummy", "failure_probability": 2})))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("failure_probability"), "{error}");
}

async fn contextualise(
    plugin: &ContextualiserPlugin,
    section_json: Value,
    resource_type: &str,
) -> Result<Payload, RuntimeError> {
    plugin
        .contextualise(&section(section_json), &facts(resource_type))
        .await
}

#[tokio::test]
async fn cloudinit_accepts_cloud_configs_and_scripts() {
    let catalog = catalog().await;
    let cloudinit = catalog.contextualiser("cloudinit").unwrap();
    let config = "#cloud-config\nruncmd:\n  - echo hi\n";
    let payload = contextualise(
        cloudinit,
        json!({"type": "cloudinit", "context_template": config}),
        "ec2",
    )
    .await
    .unwrap();
    assert_eq!(payload, Payload::UserData(config.into()));

    let script = "#!/bin/sh\necho hi\n";
    let payload = contextualise(
        cloudinit,
        json!({"type": "cloudinit", "context_template": script}),
        "ec2",
    )
    .await
    .unwrap();
    assert_eq!(payload, Payload::UserData(script.into()));

    // A mapping becomes a #cloud-config document.
    let payload = contextualise(
        cloudinit,
        json!({"type": "cloudinit", "context_template": {"runcmd": ["echo hi"]}}),
        "nova",
    )
    .await
    .unwrap();
    let Payload::UserData(text) = payload else {
        panic!("{payload:?}")
    };
    assert!(text.starts_with("#cloud-config\n"), "{text}");
    assert!(text.contains("- echo hi"), "{text}");
}

#[tokio::test]
async fn cloudinit_refuses_what_cloud_init_would_not_run() {
    let catalog = catalog().await;
    let cloudinit = catalog.contextualiser("cloudinit").unwrap();
    let cases = [
        ("runcmd: [x]", "must start with `#cloud-config` or `#!`"),
        ("#cloud-config\n- a list\n", "must be a YAML mapping"),
        ("#cloud-config\nkey: [unclosed\n", "not valid YAML"),
    ];
    for (template, expected) in cases {
        let error = contextualise(
            cloudinit,
            json!({"type": "cloudinit", "context_template": template}),
            "ec2",
        )
        .await
        .unwrap_err();
        assert!(
            error.to_string().contains(expected),
            "{template:?}: {error}"
        );
    }
}

#[tokio::test]
async fn cloudinit_enforces_the_ec2_user_data_limit() {
    let catalog = catalog().await;
    let cloudinit = catalog.contextualiser("cloudinit").unwrap();
    let header = "#cloud-config\n# ";
    let exactly = format!("{header}{}", "x".repeat(16_384 - header.len()));
    let payload = contextualise(
        cloudinit,
        json!({"type": "cloudinit", "context_template": exactly}),
        "ec2",
    )
    .await
    .unwrap();
    assert_eq!(payload, Payload::UserData(exactly.clone()));

    let over = format!("{exactly}x");
    let error = contextualise(
        cloudinit,
        json!({"type": "cloudinit", "context_template": over}),
        "ec2",
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(error.contains("16385 bytes"), "{error}");
    assert!(error.contains("at most 16384 bytes"), "{error}");
    assert!(error.contains("node `web`"), "{error}");
}

#[tokio::test]
async fn docker_contextualiser_builds_env_and_command() {
    let catalog = catalog().await;
    let docker = catalog.contextualiser("docker").unwrap();
    let payload = contextualise(
        docker,
        json!({
            "type": "docker",
            "env": ["target_ip=127.0.0.7", "GREETING=a=b"],
            "command": "sh -c '/root/start.sh --fast'",
        }),
        "docker",
    )
    .await
    .unwrap();
    let kv = |k: &str, v: &str| KeyValue {
        key: k.into(),
        value: v.into(),
    };
    assert_eq!(
        payload,
        Payload::Container(ContainerSpec {
            env: vec![kv("target_ip", "127.0.0.7"), kv("GREETING", "a=b")],
            command: Some(vec![
                "sh".into(),
                "-c".into(),
                "/root/start.sh --fast".into()
            ]),
        })
    );

    let error = contextualise(
        docker,
        json!({"type": "docker", "env": ["NOEQUALS"]}),
        "docker",
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("NAME=value"), "{error}");
}
