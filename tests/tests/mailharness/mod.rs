//! Harness of the e-mail suites: the real server on a loopback port with an `[email]`
//! configuration, over a scratch SQLite file or PostgreSQL database, plus message builders and
//! a tiny in-process SMTP server whose answers a test chooses.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sportello_domain::EmailAddress;
use sportello_service::mail::sportello_mail::imap::{FetchedMessage, MailboxConfig};
use sportello_service::mail::sportello_mail::{EmailConfig, MailSink, SmtpConfig, TlsMode};
use sportello_service::{App, ServiceConfig};
use sportello_store::sea_orm::{ConnectionTrait, Statement};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::common::{self, ADMIN_PASSWORD, Backend, Cleanup};

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

pub struct MailApp {
    pub base: String,
    pub client: reqwest::Client,
    pub app: App,
    pub admin_token: String,
    pub database_url: String,
    pub stop: CancellationToken,
    cleanup: Option<Cleanup>,
    next_uid: Mutex<u32>,
}

impl Drop for MailApp {
    fn drop(&mut self) {
        self.stop.cancel();
        match self.cleanup.take() {
            Some(Cleanup::Dir(d)) => {
                let _ = std::fs::remove_dir_all(d);
            }
            Some(Cleanup::PgDatabase { admin_url, name }) => {
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .ok()?;
                    rt.block_on(async {
                        let opts = sportello_store::DbOptions {
                            migrate: false,
                            ..Default::default()
                        };
                        let db = sportello_store::connect(&admin_url, &opts).await.ok()?;
                        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                        db.write
                            .execute_raw(Statement::from_string(db.backend(), sql))
                            .await
                            .ok()?;
                        Some(())
                    })
                })
                .join();
            }
            None => {}
        }
    }
}

/// A scratch database URL and what removes it.
pub async fn scratch_database(backend: Backend) -> (String, Cleanup) {
    match backend {
        Backend::Sqlite => {
            let dir = std::env::temp_dir().join(format!("sportello-mailtest-{}", Uuid::now_v7()));
            std::fs::create_dir_all(&dir).unwrap();
            (
                format!("sqlite://{}/t.db?mode=rwc", dir.display()),
                Cleanup::Dir(dir),
            )
        }
        Backend::Postgres => {
            let (url, admin_url, name) = common::fresh_pg_database().await;
            (url, Cleanup::PgDatabase { admin_url, name })
        }
    }
}

impl MailApp {
    pub async fn spawn(backend: Backend, email: EmailConfig) -> MailApp {
        let (url, cleanup) = scratch_database(backend).await;
        Self::spawn_on(&url, Some(cleanup), email).await
    }

    /// Another instance on an existing database.
    pub async fn spawn_on(url: &str, cleanup: Option<Cleanup>, email: EmailConfig) -> MailApp {
        let db = sportello_store::connect(url, &Default::default())
            .await
            .expect("connect");
        let config = ServiceConfig {
            email,
            ..ServiceConfig::default()
        };
        let app = App::new(db, config).await.expect("app");
        app.bootstrap_admin(Some(ADMIN_PASSWORD.into()))
            .await
            .expect("bootstrap admin");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let router = sportello_server::router(app.clone(), Default::default());
        let s = stop.clone();
        tokio::spawn(async move {
            sportello_server::serve(listener, router, async move { s.cancelled().await }).await
        });
        let mut t = MailApp {
            base,
            client: reqwest::Client::new(),
            app,
            admin_token: String::new(),
            database_url: url.to_owned(),
            stop,
            cleanup,
            next_uid: Mutex::new(1),
        };
        t.admin_token = t.login("admin", ADMIN_PASSWORD).await;
        t
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn login(&self, username: &str, password: &str) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": username, "password": password})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "login {username}: {body}");
        body["token"].as_str().unwrap().to_owned()
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let ctype = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = res.text().await.unwrap();
        if status.is_client_error() || status.is_server_error() {
            assert_eq!(
                ctype, "application/problem+json",
                "{status} {path}: errors must be problem+json: {text}"
            );
        }
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, v)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// Creates a user with the given roles and returns (id, token).
    pub async fn user(&self, username: &str, roles: &[&str]) -> (String, String) {
        let pw = format!("{username}-password");
        let (status, body) = self
            .post(
                "/api/v1/users",
                &self.admin_token,
                json!({"username": username, "password": pw, "name": format!("Operatore {username}"), "roles": roles}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (
            body["id"].as_str().unwrap().to_owned(),
            self.login(username, &pw).await,
        )
    }

    /// Feeds raw messages through the fetchers' sink, as the next UIDs of the mailbox.
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
