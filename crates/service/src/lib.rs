//! Sportello's use cases. Every operation that changes data runs in one database transaction
//! here and publishes its domain events on the bus after the commit.

pub mod actor;
pub mod answers;
pub mod applications;
pub mod audit;
pub mod auth;
pub mod bus;
pub mod citizens;
pub mod config;
pub mod console;
pub mod counter;
pub mod crossbus;
pub mod dashboard;
pub mod demo;
pub mod error;
pub mod health;
mod intake;
pub mod mail;
pub mod metrics;
pub mod numbers;
pub mod phone;
pub mod reports;
pub mod routing;
pub mod taxonomy;
pub mod tickets;
mod util;

use std::sync::Arc;

pub use actor::Actor;
pub use bus::EventBus;
pub use config::ServiceConfig;
pub use error::ServiceError;
use sportello_store::Database;

/// The application core shared by the HTTP server, the CLI and background tasks.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    bus: EventBus,
    config: ServiceConfig,
    numbers: numbers::NumberAllocator,
    taxonomy: taxonomy::TaxonomyCache,
    phone: phone::PhoneRuntime,
    mail: mail::MailRuntime,
    tokens: auth::TokenCache,
    intake: intake::Intake,
    routing: routing::RoutingRuntime,
    dashboard: dashboard::DashboardCache,
    relay: crossbus::Relay,
    metrics: Arc<metrics::Metrics>,
    health: health::HealthRuntime,
}

impl App {
    /// Builds the core on a connected, migrated database, seeding the taxonomy lists on an
    /// empty database and the prepared answers missing from it.
    pub async fn new(db: Database, config: ServiceConfig) -> Result<App, ServiceError> {
        config.applications.validate()?;
        let phone = phone::PhoneRuntime::new(&config)?;
        let mail = mail::MailRuntime::new(&config)?;
        let taxonomy = taxonomy::TaxonomyCache::load(&db).await?;
        answers::seed(&db).await?;
        let numbers =
            numbers::NumberAllocator::new(config.ticket_prefix.clone(), config.number_block);
        let db_write = db.write.clone();
        let calendar = sportello_domain::calendar::BusinessCalendar::from_config(&config.calendar)
            .map_err(|e| ServiceError::field("calendar", e.to_string()))?;
        let routing = routing::RoutingRuntime::new(calendar)?;
        let metrics = Arc::new(metrics::Metrics::new());
        let observed = metrics.clone();
        Ok(App {
            inner: Arc::new(Inner {
                db,
                bus: EventBus::with_observer(4096, Arc::new(move |e| observed.observe_event(e))),
                config,
                numbers,
                taxonomy,
                phone,
                mail,
                tokens: Default::default(),
                intake: intake::Intake::start(db_write),
                routing,
                dashboard: Default::default(),
                relay: Default::default(),
                metrics,
                health: Default::default(),
            }),
        })
    }

    pub fn db(&self) -> &Database {
        &self.inner.db
    }

    pub fn bus(&self) -> &EventBus {
        &self.inner.bus
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.inner.config
    }
}
