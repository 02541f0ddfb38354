//! Live progress of a build or destroy on stderr, bounded whatever the
//! infrastructure's size:
//! - on a terminal (unless `TERM=dumb`): a table redrawn in place, one row
//!   per instance with its phase and time in it, each row cut to the
//!   terminal's width; when the rows do not fit its height, one row per node
//!   counting its instances by phase instead;
//! - otherwise (a log, a pipe, `TERM=dumb`): one timestamped line per change
//!   while the run has seen at most [`LOG_INSTANCES`] instances; past that, a
//!   line per node counting its instances by phase (at most every
//!   [`SUMMARY_EVERY`], and only when something changed), plus the first
//!   [`LOG_FAILURES_PER_NODE`] failures of each node as they happen;
//! - with `--progress json`: one JSON object per state change
//!   (`occopus.event.v1`, docs/json.md), every one of them, for programs.

use crate::output::errln;
use crate::summary::PhaseCounts;

use occopus::engine::{Event, Phase};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// Instances followed line by line in a log before it switches to summaries.
const LOG_INSTANCES: usize = 100;
/// How often a log in summary mode says where things are.
const SUMMARY_EVERY: Duration = Duration::from_secs(5);
/// Failures of one node logged one by one in summary mode (the rest are
/// counted, and the end of the command groups them by reason).
const LOG_FAILURES_PER_NODE: usize = 3;
/// The terminal's size when it cannot be asked (columns, rows).
const FALLBACK_SIZE: (usize, usize) = (80, 24);

/// How progress is shown (`--progress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// A live table on a terminal, else log lines.
    Auto,
    /// One JSON object per state change, for programs.
    Json,
}

/// The task printing progress.
pub struct Progress {
    task: tokio::task::JoinHandle<()>,
    done: tokio::sync::oneshot::Sender<()>,
}

/// One instance's row.
struct Row {
    node: String,
    phase: Phase,
    since: Instant,
    detail: Option<String>,
}

impl Progress {
    /// Starts printing the events of `events`, as `mode` says.
    pub fn start(events: broadcast::Receiver<Event>, mode: ProgressMode) -> Self {
        let (done, finished) = tokio::sync::oneshot::channel();
        let view: Box<dyn View> = match mode {
            ProgressMode::Json => Box::new(JsonLines),
            ProgressMode::Auto if crate::environment::live_progress() => {
                Box::new(Table { drawn: 0 })
            }
            ProgressMode::Auto => Box::new(Log::default()),
        };
        let task = tokio::spawn(run(events, finished, view));
        Progress { task, done }
    }

    /// Prints what is left and stops.
    pub async fn finish(self) {
        let _ = self.done.send(());
        let _ = self.task.await;
    }
}

/// Every instance's latest row, keyed by instance id (`NODE (new)` before
/// it has one).
type Rows = BTreeMap<String, Row>;

/// How progress is shown.
trait View: Send {
    /// An event arrived (already in `rows`).
    fn event(&mut self, started: Instant, event: &Event, rows: &Rows);
    /// `n` events were missed because printing fell behind.
    fn skipped(&mut self, started: Instant, n: u64);
    /// Time passed.
    fn tick(&mut self, started: Instant, rows: &Rows);
    /// The run ended.
    fn finish(&mut self, started: Instant, rows: &Rows);
    /// How often [`View::tick`] is due.
    fn period(&self) -> Duration;
}

async fn run(
    mut events: broadcast::Receiver<Event>,
    mut finished: tokio::sync::oneshot::Receiver<()>,
    mut view: Box<dyn View>,
) {
    let started = Instant::now();
    let mut rows = Rows::new();
    let mut tick = tokio::time::interval(view.period());
    let record = |event: Event, rows: &mut Rows, view: &mut Box<dyn View>| {
        let key = if event.instance_id.is_empty() {
            format!("{} (new)", event.node)
        } else {
            event.instance_id.clone()
        };
        rows.insert(
            key,
            Row {
                node: event.node.clone(),
                phase: event.phase,
                since: Instant::now(),
                detail: event.detail.clone(),
            },
        );
        view.event(started, &event, rows);
    };
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => record(event, &mut rows, &mut view),
                Err(broadcast::error::RecvError::Lagged(n)) => view.skipped(started, n),
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = tick.tick() => view.tick(started, &rows),
            _ = &mut finished => break,
        }
    }
    while let Ok(event) = events.try_recv() {
        record(event, &mut rows, &mut view);
    }
    view.finish(started, &rows);
}

