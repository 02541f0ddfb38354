//! The HTTP/1 accept loop of occopus's servers (the REST service, the local
//! cloud), with the limits that keep slow or hostile clients from holding
//! them (axum's own `serve` has none of them):
//!
//! - a request head (request line and headers) must arrive within
//!   [`ServerLimits::header_read_timeout`], which also closes a keep-alive
//!   connection idle that long (hyper's header-read timer runs while it
//!   waits for the next request);
//! - a head larger than [`ServerLimits::max_header_bytes`] is answered 431;
//! - at most [`ServerLimits::max_connections`] connections are open; one
//!   more is closed at once, so a flood cannot exhaust file descriptors.
//!
//! Closing is lingering: the socket is shut for writing and what the client
//! still sends is read and dropped for a moment, so that an answer such as
//! 431, sent before the client finished sending, is not destroyed by the
//! TCP reset that closing on unread data causes.

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// How long a closing connection's unread input is drained, and how much.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 4 << 20;
/// How long shutdown waits for requests in flight (an event stream never ends).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The limits of [`serve`]; `occopus serve` has a flag for each.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Time a client has to send a request's head.
    pub header_read_timeout: Duration,
    /// The largest request head, in bytes.
    pub max_header_bytes: usize,
    /// Connections open at once.
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 << 10,
            max_connections: 512,
        }
    }
}

/// Serves `router` on `listener` under `limits` until `shutdown` completes,
/// then gives requests in flight [`SHUTDOWN_GRACE`] to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // hyper's smallest read buffer is 8 KiB; the head must fit in it.
        .max_buf_size(limits.max_header_bytes.max(8192));
    let open = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            tracing::warn!(
                "{} connections are open: closing a new one",
                limits.max_connections
            );
            continue;
        };
        // Streamed answers (event streams) are small writes that must leave
        // at once, not wait (Nagle) for the previous one's acknowledgement,
        // which the client may delay by up to 40 ms.
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(Lingering(Some(stream)));
        let connection = http.serve_connection(io, TowerToHyperService::new(router.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // An error here is the client's (a malformed request, a reset).
            let _ = connection.await;
            drop(permit);
        });
    }
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
}

/// A connection that closes lingering (see the module's header).
struct Lingering(Option<TcpStream>);

impl Lingering {
    fn stream(&mut self) -> &mut TcpStream {
        self.0
            .as_mut()
            .expect("a connection is used only until dropped")
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let (Some(mut stream), Ok(runtime)) =
            (self.0.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        runtime.spawn(async move {
            let _ = stream.shutdown().await;
            let _ = tokio::time::timeout(LINGER, async {
                let mut buffer = vec![0; 16 << 10];
                let mut drained = 0;
                while drained < LINGER_BYTES {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => drained += n,
                    }
                }
            })
            .await;
        });
    }
}

impl AsyncRead for Lingering {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(self.get_mut().stream()).poll_read(cx, buf)
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(self.get_mut().stream()).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(self.get_mut().stream()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(self.get_mut().stream()).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(self.get_mut().stream()).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.as_ref().is_some_and(TcpStream::is_write_vectored)
    }
}
