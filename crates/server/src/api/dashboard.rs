//! The live dashboard: `GET /api/v1/dashboard` (a snapshot), `GET /api/v1/dashboard/ws` (a
//! snapshot, then deltas as domain events happen) and the web page at `/dashboard`.
//!
//! One hub per server turns the event bus into deltas once for every client, and computes the
//! snapshot of each scope (the tiers a client may see) at most once a second while events
//! flow, sharing it through a `watch` channel. Clients read a lossy broadcast channel, so a
//! slow one lags alone: it gets a fresh snapshot when it catches up, or is dropped when its
//! socket stops taking data. The protocol is documented in docs/DASHBOARD.md.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use sportello_service::dashboard::{DashboardScope, DashboardSnapshot};
use sportello_service::{Actor, App, ServiceError};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{Notify, broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::auth::token_of;
use crate::error::{ApiError, ApiResult, Problem};

/// Timings and sizes of the hub.
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// Snapshots are recomputed at most this often while events flow.
    pub snapshot_interval: Duration,
    /// Without events, snapshots are still recomputed this often (presence, SLA states and
    /// call-back deadlines change with time), and pushed only when something changed.
    pub idle_refresh: Duration,
    /// A ping and a heartbeat message go out this often.
    pub heartbeat: Duration,
    /// A send that takes longer than this drops the client: its socket is not draining.
    pub send_timeout: Duration,
    /// Deltas kept for clients that fall behind before they are told to resynchronise.
    pub backlog: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            snapshot_interval: Duration::from_secs(1),
            idle_refresh: Duration::from_secs(10),
            heartbeat: Duration::from_secs(20),
            send_timeout: Duration::from_secs(10),
            backlog: 1024,
        }
    }
}

/// What the hub broadcasts to every connection.
enum Outgoing {
    /// A delta, as JSON, and the tier it concerns (`None`: only all-tier dashboards get it).
    Delta {
        tier: Option<sportello_domain::Tier>,
        json: String,
    },
    /// The hub missed events: every client needs a fresh snapshot.
    Resync,
}

/// A snapshot shared by the clients of a scope: its JSON once, reused for every message.
struct Shared {
    json: String,
    made: Instant,
}

struct ScopeState {
    tx: watch::Sender<Option<Arc<Shared>>>,
    /// One computation at a time per scope; latecomers reuse its result.
    compute: tokio::sync::Mutex<()>,
    clients: AtomicUsize,
    /// The last snapshot with its time-dependent fields cleared, to publish only changes.
    last: Mutex<Option<DashboardSnapshot>>,
}

struct HubInner {
    app: App,
    config: HubConfig,
    deltas: broadcast::Sender<Arc<Outgoing>>,
    scopes: Mutex<HashMap<DashboardScope, Arc<ScopeState>>>,
    dirty: Notify,
    started: AtomicBool,
    stop: CancellationToken,
    clients: AtomicUsize,
}

impl Drop for HubInner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The dashboard hub of one server.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

impl Hub {
    pub fn new(app: App, config: HubConfig) -> Hub {
        let (deltas, _) = broadcast::channel(config.backlog.max(16));
        Hub {
            inner: Arc::new(HubInner {
                app,
                config,
                deltas,
                scopes: Mutex::new(HashMap::new()),
                dirty: Notify::new(),
                started: AtomicBool::new(false),
                stop: CancellationToken::new(),
                clients: AtomicUsize::new(0),
            }),
        }
    }

    /// Says goodbye to every websocket (close code 1001) and stops the hub's tasks: for the
    /// server's shutdown.
    pub fn close_all(&self) {
        self.inner.stop.cancel();
    }

    /// Connected websocket clients.
    pub fn clients(&self) -> usize {
        self.inner.clients.load(Ordering::Relaxed)
    }

    /// Starts the event pump and the snapshot refresher on first use (they need a runtime,
    /// and a server nobody watches needs neither). Both stop when the hub is dropped.
    fn ensure_started(&self) {
        if self.inner.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        let stop = self.inner.stop.clone();
        let events = self.inner.app.bus().subscribe();
        tokio::spawn(pump(weak.clone(), stop.clone(), events));
        tokio::spawn(refresher(weak, stop));
    }

