//! Sportello's routing engine, SLA clock and staffing simulator: pure functions, no IO.
//!
//! - [`rules`]: the TOML rule set that turns ticket facts into tier, skills, priority and SLA
//!   policy (first match wins), with an explanation for dry runs.
//! - [`operators`] and [`assign`]: operator state, eligibility, overflow and the assignment
//!   planner (indexed so that one decision stays well under a millisecond at 10,000 waiting
//!   tickets and 500 operators).
//! - [`sla`]: SLA policies and the per-ticket clock in business time, with pauses.
//! - [`sim`]: a discrete-event staffing simulator and the Erlang C formulas.
//! - [`config`]: the whole `config/routing.toml` file (assignment, SLA policies, rules).
//!
//! Nothing here is async, touches a database or speaks HTTP; the service layer wires it in.

pub mod assign;
pub mod bench;
pub mod clock;
pub mod config;
pub mod operators;
pub mod rng;
pub mod rules;
pub mod sim;
pub mod sla;
pub mod text;

#[cfg(test)]
mod testing;

pub use assign::{
    Assignment, AssignmentIndex, WaitingReason, choose_operator, plan_assignments, waiting_reason,
};
pub use bench::{BenchConfig, BenchReport, run_assignment_bench};
pub use clock::BusinessClock;
pub use config::{ConfigError, DEFAULT_ROUTING_TOML, RoutingConfig};
pub use operators::{
    AssignmentConfigError, AssignmentPolicy, Ineligible, OperatorState, OverflowPolicy,
    OverflowStep, Presence, ProfileError, Relax, Requirement, RoutingProfile, Strategy,
    WaitingTicket, eligible, eligible_for,
};
pub use rules::{Decision, Explanation, Mismatch, RuleError, RuleSet, RuleTrace, TicketFacts};
pub use sim::{SimReport, Staffing, StaffingError, erlang_c, service_level, simulate};
pub use sla::{
    AtRisk, Pause, PauseReason, SlaClock, SlaConfigError, SlaError, SlaPolicies, SlaPolicy,
    SlaSnapshot, SlaState, Target, TimerKind,
};
