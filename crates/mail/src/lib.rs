//! The e-mail channel's protocol side: MIME in, threading keys, loop protection, replies out.
//!
//! Everything here is storage-agnostic. [`parse`] turns raw bytes into an [`InboundMessage`],
//! [`thread`] decides which ticket it belongs to through a lookup trait the service implements,
//! [`loops`] says whether an automatic reply is allowed, [`compose`] builds outgoing messages,
//! [`imap`] fetches mailboxes into a [`imap::MailSink`] (which stores and advances the checkpoint
//! atomically) and [`smtp`] delivers raw messages with errors classified for retrying.

pub mod compose;
pub mod config;
mod html;
pub mod imap;
pub mod loops;
pub mod parse;
pub mod smtp;
pub mod thread;

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use sportello_domain::slug_enum;

pub use compose::{ComposedMessage, Language};
pub use config::EmailConfig;
pub use imap::{
    Checkpoint, FetchedMessage, ImapFetcher, MailSink, MailboxConfig, MailboxStatus, StatusHandle,
};
pub use parse::{Attachment, InboundMessage, ParseError, ParseLimits, ParseNote, Party};
pub use smtp::{SendError, SmtpConfig, SmtpSender};
pub use thread::{ThreadDecision, ThreadLookup, ThreadReason};

slug_enum! {
    /// How a connection to a mail server is protected.
    pub enum TlsMode as "TLS mode" {
        /// Plain TCP: only for servers on the same host or a trusted local network.
        None => "none",
        /// Plain TCP upgraded with STARTTLS before logging in; refused if the server cannot.
        Starttls => "starttls",
        /// TLS from the first byte (IMAPS on 993, SMTPS on 465).
        Tls => "tls",
    }
}

/// A password or other secret from configuration: never shown by `Debug` or `Display`.
#[derive(Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that has to send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn tls_modes_parse_from_config_slugs() {
        assert_eq!(TlsMode::parse("starttls"), Ok(TlsMode::Starttls));
        let err = TlsMode::parse("ssl").unwrap_err().to_string();
        assert!(err.contains("none, starttls, tls"), "{err}");
    }
}
