//! Sportello's domain: the types and rules every channel shares, with no IO.
//!
//! Nothing here is async, touches a database or speaks HTTP; adapters and storage depend on
//! this crate, never the other way round.

pub mod answer;
pub mod calendar;
#[macro_use]
pub mod slug;
pub mod codice_fiscale;
pub mod contact;
pub mod event;
pub mod taxonomy;
pub mod ticket;
pub mod user;
// After `slug`: its enums are declared with `slug_enum!`.
pub mod application;

pub use codice_fiscale::CodiceFiscale;
pub use contact::{EmailAddress, PhoneNumber};
pub use ticket::{Channel, EntryKind, Priority, Status, TicketNumber, Tier};
pub use user::Role;
