//! Checking the promises, one after another, against a live cloud.

use crate::report::{Promise, Report, Verdict};
use occopus_types::{
    CallError, CallErrorKind, CloudState, CloudTarget, ContractErrorKind, CreateRequest,
    Credentials, Driver, InstanceStatus, InstanceTags, Payload, ResourceSection, resource_type,
};
use std::net::IpAddr;
use std::time::Duration;
use tokio::time::Instant;

/// How long the check waits for the cloud.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// How long a new instance may take to run.
    pub boot_timeout: Duration,
    /// How long a destroyed instance may take to be gone.
    pub gone_timeout: Duration,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            boot_timeout: Duration::from_secs(300),
            gone_timeout: Duration::from_secs(120),
        }
    }
}

/// The ids the check's instance carries: its own infra, so that nothing a
/// user has is ever listed or touched.
struct Identity {
    infra_id: String,
    instance_id: String,
    tags: InstanceTags,
}

impl Identity {
    fn new() -> Self {
        let run = uuid::Uuid::new_v4().simple().to_string();
        let infra_id = format!("occopus-check-{}", &run[..12]);
        Identity {
            instance_id: format!("{infra_id}-probe-1"),
            tags: InstanceTags {
                infra_id: infra_id.clone(),
                infra_name: "occopus-plugins-check".into(),
                node_name: "probe".into(),
            },
            infra_id,
        }
    }
}

/// Runs every promise against the cloud `target` points at, with `driver`.
pub async fn check(driver: &dyn Driver, target: &CloudTarget, options: &CheckOptions) -> Report {
    let info = driver.info();
    let mut report = Report {
        driver: format!("`{}` {}", info.name, info.version),
        ..Report::default()
    };
    let mut check = Check {
        driver,
        target,
        options,
        inventory: info.keeps_inventory(),
        identity: Identity::new(),
        report: &mut report,
        to_clean: Vec::new(),
    };
    check.describe();
    check.validate().await;
    check.lifecycle().await;
    check.unauthorized().await;
    check.clean_up().await;
    report
}

struct Check<'a> {
    driver: &'a dyn Driver,
    target: &'a CloudTarget,
    options: &'a CheckOptions,
    /// Whether the driver's cloud keeps an inventory.
    inventory: bool,
    identity: Identity,
    report: &'a mut Report,
    /// Cloud ids the check made and has not destroyed yet.
    to_clean: Vec<String>,
}

const NO_INVENTORY: &str =
    "the driver declares that its cloud keeps no inventory (\"x-occopus-inventory\": false)";

