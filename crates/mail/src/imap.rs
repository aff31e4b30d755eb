//! The IMAP fetcher: one task per mailbox that imports new messages into a [`MailSink`] and then
//! waits with IDLE (or polls), reconnecting with capped, jittered backoff after any fault.
//!
//! Exactly-once rests on the sink: [`MailSink::store_batch`] stores a batch and advances the
//! UIDVALIDITY + last-UID checkpoint in one transaction, and the fetcher reloads that checkpoint
//! on every (re)connection. A crash between fetching and storing re-fetches the batch; a crash
//! after storing skips it. When UIDVALIDITY changes, everything is fetched again and the sink's
//! Message-ID dedupe keeps it from being imported twice.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use async_imap::extensions::idle::IdleResponse;
use async_imap::imap_proto::{Response, Status};
use async_imap::types::{Fetch, UnsolicitedResponse};
use async_imap::{Client, Session};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use sportello_domain::{EmailAddress, Tier};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_util::sync::CancellationToken;

use crate::{Secret, TlsMode};

fn default_folder() -> String {
    "INBOX".to_owned()
}
fn default_use_idle() -> bool {
    true
}
fn default_poll_interval() -> u64 {
    60
}
fn default_idle_refresh() -> u64 {
    // RFC 2177: re-issue IDLE at least every 29 minutes; stay well inside NAT timeouts too.
    20 * 60
}
fn default_batch_size() -> usize {
    100
}
fn default_backoff_initial_ms() -> u64 {
    1000
}
fn default_backoff_max() -> u64 {
    300
}
fn default_command_timeout() -> u64 {
    120
}

/// `[[email.mailboxes]]`: one mailbox citizens write to.
#[derive(Clone, Deserialize)]
pub struct MailboxConfig {
    /// Short name, unique among mailboxes; keys the checkpoint.
    pub name: String,
    pub imap_host: String,
    /// Defaults to 993 for `tls`, 143 otherwise.
    #[serde(default)]
    pub imap_port: Option<u16>,
    pub imap_tls: TlsMode,
    /// PEM file of extra certificate authorities to trust (a municipality's internal CA),
    /// in addition to the public web roots.
    #[serde(default)]
    pub imap_tls_ca_file: Option<PathBuf>,
    pub username: String,
    pub password: Secret,
    #[serde(default = "default_folder")]
    pub folder: String,
    /// The address citizens write to (and replies come from).
    pub address: EmailAddress,
    /// Category slug given to new tickets from this mailbox.
    #[serde(default)]
    pub default_category: Option<String>,
    #[serde(default)]
    pub default_tier: Option<Tier>,
    /// Flag imported messages `\Seen`.
    #[serde(default)]
    pub mark_seen: bool,
    /// Move imported messages to this folder.
    #[serde(default)]
    pub move_to: Option<String>,
    /// Wait for new mail with IDLE when the server offers it; `false` polls instead, for
    /// servers whose IDLE misbehaves.
    #[serde(default = "default_use_idle")]
    pub use_idle: bool,
    /// Seconds between checks when polling (no IDLE on the server, or `use_idle = false`).
    #[serde(default = "default_poll_interval")]
    pub poll_interval_secs: u64,
    /// Seconds after which an IDLE is ended and re-issued (must stay below 29 minutes).
    #[serde(default = "default_idle_refresh")]
    pub idle_refresh_secs: u64,
    /// Messages fetched and stored per transaction.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// First reconnection delay in milliseconds; doubles up to `backoff_max_secs`.
    #[serde(default = "default_backoff_initial_ms")]
    pub backoff_initial_ms: u64,
    #[serde(default = "default_backoff_max")]
    pub backoff_max_secs: u64,
    /// Seconds any single server exchange (connect, login, one fetch batch) may take.
    #[serde(default = "default_command_timeout")]
    pub command_timeout_secs: u64,
}

