//! `/api/v1/counter`: opening sessions and slots, bookings, check-in, calling visitors, visit
//! records, walk-ins, no-shows, and the weekly opening-hours plan.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use sportello_service::counter::{
    ApprovedPlan, BookingView, CalledVisitor, CheckIn, NewBooking, NewSession, NewWalkIn,
    NoShowRun, PlanView, SessionView, SlotList, TodayView, VisitRecord, VisitView,
};
use uuid::Uuid;

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/counter/sessions", post(create_session))
        .route("/counter/slots", get(slots))
        .route("/counter/bookings", post(book))
        .route("/counter/bookings/{id}", get(read_booking))
        .route("/counter/bookings/{id}/cancel", post(cancel))
        .route("/counter/bookings/{id}/reschedule", post(reschedule))
        .route("/counter/bookings/{id}/check-in", post(check_in))
        .route("/counter/bookings/{id}/visit", post(visit))
        .route("/counter/call-next", post(call_next))
        .route("/counter/walk-ins", post(walk_in))
        .route("/counter/today", get(today))
        .route("/counter/no-shows/run", post(run_no_shows))
        .route("/counter/plan", get(plan))
        .route("/counter/plan/{id}/approve", post(approve_plan))
}

/// Opens a session on a date; 409 on a holiday, a closure or an overlap, naming it.
#[utoipa::path(post, path = "/api/v1/counter/sessions", tag = "counter", security(("bearer" = [])), request_body = NewSession,
    responses((status = 201, body = SessionView), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_session(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiJson(input): ApiJson<NewSession>,
) -> ApiResult<(StatusCode, Json<SessionView>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.app.create_counter_session(&actor, input).await?),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct DateQuery {
    /// Local date, `YYYY-MM-DD`.
    pub date: String,
}

/// The slots of a date, with capacity and bookings.
#[utoipa::path(get, path = "/api/v1/counter/slots", tag = "counter", security(("bearer" = [])), params(DateQuery),
    responses((status = 200, body = SlotList), (status = 422, body = Problem)))]
pub async fn slots(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiQuery(q): ApiQuery<DateQuery>,
) -> ApiResult<Json<SlotList>> {
    Ok(Json(s.app.counter_slots(&actor, &q.date).await?))
}

/// Books a slot for a citizen (opening a counter ticket unless `ticket_id` is given); 409 when
/// the slot is full.
#[utoipa::path(post, path = "/api/v1/counter/bookings", tag = "counter", security(("bearer" = [])), request_body = NewBooking,
    responses((status = 201, body = BookingView), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn book(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiJson(input): ApiJson<NewBooking>,
) -> ApiResult<(StatusCode, Json<BookingView>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.app.book_counter_slot(&actor, input).await?),
    ))
}

