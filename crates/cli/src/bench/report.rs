//! `sportello bench report`: the monthly reports over a large database (by default a year of
//! 1,000,000 tickets and 100,000 applications with their payments), timed through the HTTP
//! API as a supervisor downloads them.
//!
//! Rows are inserted straight into the tables in large batches (setup, not measured), spread
//! evenly over the year before now, with a mix of channels, tiers, categories, measures and
//! statuses; then `ANALYZE`, as a production database's maintenance would. The tickets of the
//! measured month (and a day on either side) get SLA clocks with a first response and, when
//! resolved, a resolution, so the SLA report has its real work to do.

use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use sea_orm::sea_query::{Alias, Query};
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait, TransactionTrait};
use sportello_domain::calendar::BusinessCalendar;
use sportello_routing::{SlaClock, SlaPolicies};
use sportello_service::App;
use sportello_store::entities::{citizen, ticket, ticket_routing};
use uuid::Uuid;

use super::{Running, ms, percentile};

const CHANNELS: [&str; 4] = ["phone", "email", "counter", "web"];
const CATEGORIES: [&str; 6] = [
    "eligibility",
    "how_to_apply",
    "application_status",
    "missing_documents",
    "payments",
    "isee",
];
const MEASURES: [&str; 6] = [
    "income_support",
    "b2",
    "dopo_di_noi",
    "provi",
    "social_voucher",
    "titoli_sociali_l1",
];
const STATUSES: [&str; 8] = [
    "new",
    "assigned",
    "open",
    "waiting_citizen",
    "resolved",
    "closed",
    "closed",
    "closed",
];
const APPLICATION_STATUSES: [&str; 6] = [
    "submitted",
    "under_review",
    "eligible",
    "paid",
    "monitoring",
    "closed",
];
/// Requests per report shape; the median and the slowest are printed.
const RUNS: usize = 5;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
}

