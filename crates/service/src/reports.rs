//! Reports: contacts, SLA attainment, applications and payments over a range of local days,
//! and month-by-month comparisons with the year before and with imported baselines, as JSON,
//! CSV or XLSX. docs/REPORTS.md defines every figure.
//!
//! Counts are aggregate queries (`GROUP BY` in the database): tickets, applications and
//! payments are never loaded. Contacts come from the dashboard's own query
//! ([`crate::dashboard::tickets_between`] with `created_at`), so the two never disagree.
//! Periods (day, week, month) are local days of the business calendar's time zone, bucketed
//! in the database by comparing with each period's first instant, which works the same on
//! SQLite and PostgreSQL and across clock changes. SLA figures need each ticket's stored clock
//! (business time cannot be computed in SQL): they come from the dashboard's SLA sampling, read
//! one day at a time.

mod compare;
pub mod export;

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use sea_orm::sea_query::{Alias, BinOper, CaseStatement, Expr, ExprTrait, Func, SelectStatement};
use sea_orm::{ConnectionTrait, QueryResult, Value};
use serde::Serialize;
use sportello_domain::Role;
use sportello_domain::taxonomy::validate_slug;
use sportello_store::entities::ticket;

pub use compare::{
    BaselineKey, BaselineList, BaselineRow, CompareReport, CompareRow, ImportedBaselines,
};
use export::{Cell, Column, ColumnKind, Table, euros};

use crate::dashboard::{DashboardScope, count_all, local_midnight, tickets_between};
use crate::error::Problems;
use crate::util::now;
use crate::{Actor, App, ServiceError};

/// The longest range a report by day may cover (ten years of days).
pub const MAX_DAY_BUCKETS: i64 = 3_660;
/// The longest range any report may cover.
pub const MAX_RANGE_DAYS: i64 = 36_600;

/// The reports there are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportKind {
    Contacts,
    Applications,
    Payments,
    Sla,
    Compare,
}

impl ReportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Contacts => "contacts",
            ReportKind::Applications => "applications",
            ReportKind::Payments => "payments",
            ReportKind::Sla => "sla",
            ReportKind::Compare => "compare",
        }
    }
}

/// What counts: the source table of a count report or of a comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Tickets, by creation instant.
    Contacts,
    /// Applications, by submission instant.
    Applications,
    /// Payments, by payment date.
    Payments,
}

impl Metric {
    pub const ALL: [Metric; 3] = [Metric::Contacts, Metric::Applications, Metric::Payments];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Contacts => "contacts",
            Metric::Applications => "applications",
            Metric::Payments => "payments",
        }
    }

    pub fn parse(s: &str) -> Result<Metric, String> {
        Metric::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!("unknown metric '{s}' (expected one of: contacts, applications, payments)")
            })
    }

    /// The dimensions a metric's figures can be split by.
    pub fn dims(self) -> &'static [Dim] {
        match self {
            Metric::Contacts => &[Dim::Channel, Dim::Measure, Dim::Category, Dim::Tier],
            Metric::Applications => &[Dim::Status, Dim::Measure, Dim::Channel],
            Metric::Payments => &[Dim::Measure],
        }
    }

    fn table(self) -> &'static str {
        match self {
            Metric::Contacts => "tickets",
            Metric::Applications => "applications",
            Metric::Payments => "payments",
        }
    }

    fn column(self, dim: Dim) -> &'static str {
        match (self, dim) {
            (Metric::Applications, Dim::Channel) => "submission_channel",
            (_, d) => d.as_str(),
        }
    }

    /// Who may read it: supervisors and administrators everything, the back office its
    /// applications and payments.
    fn require(self, actor: &Actor) -> Result<(), ServiceError> {
        match self {
            Metric::Contacts => actor.require_any(&[Role::Supervisor, Role::Admin]),
            Metric::Applications | Metric::Payments => {
                actor.require_any(&[Role::Supervisor, Role::Admin, Role::BackOffice])
            }
        }
    }
}

/// A dimension figures are split by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dim {
    Channel,
    Measure,
    Category,
    Tier,
    Status,
}

impl Dim {
    pub fn as_str(self) -> &'static str {
        match self {
            Dim::Channel => "channel",
            Dim::Measure => "measure",
            Dim::Category => "category",
            Dim::Tier => "tier",
            Dim::Status => "status",
        }
    }

    fn parse(s: &str) -> Option<Dim> {
        [
            Dim::Channel,
            Dim::Measure,
            Dim::Category,
            Dim::Tier,
            Dim::Status,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

/// Local periods of the business calendar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    Day,
    /// ISO weeks, Monday to Sunday.
    Week,
    Month,
}

/// How rows are keyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupBy {
    Dim(Dim),
    Period(Period),
    /// One row for everything.
    All,
}

