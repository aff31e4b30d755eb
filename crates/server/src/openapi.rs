//! The OpenAPI document, generated from the handlers' annotations and served as JSON.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::AppState;
use crate::api;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Sportello API", description = "Omnichannel contact-center ticketing for public welfare services. Errors are RFC 9457 problem documents."),
    modifiers(&BearerAuth),
    paths(
        api::health::healthz, api::health::readyz,
        api::auth::login, api::auth::logout, api::auth::me,
        api::tickets::create, api::tickets::list, api::tickets::count, api::tickets::read,
        api::tickets::transition, api::tickets::add_entry,
        api::citizens::create, api::citizens::search, api::citizens::read,
        api::users::create, api::users::list, api::users::read, api::users::update,
        api::taxonomy::list, api::taxonomy::add,
        api::audit::list,
        api::routing::set_profile, api::routing::set_presence, api::routing::set_shifts,
        api::routing::operators, api::routing::dry_run, api::routing::rules, api::routing::replace_rules,
        api::routing::assign, api::routing::escalate,
        api::phone::native_events, api::phone::zammad_cti,
        api::phone::list_calls, api::phone::count_calls, api::phone::add_call_note,
        api::phone::list_callbacks, api::phone::record_attempt,
        api::mail::reply, api::mail::attachment, api::mail::mailboxes, api::mail::quarantine,
        api::mail::quarantine_raw, api::mail::retry,
        api::dashboard::snapshot, api::dashboard::ws,
        api::counter::create_session, api::counter::slots, api::counter::book,
        api::counter::read_booking, api::counter::cancel, api::counter::reschedule,
        api::counter::check_in, api::counter::visit, api::counter::call_next,
        api::counter::walk_in, api::counter::today, api::counter::run_no_shows,
        api::counter::plan, api::counter::approve_plan,
        api::applications::create, api::applications::list, api::applications::read,
        api::applications::transition, api::applications::mark_document,
        api::applications::record_payment, api::applications::link, api::applications::links,
        api::applications::of_citizen,
        api::operator::my_work, api::operator::queue, api::operator::classify,
        api::operator::log_call, api::operator::appointments,
        api::answers::list, api::answers::list_topics, api::answers::read, api::answers::create,
        api::answers::update, api::answers::deactivate, api::answers::render,
        api::reports::contacts, api::reports::applications, api::reports::payments,
        api::reports::sla, api::reports::compare, api::reports::baselines,
        api::reports::import_baselines,
    )
)]
pub struct ApiDoc;

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
}
