//! One infra's instance events, rendered once and fanned out to every event
//! stream open on it.
//!
//! A single task reads the engine's events; an event of an infra somebody
//! watches is serialized to JSON once and sent, shared (`Arc`), on that
//! infra's channel. A thousand streams of one infra thus cost one rendering
//! per event, and streams of other infras are not woken by it. A channel
//! goes when its last stream does.

use occopus::engine::Event;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast::{self, error::RecvError};

/// Events one stream may fall behind by before it is told it lagged.
const PER_STREAM: usize = 1024;

/// An event as its streams send it.
#[derive(Debug)]
pub(crate) enum Rendered {
    /// An instance's state change: the SSE event name (its phase) and data.
    Change { name: &'static str, json: String },
    /// This many events were lost before reaching the stream's channel.
    Lagged(u64),
}

/// The channels of the infras being watched.
#[derive(Default)]
pub(crate) struct Fanout(Mutex<HashMap<String, broadcast::Sender<Arc<Rendered>>>>);

impl Fanout {
    /// The rendered events of `infra_id` from now on.
    pub(crate) fn subscribe(&self, infra_id: &str) -> broadcast::Receiver<Arc<Rendered>> {
        self.lock()
            .entry(infra_id.to_string())
            .or_insert_with(|| broadcast::channel(PER_STREAM).0)
            .subscribe()
    }

    /// Renders and sends the engine's `events` until they end.
    pub(crate) async fn run(&self, mut events: broadcast::Receiver<Event>) {
        loop {
            match events.recv().await {
                Ok(event) => self.send(&event),
                Err(RecvError::Lagged(missed)) => {
                    let lagged = Arc::new(Rendered::Lagged(missed));
                    for channel in self.lock().values() {
                        let _ = channel.send(lagged.clone());
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    fn send(&self, event: &Event) {
        let channel = {
            let mut channels = self.lock();
            match channels.get(&event.infra_id) {
                None => return,
                Some(channel) if channel.receiver_count() == 0 => {
                    channels.remove(&event.infra_id);
                    return;
                }
                // Rendered outside the lock: subscribing never waits on it.
                Some(channel) => channel.clone(),
            }
        };
        let json = serde_json::to_string(event).unwrap_or_default();
        let rendered = Rendered::Change {
            name: event.phase.as_str(),
            json,
        };
        // No stream left between the count and the send is no error.
        let _ = channel.send(Arc::new(rendered));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, broadcast::Sender<Arc<Rendered>>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use occopus::engine::Phase;

    fn event(infra_id: &str) -> Event {
        Event {
            time_ms: 1,
            infra_id: infra_id.into(),
            node: "web".into(),
            instance_id: "web-1".into(),
            phase: Phase::Ready,
            detail: None,
        }
    }

    #[tokio::test]
    async fn an_event_is_rendered_once_for_all_its_infra_s_streams() {
        let fanout = Arc::new(Fanout::default());
        let (engine, events) = broadcast::channel(16);
        let mut streams: Vec<_> = (0..3).map(|_| fanout.subscribe("i1")).collect();
        let mut other = fanout.subscribe("i2");
        let task = tokio::spawn({
            let fanout = fanout.clone();
            async move { fanout.run(events).await }
        });
        engine.send(event("i1")).unwrap();
        let first = streams[0].recv().await.unwrap();
        for stream in &mut streams[1..] {
            assert!(
                Arc::ptr_eq(&first, &stream.recv().await.unwrap()),
                "one rendering"
            );
        }
        match &*first {
            Rendered::Change { name, json } => {
                assert_eq!(*name, "ready");
                assert!(json.contains("\"instance_id\":\"web-1\""), "{json}");
            }
            lagged => panic!("{lagged:?}"),
        }
        assert!(
            other.try_recv().is_err(),
            "another infra's stream is not woken"
        );
        // The last stream of an infra gone, its channel goes at the next event.
        drop(streams);
        engine.send(event("i1")).unwrap();
        drop(engine);
        task.await.unwrap();
        assert!(!fanout.lock().contains_key("i1"));
        assert!(fanout.lock().contains_key("i2"));
    }
}