    fn scope(&self, scope: &DashboardScope) -> Arc<ScopeState> {
        let mut scopes = self.inner.scopes.lock().unwrap_or_else(|p| p.into_inner());
        scopes
            .entry(scope.clone())
            .or_insert_with(|| {
                Arc::new(ScopeState {
                    tx: watch::Sender::new(None),
                    compute: tokio::sync::Mutex::new(()),
                    clients: AtomicUsize::new(0),
                    last: Mutex::new(None),
                })
            })
            .clone()
    }

    /// The scope's snapshot, computed now unless one at most `max_age` old exists.
    async fn snapshot(
        &self,
        scope: &DashboardScope,
        max_age: Duration,
    ) -> Result<Arc<Shared>, ServiceError> {
        let state = self.scope(scope);
        let fresh =
            |s: &Option<Arc<Shared>>| s.as_ref().filter(|s| s.made.elapsed() <= max_age).cloned();
        if let Some(s) = fresh(&state.tx.borrow()) {
            return Ok(s);
        }
        let _one = state.compute.lock().await;
        if let Some(s) = fresh(&state.tx.borrow()) {
            return Ok(s);
        }
        self.compute(scope, &state, true).await
    }

    /// Computes a scope's snapshot and publishes it (always when `force`, else only when
    /// something other than the passing of time changed).
    async fn compute(
        &self,
        scope: &DashboardScope,
        state: &ScopeState,
        force: bool,
    ) -> Result<Arc<Shared>, ServiceError> {
        let snap = self.inner.app.dashboard_snapshot_for(scope).await?;
        let json = serde_json::to_string(&snap)
            .map_err(|e| ServiceError::Internal(format!("dashboard snapshot: {e}")))?;
        let shared = Arc::new(Shared {
            json,
            made: Instant::now(),
        });
        let normalised = timeless(snap);
        let changed = {
            let mut last = state.last.lock().unwrap_or_else(|p| p.into_inner());
            let changed = last.as_ref() != Some(&normalised);
            *last = Some(normalised);
            changed
        };
        if force || changed {
            state.tx.send_replace(Some(shared.clone()));
        }
        Ok(shared)
    }
}

/// A snapshot without the fields that change with time alone.
fn timeless(mut s: DashboardSnapshot) -> DashboardSnapshot {
    s.generated_at = chrono::DateTime::<chrono::Utc>::MIN_UTC;
    for q in &mut s.queues {
        q.oldest_waiting_secs = None;
    }
    for a in s.at_risk.iter_mut().chain(s.breached.iter_mut()) {
        a.seconds_left = None;
    }
    s.sla.today.to = None;
    s.sla.last_7_days.to = None;
    s
}

/// Bus events → deltas, once for all clients.
async fn pump(
    hub: Weak<HubInner>,
    stop: CancellationToken,
    mut events: broadcast::Receiver<Arc<sportello_domain::event::DomainEvent>>,
) {
    loop {
        let first = tokio::select! {
            _ = stop.cancelled() => return,
            e = events.recv() => e,
        };
        let Some(hub) = hub.upgrade() else { return };
        let mut batch = Vec::new();
        match first {
            Ok(e) => batch.push(e),
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(
                    missed = n,
                    "dashboard hub fell behind the event bus; clients resynchronise"
                );
                let _ = hub.deltas.send(Arc::new(Outgoing::Resync));
            }
            Err(RecvError::Closed) => return,
        }
        // Whatever else already arrived goes in the same batch (one lookup for all).
        while batch.len() < 512 {
            match events.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        for d in hub.app.dashboard_deltas(&batch).await {
            match serde_json::to_string(&d) {
                Ok(json) => {
                    let _ = hub
                        .deltas
                        .send(Arc::new(Outgoing::Delta { tier: d.tier, json }));
                }
                Err(e) => tracing::warn!(error = %e, "cannot serialise a dashboard delta"),
            }
        }
        hub.dirty.notify_one();
    }
}

