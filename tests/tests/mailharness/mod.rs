//! Harness of the e-mail suites: the real server on a loopback port with an `[email]`
//! configuration, over a scratch SQLite file or PostgreSQL database, plus message builders and
//! a tiny in-process SMTP server whose answers a test chooses.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use serde_json::Value;
use sportello_domain::EmailAddress;
use sportello_service::ServiceConfig;
use sportello_service::mail::sportello_mail::imap::{FetchedMessage, MailboxConfig};
use sportello_service::mail::sportello_mail::{EmailConfig, MailSink, SmtpConfig, TlsMode};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use uuid::Uuid;

use crate::common::{self, Backend, Cleanup, TestApp};

pub const MAILBOX: &str = "welfare";
pub const MAILBOX_ADDRESS: &str = "welfare@comune.example.it";

/// Runs a test body with a [`MailApp`] on SQLite and, when switched on, on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends_mail {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::mailharness::MailApp::spawn($crate::common::Backend::Sqlite, $crate::mailharness::email_config()).await).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if $crate::common::pg_url().is_none() {
                        eprintln!("SPORTELLO_TEST_PG_URL not set: PostgreSQL variant switched off");
                        return;
                    }
                    super::$name($crate::mailharness::MailApp::spawn($crate::common::Backend::Postgres, $crate::mailharness::email_config()).await).await
                }
            }
        )+
    };
}

/// The mailbox every suite imports into (no fetcher runs unless a test starts one).
pub fn mailbox_config() -> MailboxConfig {
    let mut m = MailboxConfig::new(
        MAILBOX,
        "127.0.0.1",
        TlsMode::None,
        "sportello",
        "unused",
        EmailAddress::parse(MAILBOX_ADDRESS).expect("valid"),
    );
    m.imap_port = Some(1);
    m.default_category = Some("eligibility".into());
    m
}

pub fn smtp_config(port: u16) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port: Some(port),
        tls: TlsMode::None,
        username: None,
        password: None,
        from_name: "Comune di Milano - Sportello Welfare".into(),
        from_address: EmailAddress::parse("noreply-sportello@comune.example.it").expect("valid"),
        timeout_secs: 5,
    }
}

pub fn email_config() -> EmailConfig {
    EmailConfig {
        mailboxes: vec![mailbox_config()],
        smtp: None,
        ..Default::default()
    }
}

/// A [`TestApp`] with an `[email]` configuration (router and relay off, so the suites see the
/// channel alone), plus the UIDs it hands to delivered messages.
pub struct MailApp {
    inner: TestApp,
    next_uid: Mutex<u32>,
}

impl std::ops::Deref for MailApp {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.inner
    }
}

impl MailApp {
    pub async fn spawn(backend: Backend, email: EmailConfig) -> MailApp {
        let (url, cleanup) = common::scratch_database(backend).await;
        Self::spawn_on(&url, Some(cleanup), email).await
    }

    /// Another instance on an existing database.
    pub async fn spawn_on(url: &str, cleanup: Option<Cleanup>, email: EmailConfig) -> MailApp {
        let config = ServiceConfig {
            email,
            ..ServiceConfig::default()
        };
        MailApp {
            inner: TestApp::spawn_with(url, cleanup, config, false).await,
            next_uid: Mutex::new(1),
        }
    }

    pub async fn deliver(&self, raws: &[Vec<u8>]) {
        let sink = self.app.mail_sink();
        let messages: Vec<FetchedMessage> = {
            let mut next = self.next_uid.lock().unwrap();
            raws.iter()
                .map(|raw| {
                    let uid = *next;
                    *next += 1;
                    FetchedMessage {
                        uid,
                        raw: raw.clone(),
                    }
                })
                .collect()
        };
        sink.store_batch(MAILBOX, 7, messages)
            .await
            .expect("store_batch");
    }

