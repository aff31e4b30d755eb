//! Period-on-period comparison: each month of a range against the same dates a year earlier
//! and against a baseline (monthly volumes of earlier years, imported from CSV into
//! `report_baselines`), so the administration can show it keeps at least those volumes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use chrono::{Datelike, NaiveDate};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Order, Query};
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde::Serialize;
use sportello_domain::Role;
use sportello_domain::taxonomy::validate_slug;

use super::export::{Cell, Column, ColumnKind, Table};
use super::{Dim, GroupBy, Metric, Period, ReportProgress, ReportSpec, periods, round};
use crate::util::now;
use crate::{Actor, App, ServiceError};

const TABLE: &str = "report_baselines";
/// Most rows one import may carry (a century of months for every channel and measure).
const MAX_IMPORT_ROWS: usize = 100_000;
/// Rows per INSERT: six values each, well under SQLite's limit on bound values.
const INSERT_CHUNK: usize = 500;

/// Which figures a baseline is about: everything, or one value of a dimension.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BaselineKey {
    All,
    Dim(Dim, String),
}

impl BaselineKey {
    /// `all`, or `dimension:slug` with a dimension the metric has.
    pub fn parse(metric: Metric, s: &str) -> Result<BaselineKey, String> {
        let s = s.trim();
        if s == "all" {
            return Ok(BaselineKey::All);
        }
        let dims = || {
            metric
                .dims()
                .iter()
                .map(|d| format!("{}:…", d.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let Some((dim, value)) = s.split_once(':') else {
            return Err(format!(
                "'{s}' is not a key (expected all or one of: {})",
                dims()
            ));
        };
        let Some(dim) = Dim::parse(dim.trim()).filter(|d| metric.dims().contains(d)) else {
            return Err(format!(
                "{} cannot be split by '{dim}' (expected all or one of: {})",
                metric.as_str(),
                dims()
            ));
        };
        let value = value.trim();
        validate_slug(value).map_err(|e| e.to_string())?;
        Ok(BaselineKey::Dim(dim, value.to_owned()))
    }

    pub(crate) fn filters(&self) -> Vec<(Dim, String)> {
        match self {
            BaselineKey::All => Vec::new(),
            BaselineKey::Dim(d, v) => vec![(*d, v.clone())],
        }
    }
}

impl fmt::Display for BaselineKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BaselineKey::All => f.write_str("all"),
            BaselineKey::Dim(d, v) => write!(f, "{}:{v}", d.as_str()),
        }
    }
}

/// One month of a comparison.
#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CompareRow {
    /// The month, `YYYY-MM` (`total` for the total row).
    pub key: String,
    /// Whether the range covers only part of the month (the same days are counted a year
    /// earlier; a baseline is a whole month).
    pub partial: bool,
    pub count: u64,
    /// The same month a year earlier.
    pub last_year_key: String,
    pub last_year_count: u64,
    /// `count - last_year_count`.
    pub delta_last_year: i64,
    /// The delta in percent of last year's count, one decimal; absent when that was 0.
    pub percent_last_year: Option<f64>,
    /// The baseline's month (`YYYY-MM`), when there is one.
    pub baseline_key: Option<String>,
    pub baseline: Option<u64>,
    pub delta_baseline: Option<i64>,
    pub percent_baseline: Option<f64>,
}

/// A range, month by month, against the year before and a baseline.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CompareReport {
    pub report: String,
    /// `contacts`, `applications` or `payments` (payments are counted, not summed).
    pub metric: String,
    /// `all` or `dimension:slug`.
    pub key: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub timezone: String,
    pub rows: Vec<CompareRow>,
    /// The months together; the baseline only when every month has one.
    pub total: CompareRow,
}

/// One stored baseline figure.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BaselineRow {
    pub metric: String,
    pub key: String,
    /// `YYYY-MM`.
    pub period: String,
    pub count: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BaselineList {
    pub items: Vec<BaselineRow>,
}

/// What an import wrote.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ImportedBaselines {
    /// Rows written: new figures and figures replaced.
    pub imported: u64,
    /// Of those, figures that replaced an earlier import's.
    pub replaced: u64,
}

