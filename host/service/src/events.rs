//! `GET /infrastructures/ID/events`: an infra's story as Server-Sent Events.
//! Each instance state change is an event named after its phase; the
//! service's own operations end with an event of their outcome, named apart
//! from the instances' phases: `infra-built`, `infra-failed`,
//! `infra-stopped`, `infra-destroyed`, `infra-destroy-failed`. Once the infra
//! is gone (`infra-destroyed`, by this service or, seen within
//! [`GONE_CHECK`], by anyone), that is the last event and the stream closes. A comment line
//! (`: keep-alive`) every [`KEEP_ALIVE`] keeps proxies from closing a quiet
//! stream.

use crate::fanout::Rendered;
use crate::service::{Outcome, Service};
use axum::response::sse::{Event as SseEvent, KeepAlive};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};

/// How often a quiet stream sends a keep-alive comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How often a stream checks that its infra still exists (it may be
/// destroyed by a command line on the same state database).
pub const GONE_CHECK: Duration = Duration::from_secs(5);

/// The event telling `outcome`.
fn outcome_event(outcome: &Outcome) -> SseEvent {
    SseEvent::default()
        .event(outcome.event)
        .json_data(outcome)
        .unwrap_or_default()
}

/// The event telling a stream it missed `missed` events (it fell behind).
fn lagged(missed: u64) -> SseEvent {
    SseEvent::default().event("lagged").data(missed.to_string())
}

/// The keep-alive of every event stream.
pub fn keep_alive() -> KeepAlive {
    KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")
}

/// What a stream listens to.
struct Watch {
    service: Arc<Service>,
    infra_id: String,
    events: broadcast::Receiver<Arc<Rendered>>,
    outcomes: broadcast::Receiver<Outcome>,
    check: tokio::time::Interval,
    ended: bool,
}

/// The events of `infra_id` from now on, until it is gone.
pub fn stream(
    service: Arc<Service>,
    infra_id: String,
) -> impl futures::Stream<Item = Result<SseEvent, std::convert::Infallible>> {
    let watch = Watch {
        events: service.fanout.subscribe(&infra_id),
        outcomes: service.outcomes(),
        check: tokio::time::interval_at(tokio::time::Instant::now() + GONE_CHECK, GONE_CHECK),
        service,
        infra_id,
        ended: false,
    };
    futures::stream::unfold(watch, |mut watch| async move {
        if watch.ended {
            return None;
        }
        let event = watch.next().await?;
        Some((Ok(event), watch))
    })
}

impl Watch {
    /// The next event to send; `None` when the service is going away.
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            tokio::select! {
                event = self.events.recv() => match event {
                    Ok(event) => {
                        return Some(match &*event {
                            Rendered::Change { name, json } => {
                                SseEvent::default().event(*name).data(json)
                            }
                            Rendered::Lagged(missed) => lagged(*missed),
                        });
                    }
                    Err(RecvError::Lagged(missed)) => return Some(lagged(missed)),
                    Err(RecvError::Closed) => return None,
                },
                outcome = self.outcomes.recv() => match outcome {
                    Ok(outcome) if outcome.infra_id == self.infra_id => {
                        self.ended = outcome.is_last();
                        return Some(outcome_event(&outcome));
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return None,
                },
                _ = self.check.tick() => {
                    if self.service.is_gone(&self.infra_id) {
                        self.ended = true;
                        let outcome = Outcome {
                            infra_id: self.infra_id.clone(),
                            event: "infra-destroyed",
                            detail: Some("it is no longer recorded".to_string()),
                        };
                        return Some(outcome_event(&outcome));
                    }
                }
            }
        }
    }
}
