//! The counter (sportello) channel's rules, with no IO: session validation, slot generation,
//! queue numbers, the opening-hours planner, the documents to bring and the no-show rule.
//!
//! Everything here is a pure function over plain values; the service layer loads the inputs
//! from the database, calls these functions and stores the results. Dates are local dates in
//! the business calendar's zone (Europe/Rome by default); instants are UTC.

pub mod documents;
pub mod noshow;
pub mod planner;
pub mod queue;
pub mod session;
pub mod slots;

pub use documents::documents_for;
pub use noshow::{DEFAULT_GRACE_MINUTES, is_no_show, no_show_rate};
pub use planner::{
    PlanInput, PlannerParams, ProposedSession, SessionLoad, TemplateSession, plan_week,
};
pub use queue::{QueueKind, queue_number};
pub use session::{
    DEFAULT_SLOT_MINUTES, SessionError, SessionRequest, ValidSession, validate_session,
};
pub use slots::{SlotSpec, generate_slots, local_to_utc};
