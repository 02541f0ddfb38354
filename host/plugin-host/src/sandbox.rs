//! What a plugin call may touch: the per-call store state and its policies.
//!
//! Each call gets a fresh [`SandboxState`] in a fresh store, so nothing leaks
//! between calls, nodes or credentials. The state gives the plugin:
//! - a WASI context with no preopened directories, no environment variables, no
//!   arguments, no stdin, no name lookups, and every socket address refused (and
//!   remembered, so the error can name it);
//! - `wasi:http` whose requests pass [`OutboundPolicy`]: only hosts on the call's
//!   allow-list are reached, others are refused and remembered so the host can
//!   name them in the error;
//! - a memory limiter that refuses growth past the plugin's limit and remembers
//!   that it did;
//! - logging that masks any credential value of the call and any value of
//!   its session;
//! - the call's [`Session`] (values kept between calls, discovered hosts),
//!   with the successful answers of its endpoint recorded to check what the
//!   plugin says it discovered;
//! - a stderr that keeps only its last few KiB, so that a crash can be reported
//!   with the plugin's own last words (a Rust panic message, a Python traceback).

use crate::allow_list::{AllowList, Authority};
use crate::error::Violation;
use crate::session::{EndpointAnswers, Session};
use crate::unix_bridge;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

/// Table elements a plugin may grow a table to.
const MAX_TABLE_ELEMENTS: usize = 100_000;
/// How much of a plugin's stderr is kept.
const STDERR_TAIL_BYTES: usize = 4096;

/// The limits and permissions of one call.
#[derive(Debug, Clone)]
pub struct CallPolicy {
    /// Hosts the call may send HTTP requests to.
    pub allow_list: Arc<AllowList>,
    /// Whether the plugin may use a `unix://` endpoint at all.
    pub unix_endpoints: bool,
    /// The socket behind [`unix_bridge::BRIDGE_HOST`] for this call, when its
    /// resource's endpoint is `unix://PATH` and `unix_endpoints` is set.
    pub unix_socket: Option<Arc<PathBuf>>,
    /// The most linear memory the plugin may have.
    pub memory_limit_bytes: u64,
    /// How long the call may take.
    pub deadline: Duration,
    /// The session of the call's endpoint and credentials, if it has an endpoint.
    pub session: Option<Arc<Session>>,
}

/// The store data of one plugin call.
pub struct SandboxState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    outbound: OutboundPolicy,
    /// Socket addresses the plugin tried to use (every one is refused).
    refused_sockets: Arc<Mutex<Vec<String>>>,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) log: LogContext,
    pub(crate) stderr: StderrTail,
    /// Set when the plugin asked for the filesystem.
    pub(crate) filesystem_attempted: bool,
}

impl SandboxState {
    /// A fresh sandbox for one call.
    pub fn new(policy: &CallPolicy, mut log: LogContext) -> Self {
        log.session = policy.session.clone();
        let refused_sockets = Arc::new(Mutex::new(Vec::new()));
        let record = refused_sockets.clone();
        let mut wasi = WasiCtx::builder();
        // TCP and UDP stay "enabled" so that every attempt reaches the address
        // check, which refuses it and records the address for the error.
        wasi.allow_tcp(true)
            .allow_udp(true)
            .allow_ip_name_lookup(false)
            .socket_addr_check(move |address, usage| {
                if let Ok(mut refused) = record.lock() {
                    refused.push(format!("{} {address}", socket_use(usage)));
                }
                Box::pin(async { false })
            });
        let stderr = StderrTail::default();
        wasi.stderr(stderr.clone());
        SandboxState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            outbound: OutboundPolicy {
                allow_list: policy.allow_list.clone(),
                unix_socket: policy.unix_socket.clone(),
                refused: Vec::new(),
                endpoint: policy.session.as_ref().and_then(|s| s.endpoint().cloned()),
                endpoint_answers: EndpointAnswers::default(),
            },
            refused_sockets,
            limiter: MemoryLimiter {
                limit_bytes: policy.memory_limit_bytes,
                exceeded: false,
            },
            log,
            stderr,
            filesystem_attempted: false,
        }
    }

    /// The first rule the call broke, judged from what the sandbox refused.
    pub fn violation(&self) -> Option<Violation> {
        if let Some(host) = self.outbound.refused.first() {
            if host.starts_with(unix_bridge::BRIDGE_HOST) {
                return Some(Violation::UnixEndpoint);
            }
            return Some(Violation::OutboundHost { host: host.clone() });
        }
        if let Some(address) = self
            .refused_sockets
            .lock()
            .ok()
            .and_then(|r| r.first().cloned())
        {
            return Some(Violation::Socket { attempt: address });
        }
        if self.limiter.exceeded {
            return Some(Violation::Memory {
                limit_bytes: self.limiter.limit_bytes,
            });
        }
        if self.filesystem_attempted {
            return Some(Violation::Filesystem);
        }
        None
    }
}

