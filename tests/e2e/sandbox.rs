//! A hostile driver tries one sandbox rule per test. Each attempt must end in a
//! clear error naming the plugin and the rule, and the next call of a
//! well-behaved plugin on the same runtime must still succeed.

use crate::common::{load_driver, settings, target, wasm};
use occopus::plugin_host::PluginOverrides;
use occopus::plugin_host::{DriverPlugin, PluginRuntime, RuntimeError, Violation};
use occopus::types::{CloudState, ContractErrorKind, Credentials};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Fixture {
    hostile: DriverPlugin,
    dummy: DriverPlugin,
}

/// A runtime with a 1 s deadline, and 256 MiB for the hostile plugin so that it
/// can build a 100 MB answer.
async fn fixture() -> Fixture {
    let mut settings = settings(&crate::common::shared_cache_dir());
    settings.limits.call_deadline_secs = 1.0;
    settings.settings.insert(
        "hostile".into(),
        PluginOverrides {
            memory_limit_mib: Some(256),
            ..PluginOverrides::default()
        },
    );
    let runtime = PluginRuntime::new(&settings).unwrap();
    let hostile = load_driver(&runtime, occopus_test_plugins::hostile()).await;
    let dummy = load_driver(&runtime, wasm("occopus_driver_dummy.wasm")).await;
    Fixture { hostile, dummy }
}

impl Fixture {
    /// Runs one attack; the error must name the plugin and the rule.
    async fn attack(&self, endpoint: &str, attack: &str) -> RuntimeError {
        let error = self
            .hostile
            .status(
                &target(json!({"type": "hostile", "endpoint": endpoint})),
                attack,
            )
            .await
            .expect_err("the attack must fail");
        let message = error.to_string();
        eprintln!("{attack}: {message}");
        assert!(message.contains("plugin `hostile`"), "{message}");
        let rule = error.violation().expect("a sandbox violation").rule();
        assert!(message.contains(&format!("[rule: {rule}]")), "{message}");
        error
    }

    /// The host is still up: a well-behaved plugin answers.
    async fn well_behaved_call_succeeds(&self) {
        let status = self
            .dummy
            .status(&target(json!({"type": "dummy"})), "node-1@0")
            .await
            .unwrap();
        assert_eq!(status.state, CloudState::Running);
        let status = self
            .hostile
            .status(&target(json!({"type": "hostile"})), "nothing")
            .await
            .unwrap();
        assert_eq!(status.detail.as_deref(), Some("well-behaved"));
    }
}

#[tokio::test]
async fn reading_a_host_file_is_refused() {
    let f = fixture().await;
    let error = f.attack("", "read-file:/etc/passwd").await;
    assert_eq!(error.violation(), Some(&Violation::Filesystem));
    assert!(!error.to_string().contains("root:"), "{error}");
    f.well_behaved_call_succeeds().await;
}

/// A one-shot HTTP server on loopback that counts its connections.
async fn http_server(body: impl Into<String>) -> (u16, Arc<AtomicUsize>) {
    let body: String = body.into();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        }
    });
    (port, connections)
}

#[tokio::test]
async fn http_to_a_host_off_the_allow_list_is_refused() {
    let f = fixture().await;
    let (port, connections) = http_server("secret").await;
    // The resource's endpoint is another port: this one is not allowed.
    let error = f
        .attack(
            &format!("http://127.0.0.1:{}", port.wrapping_add(1)),
            &format!("http:http://127.0.0.1:{port}/"),
        )
        .await;
    assert_eq!(
        error.violation(),
        Some(&Violation::OutboundHost {
            host: format!("127.0.0.1:{port}")
        })
    );
    let message = error.to_string();
    assert!(message.contains("plugins.allowed_hosts"), "{message}");
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "no request may leave"
    );
    f.well_behaved_call_succeeds().await;
}