impl GroupBy {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Dim(d) => d.as_str(),
            GroupBy::Period(Period::Day) => "day",
            GroupBy::Period(Period::Week) => "week",
            GroupBy::Period(Period::Month) => "month",
            GroupBy::All => "all",
        }
    }

    fn parse(s: &str, allowed: &[GroupBy]) -> Result<GroupBy, String> {
        allowed
            .iter()
            .copied()
            .find(|g| g.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown group_by '{s}' (expected one of: {})",
                    allowed
                        .iter()
                        .map(|g| g.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }
}

const DAY: GroupBy = GroupBy::Period(Period::Day);
const WEEK: GroupBy = GroupBy::Period(Period::Week);
const MONTH: GroupBy = GroupBy::Period(Period::Month);

impl ReportKind {
    /// The groupings a report accepts; the first is the default.
    fn groupings(self) -> &'static [GroupBy] {
        use GroupBy::Dim as D;
        match self {
            ReportKind::Contacts => &[
                D(Dim::Channel),
                D(Dim::Measure),
                D(Dim::Category),
                D(Dim::Tier),
                DAY,
                WEEK,
                MONTH,
            ],
            ReportKind::Applications => &[
                D(Dim::Status),
                D(Dim::Measure),
                D(Dim::Channel),
                DAY,
                WEEK,
                MONTH,
            ],
            ReportKind::Payments => &[D(Dim::Measure), MONTH, DAY, WEEK],
            ReportKind::Sla => &[
                D(Dim::Channel),
                D(Dim::Tier),
                D(Dim::Category),
                D(Dim::Measure),
                GroupBy::All,
            ],
            ReportKind::Compare => &[MONTH],
        }
    }
}

/// The file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Xlsx,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
        }
    }

    pub fn parse(s: &str) -> Result<Format, String> {
        match s {
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "xlsx" => Ok(Format::Xlsx),
            other => Err(format!(
                "unknown format '{other}' (expected one of: json, csv, xlsx)"
            )),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }
}

/// An inclusive range of local dates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateRange {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl DateRange {
    /// Checks the order and the length.
    pub fn new(from: NaiveDate, to: NaiveDate) -> Result<DateRange, ServiceError> {
        let mut p = Problems::default();
        let r = Self::checked(&mut p, Some(from), Some(to));
        p.finish()?;
        r.ok_or_else(|| ServiceError::Internal("validation produced no range".into()))
    }

    fn checked(
        p: &mut Problems,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Option<DateRange> {
        let (from, to) = (from?, to?);
        if from > to {
            p.add("from", format!("{from} is after to ({to})"));
            return None;
        }
        if (to - from).num_days() >= MAX_RANGE_DAYS {
            p.add(
                "to",
                format!("a report covers at most {MAX_RANGE_DAYS} days"),
            );
            return None;
        }
        Some(DateRange { from, to })
    }

    /// Number of days, both ends included.
    pub fn days(&self) -> i64 {
        (self.to - self.from).num_days() + 1
    }

    /// The same dates a year earlier (29 February becomes the 28th).
    pub fn year_before(&self) -> DateRange {
        let back = |d: NaiveDate| {
            d.with_year(d.year() - 1)
                .or_else(|| NaiveDate::from_ymd_opt(d.year() - 1, d.month(), 28))
                .unwrap_or(d)
        };
        DateRange {
            from: back(self.from),
            to: back(self.to),
        }
    }

    fn dates(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.from.iter_days().take_while(move |d| *d <= self.to)
    }
}

/// Parses a `YYYY-MM-DD` date.
fn parse_date(p: &mut Problems, field: &str, value: Option<&str>) -> Option<NaiveDate> {
    let Some(v) = value.map(str::trim) else {
        p.add(field, "is required (a date, YYYY-MM-DD)");
        return None;
    };
    match NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        Ok(d) if (1900..=9999).contains(&d.year()) => Some(d),
        _ => {
            p.add(field, format!("'{v}' is not a date (YYYY-MM-DD)"));
            None
        }
    }
}

/// A report's parameters as they arrive (query string or command line); [`App::report`]
/// validates them all at once, naming each one at fault.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct ReportQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub group_by: Option<String>,
    pub format: Option<String>,
    /// Payments: only this measure.
    pub measure: Option<String>,
    /// Comparison: `contacts`, `applications` or `payments`.
    pub metric: Option<String>,
    /// Comparison: `all` or `dimension:slug`, as in the baselines.
    pub key: Option<String>,
    /// Comparison: the baseline year to compare every month with (default: for each month, the
    /// latest earlier year with a baseline for that month).
    pub baseline_year: Option<String>,
}

/// A report's parameters once checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportSpec {
    pub kind: ReportKind,
    pub range: DateRange,
    pub group_by: GroupBy,
    pub format: Format,
    pub measure: Option<String>,
    pub metric: Metric,
    pub key: compare::BaselineKey,
    pub baseline_year: Option<i32>,
}

