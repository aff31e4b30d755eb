//! Prometheus metrics of this instance: what the use cases count as they run (tickets created
//! per channel, assignment latency, HTTP requests timed by the server) and what is read at
//! scrape time (tickets by status, SLA at risk and breached, the outbox backlog, the mailbox
//! fetchers, dashboard websocket clients).
//!
//! Counters and histograms are per instance (Prometheus sums them across instances); the
//! figures read from the database are the same on every instance and come from a few grouped
//! counts, cached for [`SCRAPE_TTL`] so frequent or concurrent scrapes cost one set of queries.
//! Labels carry slugs, route templates and mailbox names only, never personal data.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QuerySelect};
use sportello_domain::event::DomainEvent;
use sportello_domain::{Channel, Status, Tier};
use sportello_store::entities::{ticket, ticket_routing};
use sportello_store::mail as q;

use crate::{App, ServiceError};

/// How long the figures read from the database are reused between scrapes.
pub const SCRAPE_TTL: Duration = Duration::from_secs(5);

/// The content type of [`Metrics::encode`]'s output (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Statuses of tickets that still need work (SLA gauges count these only).
const ACTIVE: [&str; 5] = [
    "new",
    "assigned",
    "open",
    "waiting_citizen",
    "waiting_internal",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabel {
    channel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TierLabel {
    tier: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutboxLabel {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MailboxLabel {
    mailbox: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FetcherLabel {
    mailbox: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabel {
    version: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn assignment_histogram() -> Histogram {
    // One second to one business day: a phone call-back is taken within seconds, an e-mail
    // may wait hours for its specialist.
    Histogram::new([
        1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 14400.0, 28800.0, 86400.0,
    ])
}

fn http_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ])
}

/// Every fetcher state a mailbox can be in, so a state the fetcher left reads 0.
const FETCHER_STATES: [&str; 5] = ["starting", "running", "standby", "stopped", "not_started"];

/// The metrics registry of one instance.
pub struct Metrics {
    registry: Registry,
    tickets_created: Family<ChannelLabel, Counter>,
    assignment_latency: HistogramFamily<TierLabel>,
    http_requests: HistogramFamily<HttpLabels>,
    tickets: Family<StatusLabel, Gauge>,
    sla_at_risk: Family<TierLabel, Gauge>,
    sla_breached: Family<TierLabel, Gauge>,
    outbox: Family<OutboxLabel, Gauge>,
    outbox_backlog: Gauge,
    imap_connected: Family<MailboxLabel, Gauge>,
    imap_fetcher: Family<FetcherLabel, Gauge>,
    imap_last_fetch: Family<MailboxLabel, Gauge>,
    imap_failures: Family<MailboxLabel, Gauge>,
    websocket_clients: Gauge,
    /// When the database figures were last read; the lock also serialises refreshes.
    refreshed: tokio::sync::Mutex<Option<Instant>>,
    /// Set once a refresh failed, so the next scrape tries again at once.
    stale: Mutex<bool>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A registry with every family registered, names prefixed `sportello_`.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("sportello");
        let tickets_created = Family::<ChannelLabel, Counter>::default();
        registry.register(
            "tickets_created",
            "Tickets created by this instance, per channel",
            tickets_created.clone(),
        );
        // Every channel from the start, so a counter's first increase is visible as one.
        for c in Channel::ALL {
            tickets_created
                .get_or_create(&ChannelLabel {
                    channel: c.as_str().to_owned(),
                })
                .get();
        }
        let assignment_latency: HistogramFamily<TierLabel> =
            Family::new_with_constructor(assignment_histogram);
        registry.register(
            "assignment_latency_seconds",
            "Time from entering the queue to assignment by the router, per tier",
            assignment_latency.clone(),
        );
        let http_requests: HistogramFamily<HttpLabels> =
            Family::new_with_constructor(http_histogram);
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by method, matched route and status",
            http_requests.clone(),
        );
        let tickets = Family::<StatusLabel, Gauge>::default();
        registry.register(
            "tickets",
            "Tickets by status (all instances; read every few seconds)",
            tickets.clone(),
        );
        let sla_at_risk = Family::<TierLabel, Gauge>::default();
        registry.register(
            "sla_at_risk_tickets",
            "Active tickets whose SLA is at risk, per tier",
            sla_at_risk.clone(),
        );
        let sla_breached = Family::<TierLabel, Gauge>::default();
        registry.register(
            "sla_breached_tickets",
            "Active tickets past an SLA deadline, per tier",
            sla_breached.clone(),
        );
        let outbox = Family::<OutboxLabel, Gauge>::default();
        registry.register(
            "outbox_messages",
            "Outgoing e-mail by state (queued, sent, failed, bounced)",
            outbox.clone(),
        );
        let outbox_backlog = Gauge::default();
        registry.register(
            "outbox_backlog",
            "Outgoing e-mail waiting to be delivered",
            outbox_backlog.clone(),
        );
        let imap_connected = Family::<MailboxLabel, Gauge>::default();
        registry.register(
            "imap_connected",
            "1 while this instance's fetcher of the mailbox is connected to its IMAP server",
            imap_connected.clone(),
        );
        let imap_fetcher = Family::<FetcherLabel, Gauge>::default();
        registry.register(
            "imap_fetcher_state",
            "1 for the state this instance's fetcher of the mailbox is in",
            imap_fetcher.clone(),
        );
        let imap_last_fetch = Family::<MailboxLabel, Gauge>::default();
        registry.register(
            "imap_last_fetch_timestamp_seconds",
            "Unix time of the mailbox's last successful check for new mail (0: none yet)",
            imap_last_fetch.clone(),
        );
        let imap_failures = Family::<MailboxLabel, Gauge>::default();
        registry.register(
            "imap_session_failures",
            "IMAP sessions of the mailbox that ended in an error since this instance started",
            imap_failures.clone(),
        );
        let websocket_clients = Gauge::default();
        registry.register(
            "dashboard_websocket_clients",
            "Dashboards connected to this instance by websocket",
            websocket_clients.clone(),
        );
        let build = Family::<BuildLabel, Gauge>::default();
        registry.register(
            "build_info",
            "The running version (always 1)",
            build.clone(),
        );
        build
            .get_or_create(&BuildLabel {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        Metrics {
            registry,
            tickets_created,
            assignment_latency,
            http_requests,
            tickets,
            sla_at_risk,
            sla_breached,
            outbox,
            outbox_backlog,
            imap_connected,
            imap_fetcher,
            imap_last_fetch,
            imap_failures,
            websocket_clients,
            refreshed: tokio::sync::Mutex::new(None),
            stale: Mutex::new(false),
        }
    }

    /// Counts what a committed domain event of this instance means (called by the bus).
    pub fn observe_event(&self, event: &DomainEvent) {
        if let DomainEvent::TicketCreated { channel, .. } = event {
            self.tickets_created
                .get_or_create(&ChannelLabel {
                    channel: channel.as_str().to_owned(),
                })
                .inc();
        }
    }

    /// Records how long a ticket waited in the queue before the router assigned it.
    pub fn observe_assignment(&self, tier: Tier, waited: chrono::Duration) {
        let secs = std::cmp::Ord::max(waited.num_milliseconds(), 0) as f64 / 1000.0;
        self.assignment_latency
            .get_or_create(&TierLabel {
                tier: tier.as_str().to_owned(),
            })
            .observe(secs);
    }

    /// Records one HTTP request: `route` is the matched route template (`/api/v1/tickets/{id}`),
    /// never the raw path, which may carry personal data.
    pub fn observe_http(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.http_requests
            .get_or_create(&HttpLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status: status.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Sets the number of dashboard websocket clients (read from the hub at scrape time).
    pub fn set_websocket_clients(&self, n: usize) {
        self.websocket_clients
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The whole registry in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::warn!("encoding the metrics failed: {e}");
        }
        out
    }
}

impl App {
    /// This instance's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Reads the scrape-time figures (at most once per [`SCRAPE_TTL`]) and returns the metrics
    /// as Prometheus text. A database error leaves the previous figures in place and is
    /// reported to the caller, which still serves what it has.
    pub async fn render_metrics(&self) -> (String, Result<(), ServiceError>) {
        let refreshed = self.refresh_metrics().await;
        self.mailbox_metrics();
        (self.metrics().encode(), refreshed)
    }

    async fn refresh_metrics(&self) -> Result<(), ServiceError> {
        let m = self.metrics();
        let mut last = m.refreshed.lock().await;
        let stale = m.stale.lock().map(|s| *s).unwrap_or(true);
        if !stale && last.is_some_and(|t| t.elapsed() < SCRAPE_TTL) {
            return Ok(());
        }
        let result = self.read_figures().await;
        if let Ok(mut s) = m.stale.lock() {
            *s = result.is_err();
        }
        *last = Some(Instant::now());
        result
    }

    async fn read_figures(&self) -> Result<(), ServiceError> {
        let m = self.metrics();
        let read = &self.db().read;

        let by_status: Vec<(String, i64)> = ticket::Entity::find()
            .select_only()
            .column(ticket::Column::Status)
            .column_as(ticket::Column::Id.count(), "n")
            .group_by(ticket::Column::Status)
            .into_tuple()
            .all(read)
            .await?;
        for s in Status::ALL {
            let n = by_status
                .iter()
                .find(|(st, _)| st == s.as_str())
                .map_or(0, |(_, n)| *n);
            m.tickets
                .get_or_create(&StatusLabel {
                    status: s.as_str().to_owned(),
                })
                .set(n);
        }

        let t = |c: ticket::Column| Expr::col((ticket::Entity, c));
        let r = |c: ticket_routing::Column| Expr::col((ticket_routing::Entity, c));
        let mut sla = Query::select();
        sla.expr_as(t(ticket::Column::Tier), Alias::new("tier"))
            .expr_as(r(ticket_routing::Column::SlaState), Alias::new("sla_state"))
            .expr_as(Expr::col(ticket::Column::Id).count(), Alias::new("n"))
            .from(ticket_routing::Entity)
            .inner_join(
                ticket::Entity,
                t(ticket::Column::Id)
                    .equals((ticket_routing::Entity, ticket_routing::Column::TicketId)),
            )
            .and_where(r(ticket_routing::Column::SlaState).is_in(["at_risk", "breached"]))
            .and_where(t(ticket::Column::Status).is_in(ACTIVE))
            .add_group_by([t(ticket::Column::Tier), r(ticket_routing::Column::SlaState)]);
        let mut at_risk = std::collections::HashMap::new();
        let mut breached = std::collections::HashMap::new();
        for row in read.query_all(&sla).await? {
            let tier: String = row.try_get("", "tier")?;
            let state: String = row.try_get("", "sla_state")?;
            let n: i64 = row.try_get("", "n")?;
            match state.as_str() {
                "at_risk" => at_risk.insert(tier, n),
                _ => breached.insert(tier, n),
            };
        }
        for tier in Tier::ALL {
            let label = TierLabel {
                tier: tier.as_str().to_owned(),
            };
            m.sla_at_risk
                .get_or_create(&label)
                .set(at_risk.get(tier.as_str()).copied().unwrap_or(0));
            m.sla_breached
                .get_or_create(&label)
                .set(breached.get(tier.as_str()).copied().unwrap_or(0));
        }

        let outbox = q::outbox_counts(read).await?;
        for state in ["queued", "sent", "failed", "bounced"] {
            let n = outbox
                .iter()
                .find(|(s, _)| s == state)
                .map_or(0, |(_, n)| *n);
            m.outbox
                .get_or_create(&OutboxLabel {
                    state: state.to_owned(),
                })
                .set(n);
            if state == "queued" {
                m.outbox_backlog.set(n);
            }
        }
        Ok(())
    }

    /// The fetchers' state, read from memory at every scrape.
    fn mailbox_metrics(&self) {
        let m = self.metrics();
        for mb in self.mailbox_health() {
            let label = MailboxLabel {
                mailbox: mb.name.clone(),
            };
            m.imap_connected
                .get_or_create(&label)
                .set(i64::from(mb.connected));
            m.imap_last_fetch
                .get_or_create(&label)
                .set(mb.last_fetch.map_or(0, |t: DateTime<Utc>| t.timestamp()));
            m.imap_failures
                .get_or_create(&label)
                .set(i64::try_from(mb.failures).unwrap_or(i64::MAX));
            for state in FETCHER_STATES {
                m.imap_fetcher
                    .get_or_create(&FetcherLabel {
                        mailbox: mb.name.clone(),
                        state: state.to_owned(),
                    })
                    .set(i64::from(mb.fetcher == state));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_prefixed_and_start_at_zero_for_every_channel() {
        let m = Metrics::new();
        let text = m.encode();
        assert!(
            text.contains("# TYPE sportello_tickets_created_total counter"),
            "{text}"
        );
        assert!(
            text.contains("sportello_tickets_created_total{channel=\"phone\"} 0"),
            "{text}"
        );
        m.observe_event(&DomainEvent::TicketCreated {
            ticket_id: uuid::Uuid::nil(),
            number: "SP-2026-000001".into(),
            channel: Channel::Phone,
            tier: Tier::FrontOffice,
            category: None,
            at: Utc::now(),
        });
        let text = m.encode();
        assert!(
            text.contains("sportello_tickets_created_total{channel=\"phone\"} 1"),
            "{text}"
        );
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("sportello_"), "{line}");
        }
    }

    #[test]
    fn latencies_land_in_buckets() {
        let m = Metrics::new();
        m.observe_assignment(Tier::BackOffice, chrono::Duration::seconds(42));
        m.observe_http("GET", "/api/v1/tickets/{id}", 200, Duration::from_millis(3));
        let text = m.encode();
        // 42 s: not within 30 s, within 60 s.
        assert!(
            text.contains(
                "sportello_assignment_latency_seconds_bucket{tier=\"back_office\",le=\"30\"} 0"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "sportello_assignment_latency_seconds_bucket{tier=\"back_office\",le=\"60\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("sportello_assignment_latency_seconds_count{tier=\"back_office\"} 1"),
            "{text}"
        );
        assert!(text.contains("route=\"/api/v1/tickets/{id}\""), "{text}");
    }
}
