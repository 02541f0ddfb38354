//! The benchmarks of occopus (`benches/`: each a binary that prints its
//! figures and asserts nothing), and what they share: files on disk, an
//! occopus on the dummy cloud with limits wide enough not to be what is
//! measured, peak RSS.

use occopus::model::Sources;
use occopus::{Config, Occopus, Options};
use std::path::Path;

/// Writes the description and node definitions into `dir`.
pub fn write_sources(dir: &Path, infra: &str, definitions: &str) -> Sources {
    std::fs::write(dir.join("infra.yaml"), infra).unwrap();
    std::fs::write(dir.join("nodes.yaml"), definitions).unwrap();
    Sources {
        infra: dir.join("infra.yaml"),
        nodes: vec![dir.join("nodes.yaml")],
        ..Sources::default()
    }
}

/// The state database a bench uses: `$OCCOPUS_BENCH_STATE` when set (a
/// file or a PostgreSQL URL, to measure that back-end), else a file in `dir`.
pub fn state_location(dir: &Path) -> std::path::PathBuf {
    std::env::var_os("OCCOPUS_BENCH_STATE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.join("state.db"))
}

/// An occopus with its state in `dir`; `per_endpoint` create/destroy calls
/// at once (the dummy cloud has no rate limit).
pub async fn open(dir: &Path, per_endpoint: usize) -> Occopus {
    let mut config = Config::default();
    config.plugins.dir = Some(dir.join("plugins"));
    config.plugins.cache_dir = Some(std::env::temp_dir().join("occopus-bench-cache"));
    config.engine.max_concurrent_per_endpoint = per_endpoint;
    config.plugins.limits.max_concurrent_calls = (per_endpoint.max(1024) * 2) as u32;
    Occopus::open(Options {
        config,
        state: Some(state_location(dir)),
        ..Options::default()
    })
    .await
    .unwrap()
}

/// This process's peak resident memory, in MiB.
pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}
