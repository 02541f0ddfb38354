//! What the check found, promise by promise.

use serde::Serialize;
use std::fmt;

/// One promise of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Promise {
    Describe,
    Schema,
    ValidateOffline,
    ValidateErrors,
    Create,
    CreateIdempotent,
    StatusTransitions,
    Addresses,
    ListByTag,
    UnknownId,
    Unauthorized,
    Destroy,
    DestroyIdempotent,
}

impl Promise {
    /// The promise's name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Promise::Describe => "describe",
            Promise::Schema => "schema",
            Promise::ValidateOffline => "validate-offline",
            Promise::ValidateErrors => "validate-errors",
            Promise::Create => "create",
            Promise::CreateIdempotent => "create-idempotent",
            Promise::StatusTransitions => "status-transitions",
            Promise::Addresses => "addresses",
            Promise::ListByTag => "list-by-tag",
            Promise::UnknownId => "unknown-id",
            Promise::Unauthorized => "unauthorized",
            Promise::Destroy => "destroy",
            Promise::DestroyIdempotent => "destroy-idempotent",
        }
    }
}

/// How a promise fared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "verdict", content = "detail")]
pub enum Verdict {
    /// Kept; what was seen.
    Passed(String),
    /// Broken; what was seen and why it matters.
    Failed(String),
    /// Does not apply to this driver or resource; why.
    NotApplicable(String),
    /// Not checked, because an earlier promise it needs failed.
    Skipped(String),
}

impl Verdict {
    fn label(&self) -> &'static str {
        match self {
            Verdict::Passed(_) => "passed",
            Verdict::Failed(_) => "FAILED",
            Verdict::NotApplicable(_) => "n/a",
            Verdict::Skipped(_) => "skipped",
        }
    }

    fn detail(&self) -> &str {
        match self {
            Verdict::Passed(d)
            | Verdict::Failed(d)
            | Verdict::NotApplicable(d)
            | Verdict::Skipped(d) => d,
        }
    }
}

/// One promise and its verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PromiseResult {
    /// The promise.
    pub promise: Promise,
    /// How it fared.
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// The whole check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// The driver, as it describes itself (`name version`).
    pub driver: String,
    /// Every promise, in the order checked.
    pub results: Vec<PromiseResult>,
    /// What the check could not clean up (cloud ids), if anything.
    pub left_behind: Vec<String>,
}

impl Report {
    /// Whether no promise failed and nothing was left behind.
    pub fn passed(&self) -> bool {
        self.left_behind.is_empty()
            && !self
                .results
                .iter()
                .any(|r| matches!(r.verdict, Verdict::Failed(_)))
    }

    /// The verdict of one promise, if it was reached.
    pub fn verdict(&self, promise: Promise) -> Option<&Verdict> {
        self.results
            .iter()
            .find(|r| r.promise == promise)
            .map(|r| &r.verdict)
    }

    pub(crate) fn add(&mut self, promise: Promise, verdict: Verdict) {
        self.results.push(PromiseResult { promise, verdict });
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "conformance of driver {}:", self.driver)?;
        for result in &self.results {
            writeln!(
                f,
                "  {:<8} {:<19} {}",
                result.verdict.label(),
                result.promise.as_str(),
                result.verdict.detail()
            )?;
        }
        for cloud_id in &self.left_behind {
            writeln!(
                f,
                "  LEFT BEHIND: {cloud_id} could not be destroyed; destroy it by hand"
            )?;
        }
        let count = |label: &str| {
            self.results
                .iter()
                .filter(|r| r.verdict.label() == label)
                .count()
        };
        write!(
            f,
            "{} passed, {} failed, {} not applicable, {} skipped",
            count("passed"),
            count("FAILED"),
            count("n/a"),
            count("skipped")
        )
    }
}
