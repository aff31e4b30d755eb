//! Sportello's schema: one migration set that runs unchanged on SQLite and PostgreSQL.

pub use sea_orm_migration::prelude::*;

mod m20261126_000001_foundation;
mod m20261126_000002_phone;
mod m20261126_000003_email;
mod m20261126_000004_routing;
mod m20261126_000005_counter;
mod m20261126_000006_dashboard;
mod m20261126_000007_contact_lookup;
mod m20261126_000008_prepared_answers;
mod m20261126_000009_applications;
mod m20261126_000010_report_baselines;
mod m20261127_000011_calls_on_timeline;
mod m20261127_000012_sparse_indexes;
mod util;

/// Applies every migration in order; run at start-up and by `sportello migrate`.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_foundation::Migration),
            Box::new(m20261126_000002_phone::Migration),
            Box::new(m20261126_000003_email::Migration),
            Box::new(m20261126_000004_routing::Migration),
            Box::new(m20261126_000005_counter::Migration),
            Box::new(m20261126_000006_dashboard::Migration),
            Box::new(m20261126_000007_contact_lookup::Migration),
            Box::new(m20261126_000008_prepared_answers::Migration),
            Box::new(m20261126_000009_applications::Migration),
            Box::new(m20261126_000010_report_baselines::Migration),
            Box::new(m20261127_000011_calls_on_timeline::Migration),
            Box::new(m20261127_000012_sparse_indexes::Migration),
        ]
    }
}
