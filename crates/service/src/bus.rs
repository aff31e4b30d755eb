//! The in-process event bus: domain events fan out to subscribers after commit.

use std::sync::Arc;

use sportello_domain::event::DomainEvent;
use tokio::sync::broadcast;

/// A broadcast channel of domain events. Slow subscribers lag and are told how many events
/// they missed (so they can resynchronise); they never hold back publishers.
#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<DomainEvent>>,
}

impl EventBus {
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity);
        EventBus { tx }
    }

    /// Publishes events; called only after the transaction that caused them committed.
    pub fn publish_all(&self, events: Vec<DomainEvent>) {
        for e in events {
            // No subscriber is fine: nobody is watching.
            let _ = self.tx.send(Arc::new(e));
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<DomainEvent>> {
        self.tx.subscribe()
    }
}