impl MailboxConfig {
    /// A mailbox with the defaults for everything optional.
    pub fn new(
        name: impl Into<String>,
        imap_host: impl Into<String>,
        imap_tls: TlsMode,
        username: impl Into<String>,
        password: impl Into<Secret>,
        address: EmailAddress,
    ) -> Self {
        MailboxConfig {
            name: name.into(),
            imap_host: imap_host.into(),
            imap_port: None,
            imap_tls,
            imap_tls_ca_file: None,
            username: username.into(),
            password: password.into(),
            folder: default_folder(),
            address,
            default_category: None,
            default_tier: None,
            mark_seen: false,
            move_to: None,
            use_idle: default_use_idle(),
            poll_interval_secs: default_poll_interval(),
            idle_refresh_secs: default_idle_refresh(),
            batch_size: default_batch_size(),
            backoff_initial_ms: default_backoff_initial_ms(),
            backoff_max_secs: default_backoff_max(),
            command_timeout_secs: default_command_timeout(),
        }
    }

    /// The port in use, explicit or the usual one for the TLS mode.
    pub fn port(&self) -> u16 {
        self.imap_port.unwrap_or(match self.imap_tls {
            TlsMode::Tls => 993,
            TlsMode::None | TlsMode::Starttls => 143,
        })
    }

    fn command_timeout(&self) -> Duration {
        Duration::from_secs(self.command_timeout_secs.max(1))
    }

    fn idle_refresh(&self) -> Duration {
        Duration::from_secs(self.idle_refresh_secs.clamp(1, 29 * 60 - 30))
    }
}

impl fmt::Debug for MailboxConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailboxConfig")
            .field("name", &self.name)
            .field("imap_host", &self.imap_host)
            .field("imap_port", &self.port())
            .field("imap_tls", &self.imap_tls)
            .field("imap_tls_ca_file", &self.imap_tls_ca_file)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("folder", &self.folder)
            .field("address", &self.address)
            .field("default_category", &self.default_category)
            .field("default_tier", &self.default_tier)
            .field("mark_seen", &self.mark_seen)
            .field("move_to", &self.move_to)
            .field("use_idle", &self.use_idle)
            .field("poll_interval_secs", &self.poll_interval_secs)
            .finish_non_exhaustive()
    }
}

/// How far a mailbox has been imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub uid_validity: u32,
    pub last_uid: u32,
}

/// A message as fetched: its UID and exact bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct FetchedMessage {
    pub uid: u32,
    pub raw: Vec<u8>,
}

impl fmt::Debug for FetchedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchedMessage")
            .field("uid", &self.uid)
            .field("size", &self.raw.len())
            .finish()
    }
}

/// Errors a sink reports; the fetcher logs them and retries after backoff.
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// Where fetched messages go. Implemented by the service over the database.
pub trait MailSink: Send + Sync + 'static {
    /// The checkpoint of a mailbox, `None` before its first import.
    fn load_checkpoint(
        &self,
        mailbox: &str,
    ) -> impl Future<Output = Result<Option<Checkpoint>, SinkError>> + Send;

    /// Stores a batch (ascending UIDs, at least one) and, in the same transaction, sets the
    /// checkpoint to `(uid_validity, highest uid of the batch)`. Must dedupe by Message-ID,
    /// since after a UIDVALIDITY change everything arrives again.
    fn store_batch(
        &self,
        mailbox: &str,
        uid_validity: u32,
        messages: Vec<FetchedMessage>,
    ) -> impl Future<Output = Result<(), SinkError>> + Send;
}

/// What admins see about a mailbox.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MailboxStatus {
    pub mailbox: String,
    pub connected: bool,
    /// Whether new mail is awaited with IDLE (`false`: polling; `None` before the first
    /// connection).
    pub idle: Option<bool>,
    /// When the mailbox was last checked for new mail (successfully).
    pub last_fetch: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    pub checkpoint: Option<Checkpoint>,
    /// Messages handed to the sink since start.
    pub imported: u64,
    /// Sessions that ended in an error since start.
    pub failures: u64,
}

/// A shared, cheaply cloned view of a fetcher's status.
#[derive(Debug, Clone, Default)]
pub struct StatusHandle(Arc<Mutex<MailboxStatus>>);

impl StatusHandle {
    fn new(mailbox: &str) -> Self {
        StatusHandle(Arc::new(Mutex::new(MailboxStatus {
            mailbox: mailbox.to_owned(),
            ..MailboxStatus::default()
        })))
    }

