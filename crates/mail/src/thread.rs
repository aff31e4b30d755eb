//! Which ticket an inbound message belongs to: a pure decision over the message's threading
//! keys and lookups the service answers from storage.
//!
//! A message joins a ticket only when its sender is a known contact of that ticket's citizen.
//! Anything else that points at a ticket (a forwarded mail, someone quoting another person's
//! ticket number) opens a new ticket linked to the quoted one, so a stranger can never append to
//! another citizen's case.

use sportello_domain::{EmailAddress, TicketNumber, slug_enum};

use crate::parse::InboundMessage;

slug_enum! {
    /// Why a message was threaded onto (or linked to) a ticket; stored with the ticket entry.
    pub enum ThreadReason as "thread reason" {
        /// `In-Reply-To` names a message of the ticket.
        InReplyTo => "in_reply_to",
        /// `References` names a message of the ticket.
        References => "references",
        /// The subject carries the ticket tag, e.g. `[SP-2026-000123]`.
        SubjectTag => "subject_tag",
        /// Outlook's `Thread-Index` conversation matches one of the ticket's messages.
        ThreadIndex => "thread_index",
    }
}

/// Storage lookups the decision needs, implemented by the service (typically over keys loaded
/// in one query from [`ThreadKeys`]).
pub trait ThreadLookup {
    /// The service's ticket identifier.
    type Ticket: Clone;

    /// The ticket that holds a message (inbound or one of our replies) with this Message-ID.
    fn ticket_by_message_id(&self, message_id: &str) -> Option<Self::Ticket>;
    /// The ticket with this number.
    fn ticket_by_number(&self, number: &TicketNumber) -> Option<Self::Ticket>;
    /// The ticket holding a message of this Outlook conversation ([`InboundMessage::thread_index_root`]).
    fn ticket_by_thread_index(&self, root: &str) -> Option<Self::Ticket>;
    /// Whether the address is a known contact of the ticket's citizen.
    fn is_known_contact(&self, ticket: &Self::Ticket, sender: &EmailAddress) -> bool;
}

/// What to do with an inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThreadDecision<T> {
    /// Append to this ticket.
    Join { ticket: T, reason: ThreadReason },
    /// Open a new ticket.
    NewTicket,
    /// Open a new ticket, linked to the quoted one and flagged for review: the message points at
    /// a ticket whose citizen does not know this sender.
    NewLinked {
        quoted_ticket: T,
        reason: ThreadReason,
    },
}

/// Every key a message could thread by, most specific first; lets the service load all
/// candidate tickets in one query before calling [`decide`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreadKeys {
    /// In-Reply-To first, then References newest to oldest.
    pub message_ids: Vec<(String, ThreadReason)>,
    pub ticket_numbers: Vec<TicketNumber>,
    pub thread_index_root: Option<String>,
}

/// The keys of a message, in the order [`decide`] tries them.
pub fn thread_keys(msg: &InboundMessage) -> ThreadKeys {
    let mut message_ids: Vec<(String, ThreadReason)> = Vec::new();
    if let Some(id) = &msg.in_reply_to {
        message_ids.push((id.clone(), ThreadReason::InReplyTo));
    }
    for id in msg.references.iter().rev() {
        if !message_ids.iter().any(|(known, _)| known == id) {
            message_ids.push((id.clone(), ThreadReason::References));
        }
    }
    ThreadKeys {
        message_ids,
        ticket_numbers: subject_ticket_numbers(&msg.subject),
        thread_index_root: msg.thread_index_root(),
    }
}

/// Ticket numbers tagged in a subject as `[PREFIX-YYYY-NNNNNN]`, in order, without repeats.
pub fn subject_ticket_numbers(subject: &str) -> Vec<TicketNumber> {
    let mut out: Vec<TicketNumber> = Vec::new();
    let mut rest = subject;
    while let Some(open) = rest.find('[') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find(']') else { break };
        let inside = &rest[..close];
        if let Ok(n) = TicketNumber::parse(inside)
            && !out.contains(&n)
        {
            out.push(n);
        }
        if !inside.contains('[') {
            rest = &rest[close + 1..];
        }
    }
    out
}

/// Decides where a message goes. Candidates are tried in order: In-Reply-To, References (newest
/// first), subject tags, Thread-Index; the first one whose citizen knows the sender is joined.
/// When candidates exist but none knows the sender, the first candidate is linked.
pub fn decide<L: ThreadLookup>(msg: &InboundMessage, lookup: &L) -> ThreadDecision<L::Ticket> {
    let keys = thread_keys(msg);
    let mut candidates: Vec<(L::Ticket, ThreadReason)> = Vec::new();
    for (id, reason) in &keys.message_ids {
        if let Some(t) = lookup.ticket_by_message_id(id) {
            candidates.push((t, *reason));
        }
    }
    for number in &keys.ticket_numbers {
        if let Some(t) = lookup.ticket_by_number(number) {
            candidates.push((t, ThreadReason::SubjectTag));
        }
    }
    if let Some(root) = &keys.thread_index_root
        && let Some(t) = lookup.ticket_by_thread_index(root)
    {
        candidates.push((t, ThreadReason::ThreadIndex));
    }

    if let Some(sender) = msg.from.as_ref().map(|p| &p.address) {
        for (ticket, reason) in &candidates {
            if lookup.is_known_contact(ticket, sender) {
                return ThreadDecision::Join {
                    ticket: ticket.clone(),
                    reason: *reason,
                };
            }
        }
    }
    match candidates.into_iter().next() {
        Some((quoted_ticket, reason)) => ThreadDecision::NewLinked {
            quoted_ticket,
            reason,
        },
        None => ThreadDecision::NewTicket,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_tags_are_found_anywhere_once() {
        let n = |s: &str| TicketNumber::parse(s).unwrap();
        assert_eq!(
            subject_ticket_numbers(
                "R: Re: [SP-2026-000123] domanda [sp-2026-000123] [x] [SP-2025-000001]"
            ),
            vec![n("SP-2026-000123"), n("SP-2025-000001")]
        );
        assert_eq!(
            subject_ticket_numbers("[[SP-2026-000009]"),
            vec![n("SP-2026-000009")]
        );
        assert!(subject_ticket_numbers("SP-2026-000123 senza parentesi").is_empty());
        assert!(subject_ticket_numbers("[SP-2026-12] troppo corto").is_empty());
    }
}
