//! sea-orm entities, one module per table, in the shape `sea-orm-cli generate entity` writes.
//! They mirror the migrations exactly; behaviour lives in the service layer, not here.

pub mod application;
pub mod application_document;
pub mod application_event;
pub mod application_monitoring;
pub mod audit_log;
pub mod auth_token;
pub mod call;
pub mod callback;
pub mod citizen;
pub mod citizen_contact;
pub mod counter_booking;
pub mod counter_plan;
pub mod counter_session;
pub mod counter_slot;
pub mod mail_attachment;
pub mod mail_checkpoint;
pub mod mail_message;
pub mod mail_outbox;
pub mod mail_quarantine;
pub mod operator_profile;
pub mod payment;
pub mod prepared_answer;
pub mod setting;
pub mod taxonomy;
pub mod ticket;
pub mod ticket_application;
pub mod ticket_counter;
pub mod ticket_entry;
pub mod ticket_routing;
pub mod user;