#[tokio::test]
async fn http_to_the_endpoint_host_is_allowed() {
    let f = fixture().await;
    let (port, connections) = http_server("hello from the cloud").await;
    let status = f
        .hostile
        .status(
            &target(json!({"type": "hostile", "endpoint": format!("http://127.0.0.1:{port}")})),
            &format!("http:http://127.0.0.1:{port}/api"),
        )
        .await
        .unwrap();
    assert_eq!(status.detail.as_deref(), Some("hello from the cloud"));
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn opening_a_socket_is_refused() {
    let f = fixture().await;
    let (port, connections) = http_server("never").await;
    let error = f.attack("", &format!("tcp:127.0.0.1:{port}")).await;
    // std binds an ephemeral local address first; that is refused already.
    assert_eq!(
        error.violation(),
        Some(&Violation::Socket {
            attempt: "TCP bind to 0.0.0.0:0".into()
        })
    );
    assert_eq!(connections.load(Ordering::SeqCst), 0);
    f.well_behaved_call_succeeds().await;
}

#[tokio::test]
async fn waiting_past_the_deadline_is_stopped() {
    let f = fixture().await;
    let error = f.attack("", "sleep:3600").await;
    assert!(
        matches!(error.violation(), Some(Violation::Deadline { .. })),
        "{error}"
    );
    f.well_behaved_call_succeeds().await;
}

#[tokio::test]
async fn an_endless_loop_is_stopped_at_the_deadline() {
    let f = fixture().await;
    let error = f.attack("", "loop").await;
    assert!(
        matches!(error.violation(), Some(Violation::Deadline { .. })),
        "{error}"
    );
    f.well_behaved_call_succeeds().await;
}

#[tokio::test]
async fn allocating_a_gibibyte_is_refused() {
    let f = fixture().await;
    let error = f.attack("", "alloc:1073741824").await;
    assert_eq!(
        error.violation(),
        Some(&Violation::Memory {
            limit_bytes: 256 << 20
        })
    );
    f.well_behaved_call_succeeds().await;
}

#[tokio::test]
async fn a_trap_is_reported_as_a_crash() {
    let f = fixture().await;
    let error = f.attack("", "trap").await;
    assert!(
        matches!(error.violation(), Some(Violation::Trap { .. })),
        "{error}"
    );
    // The plugin's own panic message is part of the report.
    assert!(
        error
            .to_string()
            .contains("hostile plugin panics on purpose"),
        "{error}"
    );
    f.well_behaved_call_succeeds().await;
}

#[tokio::test]
async fn a_100_megabyte_answer_is_refused() {
    let f = fixture().await;
    let error = f.attack("", "huge-result:100000000").await;
    assert_eq!(
        error.violation(),
        Some(&Violation::ResultTooLarge {
            bytes: 100_000_000,
            limit_bytes: 16 << 20
        })
    );
    f.well_behaved_call_succeeds().await;
}

#[tokio::test]
async fn plugins_see_no_environment_variables() {
    let f = fixture().await;
    // The test process has PATH, HOME and more; none may reach the plugin.
    assert!(std::env::vars().next().is_some());
    let status = f
        .hostile
        .status(&target(json!({"type": "hostile"})), "env")
        .await
        .unwrap();
    assert_eq!(status.detail.as_deref(), Some("[]"));
}

/// Collects everything logged on this thread.
#[derive(Clone, Default)]
struct LogBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl LogBuffer {
    /// Captures every log line of this thread until the guard is dropped.
    fn capture() -> (LogBuffer, tracing::subscriber::DefaultGuard) {
        let logs = LogBuffer::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn credentials_never_reach_logs_or_errors() {
    let (logs, _guard) = LogBuffer::capture();

    let f = fixture().await;
    let mut target = target(json!({"type": "hostile"}));
    target.credentials = Credentials::new([
        ("accesskey".to_owned(), "AKIDEXAMPLE".to_owned()),
        ("secretkey".to_owned(), "wJalrXUtnFEMI/K7MDENG".to_owned()),
    ]);
    let error = f.hostile.status(&target, "leak").await.unwrap_err();
    let contract = error.contract_error().expect("the plugin's own error");
    assert_eq!(contract.kind, ContractErrorKind::Unauthorized);

    let logs = logs.text();
    assert!(logs.contains("credentials: [\"***\", \"***\"]"), "{logs}");
    for shown in [error.to_string(), logs, format!("{target:?}")] {
        assert!(!shown.contains("AKIDEXAMPLE"), "{shown}");
        assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
    }
}

/// A cloud whose endpoint answers with a catalog naming a second service.
async fn cloud_with_a_catalog() -> (String, String, Arc<AtomicUsize>) {
    let (service, service_connections) = http_server("from the compute service").await;
    let service_url = format!("http://127.0.0.1:{service}/v2.1");
    let (endpoint, _) =
        http_server(format!(r#"{{"catalog": [{{"url": "{service_url}"}}]}}"#)).await;
    (
        format!("http://127.0.0.1:{endpoint}"),
        service_url,
        service_connections,
    )
}

#[tokio::test]
async fn a_host_named_by_the_endpoint_is_reached_in_its_session_only() {
    let f = fixture().await;
    let (endpoint, service_url, service_connections) = cloud_with_a_catalog().await;
    let call = async |password: &str, attack: String| {
        let mut target = target(json!({"type": "hostile", "endpoint": endpoint}));
        target.credentials = Credentials::new([("password".to_owned(), password.to_owned())]);
        f.hostile.status(&target, &attack).await
    };
    let refused = |answer: Result<_, RuntimeError>| {
        let message = answer.expect_err("refused").to_string();
        assert!(
            message.contains("did not appear in a successful answer"),
            "{message}"
        );
        assert!(message.contains("plugins.allowed_hosts"), "{message}");
    };
    let reached = |answer: Result<occopus::types::InstanceStatus, RuntimeError>| {
        assert_eq!(
            answer.unwrap().detail.as_deref(),
            Some("from the compute service")
        );
    };

    // Claimed before the endpoint named it: refused, nothing sent.
    refused(call("password-a", format!("discover:{service_url}")).await);
    assert_eq!(service_connections.load(Ordering::SeqCst), 0);
    // A URL the catalog does not name stays refused after reading it.
    refused(call("password-a", "catalog-discover:http://127.0.0.1:9/".into()).await);
    // Named in the endpoint's answer: reached.
    reached(call("password-a", format!("catalog-discover:{service_url}")).await);
    // A later call of the same session (a cached catalog) may reach it again...
    reached(call("password-a", format!("discover:{service_url}")).await);
    // ... but not a call with other credentials, nor a call that does not ask
    // (the grant is per call).
    refused(call("password-b", format!("discover:{service_url}")).await);
    let error = call("password-a", format!("http:{service_url}"))
        .await
        .unwrap_err();
    assert!(
        matches!(error.violation(), Some(Violation::OutboundHost { .. })),
        "{error}"
    );
    assert_eq!(service_connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn session_values_are_masked_like_credentials() {
    let (logs, _guard) = LogBuffer::capture();

    let f = fixture().await;
    let target = target(json!({"type": "hostile", "endpoint": "http://127.0.0.1:9"}));
    let error = f
        .hostile
        .status(&target, "session-leak:gAAAAABsecret")
        .await
        .unwrap_err();
    let logs = logs.text();
    assert!(logs.contains("token: ***"), "{logs}");
    for shown in [error.to_string(), logs] {
        assert!(!shown.contains("token-of-gAAAAABsecret"), "{shown}");
    }
}