impl ReportSpec {
    /// Checks every parameter, reporting all the faulty ones at once.
    pub fn parse(kind: ReportKind, q: &ReportQuery) -> Result<ReportSpec, ServiceError> {
        let mut p = Problems::default();
        let from = parse_date(&mut p, "from", q.from.as_deref());
        let to = parse_date(&mut p, "to", q.to.as_deref());
        let range = DateRange::checked(&mut p, from, to);
        let groupings = kind.groupings();
        let group_by = match q.group_by.as_deref().map(str::trim) {
            None | Some("") => Some(groupings[0]),
            Some(g) => p.check("group_by", GroupBy::parse(g, groupings)),
        };
        if let (Some(GroupBy::Period(Period::Day)), Some(r)) = (group_by, range)
            && r.days() > MAX_DAY_BUCKETS
        {
            p.add(
                "group_by",
                format!("a report by day covers at most {MAX_DAY_BUCKETS} days: use week or month"),
            );
        }
        // The SLA report reads the clocks one day at a time.
        if let (ReportKind::Sla, Some(r)) = (kind, range)
            && r.days() > MAX_DAY_BUCKETS
        {
            p.add(
                "to",
                format!("an SLA report covers at most {MAX_DAY_BUCKETS} days"),
            );
        }
        let format = match q.format.as_deref().map(str::trim) {
            None | Some("") => Some(Format::Json),
            Some(f) => p.check("format", Format::parse(f)),
        };
        let measure = match q.measure.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(m) => p.check("measure", validate_slug(m).map(|_| m.to_owned())),
        };
        let metric = match (kind, q.metric.as_deref().map(str::trim)) {
            (ReportKind::Applications, _) => Some(Metric::Applications),
            (ReportKind::Payments, _) => Some(Metric::Payments),
            (ReportKind::Compare, Some(m)) if !m.is_empty() => p.check("metric", Metric::parse(m)),
            _ => Some(Metric::Contacts),
        };
        let key = match (metric, q.key.as_deref().map(str::trim)) {
            (Some(m), Some(k)) if kind == ReportKind::Compare && !k.is_empty() => {
                p.check("key", compare::BaselineKey::parse(m, k))
            }
            _ => Some(compare::BaselineKey::All),
        };
        let baseline_year = match q.baseline_year.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(y) => p.check(
                "baseline_year",
                y.parse::<i32>()
                    .ok()
                    .filter(|y| (1900..=9999).contains(y))
                    .ok_or_else(|| format!("'{y}' is not a year")),
            ),
        };
        p.finish()?;
        let missing = || ServiceError::Internal("validation produced no value".into());
        Ok(ReportSpec {
            kind,
            range: range.ok_or_else(missing)?,
            group_by: group_by.ok_or_else(missing)?,
            format: format.ok_or_else(missing)?,
            measure,
            metric: metric.ok_or_else(missing)?,
            key: key.ok_or_else(missing)?,
            baseline_year,
        })
    }
}

/// Told how far a report has got; the command line draws a progress bar with it.
pub trait ReportProgress: Send + Sync {
    /// `done` of `total` steps (queries, or days of SLA clocks) are finished.
    fn advance(&self, done: u64, total: u64);
}

/// No progress to show.
impl ReportProgress for () {
    fn advance(&self, _: u64, _: u64) {}
}

/// One row of a count report.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CountRow {
    /// The slug, or the period (`2026-11-26`, `2026-W48`, `2026-11`); null for items without
    /// a value (a ticket without a measure).
    pub key: Option<String>,
    pub count: u64,
}

/// Contacts or applications counted per key.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CountReport {
    /// `contacts` or `applications`.
    pub report: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub group_by: String,
    /// The time zone whose local days the range and periods are.
    pub timezone: String,
    pub rows: Vec<CountRow>,
    /// The sum of the rows: every item counted once.
    pub total: u64,
}

/// One row of the payments report.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AmountRow {
    pub key: Option<String>,
    /// Payments (instalments) made.
    pub count: u64,
    /// Their sum in euros, two decimals (`"750.00"`).
    pub amount: String,
    #[serde(skip)]
    pub cents: i64,
}

/// Payments per measure or period, for the regional reports.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PaymentsReport {
    pub report: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub group_by: String,
    /// Only this measure, when asked.
    pub measure: Option<String>,
    pub rows: Vec<AmountRow>,
    pub total_count: u64,
    pub total_amount: String,
}

