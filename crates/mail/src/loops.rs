//! Loop and noise protection: whether an automatic acknowledgement may answer a message, and
//! a per-sender cap on automatic replies.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use sportello_domain::EmailAddress;

use crate::parse::InboundMessage;

/// Why no automatic reply goes out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Suppression {
    /// `Auto-Submitted` other than `no` (RFC 3834).
    AutoSubmitted(String),
    /// `X-Autoreply` and relatives.
    XAutoreply,
    /// `X-Autorespond`.
    XAutorespond,
    /// `Precedence: bulk`, `junk`, `list` or `auto_reply`.
    Precedence(String),
    /// Mailing-list headers.
    MailingList,
    /// `X-Loop` names one of our addresses: our own mail came back.
    XLoop,
    /// Microsoft's `X-Auto-Response-Suppress` asks for no automatic replies.
    AutoResponseSuppress,
    /// The sender is one of our own mailboxes.
    OwnAddress,
    /// A bounce or delivery report.
    Bounce,
    /// A report of any other kind (read receipts).
    Report(String),
    /// `Return-Path: <>`: nothing can be sent back.
    NullReturnPath,
    /// `MAILER-DAEMON`, `postmaster`, `no-reply` and similar senders.
    DaemonSender,
    /// No usable sender address.
    NoSender,
}

impl fmt::Display for Suppression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Suppression::AutoSubmitted(v) => write!(f, "Auto-Submitted: {v}"),
            Suppression::XAutoreply => f.write_str("X-Autoreply header"),
            Suppression::XAutorespond => f.write_str("X-Autorespond header"),
            Suppression::Precedence(v) => write!(f, "Precedence: {v}"),
            Suppression::MailingList => f.write_str("mailing-list headers"),
            Suppression::XLoop => f.write_str("X-Loop names our address"),
            Suppression::AutoResponseSuppress => f.write_str("X-Auto-Response-Suppress"),
            Suppression::OwnAddress => f.write_str("sender is one of our own addresses"),
            Suppression::Bounce => f.write_str("bounce or delivery-status report"),
            Suppression::Report(kind) => write!(f, "{kind} report"),
            Suppression::NullReturnPath => f.write_str("null return path"),
            Suppression::DaemonSender => f.write_str("sender is a mail daemon or no-reply address"),
            Suppression::NoSender => f.write_str("no usable sender address"),
        }
    }
}

/// Local parts of addresses that never read mail.
const DAEMON_LOCAL_PARTS: &[&str] = &[
    "mailer-daemon",
    "postmaster",
    "noreply",
    "no-reply",
    "no_reply",
    "donotreply",
    "do-not-reply",
    "do_not_reply",
    "bounce",
    "bounces",
    "non-rispondere",
    "nonrispondere",
    "noreply-pec",
];

fn same_address(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// Whether an automatic acknowledgement may be sent in answer to `msg`; `own` lists every
/// address the service sends from or receives at.
pub fn auto_reply_check(msg: &InboundMessage, own: &[EmailAddress]) -> Result<(), Suppression> {
    let auto = &msg.auto;
    if msg.is_bounce() {
        return Err(Suppression::Bounce);
    }
    if let Some(kind) = &auto.report_type {
        return Err(Suppression::Report(kind.clone()));
    }
    if let Some(v) = auto.auto_submitted.as_deref()
        && v != "no"
    {
        return Err(Suppression::AutoSubmitted(v.to_owned()));
    }
    if auto.x_autoreply {
        return Err(Suppression::XAutoreply);
    }
    if auto.x_autorespond {
        return Err(Suppression::XAutorespond);
    }
    if let Some(p) = auto.precedence.as_deref()
        && matches!(p, "bulk" | "junk" | "list" | "auto_reply")
    {
        return Err(Suppression::Precedence(p.to_owned()));
    }
    if auto.list_id.is_some() {
        return Err(Suppression::MailingList);
    }
    if auto.x_loop.iter().any(|l| {
        own.iter().any(|o| {
            l.to_ascii_lowercase()
                .contains(&o.as_str().to_ascii_lowercase())
        })
    }) {
        return Err(Suppression::XLoop);
    }
    if let Some(v) = auto.auto_response_suppress.as_deref() {
        let v = v.to_ascii_lowercase();
        if v.split(',')
            .any(|t| matches!(t.trim(), "all" | "autoreply" | "oof"))
        {
            return Err(Suppression::AutoResponseSuppress);
        }
    }
    if auto.return_path.as_deref() == Some("") {
        return Err(Suppression::NullReturnPath);
    }
    let Some(sender) = msg.from.as_ref().map(|p| &p.address) else {
        return Err(Suppression::NoSender);
    };
    let reply_target = msg.reply_to.as_ref().map(|p| &p.address);
    for addr in std::iter::once(sender).chain(reply_target) {
        if own.iter().any(|o| same_address(o.as_str(), addr.as_str())) {
            return Err(Suppression::OwnAddress);
        }
        let local = addr.local_part().to_ascii_lowercase();
        if DAEMON_LOCAL_PARTS.contains(&local.as_str()) {
            return Err(Suppression::DaemonSender);
        }
    }
    if let Some(rp) = auto.return_path.as_deref()
        && own.iter().any(|o| same_address(o.as_str(), rp))
    {
        return Err(Suppression::OwnAddress);
    }
    Ok(())
}

/// At most `limit` automatic replies to one sender within `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderCap {
    pub limit: usize,
    pub window: Duration,
}

impl Default for SenderCap {
    /// Three acknowledgements a day: enough for a citizen who writes about several matters,
    /// too few to sustain a loop with another robot.
    fn default() -> Self {
        SenderCap {
            limit: 3,
            window: Duration::hours(24),
        }
    }
}

impl SenderCap {
    /// Whether one more automatic reply is allowed now, given when the previous ones to the same
    /// sender went out (any order; older ones are ignored).
    pub fn allows(&self, recent: &[DateTime<Utc>], now: DateTime<Utc>) -> bool {
        let since = now - self.window;
        let in_window = recent.iter().filter(|t| **t > since && **t <= now).count();
        in_window < self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_counts_only_replies_inside_the_window() {
        let cap = SenderCap {
            limit: 2,
            window: Duration::hours(1),
        };
        let now = Utc::now();
        assert!(cap.allows(&[], now));
        assert!(cap.allows(&[now - Duration::minutes(10)], now));
        assert!(!cap.allows(
            &[now - Duration::minutes(10), now - Duration::minutes(50)],
            now
        ));
        assert!(cap.allows(
            &[now - Duration::minutes(10), now - Duration::minutes(70)],
            now
        ));
        let zero = SenderCap {
            limit: 0,
            window: Duration::hours(1),
        };
        assert!(!zero.allows(&[], now));
    }
}
