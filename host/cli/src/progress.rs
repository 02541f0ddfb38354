//! Live progress of a build or destroy on stderr: on a terminal, one line per
//! instance redrawn in place with its phase and time in it; otherwise plain
//! lines with the time since the start, one per change.

use crate::output::errln;

use occopus::engine::{Event, Phase};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// The task printing progress.
pub struct Progress {
    task: tokio::task::JoinHandle<()>,
    done: tokio::sync::oneshot::Sender<()>,
}

struct Line {
    node: String,
    phase: Phase,
    since: Instant,
    detail: Option<String>,
}

impl Progress {
    /// Starts printing the events of `events`.
    pub fn start(events: broadcast::Receiver<Event>) -> Self {
        let (done, finished) = tokio::sync::oneshot::channel();
        let live = std::io::stderr().is_terminal();
        let task = tokio::spawn(run(events, finished, live));
        Progress { task, done }
    }

    /// Prints what is left and stops.
    pub async fn finish(self) {
        let _ = self.done.send(());
        let _ = self.task.await;
    }
}

async fn run(
    mut events: broadcast::Receiver<Event>,
    mut finished: tokio::sync::oneshot::Receiver<()>,
    live: bool,
) {
    let started = Instant::now();
    let mut lines: BTreeMap<String, Line> = BTreeMap::new();
    let mut drawn = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => {
                    if !live {
                        let detail = event.detail.as_deref().map(|d| format!(" {d}")).unwrap_or_default();
                        errln!("[{:>8.3}s] {} {} {}{detail}", started.elapsed().as_secs_f64(), event.node, event.instance_id, event.phase.as_str());
                    }
                    let key = if event.instance_id.is_empty() { format!("{} (new)", event.node) } else { event.instance_id.clone() };
                    lines.insert(key, Line { node: event.node, phase: event.phase, since: Instant::now(), detail: event.detail });
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    if !live {
                        errln!("[{:>8.3}s] ({n} progress events skipped)", started.elapsed().as_secs_f64());
                    }
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = tick.tick(), if live => drawn = redraw(&lines, drawn),
            _ = &mut finished => break,
        }
    }
    while let Ok(event) = events.try_recv() {
        if !live {
            errln!(
                "[{:>8.3}s] {} {} {}",
                started.elapsed().as_secs_f64(),
                event.node,
                event.instance_id,
                event.phase.as_str()
            );
        }
    }
    if live {
        redraw(&lines, drawn);
    }
}

/// Redraws the table over the previous one; returns its height.
fn redraw(lines: &BTreeMap<String, Line>, previous: usize) -> usize {
    let mut out = std::io::stderr().lock();
    if previous > 0 {
        let _ = write!(out, "\x1b[{previous}A");
    }
    for (instance, line) in lines {
        let detail = line.detail.as_deref().unwrap_or("");
        let _ = writeln!(
            out,
            "\x1b[2K  {:<20} {:<28} {:<10} {:>6.1}s  {detail}",
            line.node,
            instance,
            line.phase.as_str(),
            line.since.elapsed().as_secs_f64()
        );
    }
    let _ = out.flush();
    lines.len()
}
