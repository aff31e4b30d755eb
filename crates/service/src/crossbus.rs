//! Domain events across instances: on PostgreSQL each instance NOTIFYs its own events on one
//! channel and LISTENs on a dedicated connection, re-publishing the other instances' events on
//! its local bus, so a dashboard connected to any instance sees every change. SQLite serves
//! one instance, so there is nothing to relay.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sea_orm::sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
use serde::{Deserialize, Serialize};
use sportello_domain::event::DomainEvent;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::App;

/// The PostgreSQL notification channel events travel on.
pub const CHANNEL: &str = "sportello_events";
/// NOTIFY payloads must stay under 8,000 bytes; events are packed up to this size.
const MAX_PAYLOAD: usize = 7_000;
/// Longest wait between attempts to listen again after a failure.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One notification: some events of one instance.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Envelope {
    pub instance: Uuid,
    pub events: Vec<DomainEvent>,
}

/// This instance's identity on the channel, and whether its relay runs.
pub(crate) struct Relay {
    instance: Uuid,
    started: AtomicBool,
    listening: AtomicBool,
}

impl Default for Relay {
    fn default() -> Self {
        Relay {
            instance: Uuid::now_v7(),
            started: AtomicBool::new(false),
            listening: AtomicBool::new(false),
        }
    }
}

/// Packs events into payloads that each fit one NOTIFY.
pub fn pack(instance: Uuid, events: Vec<DomainEvent>) -> Vec<String> {
    let mut out = Vec::new();
    let mut batch: Vec<DomainEvent> = Vec::new();
    let envelope =
        |events: Vec<DomainEvent>| serde_json::to_string(&Envelope { instance, events }).ok();
    for e in events {
        batch.push(e);
        let fits = envelope(batch.clone()).is_some_and(|p| p.len() <= MAX_PAYLOAD);
        if !fits && batch.len() > 1 {
            let last = batch.pop();
            out.extend(envelope(std::mem::take(&mut batch)));
            batch.extend(last);
        }
    }
    if !batch.is_empty() {
        // A single event never comes near the limit: events carry identifiers only.
        out.extend(envelope(batch).filter(|p| p.len() <= MAX_PAYLOAD));
    }
    out
}

impl App {
    /// This instance's id on the event channel.
    pub fn instance_id(&self) -> Uuid {
        self.inner.relay.instance
    }

    /// Whether this instance currently listens for other instances' events.
    pub fn event_relay_listening(&self) -> bool {
        self.inner.relay.listening.load(Ordering::SeqCst)
    }

    /// Starts relaying domain events to and from the other instances sharing the PostgreSQL
    /// database, until `cancel`. Returns `None` on SQLite, and when the relay already runs.
    pub fn start_event_relay(&self, cancel: CancellationToken) -> Option<JoinHandle<()>> {
        if self.db().backend() != DatabaseBackend::Postgres {
            return None;
        }
        if self.inner.relay.started.swap(true, Ordering::SeqCst) {
            return None;
        }
        let pool = self.db().write.get_postgres_connection_pool().clone();
        // A pool of one connection of its own, so listening never takes one from the requests.
        let dedicated = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(5))
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with((*pool.connect_options()).clone());
        let app = self.clone();
        Some(tokio::spawn(async move {
            tokio::join!(
                app.relay_out(cancel.clone()),
                app.relay_in(dedicated, cancel)
            );
            app.inner.relay.listening.store(false, Ordering::SeqCst);
        }))
    }

    /// This instance's events → NOTIFY.
    async fn relay_out(&self, cancel: CancellationToken) {
        let mut events = self.bus().subscribe_local();
        loop {
            let first = tokio::select! {
                _ = cancel.cancelled() => return,
                e = events.recv() => e,
            };
            let mut batch = match first {
                Ok(e) => vec![(*e).clone()],
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(
                        missed = n,
                        "event relay fell behind; other instances' dashboards resynchronise on their next refresh"
                    );
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            while let Ok(e) = events.try_recv() {
                batch.push((*e).clone());
            }
            for payload in pack(self.instance_id(), batch) {
                let stmt = Statement::from_sql_and_values(
                    DatabaseBackend::Postgres,
                    "SELECT pg_notify($1, $2)",
                    [CHANNEL.into(), payload.into()],
                );
                if let Err(e) = self.db().write.execute_raw(stmt).await {
                    tracing::warn!(error = %e, "cannot notify other instances of events");
                }
            }
        }
    }

    /// LISTEN → other instances' events on the local bus; reconnects with a growing pause.
    async fn relay_in(&self, pool: PgPool, cancel: CancellationToken) {
        let mut backoff = Duration::from_millis(250);
        loop {
            let listener = async {
                let mut l = PgListener::connect_with(&pool).await?;
                l.listen(CHANNEL).await?;
                Ok::<_, sea_orm::sqlx::Error>(l)
            };
            let mut listener = tokio::select! {
                _ = cancel.cancelled() => return,
                l = listener => match l {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot listen for other instances' events");
                        tokio::select! {
                            _ = cancel.cancelled() => return,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                },
            };
            tracing::info!(channel = CHANNEL, "listening for other instances' events");
            self.inner.relay.listening.store(true, Ordering::SeqCst);
            backoff = Duration::from_millis(250);
            loop {
                let n = tokio::select! {
                    _ = cancel.cancelled() => return,
                    n = listener.try_recv() => n,
                };
                match n {
                    Ok(Some(n)) => self.receive(n.payload()),
                    // The connection dropped and was re-established: notifications sent in
                    // between are lost, which dashboards repair with their periodic snapshot.
                    Ok(None) => tracing::warn!(
                        "event listener reconnected; some events from other instances may be missed"
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "event listener failed; listening again");
                        self.inner.relay.listening.store(false, Ordering::SeqCst);
                        break;
                    }
                }
            }
        }
    }

    fn receive(&self, payload: &str) {
        match serde_json::from_str::<Envelope>(payload) {
            Ok(env) if env.instance == self.instance_id() => {}
            Ok(env) => self.bus().publish_remote(env.events),
            Err(e) => tracing::warn!(error = %e, "ignoring a malformed event notification"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn events_are_packed_under_the_notify_limit() {
        let instance = Uuid::now_v7();
        let events: Vec<DomainEvent> = (0..200)
            .map(|_| DomainEvent::SlaChanged {
                ticket_id: Uuid::now_v7(),
                state: "at_risk".into(),
                at: Utc::now(),
            })
            .collect();
        let payloads = pack(instance, events.clone());
        assert!(payloads.len() > 1, "200 events do not fit one notification");
        let mut back = Vec::new();
        for p in &payloads {
            assert!(p.len() <= MAX_PAYLOAD, "{} bytes", p.len());
            let env: Envelope = serde_json::from_str(p).unwrap();
            assert_eq!(env.instance, instance);
            back.extend(env.events);
        }
        assert_eq!(back, events, "every event arrives once, in order");
    }
}
