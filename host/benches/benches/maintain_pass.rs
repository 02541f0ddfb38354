//! One maintenance pass over a large infrastructure, on the dummy driver:
//! every instance's status observed (a sandboxed driver call each), its health
//! recorded, the plan computed. Prints the time per pass and the peak RSS of
//! this process. `cargo bench --bench maintain_pass [-- --quick]` (`--quick`:
//! 1,000 instances instead of 10,000).

use occopus::engine::{BuildOptions, ErrorPolicy, LeasePolicy, StopSignal, Upkeep};
use occopus::model::Sources;
use std::fmt::Write;
use std::time::{Duration, Instant};

const NODES: usize = 10;

fn write_files(dir: &std::path::Path, instances: usize) -> Sources {
    let per_node = instances / NODES;
    let mut infra = format!("infra_name: maintain-{instances}\nnodes:\n");
    for node in 0..NODES {
        writeln!(
            infra,
            "  - {{name: n{node}, type: sim, scaling: {{min: {per_node}, max: {}}}}}",
            per_node * 2
        )
        .unwrap();
    }
    let definitions =
        "'node_def:sim':\n  - resource: {type: dummy}\n    health_check: {ping: false}\n";
    occopus_benches::write_sources(dir, &infra, definitions)
}

async fn bench(instances: usize) {
    let dir = tempfile::tempdir().unwrap();
    let sources = write_files(dir.path(), instances);
    let occopus = occopus_benches::open(dir.path(), 1024).await;
    let started = Instant::now();
    let report = occopus
        .build(
            &sources,
            BuildOptions {
                infra_id: Some("bench".into()),
                rollback: false,
                stop: StopSignal::never(),
                lease: LeasePolicy::no_wait("bench"),
            },
        )
        .await
        .unwrap();
    assert!(report.succeeded(), "the build did not complete");
    println!(
        "built {instances} instances in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let upkeep = Upkeep {
        interval: Duration::from_secs(10),
        policy: ErrorPolicy::Stop,
        stop: StopSignal::never(),
        lease: LeasePolicy::no_wait("bench"),
    };
    let mut times = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let pass = occopus.maintain_pass("bench", None, &upkeep).await.unwrap();
        times.push(started.elapsed().as_secs_f64());
        assert_eq!(pass.observed, instances, "every instance is observed");
        assert!(pass.plan.is_empty(), "a healthy infra needs no change");
    }
    let text: Vec<String> = times.iter().map(|t| format!("{t:.3}")).collect();
    println!(
        "maintenance pass over {instances} instances: {} s (3 passes), {:.0} µs per instance, peak RSS {:.0} MiB",
        text.join(" / "),
        times.iter().copied().fold(f64::INFINITY, f64::min) * 1e6 / instances as f64,
        occopus_benches::peak_rss_mib()
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(bench(if quick { 1_000 } else { 10_000 }));
}
