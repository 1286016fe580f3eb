//! `EventService`: validate each event, append the valid ones durably, and
//! answer per event. The disk sync runs on the blocking pool.

use super::status::Unanswered;
use super::{State, convert, metrics};
use crate::domain::Event;
use crate::domain::{FieldError, Millis};
use crate::proto::v1 as pb;
use std::sync::Arc;
use tokio_stream::StreamExt;
use tonic::{Code, Request, Response, Status, Streaming};

use convert::MAX_AHEAD_MS;

pub struct EventApi {
    pub(super) state: Arc<State>,
}

impl EventApi {
    /// Validates `events` (numbered from `first_index`), ingests the valid
    /// ones, and adds the outcome to `reply`.
    async fn ingest(
        &self,
        events: Vec<pb::Event>,
        first_index: usize,
        reply: &mut pb::IngestReply,
    ) -> Result<(), Status> {
        let live = self.state.live();
        let max_id = live.config.engine.limits.max_id_bytes as usize;
        // An event older than the dedupe window could be a resend whose id
        // is forgotten: taking it could apply it twice. One far in the future
        // would move the window for everyone.
        let oldest = self.state.event_horizon();
        let latest = Millis(super::wall_clock().0 + MAX_AHEAD_MS);
        let mut valid: Vec<Event> = Vec::with_capacity(events.len());
        {
            let catalog = self.state.catalog.read();
            for (i, e) in events.into_iter().enumerate() {
                let event_id = e.event_id.clone();
                let converted = convert::event(e, max_id).and_then(|event| {
                    if event.time < oldest {
                        Err(FieldError::new(
                            "time_ms",
                            format!(
                                "older than the dedupe window ({} h before the latest event taken, events.dedupe_hours): a resend could not be told from a new event",
                                live.config.dedupe_window_ms / 3_600_000
                            ),
                        ))
                    } else if event.time > latest {
                        Err(FieldError::new(
                            "time_ms",
                            "more than an hour ahead of the server's clock",
                        ))
                    } else {
                        Ok(event)
                    }
                });
                match converted {
                    Ok(mut event) => {
                        if let Some(note) = catalog.resolve_for_flow(&mut event) {
                            reply.notes.push(pb::EventNote {
                                index: (first_index + i) as u32,
                                event_id: event.event_id.clone(),
                                note: note.into(),
                            });
                        }
                        valid.push(event);
                    }
                    Err(err) => reply.rejected.push(pb::RejectedEvent {
                        index: (first_index + i) as u32,
                        event_id,
                        field: err.field,
                        reason: err.reason,
                    }),
                }
            }
        }
        if valid.is_empty() {
            return Ok(());
        }
        let state = self.state.clone();
        let ingested = tokio::task::spawn_blocking(move || state.ingest(valid))
            .await
            .map_err(|error| Unanswered::TaskFailed {
                what: "ingest",
                error,
            })?
            .map_err(|error| {
                tracing::error!(error = %error, "events not stored");
                Unanswered::NotStored {
                    what: "events",
                    error,
                }
            })?;
        metrics::record_events(ingested.accepted.len(), ingested.duplicates);
        reply.accepted += ingested.accepted.len() as u32;
        reply.duplicates += ingested.duplicates as u32;
        Ok(())
    }
}

#[tonic::async_trait]
impl pb::event_service_server::EventService for EventApi {
    async fn ingest(
        &self,
        request: Request<pb::IngestRequest>,
    ) -> Result<Response<pb::IngestReply>, Status> {
        let started = super::monotonic_now();
        let mut reply = pb::IngestReply::default();
        let outcome = self
            .ingest(request.into_inner().events, 0, &mut reply)
            .await;
        let code = outcome.as_ref().map_or_else(Status::code, |_| Code::Ok);
        metrics::record_rpc("Ingest", None, code, started.elapsed());
        outcome.map(|()| Response::new(reply))
    }

    async fn ingest_stream(
        &self,
        request: Request<Streaming<pb::IngestRequest>>,
    ) -> Result<Response<pb::IngestReply>, Status> {
        let started = super::monotonic_now();
        let mut stream = request.into_inner();
        let mut reply = pb::IngestReply::default();
        let mut seen = 0;
        let outcome = async {
            while let Some(batch) = stream.next().await {
                let events = batch?.events;
                let n = events.len();
                self.ingest(events, seen, &mut reply).await?;
                seen += n;
            }
            Ok::<(), Status>(())
        }
        .await;
        let code = outcome.as_ref().map_or_else(Status::code, |_| Code::Ok);
        metrics::record_rpc("IngestStream", None, code, started.elapsed());
        outcome.map(|()| Response::new(reply))
    }
}
