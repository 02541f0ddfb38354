//! Build makespan against the critical-path bound, on the dummy driver.
//!
//! N nodes in 10 dependency levels (level i needs level i-1), each instance
//! taking 100 ms to create and 200 ms to boot, so no build can finish before
//! 10 x 300 ms = 3 s. Prints makespan / bound (target <= 1.10) and the peak RSS
//! of this process. `cargo bench --bench engine_build [-- --quick]`: 1,000,
//! 5,000 and 10,000 nodes (`--quick`: 1,000 only; `--nodes N`: N only).

use occopus::engine::{BuildOptions, DestroyOptions, LeasePolicy, StopSignal};
use occopus::model::Sources;
use std::fmt::Write;
use std::time::Instant;

const LEVELS: usize = 10;
const CREATE_S: f64 = 0.1;
const BOOT_S: f64 = 0.2;

fn write_files(dir: &std::path::Path, nodes: usize) -> Sources {
    let per_level = nodes / LEVELS;
    let mut infra = format!("infra_name: bench-{nodes}\nnodes:\n");
    for level in 0..LEVELS {
        writeln!(
            infra,
            "  - &L{level} {{name: level{level}, type: sim, scaling: {{min: {per_level}}}}}"
        )
        .unwrap();
    }
    infra.push_str("dependencies:\n");
    for level in 1..LEVELS {
        writeln!(infra, "  - [*L{level}, *L{}]", level - 1).unwrap();
    }
    let definitions = format!(
        "'node_def:sim':\n  - resource: {{type: dummy, create_latency: {CREATE_S}, boot_time: {BOOT_S}}}\n    health_check: {{ping: false}}\n"
    );
    occopus_benches::write_sources(dir, &infra, &definitions)
}

async fn bench(nodes: usize) {
    let dir = tempfile::tempdir().unwrap();
    let sources = write_files(dir.path(), nodes);
    // The dummy cloud has no rate limit: let a whole level be created at once.
    let occopus = occopus_benches::open(dir.path(), nodes / LEVELS).await;
    let mut events = occopus.subscribe();
    let timeline = tokio::spawn(async move {
        // Per level: first create started, last instance ready (ms); and
        // the events this subscriber fell too far behind to see.
        let mut levels = vec![(i64::MAX, 0i64, 0i64); LEVELS];
        let mut missed = 0;
        loop {
            let event = match events.recv().await {
                Ok(event) => event,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(count)) => {
                    missed += count;
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            };
            let level: usize = event.node.trim_start_matches("level").parse().unwrap_or(0);
            match event.phase {
                occopus::engine::Phase::Creating => {
                    levels[level].0 = levels[level].0.min(event.time_ms);
                    levels[level].2 = levels[level].2.max(event.time_ms);
                }
                occopus::engine::Phase::Ready => {
                    levels[level].1 = levels[level].1.max(event.time_ms)
                }
                occopus::engine::Phase::Destroying => break,
                _ => {}
            }
        }
        (levels, missed)
    });
    let started = Instant::now();
    let report = occopus
        .build(
            &sources,
            BuildOptions {
                infra_id: None,
                rollback: false,
                stop: StopSignal::never(),
                lease: LeasePolicy::no_wait("bench"),
            },
        )
        .await
        .unwrap();
    let makespan = started.elapsed().as_secs_f64();
    if let Some(not_ready) = report
        .instances
        .iter()
        .find(|i| i.phase != occopus::engine::Phase::Ready)
    {
        panic!("the build did not complete: {not_ready:?}");
    }
    let bound = LEVELS as f64 * (CREATE_S + BOOT_S);
    println!(
        "build {nodes:>5} nodes, {LEVELS} levels: makespan {makespan:.3} s, bound {bound:.1} s, ratio {:.3}, peak RSS {:.0} MiB",
        makespan / bound,
        occopus_benches::peak_rss_mib()
    );
    let started = Instant::now();
    occopus
        .destroy(
            &report.infra_id,
            None,
            DestroyOptions {
                stop: StopSignal::never(),
                lease: LeasePolicy::no_wait("bench"),
            },
        )
        .await
        .unwrap();
    println!(
        "destroy {nodes:>5} nodes: {:.3} s",
        started.elapsed().as_secs_f64()
    );
    let (levels, missed) = timeline.await.unwrap();
    let origin = levels[0].0;
    let spans: Vec<String> = levels
        .iter()
        .map(|(first, last, last_create)| {
            format!(
                "{}/{}/{}",
                first - origin,
                last_create - origin,
                last - origin
            )
        })
        .collect();
    println!(
        "  per level, ms from the first create (first create / last create / last ready): {}{}",
        spans.join(" "),
        if missed > 0 {
            format!(" ({missed} events not seen: the timeline may be short)")
        } else {
            String::new()
        }
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sizes: Vec<usize> = match args.iter().position(|a| a == "--nodes") {
        Some(at) => vec![args[at + 1].parse().expect("--nodes N")],
        None if args.iter().any(|a| a == "--quick") => vec![1000],
        None => vec![1000, 5000, 10_000],
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        for nodes in sizes {
            bench(nodes).await;
        }
    });
}
