//! The e-mail channel end to end against real services: Dovecot over IMAP (IDLE) and an SMTP
//! sink, both started by deploy/scripts/test-services.sh.
//!
//! Switched on by SPORTELLO_TEST_IMAP_HOST (IMAP tests) and SPORTELLO_TEST_SMTP_HOST (SMTP
//! tests); when set, an unreachable server fails the test instead of skipping it:
//!
//! ```text
//! eval "$(deploy/scripts/test-services.sh start /tmp/svc)"
//! cargo test -p sportello-tests --test email_live
//! ```
//!
//! The tests run one at a time (one restarts Dovecot, another stops the SMTP sink), each in a
//! fresh IMAP folder, on SQLite and, with SPORTELLO_TEST_PG_URL, on PostgreSQL.

mod common;
mod mailharness;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sportello_domain::EmailAddress;
use sportello_service::mail::OutboxOptions;
use sportello_service::mail::sportello_mail::imap::{ImapSession, MailboxConfig, connect};
use sportello_service::mail::sportello_mail::{SmtpSender, TlsMode};
use tokio_util::sync::CancellationToken;

use common::Backend;
use mailharness::{MailApp, entries, header, message, mid, smtp_config};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Live {
    imap: Option<(String, u16, String, String)>,
    smtp: Option<(u16, PathBuf)>,
    script: Option<(PathBuf, PathBuf)>,
}

fn var(name: &str, because: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{because} is set but {name} is not"))
}

fn reachable(host: &str, port: u16, what: &str) {
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .unwrap_or_else(|e| panic!("{what} host {host} does not resolve: {e}"))
        .next()
        .expect("an address");
    if let Err(e) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
        panic!("{what} is switched on but {host}:{port} is unreachable: {e}");
    }
}

/// The services from the environment; each part `None` when its variable is unset.
fn live() -> Live {
    let imap = std::env::var("SPORTELLO_TEST_IMAP_HOST").ok().map(|host| {
        let why = "SPORTELLO_TEST_IMAP_HOST";
        let port: u16 = var("SPORTELLO_TEST_IMAP_PORT", why)
            .parse()
            .expect("SPORTELLO_TEST_IMAP_PORT is a port");
        reachable(&host, port, "IMAP");
        (
            host,
            port,
            var("SPORTELLO_TEST_IMAP_USER", why),
            var("SPORTELLO_TEST_IMAP_PASS", why),
        )
    });
    let smtp = std::env::var("SPORTELLO_TEST_SMTP_HOST").ok().map(|host| {
        let why = "SPORTELLO_TEST_SMTP_HOST";
        let port: u16 = var("SPORTELLO_TEST_SMTP_PORT", why)
            .parse()
            .expect("SPORTELLO_TEST_SMTP_PORT is a port");
        reachable(&host, port, "SMTP");
        (port, PathBuf::from(var("SPORTELLO_TEST_SMTP_DIR", why)))
    });
    let script = match (
        std::env::var("SPORTELLO_TEST_SERVICES_SCRIPT"),
        std::env::var("SPORTELLO_TEST_SERVICES_DIR"),
    ) {
        (Ok(s), Ok(d)) => Some((PathBuf::from(s), PathBuf::from(d))),
        _ => None,
    };
    Live { imap, smtp, script }
}

impl Live {
    fn mailbox(&self, folder: &str) -> MailboxConfig {
        let (host, port, user, pass) = self.imap.clone().expect("IMAP switched on");
        let mut m = MailboxConfig::new(
            mailharness::MAILBOX,
            host,
            TlsMode::None,
            user,
            pass,
            EmailAddress::parse(mailharness::MAILBOX_ADDRESS).expect("valid"),
        );
        m.imap_port = Some(port);
        m.folder = folder.to_owned();
        // If IDLE did not work nothing would arrive within the deadlines below.
        m.poll_interval_secs = 600;
        m.batch_size = 50;
        m.backoff_initial_ms = 200;
        m.backoff_max_secs = 2;
        m.command_timeout_secs = 20;
        m
    }

    async fn session(&self) -> ImapSession {
        connect(&self.mailbox("INBOX")).await.expect("IMAP session")
    }

    async fn folder(&self, tag: &str) -> String {
        let name = format!("e-{tag}-{}", uuid::Uuid::now_v7().simple());
        let mut s = self.session().await;
        s.create(&name).await.expect("CREATE");
        let _ = s.logout().await;
        name
    }