/// A timestamped log line of one change: `[   1.204s] web web-1-ab12 ready 10.0.0.5`.
fn log_line(started: Instant, event: &Event) -> String {
    let detail = event
        .detail
        .as_deref()
        .map(|d| format!(" {d}"))
        .unwrap_or_default();
    format!(
        "[{:>8.3}s] {} {} {}{detail}",
        started.elapsed().as_secs_f64(),
        event.node,
        event.instance_id,
        event.phase.as_str()
    )
}

fn counts(rows: &Rows) -> PhaseCounts {
    PhaseCounts::of(rows.values().map(|row| (row.node.as_str(), row.phase)))
}

/// Progress as JSON lines: every event, as the engine emitted it.
struct JsonLines;

impl View for JsonLines {
    fn event(&mut self, _: Instant, event: &Event, _: &Rows) {
        let mut line = serde_json::json!({ "schema": "occopus.event.v1" });
        if let (Some(line), Ok(serde_json::Value::Object(event))) =
            (line.as_object_mut(), serde_json::to_value(event))
        {
            line.extend(event);
        }
        errln!("{line}");
    }

    fn skipped(&mut self, _: Instant, n: u64) {
        errln!(
            "{}",
            serde_json::json!({ "schema": "occopus.event.v1", "skipped": n })
        );
    }

    fn tick(&mut self, _: Instant, _: &Rows) {}

    fn finish(&mut self, _: Instant, _: &Rows) {}

    fn period(&self) -> Duration {
        Duration::from_secs(3600)
    }
}

/// Progress as a log (see the module's header).
#[derive(Default)]
struct Log {
    /// Whether the run outgrew line-by-line logging.
    summarising: bool,
    /// Whether anything changed since the last summary.
    changed: bool,
    /// Failures logged one by one, per node.
    failures_logged: HashMap<String, usize>,
}

impl Log {
    fn summary(&mut self, started: Instant, rows: &Rows) {
        if self.summarising && self.changed {
            for line in counts(rows).lines() {
                errln!("[{:>8.3}s] {line}", started.elapsed().as_secs_f64());
            }
            self.changed = false;
        }
    }
}

impl View for Log {
    fn event(&mut self, started: Instant, event: &Event, rows: &Rows) {
        if !self.summarising && rows.len() > LOG_INSTANCES {
            self.summarising = true;
            errln!(
                "[{:>8.3}s] more than {LOG_INSTANCES} instances: from here on, their count by phase every {}s and the first {LOG_FAILURES_PER_NODE} failures of each node",
                started.elapsed().as_secs_f64(),
                SUMMARY_EVERY.as_secs()
            );
        }
        self.changed = true;
        if !self.summarising {
            errln!("{}", log_line(started, event));
        } else if event.phase == Phase::Failed {
            let logged = self.failures_logged.entry(event.node.clone()).or_default();
            if *logged < LOG_FAILURES_PER_NODE {
                *logged += 1;
                errln!("{}", log_line(started, event));
            }
        }
    }

    fn skipped(&mut self, started: Instant, n: u64) {
        if !self.summarising {
            errln!(
                "[{:>8.3}s] ({n} progress events skipped)",
                started.elapsed().as_secs_f64()
            );
        }
    }

    fn tick(&mut self, started: Instant, rows: &Rows) {
        self.summary(started, rows);
    }

    fn finish(&mut self, started: Instant, rows: &Rows) {
        self.summary(started, rows);
    }

    fn period(&self) -> Duration {
        SUMMARY_EVERY
    }
}

/// Progress as a table redrawn in place on a terminal.
struct Table {
    /// Height of the table last drawn.
    drawn: usize,
}

