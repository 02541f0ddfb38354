//! `GET /infrastructures/ID/events`: an infra's story as Server-Sent Events.
//! Each instance state change is an event named after its phase; the
//! service's own operations end with an event of their outcome, named apart
//! from the instances' phases: `infra-built`, `infra-failed`,
//! `infra-stopped`, `infra-destroyed`, `infra-destroy-failed`. Once the infra
//! is gone (`infra-destroyed`, by this service or, seen within
//! [`GONE_CHECK`], by anyone), that is the last event and the stream closes. A comment line
//! (`: keep-alive`) every [`KEEP_ALIVE`] keeps proxies from closing a quiet
//! stream.

use crate::fanout::{frame, lagged};
use crate::service::{Outcome, Service};
use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

/// How often a quiet stream sends a keep-alive comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How often a stream checks that its infra still exists (it may be
/// destroyed by a command line on the same state database).
pub const GONE_CHECK: Duration = Duration::from_secs(5);
/// The most event chunks one write gathers when a stream fell behind.
const GATHER: usize = 64;

/// The frame telling `outcome`.
fn outcome_frame(outcome: &Outcome) -> Bytes {
    let mut frames = String::new();
    frame(
        &mut frames,
        outcome.event,
        &serde_json::to_string(outcome).unwrap_or_default(),
    );
    Bytes::from(frames)
}

/// What a stream listens to.
struct Watch {
    service: Arc<Service>,
    infra_id: String,
    events: broadcast::Receiver<Bytes>,
    outcomes: broadcast::Receiver<Outcome>,
    check: tokio::time::Interval,
    keep_alive: tokio::time::Interval,
    closing: tokio::sync::watch::Receiver<bool>,
    ended: bool,
}

/// The answer streaming the events of `infra_id` from now on, until it is
/// gone.
pub fn response(service: Arc<Service>, infra_id: String) -> Response {
    let after = |period| tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let watch = Watch {
        events: service.fanout.subscribe(&infra_id),
        outcomes: service.outcomes(),
        check: after(GONE_CHECK),
        keep_alive: after(KEEP_ALIVE),
        closing: service.closing(),
        service,
        infra_id,
        ended: false,
    };
    let chunks = futures::stream::unfold(watch, |mut watch| async move {
        if watch.ended {
            return None;
        }
        let chunk = watch.next().await?;
        watch.keep_alive.reset();
        Some((Ok::<_, std::convert::Infallible>(chunk), watch))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(chunks),
    )
        .into_response()
}

impl Watch {
    /// The next chunk to send; `None` when the service is going away.
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            tokio::select! {
                _ = self.closing.wait_for(|closing| *closing) => return None,
                chunk = self.events.recv() => match chunk {
                    Ok(chunk) => return Some(gather(&mut self.events, chunk)),
                    Err(RecvError::Lagged(missed)) => return Some(lagged(missed)),
                    Err(RecvError::Closed) => return None,
                },
                outcome = self.outcomes.recv() => match outcome {
                    Ok(outcome) if outcome.infra_id == self.infra_id => {
                        self.ended = outcome.is_last();
                        return Some(outcome_frame(&outcome));
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
                        return Some(outcome_frame(&outcome));
                    }
                }
                _ = self.keep_alive.tick() => return Some(Bytes::from_static(b": keep-alive\n\n")),
            }
        }
    }
}

/// `first` and the chunks already waiting behind it, as one write (a
/// stream that fell behind catches up in few writes, not one per batch).
fn gather(events: &mut broadcast::Receiver<Bytes>, first: Bytes) -> Bytes {
    let mut more = Vec::new();
    while more.len() < GATHER {
        match events.try_recv() {
            Ok(chunk) => more.push(chunk),
            Err(TryRecvError::Lagged(missed)) => {
                more.push(lagged(missed));
                break;
            }
            Err(TryRecvError::Empty | TryRecvError::Closed) => break,
        }
    }
    if more.is_empty() {
        return first;
    }
    let mut joined = Vec::with_capacity(first.len() + more.iter().map(Bytes::len).sum::<usize>());
    joined.extend_from_slice(&first);
    for chunk in more {
        joined.extend_from_slice(&chunk);
    }
    Bytes::from(joined)
}