/// First responses and resolutions of one key against their SLA targets; times are business
/// time (opening hours only, pauses excluded) in seconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SlaRow {
    pub key: Option<String>,
    /// First responses given in the range.
    pub first_responses: u64,
    /// Of those, within target.
    pub first_responses_met: u64,
    /// Late first responses plus unanswered tickets whose deadline passed in the range.
    pub first_responses_breached: u64,
    /// Of the breached, still unanswered.
    pub first_responses_overdue: u64,
    /// met / (given + overdue), four decimals; absent when there was nothing to measure.
    pub first_response_attainment: Option<f64>,
    pub first_response_median_secs: Option<i64>,
    pub first_response_p90_secs: Option<i64>,
    /// Resolutions in the range.
    pub resolutions: u64,
    pub resolutions_met: u64,
    pub resolutions_breached: u64,
    pub resolution_attainment: Option<f64>,
    pub resolution_median_secs: Option<i64>,
    pub resolution_p90_secs: Option<i64>,
}

/// Response and resolution times against the SLA.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SlaReport {
    pub report: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub group_by: String,
    pub timezone: String,
    /// When the report was computed: tickets unanswered then are counted as overdue.
    pub generated_at: DateTime<Utc>,
    pub rows: Vec<SlaRow>,
    /// Everything together (percentiles are not sums of the rows').
    pub total: SlaRow,
}

/// Any report.
#[derive(Clone, Debug, PartialEq)]
pub enum Report {
    Counts(CountReport),
    Payments(PaymentsReport),
    Sla(SlaReport),
    Compare(CompareReport),
}

/// A report rendered in a format.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub content_type: &'static str,
    pub file_name: String,
    pub bytes: Vec<u8>,
}

fn round(x: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (x * f).round() / f
}