fn percent(delta: i64, reference: u64) -> Option<f64> {
    (reference > 0).then(|| round(delta as f64 * 100.0 / reference as f64, 1))
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn row(
    key: String,
    partial: bool,
    count: u64,
    last_year_key: String,
    last_year_count: u64,
    baseline: Option<(String, u64)>,
) -> CompareRow {
    let delta_last_year = signed(count) - signed(last_year_count);
    let (baseline_key, baseline) = baseline.map_or((None, None), |(k, b)| (Some(k), Some(b)));
    let delta_baseline = baseline.map(|b| signed(count) - signed(b));
    CompareRow {
        key,
        partial,
        count,
        last_year_key,
        last_year_count,
        delta_last_year,
        percent_last_year: percent(delta_last_year, last_year_count),
        baseline_key,
        baseline,
        delta_baseline,
        percent_baseline: baseline
            .zip(delta_baseline)
            .and_then(|(b, d)| percent(d, b)),
    }
}

/// The CSV of an import, checked row by row: every fault is reported (naming the line) and
/// nothing is written unless every row is right.
fn parse_import(bytes: &[u8]) -> Result<Vec<(Metric, BaselineKey, String, u64)>, ServiceError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let first_line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    // Spreadsheets set to Italian write `;` between fields.
    let delimiter = if first_line.contains(&b';') && !first_line.contains(&b',') {
        b';'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(bytes);
    let headers = reader
        .headers()
        .map_err(|e| ServiceError::field("file", format!("unreadable CSV: {e}")))?
        .clone();
    let position = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(m), Some(k), Some(p), Some(c)) = (
        position("metric"),
        position("key"),
        position("period"),
        position("count"),
    ) else {
        return Err(ServiceError::field(
            "file",
            "the header row must name the columns metric, key, period and count",
        ));
    };
    let mut problems = crate::error::Problems::default();
    let mut out = Vec::new();
    let mut seen: HashMap<(Metric, BaselineKey, String), u64> = HashMap::new();
    for (i, record) in reader.records().enumerate() {
        let line = i as u64 + 2;
        let field = format!("line {line}");
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                problems.add(&field, format!("unreadable row: {e}"));
                continue;
            }
        };
        if record.iter().all(str::is_empty) {
            continue;
        }
        if out.len() >= MAX_IMPORT_ROWS {
            return Err(ServiceError::field(
                "file",
                format!("an import holds at most {MAX_IMPORT_ROWS} rows"),
            ));
        }
        let cell = |j: usize| record.get(j).unwrap_or("");
        let metric = Metric::parse(cell(m));
        let key = metric
            .as_ref()
            .map_err(|_| String::new())
            .and_then(|m| BaselineKey::parse(*m, cell(k)));
        let period = NaiveDate::parse_from_str(&format!("{}-01", cell(p)), "%Y-%m-%d")
            .ok()
            .filter(|d| (1900..=9999).contains(&d.year()) && cell(p).len() == 7)
            .map(|d| d.format("%Y-%m").to_string())
            .ok_or_else(|| format!("'{}' is not a month (YYYY-MM)", cell(p)));
        let count = cell(c)
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= i64::MAX as u64)
            .ok_or_else(|| format!("'{}' is not a count (a whole number, 0 or more)", cell(c)));
        let mut faults = Vec::new();
        if let Err(e) = &metric {
            faults.push(format!("metric: {e}"));
        }
        if let Err(e) = &key
            && !e.is_empty()
        {
            faults.push(format!("key: {e}"));
        }
        if let Err(e) = &period {
            faults.push(format!("period: {e}"));
        }
        if let Err(e) = &count {
            faults.push(format!("count: {e}"));
        }
        match (metric, key, period, count) {
            (Ok(metric), Ok(key), Ok(period), Ok(count)) if faults.is_empty() => {
                if let Some(first) = seen.insert((metric, key.clone(), period.clone()), line) {
                    problems.add(
                        &field,
                        format!(
                            "{} {key} {period} is already on line {first}",
                            metric.as_str()
                        ),
                    );
                } else {
                    out.push((metric, key, period, count));
                }
            }
            _ => problems.add(&field, faults.join("; ")),
        }
    }
    problems.finish()?;
    if out.is_empty() {
        return Err(ServiceError::field("file", "no rows to import"));
    }
    Ok(out)
}