impl crate::bindings::session::Host for SandboxState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.log.session.as_ref().and_then(|s| s.get(&key)))
    }

    fn put(
        &mut self,
        key: String,
        value: String,
        ttl_seconds: u32,
    ) -> wasmtime::Result<Result<(), String>> {
        Ok(match &self.log.session {
            Some(session) => session.put(&key, value, Duration::from_secs(ttl_seconds.into())),
            None => Err(NO_SESSION.into()),
        })
    }

    fn allow_discovered(&mut self, url: String) -> wasmtime::Result<Result<(), String>> {
        let Some(session) = &self.log.session else {
            return Ok(Err(NO_SESSION.into()));
        };
        Ok(session
            .check_discovered(&url, &self.outbound.endpoint_answers)
            .map(|authority| {
                self.outbound.allow_list = Arc::new(self.outbound.allow_list.with(&authority));
            }))
    }
}

/// Why a call without an endpoint has no session.
const NO_SESSION: &str =
    "this call has no session: its resource has no `endpoint` URL (or the call is `validate`)";

impl WasiView for SandboxState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for SandboxState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

/// Says what a socket use is, for errors.
fn socket_use(usage: wasmtime_wasi::sockets::SocketAddrUse) -> &'static str {
    use wasmtime_wasi::sockets::SocketAddrUse as Use;
    match usage {
        Use::TcpBind => "TCP bind to",
        Use::TcpListen => "TCP listen on",
        Use::TcpAccept => "TCP accept from",
        Use::TcpConnect => "TCP connect to",
        Use::UdpBind => "UDP bind to",
        Use::UdpSend => "UDP send to",
        Use::UdpReceive => "UDP receive from",
    }
}

/// Decides which outbound HTTP requests leave the sandbox.
struct OutboundPolicy {
    allow_list: Arc<AllowList>,
    unix_socket: Option<Arc<PathBuf>>,
    /// `host:port` of every refused request, in order.
    refused: Vec<String>,
    /// The resource's endpoint, whose successful answers are recorded.
    endpoint: Option<Authority>,
    endpoint_answers: EndpointAnswers,
}

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<
        dyn Future<
                Output = wasmtime_wasi_http::Result<(
                    http::Response<wasmtime_wasi_http::WasiBody>,
                    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
                )>,
            > + Send,
    > {
        drop(fut);
        let uri = request.uri();
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let host = uri.host().unwrap_or_default().to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        if host == unix_bridge::BRIDGE_HOST
            && let Some(socket) = self.unix_socket.clone()
        {
            return Box::new(async move {
                let (response, io) = unix_bridge::send(&socket, request, options).await?;
                Ok((response, io))
            });
        }
        if !self.allow_list.allows(&host, port) {
            self.refused.push(format!("{host}:{port}"));
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        let recorder = (self.endpoint.as_ref() == Some(&Authority::of_request(&host, port)))
            .then(|| self.endpoint_answers.clone());
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            let response = match recorder {
                Some(answers) if response.status().is_success() => response.map(|body| {
                    body.map_frame(move |frame| {
                        if let Some(data) = frame.data_ref() {
                            answers.record(data);
                        }
                        frame
                    })
                    .boxed_unsync()
                }),
                _ => response.map(BodyExt::boxed_unsync),
            };
            Ok((response, Box::new(io) as Box<dyn Future<Output = _> + Send>))
        })
    }
}

/// Refuses memory growth past the plugin's limit, and remembers doing so.
pub(crate) struct MemoryLimiter {
    limit_bytes: u64,
    exceeded: bool,
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.limit_bytes {
            self.exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// Who is logging, and what must never appear in a log line.
#[derive(Debug, Clone)]
pub struct LogContext {
    /// The plugin's name.
    pub plugin: Arc<str>,
    /// What the call is about (a node instance id), if anything.
    pub subject: Option<String>,
    /// Credential values of the call, masked in everything the plugin says.
    pub secrets: Vec<String>,
    /// The call's session, whose values are masked too (the sandbox sets it
    /// from the call's policy).
    pub session: Option<Arc<Session>>,
}

impl LogContext {
    /// Replaces every credential value and session value in `text` with `***`.
    pub fn mask(&self, text: &str) -> String {
        let session_values = self
            .session
            .as_ref()
            .map(|s| s.values())
            .unwrap_or_default();
        self.secrets
            .iter()
            .chain(&session_values)
            .filter(|s| !s.is_empty())
            .fold(text.to_owned(), |text, secret| {
                text.replace(secret.as_str(), "***")
            })
    }
}

/// The last [`STDERR_TAIL_BYTES`] bytes a plugin wrote to stderr.
#[derive(Clone, Default)]
pub(crate) struct StderrTail(Arc<Mutex<Vec<u8>>>);

impl StderrTail {
    /// The last non-empty lines written, joined with `; `.
    pub fn last_words(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            // Rust's panic hint about backtraces says nothing about the plugin.
            .filter(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
            .collect();
        lines[lines.len().saturating_sub(3)..].join("; ")
    }
}

impl wasmtime_wasi::cli::IsTerminal for StderrTail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for StderrTail {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for StderrTail {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if let Ok(mut tail) = self.0.lock() {
            tail.extend_from_slice(bytes);
            let excess = tail.len().saturating_sub(STDERR_TAIL_BYTES);
            tail.drain(..excess);
        }
        Poll::Ready(Ok(bytes.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