impl Report {
    pub fn kind(&self) -> &str {
        match self {
            Report::Counts(r) => &r.report,
            Report::Payments(r) => &r.report,
            Report::Sla(r) => &r.report,
            Report::Compare(r) => &r.report,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        let v = match self {
            Report::Counts(r) => serde_json::to_value(r),
            Report::Payments(r) => serde_json::to_value(r),
            Report::Sla(r) => serde_json::to_value(r),
            Report::Compare(r) => serde_json::to_value(r),
        };
        v.unwrap_or(serde_json::Value::Null)
    }

    fn rows(&self) -> usize {
        match self {
            Report::Counts(r) => r.rows.len(),
            Report::Payments(r) => r.rows.len(),
            Report::Sla(r) => r.rows.len(),
            Report::Compare(r) => r.rows.len(),
        }
    }

    /// `contacts_2026-11-01_2026-11-30_channel`.
    pub fn file_stem(&self) -> String {
        let (from, to, by) = match self {
            Report::Counts(r) => (r.from, r.to, r.group_by.clone()),
            Report::Payments(r) => (
                r.from,
                r.to,
                match &r.measure {
                    Some(m) => format!("{}_{m}", r.group_by),
                    None => r.group_by.clone(),
                },
            ),
            Report::Sla(r) => (r.from, r.to, r.group_by.clone()),
            Report::Compare(r) => (
                r.from,
                r.to,
                format!("{}_{}", r.metric, r.key.replace(':', "-")),
            ),
        };
        format!("{}_{from}_{to}_{by}", self.kind())
    }

    /// The report as a table: the rows only (totals are in the JSON), so summing a column in a
    /// spreadsheet counts every item once.
    pub fn table(&self) -> Table {
        let text = |k: &Option<String>| Cell::from(k.clone());
        match self {
            Report::Counts(r) => Table {
                sheet: r.report.clone(),
                title: format!("{} {} – {} per {}", r.report, r.from, r.to, r.group_by),
                columns: vec![
                    Column::new("key", ColumnKind::Text),
                    Column::new("count", ColumnKind::Integer),
                ],
                rows: r
                    .rows
                    .iter()
                    .map(|row| vec![text(&row.key), Cell::from(row.count)])
                    .collect(),
            },
            Report::Payments(r) => Table {
                sheet: r.report.clone(),
                title: format!("{} {} – {} per {}", r.report, r.from, r.to, r.group_by),
                columns: vec![
                    Column::new("key", ColumnKind::Text),
                    Column::new("count", ColumnKind::Integer),
                    Column::new("amount", ColumnKind::Euros),
                ],
                rows: r
                    .rows
                    .iter()
                    .map(|row| {
                        vec![
                            text(&row.key),
                            Cell::from(row.count),
                            Cell::Cents(row.cents),
                        ]
                    })
                    .collect(),
            },
            Report::Sla(r) => Table {
                sheet: r.report.clone(),
                title: format!("SLA {} – {} per {}", r.from, r.to, r.group_by),
                columns: SLA_COLUMNS.to_vec(),
                rows: r.rows.iter().map(sla_cells).collect(),
            },
            Report::Compare(r) => r.table(),
        }
    }

    /// The report as a file (or as JSON text).
    pub fn render(&self, format: Format) -> Result<Rendered, ServiceError> {
        let bytes = match format {
            Format::Json => serde_json::to_vec_pretty(&self.to_json())
                .map_err(|e| ServiceError::Internal(format!("report JSON: {e}")))?,
            Format::Csv => self.table().to_csv()?,
            Format::Xlsx => self.table().to_xlsx()?,
        };
        Ok(Rendered {
            content_type: format.content_type(),
            file_name: format!("{}.{}", self.file_stem(), format.as_str()),
            bytes,
        })
    }
}

const SLA_COLUMNS: [Column; 14] = [
    Column::new("key", ColumnKind::Text),
    Column::new("first_responses", ColumnKind::Integer),
    Column::new("first_responses_met", ColumnKind::Integer),
    Column::new("first_responses_breached", ColumnKind::Integer),
    Column::new("first_responses_overdue", ColumnKind::Integer),
    Column::new("first_response_attainment", ColumnKind::Ratio),
    Column::new("first_response_median_secs", ColumnKind::Integer),
    Column::new("first_response_p90_secs", ColumnKind::Integer),
    Column::new("resolutions", ColumnKind::Integer),
    Column::new("resolutions_met", ColumnKind::Integer),
    Column::new("resolutions_breached", ColumnKind::Integer),
    Column::new("resolution_attainment", ColumnKind::Ratio),
    Column::new("resolution_median_secs", ColumnKind::Integer),
    Column::new("resolution_p90_secs", ColumnKind::Integer),
];

fn sla_cells(r: &SlaRow) -> Vec<Cell> {
    vec![
        Cell::from(r.key.clone()),
        Cell::from(r.first_responses),
        Cell::from(r.first_responses_met),
        Cell::from(r.first_responses_breached),
        Cell::from(r.first_responses_overdue),
        Cell::from(r.first_response_attainment),
        Cell::from(r.first_response_median_secs),
        Cell::from(r.first_response_p90_secs),
        Cell::from(r.resolutions),
        Cell::from(r.resolutions_met),
        Cell::from(r.resolutions_breached),
        Cell::from(r.resolution_attainment),
        Cell::from(r.resolution_median_secs),
        Cell::from(r.resolution_p90_secs),
    ]
}

fn sla_row(key: Option<String>, p: &crate::dashboard::SlaPeriod) -> SlaRow {
    SlaRow {
        key,
        first_responses: p.first_responses,
        first_responses_met: p.first_responses_within_target,
        first_responses_breached: p
            .first_responses
            .saturating_sub(p.first_responses_within_target)
            + p.first_responses_overdue,
        first_responses_overdue: p.first_responses_overdue,
        first_response_attainment: p.first_response_attainment.map(|x| round(x, 4)),
        first_response_median_secs: p.first_response_p50_secs,
        first_response_p90_secs: p.first_response_p90_secs,
        resolutions: p.resolutions,
        resolutions_met: p.resolutions_within_target,
        resolutions_breached: p.resolutions.saturating_sub(p.resolutions_within_target),
        resolution_attainment: p.resolution_attainment.map(|x| round(x, 4)),
        resolution_median_secs: p.resolution_p50_secs,
        resolution_p90_secs: p.resolution_p90_secs,
    }
}

/// The periods of a range: each one's label and first local date (the first is clipped to
/// the range's start).
pub fn periods(range: &DateRange, period: Period) -> Vec<(String, NaiveDate)> {
    let mut out = Vec::new();
    for d in range.dates() {
        let starts = d == range.from
            || match period {
                Period::Day => true,
                Period::Week => d.weekday() == chrono::Weekday::Mon,
                Period::Month => d.day() == 1,
            };
        if starts {
            let label = match period {
                Period::Day => d.format("%Y-%m-%d").to_string(),
                Period::Week => d.format("%G-W%V").to_string(),
                Period::Month => d.format("%Y-%m").to_string(),
            };
            out.push((label, d));
        }
    }
    out
}

/// `CASE WHEN col < b[mid] THEN … ELSE … END`, nested as a binary search: the index of the
/// bucket a value falls in, given the first value of every bucket but the first, in a
/// logarithmic number of comparisons.
fn bucket_expr(column: &Expr, bounds: &[Value], offset: usize) -> Expr {
    if bounds.is_empty() {
        return Expr::val(offset as i32);
    }
    let mid = bounds.len() / 2;
    CaseStatement::new()
        .case(
            column.clone().lt(Expr::val(bounds[mid].clone())),
            bucket_expr(column, &bounds[..mid], offset),
        )
        .finally(bucket_expr(column, &bounds[mid + 1..], offset + mid + 1))
        .into()
}

fn get<T: sea_orm::TryGetable>(row: &QueryResult, name: &str) -> Result<T, ServiceError> {
    row.try_get::<T>("", name)
        .map_err(|e| ServiceError::Internal(format!("report column {name}: {e}")))
}

fn col(table: &str, column: &str) -> Expr {
    Expr::col((Alias::new(table), Alias::new(column)))
}

/// A counted key: its label, the count and, for payments, the cents.
pub(crate) type Counted = (Option<String>, u64, i64);

impl App {
    /// Runs a report for an actor and records it in the audit trail (parameters only).
    pub async fn report(
        &self,
        actor: &Actor,
        kind: ReportKind,
        q: &ReportQuery,
        progress: &dyn ReportProgress,
    ) -> Result<(Report, Format), ServiceError> {
        // Who may ask at all comes before what was asked.
        let roles: &[Role] = match kind {
            ReportKind::Contacts | ReportKind::Sla => &[Role::Supervisor, Role::Admin],
            _ => &[Role::Supervisor, Role::Admin, Role::BackOffice],
        };
        actor.require_any(roles)?;
        let spec = ReportSpec::parse(kind, q)?;
        let report = self.run_report(actor, &spec, progress).await?;
        crate::audit::record(
            &self.db().write,
            (!actor.id.is_nil()).then_some(actor.id),
            "report.downloaded",
            "report",
            None,
            Some(serde_json::json!({
                "report": kind.as_str(),
                "from": spec.range.from,
                "to": spec.range.to,
                "group_by": spec.group_by.as_str(),
                "format": spec.format.as_str(),
                "measure": spec.measure,
                "metric": (kind == ReportKind::Compare).then(|| spec.metric.as_str()),
                "key": (kind == ReportKind::Compare).then(|| spec.key.to_string()),
                "rows": report.rows(),
            })),
        )
        .await?;
        Ok((report, spec.format))
    }

