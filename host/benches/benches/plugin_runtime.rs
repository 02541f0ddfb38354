//! Benchmark of the plugin runtime. Prints its figures; asserts nothing.
//!
//! `cargo bench --bench plugin_runtime` (add `-- --quick` for a short run, or
//! `-- --calls-only` to run only part 1, e.g. under a profiler):
//! 1. a warm `status` call on the dummy driver, instantiation included (p50, p99);
//! 2. the RSS with 1,000 `create` calls in flight at once;
//! 3. loading every first-party plugin from the compiled cache, and without it;
//! 4. the same warm call on the Python example driver, if it has been built.

use occopus::plugin_host::{Plugin, PluginCatalog, PluginOrigin, PluginRuntime, PluginSettings};
use occopus::types::{CloudTarget, CreateRequest, InstanceTags, Payload};
use occopus_builtin_plugins::BUILTINS;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let calls_only = std::env::args().any(|a| a == "--calls-only");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(quick, calls_only));
}

async fn run(quick: bool, calls_only: bool) {
    let work = tempfile::tempdir().unwrap();
    let cache_dir = work.path().join("cache");
    let settings = PluginSettings {
        cache_dir: Some(cache_dir.clone()),
        dir: Some(work.path().join("no-plugins")),
        ..PluginSettings::default()
    };
    println!(
        "occopus plugin runtime benchmark{}",
        if quick { " (quick)" } else { "" }
    );

    let plugin_runtime = PluginRuntime::new(&settings).unwrap();
    let catalog = PluginCatalog::discover(&plugin_runtime, &settings, BUILTINS)
        .await
        .unwrap();
    let dummy = catalog.driver("dummy").unwrap().clone();

    // 1. Warm status calls.
    let target = CloudTarget::new(
        serde_json::json!({"type": "dummy"})
            .as_object()
            .unwrap()
            .clone(),
    );
    let calls = if quick { 2_000 } else { 50_000 };
    let latencies = measure(calls, async || {
        dummy.status(&target, "web-1@0").await.unwrap();
    })
    .await;
    report("dummy status, warm (instantiate + call)", &latencies);
    if calls_only {
        return;
    }

    // 2. 1,000 calls in flight: each create waits 1 s inside the plugin.
    let in_flight = 1_000;
    let resource = serde_json::json!({"type": "dummy", "create_latency": 1.0});
    let before = rss_kib("VmRSS:");
    let started = Instant::now();
    let creates = (0..in_flight).map(|i| {
        let dummy = dummy.clone();
        let request = CreateRequest {
            instance_id: format!("node-{i}"),
            target: CloudTarget::new(resource.as_object().unwrap().clone()),
            payload: Payload::None,
            tags: InstanceTags {
                infra_id: "bench".into(),
                infra_name: "bench".into(),
                node_name: "node".into(),
            },
        };
        tokio::spawn(async move { dummy.create(&request).await.unwrap() })
    });
    let handles: Vec<_> = creates.collect();
    // Halfway through the 1 s every call is in flight: sample the RSS then.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = rss_kib("VmRSS:");
    for handle in futures::future::join_all(handles).await {
        handle.unwrap();
    }
    println!(
        "{in_flight} creates in flight (1 s each): all done in {:.2} s; RSS with all in \
         flight {} MiB (before: {} MiB)",
        started.elapsed().as_secs_f64(),
        during / 1024,
        before / 1024
    );

    // 3. Loading all first-party plugins, from the cache and without it.
    let rounds = if quick { 5 } else { 30 };
    let cached = measure(rounds, async || {
        let runtime = PluginRuntime::new(&settings).unwrap();
        PluginCatalog::discover(&runtime, &settings, BUILTINS)
            .await
            .unwrap();
    })
    .await;
    report(
        "load all first-party plugins, cached (engine included)",
        &cached,
    );
    let shared_engine = measure(rounds, async || {
        PluginCatalog::discover(&plugin_runtime, &settings, BUILTINS)
            .await
            .unwrap();
    })
    .await;
    report(
        "load all first-party plugins, cached (engine reused)",
        &shared_engine,
    );
    let uncached = measure(rounds.min(5), async || {
        let empty = tempfile::tempdir().unwrap();
        let settings = PluginSettings {
            cache_dir: Some(empty.path().to_owned()),
            ..settings.clone()
        };
        let runtime = PluginRuntime::new(&settings).unwrap();
        PluginCatalog::discover(&runtime, &settings, BUILTINS)
            .await
            .unwrap();
    })
    .await;
    report(
        "load all first-party plugins, no cache (compile)",
        &uncached,
    );

    // 4. The Python example driver, if built.
    let python =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/target/python/static.wasm");
    if python.is_file() {
        python_calls(&plugin_runtime, python, if quick { 200 } else { 2_000 }).await;
    } else {
        println!("python driver: not built (scripts/build-python-example), skipped");
    }
}

async fn python_calls(runtime: &PluginRuntime, path: PathBuf, calls: usize) {
    let bytes = std::fs::read(&path).unwrap();
    let started = Instant::now();
    let Plugin::Driver(driver) = runtime.load(PluginOrigin::File(path), bytes).await.unwrap()
    else {
        panic!("not a driver")
    };
    println!(
        "python driver: loaded in {:.1} ms (first load compiles)",
        started.elapsed().as_secs_f64() * 1000.0
    );
    let target = CloudTarget::new(
        serde_json::json!({"type": "static", "addresses": ["127.102.0.10"]})
            .as_object()
            .unwrap()
            .clone(),
    );
    let latencies = measure(calls, async || {
        driver.status(&target, "n=127.102.0.10").await.unwrap();
    })
    .await;
    report("python status, warm (instantiate + call)", &latencies);
}

/// Runs `f` `n` times after a short warm-up and returns the sorted latencies.
async fn measure(n: usize, mut f: impl AsyncFnMut()) -> Vec<Duration> {
    for _ in 0..(n / 10).clamp(1, 100) {
        f().await;
    }
    let mut latencies = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        f().await;
        latencies.push(started.elapsed());
    }
    latencies.sort();
    latencies
}

fn report(what: &str, sorted: &[Duration]) {
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let (p50, p99) = (us(at(0.50)), us(at(0.99)));
    if p50 >= 10_000.0 {
        println!(
            "{what}: n={} p50 {:.1} ms p99 {:.1} ms",
            sorted.len(),
            p50 / 1000.0,
            p99 / 1000.0
        );
    } else {
        println!("{what}: n={} p50 {p50:.1} us p99 {p99:.1} us", sorted.len());
    }
}

/// A memory figure of this process from `/proc/self/status`, in KiB
/// (`VmRSS:` now, `VmHWM:` the peak so far).
fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
