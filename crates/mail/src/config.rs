//! The `[email]` configuration section: mailboxes, SMTP relay, size limits, acknowledgements.
//! Documented with examples in config/email.example.toml.

use chrono::Duration;
use serde::Deserialize;
use sportello_domain::EmailAddress;

use crate::imap::MailboxConfig;
use crate::loops::SenderCap;
use crate::parse::ParseLimits;
use crate::smtp::SmtpConfig;

/// `[email]`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EmailConfig {
    #[serde(default)]
    pub mailboxes: Vec<MailboxConfig>,
    /// Without it no mail goes out (replies stay queued in the outbox).
    #[serde(default)]
    pub smtp: Option<SmtpConfig>,
    #[serde(default)]
    pub limits: EmailLimits,
    #[serde(default)]
    pub auto_ack: AutoAckConfig,
    /// Domain of the Message-IDs we generate; each mailbox's own domain when unset.
    #[serde(default)]
    pub message_id_domain: Option<String>,
}

/// `[email.limits]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct EmailLimits {
    /// Larger messages are imported with their headers only and a note.
    #[serde(default = "default_max_message_mb")]
    pub max_message_mb: u32,
    /// Larger attachments are listed with a note but not stored.
    #[serde(default = "default_max_attachment_mb")]
    pub max_attachment_mb: u32,
}

fn default_max_message_mb() -> u32 {
    30
}
fn default_max_attachment_mb() -> u32 {
    15
}

impl Default for EmailLimits {
    fn default() -> Self {
        EmailLimits {
            max_message_mb: default_max_message_mb(),
            max_attachment_mb: default_max_attachment_mb(),
        }
    }
}

impl EmailLimits {
    pub fn parse_limits(&self) -> ParseLimits {
        let mb = |n: u32| (n as usize).saturating_mul(1024 * 1024);
        ParseLimits {
            max_message_bytes: mb(self.max_message_mb),
            max_attachment_bytes: mb(self.max_attachment_mb),
        }
    }
}

/// `[email.auto_ack]`: the acknowledgement a citizen gets when a new ticket is opened.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AutoAckConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Replaces the Italian default text; `{numero}` is the ticket number, `{tag}` its tag.
    #[serde(default)]
    pub text_it: Option<String>,
    #[serde(default)]
    pub text_en: Option<String>,
    /// At most this many acknowledgements to one sender per `window_hours`.
    #[serde(default = "default_max_per_sender")]
    pub max_per_sender: usize,
    #[serde(default = "default_window_hours")]
    pub window_hours: u32,
}

fn yes() -> bool {
    true
}
fn default_max_per_sender() -> usize {
    3
}
fn default_window_hours() -> u32 {
    24
}

impl Default for AutoAckConfig {
    fn default() -> Self {
        AutoAckConfig {
            enabled: true,
            text_it: None,
            text_en: None,
            max_per_sender: default_max_per_sender(),
            window_hours: default_window_hours(),
        }
    }
}

impl AutoAckConfig {
    pub fn sender_cap(&self) -> SenderCap {
        SenderCap {
            limit: self.max_per_sender,
            window: Duration::hours(i64::from(self.window_hours)),
        }
    }
}

/// A configuration that parses but cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailConfigError {
    #[error("email.mailboxes: a mailbox has an empty name")]
    EmptyName,
    #[error("email.mailboxes: the name '{0}' is used twice (names key the import checkpoints)")]
    DuplicateName(String),
    #[error("email.mailboxes '{0}': batch_size must be at least 1")]
    ZeroBatch(String),
    #[error("email.mailboxes '{0}': move_to names the folder being imported")]
    MoveToSelf(String),
    #[error("email.mailboxes '{name}': imap_host is empty")]
    EmptyHost { name: String },
}

impl EmailConfig {
    /// Checks what serde cannot: unique names, sensible values.
    pub fn validate(&self) -> Result<(), EmailConfigError> {
        let mut names: Vec<&str> = Vec::new();
        for m in &self.mailboxes {
            let name = m.name.trim();
            if name.is_empty() {
                return Err(EmailConfigError::EmptyName);
            }
            if names.contains(&name) {
                return Err(EmailConfigError::DuplicateName(name.to_owned()));
            }
            names.push(name);
            if m.imap_host.trim().is_empty() {
                return Err(EmailConfigError::EmptyHost {
                    name: name.to_owned(),
                });
            }
            if m.batch_size == 0 {
                return Err(EmailConfigError::ZeroBatch(name.to_owned()));
            }
            if m.move_to.as_deref() == Some(m.folder.as_str()) {
                return Err(EmailConfigError::MoveToSelf(name.to_owned()));
            }
        }
        Ok(())
    }

    /// Every address the service sends from or receives at: never auto-acknowledged.
    pub fn own_addresses(&self) -> Vec<EmailAddress> {
        let mut out: Vec<EmailAddress> = self.mailboxes.iter().map(|m| m.address.clone()).collect();
        if let Some(smtp) = &self.smtp {
            out.push(smtp.from_address.clone());
        }
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Root {
        email: EmailConfig,
    }

    #[test]
    fn the_example_file_parses_and_validates() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../config/email.example.toml"
        );
        let text = std::fs::read_to_string(path).expect("config/email.example.toml exists");
        let root: Root = toml::from_str(&text).expect("the example parses");
        let email = root.email;
        email.validate().expect("the example is valid");
        assert_eq!(email.mailboxes.len(), 2);
        assert_eq!(email.mailboxes[1].folder, "INBOX");
        let smtp = email.smtp.as_ref().expect("smtp section");
        assert!(smtp.username.is_some());
        assert_eq!(email.own_addresses().len(), 3);
        assert_eq!(
            email.limits.parse_limits().max_attachment_bytes,
            15 * 1024 * 1024
        );
        assert_eq!(email.auto_ack.sender_cap().limit, 3);
    }

    #[test]
    fn an_empty_section_means_no_mailboxes_and_defaults() {
        let root: Root = toml::from_str("[email]").expect("parses");
        assert!(root.email.mailboxes.is_empty());
        assert!(root.email.smtp.is_none());
        assert!(root.email.auto_ack.enabled);
        root.email.validate().expect("valid");
    }

    #[test]
    fn duplicate_names_are_refused() {
        let one = r#"
            [[email.mailboxes]]
            name = "welfare"
            imap_host = "h.it"
            imap_tls = "tls"
            username = "u"
            password = "p"
            address = "a@b.it"
        "#;
        let root: Root = toml::from_str(&format!("{one}{one}")).expect("parses");
        assert_eq!(
            root.email.validate(),
            Err(EmailConfigError::DuplicateName("welfare".into()))
        );
    }
}