impl Check<'_> {
    fn passed(&mut self, promise: Promise, detail: impl Into<String>) {
        self.report.add(promise, Verdict::Passed(detail.into()));
    }

    fn failed(&mut self, promise: Promise, detail: impl Into<String>) {
        self.report.add(promise, Verdict::Failed(detail.into()));
    }

    fn not_applicable(&mut self, promise: Promise, detail: impl Into<String>) {
        self.report
            .add(promise, Verdict::NotApplicable(detail.into()));
    }

    fn describe(&mut self) {
        let info = self.driver.info();
        let ty = resource_type(&self.target.resource);
        let mut problems = Vec::new();
        if info.name.trim().is_empty() {
            problems.push("its name is empty".to_string());
        }
        if !is_semver(&info.version) {
            problems.push(format!(
                "its version `{}` is not semver (MAJOR.MINOR.PATCH)",
                info.version
            ));
        }
        if !info.resource_types.iter().any(|t| t == ty) {
            problems.push(format!(
                "it serves {:?}, not the resource's type `{ty}`",
                info.resource_types
            ));
        }
        let schema = match serde_json::from_str::<serde_json::Value>(&info.resource_schema)
            .map_err(|e| e.to_string())
            .and_then(|s| jsonschema::validator_for(&s).map_err(|e| e.to_string()))
        {
            Ok(schema) => Some(schema),
            Err(e) => {
                problems.push(format!("its resource schema does not compile: {e}"));
                None
            }
        };
        if problems.is_empty() {
            self.passed(
                Promise::Describe,
                format!(
                    "serves {}; the schema compiles",
                    info.resource_types.join(", ")
                ),
            );
        } else {
            self.failed(Promise::Describe, problems.join("; "));
        }
        match schema {
            None => self.report.add(
                Promise::Schema,
                Verdict::Skipped("no schema to check the resource against".into()),
            ),
            Some(schema) => {
                let resource = serde_json::Value::Object(self.target.resource.clone());
                let errors: Vec<String> = schema
                    .iter_errors(&resource)
                    .map(|e| match e.instance_path().as_str() {
                        "" => e.to_string(),
                        at => format!("{at}: {e}"),
                    })
                    .collect();
                if errors.is_empty() {
                    self.passed(
                        Promise::Schema,
                        "the resource section passes the driver's schema",
                    );
                } else {
                    self.failed(
                        Promise::Schema,
                        format!(
                            "the resource section does not pass the driver's schema: {}",
                            errors.join("; ")
                        ),
                    );
                }
            }
        }
    }

    async fn validate(&mut self) {
        match self.driver.validate(&self.target.resource).await {
            Ok(()) => self.passed(
                Promise::ValidateOffline,
                "accepted the resource without a cloud call",
            ),
            Err(e) if matches!(e.kind, CallErrorKind::Sandbox(_)) => self.failed(
                Promise::ValidateOffline,
                format!("validate must not reach any host (no cloud call): {e}"),
            ),
            Err(e) => self.failed(
                Promise::ValidateOffline,
                format!("refused the resource this check was given: {e}"),
            ),
        }
        let mut minimal = ResourceSection::new();
        minimal.insert("type".into(), resource_type(&self.target.resource).into());
        match self.driver.validate(&minimal).await {
            Ok(()) => self.passed(
                Promise::ValidateErrors,
                "a section with only its `type` is complete for this driver",
            ),
            Err(e) if e.is(ContractErrorKind::InvalidConfig) => self.passed(
                Promise::ValidateErrors,
                "a section with only its `type` is refused as invalid-config",
            ),
            Err(e) => self.failed(
                Promise::ValidateErrors,
                format!(
                    "a section with only its `type` must be refused as invalid-config (the user must fix the file), not {}: {e}",
                    e.kind.as_str()
                ),
            ),
        }
    }

    fn create_request(&self) -> CreateRequest {
        CreateRequest {
            instance_id: self.identity.instance_id.clone(),
            target: self.target.clone(),
            payload: Payload::None,
            tags: self.identity.tags.clone(),
        }
    }

    /// create, create-idempotent, status-transitions, addresses,
    /// list-by-tag, unknown-id, destroy, destroy-idempotent.
    async fn lifecycle(&mut self) {
        let request = self.create_request();
        let cloud_id = match self.driver.create(&request).await {
            Ok(id) if !id.trim().is_empty() => id,
            Ok(_) => {
                self.failed(Promise::Create, "answered with an empty cloud id");
                return self.skip_lifecycle("create failed");
            }
            Err(e) => {
                self.failed(Promise::Create, format!("create failed: {e}"));
                return self.skip_lifecycle("create failed");
            }
        };
        self.to_clean.push(cloud_id.clone());
        self.passed(
            Promise::Create,
            format!("instance {} made as {cloud_id}", self.identity.instance_id),
        );
        let second = self.driver.create(&request).await;
        let running = self.wait_running(&cloud_id).await;
        self.create_idempotent(&cloud_id, second, running.as_ref())
            .await;
        match &running {
            Some(status) => self.addresses(status),
            None => self.report.add(
                Promise::Addresses,
                Verdict::Skipped("the instance never ran".into()),
            ),
        }
        self.list_by_tag(&cloud_id).await;
        self.unknown_id().await;
        self.destroy(&cloud_id).await;
    }

    fn skip_lifecycle(&mut self, why: &str) {
        for promise in [
            Promise::CreateIdempotent,
            Promise::StatusTransitions,
            Promise::Addresses,
            Promise::ListByTag,
            Promise::UnknownId,
            Promise::Destroy,
            Promise::DestroyIdempotent,
        ] {
            self.report.add(promise, Verdict::Skipped(why.into()));
        }
    }

    async fn create_idempotent(
        &mut self,
        first: &str,
        second: Result<String, CallError>,
        running: Option<&InstanceStatus>,
    ) {
        let second = match second {
            Ok(second) if second == first => {
                return self.passed(
                    Promise::CreateIdempotent,
                    "a second create with the same instance id answered the same cloud id",
                );
            }
            Ok(second) => second,
            Err(e) => {
                return self.failed(
                    Promise::CreateIdempotent,
                    format!(
                        "a second create with the same instance id failed ({e}); it must answer with the instance the first made"
                    ),
                );
            }
        };
        self.to_clean.push(second.clone());
        if self.inventory {
            return self.failed(
                Promise::CreateIdempotent,
                format!(
                    "two creates with instance id {} answered different cloud ids ({first}, {second}): \
                     a retried or resumed create would make a second machine",
                    self.identity.instance_id
                ),
            );
        }
        // Without an inventory the answer may differ in form; what the two
        // show of the instance must not.
        let again = self.driver.status(self.target, &second).await.ok();
        let shown = |s: Option<&InstanceStatus>| s.map(|s| s.addresses()).unwrap_or_default();
        let (a, b) = (shown(running), shown(again.as_ref()));
        if running.is_some() && a == b {
            self.passed(
                Promise::CreateIdempotent,
                format!(
                    "the two answers ({first}, {second}) show the same instance ({}); {NO_INVENTORY}",
                    a.primary().unwrap_or("no address")
                ),
            );
        } else {
            self.failed(
                Promise::CreateIdempotent,
                format!(
                    "two creates with instance id {} made two instances: {first} at {} and {second} at {}; \
                     a retried or resumed create would make a second machine",
                    self.identity.instance_id,
                    a.primary().unwrap_or("no address"),
                    b.primary().unwrap_or("no address"),
                ),
            );
        }
    }

    /// Polls until running; records status-transitions.
    async fn wait_running(&mut self, cloud_id: &str) -> Option<InstanceStatus> {
        let started = Instant::now();
        let mut seen: Vec<&'static str> = Vec::new();
        let mut interval = Duration::from_millis(100);
        loop {
            let status = match self.driver.status(self.target, cloud_id).await {
                Ok(status) => status,
                Err(e) if e.is_transient() => {
                    tokio::time::sleep(interval).await;
                    continue;
                }
                Err(e) => {
                    self.failed(
                        Promise::StatusTransitions,
                        format!("status of the new instance failed: {e}"),
                    );
                    return None;
                }
            };
            if seen.last() != Some(&status.state.as_str()) {
                seen.push(status.state.as_str());
            }
            match status.state {
                CloudState::Running => {
                    self.passed(
                        Promise::StatusTransitions,
                        format!(
                            "{} in {:.1}s",
                            seen.join(" -> "),
                            started.elapsed().as_secs_f64()
                        ),
                    );
                    return Some(status);
                }
                CloudState::Failed | CloudState::Shutdown => {
                    self.failed(
                        Promise::StatusTransitions,
                        format!(
                            "the new instance went {} ({}){}",
                            seen.join(" -> "),
                            status.state.as_str(),
                            status.detail.map(|d| format!(": {d}")).unwrap_or_default()
                        ),
                    );
                    return None;
                }
                CloudState::Pending | CloudState::Unknown => {}
            }
            if started.elapsed() > self.options.boot_timeout {
                self.failed(
                    Promise::StatusTransitions,
                    format!(
                        "still {} after {}s (--boot-timeout)",
                        seen.join(" -> "),
                        self.options.boot_timeout.as_secs()
                    ),
                );
                return None;
            }
            tokio::time::sleep(interval).await;
            interval = (interval * 2).min(Duration::from_secs(2));
        }
    }

    fn addresses(&mut self, status: &InstanceStatus) {
        let all: Vec<&String> = status
            .public_addresses
            .iter()
            .chain(&status.private_addresses)
            .collect();
        let bad: Vec<&&String> = all.iter().filter(|a| !is_address(a)).collect();
        if all.is_empty() {
            self.failed(
                Promise::Addresses,
                "the running instance has no address: its dependents' getip() and its health checks need one",
            );
        } else if !bad.is_empty() {
            self.failed(
                Promise::Addresses,
                format!("not an IP address or host name: {bad:?}"),
            );
        } else {
            self.passed(
                Promise::Addresses,
                format!(
                    "public {:?}, private {:?}",
                    status.public_addresses, status.private_addresses
                ),
            );
        }
    }

    async fn list_by_tag(&mut self, cloud_id: &str) {
        if !self.inventory {
            return self.not_applicable(Promise::ListByTag, NO_INVENTORY);
        }
        let listed = match self.driver.list(self.target, &self.identity.infra_id).await {
            Ok(listed) => listed,
            Err(e) => return self.failed(Promise::ListByTag, format!("list failed: {e}")),
        };
        let Some(found) = listed.iter().find(|l| l.cloud_id == cloud_id) else {
            return self.failed(
                Promise::ListByTag,
                format!(
                    "list of infra {} does not find {cloud_id} (it found {}): after a crash occopus could not find what it made",
                    self.identity.infra_id,
                    listed.len()
                ),
            );
        };
        if found.instance_id != self.identity.instance_id || found.tags != self.identity.tags {
            return self.failed(
                Promise::ListByTag,
                format!(
                    "{cloud_id} is listed as instance {} with tags {:?}; it was created as {} with {:?}",
                    found.instance_id, found.tags, self.identity.instance_id, self.identity.tags
                ),
            );
        }
        let other = Identity::new().infra_id;
        match self.driver.list(self.target, &other).await {
            Ok(others) if others.iter().any(|l| l.cloud_id == cloud_id) => self.failed(
                Promise::ListByTag,
                format!("list of another infra id ({other}) also finds {cloud_id}"),
            ),
            Ok(_) => self.passed(
                Promise::ListByTag,
                "found by its infra id with its instance id and tags; not by another infra id",
            ),
            Err(e) => self.failed(
                Promise::ListByTag,
                format!("list of another infra id failed: {e}"),
            ),
        }
    }

    async fn unknown_id(&mut self) {
        let unknown = format!("{}-no-such-instance", self.identity.infra_id);
        match self.driver.status(self.target, &unknown).await {
            Err(e) if e.is_not_found() => {
                self.passed(Promise::UnknownId, "status of an unknown id answers not-found")
            }
            Ok(status) if status.state == CloudState::Shutdown => self.passed(
                Promise::UnknownId,
                "status of an unknown id answers shutdown",
            ),
            Ok(status) => self.failed(
                Promise::UnknownId,
                format!(
                    "status of an id the cloud never made answers {}: occopus would think a lost instance is alive",
                    status.state.as_str()
                ),
            ),
            Err(e) => self.failed(
                Promise::UnknownId,
                format!(
                    "status of an unknown id must answer not-found, not {}: {e}",
                    e.kind.as_str()
                ),
            ),
        }
    }

    async fn unauthorized(&mut self) {
        if self.target.credentials.is_empty() {
            return self.not_applicable(
                Promise::Unauthorized,
                "no credentials were given for this resource (pass --auth-data)",
            );
        }
        let wrong = CloudTarget {
            resource: self.target.resource.clone(),
            credentials: Credentials::new(
                self.target
                    .credentials
                    .pairs()
                    .iter()
                    .map(|(k, v)| (k.clone(), format!("wrong-{}", v.len()))),
            ),
        };
        match self.driver.list(&wrong, &self.identity.infra_id).await {
            Err(e) if e.is(ContractErrorKind::Unauthorized) => self.passed(
                Promise::Unauthorized,
                "wrong credentials answer unauthorized",
            ),
            Ok(_) => self.failed(
                Promise::Unauthorized,
                "list with wrong credentials succeeded",
            ),
            Err(e) => self.failed(
                Promise::Unauthorized,
                format!(
                    "wrong credentials must answer unauthorized (the user must fix auth_data), not {}: {e}",
                    e.kind.as_str()
                ),
            ),
        }
    }

    async fn destroy(&mut self, cloud_id: &str) {
        if let Err(e) = self.driver.destroy(self.target, cloud_id).await {
            self.failed(Promise::Destroy, format!("destroy failed: {e}"));
            return self.report.add(
                Promise::DestroyIdempotent,
                Verdict::Skipped("destroy failed".into()),
            );
        }
        self.to_clean.retain(|id| id != cloud_id);
        if !self.inventory {
            self.passed(
                Promise::Destroy,
                format!("destroy succeeded; {NO_INVENTORY}"),
            );
        } else {
            let verdict = self.wait_gone(cloud_id).await;
            self.report.add(Promise::Destroy, verdict);
        }
        match self.driver.destroy(self.target, cloud_id).await {
            Ok(()) => self.passed(Promise::DestroyIdempotent, "a second destroy succeeded"),
            Err(e) => self.failed(
                Promise::DestroyIdempotent,
                format!("destroy of an instance already destroyed must succeed: {e}"),
            ),
        }
    }

    /// Waits until the destroyed instance is gone: status not-found or
    /// shutdown, and no longer listed (but as shut down).
    async fn wait_gone(&self, cloud_id: &str) -> Verdict {
        let started = Instant::now();
        loop {
            let status = self.driver.status(self.target, cloud_id).await;
            let gone = match &status {
                Err(e) => e.is_not_found(),
                Ok(s) => s.state == CloudState::Shutdown,
            };
            if gone {
                let listed = match self.driver.list(self.target, &self.identity.infra_id).await {
                    Ok(listed) => listed,
                    Err(e) => return Verdict::Failed(format!("list after destroy failed: {e}")),
                };
                let still = listed
                    .iter()
                    .any(|l| l.cloud_id == cloud_id && l.state != CloudState::Shutdown);
                if !still {
                    return Verdict::Passed(format!(
                        "gone after {:.1}s (status answers {})",
                        started.elapsed().as_secs_f64(),
                        match status {
                            Err(_) => "not-found",
                            Ok(_) => "shutdown",
                        }
                    ));
                }
            }
            if started.elapsed() > self.options.gone_timeout {
                return Verdict::Failed(format!(
                    "still there {}s after destroy ({})",
                    self.options.gone_timeout.as_secs(),
                    match status {
                        Ok(s) => s.state.as_str().to_string(),
                        Err(e) => e.to_string(),
                    }
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Destroys what the check made and did not destroy; what fails to go
    /// is named in the report.
    async fn clean_up(&mut self) {
        for cloud_id in std::mem::take(&mut self.to_clean) {
            if let Err(e) = self.driver.destroy(self.target, &cloud_id).await {
                tracing::warn!(%cloud_id, error = %e, "the check could not destroy what it made");
                self.report.left_behind.push(cloud_id);
            }
        }
    }
}

/// Whether `version` is `MAJOR.MINOR.PATCH` with an optional suffix.
fn is_semver(version: &str) -> bool {
    let core = version.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.parse::<u64>().is_ok())
}

/// Whether `address` is an IP address or a host name.
fn is_address(address: &str) -> bool {
    address.parse::<IpAddr>().is_ok()
        || (!address.is_empty()
            && address.len() <= 253
            && address.split('.').all(|label| {
                !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            }))
}

#[cfg(test)]
mod tests;
