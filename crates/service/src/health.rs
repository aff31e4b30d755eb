//! Readiness: whether this instance can do its work, dependency by dependency: the database,
//! each mailbox's IMAP fetcher and the SMTP relay.
//!
//! Only the database decides whether the instance is ready (a load balancer should stop
//! sending requests to an instance that cannot reach it). A mailbox or relay that is down
//! makes the report `degraded`: the instance still serves operators, and taking every
//! instance out of rotation because the mail server is down would help nobody. The relay is
//! probed (connect, greeting, NOOP) at most once per [`SMTP_PROBE_TTL`], so frequent probes do
//! not turn into a stream of SMTP connections. Nothing here carries error texts: the report is
//! unauthenticated, and admins read the details in `GET /api/v1/mail/mailboxes`.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sportello_mail::SmtpSender;

use crate::App;

/// How long an SMTP probe's result is reused.
pub const SMTP_PROBE_TTL: Duration = Duration::from_secs(30);
/// How long an SMTP probe may take before the relay counts as unreachable.
pub const SMTP_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The instance's readiness, as `GET /readyz` reports it.
#[derive(Clone, Debug, Serialize)]
pub struct Readiness {
    /// `ready`, `degraded` (a mailbox or the relay is down: still serving) or `unavailable`
    /// (the database cannot be reached).
    pub status: &'static str,
    /// `ok` or `unreachable`.
    pub database: &'static str,
    pub smtp: SmtpReadiness,
    pub mailboxes: Vec<MailboxReadiness>,
}

impl Readiness {
    /// Whether a load balancer should send requests here.
    pub fn is_ready(&self) -> bool {
        self.database == "ok"
    }
}

/// The SMTP relay.
#[derive(Clone, Debug, Serialize)]
pub struct SmtpReadiness {
    /// `ok`, `unreachable` (no answer, or refused), or `not_configured` (no `[email.smtp]`:
    /// replies wait in the outbox).
    pub state: &'static str,
    /// When the relay was last probed.
    pub checked_at: Option<DateTime<Utc>>,
}

/// One mailbox.
#[derive(Clone, Debug, Serialize)]
pub struct MailboxReadiness {
    pub name: String,
    /// `ok` (connected), `connecting` (running, not connected yet), `disconnected` (running,
    /// the last session failed: retrying with backoff), `standby` (another instance fetches
    /// it), `starting`, `stopped`, or `not_started` (fetchers do not run in this process).
    pub state: &'static str,
    pub fetcher: String,
    pub last_fetch: Option<DateTime<Utc>>,
    pub last_error_at: Option<DateTime<Utc>>,
}

/// What readiness keeps between probes.
#[derive(Default)]
pub(crate) struct HealthRuntime {
    smtp: tokio::sync::Mutex<SmtpProbe>,
}

#[derive(Default)]
struct SmtpProbe {
    sender: Option<SmtpSender>,
    last: Option<(Instant, DateTime<Utc>, bool)>,
}

impl App {
    /// Checks the database, reads the fetchers' state and probes the relay (cached).
    pub async fn readiness(&self) -> Readiness {
        let database = match self.db().ping().await {
            Ok(()) => "ok",
            Err(e) => {
                tracing::warn!(error = %e, "readiness: database unreachable");
                "unreachable"
            }
        };
        let smtp = self.smtp_readiness().await;
        let mailboxes: Vec<MailboxReadiness> = self
            .mailbox_health()
            .into_iter()
            .map(|m| {
                let state = match m.fetcher.as_str() {
                    "running" if m.connected => "ok",
                    "running" if m.last_error_at.is_some() => "disconnected",
                    "running" => "connecting",
                    "standby" => "standby",
                    "starting" => "starting",
                    "stopped" => "stopped",
                    _ => "not_started",
                };
                MailboxReadiness {
                    name: m.name,
                    state,
                    fetcher: m.fetcher,
                    last_fetch: m.last_fetch,
                    last_error_at: m.last_error_at,
                }
            })
            .collect();
        let mail_down = smtp.state == "unreachable"
            || mailboxes
                .iter()
                .any(|m| matches!(m.state, "disconnected" | "connecting" | "stopped"));
        let status = if database != "ok" {
            "unavailable"
        } else if mail_down {
            "degraded"
        } else {
            "ready"
        };
        Readiness {
            status,
            database,
            smtp,
            mailboxes,
        }
    }

    async fn smtp_readiness(&self) -> SmtpReadiness {
        let Some(config) = self.email_config().smtp.clone() else {
            return SmtpReadiness {
                state: "not_configured",
                checked_at: None,
            };
        };
        let mut probe = self.inner.health.smtp.lock().await;
        if let Some((when, at, ok)) = probe.last
            && when.elapsed() < SMTP_PROBE_TTL
        {
            return SmtpReadiness {
                state: if ok { "ok" } else { "unreachable" },
                checked_at: Some(at),
            };
        }
        if probe.sender.is_none() {
            probe.sender = SmtpSender::new(config).ok();
        }
        let ok = match &probe.sender {
            Some(sender) => matches!(
                tokio::time::timeout(SMTP_PROBE_TIMEOUT, sender.check()).await,
                Ok(Ok(true))
            ),
            None => false,
        };
        if !ok {
            tracing::warn!("readiness: the SMTP relay did not answer the probe");
        }
        let at = Utc::now();
        probe.last = Some((Instant::now(), at, ok));
        SmtpReadiness {
            state: if ok { "ok" } else { "unreachable" },
            checked_at: Some(at),
        }
    }
}