/// One booking.
#[utoipa::path(get, path = "/api/v1/counter/bookings/{id}", tag = "counter", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "booking id")), responses((status = 200, body = BookingView), (status = 404, body = Problem)))]
pub async fn read_booking(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<BookingView>> {
    actor.require_operator()?;
    Ok(Json(s.app.booking_view(id).await?))
}

/// Cancels a booking, freeing its place.
#[utoipa::path(post, path = "/api/v1/counter/bookings/{id}/cancel", tag = "counter", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "booking id")), responses((status = 200, body = BookingView), (status = 409, body = Problem)))]
pub async fn cancel(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<BookingView>> {
    Ok(Json(s.app.cancel_counter_booking(&actor, id).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RescheduleRequest {
    pub slot_id: Uuid,
}

/// Moves a booking to another slot; 409 when that slot is full.
#[utoipa::path(post, path = "/api/v1/counter/bookings/{id}/reschedule", tag = "counter", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "booking id")), request_body = RescheduleRequest,
    responses((status = 200, body = BookingView), (status = 409, body = Problem)))]
pub async fn reschedule(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<RescheduleRequest>,
) -> ApiResult<Json<BookingView>> {
    Ok(Json(
        s.app
            .reschedule_counter_booking(&actor, id, req.slot_id)
            .await?,
    ))
}

/// Checks a visitor in (on the day of the booking) and gives the queue number.
#[utoipa::path(post, path = "/api/v1/counter/bookings/{id}/check-in", tag = "counter", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "booking id")), responses((status = 200, body = CheckIn), (status = 409, body = Problem)))]
pub async fn check_in(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<CheckIn>> {
    Ok(Json(s.app.counter_check_in(&actor, id).await?))
}

/// Records the visit on the ticket's timeline; `follow_up` sends the ticket to the back office.
#[utoipa::path(post, path = "/api/v1/counter/bookings/{id}/visit", tag = "counter", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "booking id")), request_body = VisitRecord,
    responses((status = 200, body = VisitView), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn visit(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<VisitRecord>,
) -> ApiResult<Json<VisitView>> {
    Ok(Json(s.app.record_counter_visit(&actor, id, input).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct CallNextRequest {
    pub desk: u32,
}

/// Calls the visitor waiting longest to a desk.
#[utoipa::path(post, path = "/api/v1/counter/call-next", tag = "counter", security(("bearer" = [])), request_body = CallNextRequest,
    responses((status = 200, body = CalledVisitor), (status = 422, body = Problem)))]
pub async fn call_next(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiJson(req): ApiJson<CallNextRequest>,
) -> ApiResult<Json<CalledVisitor>> {
    Ok(Json(s.app.counter_call_next(&actor, req.desk).await?))
}

/// Records a visitor without an appointment (checked in at once, `W` queue number).
#[utoipa::path(post, path = "/api/v1/counter/walk-ins", tag = "counter", security(("bearer" = [])), request_body = NewWalkIn,
    responses((status = 201, body = CheckIn), (status = 422, body = Problem)))]
pub async fn walk_in(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiJson(input): ApiJson<NewWalkIn>,
) -> ApiResult<(StatusCode, Json<CheckIn>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.app.counter_walk_in(&actor, input).await?),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct DeskQuery {
    pub desk: Option<u32>,
}

/// Today's visitors, for one desk or all.
#[utoipa::path(get, path = "/api/v1/counter/today", tag = "counter", security(("bearer" = [])), params(DeskQuery),
    responses((status = 200, body = TodayView)))]
pub async fn today(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiQuery(q): ApiQuery<DeskQuery>,
) -> ApiResult<Json<TodayView>> {
    Ok(Json(s.app.counter_today(&actor, q.desk).await?))
}

/// Marks no-shows now (they are also marked by a background task) and counts them.
#[utoipa::path(post, path = "/api/v1/counter/no-shows/run", tag = "counter", security(("bearer" = [])),
    responses((status = 200, body = NoShowRun), (status = 403, body = Problem)))]
pub async fn run_no_shows(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
) -> ApiResult<Json<NoShowRun>> {
    Ok(Json(s.app.run_counter_no_shows(&actor).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct WeekQuery {
    /// ISO week, `YYYY-Www`.
    pub week: String,
}

/// Proposes the sessions of a week, each with its reason.
#[utoipa::path(get, path = "/api/v1/counter/plan", tag = "counter", security(("bearer" = [])), params(WeekQuery),
    responses((status = 200, body = PlanView), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn plan(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiQuery(q): ApiQuery<WeekQuery>,
) -> ApiResult<Json<PlanView>> {
    Ok(Json(s.app.counter_plan(&actor, &q.week).await?))
}

/// Approves a plan: its sessions open and their slots can be booked.
#[utoipa::path(post, path = "/api/v1/counter/plan/{id}/approve", tag = "counter", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "plan id")), responses((status = 200, body = ApprovedPlan), (status = 409, body = Problem)))]
pub async fn approve_plan(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<ApprovedPlan>> {
    Ok(Json(s.app.approve_counter_plan(&actor, id).await?))
}
