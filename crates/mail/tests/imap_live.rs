//! The IMAP fetcher against a real Dovecot (deploy/scripts/test-services.sh).
//!
//! These tests run only when SPORTELLO_TEST_IMAP_HOST is set, and then they fail (not skip)
//! when the server cannot be reached. Start the services and load their variables with:
//!
//! ```text
//! eval "$(deploy/scripts/test-services.sh start /tmp/sportello-services)"
//! cargo test -p sportello-mail --test imap_live
//! ```
//!
//! Each test works in a folder of its own; the tests hold one lock because one of them restarts
//! Dovecot under everybody's feet.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sportello_domain::EmailAddress;
use sportello_mail::TlsMode;
use sportello_mail::imap::{
    Checkpoint, FetchedMessage, ImapFetcher, ImapSession, MailSink, MailboxConfig, SinkError,
    StatusHandle, connect,
};
use sportello_mail::parse::{self, ParseLimits};
use tokio_util::sync::CancellationToken;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Live {
    host: String,
    port: u16,
    user: String,
    pass: String,
}

/// The test server from the environment; `None` (test skipped) when SPORTELLO_TEST_IMAP_HOST
/// is unset, a panic when it is set but incomplete or unreachable.
fn live() -> Option<Live> {
    let Ok(host) = std::env::var("SPORTELLO_TEST_IMAP_HOST") else {
        eprintln!("SPORTELLO_TEST_IMAP_HOST is not set: live IMAP test skipped");
        return None;
    };
    let var = |name: &str| {
        std::env::var(name)
            .unwrap_or_else(|_| panic!("SPORTELLO_TEST_IMAP_HOST is set but {name} is not"))
    };
    let port: u16 = var("SPORTELLO_TEST_IMAP_PORT")
        .parse()
        .expect("SPORTELLO_TEST_IMAP_PORT is a port number");
    if let Err(e) = std::net::TcpStream::connect_timeout(
        &std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
            .expect("resolvable IMAP host")
            .next()
            .expect("an address"),
        Duration::from_secs(5),
    ) {
        panic!("SPORTELLO_TEST_IMAP_HOST is set but {host}:{port} is unreachable: {e}");
    }
    Some(Live {
        host,
        port,
        user: var("SPORTELLO_TEST_IMAP_USER"),
        pass: var("SPORTELLO_TEST_IMAP_PASS"),
    })
}

impl Live {
    fn config(&self, folder: &str) -> MailboxConfig {
        let mut c = MailboxConfig::new(
            format!("live-{folder}"),
            self.host.clone(),
            TlsMode::None,
            self.user.clone(),
            self.pass.clone(),
            EmailAddress::parse("welfare@comune.example.it").expect("valid"),
        );
        c.imap_port = Some(self.port);
        c.folder = folder.to_owned();
        // If IDLE did not work, nothing would arrive within the tests' deadlines.
        c.poll_interval_secs = 600;
        c.batch_size = 7;
        c.backoff_initial_ms = 200;
        c.backoff_max_secs = 2;
        c.command_timeout_secs = 20;
        c
    }

    async fn session(&self) -> ImapSession {
        connect(&self.config("INBOX")).await.expect("admin session")
    }

