//! Event streams at scale: `SUBSCRIBERS` Server-Sent Event streams of one
//! infrastructure open on an in-process `occopus serve` (loopback) while it
//! scales up by 100 instances on the dummy cloud. Prints whether every
//! subscriber got every event the engine emitted for the infra, the delivery
//! latency (from the event's time to its arrival at the subscriber)
//! percentiles, and the peak RSS of this process (the service and the
//! clients together). `cargo bench --bench sse_fanout [-- --quick]`
//! (`--quick`: 50 subscribers).

use occopus_service::{ServerLimits, Service, ServiceSettings};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const NODES: &str = "'node_def:sim':
  - resource: {type: dummy, create_latency: 0.05, boot_time: 0.1}
    health_check: {ping: false}
";
const INFRA: &str = "infra_name: fanout
nodes:
  - {name: web, type: sim, scaling: {min: 10, max: 200}}
";

/// What one subscriber saw: (event time, arrival time), ms since the epoch.
type Seen = Arc<Mutex<Vec<(i64, i64)>>>;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Reads one event stream, noting each instance event's time and arrival.
async fn subscribe(response: reqwest::Response, seen: Seen) {
    let mut response = response;
    let mut pending = String::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let arrived = now_ms();
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = pending.find("\n\n") {
            let block: String = pending.drain(..end + 2).collect();
            // The event's time, found without parsing the whole event (a
            // thousand clients share this process's two cores with the
            // service).
            let time = block
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .and_then(|d| d.split("\"time_ms\":").nth(1))
                .and_then(|t| t.split([',', '}']).next())
                .and_then(|t| t.parse::<i64>().ok());
            if let Some(time) = time {
                seen.lock().unwrap().push((time, arrived));
            }
        }
    }
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn bench(subscribers: usize) {
    let dir = tempfile::tempdir().unwrap();
    let occopus = occopus_benches::open(dir.path(), 1024).await;
    let mut engine_events = occopus.subscribe();
    let settings = ServiceSettings {
        maintain_interval: Duration::from_millis(200),
        ..ServiceSettings::default()
    };
    let service = Service::new(occopus, settings);
    let limits = ServerLimits {
        max_connections: subscribers + 64,
        ..ServerLimits::default()
    };
    let (bound_tx, bound) = tokio::sync::oneshot::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(occopus_service::serve(
        service,
        "127.0.0.1:0".parse().unwrap(),
        limits,
        Duration::from_secs(60),
        move |address| {
            let _ = bound_tx.send(address);
        },
        async move {
            let _ = stopped.await;
        },
    ));
    let base = format!("http://{}", bound.await.unwrap());
    let client = reqwest::Client::new();
    let post =
        |path: &str, body: &'static str| client.post(format!("{base}{path}")).body(body).send();
    post("/nodedefs", NODES).await.unwrap();
    let created: serde_json::Value = post("/infrastructures/", INFRA)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["infraid"].as_str().unwrap().to_owned();
    let ready = || async {
        let report: serde_json::Value = client
            .get(format!("{base}/infrastructures/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or_default();
        report["web"]["instances"]
            .as_object()
            .map_or(0, |i| i.values().filter(|i| i["state"] == "ready").count())
    };
    while ready().await < 10 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Every subscriber connected (its stream is subscribed once its answer's
    // head has come), then the scaling.
    let mut seen = Vec::with_capacity(subscribers);
    let mut readers = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        let response = client
            .get(format!("{base}/infrastructures/{id}/events"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let mine: Seen = Arc::default();
        seen.push(mine.clone());
        readers.push(tokio::spawn(subscribe(response, mine)));
    }
    while engine_events.try_recv().is_ok() {}
    let started = Instant::now();
    post(&format!("/infrastructures/{id}/scaleup/web/100"), "")
        .await
        .unwrap();
    // The engine's own count of the infra's events, until 110 are ready and
    // a quiet second has passed.
    let mut emitted = 0usize;
    let mut ready_count = 10;
    loop {
        match tokio::time::timeout(Duration::from_secs(1), engine_events.recv()).await {
            Ok(Ok(event)) if event.infra_id == id => {
                emitted += 1;
                if event.phase == occopus::engine::Phase::Ready {
                    ready_count += 1;
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("the bench's own subscription lagged: {e}"),
            Err(_) if ready_count >= 110 => break,
            Err(_) => assert!(started.elapsed() < Duration::from_secs(60), "never scaled"),
        }
    }
    let scaled = started.elapsed();
    let counts: Vec<usize> = seen.iter().map(|s| s.lock().unwrap().len()).collect();
    let mut latencies: Vec<i64> = seen
        .iter()
        .flat_map(|s| {
            s.lock()
                .unwrap()
                .iter()
                .map(|(t, a)| a - t)
                .collect::<Vec<_>>()
        })
        .collect();
    latencies.sort_unstable();
    let all = counts.iter().all(|c| *c == emitted);
    println!(
        "{subscribers} subscribers, scale-up by 100 in {:.2} s: {emitted} events emitted; \
         received per subscriber min {} max {} (every subscriber got every event: {all}); \
         delivery latency p50 {} ms, p99 {} ms, max {} ms over {} deliveries; peak RSS {:.0} MiB \
         (service and clients in this process)",
        scaled.as_secs_f64(),
        counts.iter().min().unwrap(),
        counts.iter().max().unwrap(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().unwrap(),
        latencies.len(),
        occopus_benches::peak_rss_mib()
    );
    assert!(all, "a subscriber missed events: {counts:?}");
    let _ = stop.send(());
    for reader in readers {
        reader.abort();
    }
    let _ = server.await;
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(bench(if quick { 50 } else { 1000 }));
}
