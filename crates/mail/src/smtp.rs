//! SMTP delivery with lettre, with failures classified so the outbox worker knows whether to
//! retry later or give up.

use std::fmt;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::Deserialize;
use sportello_domain::EmailAddress;

use crate::compose::ComposedMessage;
use crate::parse::Party;
use crate::{Secret, TlsMode};

fn default_timeout_secs() -> u64 {
    30
}

/// `[email.smtp]`: the relay every outgoing message goes through.
#[derive(Clone, Deserialize)]
pub struct SmtpConfig {
    pub host: String,
    /// Defaults to 25 (`none`), 587 (`starttls`) or 465 (`tls`).
    #[serde(default)]
    pub port: Option<u16>,
    pub tls: TlsMode,
    /// Both optional: a relay on the local network may accept mail without authentication.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// Display name of `from_address`.
    pub from_name: String,
    /// Sender of messages that belong to no mailbox (appointments, reminders, notifications).
    pub from_address: EmailAddress,
    /// Seconds to wait for the server at each step.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port())
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("from_address", &self.from_address)
            .field("timeout_secs", &self.timeout_secs)
            .finish_non_exhaustive()
    }
}

impl SmtpConfig {
    /// The port in use, explicit or the usual one for the TLS mode.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            TlsMode::None => 25,
            TlsMode::Starttls => 587,
            TlsMode::Tls => 465,
        })
    }

    /// The sender of messages that belong to no mailbox.
    pub fn default_from(&self) -> Party {
        Party {
            address: self.from_address.clone(),
            name: Some(self.from_name.clone()).filter(|n| !n.trim().is_empty()),
        }
    }

    /// A pooled transport for this relay.
    pub fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, SmtpConfigError> {
        let tls = match self.tls {
            TlsMode::None => Tls::None,
            TlsMode::Starttls | TlsMode::Tls => {
                let params = TlsParameters::new_rustls(self.host.clone()).map_err(|e| {
                    SmtpConfigError::Tls {
                        host: self.host.clone(),
                        reason: e.to_string(),
                    }
                })?;
                if self.tls == TlsMode::Tls {
                    Tls::Wrapper(params)
                } else {
                    Tls::Required(params)
                }
            }
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(self.host.clone())
                .port(self.port())
                .tls(tls)
                .timeout(Some(Duration::from_secs(self.timeout_secs.max(1))));
        match (&self.username, &self.password) {
            (Some(user), Some(pass)) if !user.is_empty() => {
                builder =
                    builder.credentials(Credentials::new(user.clone(), pass.expose().to_owned()));
            }
            (Some(user), None) if !user.is_empty() => {
                return Err(SmtpConfigError::MissingPassword);
            }
            (None, Some(pass)) if !pass.is_empty() => {
                return Err(SmtpConfigError::MissingUsername);
            }
            _ => {}
        }
        Ok(builder.build())
    }
}

/// A configuration that cannot produce a transport.
#[derive(Debug, thiserror::Error)]
pub enum SmtpConfigError {
    #[error("email.smtp.password is set but email.smtp.username is not")]
    MissingUsername,
    #[error("email.smtp.username is set but email.smtp.password is not")]
    MissingPassword,
    #[error("TLS settings for SMTP host '{host}' are invalid: {reason}")]
    Tls { host: String, reason: String },
}

/// Whether a failed delivery is worth retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The server is down, slow, or answered 4xx: retry later.
    Transient,
    /// The server refused the message or a recipient for good (5xx): give up and tell the operator.
    Permanent,
}

/// A delivery that did not happen. The text carries the server's answer, which may name the
/// recipient: show it to operators, do not log it above debug level.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} SMTP failure{}: {detail}", match .kind { FailureKind::Transient => "transient", FailureKind::Permanent => "permanent" }, .code.map(|c| format!(" ({c})")).unwrap_or_default())]
pub struct SendError {
    pub kind: FailureKind,
    /// The SMTP reply code, when the server answered.
    pub code: Option<u16>,
    /// True when the fault is in our settings (authentication, TLS) rather than in the message:
    /// retrying helps only once an administrator fixed them.
    pub configuration: bool,
    pub detail: String,
}

impl SendError {
    pub fn is_transient(&self) -> bool {
        self.kind == FailureKind::Transient
    }

    pub fn is_permanent(&self) -> bool {
        self.kind == FailureKind::Permanent
    }
}

/// Reply codes that mean our credentials are wrong, not that the message is undeliverable.
const AUTH_CODES: &[u16] = &[530, 534, 535, 538, 454];

