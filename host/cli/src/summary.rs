//! Summaries that stay short whatever the number of instances: counts by
//! phase per node, and failures grouped by their reason with the first few
//! instances named. A build of 100,000 instances must not print 100,000
//! lines, nor one line of 100,000 reasons.

use occopus::engine::Phase;
use std::collections::BTreeMap;

/// How many instances a failure group names before "and N more".
const NAMED_PER_REASON: usize = 3;
/// How many distinct reasons are spelt out before "and N other failures".
const REASONS_SHOWN: usize = 5;

/// Instances counted by node, then by phase (in life order).
#[derive(Debug, Default)]
pub struct PhaseCounts(BTreeMap<String, BTreeMap<Phase, usize>>);

impl PhaseCounts {
    /// Counts `instances`, given as (node, phase).
    pub fn of<'a>(instances: impl Iterator<Item = (&'a str, Phase)>) -> Self {
        let mut counts = PhaseCounts::default();
        for (node, phase) in instances {
            *counts
                .0
                .entry(node.to_string())
                .or_default()
                .entry(phase)
                .or_default() += 1;
        }
        counts
    }

    /// One line per node: `web: 37 creating, 12 ready, 2 failed`.
    pub fn lines(&self) -> impl Iterator<Item = String> + '_ {
        self.0.iter().map(|(node, phases)| {
            let counts: Vec<String> = phases
                .iter()
                .map(|(phase, n)| format!("{n} {}", phase.as_str()))
                .collect();
            format!("{node}: {}", counts.join(", "))
        })
    }
}

/// Failures given as (instance id, reason), grouped by reason in the order
/// first seen: `bad-1-x: it broke` for one, `37 instances (bad-1-x, bad-2-y,
/// bad-3-z and 34 more): it broke` for many; at most [`REASONS_SHOWN`]
/// reasons, then how many failures the others hold.
pub fn grouped_failures<'a>(failures: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for (instance, reason) in failures {
        match groups.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, instances)) => instances.push(instance),
            None => groups.push((reason, vec![instance])),
        }
    }
    let mut parts: Vec<String> = groups
        .iter()
        .take(REASONS_SHOWN)
        .map(|(reason, instances)| match instances.as_slice() {
            [one] => format!("{one}: {reason}"),
            many => {
                let named = many[..many.len().min(NAMED_PER_REASON)].join(", ");
                let more = match many.len().saturating_sub(NAMED_PER_REASON) {
                    0 => String::new(),
                    n => format!(" and {n} more"),
                };
                format!("{} instances ({named}{more}): {reason}", many.len())
            }
        })
        .collect();
    let others: usize = groups
        .iter()
        .skip(REASONS_SHOWN)
        .map(|(_, instances)| instances.len())
        .sum();
    if others > 0 {
        parts.push(format!(
            "and {others} other failure(s) with {} other reason(s); `occopus info -i ID` lists them",
            groups.len() - REASONS_SHOWN
        ));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_grouped_by_reason_with_the_first_few_named() {
        let many: Vec<(String, &str)> = (1..=37)
            .map(|i| (format!("bad-{i}"), "quota exceeded"))
            .chain([("odd-1".to_string(), "it broke")])
            .collect();
        let text = grouped_failures(many.iter().map(|(id, why)| (id.as_str(), *why)));
        assert_eq!(
            text,
            "37 instances (bad-1, bad-2, bad-3 and 34 more): quota exceeded; odd-1: it broke"
        );
    }

    #[test]
    fn past_five_reasons_the_rest_are_counted() {
        let reasons: Vec<(String, String)> = (1..=8)
            .map(|i| (format!("n-{i}"), format!("reason {i}")))
            .collect();
        let text = grouped_failures(reasons.iter().map(|(a, b)| (a.as_str(), b.as_str())));
        assert!(text.starts_with("n-1: reason 1; "), "{text}");
        assert!(!text.contains("reason 6"), "{text}");
        assert!(
            text.ends_with(
                "and 3 other failure(s) with 3 other reason(s); `occopus info -i ID` lists them"
            ),
            "{text}"
        );
    }

    #[test]
    fn phases_are_counted_per_node_in_life_order() {
        let counts = PhaseCounts::of(
            [
                ("web", Phase::Ready),
                ("web", Phase::Creating),
                ("db", Phase::Failed),
                ("web", Phase::Ready),
            ]
            .into_iter(),
        );
        let lines: Vec<String> = counts.lines().collect();
        assert_eq!(lines, ["db: 1 failed", "web: 1 creating, 2 ready"]);
    }
}
