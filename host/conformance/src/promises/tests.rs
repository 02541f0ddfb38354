//! The check against in-memory clouds: a well-behaved one passes every
//! promise, each kind of misbehaviour fails exactly its promise.

use super::*;
use crate::report::Promise;
use async_trait::async_trait;
use occopus_types::{DriverInfo, ListedInstance};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// How an in-memory driver misbehaves.
#[derive(Clone, Copy, PartialEq)]
enum Flaw {
    None,
    /// Every create makes a new instance.
    Forgetful,
    /// `status` of an unknown (or destroyed) id says running.
    Optimist,
    /// `validate` reaches for the network.
    ValidateCallsHome,
    /// `list` finds nothing.
    Amnesiac,
}

struct Instance {
    instance_id: String,
    tags: InstanceTags,
    polls: u32,
}

struct MemoryDriver {
    info: DriverInfo,
    flaw: Flaw,
    instances: Mutex<BTreeMap<String, Instance>>,
    made: Mutex<u32>,
}

impl MemoryDriver {
    fn new(flaw: Flaw) -> Self {
        MemoryDriver {
            info: DriverInfo {
                name: "memory".into(),
                version: "1.2.3".into(),
                resource_types: vec!["memory".into()],
                resource_schema: r#"{"type": "object", "required": ["type"]}"#.into(),
            },
            flaw,
            instances: Mutex::default(),
            made: Mutex::default(),
        }
    }

    fn live(&self) -> usize {
        self.instances.lock().unwrap().len()
    }
}

#[async_trait]
impl Driver for MemoryDriver {
    fn info(&self) -> &DriverInfo {
        &self.info
    }

    async fn validate(&self, _: &ResourceSection) -> Result<(), CallError> {
        match self.flaw {
            Flaw::ValidateCallsHome => Err(CallError::new(
                CallErrorKind::Sandbox("outbound-http-allow-list"),
                "sent an HTTP request to `api.example.org:443`",
            )),
            _ => Ok(()),
        }
    }

    async fn create(&self, request: &CreateRequest) -> Result<String, CallError> {
        let mut instances = self.instances.lock().unwrap();
        if self.flaw != Flaw::Forgetful
            && let Some((id, _)) = instances
                .iter()
                .find(|(_, i)| i.instance_id == request.instance_id)
        {
            return Ok(id.clone());
        }
        let mut made = self.made.lock().unwrap();
        *made += 1;
        let id = format!("vm-{made}");
        instances.insert(
            id.clone(),
            Instance {
                instance_id: request.instance_id.clone(),
                tags: request.tags.clone(),
                polls: 0,
            },
        );
        Ok(id)
    }

    async fn status(&self, _: &CloudTarget, cloud_id: &str) -> Result<InstanceStatus, CallError> {
        let mut instances = self.instances.lock().unwrap();
        let Some(instance) = instances.get_mut(cloud_id) else {
            return match self.flaw {
                Flaw::Optimist => Ok(status(CloudState::Running, cloud_id)),
                _ => Err(CallError::plugin(ContractErrorKind::NotFound, "no such vm")),
            };
        };
        instance.polls += 1;
        let state = if instance.polls < 2 {
            CloudState::Pending
        } else {
            CloudState::Running
        };
        Ok(status(state, cloud_id))
    }

    async fn destroy(&self, _: &CloudTarget, cloud_id: &str) -> Result<(), CallError> {
        self.instances.lock().unwrap().remove(cloud_id);
        Ok(())
    }

    async fn list(
        &self,
        target: &CloudTarget,
        infra_id: &str,
    ) -> Result<Vec<ListedInstance>, CallError> {
        if target.credentials.values().any(|v| v.starts_with("wrong")) {
            return Err(CallError::plugin(
                ContractErrorKind::Unauthorized,
                "bad key",
            ));
        }
        if self.flaw == Flaw::Amnesiac {
            return Ok(Vec::new());
        }
        Ok(self
            .instances
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, i)| i.tags.infra_id == infra_id)
            .map(|(id, i)| ListedInstance {
                cloud_id: id.clone(),
                instance_id: i.instance_id.clone(),
                tags: i.tags.clone(),
                state: CloudState::Running,
            })
            .collect())
    }
}

fn status(state: CloudState, cloud_id: &str) -> InstanceStatus {
    InstanceStatus {
        state,
        public_addresses: vec![],
        private_addresses: vec![format!("10.0.0.{}", cloud_id.len())],
        detail: None,
    }
}

fn target(credentials: bool) -> CloudTarget {
    let mut resource = ResourceSection::new();
    resource.insert("type".into(), "memory".into());
    CloudTarget {
        resource,
        credentials: if credentials {
            Credentials::new([("key".into(), "right".into())])
        } else {
            Credentials::default()
        },
    }
}

async fn run(flaw: Flaw) -> (Report, MemoryDriver) {
    let driver = MemoryDriver::new(flaw);
    let report = check(&driver, &target(true), &CheckOptions::default()).await;
    (report, driver)
}

fn failed(report: &Report) -> Vec<Promise> {
    report
        .results
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Failed(_)))
        .map(|r| r.promise)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_well_behaved_driver_keeps_every_promise_and_nothing_is_left() {
    let (report, driver) = run(Flaw::None).await;
    assert!(report.passed(), "{report}");
    assert_eq!(report.results.len(), 13, "{report}");
    assert!(
        report
            .results
            .iter()
            .all(|r| matches!(r.verdict, Verdict::Passed(_))),
        "{report}"
    );
    assert_eq!(driver.live(), 0, "the check destroys what it made");
}

#[tokio::test(start_paused = true)]
async fn each_flaw_fails_its_own_promise() {
    for (flaw, promises) in [
        (Flaw::Forgetful, &[Promise::CreateIdempotent][..]),
        // It never says a destroyed instance is gone either.
        (Flaw::Optimist, &[Promise::UnknownId, Promise::Destroy]),
        // Both of its validate calls reach for the network.
        (
            Flaw::ValidateCallsHome,
            &[Promise::ValidateOffline, Promise::ValidateErrors],
        ),
        (Flaw::Amnesiac, &[Promise::ListByTag]),
    ] {
        let (report, driver) = run(flaw).await;
        assert_eq!(failed(&report), promises, "{report}");
        assert!(!report.passed());
        assert_eq!(driver.live(), 0, "{report}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_report_names_the_broken_promise_and_why() {
    let (report, _) = run(Flaw::Forgetful).await;
    let text = report.to_string();
    let line = text
        .lines()
        .find(|l| l.contains("create-idempotent"))
        .unwrap();
    assert!(line.contains("FAILED"), "{text}");
    assert!(line.contains("a second machine"), "{text}");
    assert!(
        text.ends_with("12 passed, 1 failed, 0 not applicable, 0 skipped"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn without_credentials_the_unauthorized_promise_does_not_apply() {
    let driver = MemoryDriver::new(Flaw::None);
    let report = check(&driver, &target(false), &CheckOptions::default()).await;
    assert!(
        matches!(
            report.verdict(Promise::Unauthorized),
            Some(Verdict::NotApplicable(_))
        ),
        "{report}"
    );
    assert!(report.passed());
}

#[test]
fn versions_and_addresses() {
    assert!(is_semver("0.1.0"));
    assert!(is_semver("1.2.3-rc.1"));
    assert!(!is_semver("6.6"));
    assert!(is_address("10.0.0.1"));
    assert!(is_address("::1"));
    assert!(is_address("node-1.example.org"));
    assert!(!is_address(""));
    assert!(!is_address("not an address"));
}
