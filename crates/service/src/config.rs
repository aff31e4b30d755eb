//! Settings of the service layer.

use serde::{Deserialize, Serialize};

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
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig { ticket_prefix: "SP".into(), number_block: 20, token_ttl_hours: 12 }
    }
}
