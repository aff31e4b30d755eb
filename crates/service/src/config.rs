//! Settings of the service layer.

use serde::{Deserialize, Serialize};
use sportello_domain::calendar::CalendarConfig;
use sportello_phone::PhoneConfig;

/// Settings the use cases need; loaded by the binary from its layered configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceConfig {
    /// Prefix of ticket numbers (`SP` gives `SP-2026-000123`).
    pub ticket_prefix: String,
    /// How many ticket numbers an instance reserves at a time.
    pub number_block: u32,
    /// Lifetime of a sign-in token, in hours.
    pub token_ttl_hours: u32,
    /// The phone channel (`[phone]` at the top of the configuration file; the binary copies
    /// it here).
    #[serde(skip)]
    pub phone: PhoneConfig,
    /// The e-mail channel (`[email]` at the top of the configuration file; the binary copies
    /// it here).
    #[serde(skip)]
    pub email: sportello_mail::EmailConfig,
    /// Opening hours and holidays the call-back deadlines count in (`[service.calendar]`);
    /// Milan's office hours by default.
    pub calendar: CalendarConfig,
    /// The counter channel: address, no-show grace period, planner (`[service.counter]`).
    pub counter: crate::counter::CounterConfig,
    /// The back office's applications: notifications, ISEE thresholds, documents checklists
    /// and monitoring per measure (`[service.applications]`).
    pub applications: crate::applications::ApplicationsConfig,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            ticket_prefix: "SP".into(),
            number_block: 20,
            token_ttl_hours: 12,
            phone: PhoneConfig::default(),
            email: sportello_mail::EmailConfig::default(),
            calendar: CalendarConfig::default(),
            counter: crate::counter::CounterConfig::default(),
            applications: crate::applications::ApplicationsConfig::default(),
        }
    }
}