    /// The current status.
    pub fn snapshot(&self) -> MailboxStatus {
        match self.0.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn update(&self, f: impl FnOnce(&mut MailboxStatus)) {
        match self.0.lock() {
            Ok(mut s) => f(&mut s),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }
}

/// Why a session with the server ended.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot connect to {host}:{port}: {source}")]
    Connect {
        host: String,
        port: u16,
        source: io::Error,
    },
    #[error("IMAP server did not answer within {seconds} s while {step}")]
    Timeout { step: &'static str, seconds: u64 },
    #[error("TLS with {host} failed: {reason}")]
    Tls { host: String, reason: String },
    #[error("IMAP server refused the connection: {0}")]
    Greeting(String),
    #[error("login as '{username}' refused: {reason}")]
    Login { username: String, reason: String },
    #[error("cannot open folder '{folder}': {reason}")]
    Select { folder: String, reason: String },
    #[error("folder '{0}' has no UIDVALIDITY, so imports cannot be checkpointed")]
    NoUidValidity(String),
    #[error("IMAP {step} failed: {source}")]
    Imap {
        step: &'static str,
        source: async_imap::error::Error,
    },
    #[error("storing fetched messages failed: {0}")]
    Sink(SinkError),
}

fn imap_err(step: &'static str) -> impl FnOnce(async_imap::error::Error) -> FetchError {
    move |source| FetchError::Imap { step, source }
}

async fn timed<T>(
    limit: Duration,
    step: &'static str,
    fut: impl Future<Output = Result<T, FetchError>>,
) -> Result<T, FetchError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(FetchError::Timeout {
            step,
            seconds: limit.as_secs(),
        }),
    }
}

/// The byte stream under an IMAP session: plain TCP or TLS.
pub enum ImapStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl fmt::Debug for ImapStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ImapStream::Plain(_) => "ImapStream::Plain",
            ImapStream::Tls(_) => "ImapStream::Tls",
        })
    }
}

impl AsyncRead for ImapStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ImapStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A logged-in IMAP session.
pub type ImapSession = Session<ImapStream>;

fn build_tls_config(extra_ca: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    // An explicit provider: the process-wide default is ambiguous when several crates in the
    // build enable different rustls backends.
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = extra_ca {
        let pem = std::fs::read(path)
            .map_err(|e| format!("cannot read imap_tls_ca_file {}: {e}", path.display()))?;
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("imap_tls_ca_file {}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("imap_tls_ca_file {}: {e}", path.display()))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!(
                "imap_tls_ca_file {} holds no certificate",
                path.display()
            ));
        }
    }
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
        .map_err(|e| e.to_string())
}

fn tls_config(extra_ca: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    static PUBLIC_ROOTS: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    match extra_ca {
        None => PUBLIC_ROOTS.get_or_init(|| build_tls_config(None)).clone(),
        Some(path) => build_tls_config(Some(path)),
    }
}

async fn start_tls(
    host: &str,
    tcp: TcpStream,
    extra_ca: Option<&Path>,
) -> Result<ImapStream, FetchError> {
    let tls_err = |reason: String| FetchError::Tls {
        host: host.to_owned(),
        reason,
    };
    let config = tls_config(extra_ca).map_err(tls_err)?;
    let name = ServerName::try_from(host.to_owned()).map_err(|e| tls_err(e.to_string()))?;
    let stream = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| tls_err(e.to_string()))?;
    Ok(ImapStream::Tls(Box::new(stream)))
}

async fn read_greeting<T>(client: &mut Client<T>) -> Result<(), FetchError>
where
    T: AsyncRead + AsyncWrite + Unpin + fmt::Debug + Send,
{
    let response = client
        .read_response()
        .await
        .map_err(|e| FetchError::Greeting(e.to_string()))?
        .ok_or_else(|| FetchError::Greeting("connection closed before the greeting".to_owned()))?;
    match response.parsed() {
        Response::Data {
            status: Status::Ok | Status::PreAuth,
            ..
        } => Ok(()),
        other => Err(FetchError::Greeting(format!("{other:?}"))),
    }
}