    /// Runs a checked report (no audit record: [`App::report`] writes it).
    pub async fn run_report(
        &self,
        actor: &Actor,
        spec: &ReportSpec,
        progress: &dyn ReportProgress,
    ) -> Result<Report, ServiceError> {
        match spec.kind {
            ReportKind::Contacts | ReportKind::Applications => {
                spec.metric.require(actor)?;
                progress.advance(0, 1);
                let rows = self
                    .count_by(spec.metric, &spec.range, spec.group_by, &[])
                    .await?;
                progress.advance(1, 1);
                let total = rows.iter().map(|r| r.1).sum();
                Ok(Report::Counts(CountReport {
                    report: spec.kind.as_str().to_owned(),
                    from: spec.range.from,
                    to: spec.range.to,
                    group_by: spec.group_by.as_str().to_owned(),
                    timezone: self.timezone_name(),
                    rows: rows
                        .into_iter()
                        .map(|(key, count, _)| CountRow { key, count })
                        .collect(),
                    total,
                }))
            }
            ReportKind::Payments => {
                spec.metric.require(actor)?;
                progress.advance(0, 1);
                let filters: Vec<(Dim, String)> = spec
                    .measure
                    .iter()
                    .map(|m| (Dim::Measure, m.clone()))
                    .collect();
                let rows = self
                    .count_by(Metric::Payments, &spec.range, spec.group_by, &filters)
                    .await?;
                progress.advance(1, 1);
                let total_count = rows.iter().map(|r| r.1).sum();
                let total_cents: i64 = rows.iter().map(|r| r.2).sum();
                Ok(Report::Payments(PaymentsReport {
                    report: spec.kind.as_str().to_owned(),
                    from: spec.range.from,
                    to: spec.range.to,
                    group_by: spec.group_by.as_str().to_owned(),
                    measure: spec.measure.clone(),
                    rows: rows
                        .into_iter()
                        .map(|(key, count, cents)| AmountRow {
                            key,
                            count,
                            amount: euros(cents),
                            cents,
                        })
                        .collect(),
                    total_count,
                    total_amount: euros(total_cents),
                }))
            }
            ReportKind::Sla => {
                Metric::Contacts.require(actor)?;
                Ok(Report::Sla(
                    self.sla_report(&spec.range, spec.group_by, progress)
                        .await?,
                ))
            }
            ReportKind::Compare => {
                spec.metric.require(actor)?;
                Ok(Report::Compare(self.compare_report(spec, progress).await?))
            }
        }
    }

    fn timezone_name(&self) -> String {
        self.inner.routing.calendar.timezone().name().to_owned()
    }

    /// The first instant of the range and the first after it.
    fn instants(&self, range: &DateRange) -> (DateTime<Utc>, DateTime<Utc>) {
        let calendar = &self.inner.routing.calendar;
        let end = range.to.succ_opt().unwrap_or(range.to);
        (
            local_midnight(calendar, range.from),
            local_midnight(calendar, end),
        )
    }