    /// A fresh folder for one test.
    async fn folder(&self, tag: &str) -> String {
        let name = format!("t-{tag}-{}", uuid::Uuid::now_v7().simple());
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
}

fn citizen_message(tag: &str, n: usize) -> (String, Vec<u8>) {
    let id = format!(
        "live-{tag}-{n}-{}@example.it",
        uuid::Uuid::now_v7().simple()
    );
    let raw = format!(
        "From: Cittadino {n} <cittadino{n}@example.it>\r\nTo: welfare@comune.example.it\r\n\
         Subject: Richiesta n. {n} – perché?\r\nMessage-ID: <{id}>\r\nDate: Tue, 03 Mar 2026 09:15:02 +0100\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         Buongiorno, la pratica {n} è ferma da giorni. Città: Milano.\r\n"
    );
    (id, raw.into_bytes())
}

/// A sink that records every delivery (without deduplicating, so duplicates show) and keeps
/// checkpoint and deliveries under one lock, as a database transaction would.
#[derive(Default)]
struct MemorySink {
    state: Mutex<SinkState>,
    /// Fail this many upcoming store_batch calls, like a database that is briefly down.
    fail_next: AtomicU32,
}

#[derive(Default)]
struct SinkState {
    checkpoints: HashMap<String, Checkpoint>,
    deliveries: Vec<(u32, u32, String)>,
}

impl MemorySink {
    fn deliveries_of(&self, message_id: &str) -> usize {
        self.lock()
            .deliveries
            .iter()
            .filter(|(_, _, id)| id == message_id)
            .count()
    }

    fn delivered(&self) -> usize {
        self.lock().deliveries.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SinkState> {
        self.state.lock().expect("sink lock")
    }
}

impl MailSink for MemorySink {
    async fn load_checkpoint(&self, mailbox: &str) -> Result<Option<Checkpoint>, SinkError> {
        Ok(self.lock().checkpoints.get(mailbox).copied())
    }

