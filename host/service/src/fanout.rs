//! One infra's instance events, rendered once and fanned out to every event
//! stream open on it, in batches.
//!
//! A single task reads the engine's events. Whatever has arrived by the time
//! it wakes is one batch: the events of each watched infra are rendered as
//! Server-Sent Event frames, once, into one buffer that is sent (shared, a
//! `Bytes`) on that infra's channel. A thousand streams of one infra thus cost
//! one rendering per event and one socket write per stream per batch, not per
//! event: a burst (a hundred instances starting at once) reaches each stream
//! as a single chunk. Streams of other infras are not woken. A channel goes
//! when its last stream does.

use axum::body::Bytes;
use occopus::engine::Event;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Mutex;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

/// Batches one stream may fall behind by before it is told it lagged.
const PER_STREAM: usize = 1024;
/// The most events one batch gathers (a bound on a chunk's size).
const BATCH: usize = 512;

/// Appends the SSE frame of the event named `name` with `data` (one line:
/// compact JSON never holds a raw newline) to `frames`.
pub(crate) fn frame(frames: &mut String, name: &str, data: &str) {
    let _ = write!(frames, "event: {name}\ndata: {data}\n\n");
}

/// The frame telling a stream it missed `missed` events (it fell behind).
pub(crate) fn lagged(missed: u64) -> Bytes {
    let mut frames = String::new();
    frame(&mut frames, "lagged", &missed.to_string());
    Bytes::from(frames)
}

/// The channels of the infras being watched.
#[derive(Default)]
pub(crate) struct Fanout(Mutex<HashMap<String, broadcast::Sender<Bytes>>>);

impl Fanout {
    /// The rendered event frames of `infra_id` from now on.
    pub(crate) fn subscribe(&self, infra_id: &str) -> broadcast::Receiver<Bytes> {
        self.lock()
            .entry(infra_id.to_string())
            .or_insert_with(|| broadcast::channel(PER_STREAM).0)
            .subscribe()
    }

    /// Renders and sends the engine's `events`, a batch at a time, until
    /// they end.
    pub(crate) async fn run(&self, mut events: broadcast::Receiver<Event>) {
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let mut missed = match events.recv().await {
                Ok(event) => {
                    batch.push(event);
                    None
                }
                Err(RecvError::Lagged(missed)) => Some(missed),
                Err(RecvError::Closed) => return,
            };
            let mut closed = false;
            while missed.is_none() && batch.len() < BATCH {
                match events.try_recv() {
                    Ok(event) => batch.push(event),
                    Err(TryRecvError::Lagged(count)) => missed = Some(count),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Closed) => closed = true,
                }
                if closed {
                    break;
                }
            }
            self.send(&mut batch);
            if let Some(missed) = missed {
                let lagged = lagged(missed);
                for channel in self.lock().values() {
                    let _ = channel.send(lagged.clone());
                }
            }
            if closed {
                return;
            }
        }
    }

    /// Sends each watched infra's events of `batch` (emptied) as one chunk.
    fn send(&self, batch: &mut Vec<Event>) {
        let mut watched: HashMap<String, (broadcast::Sender<Bytes>, String)> = HashMap::new();
        {
            let mut channels = self.lock();
            for event in batch.iter() {
                if watched.contains_key(&event.infra_id) {
                    continue;
                }
                match channels.get(&event.infra_id) {
                    None => {}
                    Some(channel) if channel.receiver_count() == 0 => {
                        channels.remove(&event.infra_id);
                    }
                    Some(channel) => {
                        watched.insert(event.infra_id.clone(), (channel.clone(), String::new()));
                    }
                }
            }
        }
        // Rendered outside the lock: subscribing never waits on it.
        for event in batch.drain(..) {
            if let Some((_, frames)) = watched.get_mut(&event.infra_id) {
                let json = serde_json::to_string(&event).unwrap_or_default();
                frame(frames, event.phase.as_str(), &json);
            }
        }
        for (channel, frames) in watched.into_values() {
            // No stream left between the count and the send is no error.
            let _ = channel.send(Bytes::from(frames));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, broadcast::Sender<Bytes>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use occopus::engine::Phase;
    use std::sync::Arc;

    fn event(infra_id: &str, instance_id: &str) -> Event {
        Event {
            time_ms: 1,
            infra_id: infra_id.into(),
            node: "web".into(),
            instance_id: instance_id.into(),
            phase: Phase::Ready,
            detail: None,
        }
    }

    #[tokio::test]
    async fn events_ready_together_reach_every_stream_of_their_infra_as_one_rendering() {
        let fanout = Arc::new(Fanout::default());
        let (engine, events) = broadcast::channel(16);
        let mut streams: Vec<_> = (0..3).map(|_| fanout.subscribe("i1")).collect();
        let mut other = fanout.subscribe("i2");
        // Sent before the fan-out runs: one batch.
        engine.send(event("i1", "web-1")).unwrap();
        engine.send(event("i3", "db-1")).unwrap();
        engine.send(event("i1", "web-2")).unwrap();
        let task = tokio::spawn({
            let fanout = fanout.clone();
            async move { fanout.run(events).await }
        });
        let first = streams[0].recv().await.unwrap();
        for stream in &mut streams[1..] {
            let chunk = stream.recv().await.unwrap();
            assert_eq!(chunk.as_ptr(), first.as_ptr(), "one rendering");
        }
        let text = std::str::from_utf8(&first).unwrap();
        let frames: Vec<&str> = text.split_terminator("\n\n").collect();
        assert_eq!(frames.len(), 2, "{text}");
        for (frame, instance) in frames.iter().zip(["web-1", "web-2"]) {
            let (name, data) = frame.split_once('\n').unwrap();
            assert_eq!(name, "event: ready");
            let data: serde_json::Value =
                serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(data["instance_id"], instance);
        }
        assert!(
            other.try_recv().is_err(),
            "another infra's stream is not woken"
        );
        // The last stream of an infra gone, its channel goes at the next event.
        drop(streams);
        engine.send(event("i1", "web-3")).unwrap();
        drop(engine);
        task.await.unwrap();
        assert!(!fanout.lock().contains_key("i1"));
        assert!(fanout.lock().contains_key("i2"));
    }

    #[tokio::test]
    async fn a_fan_out_that_fell_behind_the_engine_tells_every_stream() {
        let fanout = Fanout::default();
        let (engine, events) = broadcast::channel(2);
        let mut stream = fanout.subscribe("i1");
        for n in 0..5 {
            engine.send(event("i1", &format!("web-{n}"))).unwrap();
        }
        drop(engine);
        fanout.run(events).await;
        assert_eq!(stream.recv().await.unwrap(), lagged(3));
        let rest = stream.recv().await.unwrap();
        assert_eq!(
            std::str::from_utf8(&rest)
                .unwrap()
                .matches("event: ready")
                .count(),
            2
        );
    }
}
