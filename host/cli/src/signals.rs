//! Ctrl-C: the first stops the operation gracefully (calls under way finish
//! and are recorded), a second quits at once with 130, saying how to go on.

use crate::output::errln;

use crate::error::CliError;
use occopus::engine::{StopHandle, StopSignal};
use occopus::types::ErrorCode;

/// Listens for Ctrl-C; the returned signal fires at the first.
pub fn stop_on_ctrl_c(how_to_go_on: &'static str) -> Result<StopSignal, CliError> {
    use tokio::signal::unix::{SignalKind, signal};
    let (stop, stopped) = StopHandle::new();
    let mut interrupts = signal(SignalKind::interrupt()).map_err(|e| {
        CliError::ended(
            ErrorCode::Internal,
            format!("cannot listen for Ctrl-C: {e}"),
        )
    })?;
    tokio::spawn(async move {
        if interrupts.recv().await.is_some() {
            errln!(
                "stopping: calls under way finish and are recorded; press Ctrl-C again to quit at once"
            );
            stop.stop();
            if interrupts.recv().await.is_some() {
                errln!("quitting; {how_to_go_on}");
                std::process::exit(130);
            }
        }
    });
    Ok(stopped)
}