/// Connects, greets, upgrades to TLS as configured and logs in.
pub async fn connect(config: &MailboxConfig) -> Result<ImapSession, FetchError> {
    let limit = config.command_timeout();
    let host = config.imap_host.as_str();
    let port = config.port();
    let ca = config.imap_tls_ca_file.as_deref();
    let tcp = timed(limit, "connecting", async {
        TcpStream::connect((host, port))
            .await
            .map_err(|source| FetchError::Connect {
                host: host.to_owned(),
                port,
                source,
            })
    })
    .await?;
    let _ = tcp.set_nodelay(true);

    let client = timed(limit, "greeting and TLS", async {
        match config.imap_tls {
            TlsMode::None => {
                let mut client = Client::new(ImapStream::Plain(tcp));
                read_greeting(&mut client).await?;
                Ok(client)
            }
            TlsMode::Tls => {
                let mut client = Client::new(start_tls(host, tcp, ca).await?);
                read_greeting(&mut client).await?;
                Ok(client)
            }
            TlsMode::Starttls => {
                let mut plain = Client::new(tcp);
                read_greeting(&mut plain).await?;
                plain
                    .run_command_and_check_ok("STARTTLS", None)
                    .await
                    .map_err(|e| FetchError::Tls {
                        host: host.to_owned(),
                        reason: format!("STARTTLS refused: {e}"),
                    })?;
                Ok(Client::new(start_tls(host, plain.into_inner(), ca).await?))
            }
        }
    })
    .await?;

    timed(limit, "logging in", async {
        client
            .login(&config.username, config.password.expose())
            .await
            .map_err(|(e, _)| FetchError::Login {
                username: config.username.clone(),
                reason: e.to_string(),
            })
    })
    .await
}

