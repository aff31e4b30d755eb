//! Switchboard call reports (native webhook, Zammad's generic CTI, Asterisk CDR files) turned
//! into call events and converging call records, with no IO beyond reading a CDR stream.

pub mod cdr;
pub mod config;
pub mod model;
pub mod native;
pub mod record;
pub mod synth;
pub mod zammad;

pub use cdr::{CdrReader, CdrReason, CdrRow, Disposition, RejectedRow, measure_cdr_parse};
pub use config::{Integration, IntegrationKind, PhoneConfig, PhoneConfigError, Token};
pub use model::{Answerer, CallEvent, CallEventKind, Direction, HangupCause, Party};
pub use native::{NativeError, native_json, parse_native};
pub use record::{AnsweredBy, CallEnd, CallMismatch, CallOutcome, CallRecord};
pub use zammad::{CtiError, parse_cti_form, parse_cti_json};