impl App {
    /// Imports baseline figures from CSV (`metric,key,period,count` with a header row),
    /// replacing figures imported before for the same metric, key and month. All or nothing.
    pub async fn import_baselines(
        &self,
        actor: &Actor,
        csv: &[u8],
    ) -> Result<ImportedBaselines, ServiceError> {
        actor.require_any(&[Role::Supervisor, Role::Admin])?;
        let rows = parse_import(csv)?;
        let at = now();
        let by = (!actor.id.is_nil()).then_some(actor.id);
        let txn = self.db().write.begin().await?;
        // Which of them replace earlier figures: one look-up per metric and key.
        let mut existing: HashSet<(String, String, String)> = HashSet::new();
        let pairs: BTreeMap<(&str, String), ()> = rows
            .iter()
            .map(|(m, k, _, _)| ((m.as_str(), k.to_string()), ()))
            .collect();
        for (metric, key) in pairs.keys() {
            let mut q = Query::select();
            q.column(Alias::new("period"))
                .from(Alias::new(TABLE))
                .and_where(Expr::col(Alias::new("metric")).eq(*metric))
                .and_where(Expr::col(Alias::new("key")).eq(key.as_str()));
            for r in txn.query_all(&q).await? {
                let period: String = r.try_get("", "period")?;
                existing.insert(((*metric).to_owned(), key.clone(), period));
            }
        }
        let replaced = rows
            .iter()
            .filter(|(m, k, p, _)| {
                existing.contains(&(m.as_str().to_owned(), k.to_string(), p.clone()))
            })
            .count() as u64;
        for chunk in rows.chunks(INSERT_CHUNK) {
            let mut insert = Query::insert();
            insert.into_table(Alias::new(TABLE)).columns([
                Alias::new("metric"),
                Alias::new("key"),
                Alias::new("period"),
                Alias::new("count"),
                Alias::new("imported_by"),
                Alias::new("imported_at"),
            ]);
            for (metric, key, period, count) in chunk {
                insert.values_panic([
                    metric.as_str().into(),
                    key.to_string().into(),
                    period.clone().into(),
                    (*count as i64).into(),
                    by.into(),
                    at.into(),
                ]);
            }
            insert.on_conflict(
                OnConflict::columns([
                    Alias::new("metric"),
                    Alias::new("key"),
                    Alias::new("period"),
                ])
                .update_columns([
                    Alias::new("count"),
                    Alias::new("imported_by"),
                    Alias::new("imported_at"),
                ])
                .to_owned(),
            );
            txn.execute(&insert).await?;
        }
        crate::audit::record(
            &txn,
            by,
            "report.baselines_imported",
            "report_baseline",
            None,
            Some(serde_json::json!({ "rows": rows.len(), "replaced": replaced })),
        )
        .await?;
        txn.commit().await?;
        Ok(ImportedBaselines {
            imported: rows.len() as u64,
            replaced,
        })
    }

    /// The stored baselines, by metric, key and month.
    pub async fn list_baselines(
        &self,
        actor: &Actor,
        metric: Option<&str>,
    ) -> Result<BaselineList, ServiceError> {
        actor.require_any(&[Role::Supervisor, Role::Admin])?;
        let metric = match metric.map(str::trim).filter(|m| !m.is_empty()) {
            Some(m) => Some(Metric::parse(m).map_err(|e| ServiceError::field("metric", e))?),
            None => None,
        };
        let mut q = Query::select();
        q.columns([
            Alias::new("metric"),
            Alias::new("key"),
            Alias::new("period"),
            Alias::new("count"),
        ])
        .from(Alias::new(TABLE))
        .order_by(Alias::new("metric"), Order::Asc)
        .order_by(Alias::new("key"), Order::Asc)
        .order_by(Alias::new("period"), Order::Asc);
        if let Some(m) = metric {
            q.and_where(Expr::col(Alias::new("metric")).eq(m.as_str()));
        }
        let mut items = Vec::new();
        for r in self.db().read.query_all(&q).await? {
            items.push(BaselineRow {
                metric: r.try_get("", "metric")?,
                key: r.try_get("", "key")?,
                period: r.try_get("", "period")?,
                count: std::cmp::max(r.try_get::<i64>("", "count")?, 0) as u64,
            });
        }
        Ok(BaselineList { items })
    }

