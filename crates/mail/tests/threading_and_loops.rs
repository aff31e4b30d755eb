//! Threading decisions and auto-reply suppression over realistic messages.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use chrono::{Duration, Utc};
use sportello_domain::{EmailAddress, TicketNumber};
use sportello_mail::loops::{SenderCap, Suppression, auto_reply_check};
use sportello_mail::parse::{self, InboundMessage, ParseLimits};
use sportello_mail::thread::{ThreadDecision, ThreadLookup, ThreadReason, decide, thread_keys};

fn data(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn msg(raw: &str) -> InboundMessage {
    parse::parse(raw.as_bytes(), &ParseLimits::default()).expect("parses")
}

fn file(name: &str) -> InboundMessage {
    parse::parse(&data(name), &ParseLimits::default()).expect("parses")
}

fn addr(s: &str) -> EmailAddress {
    EmailAddress::parse(s).expect("valid address")
}

/// An in-memory stand-in for the service's storage.
#[derive(Default)]
struct Store {
    by_message_id: HashMap<String, u32>,
    by_number: HashMap<String, u32>,
    by_thread_index: HashMap<String, u32>,
    contacts: HashMap<u32, HashSet<String>>,
}

impl Store {
    fn ticket(mut self, id: u32, number: &str, contacts: &[&str], message_ids: &[&str]) -> Self {
        self.by_number.insert(number.to_owned(), id);
        self.contacts
            .insert(id, contacts.iter().map(|c| c.to_string()).collect());
        for m in message_ids {
            self.by_message_id.insert(m.to_string(), id);
        }
        self
    }

    fn thread_index(mut self, root: &str, id: u32) -> Self {
        self.by_thread_index.insert(root.to_owned(), id);
        self
    }
}

impl ThreadLookup for Store {
    type Ticket = u32;

    fn ticket_by_message_id(&self, message_id: &str) -> Option<u32> {
        self.by_message_id.get(message_id).copied()
    }
    fn ticket_by_number(&self, number: &TicketNumber) -> Option<u32> {
        self.by_number.get(number.as_str()).copied()
    }
    fn ticket_by_thread_index(&self, root: &str) -> Option<u32> {
        self.by_thread_index.get(root).copied()
    }
    fn is_known_contact(&self, ticket: &u32, sender: &EmailAddress) -> bool {
        self.contacts
            .get(ticket)
            .is_some_and(|c| c.contains(sender.as_str()))
    }
}

fn store() -> Store {
    Store::default()
        .ticket(
            1,
            "SP-2026-000123",
            &["maria.esposito@example.it"],
            &[
                "first-citizen-msg@example.it",
                "0190a1b2c3d4e5f6@comune.example.it",
            ],
        )
        .ticket(
            2,
            "SP-2026-000777",
            &["luigi@example.it", "luigi.lavoro@example.com"],
            &["luigi-1@example.it"],
        )
}

#[test]
fn threading_table() {
    struct Row {
        what: &'static str,
        raw: String,
        want: ThreadDecision<u32>,
    }
    let header = |from: &str, extra: &str, subject: &str| {
        format!(
            "From: {from}\r\nSubject: {subject}\r\nMessage-ID: <new-{}@x.it>\r\n{extra}\r\nTesto.\r\n",
            subject.len()
        )
    };
    let rows = [
        Row {
            what: "reply by In-Reply-To from the citizen",
            raw: header(
                "maria.esposito@example.it",
                "In-Reply-To: <0190a1b2c3d4e5f6@comune.example.it>\r\n",
                "Re: x",
            ),
            want: ThreadDecision::Join {
                ticket: 1,
                reason: ThreadReason::InReplyTo,
            },
        },
        Row {
            what: "References only (In-Reply-To unknown)",
            raw: header(
                "maria.esposito@example.it",
                "In-Reply-To: <unknown@elsewhere.it>\r\nReferences: <first-citizen-msg@example.it> <unknown@elsewhere.it>\r\n",
                "Re: x",
            ),
            want: ThreadDecision::Join {
                ticket: 1,
                reason: ThreadReason::References,
            },
        },
        Row {
            what: "subject tag, second known address of the citizen",
            raw: header(
                "luigi.lavoro@example.com",
                "",
                "R: [SP-2026-000777] documenti",
            ),
            want: ThreadDecision::Join {
                ticket: 2,
                reason: ThreadReason::SubjectTag,
            },
        },
        Row {
            what: "sender case differs only in the domain",
            raw: header("luigi@EXAMPLE.IT", "", "[sp-2026-000777] altro"),
            want: ThreadDecision::Join {
                ticket: 2,
                reason: ThreadReason::SubjectTag,
            },
        },
        Row {
            what: "a stranger quoting someone else's ticket number",
            raw: header("sconosciuto@example.org", "", "Info su [SP-2026-000777]"),
            want: ThreadDecision::NewLinked {
                quoted_ticket: 2,
                reason: ThreadReason::SubjectTag,
            },
        },
        Row {
            what: "a stranger replying to another citizen's thread (forwarded mail)",
            raw: header(
                "figlio@example.org",
                "In-Reply-To: <0190a1b2c3d4e5f6@comune.example.it>\r\n",
                "Re: x",
            ),
            want: ThreadDecision::NewLinked {
                quoted_ticket: 1,
                reason: ThreadReason::InReplyTo,
            },
        },
        Row {
            what: "headers point at ticket 1 (not the sender's), tag at ticket 2 (the sender's)",
            raw: header(
                "luigi@example.it",
                "In-Reply-To: <0190a1b2c3d4e5f6@comune.example.it>\r\n",
                "Re: [SP-2026-000777] x",
            ),
            want: ThreadDecision::Join {
                ticket: 2,
                reason: ThreadReason::SubjectTag,
            },
        },
        Row {
            what: "unknown ticket number and no headers",
            raw: header("luigi@example.it", "", "[SP-2026-999999] nuova"),
            want: ThreadDecision::NewTicket,
        },
        Row {
            what: "brand new message",
            raw: header("nuovo@example.it", "", "Domanda ISEE"),
            want: ThreadDecision::NewTicket,
        },
    ];
    let s = store();
    for row in rows {
        assert_eq!(decide(&msg(&row.raw), &s), row.want, "{}", row.what);
    }
}

#[test]
fn outlook_replies_thread_by_thread_index_when_headers_are_gone() {
    let m = file("outlook_reply.eml");
    let root = m.thread_index_root().expect("thread index root");
    // Storage knows the conversation but none of the Message-IDs and the tag is unknown.
    let s = Store::default()
        .ticket(9, "SP-2026-000001", &["maria.esposito@example.it"], &[])
        .thread_index(&root, 9);
    assert_eq!(
        decide(&m, &s),
        ThreadDecision::Join {
            ticket: 9,
            reason: ThreadReason::ThreadIndex
        }
    );
    // With its headers known, In-Reply-To wins and is the recorded reason.
    assert_eq!(
        decide(&m, &store()),
        ThreadDecision::Join {
            ticket: 1,
            reason: ThreadReason::InReplyTo
        }
    );
    let keys = thread_keys(&m);
    assert_eq!(keys.message_ids[0].1, ThreadReason::InReplyTo);
    assert_eq!(keys.ticket_numbers[0].as_str(), "SP-2026-000123");
}

#[test]
fn messages_without_a_sender_never_join() {
    let m = msg("Subject: Re: [SP-2026-000777] x\r\nMessage-ID: <a@b.it>\r\n\r\nx\r\n");
    assert!(m.from.is_none());
    assert_eq!(
        decide(&m, &store()),
        ThreadDecision::NewLinked {
            quoted_ticket: 2,
            reason: ThreadReason::SubjectTag
        }
    );
}

fn own() -> Vec<EmailAddress> {
    vec![
        addr("welfare@comune.example.it"),
        addr("noreply@comune.example.it"),
    ]
}

#[test]
fn auto_reply_suppression_table() {
    let cases: [(&str, InboundMessage, Option<Suppression>); 11] = [
        ("citizen", file("latin1_8bit.eml"), None),
        (
            "out of office",
            file("auto_reply.eml"),
            Some(Suppression::AutoSubmitted("auto-replied".into())),
        ),
        ("bounce", file("bounce_dsn.eml"), Some(Suppression::Bounce)),
        (
            "delay report",
            file("bounce_delayed_headers_only.eml"),
            Some(Suppression::Bounce),
        ),
        (
            "newsletter",
            file("list_newsletter.eml"),
            Some(Suppression::Precedence("bulk".into())),
        ),
        (
            "our own mail looping back",
            file("loop_xloop.eml"),
            Some(Suppression::XLoop),
        ),
        (
            "Auto-Submitted: no is a human",
            msg("From: a@example.it\r\nAuto-Submitted: no\r\nMessage-ID: <1@x.it>\r\n\r\nx\r\n"),
            None,
        ),
        (
            "X-Autorespond",
            msg("From: a@example.it\r\nX-Autorespond: yes\r\nMessage-ID: <2@x.it>\r\n\r\nx\r\n"),
            Some(Suppression::XAutorespond),
        ),
        (
            "list without Precedence",
            msg(
                "From: a@example.it\r\nList-Id: <l.example.it>\r\nMessage-ID: <3@x.it>\r\n\r\nx\r\n",
            ),
            Some(Suppression::MailingList),
        ),
        (
            "our own address",
            msg("From: Welfare <WELFARE@comune.example.it>\r\nMessage-ID: <4@x.it>\r\n\r\nx\r\n"),
            Some(Suppression::OwnAddress),
        ),
        (
            "no-reply sender",
            msg("From: no-reply@inps.example.it\r\nMessage-ID: <5@x.it>\r\n\r\nx\r\n"),
            Some(Suppression::DaemonSender),
        ),
    ];
    for (what, m, want) in cases {
        assert_eq!(auto_reply_check(&m, &own()).err(), want, "{what}");
    }
    let null_rp = msg(
        "Return-Path: <>\r\nFrom: a@example.it\r\nMessage-ID: <6@x.it>\r\nSubject: ciao\r\n\r\nx\r\n",
    );
    assert_eq!(
        auto_reply_check(&null_rp, &own()),
        Err(Suppression::NullReturnPath)
    );
    let no_sender = msg("Subject: x\r\nMessage-ID: <7@x.it>\r\n\r\nx\r\n");
    assert_eq!(
        auto_reply_check(&no_sender, &own()),
        Err(Suppression::NoSender)
    );
    let oof = msg(
        "From: a@example.it\r\nX-Auto-Response-Suppress: DR, OOF\r\nMessage-ID: <8@x.it>\r\n\r\nx\r\n",
    );
    assert_eq!(
        auto_reply_check(&oof, &own()),
        Err(Suppression::AutoResponseSuppress)
    );
    let plain_bounce = msg(
        "Return-Path: <>\r\nFrom: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.org>\r\n\
         Subject: Mail delivery failed: returning message to sender\r\nMessage-ID: <9@x.it>\r\n\r\n\
         A message that you sent could not be delivered.\r\n\r\n------ This is a copy of the message's headers. ------\r\n\
         Message-ID: <0190abc@comune.example.it>\r\n",
    );
    let bounce = plain_bounce
        .bounce
        .as_ref()
        .expect("recognised without a report");
    assert!(!bounce.structured);
    assert_eq!(
        bounce.original_message_id.as_deref(),
        Some("0190abc@comune.example.it")
    );
    assert_eq!(
        auto_reply_check(&plain_bounce, &own()),
        Err(Suppression::Bounce)
    );
}

#[test]
fn the_sender_cap_stops_a_robot_conversation() {
    let cap = SenderCap::default();
    let now = Utc::now();
    let mut sent = Vec::new();
    let mut allowed = 0;
    for i in 0..50 {
        let t = now + Duration::minutes(i);
        if cap.allows(&sent, t) {
            allowed += 1;
            sent.push(t);
        }
    }
    assert_eq!(allowed, 3);
    assert!(cap.allows(&sent, now + Duration::hours(25)));
}
