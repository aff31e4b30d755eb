//! `GET /metrics` (Prometheus text format) and the layer that times every HTTP request by
//! method, matched route and status.
//!
//! The registry lives in the service layer (`sportello_service::metrics`); this module only
//! feeds it HTTP timings and the dashboard hub's client count, and guards who may read it:
//! with `metrics.token` set, a scraper must send it as a bearer token; without one, only
//! direct connections from this machine's loopback are answered (a request relayed by a
//! reverse proxy, recognised by its `Forwarded`/`X-Forwarded-For`/`X-Real-IP` header, is
//! refused even though the proxy connects from loopback). `metrics.enabled = false` removes
//! the endpoint altogether.

use std::net::SocketAddr;
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::ApiError;

/// `[metrics]`: who may read `/metrics`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricsConfig {
    /// Serve `/metrics` at all (default true).
    pub enabled: bool,
    /// A bearer token scrapers must present; empty: only direct loopback connections may read.
    pub token: Option<String>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig::loopback_only()
    }
}

impl MetricsConfig {
    /// The defaults: enabled, loopback only.
    pub fn loopback_only() -> Self {
        MetricsConfig {
            enabled: true,
            token: None,
        }
    }

    fn token(&self) -> Option<&str> {
        self.token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }
}

impl std::fmt::Debug for MetricsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsConfig")
            .field("enabled", &self.enabled)
            .field("token", &self.token().map(|_| "***"))
            .finish()
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// Headers a reverse proxy adds to what it relays.
const PROXY_HEADERS: [&str; 3] = ["forwarded", "x-forwarded-for", "x-real-ip"];

fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    // Constant time for equal lengths: the token is compared without an early exit.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn allowed(
    config: &MetricsConfig,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Result<(), ApiError> {
    if let Some(token) = config.token() {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        return match presented {
            Some(p) if same_bytes(p.as_bytes(), token.as_bytes()) => Ok(()),
            _ => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Authentication required",
                "send the [metrics] token as 'Authorization: Bearer <token>'",
            )),
        };
    }
    let direct = PROXY_HEADERS.iter().all(|h| !headers.contains_key(*h));
    let local = peer.is_some_and(|p| p.ip().is_loopback());
    if direct && local {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Forbidden",
            "metrics are served to this machine only; set [metrics] token to scrape from elsewhere",
        ))
    }
}

/// The instance's metrics in the Prometheus text format (version 0.0.4).
pub async fn metrics(State(state): State<AppState>, request: Request) -> Response {
    let config = &state.config.metrics;
    if !config.enabled {
        return crate::error::not_found(request.uri().clone())
            .await
            .into_response();
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    if let Err(e) = allowed(config, request.headers(), peer) {
        return e.into_response();
    }
    state
        .app
        .metrics()
        .set_websocket_clients(state.dashboard.clients());
    let (text, refreshed) = state.app.render_metrics().await;
    if let Err(e) = refreshed {
        // The counters are still right; the database figures are those of the last scrape.
        tracing::warn!(error = %e, "metrics: reading the figures from the database failed");
    }
    (
        [(
            header::CONTENT_TYPE,
            sportello_service::metrics::CONTENT_TYPE,
        )],
        text,
    )
        .into_response()
}

/// Times a request and records it under its matched route (`unmatched` for 404s of unknown
/// paths, so scanners cannot grow the label set).
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let response = next.run(request).await;
    let method = match method.as_str() {
        m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS") => m,
        _ => "other",
    };
    state.app.metrics().observe_http(
        method,
        route.as_deref().unwrap_or("unmatched"),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(ip: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(ip.parse().unwrap(), 40000))
    }

    #[test]
    fn loopback_only_without_a_token() {
        let c = MetricsConfig::loopback_only();
        let none = HeaderMap::new();
        assert!(allowed(&c, &none, peer("127.0.0.1")).is_ok());
        assert!(allowed(&c, &none, peer("::1")).is_ok());
        assert!(allowed(&c, &none, peer("192.0.2.7")).is_err());
        assert!(allowed(&c, &none, None).is_err());
        let mut proxied = HeaderMap::new();
        proxied.insert("x-forwarded-for", "203.0.113.9".parse().unwrap());
        assert!(allowed(&c, &proxied, peer("127.0.0.1")).is_err());
    }

    #[test]
    fn a_token_opens_it_from_anywhere_and_nothing_else_does() {
        let c = MetricsConfig {
            enabled: true,
            token: Some("scrape-secret-123".into()),
        };
        let mut h = HeaderMap::new();
        assert!(allowed(&c, &h, peer("127.0.0.1")).is_err());
        h.insert(
            header::AUTHORIZATION,
            "Bearer scrape-secret-124".parse().unwrap(),
        );
        assert!(allowed(&c, &h, peer("192.0.2.7")).is_err());
        h.insert(
            header::AUTHORIZATION,
            "Bearer scrape-secret-123".parse().unwrap(),
        );
        assert!(allowed(&c, &h, peer("192.0.2.7")).is_ok());
        assert!(!format!("{c:?}").contains("secret"));
    }
}