/// Recomputes the snapshots clients are watching: soon after events (at most once per
/// `snapshot_interval`), and every `idle_refresh` anyway.
async fn refresher(hub: Weak<HubInner>, stop: CancellationToken) {
    let (interval, idle) = match hub.upgrade() {
        Some(h) => (h.config.snapshot_interval, h.config.idle_refresh),
        None => return,
    };
    let mut last = Instant::now();
    loop {
        let woken = {
            let Some(h) = hub.upgrade() else { return };
            let dirty = async move { h.dirty.notified().await };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = dirty => true,
                _ = tokio::time::sleep(idle) => false,
            }
        };
        if woken {
            // Coalesce a burst: at most one snapshot per interval.
            let wait = (last + interval).saturating_duration_since(Instant::now());
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        last = Instant::now();
        let Some(inner) = hub.upgrade() else { return };
        let hub = Hub { inner };
        let watched: Vec<(DashboardScope, Arc<ScopeState>)> = {
            let scopes = hub.inner.scopes.lock().unwrap_or_else(|p| p.into_inner());
            scopes
                .iter()
                .filter(|(_, s)| s.clients.load(Ordering::Relaxed) > 0)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        for (scope, state) in watched {
            let _one = state.compute.lock().await;
            if let Err(e) = hub.compute(&scope, &state, false).await {
                tracing::warn!(error = %e, "cannot refresh the dashboard");
            }
        }
        drop(hub);
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(snapshot))
        .route("/dashboard/ws", get(ws))
}

/// The web page and its assets, outside `/api/v1`.
pub fn page_router() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(page))
        .route(
            "/dashboard/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/dashboard/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
}