    /// Items of a metric in the range, counted (and, for payments, summed) per key, filtered
    /// on dimension values. Periods come back in order, every one even when empty; slugs
    /// sorted, items without a value last.
    pub(crate) async fn count_by(
        &self,
        metric: Metric,
        range: &DateRange,
        group: GroupBy,
        filters: &[(Dim, String)],
    ) -> Result<Vec<Counted>, ServiceError> {
        let calendar = &self.inner.routing.calendar;
        let (from, to) = self.instants(range);
        let table = metric.table();
        let (mut q, time): (SelectStatement, Expr) = match metric {
            // A contact is what the dashboard counts as an arrival.
            Metric::Contacts => (
                tickets_between(ticket::Column::CreatedAt, from, to, &DashboardScope::all()),
                col(table, "created_at"),
            ),
            Metric::Applications => {
                let at = col(table, "submitted_at");
                let mut q = SelectStatement::new();
                q.from(Alias::new(table))
                    .and_where(at.clone().gte(from))
                    .and_where(at.clone().lt(to));
                (q, at)
            }
            // A payment date is a calendar date already: no time zone to apply.
            Metric::Payments => {
                let on = col(table, "paid_on");
                let mut q = SelectStatement::new();
                q.from(Alias::new(table))
                    .and_where(on.clone().gte(range.from))
                    .and_where(on.clone().lte(range.to));
                (q, on)
            }
        };
        for (dim, value) in filters {
            q.and_where(col(table, metric.column(*dim)).eq(value.as_str()));
        }
        q.expr_as(count_all(), Alias::new("n"));
        if metric == Metric::Payments {
            // SUM of a bigint is a numeric on PostgreSQL: cast back.
            q.expr_as(
                Func::cast_as(Func::sum(col(table, "amount_cents")), Alias::new("BIGINT")),
                Alias::new("cents"),
            );
        }
        let read = &self.db().read;
        let cents = |row: &QueryResult| -> Result<i64, ServiceError> {
            Ok(if metric == Metric::Payments {
                get::<Option<i64>>(row, "cents")?.unwrap_or(0)
            } else {
                0
            })
        };
        let n = |row: &QueryResult| -> Result<u64, ServiceError> {
            Ok(std::cmp::max(get::<i64>(row, "n")?, 0) as u64)
        };
        match group {
            GroupBy::All => {
                let row = read.query_one(&q).await?;
                Ok(match row {
                    Some(row) => vec![(Some("all".to_owned()), n(&row)?, cents(&row)?)],
                    None => vec![(Some("all".to_owned()), 0, 0)],
                })
            }
            GroupBy::Dim(dim) => {
                // Grouped by an expression no index provides in order: given a bare column,
                // SQLite's planner (which cannot see how narrow the range of bound instants
                // is) prefers scanning the whole index of that column to save a sort.
                let key =
                    col(table, metric.column(dim)).binary(BinOper::Custom("||"), Expr::cust("''"));
                q.expr_as(key, Alias::new("k"))
                    .add_group_by([Expr::col(Alias::new("k"))]);
                let mut out: Vec<Counted> = Vec::new();
                for row in read.query_all(&q).await? {
                    out.push((get(&row, "k")?, n(&row)?, cents(&row)?));
                }
                out.sort_by(|a, b| match (&a.0, &b.0) {
                    (Some(x), Some(y)) => x.cmp(y),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => std::cmp::Ordering::Equal,
                });
                Ok(out)
            }
            GroupBy::Period(period) => {
                let buckets = periods(range, period);
                let mut out: Vec<Counted> = buckets
                    .iter()
                    .map(|(label, _)| (Some(label.clone()), 0, 0))
                    .collect();
                if buckets.len() == 1 {
                    if let Some(row) = read.query_one(&q).await? {
                        out[0].1 = n(&row)?;
                        out[0].2 = cents(&row)?;
                    }
                    return Ok(out);
                }
                let bounds: Vec<Value> = buckets
                    .iter()
                    .skip(1)
                    .map(|(_, d)| match metric {
                        Metric::Payments => Value::from(*d),
                        _ => Value::from(local_midnight(calendar, *d)),
                    })
                    .collect();
                q.expr_as(bucket_expr(&time, &bounds, 0), Alias::new("bucket"))
                    // By name: PostgreSQL cannot tell that two copies of a CASE with bound
                    // values are the same expression.
                    .add_group_by([Expr::col(Alias::new("bucket"))]);
                for row in read.query_all(&q).await? {
                    let b: i32 = get(&row, "bucket")?;
                    if let Some(slot) = usize::try_from(b).ok().and_then(|b| out.get_mut(b)) {
                        slot.1 += n(&row)?;
                        slot.2 += cents(&row)?;
                    }
                }
                Ok(out)
            }
        }
    }

