//! `/api/v1/reports`: contacts, applications, payments, SLA attainment and the comparison
//! with the year before and with baselines, as JSON or as CSV and XLSX downloads; baselines
//! imported from CSV. What every figure means is in docs/REPORTS.md.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use sportello_service::reports::{
    BaselineList, CompareReport, CountReport, Format, ImportedBaselines, PaymentsReport,
    ReportKind, ReportQuery, SlaReport,
};

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiResult, Problem};
use crate::extract::ApiQuery;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/reports/contacts", get(contacts))
        .route("/reports/applications", get(applications))
        .route("/reports/payments", get(payments))
        .route("/reports/sla", get(sla))
        .route("/reports/compare", get(compare))
        .route("/reports/baselines", get(baselines).post(import_baselines))
}

/// A report's query string. Every parameter is checked by the service, which names each one
/// at fault in a 422.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct ReportParams {
    /// First local date, `YYYY-MM-DD`, included.
    pub from: Option<String>,
    /// Last local date, `YYYY-MM-DD`, included.
    pub to: Option<String>,
    /// How rows are keyed (each report lists its values; the first is the default).
    pub group_by: Option<String>,
    /// `json` (default), `csv` or `xlsx`.
    pub format: Option<String>,
    /// Payments: only this measure.
    pub measure: Option<String>,
    /// Comparison: `contacts` (default), `applications` or `payments`.
    pub metric: Option<String>,
    /// Comparison: `all` (default) or `dimension:slug` (`channel:phone`, `measure:b2`).
    pub key: Option<String>,
    /// Comparison: the baseline year every month is compared with (default: for each month
    /// the latest earlier year with a baseline).
    pub baseline_year: Option<String>,
}

impl From<ReportParams> for ReportQuery {
    fn from(p: ReportParams) -> ReportQuery {
        ReportQuery {
            from: p.from,
            to: p.to,
            group_by: p.group_by,
            format: p.format,
            measure: p.measure,
            metric: p.metric,
            key: p.key,
            baseline_year: p.baseline_year,
        }
    }
}

/// Runs a report and answers JSON or a file to download.
async fn respond(
    s: &AppState,
    actor: &sportello_service::Actor,
    kind: ReportKind,
    params: ReportParams,
) -> ApiResult<Response> {
    let (report, format) = s.app.report(actor, kind, &params.into(), &()).await?;
    if format == Format::Json {
        return Ok(Json(report.to_json()).into_response());
    }
    let file = report.render(format)?;
    let mut res = file.bytes.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(file.content_type),
    );
    // File names are built from dates and slugs only: always plain ASCII.
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&format!("attachment; filename=\"{}\"", file.file_name))
            .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(res)
}

/// Contacts (tickets, by creation date) per channel, measure, category, tier, day, week or
/// month. Supervisors and admins.
#[utoipa::path(get, path = "/api/v1/reports/contacts", tag = "reports", security(("bearer" = [])),
    params(ReportParams),
    responses((status = 200, body = CountReport, description = "JSON, or a CSV or XLSX attachment (`group_by`: channel (default), measure, category, tier, day, week, month)"),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn contacts(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiQuery(q): ApiQuery<ReportParams>,
) -> ApiResult<Response> {
    respond(&s, &actor, ReportKind::Contacts, q).await
}

/// Applications (by submission date) per status, measure, submission channel, day, week or
/// month. Supervisors, admins and the back office.
#[utoipa::path(get, path = "/api/v1/reports/applications", tag = "reports", security(("bearer" = [])),
    params(ReportParams),
    responses((status = 200, body = CountReport, description = "JSON, or a CSV or XLSX attachment (`group_by`: status (default), measure, channel, day, week, month)"),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn applications(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiQuery(q): ApiQuery<ReportParams>,
) -> ApiResult<Response> {
    respond(&s, &actor, ReportKind::Applications, q).await
}

/// Payments (by payment date) per measure or month, with their amounts in euros; `measure`
/// narrows to one measure. Supervisors, admins and the back office.
#[utoipa::path(get, path = "/api/v1/reports/payments", tag = "reports", security(("bearer" = [])),
    params(ReportParams),
    responses((status = 200, body = PaymentsReport, description = "JSON, or a CSV or XLSX attachment (`group_by`: measure (default), month, day, week)"),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn payments(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiQuery(q): ApiQuery<ReportParams>,
) -> ApiResult<Response> {
    respond(&s, &actor, ReportKind::Payments, q).await
}

/// First responses and resolutions against their SLA targets (met, breached, median and 90th
/// percentile in business time) per channel, tier, category or measure. Supervisors and
/// admins.
#[utoipa::path(get, path = "/api/v1/reports/sla", tag = "reports", security(("bearer" = [])),
    params(ReportParams),
    responses((status = 200, body = SlaReport, description = "JSON, or a CSV or XLSX attachment (`group_by`: channel (default), tier, category, measure, all)"),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn sla(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiQuery(q): ApiQuery<ReportParams>,
) -> ApiResult<Response> {
    respond(&s, &actor, ReportKind::Sla, q).await
}

/// Each month of the range against the same dates a year earlier and against the imported
/// baseline, with deltas and percentages. Contacts: supervisors and admins; applications and
/// payments: also the back office.
#[utoipa::path(get, path = "/api/v1/reports/compare", tag = "reports", security(("bearer" = [])),
    params(ReportParams),
    responses((status = 200, body = CompareReport, description = "JSON, or a CSV or XLSX attachment"),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn compare(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiQuery(q): ApiQuery<ReportParams>,
) -> ApiResult<Response> {
    respond(&s, &actor, ReportKind::Compare, q).await
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct BaselineParams {
    /// Only this metric's baselines.
    pub metric: Option<String>,
}

/// The imported baselines. Supervisors and admins.
#[utoipa::path(get, path = "/api/v1/reports/baselines", tag = "reports", security(("bearer" = [])),
    params(BaselineParams),
    responses((status = 200, body = BaselineList), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn baselines(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiQuery(q): ApiQuery<BaselineParams>,
) -> ApiResult<Json<BaselineList>> {
    Ok(Json(
        s.app.list_baselines(&actor, q.metric.as_deref()).await?,
    ))
}

/// Imports baselines from a CSV body (`metric,key,period,count` with a header row; `,` or
/// `;`), replacing earlier figures of the same metric, key and month. All rows or none: a
/// faulty row is a 422 naming its line. Supervisors and admins.
#[utoipa::path(post, path = "/api/v1/reports/baselines", tag = "reports", security(("bearer" = [])),
    request_body(content = String, content_type = "text/csv", description = "metric,key,period,count\ncontacts,all,2024-01,1200"),
    responses((status = 200, body = ImportedBaselines), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn import_baselines(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    body: Bytes,
) -> ApiResult<Json<ImportedBaselines>> {
    Ok(Json(s.app.import_baselines(&actor, &body).await?))
}
