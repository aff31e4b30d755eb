//! Domain events: what happened, published after the transaction that made it happen commits.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ticket::{Channel, Status, Tier};

/// A change the rest of the system (dashboard, notifications, other instances) may react to.
///
/// Events carry identifiers and queue-relevant attributes only, never personal data, so they
/// can cross instances and reach dashboards without leaking anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DomainEvent {
    TicketCreated {
        ticket_id: Uuid,
        number: String,
        channel: Channel,
        tier: Tier,
        category: Option<String>,
        at: DateTime<Utc>,
    },
    TicketTransitioned {
        ticket_id: Uuid,
        from: Status,
        to: Status,
        at: DateTime<Utc>,
    },
    TicketAssigned {
        ticket_id: Uuid,
        assignee_id: Option<Uuid>,
        tier: Tier,
        at: DateTime<Utc>,
    },
    /// Something new on a ticket's timeline.
    EntryAdded {
        ticket_id: Uuid,
        /// The timeline item: an entry, or for a switchboard call (`kind` `call`) the call.
        entry_id: Uuid,
        kind: crate::ticket::EntryKind,
        at: DateTime<Utc>,
    },
    CitizenCreated {
        citizen_id: Uuid,
        at: DateTime<Utc>,
    },
    /// A ticket's SLA state changed by itself with time (`ok`, `at_risk`, `breached`, `paused`).
    SlaChanged {
        ticket_id: Uuid,
        state: String,
        at: DateTime<Utc>,
    },
}

impl DomainEvent {
    /// The ticket an event is about, if any.
    pub fn ticket_id(&self) -> Option<Uuid> {
        match self {
            DomainEvent::TicketCreated { ticket_id, .. }
            | DomainEvent::TicketTransitioned { ticket_id, .. }
            | DomainEvent::TicketAssigned { ticket_id, .. }
            | DomainEvent::EntryAdded { ticket_id, .. }
            | DomainEvent::SlaChanged { ticket_id, .. } => Some(*ticket_id),
            DomainEvent::CitizenCreated { .. } => None,
        }
    }
}