    async fn append(&self, folder: &str, messages: &[Vec<u8>]) {
        let mut s = self.session().await;
        for m in messages {
            s.append(folder, None, None, m).await.expect("APPEND");
        }
        let _ = s.logout().await;
    }

    /// Runs a command of the services script (restart-imap, stop-smtp, start-smtp).
    async fn services(&self, command: &str) {
        let (script, dir) = self
            .script
            .clone()
            .expect("SPORTELLO_TEST_SERVICES_SCRIPT and _DIR (set by test-services.sh)");
        let command = command.to_owned();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(&script)
                .arg(&command)
                .arg(&dir)
                .output()
                .expect("run the services script")
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "services script failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The message the SMTP sink received with this Message-ID.
    fn received(&self, message_id: &str) -> Option<Vec<u8>> {
        let (_, dir) = self.smtp.as_ref()?;
        let want = format!("<{message_id}>");
        for entry in std::fs::read_dir(dir).ok()?.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "eml")
                && let Ok(raw) = std::fs::read(&path)
                && header(&raw, "Message-ID").as_deref() == Some(want.as_str())
            {
                return Some(raw);
            }
        }
        None
    }

    fn received_in_reply_to(&self, message_id: &str) -> Vec<Vec<u8>> {
        let Some((_, dir)) = self.smtp.as_ref() else {
            return Vec::new();
        };
        let want = format!("<{message_id}>");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "eml")
                && let Ok(raw) = std::fs::read(&path)
                && header(&raw, "In-Reply-To").as_deref() == Some(want.as_str())
            {
                out.push(raw);
            }
        }
        out
    }
}

fn fast_outbox() -> OutboxOptions {
    OutboxOptions {
        poll_interval: Duration::from_secs(1),
        initial_backoff: Duration::from_millis(500),
        max_backoff: Duration::from_secs(2),
        ..OutboxOptions::default()
    }
}

/// An app whose fetcher imports `folder` (none: no fetcher) and whose outbox worker sends to
/// the SMTP sink.
async fn live_app(
    live: &Live,
    backend: Backend,
    folder: Option<&str>,
) -> (MailApp, CancellationToken) {
    let mut email = mailharness::email_config();
    if let Some(f) = folder {
        email.mailboxes = vec![live.mailbox(f)];
    }
    email.smtp = live.smtp.as_ref().map(|(port, _)| smtp_config(*port));
    let t = MailApp::spawn(backend, email).await;
    let stop = CancellationToken::new();
    if folder.is_some() {
        let tasks = t.app.start_mail_with(stop.clone(), fast_outbox()).unwrap();
        let token = stop.clone();
        tokio::spawn(async move {
            token.cancelled().await;
            tasks.join().await;
        });
    } else if let Some(smtp) = t.app.email_config().smtp.clone() {
        let sender = SmtpSender::new(smtp).unwrap();
        let app = t.app.clone();
        let token = stop.clone();
        tokio::spawn(async move { app.run_outbox(sender, fast_outbox(), token).await });
    }
    (t, stop)
}

async fn wait_until<F, Fut, T>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn mailbox_status(t: &MailApp) -> Value {
    let (status, body) = t.get("/api/v1/mail/mailboxes", &t.admin_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["mailboxes"][0].clone()
}

async fn wait_connected(t: &MailApp) {
    wait_until(
        "the fetcher to connect with IDLE",
        Duration::from_secs(15),
        || async {
            let m = mailbox_status(t).await;
            (m["connected"] == true && m["idle"] == true).then_some(())
        },
    )
    .await;
}

macro_rules! live_tests {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let _serial = super::SERIAL.lock().await;
                    super::$name(super::common::Backend::Sqlite).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if super::common::pg_url().is_none() {
                        eprintln!("SPORTELLO_TEST_PG_URL not set: PostgreSQL variant switched off");
                        return;
                    }
                    let _serial = super::SERIAL.lock().await;
                    super::$name(super::common::Backend::Postgres).await
                }
            }
        )+
    };
}

live_tests!(
    citizen_mail_to_reply_and_back,
    dovecot_restart_imports_what_arrived_exactly_once,
    replies_wait_while_smtp_is_down,
);