    async fn store_batch(
        &self,
        mailbox: &str,
        uid_validity: u32,
        messages: Vec<FetchedMessage>,
    ) -> Result<(), SinkError> {
        if self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err("database unavailable (simulated)".into());
        }
        let mut state = self.lock();
        let mut last = 0;
        for m in &messages {
            assert!(m.uid > last, "batch UIDs must ascend");
            last = m.uid;
            let parsed =
                parse::parse(&m.raw, &ParseLimits::default()).expect("fetched bytes parse");
            state
                .deliveries
                .push((uid_validity, m.uid, parsed.message_id));
        }
        state.checkpoints.insert(
            mailbox.to_owned(),
            Checkpoint {
                uid_validity,
                last_uid: last,
            },
        );
        Ok(())
    }
}

async fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

fn assert_exactly_once(sink: &MemorySink, ids: &[String]) {
    for id in ids {
        assert_eq!(
            sink.deliveries_of(id),
            1,
            "{id} must be delivered exactly once"
        );
    }
    assert_eq!(
        sink.delivered(),
        ids.len(),
        "no delivery beyond the appended messages"
    );
}

struct Running {
    cancel: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
    status: StatusHandle,
}

fn start(config: MailboxConfig, sink: &Arc<MemorySink>) -> Running {
    let cancel = CancellationToken::new();
    let fetcher = ImapFetcher::new(config, sink.clone());
    let status = fetcher.status();
    let handle = fetcher.spawn(cancel.clone());
    Running {
        cancel,
        handle,
        status,
    }
}

impl Running {
    async fn stop(self) -> StatusHandle {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("fetcher stops promptly on cancellation")
            .expect("fetcher task did not panic");
        assert!(!self.status.snapshot().connected);
        self.status
    }
}

fn services_script() -> (String, String) {
    let var = |n: &str| {
        std::env::var(n).unwrap_or_else(|_| {
            panic!("{n} is not set: load the env file written by test-services.sh")
        })
    };
    (
        var("SPORTELLO_TEST_SERVICES_SCRIPT"),
        var("SPORTELLO_TEST_SERVICES_DIR"),
    )
}

async fn run_script(command: &str) {
    let (script, dir) = services_script();
    let out = tokio::process::Command::new("bash")
        .arg(&script)
        .arg(command)
        .arg(&dir)
        .output()
        .await
        .expect("run test-services.sh");
    assert!(
        out.status.success(),
        "test-services.sh {command} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_mail_arrives_through_idle_within_seconds_exactly_once() {
    let Some(live) = live() else { return };
    let _serial = SERIAL.lock().await;
    let folder = live.folder("idle").await;
    let mut ids = Vec::new();
    let mut initial = Vec::new();
    for n in 0..10 {
        let (id, raw) = citizen_message("idle", n);
        ids.push(id);
        initial.push(raw);
    }
    // Ten waiting messages: two batches of seven and three.
    live.append(&folder, &initial).await;
    let sink = Arc::new(MemorySink::default());
    let run = start(live.config(&folder), &sink);
    wait_until("the initial import", Duration::from_secs(10), || {
        sink.delivered() == 10
    })
    .await;
    let status = run.status.snapshot();
    assert!(status.connected);
    assert_eq!(status.idle, Some(true), "Dovecot supports IDLE");
    assert_eq!(status.imported, 10);
    assert!(status.last_fetch.is_some());

    for n in 10..15 {
        let (id, raw) = citizen_message("idle", n);
        live.append(&folder, &[raw]).await;
        let took = wait_until("a pushed message", Duration::from_secs(5), || {
            sink.deliveries_of(&id) == 1
        })
        .await;
        eprintln!("message {n} imported {took:?} after APPEND");
        ids.push(id);
    }
    // Give a duplicate every chance to show up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_exactly_once(&sink, &ids);
    let status = run.stop().await.snapshot();
    assert_eq!(status.checkpoint.map(|c| c.last_uid), Some(15));
    assert_eq!(status.failures, 0, "{:?}", status.last_error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dovecot_restart_mid_session_loses_nothing_and_duplicates_nothing() {
    let Some(live) = live() else { return };
    let _serial = SERIAL.lock().await;
    let folder = live.folder("restart").await;
    let sink = Arc::new(MemorySink::default());
    let mut ids = Vec::new();
    let (id, raw) = citizen_message("restart", 0);
    ids.push(id);
    live.append(&folder, &[raw]).await;
    let run = start(live.config(&folder), &sink);
    wait_until("the first message", Duration::from_secs(10), || {
        sink.delivered() == 1
    })
    .await;

    run_script("restart-imap").await;
    // Mail that arrives while the fetcher is reconnecting.
    let mut batch = Vec::new();
    for n in 1..4 {
        let (id, raw) = citizen_message("restart", n);
        ids.push(id);
        batch.push(raw);
    }
    live.append(&folder, &batch).await;
    wait_until(
        "the messages appended around the restart",
        Duration::from_secs(20),
        || sink.delivered() >= 4,
    )
    .await;
    wait_until("the fetcher to reconnect", Duration::from_secs(10), || {
        run.status.snapshot().connected
    })
    .await;
    let status = run.status.snapshot();
    assert!(status.failures >= 1, "the restart must have been noticed");
    assert!(status.last_error.is_some());

    // And IDLE works again on the new connection.
    let (id, raw) = citizen_message("restart", 4);
    live.append(&folder, &[raw]).await;
    wait_until(
        "a message after reconnecting",
        Duration::from_secs(5),
        || sink.deliveries_of(&id) == 1,
    )
    .await;
    ids.push(id);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_exactly_once(&sink, &ids);
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sink_is_retried_without_losing_the_batch() {
    let Some(live) = live() else { return };
    let _serial = SERIAL.lock().await;
    let folder = live.folder("sinkfail").await;
    let sink = Arc::new(MemorySink::default());
    sink.fail_next.store(2, Ordering::SeqCst);
    let mut ids = Vec::new();
    let mut raws = Vec::new();
    for n in 0..3 {
        let (id, raw) = citizen_message("sinkfail", n);
        ids.push(id);
        raws.push(raw);
    }
    live.append(&folder, &raws).await;
    let run = start(live.config(&folder), &sink);
    wait_until(
        "the import after two failed stores",
        Duration::from_secs(15),
        || sink.delivered() == 3,
    )
    .await;
    let status = run.status.snapshot();
    assert_eq!(status.failures, 2);
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("database unavailable")),
        "{:?}",
        status.last_error
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_exactly_once(&sink, &ids);
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_uidvalidity_refetches_everything_for_the_sink_to_dedupe() {
    let Some(live) = live() else { return };
    let _serial = SERIAL.lock().await;
    let folder = live.folder("uidvalidity").await;
    let sink = Arc::new(MemorySink::default());
    let (id_a, raw_a) = citizen_message("uv", 0);
    let (id_b, raw_b) = citizen_message("uv", 1);
    live.append(&folder, &[raw_a.clone(), raw_b.clone()]).await;
    let run = start(live.config(&folder), &sink);
    wait_until("the first import", Duration::from_secs(10), || {
        sink.delivered() == 2
    })
    .await;
    let first = run.stop().await.snapshot().checkpoint.expect("checkpoint");

    // Recreating the folder gives it a new UIDVALIDITY, as a server migration would.
    let mut s = live.session().await;
    s.delete(&folder).await.expect("DELETE");
    s.create(&folder).await.expect("CREATE");
    let _ = s.logout().await;
    let (id_c, raw_c) = citizen_message("uv", 2);
    live.append(&folder, &[raw_a, raw_b, raw_c]).await;

    let run = start(live.config(&folder), &sink);
    wait_until("the re-import", Duration::from_secs(10), || {
        sink.delivered() == 5
    })
    .await;
    let second = run.stop().await.snapshot().checkpoint.expect("checkpoint");
    assert_ne!(second.uid_validity, first.uid_validity);
    assert_eq!(second.last_uid, 3);
    assert_eq!(
        sink.deliveries_of(&id_a),
        2,
        "re-delivered under the new UIDVALIDITY"
    );
    assert_eq!(sink.deliveries_of(&id_b), 2);
    assert_eq!(sink.deliveries_of(&id_c), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_mail_can_be_flagged_seen_and_moved() {
    let Some(live) = live() else { return };
    let _serial = SERIAL.lock().await;
    let folder = live.folder("move").await;
    let archive = live.folder("archive").await;
    let seen_only = live.folder("seen").await;
    let sink = Arc::new(MemorySink::default());
    let (_, raw_a) = citizen_message("move", 0);
    let (_, raw_b) = citizen_message("move", 1);
    live.append(&folder, &[raw_a.clone(), raw_b]).await;
    live.append(&seen_only, &[raw_a]).await;

    let mut config = live.config(&folder);
    config.mark_seen = true;
    config.move_to = Some(archive.clone());
    let run = start(config, &sink);
    let mut seen_config = live.config(&seen_only);
    seen_config.mark_seen = true;
    let run_seen = start(seen_config, &sink);
    wait_until("both imports", Duration::from_secs(10), || {
        sink.delivered() == 3
    })
    .await;
    // The flags follow the store; give the fetchers a moment to send them.
    tokio::time::sleep(Duration::from_millis(500)).await;
    run.stop().await;
    run_seen.stop().await;

    let mut s = live.session().await;
    let source = s.select(&folder).await.expect("SELECT source");
    assert_eq!(source.exists, 0, "moved away");
    let moved = s.select(&archive).await.expect("SELECT archive");
    assert_eq!(moved.exists, 2);
    let unseen = s.search("UNSEEN").await.expect("SEARCH");
    assert!(unseen.is_empty(), "moved messages are marked seen");
    let kept = s.select(&seen_only).await.expect("SELECT seen-only");
    assert_eq!(kept.exists, 1, "not moved without move_to");
    let seen = s.search("SEEN").await.expect("SEARCH");
    assert_eq!(seen.len(), 1);
    let _ = s.logout().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_idle_the_fetcher_polls() {
    let Some(live) = live() else { return };
    let _serial = SERIAL.lock().await;
    let folder = live.folder("poll").await;
    let mut config = live.config(&folder);
    config.use_idle = false;
    config.poll_interval_secs = 1;
    let sink = Arc::new(MemorySink::default());
    let run = start(config, &sink);
    wait_until("the first (empty) check", Duration::from_secs(10), || {
        run.status.snapshot().last_fetch.is_some()
    })
    .await;
    assert_eq!(run.status.snapshot().idle, Some(false));
    let mut ids = Vec::new();
    for n in 0..3 {
        let (id, raw) = citizen_message("poll", n);
        live.append(&folder, &[raw]).await;
        wait_until("a polled message", Duration::from_secs(5), || {
            sink.deliveries_of(&id) == 1
        })
        .await;
        ids.push(id);
    }
    // Several more polls find nothing new.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_exactly_once(&sink, &ids);
    run.stop().await;
}

/// The IMAPS port and the test CA, when the services script provided them.
fn tls_setup() -> Option<(u16, std::path::PathBuf)> {
    let (Ok(port), Ok(ca)) = (
        std::env::var("SPORTELLO_TEST_IMAPS_PORT"),
        std::env::var("SPORTELLO_TEST_IMAP_TLS_CA"),
    ) else {
        eprintln!("SPORTELLO_TEST_IMAPS_PORT/SPORTELLO_TEST_IMAP_TLS_CA not set: TLS test skipped");
        return None;
    };
    Some((
        port.parse()
            .expect("SPORTELLO_TEST_IMAPS_PORT is a port number"),
        ca.into(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_tls_and_starttls_fetch_with_a_private_ca() {
    let Some(live) = live() else { return };
    let Some((imaps_port, ca)) = tls_setup() else {
        return;
    };
    let _serial = SERIAL.lock().await;
    for (mode, port) in [(TlsMode::Tls, imaps_port), (TlsMode::Starttls, live.port)] {
        let folder = live.folder("tls").await;
        let (id, raw) = citizen_message("tls", 0);
        live.append(&folder, &[raw]).await;
        let mut config = live.config(&folder);
        config.imap_tls = mode;
        config.imap_port = Some(port);
        config.imap_tls_ca_file = Some(ca.clone());
        let sink = Arc::new(MemorySink::default());
        let run = start(config, &sink);
        wait_until("a message over TLS", Duration::from_secs(10), || {
            sink.deliveries_of(&id) == 1
        })
        .await;
        let (id2, raw2) = citizen_message("tls", 1);
        live.append(&folder, &[raw2]).await;
        wait_until("a pushed message over TLS", Duration::from_secs(5), || {
            sink.deliveries_of(&id2) == 1
        })
        .await;
        let status = run.stop().await.snapshot();
        assert_eq!(status.failures, 0, "{mode}: {:?}", status.last_error);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_refused() {
    let Some(live) = live() else { return };
    let Some((imaps_port, _)) = tls_setup() else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let mut config = live.config("INBOX");
    config.imap_tls = TlsMode::Tls;
    config.imap_port = Some(imaps_port);
    let sink = Arc::new(MemorySink::default());
    let run = start(config, &sink);
    wait_until("a reported TLS failure", Duration::from_secs(10), || {
        run.status.snapshot().failures >= 1
    })
    .await;
    let err = run.stop().await.snapshot().last_error.expect("an error");
    assert!(err.contains("TLS with 127.0.0.1 failed"), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert_eq!(sink.delivered(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_reported_and_retried_until_cancelled() {
    let Some(live) = live() else { return };
    let _serial = SERIAL.lock().await;
    let mut config = live.config("INBOX");
    config.password = "not-the-password".into();
    let sink = Arc::new(MemorySink::default());
    let run = start(config, &sink);
    wait_until("a reported login failure", Duration::from_secs(10), || {
        run.status.snapshot().failures >= 2
    })
    .await;
    let status = run.stop().await.snapshot();
    let err = status.last_error.expect("an error");
    assert!(err.contains("login as"), "{err}");
    assert!(
        !err.contains("not-the-password"),
        "the password never shows: {err}"
    );
    assert_eq!(sink.delivered(), 0);
}