fn classify(err: &lettre::transport::smtp::Error) -> SendError {
    let code = err.status().and_then(|c| c.to_string().parse::<u16>().ok());
    let detail = err.to_string();
    if let Some(code) = code
        && AUTH_CODES.contains(&code)
    {
        return SendError {
            kind: FailureKind::Transient,
            code: Some(code),
            configuration: true,
            detail,
        };
    }
    if err.is_permanent() {
        return SendError {
            kind: FailureKind::Permanent,
            code,
            configuration: false,
            detail,
        };
    }
    SendError {
        kind: FailureKind::Transient,
        code,
        configuration: err.is_tls(),
        detail,
    }
}

/// Sends messages through the configured relay.
#[derive(Clone)]
pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    config: SmtpConfig,
}

impl fmt::Debug for SmtpSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSender")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SmtpSender {
    pub fn new(config: SmtpConfig) -> Result<Self, SmtpConfigError> {
        Ok(SmtpSender {
            transport: config.transport()?,
            config,
        })
    }

    pub fn config(&self) -> &SmtpConfig {
        &self.config
    }

    /// Delivers stored bytes to the envelope's recipients.
    pub async fn send_raw(&self, envelope: &Envelope, raw: &[u8]) -> Result<(), SendError> {
        match self.transport.send_raw(envelope, raw).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = classify(&e);
                // The server's text can name the recipient: only the code goes to the log.
                tracing::warn!(
                    smtp.host = %self.config.host,
                    smtp.code = err.code,
                    smtp.transient = err.is_transient(),
                    smtp.configuration = err.configuration,
                    "SMTP delivery failed"
                );
                Err(err)
            }
        }
    }

    /// Delivers a freshly composed message.
    pub async fn send(&self, message: &ComposedMessage) -> Result<(), SendError> {
        self.send_raw(&message.envelope, &message.raw).await
    }

    /// Whether the relay answers (connects, greets and accepts NOOP).
    pub async fn check(&self) -> Result<bool, SendError> {
        self.transport
            .test_connection()
            .await
            .map_err(|e| classify(&e))
    }
}

/// An envelope for stored bytes: the outbox keeps sender and recipients beside the raw message.
pub fn envelope(from: &EmailAddress, to: &[EmailAddress]) -> Result<Envelope, EnvelopeError> {
    let parse = |a: &EmailAddress| {
        a.as_str()
            .parse::<lettre::Address>()
            .map_err(|e| EnvelopeError(e.to_string()))
    };
    let recipients = to.iter().map(parse).collect::<Result<Vec<_>, _>>()?;
    Envelope::new(Some(parse(from)?), recipients).map_err(|e| EnvelopeError(e.to_string()))
}

/// Sender or recipients that cannot form an SMTP envelope.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid SMTP envelope: {0}")]
pub struct EnvelopeError(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml_text: &str) -> SmtpConfig {
        toml::from_str(toml_text).expect("valid config")
    }

    #[test]
    fn ports_default_by_tls_mode_and_password_is_redacted() {
        let c = config(
            r#"host = "smtp.example.it"
               tls = "starttls"
               username = "sportello"
               password = "segretissima"
               from_name = "Comune di Milano"
               from_address = "noreply@comune.example.it""#,
        );
        assert_eq!(c.port(), 587);
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("segretissima"), "{dbg}");
        assert_eq!(
            config(
                &"host='h.it'\ntls='tls'\nfrom_name=''\nfrom_address='a@b.it'".replace('\'', "\"")
            )
            .port(),
            465
        );
    }

    #[test]
    fn half_credentials_are_refused() {
        let c = config(
            "host=\"h.it\"\ntls=\"none\"\nusername=\"u\"\nfrom_name=\"x\"\nfrom_address=\"a@b.it\"",
        );
        assert!(matches!(
            c.transport(),
            Err(SmtpConfigError::MissingPassword)
        ));
    }

    #[tokio::test]
    async fn a_closed_port_is_a_transient_failure() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let c = config(&format!(
            "host=\"127.0.0.1\"\nport={port}\ntls=\"none\"\nfrom_name=\"x\"\nfrom_address=\"a@b.it\"\ntimeout_secs=2"
        ));
        let sender = SmtpSender::new(c).unwrap();
        let env = envelope(
            &EmailAddress::parse("a@b.it").unwrap(),
            &[EmailAddress::parse("c@d.it").unwrap()],
        )
        .unwrap();
        let err = sender
            .send_raw(&env, b"Subject: x\r\n\r\nx\r\n")
            .await
            .unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert!(!err.configuration, "{err}");
    }
}