/// Formats UIDs (ascending) as a compact IMAP set: `1:3,7,9:10`.
pub fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end.saturating_add(1) {
            i += 1;
            end = uids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// Reconnection delay for the `attempt`-th consecutive failure (0-based): doubling from
/// `initial`, capped at `max`, then scaled into `[½, 1]` of that by `jitter` (0.0–1.0) so that
/// many fetchers cut off together do not reconnect in lockstep.
pub fn backoff_delay(attempt: u32, initial: Duration, max: Duration, jitter: f64) -> Duration {
    let factor = 2u32.saturating_pow(attempt.min(30));
    let base = initial.saturating_mul(factor).min(max);
    base.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

fn random_unit() -> f64 {
    let n = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (n >> 11) as f64 / (1u64 << 53) as f64
}

/// Why the wait after a fetch ended.
enum Wake {
    NewData,
    Refresh,
    Cancelled,
}

/// One mailbox's fetcher. Run it with [`ImapFetcher::run`] or [`ImapFetcher::spawn`].
pub struct ImapFetcher<S: MailSink> {
    config: MailboxConfig,
    sink: Arc<S>,
    status: StatusHandle,
}

impl<S: MailSink> ImapFetcher<S> {
    pub fn new(config: MailboxConfig, sink: Arc<S>) -> Self {
        let status = StatusHandle::new(&config.name);
        ImapFetcher {
            config,
            sink,
            status,
        }
    }

    pub fn status(&self) -> StatusHandle {
        self.status.clone()
    }

    /// Runs on a new task until `cancel` fires.
    pub fn spawn(self, cancel: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run(cancel))
    }

    /// Fetches, waits and reconnects until `cancel` fires. A batch being stored is finished
    /// first, so cancellation never interrupts a sink transaction.
    pub async fn run(self, cancel: CancellationToken) {
        let mailbox = self.config.name.clone();
        let mut failures: u32 = 0;
        loop {
            if cancel.is_cancelled() {
                break;
            }
            match self.session(&cancel, &mut failures).await {
                Ok(()) => break,
                Err(e) => {
                    let delay = backoff_delay(
                        failures,
                        Duration::from_millis(self.config.backoff_initial_ms.max(1)),
                        Duration::from_secs(self.config.backoff_max_secs.max(1)),
                        random_unit(),
                    );
                    failures = failures.saturating_add(1);
                    tracing::warn!(
                        mailbox = %mailbox,
                        retry_in_ms = delay.as_millis() as u64,
                        "IMAP session ended: {e}"
                    );
                    let text = e.to_string();
                    self.status.update(|s| {
                        s.connected = false;
                        s.last_error = Some(text);
                        s.last_error_at = Some(Utc::now());
                        s.failures += 1;
                    });
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = cancel.cancelled() => break,
                    }
                }
            }
        }
        self.status.update(|s| s.connected = false);
        tracing::info!(mailbox = %mailbox, "IMAP fetcher stopped");
    }

    async fn session(
        &self,
        cancel: &CancellationToken,
        failures: &mut u32,
    ) -> Result<(), FetchError> {
        let cfg = &self.config;
        let limit = cfg.command_timeout();
        let mut session = tokio::select! {
            s = connect(cfg) => s?,
            _ = cancel.cancelled() => return Ok(()),
        };
        let caps = timed(limit, "reading capabilities", async {
            session.capabilities().await.map_err(imap_err("CAPABILITY"))
        })
        .await?;
        let idle_supported = cfg.use_idle && caps.has_str("IDLE");
        let move_supported = caps.has_str("MOVE");
        let uidplus = caps.has_str("UIDPLUS");
        let selected = timed(limit, "selecting the folder", async {
            session
                .select(&cfg.folder)
                .await
                .map_err(|e| FetchError::Select {
                    folder: cfg.folder.clone(),
                    reason: e.to_string(),
                })
        })
        .await?;
        let uid_validity = selected
            .uid_validity
            .ok_or_else(|| FetchError::NoUidValidity(cfg.folder.clone()))?;
        let mut checkpoint = self
            .sink
            .load_checkpoint(&cfg.name)
            .await
            .map_err(FetchError::Sink)?;
        if let Some(cp) = checkpoint
            && cp.uid_validity != uid_validity
        {
            tracing::warn!(
                mailbox = %cfg.name,
                old = cp.uid_validity,
                new = uid_validity,
                "UIDVALIDITY changed: fetching the whole folder again (duplicates are dropped by Message-ID)"
            );
        }
        *failures = 0;
        self.status.update(|s| {
            s.connected = true;
            s.idle = Some(idle_supported);
            s.checkpoint = checkpoint;
        });
        tracing::info!(mailbox = %cfg.name, idle = idle_supported, uid_validity, "IMAP mailbox connected");

        let unsolicited = session.unsolicited_responses.clone();
        loop {
            // Notifications that arrive from here on may announce mail the fetch below misses.
            while unsolicited.try_recv().is_ok() {}
            let cancelled = self
                .fetch_new(
                    &mut session,
                    uid_validity,
                    &mut checkpoint,
                    move_supported,
                    uidplus,
                    cancel,
                )
                .await?;
            if cancelled {
                logout(session).await;
                return Ok(());
            }
            self.status.update(|s| s.last_fetch = Some(Utc::now()));

            let wake = if idle_supported {
                let mut idle = session.idle();
                timed(limit, "starting IDLE", async {
                    idle.init().await.map_err(imap_err("IDLE"))
                })
                .await?;
                let mut wake = Wake::Refresh;
                let mut pending = false;
                while let Ok(r) = unsolicited.try_recv() {
                    pending |= matches!(
                        r,
                        UnsolicitedResponse::Exists(_) | UnsolicitedResponse::Recent(_)
                    );
                }
                if pending {
                    wake = Wake::NewData;
                } else {
                    let refresh = cfg.idle_refresh();
                    let (waiting, _interrupt) = idle.wait_with_timeout(refresh);
                    tokio::select! {
                        r = waiting => match r.map_err(imap_err("IDLE"))? {
                            IdleResponse::NewData(_) => wake = Wake::NewData,
                            IdleResponse::Timeout | IdleResponse::ManualInterrupt => {}
                        },
                        // The server's keepalives restart the wait's own timer.
                        _ = tokio::time::sleep(refresh) => {}
                        _ = cancel.cancelled() => wake = Wake::Cancelled,
                    }
                }
                let cancelled = matches!(wake, Wake::Cancelled);
                // Shutting down does not wait long for a server that stopped answering.
                let done_limit = if cancelled {
                    limit.min(Duration::from_secs(3))
                } else {
                    limit
                };
                let done = timed(done_limit, "ending IDLE", async {
                    idle.done().await.map_err(imap_err("DONE"))
                })
                .await;
                match done {
                    Ok(s) => session = s,
                    Err(_) if cancelled => return Ok(()),
                    Err(e) => return Err(e),
                }
                wake
            } else {
                let wake = tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(cfg.poll_interval_secs.max(1))) => Wake::Refresh,
                    _ = cancel.cancelled() => Wake::Cancelled,
                };
                if !matches!(wake, Wake::Cancelled) {
                    timed(limit, "NOOP", async {
                        session.noop().await.map_err(imap_err("NOOP"))
                    })
                    .await?;
                }
                wake
            };
            match wake {
                Wake::Cancelled => {
                    logout(session).await;
                    return Ok(());
                }
                Wake::NewData | Wake::Refresh => {}
            }
        }
    }

    /// Imports every message above the checkpoint in batches; returns true when cancelled
    /// between batches.
    async fn fetch_new(
        &self,
        session: &mut ImapSession,
        uid_validity: u32,
        checkpoint: &mut Option<Checkpoint>,
        move_supported: bool,
        uidplus: bool,
        cancel: &CancellationToken,
    ) -> Result<bool, FetchError> {
        let cfg = &self.config;
        let limit = cfg.command_timeout();
        let start = match checkpoint {
            Some(cp) if cp.uid_validity == uid_validity => match cp.last_uid.checked_add(1) {
                Some(n) => n,
                None => return Ok(false),
            },
            _ => 1,
        };
        let found: HashSet<u32> = timed(limit, "searching for new messages", async {
            session
                .uid_search(format!("UID {start}:*"))
                .await
                .map_err(imap_err("UID SEARCH"))
        })
        .await?;
        // `n:*` also matches the last message when n is past the end.
        let mut uids: Vec<u32> = found.into_iter().filter(|u| *u >= start).collect();
        uids.sort_unstable();
        if uids.is_empty() {
            return Ok(false);
        }
        tracing::debug!(mailbox = %cfg.name, count = uids.len(), "new messages on the server");

        for chunk in uids.chunks(cfg.batch_size.max(1)) {
            if cancel.is_cancelled() {
                return Ok(true);
            }
            let set = uid_set(chunk);
            let fetched: Vec<Fetch> = timed(limit, "fetching messages", async {
                session
                    .uid_fetch(&set, "(UID BODY.PEEK[])")
                    .await
                    .map_err(imap_err("UID FETCH"))?
                    .try_collect()
                    .await
                    .map_err(imap_err("UID FETCH"))
            })
            .await?;
            let mut messages: Vec<FetchedMessage> = fetched
                .iter()
                .filter_map(|f| {
                    let uid = f.uid?;
                    let raw = f.body()?;
                    chunk.binary_search(&uid).is_ok().then(|| FetchedMessage {
                        uid,
                        raw: raw.to_vec(),
                    })
                })
                .collect();
            messages.sort_by_key(|m| m.uid);
            messages.dedup_by_key(|m| m.uid);
            if messages.len() < chunk.len() {
                // Expunged by someone else between SEARCH and FETCH: nothing left to import.
                tracing::info!(
                    mailbox = %cfg.name,
                    missing = chunk.len() - messages.len(),
                    "some messages vanished before they could be fetched"
                );
            }
            let Some(last_uid) = messages.last().map(|m| m.uid) else {
                continue;
            };
            let count = messages.len() as u64;
            self.sink
                .store_batch(&cfg.name, uid_validity, messages)
                .await
                .map_err(FetchError::Sink)?;
            let cp = Checkpoint {
                uid_validity,
                last_uid,
            };
            *checkpoint = Some(cp);
            self.status.update(|s| {
                s.imported += count;
                s.checkpoint = Some(cp);
            });
            tracing::info!(mailbox = %cfg.name, count, last_uid, "imported messages");
            self.after_store(session, &set, move_supported, uidplus)
                .await?;
        }
        Ok(false)
    }

    /// Flags and moves stored messages as configured. Failing here loses nothing: the
    /// checkpoint already moved past these messages.
    async fn after_store(
        &self,
        session: &mut ImapSession,
        set: &str,
        move_supported: bool,
        uidplus: bool,
    ) -> Result<(), FetchError> {
        let cfg = &self.config;
        let limit = cfg.command_timeout();
        if cfg.mark_seen {
            store_flags(session, set, "+FLAGS.SILENT (\\Seen)", limit).await?;
        }
        if let Some(folder) = &cfg.move_to {
            if move_supported {
                timed(limit, "moving imported messages", async {
                    session
                        .uid_mv(set, folder)
                        .await
                        .map_err(imap_err("UID MOVE"))
                })
                .await?;
            } else {
                timed(limit, "copying imported messages", async {
                    session
                        .uid_copy(set, folder)
                        .await
                        .map_err(imap_err("UID COPY"))
                })
                .await?;
                store_flags(session, set, "+FLAGS.SILENT (\\Deleted)", limit).await?;
                if uidplus {
                    timed(limit, "expunging moved messages", async {
                        let s = session
                            .uid_expunge(set)
                            .await
                            .map_err(imap_err("UID EXPUNGE"))?;
                        let _: Vec<_> = s.try_collect().await.map_err(imap_err("UID EXPUNGE"))?;
                        Ok(())
                    })
                    .await?;
                }
            }
        }
        Ok(())
    }
}