/// Inserts `n` tickets spread over the year before now; those created in `clocks` get an SLA
/// clock (answered, and resolved when their status says so). Returns how many got one.
async fn seed_tickets(
    app: &App,
    n: usize,
    clocks: (DateTime<Utc>, DateTime<Utc>),
    rng: &mut Rng,
) -> anyhow::Result<usize> {
    let start = Utc::now() - chrono::Duration::days(365);
    let step = chrono::Duration::milliseconds((365 * 86_400_000 / n.max(1)) as i64);
    let calendar = BusinessCalendar::default();
    let policies = SlaPolicies::builtin();
    let policy = policies
        .get("general")
        .or_else(|| policies.iter().next())
        .ok_or_else(|| anyhow::anyhow!("no SLA policy in the built-in rules"))?
        .clone();
    let started = Instant::now();
    let db = &app.db().write;
    let mut done = 0;
    let mut clocked = 0;
    while done < n {
        let mut routing: Vec<ticket_routing::ActiveModel> = Vec::new();
        let rows: Vec<ticket::ActiveModel> = (done..(done + 1000).min(n))
            .map(|i| {
                let at = start + step * i as i32;
                let id = Uuid::now_v7();
                let status = rng.pick(&STATUSES);
                let (mut first, mut resolved) = (None, None);
                if at >= clocks.0 && at < clocks.1 {
                    // Answered within minutes to a few days; resolved up to ten days later.
                    let f = at + chrono::Duration::seconds((300 + rng.next() % 259_200) as i64);
                    let mut clock = SlaClock::start(&policy, at, &calendar);
                    let _ = clock.responded(f, &calendar);
                    first = Some(f);
                    if matches!(status, "resolved" | "closed") {
                        let r = f + chrono::Duration::seconds((rng.next() % 864_000) as i64);
                        let _ = clock.resolved(r, &calendar);
                        resolved = Some(r);
                    }
                    let snap = clock.snapshot(Utc::now());
                    routing.push(ticket_routing::ActiveModel {
                        ticket_id: Set(id),
                        rule: Set("default".into()),
                        skills: Set("{}".into()),
                        sla_policy: Set(policy.name.clone()),
                        sla_clock: Set(serde_json::to_string(&clock).unwrap_or_default()),
                        sla_state: Set(snap.state.as_str().into()),
                        next_check_at: Set(snap.next_check_at),
                        waiting_reason: Set(None),
                        enqueued_at: Set(at),
                        updated_at: Set(at),
                    });
                }
                ticket::ActiveModel {
                    id: Set(id),
                    number: Set(format!("RP-2025-{i:07}")),
                    channel: Set(rng.pick(&CHANNELS).into()),
                    tier: Set(if rng.next().is_multiple_of(5) {
                        "back_office"
                    } else {
                        "front_office"
                    }
                    .into()),
                    status: Set(status.into()),
                    priority: Set("normal".into()),
                    category: Set(Some(rng.pick(&CATEGORIES).into())),
                    measure: Set(
                        (!rng.next().is_multiple_of(10)).then(|| rng.pick(&MEASURES).into())
                    ),
                    subject: Set(format!("Richiesta {i}")),
                    citizen_id: Set(None),
                    assignee_id: Set(None),
                    tags: Set("[]".into()),
                    created_by: Set(None),
                    created_at: Set(at),
                    updated_at: Set(at),
                    first_response_at: Set(first),
                    resolved_at: Set(resolved),
                    closed_at: Set(None),
                    sla_due_at: Set(None),
                }
            })
            .collect();
        let txn = db.begin().await?;
        ticket::Entity::insert_many(rows)
            .exec_without_returning(&txn)
            .await?;
        clocked += routing.len();
        // A clock is a long text: a few hundred rows per statement.
        for chunk in routing.chunks(200) {
            ticket_routing::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(&txn)
                .await?;
        }
        txn.commit().await?;
        done = (done + 1000).min(n);
        if done % 100_000 == 0 {
            eprintln!(
                "  seeded {done}/{n} tickets ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(clocked)
}

/// Inserts `n` applications of 10,000 citizens over the year before now, and one or two
/// payments (a month later) for those paid.
async fn seed_applications(app: &App, n: usize, rng: &mut Rng) -> anyhow::Result<usize> {
    let db = &app.db().write;
    let now = Utc::now();
    let citizens: Vec<Uuid> = (0..10_000.min(n.max(1))).map(|_| Uuid::now_v7()).collect();
    for chunk in citizens.chunks(1000) {
        let rows: Vec<citizen::ActiveModel> = chunk
            .iter()
            .enumerate()
            .map(|(i, id)| citizen::ActiveModel {
                id: Set(*id),
                name: Set(format!("Richiedente {i}")),
                name_lower: Set(format!("richiedente {i}")),
                codice_fiscale: Set(None),
                created_at: Set(now),
                updated_at: Set(now),
            })
            .collect();
        citizen::Entity::insert_many(rows)
            .exec_without_returning(db)
            .await?;
    }
    let start = now - chrono::Duration::days(365);
    let step = chrono::Duration::milliseconds((365 * 86_400_000 / n.max(1)) as i64);
    let mut payments = 0;
    let mut done = 0;
    while done < n {
        let mut apps = Query::insert();
        apps.into_table(Alias::new("applications")).columns(
            [
                "id",
                "citizen_id",
                "measure",
                "submitted_at",
                "submission_channel",
                "status",
                "version",
                "created_at",
                "updated_at",
            ]
            .map(Alias::new),
        );
        let mut pays = Query::insert();
        pays.into_table(Alias::new("payments")).columns(
            [
                "id",
                "application_id",
                "measure",
                "amount_cents",
                "paid_on",
                "instalment",
                "of_instalments",
                "created_at",
            ]
            .map(Alias::new),
        );
        let mut any_payment = false;
        for i in done..(done + 1000).min(n) {
            let id = Uuid::now_v7();
            let at = start + step * i as i32;
            let measure = rng.pick(&MEASURES);
            let status = rng.pick(&APPLICATION_STATUSES);
            apps.values_panic([
                id.into(),
                citizens[i % citizens.len()].into(),
                measure.into(),
                at.into(),
                rng.pick(&["email", "pec", "counter", "paper"]).into(),
                status.into(),
                1i32.into(),
                at.into(),
                at.into(),
            ]);
            if matches!(status, "paid" | "monitoring") {
                let of = 1 + (rng.next() % 2) as i32;
                for k in 1..=of {
                    let paid_on: NaiveDate =
                        (at + chrono::Duration::days(30 * i64::from(k))).date_naive();
                    pays.values_panic([
                        Uuid::now_v7().into(),
                        id.into(),
                        measure.into(),
                        (25_000 + (rng.next() % 100_000) as i64).into(),
                        paid_on.into(),
                        k.into(),
                        of.into(),
                        at.into(),
                    ]);
                    payments += 1;
                    any_payment = true;
                }
            }
        }
        let txn = db.begin().await?;
        txn.execute(&apps).await?;
        if any_payment {
            txn.execute(&pays).await?;
        }
        txn.commit().await?;
        done = (done + 1000).min(n);
    }
    Ok(payments)
}

/// The whole calendar month around the middle of the seeded year.
fn month_in_the_middle() -> (NaiveDate, NaiveDate) {
    let mid = (Utc::now() - chrono::Duration::days(182)).date_naive();
    let first = mid.with_day(1).unwrap_or(mid);
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
    };
    let last = next.and_then(|d| d.pred_opt()).unwrap_or(first);
    (first, last)
}

pub async fn bench_report(
    r: &Running,
    tickets: usize,
    applications: usize,
    backend: &str,
) -> anyhow::Result<()> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let started = Instant::now();
    let (from, to) = month_in_the_middle();
    let window = (
        (from - chrono::Duration::days(1))
            .and_time(chrono::NaiveTime::MIN)
            .and_utc(),
        (to + chrono::Duration::days(2))
            .and_time(chrono::NaiveTime::MIN)
            .and_utc(),
    );
    let clocked = seed_tickets(&r.app, tickets, window, &mut rng).await?;
    let payments = seed_applications(&r.app, applications, &mut rng).await?;
    let analyze = sea_orm::Statement::from_string(r.app.db().backend(), "ANALYZE");
    r.app.db().write.execute_raw(analyze).await?;
    eprintln!("  seeded in {:.0} s", started.elapsed().as_secs_f64());
    println!(
        "bench report: backend={backend} tickets={tickets} (SLA clocks: {clocked}) applications={applications} payments={payments} month={from}..{to}"
    );
    let range = format!("from={from}&to={to}");
    let year = format!("from={}&to={to}", to - chrono::Duration::days(364));
    let shapes: Vec<(&str, String)> = vec![
        (
            "contacts by channel",
            format!("contacts?{range}&group_by=channel"),
        ),
        (
            "contacts by measure",
            format!("contacts?{range}&group_by=measure"),
        ),
        (
            "contacts by category",
            format!("contacts?{range}&group_by=category"),
        ),
        (
            "contacts by tier",
            format!("contacts?{range}&group_by=tier"),
        ),
        ("contacts by day", format!("contacts?{range}&group_by=day")),
        (
            "contacts by day, CSV",
            format!("contacts?{range}&group_by=day&format=csv"),
        ),
        (
            "contacts by day, XLSX",
            format!("contacts?{range}&group_by=day&format=xlsx"),
        ),
        (
            "contacts, a year by month",
            format!("contacts?{year}&group_by=month"),
        ),
        (
            "applications by status",
            format!("applications?{range}&group_by=status"),
        ),
        (
            "applications by measure",
            format!("applications?{range}&group_by=measure"),
        ),
        (
            "payments by measure",
            format!("payments?{range}&group_by=measure"),
        ),
        (
            "payments, a year by month, XLSX",
            format!("payments?{year}&group_by=month&format=xlsx"),
        ),
        (
            "compare contacts with last year",
            format!("compare?{range}"),
        ),
        ("SLA by channel", format!("sla?{range}&group_by=channel")),
    ];
    for (label, qs) in shapes {
        let url = format!("{}/api/v1/reports/{qs}", r.base);
        let mut lat: Vec<Duration> = Vec::with_capacity(RUNS);
        let mut bytes = 0;
        for _ in 0..RUNS {
            let t = Instant::now();
            let res = r.client.get(&url).bearer_auth(&r.token).send().await?;
            anyhow::ensure!(
                res.status() == 200,
                "{label} answered {}: {}",
                res.status(),
                res.text().await.unwrap_or_default()
            );
            let body = res.bytes().await?;
            lat.push(t.elapsed());
            bytes = body.len();
            // A report that finds nothing measures nothing: the month must hold the seeds.
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
                let total = v["total"]
                    .as_u64()
                    .or_else(|| v["total_count"].as_u64())
                    .or_else(|| v["total"]["count"].as_u64())
                    .or_else(|| v["total"]["first_responses"].as_u64());
                anyhow::ensure!(
                    total.is_none_or(|n| n > 0),
                    "{label} found nothing to count: {v}"
                );
            }
        }
        lat.sort();
        println!(
            "  {label:<36} p50 {:>10}  max {:>10}  ({bytes} bytes)",
            ms(percentile(&lat, 0.5)),
            ms(lat[lat.len() - 1]),
        );
    }
    Ok(())
}