impl Table {
    /// The rows to draw in `size` (columns, rows): one per instance when they
    /// fit, else one per node, else as many nodes as fit and how many more.
    fn lines(rows: &Rows, (columns, height): (usize, usize)) -> Vec<String> {
        // The last line stays free for the cursor, so that nothing scrolls.
        let room = height.saturating_sub(1).max(1);
        let lines: Vec<String> = if rows.len() <= room {
            rows.iter()
                .map(|(instance, row)| {
                    format!(
                        "  {:<20} {:<28} {:<10} {:>6.1}s  {}",
                        row.node,
                        instance,
                        row.phase.as_str(),
                        row.since.elapsed().as_secs_f64(),
                        row.detail.as_deref().unwrap_or("")
                    )
                })
                .collect()
        } else {
            let per_node: Vec<String> = counts(rows).lines().map(|l| format!("  {l}")).collect();
            if per_node.len() <= room {
                per_node
            } else {
                let shown = room.saturating_sub(1);
                let mut lines = per_node[..shown].to_vec();
                lines.push(format!("  ... and {} more nodes", per_node.len() - shown));
                lines
            }
        };
        lines.into_iter().map(|l| cut(&l, columns)).collect()
    }

    fn redraw(&mut self, rows: &Rows) {
        let lines = Table::lines(rows, terminal_size());
        let mut out = std::io::stderr().lock();
        if self.drawn > 0 {
            // Back to the table's first line, and clear what was below.
            let _ = write!(out, "\x1b[{}A\r\x1b[J", self.drawn);
        }
        for line in &lines {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
        self.drawn = lines.len();
    }
}

impl View for Table {
    fn event(&mut self, _: Instant, _: &Event, _: &Rows) {}

    fn skipped(&mut self, _: Instant, _: u64) {}

    fn tick(&mut self, _: Instant, rows: &Rows) {
        self.redraw(rows);
    }

    fn finish(&mut self, _: Instant, rows: &Rows) {
        self.redraw(rows);
    }

    fn period(&self) -> Duration {
        Duration::from_millis(250)
    }
}

/// `line` cut to `columns` characters (one left free: a full line makes some
/// terminals wrap the cursor).
fn cut(line: &str, columns: usize) -> String {
    let width = columns.saturating_sub(1).max(1);
    match line.char_indices().nth(width) {
        Some((end, _)) => line[..end].to_string(),
        None => line.to_string(),
    }
}

/// The terminal's (columns, rows), from stderr.
fn terminal_size() -> (usize, usize) {
    match rustix::termios::tcgetwinsize(std::io::stderr()) {
        Ok(size) if size.ws_col > 0 && size.ws_row > 0 => {
            (usize::from(size.ws_col), usize::from(size.ws_row))
        }
        _ => FALLBACK_SIZE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(nodes: &[(&str, usize)]) -> Rows {
        let mut rows = Rows::new();
        for (node, n) in nodes {
            for i in 0..*n {
                rows.insert(
                    format!("{node}-{i}"),
                    Row {
                        node: node.to_string(),
                        phase: if i % 2 == 0 {
                            Phase::Ready
                        } else {
                            Phase::Creating
                        },
                        since: Instant::now(),
                        detail: Some("x".repeat(300)),
                    },
                );
            }
        }
        rows
    }

    #[test]
    fn the_table_fits_the_terminal_whatever_the_size() {
        let few = Table::lines(&rows(&[("web", 3)]), (40, 24));
        assert_eq!(few.len(), 3);
        assert!(few.iter().all(|l| l.chars().count() <= 39), "{few:?}");

        let many = Table::lines(&rows(&[("web", 100_000), ("db", 1)]), (80, 24));
        assert_eq!(
            many,
            ["  db: 1 ready", "  web: 50000 creating, 50000 ready"]
        );

        let nodes: Vec<(String, usize)> = (0..50).map(|i| (format!("n{i:02}"), 2)).collect();
        let nodes: Vec<(&str, usize)> = nodes.iter().map(|(n, c)| (n.as_str(), *c)).collect();
        let crowded = Table::lines(&rows(&nodes), (80, 10));
        assert_eq!(crowded.len(), 9);
        assert_eq!(crowded[8], "  ... and 42 more nodes");
    }

    #[test]
    fn a_cut_keeps_whole_characters() {
        assert_eq!(cut("ééééé", 4), "ééé");
        assert_eq!(cut("short", 80), "short");
    }
}
