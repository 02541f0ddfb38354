//! Stopping a build, destroy or maintenance gracefully: no new cloud calls
//! start, calls under way finish and are recorded.

use std::sync::Arc;
use tokio::sync::watch;

/// Asks a running build or destroy to stop: no new cloud calls start, calls
/// under way finish and are recorded.
#[derive(Debug, Clone)]
pub struct StopHandle(Arc<watch::Sender<bool>>);

/// The receiving side of a [`StopHandle`].
#[derive(Debug, Clone)]
pub struct StopSignal(watch::Receiver<bool>);

impl StopHandle {
    /// A new handle and its signal.
    pub fn new() -> (StopHandle, StopSignal) {
        let (sender, receiver) = watch::channel(false);
        (StopHandle(Arc::new(sender)), StopSignal(receiver))
    }

    /// Asks to stop.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

impl StopSignal {
    /// A signal that never fires.
    pub fn never() -> StopSignal {
        StopHandle::new().1
    }

    /// A signal that fires when `a` or `b` does.
    pub fn either(a: &StopSignal, b: &StopSignal) -> StopSignal {
        let (handle, signal) = StopHandle::new();
        if a.is_stopped() || b.is_stopped() {
            handle.stop();
            return signal;
        }
        let (mut a, mut b) = (a.clone(), b.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = a.stopped() => handle.stop(),
                () = b.stopped() => handle.stop(),
                // Nobody listens any more.
                () = handle.0.closed() => {}
            }
        });
        signal
    }

    /// Whether a stop was asked for.
    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once a stop is asked for (never, if the handle is gone
    /// without asking).
    pub async fn stopped(&mut self) {
        if self.0.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
