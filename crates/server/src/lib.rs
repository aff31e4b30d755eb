//! Sportello's HTTP server: the REST API v1, authentication, health checks and the OpenAPI
//! document. The server takes a bound listener and a shutdown future, so tests run it on
//! port 0 and the binary drains requests gracefully on SIGTERM.

pub mod api;
pub mod auth;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod openapi;
pub mod web;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, StatusCode};
use serde::{Deserialize, Serialize};
use sportello_service::App;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// HTTP settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    /// Address to listen on, e.g. `127.0.0.1:8080`.
    pub listen: String,
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// Requests taking longer than this are answered 408.
    pub request_timeout_secs: u64,
    /// Mark the session cookie `Secure` (set when served behind TLS).
    pub secure_cookies: bool,
    /// Who may read `/metrics` (`[metrics]` at the top of the configuration file; the binary
    /// copies it here).
    #[serde(skip)]
    pub metrics: metrics::MetricsConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            body_limit_bytes: 2 * 1024 * 1024,
            request_timeout_secs: 30,
            secure_cookies: false,
            metrics: metrics::MetricsConfig::default(),
        }
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub app: App,
    pub config: Arc<ServerConfig>,
    /// The live dashboard's hub (one per server).
    pub dashboard: api::dashboard::Hub,
}

/// The whole HTTP application.
pub fn router(app: App, config: ServerConfig) -> Router {
    router_and_hub(app, config).0
}

/// The whole HTTP application and its dashboard hub, whose `close_all` ends the websockets
/// with a goodbye when the server stops (upgraded connections outlive graceful shutdown).
pub fn router_and_hub(app: App, config: ServerConfig) -> (Router, api::dashboard::Hub) {
    let hub = api::dashboard::Hub::new(app.clone(), Default::default());
    let state = AppState {
        dashboard: hub.clone(),
        app,
        config: Arc::new(config.clone()),
    };
    let metrics_state = state.clone();
    let request_id = HeaderName::from_static("x-request-id");
    let router = Router::new()
        .merge(api::health::router())
        .merge(metrics::router())
        .merge(api::dashboard::page_router())
        .merge(web::router(&state.app))
        .nest("/api/v1", api::router())
        .fallback(error::not_found)
        .with_state(state)
        .layer(DefaultBodyLimit::max(config.body_limit_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(config.request_timeout_secs.max(1)),
        ))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                // Method and route only: paths and queries may carry personal data.
                let route = req
                    .extensions()
                    .get::<axum::extract::MatchedPath>()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_else(|| "unmatched".into());
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                tracing::info_span!("http", http.method = %req.method(), http.route = %route, request.id = %id)
            }),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        // Outermost, so timeouts (408) and body-limit refusals are timed too; `Router::layer`
        // runs after routing, so the matched route is known.
        .layer(axum::middleware::from_fn_with_state(
            metrics_state,
            metrics::track,
        ));
    (router, hub)
}

/// Serves until `shutdown` resolves, then finishes the requests in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The peer address lets `/metrics` answer loopback scrapers only.
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
