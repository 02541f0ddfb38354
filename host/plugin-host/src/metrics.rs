//! What the plugin runtime measures of its calls, as Prometheus metric
//! families (prometheus-client) that the REST service exposes at `/metrics`:
//! each call's duration by plugin and function, and failed calls by the
//! contract's error case or the sandbox rule they broke.

use crate::error::RuntimeError;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// A plugin's function.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// The plugin's name (`dummy`, `ec2`, ...).
    pub plugin: String,
    /// The function called (`create`, `status`, ...).
    pub function: String,
}

/// A plugin's function and how a call of it failed.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// The plugin's name.
    pub plugin: String,
    /// The function called.
    pub function: String,
    /// The contract's error case (`transient`, `unauthorized`, ...) or the
    /// sandbox rule broken (`deadline`, `memory`, ...).
    pub kind: String,
}

/// The buckets of a call's duration: 0.5 ms to about 2 minutes, by fours.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 4.0, 10))
}

/// The families the runtime's calls are counted in (cheap to clone: the
/// clones share the counts).
#[derive(Clone)]
pub struct CallMetrics {
    /// Every call's duration, in seconds.
    pub durations: Family<CallLabels, Histogram, fn() -> Histogram>,
    /// Failed calls.
    pub failures: Family<FailureLabels, Counter>,
}

impl Default for CallMetrics {
    fn default() -> Self {
        CallMetrics {
            durations: Family::new_with_constructor(duration_histogram),
            failures: Family::default(),
        }
    }
}

impl CallMetrics {
    /// Counts a call of `function` of `plugin` that took `seconds` and
    /// ended with `outcome`.
    pub(crate) fn observe<T>(
        &self,
        plugin: &str,
        function: &str,
        seconds: f64,
        outcome: &Result<T, RuntimeError>,
    ) {
        let call = CallLabels {
            plugin: plugin.to_owned(),
            function: function.to_owned(),
        };
        self.durations.get_or_create(&call).observe(seconds);
        if let Err(error) = outcome {
            let failure = FailureLabels {
                plugin: call.plugin,
                function: call.function,
                kind: error.to_call_error().kind.as_str().to_owned(),
            };
            self.failures.get_or_create(&failure).inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ContractError;
    use occopus_types::ContractErrorKind;
    use prometheus_client::registry::Registry;

    #[test]
    fn calls_are_timed_and_failures_counted_by_their_kind() {
        let metrics = CallMetrics::default();
        let throttled: Result<(), RuntimeError> = Err(RuntimeError::Plugin {
            plugin: "ec2".into(),
            operation: "create",
            error: ContractError {
                kind: ContractErrorKind::Transient,
                message: "throttled".into(),
            },
        });
        metrics.observe("ec2", "create", 0.002, &throttled);
        metrics.observe("ec2", "create", 0.3, &Ok::<(), RuntimeError>(()));
        let mut registry = Registry::default();
        registry.register("calls", "", metrics.durations.clone());
        registry.register("failures", "", metrics.failures.clone());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(r#"calls_count{plugin="ec2",function="create"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"failures_total{plugin="ec2",function="create",kind="transient"} 1"#),
            "{text}"
        );
    }
}