    /// Each month of the range: its count, the count of the same dates a year earlier, and
    /// the baseline of that month of the year (the given baseline year, or else the latest
    /// year before with one).
    pub(crate) async fn compare_report(
        &self,
        spec: &ReportSpec,
        progress: &dyn ReportProgress,
    ) -> Result<CompareReport, ServiceError> {
        let month = GroupBy::Period(Period::Month);
        let filters = spec.key.filters();
        progress.advance(0, 3);
        let current = self
            .count_by(spec.metric, &spec.range, month, &filters)
            .await?;
        progress.advance(1, 3);
        let before = spec.range.year_before();
        let last_year: HashMap<String, u64> = self
            .count_by(spec.metric, &before, month, &filters)
            .await?
            .into_iter()
            .filter_map(|(k, n, _)| Some((k?, n)))
            .collect();
        progress.advance(2, 3);
        let mut q = Query::select();
        q.columns([Alias::new("period"), Alias::new("count")])
            .from(Alias::new(TABLE))
            .and_where(Expr::col(Alias::new("metric")).eq(spec.metric.as_str()))
            .and_where(Expr::col(Alias::new("key")).eq(spec.key.to_string()));
        let mut baselines: BTreeMap<String, u64> = BTreeMap::new();
        for r in self.db().read.query_all(&q).await? {
            let period: String = r.try_get("", "period")?;
            let count: i64 = r.try_get("", "count")?;
            baselines.insert(period, std::cmp::max(count, 0) as u64);
        }
        progress.advance(3, 3);

        let starts = periods(&spec.range, Period::Month);
        let mut rows = Vec::new();
        for ((label, count, _), (_, start)) in current.into_iter().zip(starts) {
            let label = label.unwrap_or_default();
            let (y, m) = (start.year(), start.month());
            let month_end = NaiveDate::from_ymd_opt(y + i32::from(m == 12), m % 12 + 1, 1)
                .and_then(|d| d.pred_opt())
                .unwrap_or(start);
            let partial = start.day() != 1 || month_end > spec.range.to;
            let last_year_key = format!("{}-{m:02}", y - 1);
            let last_year_count = last_year.get(&last_year_key).copied().unwrap_or(0);
            let baseline = match spec.baseline_year {
                Some(by) => {
                    let k = format!("{by}-{m:02}");
                    baselines.get(&k).map(|b| (k, *b))
                }
                None => baselines
                    .range(..label.clone())
                    .rev()
                    .find(|(k, _)| k.ends_with(&format!("-{m:02}")))
                    .map(|(k, b)| (k.clone(), *b)),
            };
            rows.push(row(
                label,
                partial,
                count,
                last_year_key,
                last_year_count,
                baseline,
            ));
        }
        let total_baseline = rows
            .iter()
            .map(|r| r.baseline)
            .collect::<Option<Vec<u64>>>()
            .filter(|b| !b.is_empty())
            .map(|b| ("total".to_owned(), b.iter().sum()));
        let total = row(
            "total".into(),
            rows.iter().any(|r| r.partial),
            rows.iter().map(|r| r.count).sum(),
            "total".into(),
            rows.iter().map(|r| r.last_year_count).sum(),
            total_baseline,
        );
        Ok(CompareReport {
            report: "compare".into(),
            metric: spec.metric.as_str().to_owned(),
            key: spec.key.to_string(),
            from: spec.range.from,
            to: spec.range.to,
            timezone: self.timezone_name(),
            rows,
            total,
        })
    }
}

