//! Stop requests: Ctrl-C (SIGINT), SIGTERM (systemd, `docker stop`, a CI
//! cancelling a job) and SIGHUP (the terminal went away) all ask the same
//! graceful stop: calls under way finish and are recorded, nothing new
//! starts. A second signal of any of them quits at once. The exit code is
//! 128 plus the number of the first signal: 130 for Ctrl-C, 143 for SIGTERM,
//! 129 for SIGHUP, as shells report a process those signals ended.

use crate::output::errln;

use crate::error::CliError;
use occopus::engine::{StopHandle, StopSignal};
use occopus::types::ErrorCode;
use std::sync::atomic::{AtomicI32, Ordering};
use tokio::signal::unix::{SignalKind, signal};

/// The number of the first stop signal received, 0 before one is.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// The number of the first stop signal received, if one was.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::Relaxed) {
        0 => None,
        number => Some(number),
    }
}

/// Listens for SIGINT, SIGTERM and SIGHUP; the returned signal fires at the
/// first of them, and a second quits at once, saying `how_to_go_on`.
pub fn stop_on_signals(how_to_go_on: &'static str) -> Result<StopSignal, CliError> {
    let listen = |kind: SignalKind, name: &str| {
        signal(kind).map_err(|e| {
            CliError::ended(
                ErrorCode::Internal,
                format!("cannot listen for {name}: {e}"),
            )
        })
    };
    let mut interrupt = listen(SignalKind::interrupt(), "Ctrl-C (SIGINT)")?;
    let mut terminate = listen(SignalKind::terminate(), "SIGTERM")?;
    let mut hangup = listen(SignalKind::hangup(), "SIGHUP")?;
    let (stop, stopped) = StopHandle::new();
    tokio::spawn(async move {
        let mut next = async || -> (i32, &'static str) {
            tokio::select! {
                _ = interrupt.recv() => (2, "Ctrl-C"),
                _ = terminate.recv() => (15, "SIGTERM"),
                _ = hangup.recv() => (1, "SIGHUP"),
            }
        };
        let (number, name) = next().await;
        RECEIVED.store(number, Ordering::Relaxed);
        errln!(
            "stopping on {name}: calls under way finish and are recorded; \
             press Ctrl-C (or send the signal) again to quit at once"
        );
        stop.stop();
        let (number, _) = next().await;
        errln!("quitting; {how_to_go_on}");
        std::process::exit(128 + number);
    });
    Ok(stopped)
}
