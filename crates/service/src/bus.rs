//! The in-process event bus: domain events fan out to subscribers after commit.

use std::sync::Arc;

use sportello_domain::event::DomainEvent;
use tokio::sync::broadcast;

/// Sees each event this instance publishes, synchronously.
pub type Observer = Arc<dyn Fn(&DomainEvent) + Send + Sync>;

/// A broadcast channel of domain events. Slow subscribers lag and are told how many events
/// they missed (so they can resynchronise); they never hold back publishers.
///
/// Events of this instance also go to a second channel that only the cross-instance relay
/// reads, so events that came from other instances are never sent back to them.
#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<DomainEvent>>,
    local: broadcast::Sender<Arc<DomainEvent>>,
    /// Sees every event this instance publishes (metrics count them); never relayed events.
    observer: Option<Observer>,
}

impl EventBus {
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity);
        let (local, _) = broadcast::channel(capacity);
        EventBus {
            tx,
            local,
            observer: None,
        }
    }

    /// A bus whose events of this instance are also shown to `observer`, synchronously, as
    /// they are published.
    pub fn with_observer(capacity: usize, observer: Observer) -> Self {
        EventBus {
            observer: Some(observer),
            ..EventBus::new(capacity)
        }
    }

    /// Publishes events; called only after the transaction that caused them committed.
    pub fn publish_all(&self, events: Vec<DomainEvent>) {
        for e in events {
            if let Some(observe) = &self.observer {
                observe(&e);
            }
            let e = Arc::new(e);
            // No subscriber is fine: nobody is watching (or no relay runs).
            let _ = self.local.send(e.clone());
            let _ = self.tx.send(e);
        }
    }

    /// Publishes events another instance committed (received through the relay).
    pub fn publish_remote(&self, events: Vec<DomainEvent>) {
        for e in events {
            let _ = self.tx.send(Arc::new(e));
        }
    }

    /// Every event, this instance's and other instances'.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<DomainEvent>> {
        self.tx.subscribe()
    }

    /// Only this instance's events (for the cross-instance relay).
    pub fn subscribe_local(&self) -> broadcast::Receiver<Arc<DomainEvent>> {
        self.local.subscribe()
    }
}
