//! Running one operation of the library for a Python caller. The library is
//! async (tokio); a Python call blocks: the operation runs on a runtime of
//! its own threads while the calling thread waits with the GIL released, so
//! other Python threads run meanwhile. The waiting thread wakes every 100 ms
//! to let Python handle signals: Ctrl-C (KeyboardInterrupt) asks the
//! operation to stop as the command line's first Ctrl-C does (calls under
//! way finish and are recorded, nothing new starts), and is raised once it
//! has; a second one abandons the wait at once (the state stays resumable:
//! every cloud call's intent is recorded before it is made). Events go to
//! the caller's callback on the calling thread, in order.

use crate::objects::Event;
use occopus::engine::{Event as EngineEvent, StopHandle, StopSignal};
use pyo3::prelude::*;
use std::future::Future;
use std::sync::OnceLock;
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::Duration;
use tokio::sync::broadcast;

/// How often the waiting thread looks for signals.
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// The runtime every operation runs on (two workers: the library's work is
/// I/O and sandboxed plugin calls).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("occopus")
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

enum Message<T> {
    Event(EngineEvent),
    Done(T),
}

/// The next event of `events`; never, without a subscription.
async fn next_event(events: &mut Option<broadcast::Receiver<EngineEvent>>) -> EngineEvent {
    loop {
        match events.as_mut() {
            None => std::future::pending::<()>().await,
            Some(receiver) => match receiver.recv().await {
                Ok(event) => return event,
                // Events a slow callback missed are skipped, not fatal.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => *events = None,
            },
        }
    }
}

/// Runs `operation` (given the stop signal it must obey) to its end,
/// handing each event of `events` to `on_event`. An exception from
/// `on_event` stops the operation like Ctrl-C and is raised once it ended.
pub fn run<T, F>(
    py: Python<'_>,
    events: Option<broadcast::Receiver<EngineEvent>>,
    on_event: Option<&Bound<'_, PyAny>>,
    operation: impl FnOnce(StopSignal) -> F,
) -> PyResult<T>
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    let (stop, signal) = StopHandle::new();
    let (sender, receiver) = channel();
    let future = operation(signal);
    let task = runtime().spawn(async move {
        let mut events = events;
        tokio::pin!(future);
        loop {
            tokio::select! {
                biased;
                result = &mut future => {
                    // The events sent before the end go before it.
                    while let Some(event) = events.as_mut().and_then(|r| r.try_recv().ok()) {
                        let _ = sender.send(Message::Event(event));
                    }
                    let _ = sender.send(Message::Done(result));
                    return;
                }
                event = next_event(&mut events) => {
                    let _ = sender.send(Message::Event(event));
                }
            }
        }
    });
    // (Waited on with the GIL released: the receiver must cross threads.)
    let receiver = std::sync::Mutex::new(receiver);
    let mut raised: Option<PyErr> = None;
    loop {
        let next = py.detach(|| {
            let receiver = receiver.lock().unwrap_or_else(|e| e.into_inner());
            receiver.recv_timeout(SIGNAL_CHECK)
        });
        match next {
            Ok(Message::Done(result)) => {
                return match raised {
                    Some(error) => Err(error),
                    None => Ok(result),
                };
            }
            Ok(Message::Event(event)) => {
                if let (Some(callback), None) = (on_event, &raised)
                    && let Err(error) = callback.call1((Event::from(event),))
                {
                    stop.stop();
                    raised = Some(error);
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if let Err(error) = py.check_signals() {
                    if raised.is_some() {
                        // A second interrupt: stop waiting.
                        task.abort();
                        return Err(error);
                    }
                    stop.stop();
                    raised = Some(error);
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(crate::errors::failure(
                    py,
                    occopus::types::ErrorCode::Internal,
                    "the operation ended without an answer (a panic in occopus: see the log)"
                        .into(),
                ));
            }
        }
    }
}