async fn store_flags(
    session: &mut ImapSession,
    set: &str,
    query: &str,
    limit: Duration,
) -> Result<(), FetchError> {
    timed(limit, "flagging imported messages", async {
        let s = session
            .uid_store(set, query)
            .await
            .map_err(imap_err("UID STORE"))?;
        let _: Vec<Fetch> = s.try_collect().await.map_err(imap_err("UID STORE"))?;
        Ok(())
    })
    .await
}

async fn logout(mut session: ImapSession) {
    let _ = tokio::time::timeout(Duration::from_secs(3), session.logout()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_compress_runs() {
        assert_eq!(uid_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(uid_set(&[5]), "5");
        assert_eq!(uid_set(&[]), "");
        assert_eq!(
            uid_set(&[u32::MAX - 1, u32::MAX]),
            format!("{}:{}", u32::MAX - 1, u32::MAX)
        );
    }

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let s = Duration::from_secs;
        assert_eq!(backoff_delay(0, s(1), s(300), 1.0), s(1));
        assert_eq!(backoff_delay(3, s(1), s(300), 1.0), s(8));
        assert_eq!(backoff_delay(20, s(1), s(300), 1.0), s(300));
        assert_eq!(backoff_delay(u32::MAX, s(1), s(300), 0.0), s(150));
        assert_eq!(backoff_delay(3, s(1), s(300), 0.0), s(4));
        let r = random_unit();
        assert!((0.0..1.0).contains(&r));
    }

    #[test]
    fn mailbox_config_reads_toml_with_defaults_and_hides_the_password() {
        let cfg: MailboxConfig = toml::from_str(
            r#"name = "welfare"
               imap_host = "imap.comune.example.it"
               imap_tls = "tls"
               username = "welfare@comune.example.it"
               password = "p4ss"
               address = "welfare@comune.example.it"
               default_tier = "front_office"
               default_category = "eligibility""#,
        )
        .unwrap();
        assert_eq!(cfg.port(), 993);
        assert_eq!(cfg.folder, "INBOX");
        assert_eq!(cfg.default_tier, Some(Tier::FrontOffice));
        assert!(!cfg.mark_seen);
        assert!(cfg.move_to.is_none());
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("p4ss"), "{dbg}");
        let bad = toml::from_str::<MailboxConfig>(
            "name='x'\nimap_host='h'\nimap_tls='ssl'\nusername='u'\npassword='p'\naddress='a@b.it'"
                .replace('\'', "\"")
                .as_str(),
        );
        assert!(bad.unwrap_err().to_string().contains("none, starttls, tls"));
    }
}