impl CompareReport {
    pub(crate) fn table(&self) -> Table {
        Table {
            sheet: "compare".into(),
            title: format!(
                "{} {} {} – {}: year before and baseline",
                self.metric, self.key, self.from, self.to
            ),
            columns: vec![
                Column::new("key", ColumnKind::Text),
                Column::new("partial", ColumnKind::Text),
                Column::new("count", ColumnKind::Integer),
                Column::new("last_year_key", ColumnKind::Text),
                Column::new("last_year_count", ColumnKind::Integer),
                Column::new("delta_last_year", ColumnKind::Integer),
                Column::new("percent_last_year", ColumnKind::Percent),
                Column::new("baseline_key", ColumnKind::Text),
                Column::new("baseline", ColumnKind::Integer),
                Column::new("delta_baseline", ColumnKind::Integer),
                Column::new("percent_baseline", ColumnKind::Percent),
            ],
            rows: self
                .rows
                .iter()
                .map(|r| {
                    vec![
                        Cell::Text(r.key.clone()),
                        Cell::Text(r.partial.to_string()),
                        Cell::from(r.count),
                        Cell::Text(r.last_year_key.clone()),
                        Cell::from(r.last_year_count),
                        Cell::Integer(r.delta_last_year),
                        Cell::from(r.percent_last_year),
                        Cell::from(r.baseline_key.clone()),
                        Cell::from(r.baseline),
                        Cell::from(r.delta_baseline),
                        Cell::from(r.percent_baseline),
                    ]
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_a_dimension_of_the_metric() {
        assert_eq!(
            BaselineKey::parse(Metric::Contacts, "channel:phone"),
            Ok(BaselineKey::Dim(Dim::Channel, "phone".into()))
        );
        assert_eq!(
            BaselineKey::parse(Metric::Payments, "all"),
            Ok(BaselineKey::All)
        );
        assert!(BaselineKey::parse(Metric::Payments, "channel:phone").is_err());
        assert!(BaselineKey::parse(Metric::Contacts, "phone").is_err());
        assert!(BaselineKey::parse(Metric::Contacts, "channel:Phone!").is_err());
        assert_eq!(
            BaselineKey::Dim(Dim::Measure, "b2".into()).to_string(),
            "measure:b2"
        );
    }

    #[test]
    fn imports_are_checked_line_by_line() {
        let ok = parse_import(
            b"\xEF\xBB\xBFmetric;key;period;count\ncontacts;all;2024-01;1200\ncontacts;channel:phone;2024-01;800\n",
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].1, BaselineKey::Dim(Dim::Channel, "phone".into()));

        let Err(ServiceError::Validation(errors)) = parse_import(
            b"metric,key,period,count\ncontacts,all,2024-13,5\nvisits,all,2024-01,1\ncontacts,all,2024-02,-3\ncontacts,all,2024-02,3\ncontacts,all,2024-02,4\n",
        ) else {
            panic!("bad rows are refused");
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["line 2", "line 3", "line 4", "line 6"]);
        assert!(
            errors[0].message.contains("period"),
            "{}",
            errors[0].message
        );
        assert!(
            errors[3].message.contains("line 5"),
            "{}",
            errors[3].message
        );

        assert!(parse_import(b"when,how many\n2024-01,3\n").is_err());
        assert!(parse_import(b"metric,key,period,count\n").is_err());
    }

    #[test]
    fn deltas_and_percentages() {
        let r = row(
            "2026-03".into(),
            false,
            110,
            "2025-03".into(),
            100,
            Some(("2024-03".into(), 120)),
        );
        assert_eq!(r.delta_last_year, 10);
        assert_eq!(r.percent_last_year, Some(10.0));
        assert_eq!(r.delta_baseline, Some(-10));
        assert_eq!(r.percent_baseline, Some(-8.3));
        let r = row("2026-03".into(), false, 5, "2025-03".into(), 0, None);
        assert_eq!(r.percent_last_year, None);
        assert_eq!(r.baseline, None);
    }
}
