//! The REST API v1: one router per feature, merged here.

pub mod answers;
pub mod applications;
pub mod audit;
pub mod auth;
pub mod citizens;
pub mod counter;
pub mod dashboard;
pub mod health;
pub mod mail;
pub mod operator;
pub mod phone;
pub mod reports;
pub mod routing;
pub mod taxonomy;
pub mod tickets;
pub mod users;

use axum::Router;

use crate::AppState;

/// Everything under `/api/v1`.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(auth::router())
        .merge(tickets::router())
        .merge(citizens::router())
        .merge(users::router())
        .merge(taxonomy::router())
        .merge(routing::router())
        .merge(audit::router())
        .merge(phone::router())
        .merge(mail::router())
        .merge(counter::router())
        .merge(dashboard::router())
        .merge(operator::router())
        .merge(answers::router())
        .merge(reports::router())
        .merge(applications::router())
        .merge(crate::openapi::router())
}