/// The dashboard: queues per channel, tier and category, operators, SLA figures, tickets at
/// risk, call-backs. Supervisors see every tier, operators their own.
#[utoipa::path(get, path = "/api/v1/dashboard", tag = "dashboard", security(("bearer" = [])),
    responses((status = 200, body = DashboardSnapshot), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn snapshot(
    State(s): State<AppState>,
    crate::auth::CurrentUser(actor): crate::auth::CurrentUser,
) -> ApiResult<Response> {
    let scope = DashboardScope::for_actor(&actor)?;
    s.dashboard.ensure_started();
    let shared = s
        .dashboard
        .snapshot(&scope, s.dashboard.inner.config.snapshot_interval)
        .await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        shared.json.clone(),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct WsParams {
    /// For browsers, which cannot set headers on a websocket: the bearer token.
    token: Option<String>,
}

/// Who opens a websocket: a bearer token, the session cookie (same origin only: browsers send
/// cookies on cross-site websockets) or `?token=`.
async fn ws_actor(
    s: &AppState,
    parts: &Parts,
    query: Option<String>,
) -> Result<(Actor, String), ApiError> {
    let (token, from_cookie) = match token_of(parts) {
        Some(t) => t,
        None => (
            query
                .filter(|t| !t.is_empty())
                .ok_or(ServiceError::Unauthenticated)?,
            false,
        ),
    };
    // Without an `Origin` it is not a browser, and there is nothing to forge.
    if from_cookie && crate::auth::origin_verdict(parts) == Some(false) {
        return Err(ServiceError::Forbidden("cross-origin websocket refused".into()).into());
    }
    let actor = s.app.authenticate(&token).await?;
    Ok((actor, token))
}

/// The live dashboard over a websocket (protocol: docs/DASHBOARD.md).
#[utoipa::path(get, path = "/api/v1/dashboard/ws", tag = "dashboard", security(("bearer" = [])),
    params(("token" = Option<String>, Query, description = "bearer token, for browsers")),
    responses((status = 101, description = "switching to the websocket protocol"), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn ws(
    State(s): State<AppState>,
    Query(params): Query<WsParams>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
    req: axum::extract::Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let (actor, token) = match ws_actor(&s, &parts, params.token).await {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let scope = match DashboardScope::for_actor(&actor) {
        Ok(scope) => scope,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(rejection) => return rejection.into_response(),
    };
    let hub = s.dashboard.clone();
    hub.ensure_started();
    upgrade
        // Clients send only small control messages; small buffers keep thousands of
        // connections cheap.
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(64 * 1024)
        .max_frame_size(64 * 1024)
        .on_upgrade(move |socket| async move {
            Client::new(hub, scope, s.app.clone(), token)
                .run(socket)
                .await;
        })
        .into_response()
}

/// One websocket client.
struct Client {
    hub: Hub,
    scope: DashboardScope,
    state: Arc<ScopeState>,
    app: App,
    token: String,
    seq: u64,
}

/// Why a connection ended, for the close frame.
enum End {
    Closed,
    Close(u16, &'static str),
}

impl Client {
    fn new(hub: Hub, scope: DashboardScope, app: App, token: String) -> Client {
        let state = hub.scope(&scope);
        state.clients.fetch_add(1, Ordering::Relaxed);
        hub.inner.clients.fetch_add(1, Ordering::Relaxed);
        Client {
            hub,
            scope,
            state,
            app,
            token,
            seq: 0,
        }
    }

    async fn run(mut self, mut socket: WebSocket) {
        let end = self.serve(&mut socket).await;
        if let End::Close(code, reason) = end {
            let frame = CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            };
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                socket.send(Message::Close(Some(frame))),
            )
            .await;
        }
    }

    async fn send(&mut self, socket: &mut WebSocket, text: String) -> Result<(), End> {
        match tokio::time::timeout(
            self.hub.inner.config.send_timeout,
            socket.send(Message::Text(text.into())),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Closed),
            // The socket is not draining: drop this client rather than let it pile up.
            Err(_) => Err(End::Close(1008, "too slow")),
        }
    }

    /// Sends `{"type":kind,"seq":n,` + the body's fields.
    async fn send_numbered(
        &mut self,
        socket: &mut WebSocket,
        head: &str,
        body: &str,
    ) -> Result<(), End> {
        self.seq += 1;
        let fields = body.strip_prefix('{').unwrap_or(body);
        let mut text = String::with_capacity(head.len() + fields.len() + 24);
        text.push_str(head);
        text.push_str(&self.seq.to_string());
        if fields != "}" {
            text.push(',');
        }
        text.push_str(fields);
        self.send(socket, text).await
    }

    async fn send_snapshot(
        &mut self,
        socket: &mut WebSocket,
        reason: &str,
        shared: &Shared,
    ) -> Result<(), End> {
        let head = format!("{{\"type\":\"snapshot\",\"reason\":\"{reason}\",\"seq\":");
        self.send_numbered(socket, &head, &shared.json).await
    }

    /// A snapshot at most one interval old (computed now if there is none).
    async fn resync(&mut self, socket: &mut WebSocket, reason: &str) -> Result<(), End> {
        let max_age = self.hub.inner.config.snapshot_interval;
        match self.hub.snapshot(&self.scope, max_age).await {
            Ok(s) => self.send_snapshot(socket, reason, &s).await,
            Err(e) => {
                tracing::warn!(error = %e, "cannot compute a dashboard snapshot");
                Err(End::Close(1011, "snapshot unavailable"))
            }
        }
    }

    async fn serve(&mut self, socket: &mut WebSocket) -> End {
        match self.serve_inner(socket).await {
            Ok(()) => End::Close(1000, "bye"),
            Err(e) => e,
        }
    }

    async fn serve_inner(&mut self, socket: &mut WebSocket) -> Result<(), End> {
        let cfg = self.hub.inner.config.clone();
        let mut deltas = self.hub.inner.deltas.subscribe();
        let mut snapshots = self.state.tx.subscribe();
        self.resync(socket, "connect").await?;
        snapshots.mark_unchanged();
        let mut heartbeat =
            tokio::time::interval_at(tokio::time::Instant::now() + cfg.heartbeat, cfg.heartbeat);
        let mut last_heard = Instant::now();
        loop {
            tokio::select! {
                _ = self.hub.inner.stop.cancelled() => return Err(End::Close(1001, "server stopping")),
                _ = heartbeat.tick() => {
                    if last_heard.elapsed() > cfg.heartbeat * 3 {
                        return Err(End::Close(1001, "no answer to pings"));
                    }
                    // A session that ended (signed out, expired, user disabled) ends the feed.
                    if let Err(ServiceError::Unauthenticated) = self.app.authenticate(&self.token).await {
                        return Err(End::Close(4401, "session ended"));
                    }
                    if tokio::time::timeout(cfg.send_timeout, socket.send(Message::Ping(Default::default()))).await.is_err() {
                        return Err(End::Close(1008, "too slow"));
                    }
                    let text = format!("{{\"type\":\"heartbeat\",\"seq\":{},\"at\":\"{}\"}}", self.seq, chrono::Utc::now().to_rfc3339());
                    self.send(socket, text).await?;
                }
                d = deltas.recv() => match d {
                    Ok(msg) => match &*msg {
                        Outgoing::Delta { tier, json } => {
                            let visible = match tier {
                                Some(t) => self.scope.contains(*t),
                                None => self.scope.is_all(),
                            };
                            if visible {
                                self.send_numbered(socket, "{\"type\":\"delta\",\"seq\":", json).await?;
                            }
                        }
                        Outgoing::Resync => self.resync(socket, "resync").await?,
                    },
                    Err(RecvError::Lagged(_)) => {
                        // Fell behind: what it missed is in a fresh snapshot.
                        self.resync(socket, "lagged").await?;
                        snapshots.mark_unchanged();
                    }
                    Err(RecvError::Closed) => return Ok(()),
                },
                changed = snapshots.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    let latest = snapshots.borrow_and_update().clone();
                    if let Some(s) = latest {
                        self.send_snapshot(socket, "refresh", &s).await?;
                    }
                }
                m = socket.recv() => {
                    last_heard = Instant::now();
                    match m {
                        Some(Ok(Message::Text(t))) => self.on_text(socket, t.as_str()).await?,
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Err(End::Closed),
                        Some(Ok(_)) => {}
                    }
                }
            }
        }
    }

    async fn on_text(&mut self, socket: &mut WebSocket, text: &str) -> Result<(), End> {
        #[derive(Deserialize)]
        struct Request {
            #[serde(rename = "type")]
            kind: String,
        }
        match serde_json::from_str::<Request>(text).map(|r| r.kind) {
            Ok(k) if k == "resync" => self.resync(socket, "resync").await,
            Ok(k) if k == "ping" || k == "heartbeat" => Ok(()),
            _ => {
                let text = "{\"type\":\"error\",\"detail\":\"unknown message: send {\\\"type\\\":\\\"resync\\\"} for a snapshot\"}";
                self.send(socket, text.to_owned()).await
            }
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.state.clients.fetch_sub(1, Ordering::Relaxed);
        self.hub.inner.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

const PAGE_HTML: &str = include_str!("../../assets/dashboard.html");
const APP_JS: &str = include_str!("../../assets/dashboard.js");
const APP_CSS: &str = include_str!("../../assets/dashboard.css");

/// Strings of the page, Italian first; `{{key}}` in the HTML, and the same table for the
/// script.
const STRINGS: &[(&str, &str, &str)] = &[
    (
        "title",
        "Cruscotto del contact center",
        "Contact center dashboard",
    ),
    ("skip", "Vai al contenuto", "Skip to content"),
    ("lang_switch", "English", "Italiano"),
    ("lang_switch_href", "?lang=en", "?lang=it"),
    ("lang_switch_lang", "en", "it"),
    ("signin_title", "Accedi", "Sign in"),
    (
        "signin_intro",
        "Accedi con le credenziali di Sportello per vedere il cruscotto.",
        "Sign in with your Sportello account to see the dashboard.",
    ),
    ("username", "Nome utente", "Username"),
    ("password", "Password", "Password"),
    ("signin", "Accedi", "Sign in"),
    ("signout", "Esci", "Sign out"),
    (
        "signin_failed",
        "Nome utente o password errati.",
        "Wrong username or password.",
    ),
    ("connecting", "Connessione in corso…", "Connecting…"),
    ("live", "In diretta", "Live"),
    (
        "offline",
        "Connessione persa: nuovo tentativo tra poco…",
        "Connection lost: retrying shortly…",
    ),
    ("updated", "Aggiornato alle", "Updated at"),
    ("summary", "Riepilogo", "Summary"),
    ("waiting", "In attesa", "Waiting"),
    ("assigned", "Assegnati", "Assigned"),
    ("open", "In lavorazione", "In progress"),
    ("waiting_citizen", "Attesa cittadino", "Waiting on citizen"),
    ("waiting_internal", "Attesa interna", "Waiting internally"),
    ("oldest_wait", "Attesa più lunga", "Longest wait"),
    ("arrivals_today", "Arrivi oggi", "Arrivals today"),
    ("resolved_today", "Risolti oggi", "Resolved today"),
    ("at_risk", "A rischio SLA", "SLA at risk"),
    ("breached", "SLA scaduti", "SLA breached"),
    (
        "queues",
        "Code per canale e livello",
        "Queues by channel and tier",
    ),
    ("channel", "Canale", "Channel"),
    ("tier", "Livello", "Tier"),
    ("category", "Categoria", "Category"),
    ("none", "—", "—"),
    (
        "no_queue",
        "Nessuna richiesta in coda.",
        "Nothing in the queues.",
    ),
    (
        "hourly",
        "Arrivi e risoluzioni per ora (oggi)",
        "Arrivals and resolutions per hour (today)",
    ),
    ("arrivals", "Arrivi", "Arrivals"),
    ("resolutions", "Risolti", "Resolved"),
    ("hour", "Ora", "Hour"),
    ("sla", "Livelli di servizio (SLA)", "Service levels (SLA)"),
    ("today", "Oggi", "Today"),
    ("last_7_days", "Ultimi 7 giorni", "Last 7 days"),
    (
        "first_response_within",
        "Prime risposte nei tempi",
        "First responses on time",
    ),
    (
        "resolution_within",
        "Risoluzioni nei tempi",
        "Resolutions on time",
    ),
    (
        "first_response_p50",
        "Prima risposta, mediana",
        "First response, median",
    ),
    (
        "first_response_p90",
        "Prima risposta, 90° percentile",
        "First response, 90th percentile",
    ),
    (
        "resolution_p50",
        "Risoluzione, mediana",
        "Resolution, median",
    ),
    (
        "resolution_p90",
        "Risoluzione, 90° percentile",
        "Resolution, 90th percentile",
    ),
    (
        "business_time",
        "Tempi in orario di servizio, pause escluse.",
        "Times in opening hours, pauses excluded.",
    ),
    ("no_data", "Nessun dato", "No data"),
    ("at_risk_list", "Richieste a rischio", "Requests at risk"),
    (
        "breached_list",
        "Richieste fuori SLA",
        "Requests past their SLA",
    ),
    ("ticket", "Richiesta", "Request"),
    ("due", "Scadenza", "Due"),
    ("time_left", "Tempo rimasto", "Time left"),
    ("overdue_by", "Scaduta da", "Overdue by"),
    (
        "no_at_risk",
        "Nessuna richiesta a rischio.",
        "No request at risk.",
    ),
    (
        "no_breached",
        "Nessuna richiesta fuori SLA.",
        "No request past its SLA.",
    ),
    ("operators", "Operatori", "Operators"),
    ("operator", "Operatore", "Operator"),
    ("presence", "Presenza", "Presence"),
    ("status", "Stato", "Status"),
    ("load", "Carico", "Load"),
    ("on_shift", "In turno", "On shift"),
    (
        "no_operators",
        "Nessun operatore configurato.",
        "No operator set up.",
    ),
    ("phone", "Telefono", "Phone"),
    (
        "callbacks_pending",
        "Richiamate da fare",
        "Call-backs pending",
    ),
    (
        "callbacks_overdue",
        "Richiamate in ritardo",
        "Call-backs overdue",
    ),
    ("counter", "Sportello fisico", "Counter"),
    ("visitors_waiting", "Persone in attesa", "Visitors waiting"),
    ("desks_open", "Postazioni aperte", "Desks open"),
    ("no_shows", "Assenze oggi", "No-shows today"),
    (
        "counter_unavailable",
        "Dati dello sportello non disponibili.",
        "Counter figures not available.",
    ),
    ("recent", "Ultimi eventi", "Recent events"),
    ("ev_ticket_created", "nuova richiesta", "new request"),
    ("ev_ticket_transitioned", "cambio di stato", "status change"),
    ("ev_ticket_assigned", "assegnazione", "assignment"),
    ("ev_entry_added", "nuova voce", "new entry"),
    ("ev_sla_changed", "SLA", "SLA"),
    ("ch_phone", "Telefono", "Phone"),
    ("ch_email", "E-mail", "E-mail"),
    ("ch_counter", "Sportello", "Counter"),
    ("ch_web", "Web", "Web"),
    ("ch_internal", "Interno", "Internal"),
    ("tier_front_office", "Front office", "Front office"),
    ("tier_back_office", "Back office", "Back office"),
    ("pr_available", "Disponibili", "Available"),
    ("pr_busy", "Occupati", "Busy"),
    ("pr_wrap_up", "Chiusura pratica", "Wrap-up"),
    ("pr_break", "In pausa", "On break"),
    ("pr_offline", "Non collegati", "Offline"),
    ("st_new", "nuova", "new"),
    ("st_assigned", "assegnata", "assigned"),
    ("st_open", "in lavorazione", "in progress"),
    (
        "st_waiting_citizen",
        "attesa cittadino",
        "waiting on citizen",
    ),
    (
        "st_waiting_internal",
        "attesa interna",
        "waiting internally",
    ),
    ("st_resolved", "risolta", "resolved"),
    ("st_closed", "chiusa", "closed"),
    ("yes", "sì", "yes"),
    ("no", "no", "no"),
    (
        "chart_arrivals_label",
        "Grafico a barre degli arrivi e delle risoluzioni per ora",
        "Bar chart of arrivals and resolutions per hour",
    ),
    (
        "chart_sla_label",
        "Grafico della quota di risposte nei tempi",
        "Chart of the share of responses on time",
    ),
    ("main_label", "Cruscotto", "Dashboard"),
];

fn page_html(english: bool) -> String {
    let mut html = PAGE_HTML.replace("{{lang}}", if english { "en" } else { "it" });
    let mut table = serde_json::Map::new();
    for (key, it, en) in STRINGS {
        let text = if english { en } else { it };
        html = html.replace(&format!("{{{{{key}}}}}"), &escape_html(text));
        table.insert(
            (*key).to_owned(),
            serde_json::Value::String((*text).to_owned()),
        );
    }
    // Inside a JSON script block only `<` could end it early.
    let json = serde_json::Value::Object(table)
        .to_string()
        .replace('<', "\\u003c");
    html.replace("{{strings_json}}", &json)
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Scripts and styles come only from this server; nothing inline runs.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

#[derive(Deserialize)]
pub struct PageParams {
    lang: Option<String>,
}

/// The dashboard page; Italian unless `?lang=en`.
async fn page(Query(p): Query<PageParams>) -> Response {
    let english = p
        .lang
        .as_deref()
        .is_some_and(|l| l.eq_ignore_ascii_case("en"));
    let mut res = (StatusCode::OK, page_html(english)).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut res = (StatusCode::OK, body).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_of_the_page_is_filled_in_both_languages() {
        for english in [false, true] {
            let html = page_html(english);
            assert!(
                !html.contains("{{"),
                "unfilled placeholder in {}",
                if english { "English" } else { "Italian" }
            );
            assert!(html.contains(if english {
                "lang=\"en\""
            } else {
                "lang=\"it\""
            }));
        }
        assert!(page_html(false).contains("Cruscotto del contact center"));
        assert!(page_html(true).contains("Contact center dashboard"));
    }

    #[test]
    fn strings_are_unique_and_complete() {
        let mut keys: Vec<&str> = STRINGS.iter().map(|(k, _, _)| *k).collect();
        keys.sort();
        let n = keys.len();
        keys.dedup();
        assert_eq!(n, keys.len(), "a key is listed twice");
        assert!(
            STRINGS
                .iter()
                .all(|(_, it, en)| !it.is_empty() && !en.is_empty())
        );
    }
}
