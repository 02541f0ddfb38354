//! Event streams at scale: 1,000 Server-Sent Event streams of one
//! infrastructure open on an in-process `occopus serve` (loopback) while it
//! scales up by 100 instances on the dummy cloud. The subscribers run in a
//! child process (this binary again, with `--clients`), so that the service's
//! memory is measured alone and the clients are not counted as the service's.
//! Prints whether every subscriber got every event the engine emitted for the
//! infra, the delivery latency (from the event's time to its arrival at the
//! subscriber) percentiles, and the peak RSS of the service's process and of
//! the clients'. `cargo bench --bench sse_fanout [-- --quick]` (`--quick`: 50
//! subscribers).

use occopus_service::{ServerLimits, Service, ServiceSettings};
use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

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

/// Reads one event stream from `socket` (its request sent), noting each
/// event's time and arrival. The subscriber is lean on purpose: it looks for
/// each event's data (`{"time_ms":`, the event's first field) without
/// parsing HTTP's chunks or the JSON (the server writes whole events per
/// chunk, so a chunk's framing never splits one), so that a thousand of them
/// do not take the two cores from the service they measure.
async fn subscribe(mut socket: tokio::net::TcpStream, seen: Seen) {
    const KEY: &[u8] = b"{\"time_ms\":";
    let mut buffer = vec![0u8; 64 << 10];
    let mut kept = 0;
    loop {
        let read = match socket.read(&mut buffer[kept..]).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        let arrived = now_ms();
        let filled = kept + read;
        let mut at = 0;
        let mut cut = None;
        let mut mine = seen.lock().unwrap();
        while let Some(found) = buffer[at..filled].iter().position(|b| *b == b'{') {
            let key = at + found;
            let start = key + KEY.len();
            if start > filled {
                cut = Some(key);
                break;
            }
            if &buffer[key..start] != KEY {
                at = key + 1;
                continue;
            }
            let digits = buffer[start..filled]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            if start + digits == filled {
                cut = Some(key);
                break;
            }
            let time = std::str::from_utf8(&buffer[start..start + digits])
                .ok()
                .and_then(|t| t.parse().ok());
            if let Some(time) = time {
                mine.push((time, arrived));
            }
            at = start + digits;
        }
        drop(mine);
        // An event's start cut by this read is read again with the rest.
        let keep_from = cut.unwrap_or(filled);
        buffer.copy_within(keep_from..filled, 0);
        kept = filled - keep_from;
    }
}

/// The CPU time this process used so far (user and system), in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command's closing parenthesis; utime and stime
    // are the 14th and 15th of the line, in ticks of 1/100 s.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks = |n: usize| {
        fields
            .get(n)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (ticks(11) + ticks(12)) / 100.0
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
    let mut clients = Command::new(std::env::current_exe().unwrap())
        .args([
            "--clients".to_string(),
            format!("{base}/infrastructures/{id}/events"),
            subscribers.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut told = std::io::BufReader::new(clients.stdout.take().unwrap());
    let mut line = String::new();
    told.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "connected", "the clients could not connect");
    while engine_events.try_recv().is_ok() {}
    let started = Instant::now();
    let cpu_before = cpu_seconds();
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
    let cpu = cpu_seconds() - cpu_before;
    drop(clients.stdin.take());
    line.clear();
    told.read_line(&mut line).unwrap();
    let seen: serde_json::Value = serde_json::from_str(&line).unwrap();
    clients.wait().unwrap();
    let counts: Vec<usize> = serde_json::from_value(seen["counts"].clone()).unwrap();
    let mut latencies: Vec<i64> = serde_json::from_value(seen["latencies"].clone()).unwrap();
    latencies.sort_unstable();
    let all = counts.iter().all(|c| *c == emitted);
    println!(
        "{subscribers} subscribers, scale-up by 100 in {:.2} s: {emitted} events emitted; \
         received per subscriber min {} max {} (every subscriber got every event: {all}); \
         delivery latency p50 {} ms, p99 {} ms, max {} ms over {} deliveries; peak RSS of the \
         service's process {:.0} MiB, of the clients' {:.0} MiB; CPU time during the scaling: \
         service {cpu:.2} s, clients {:.2} s",
        scaled.as_secs_f64(),
        counts.iter().min().unwrap(),
        counts.iter().max().unwrap(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().unwrap(),
        latencies.len(),
        occopus_benches::peak_rss_mib(),
        seen["peak_rss_mib"].as_f64().unwrap_or(f64::NAN),
        seen["cpu_seconds"].as_f64().unwrap_or(f64::NAN)
    );
    assert!(all, "a subscriber missed events: {counts:?}");
    let _ = stop.send(());
    let _ = server.await;
}

/// The child process: opens `subscribers` streams of `url`, says
/// "connected", reads until its standard input closes, then prints what each
/// subscriber saw as one JSON line.
async fn clients(url: String, subscribers: usize) {
    use tokio::io::AsyncWriteExt;
    let (address, path) = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split_once('/'))
        .unwrap();
    let request =
        format!("GET /{path} HTTP/1.1\r\nHost: {address}\r\nAccept: text/event-stream\r\n\r\n");
    let mut seen = Vec::with_capacity(subscribers);
    let mut readers = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
        socket.set_nodelay(true).unwrap();
        socket.write_all(request.as_bytes()).await.unwrap();
        // The answer's head, read a byte at a time so that no event is
        // read with it.
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(socket.read_u8().await.unwrap());
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let mine: Seen = Arc::default();
        seen.push(mine.clone());
        readers.push(tokio::spawn(subscribe(socket, mine)));
    }
    println!("connected");
    std::io::stdout().flush().unwrap();
    let cpu_before = cpu_seconds();
    tokio::task::spawn_blocking(|| std::io::stdin().lines().count())
        .await
        .unwrap();
    for reader in readers {
        reader.abort();
    }
    let counts: Vec<usize> = seen.iter().map(|s| s.lock().unwrap().len()).collect();
    let latencies: Vec<i64> = seen
        .iter()
        .flat_map(|s| {
            s.lock()
                .unwrap()
                .iter()
                .map(|(t, a)| a - t)
                .collect::<Vec<_>>()
        })
        .collect();
    let seen = serde_json::json!({
        "counts": counts,
        "latencies": latencies,
        "peak_rss_mib": occopus_benches::peak_rss_mib(),
        "cpu_seconds": cpu_seconds() - cpu_before,
    });
    println!("{seen}");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--clients") {
        let url = args[at + 1].clone();
        let subscribers = args[at + 2].parse().unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        return runtime.block_on(clients(url, subscribers));
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let quick = args.iter().any(|a| a == "--quick");
    runtime.block_on(bench(if quick { 50 } else { 1000 }));
}