    /// First responses and resolutions against the SLA, per key: the dashboard's SLA samples,
    /// read a local day at a time (so memory holds one day of clocks), merged per key.
    async fn sla_report(
        &self,
        range: &DateRange,
        group: GroupBy,
        progress: &dyn ReportProgress,
    ) -> Result<SlaReport, ServiceError> {
        let calendar = &self.inner.routing.calendar;
        let read = &self.db().read;
        let scope = DashboardScope::all();
        let at = now();
        let key = match group {
            GroupBy::Dim(d) => Some(col("tickets", Metric::Contacts.column(d))),
            _ => None,
        };
        let total_steps = range.days() as u64 + 1;
        let mut samples: BTreeMap<Option<String>, crate::dashboard::SlaSamples> = BTreeMap::new();
        for (i, day) in range.dates().enumerate() {
            progress.advance(i as u64, total_steps);
            let start = local_midnight(calendar, day);
            let end = local_midnight(calendar, day + Duration::days(1));
            for (k, s) in self
                .sla_given_by(read, &scope, key.as_ref(), start, end, at)
                .await?
            {
                let merged = samples.get(&k).map_or_else(|| s.clone(), |m| m.merge(&s));
                samples.insert(k, merged);
            }
        }
        let (from, to) = self.instants(range);
        for (k, n) in self
            .sla_overdue_by(read, &scope, key.as_ref(), from, to, at)
            .await?
        {
            samples.entry(k).or_default().first_overdue += n;
        }
        progress.advance(total_steps, total_steps);
        let all = samples
            .values()
            .fold(crate::dashboard::SlaSamples::default(), |acc, s| {
                acc.merge(s)
            });
        let mut rows: Vec<SlaRow> = samples
            .iter()
            .map(|(k, s)| {
                let k = if key.is_some() {
                    k.clone()
                } else {
                    Some("all".to_owned())
                };
                sla_row(k, &s.period(from, to))
            })
            .collect();
        // Keys in order, tickets without a value last (BTreeMap puts None first).
        rows.sort_by_key(|r| (r.key.is_none(), r.key.clone()));
        if key.is_none() && rows.is_empty() {
            rows.push(sla_row(Some("all".to_owned()), &all.period(from, to)));
        }
        Ok(SlaReport {
            report: "sla".into(),
            from: range.from,
            to: range.to,
            group_by: group.as_str().to_owned(),
            timezone: self.timezone_name(),
            generated_at: at,
            rows,
            total: sla_row(Some("all".to_owned()), &all.period(from, to)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn range(a: &str, b: &str) -> DateRange {
        DateRange::new(d(a), d(b)).unwrap()
    }

    #[test]
    fn periods_are_clipped_to_the_range() {
        let r = range("2026-02-25", "2026-03-03");
        let months: Vec<String> = periods(&r, Period::Month)
            .into_iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(months, ["2026-02", "2026-03"]);
        let weeks = periods(&r, Period::Week);
        // 25 February 2026 is a Wednesday; the next week starts on Monday 2 March.
        assert_eq!(
            weeks,
            vec![
                ("2026-W09".to_owned(), d("2026-02-25")),
                ("2026-W10".to_owned(), d("2026-03-02"))
            ]
        );
        assert_eq!(periods(&r, Period::Day).len(), 7);
    }

    #[test]
    fn iso_weeks_label_the_turn_of_the_year() {
        // 1 January 2027 is a Friday in ISO week 53 of 2026.
        let w = periods(&range("2026-12-31", "2027-01-05"), Period::Week);
        assert_eq!(w[0].0, "2026-W53");
        assert_eq!(w[1], ("2027-W01".to_owned(), d("2027-01-04")));
    }

    #[test]
    fn parameters_are_checked_together_naming_each() {
        let q = ReportQuery {
            from: Some("2026-13-01".into()),
            to: Some("yesterday".into()),
            group_by: Some("colour".into()),
            format: Some("pdf".into()),
            ..Default::default()
        };
        let Err(ServiceError::Validation(errors)) = ReportSpec::parse(ReportKind::Contacts, &q)
        else {
            panic!("expected a validation error");
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["from", "to", "group_by", "format"]);

        let q = ReportQuery {
            from: Some("2026-03-02".into()),
            to: Some("2026-03-01".into()),
            ..Default::default()
        };
        let Err(ServiceError::Validation(errors)) = ReportSpec::parse(ReportKind::Contacts, &q)
        else {
            panic!("from after to is refused");
        };
        assert_eq!(errors[0].field, "from");

        let q = ReportQuery {
            from: Some("2026-03-01".into()),
            to: Some("2026-03-01".into()),
            group_by: Some("status".into()),
            ..Default::default()
        };
        assert!(ReportSpec::parse(ReportKind::Contacts, &q).is_err());
        let spec = ReportSpec::parse(ReportKind::Applications, &q).unwrap();
        assert_eq!(spec.group_by, GroupBy::Dim(Dim::Status));
        assert_eq!(spec.format, Format::Json);
    }

    #[test]
    fn a_year_before_keeps_the_months() {
        let r = range("2028-02-29", "2028-03-31").year_before();
        assert_eq!((r.from, r.to), (d("2027-02-28"), d("2027-03-31")));
    }
}