async fn citizen_mail_to_reply_and_back(backend: Backend) {
    let live = live();
    if live.imap.is_none() || live.smtp.is_none() {
        eprintln!("SPORTELLO_TEST_IMAP_HOST / SPORTELLO_TEST_SMTP_HOST not set: live test skipped");
        return;
    }
    let folder = live.folder("e2e").await;
    let (t, stop) = live_app(&live, backend, Some(&folder)).await;
    wait_connected(&t).await;

    // A citizen writes: the ticket appears through IDLE within seconds.
    let first = mid("live-citizen");
    let appended = Instant::now();
    live.append(
        &folder,
        &[message(
            "Giulia Conti <giulia.conti@example.it>",
            "Domanda Titoli Sociali",
            &first,
            &[],
            "Buongiorno, la domanda è ferma. Città: Milano.",
        )],
    )
    .await;
    let ticket_id = wait_until("the ticket", Duration::from_secs(10), || async {
        t.app.ticket_of_message(&first).await.unwrap()
    })
    .await;
    let latency = appended.elapsed();
    eprintln!("APPEND → ticket: {latency:?}");
    assert!(latency < Duration::from_secs(5), "took {latency:?}");
    let ticket = t.read_ticket(&ticket_id.to_string()).await;
    let number = ticket["number"].as_str().unwrap().to_owned();
    assert_eq!(
        entries(&ticket, "inbound")[0]["body"]
            .as_str()
            .unwrap()
            .trim(),
        "Buongiorno, la domanda è ferma. Città: Milano."
    );

    // The acknowledgement reaches the SMTP server, marked automatic and threaded.
    let ack = wait_until(
        "the acknowledgement at the SMTP sink",
        Duration::from_secs(10),
        || async { live.received_in_reply_to(&first).into_iter().next() },
    )
    .await;
    assert_eq!(
        header(&ack, "Auto-Submitted").as_deref(),
        Some("auto-replied")
    );
    assert!(header(&ack, "Subject").unwrap().contains(&number));

    // The operator replies through the API; the SMTP server gets it with the threading headers.
    let (_, op) = t.user("op-live", &["front_office"]).await;
    let (status, body) = t
        .post(
            &format!("/api/v1/tickets/{ticket_id}/replies"),
            &op,
            json!({ "body": "la sua domanda è in lavorazione." }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let reply_id = body["delivery"]["message_id"].as_str().unwrap().to_owned();
    let raw = wait_until(
        "the reply at the SMTP sink",
        Duration::from_secs(10),
        || async { live.received(&reply_id) },
    )
    .await;
    assert_eq!(header(&raw, "In-Reply-To"), Some(format!("<{first}>")));
    assert!(
        header(&raw, "References")
            .unwrap()
            .contains(&format!("<{first}>"))
    );
    assert_eq!(
        header(&raw, "Subject"),
        Some(format!("Re: [{number}] Domanda Titoli Sociali"))
    );
    wait_until(
        "delivery recorded on the timeline",
        Duration::from_secs(10),
        || async {
            let ticket = t.read_ticket(&ticket_id.to_string()).await;
            entries(&ticket, "outbound")
                .iter()
                .any(|e| {
                    e["meta"]["message_id"] == reply_id.as_str() && e["meta"]["delivery"] == "sent"
                })
                .then_some(())
        },
    )
    .await;

    // The citizen answers the reply: it joins the same ticket.
    let answer = mid("live-answer");
    live.append(
        &folder,
        &[message(
            "giulia.conti@example.it",
            &format!("Re: [{number}] Domanda Titoli Sociali"),
            &answer,
            &[
                &format!("In-Reply-To: <{reply_id}>"),
                &format!("References: <{first}> <{reply_id}>"),
            ],
            "Grazie, attendo.",
        )],
    )
    .await;
    let joined = wait_until("the answer", Duration::from_secs(10), || async {
        t.app.ticket_of_message(&answer).await.unwrap()
    })
    .await;
    assert_eq!(joined, ticket_id);
    let ticket = t.read_ticket(&ticket_id.to_string()).await;
    assert_eq!(
        entries(&ticket, "inbound")[1]["meta"]["thread"]["reason"],
        "in_reply_to"
    );
    assert_eq!(mailbox_status(&t).await["imported_since_start"], 2);
    stop.cancel();
}

async fn dovecot_restart_imports_what_arrived_exactly_once(backend: Backend) {
    let live = live();
    if live.imap.is_none() {
        eprintln!("SPORTELLO_TEST_IMAP_HOST not set: live test skipped");
        return;
    }
    let folder = live.folder("restart").await;
    let (t, stop) = live_app(&live, backend, Some(&folder)).await;
    wait_connected(&t).await;
    let ids: Vec<String> = (0..8).map(|i| mid(&format!("restart{i}"))).collect();
    let raw = |i: usize| {
        message(
            &format!("Cittadino {i} <cittadino{i}@example.it>"),
            &format!("Richiesta {i}"),
            &ids[i],
            &[],
            "testo",
        )
    };
    live.append(&folder, &(0..3).map(raw).collect::<Vec<_>>())
        .await;
    wait_until(
        "the first three tickets",
        Duration::from_secs(10),
        || async { (t.email_tickets().await.len() == 3).then_some(()) },
    )
    .await;
    let failures_before = mailbox_status(&t).await["failures"].as_u64().unwrap();

    // Dovecot goes away under the fetcher's open IDLE and comes back; mail arrives meanwhile.
    live.services("restart-imap").await;
    live.append(&folder, &(3..8).map(raw).collect::<Vec<_>>())
        .await;
    wait_until("all eight tickets", Duration::from_secs(30), || async {
        (t.email_tickets().await.len() == 8).then_some(())
    })
    .await;
    wait_connected(&t).await;
    // Give a duplicate every chance to show up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(t.email_tickets().await.len(), 8);
    let m = mailbox_status(&t).await;
    assert_eq!(m["messages_received"], 8, "{m}");
    assert!(
        m["failures"].as_u64().unwrap() > failures_before,
        "the cut was noticed: {m}"
    );
    for id in &ids {
        let ticket = t.ticket_of(id).await;
        assert_eq!(entries(&ticket, "inbound").len(), 1);
    }
    stop.cancel();
}

async fn replies_wait_while_smtp_is_down(backend: Backend) {
    let live = live();
    if live.smtp.is_none() {
        eprintln!("SPORTELLO_TEST_SMTP_HOST not set: live test skipped");
        return;
    }
    let (t, stop) = live_app(&live, backend, None).await;
    let first = mid("smtp-down");
    t.deliver(&[message(
        "Paolo <paolo@example.it>",
        "Quando arriva?",
        &first,
        &[],
        "testo",
    )])
    .await;
    let ticket_id = t.app.ticket_of_message(&first).await.unwrap().unwrap();

    live.services("stop-smtp").await;
    let (status, body) = t
        .post(
            &format!("/api/v1/tickets/{ticket_id}/replies"),
            &t.admin_token,
            json!({ "body": "Risposta mentre il server è giù." }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let reply_id = body["delivery"]["message_id"].as_str().unwrap().to_owned();
    wait_until("a failed attempt", Duration::from_secs(10), || async {
        let ticket = t.read_ticket(&ticket_id.to_string()).await;
        entries(&ticket, "outbound")
            .iter()
            .any(|e| {
                e["meta"]["message_id"] == reply_id.as_str() && e["meta"]["delivery"] == "retrying"
            })
            .then_some(())
    })
    .await;
    let rows = t.app.outbox_rows(ticket_id).await.unwrap();
    let row = rows.iter().find(|r| r.message_id == reply_id).unwrap();
    assert_eq!(row.state, "queued", "it waits in the outbox");
    assert!(live.received(&reply_id).is_none());

    live.services("start-smtp").await;
    let raw = wait_until(
        "delivery once the server is back",
        Duration::from_secs(20),
        || async { live.received(&reply_id) },
    )
    .await;
    assert_eq!(header(&raw, "In-Reply-To"), Some(format!("<{first}>")));
    wait_until(
        "the timeline to say sent",
        Duration::from_secs(10),
        || async {
            let ticket = t.read_ticket(&ticket_id.to_string()).await;
            entries(&ticket, "outbound")
                .iter()
                .any(|e| {
                    e["meta"]["message_id"] == reply_id.as_str() && e["meta"]["delivery"] == "sent"
                })
                .then_some(())
        },
    )
    .await;
    let rows = t.app.outbox_rows(ticket_id).await.unwrap();
    let row = rows.iter().find(|r| r.message_id == reply_id).unwrap();
    assert_eq!(row.state, "sent");
    assert!(row.attempts >= 2);
    stop.cancel();
}