    /// The ticket holding a Message-ID, read through the API with the admin's token.
    pub async fn ticket_of(&self, message_id: &str) -> Value {
        let id = self
            .app
            .ticket_of_message(message_id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no ticket holds <{message_id}>"));
        self.read_ticket(&id.to_string()).await
    }

    pub async fn read_ticket(&self, id: &str) -> Value {
        let (status, t) = self
            .get(&format!("/api/v1/tickets/{id}"), &self.admin_token)
            .await;
        assert_eq!(status, StatusCode::OK, "{t}");
        t
    }

    pub async fn email_tickets(&self) -> Vec<Value> {
        let (status, page) = self
            .get(
                "/api/v1/tickets?channel=email&limit=200&order=asc",
                &self.admin_token,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        page["items"].as_array().unwrap().clone()
    }
}

/// Entries of a ticket's timeline of one kind.
pub fn entries<'a>(ticket: &'a Value, kind: &str) -> Vec<&'a Value> {
    ticket["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter(|e| e["kind"] == kind)
        .collect()
}

/// A fresh Message-ID.
pub fn mid(tag: &str) -> String {
    format!("{tag}-{}@example.it", Uuid::now_v7().simple())
}

/// A plain UTF-8 message; `extra` are additional header lines (without line ends).
pub fn message(from: &str, subject: &str, message_id: &str, extra: &[&str], body: &str) -> Vec<u8> {
    let mut s = format!(
        "From: {from}\r\nTo: Sportello Welfare <{MAILBOX_ADDRESS}>\r\nSubject: {subject}\r\n\
         Message-ID: <{message_id}>\r\nDate: Tue, 03 Mar 2026 09:15:02 +0100\r\nMIME-Version: 1.0\r\n"
    );
    for h in extra {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str(
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
    );
    s.push_str(body);
    s.push_str("\r\n");
    s.into_bytes()
}

/// What the fake SMTP server answers.
#[derive(Clone, Debug)]
pub enum SmtpMode {
    Accept,
    /// Answer the end of DATA with this reply, e.g. `451 4.3.0 Try again later`.
    RejectData(String),
}

/// A minimal SMTP server on a loopback port that records what it accepts.
#[derive(Clone)]
pub struct FakeSmtp {
    pub port: u16,
    pub mode: Arc<Mutex<SmtpMode>>,
    pub received: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl FakeSmtp {
    pub async fn start() -> FakeSmtp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let fake = FakeSmtp {
            port,
            mode: Arc::new(Mutex::new(SmtpMode::Accept)),
            received: Arc::new(Mutex::new(Vec::new())),
        };
        let f = fake.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let f = f.clone();
                tokio::spawn(async move {
                    let _ = f.session(sock).await;
                });
            }
        });
        fake
    }

    pub fn set(&self, mode: SmtpMode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn received(&self) -> Vec<Vec<u8>> {
        self.received.lock().unwrap().clone()
    }

    async fn session(&self, sock: tokio::net::TcpStream) -> std::io::Result<()> {
        let (r, mut w) = sock.into_split();
        let mut r = BufReader::new(r);
        w.write_all(b"220 fake.example.it ESMTP\r\n").await?;
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let cmd = line.trim_end().to_ascii_uppercase();
            if cmd.starts_with("EHLO") {
                w.write_all(b"250-fake.example.it\r\n250 8BITMIME\r\n")
                    .await?;
            } else if cmd.starts_with("HELO")
                || cmd.starts_with("MAIL")
                || cmd.starts_with("RCPT")
                || cmd.starts_with("RSET")
                || cmd.starts_with("NOOP")
            {
                w.write_all(b"250 OK\r\n").await?;
            } else if cmd.starts_with("DATA") {
                w.write_all(b"354 go ahead\r\n").await?;
                let mut data = Vec::new();
                loop {
                    let mut l = Vec::new();
                    if r.read_until(b'\n', &mut l).await? == 0 {
                        return Ok(());
                    }
                    if l == b".\r\n" || l == b".\n" {
                        break;
                    }
                    data.extend_from_slice(&l);
                }
                let mode = self.mode.lock().unwrap().clone();
                match mode {
                    SmtpMode::Accept => {
                        self.received.lock().unwrap().push(data);
                        w.write_all(b"250 2.0.0 queued\r\n").await?;
                    }
                    SmtpMode::RejectData(reply) => {
                        w.write_all(format!("{reply}\r\n").as_bytes()).await?;
                    }
                }
            } else if cmd.starts_with("QUIT") {
                w.write_all(b"221 bye\r\n").await?;
                return Ok(());
            } else {
                w.write_all(b"502 not implemented\r\n").await?;
            }
        }
    }
}

/// A header's value in raw message bytes (first occurrence, unfolded).
pub fn header(raw: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(raw).replace("\r\n", "\n");
    let head = text.split("\n\n").next().unwrap_or("");
    let mut lines = head.split('\n').peekable();
    while let Some(l) = lines.next() {
        if let Some((n, v)) = l.split_once(':')
            && n.eq_ignore_ascii_case(name)
        {
            let mut value = v.trim().to_owned();
            while let Some(next) = lines.peek() {
                if next.starts_with(' ') || next.starts_with('\t') {
                    value.push(' ');
                    value.push_str(next.trim());
                    lines.next();
                } else {
                    break;
                }
            }
            return Some(value);
        }
    }
    None
}
