//! Reports over real HTTP on SQLite and PostgreSQL: totals checked against figures computed
//! here from the seeded data, local-day bounds (inclusive, Europe/Rome, across the March clock
//! change), CSV and XLSX with the same figures, parameter errors, roles and the audit trail.

mod common;

use std::collections::BTreeMap;
use std::io::Cursor;

use calamine::{Data, Reader};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sportello_store::entities::ticket;
use sportello_store::sea_orm::sea_query::Expr;
use sportello_store::sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use common::TestApp;

/// One seeded contact: where it came from and when, in Italian local time.
#[derive(Clone, Debug)]
struct Seed {
    channel: &'static str,
    measure: Option<&'static str>,
    category: &'static str,
    tier: &'static str,
    local: NaiveDateTime,
}

fn local(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
}

/// Italian local time to UTC, written out for the weeks these tests use rather than taken from
/// the time-zone database the server uses: CET (+1) until the clocks go forward at 02:00 on
/// the last Sunday of March (29 March 2026, 30 March 2025), CEST (+2) after.
fn utc_of(local: NaiveDateTime) -> DateTime<Utc> {
    let change = match local.year() {
        2025 => NaiveDate::from_ymd_opt(2025, 3, 30),
        _ => NaiveDate::from_ymd_opt(2026, 3, 29),
    }
    .unwrap()
    .and_hms_opt(2, 0, 0)
    .unwrap();
    let offset = if local >= change { 2 } else { 1 };
    Utc.from_utc_datetime(&(local - Duration::hours(offset)))
}

/// The data set: a few contacts on the edges of March 2026 (local midnight on either side of
/// the month, the night the clocks change) and a spread of others.
fn seeds() -> Vec<Seed> {
    let channels = ["phone", "email", "counter", "web"];
    let measures = [
        Some("income_support"),
        Some("b2"),
        None,
        Some("dopo_di_noi"),
    ];
    let categories = ["eligibility", "payments", "isee", "application_status"];
    let tiers = ["front_office", "front_office", "back_office"];
    let mut instants = vec![
        local("2026-02-28 23:59"), // the last minute before March: outside
        local("2026-03-01 00:00"), // the first minute of March (23:00 UTC on 28 February)
        local("2026-03-01 00:30"),
        local("2026-03-29 01:59"), // just before the clocks go forward
        local("2026-03-29 03:00"), // just after
        local("2026-03-31 23:59"), // the last minute of March (21:59 UTC)
        local("2026-04-01 00:00"), // April: outside
    ];
    for i in 0..25u32 {
        let day = 1 + (i * 7) % 31;
        let hour = 8 + (i * 5) % 10;
        instants.push(
            NaiveDate::from_ymd_opt(2026, 3, day)
                .unwrap()
                .and_hms_opt(hour, (i * 13) % 60, 0)
                .unwrap(),
        );
    }
    instants
        .into_iter()
        .enumerate()
        .map(|(i, at)| Seed {
            channel: channels[i % 4],
            measure: measures[(i / 2) % 4],
            category: categories[(i / 3) % 4],
            tier: tiers[i % 3],
            local: at,
        })
        .collect()
}

/// Creates each contact through the API, then moves its creation instant to the seeded one
/// (the API stamps tickets with the present).
async fn seed_contacts(t: &TestApp, seeds: &[Seed]) {
    for (i, s) in seeds.iter().enumerate() {
        let mut body = json!({
            "channel": s.channel,
            "subject": format!("Richiesta {i}"),
            "body": "Vorrei informazioni sulla mia domanda.",
            "category": s.category,
            "tier": s.tier,
            "citizen": {"name": format!("Cittadino {i}")},
        });
        if let Some(m) = s.measure {
            body["measure"] = json!(m);
        }
        let created = t.ticket(&t.admin_token, body).await;
        let id: uuid::Uuid = created["id"].as_str().unwrap().parse().unwrap();
        ticket::Entity::update_many()
            .col_expr(ticket::Column::CreatedAt, Expr::value(utc_of(s.local)))
            .filter(ticket::Column::Id.eq(id))
            .exec(&t.app.db().write)
            .await
            .unwrap();
    }
}

/// The expected rows of a report over `[from, to]`, keyed by what `key` says.
fn expected(
    seeds: &[Seed],
    from: &str,
    to: &str,
    key: impl Fn(&Seed) -> Option<String>,
) -> BTreeMap<Option<String>, u64> {
    let (from, to) = (day(from), day(to));
    let mut out = BTreeMap::new();
    for s in seeds {
        let d = s.local.date();
        if d >= from && d <= to {
            *out.entry(key(s)).or_default() += 1;
        }
    }
    out
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// The rows of a JSON count report, keyed; zero rows (empty periods) left out.
fn rows_of(report: &Value) -> BTreeMap<Option<String>, u64> {
    report["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("no rows: {report}"))
        .iter()
        .filter(|r| r["count"].as_u64().unwrap() > 0)
        .map(|r| {
            (
                r["key"].as_str().map(str::to_owned),
                r["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

async fn report(t: &TestApp, token: &str, path: &str) -> Value {
    let (status, body) = t.get(path, token).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

async fn contact_reports_match_the_seeded_contacts(t: TestApp) {
    let seeds = seeds();
    seed_contacts(&t, &seeds).await;
    let (_, sup) = t.user("supervisora", &["supervisor"]).await;
    let (from, to) = ("2026-03-01", "2026-03-31");
    let in_march = expected(&seeds, from, to, |_| None)[&None];
    assert_eq!(in_march, seeds.len() as u64 - 2, "two seeds lie outside");

    type KeyFn = fn(&Seed) -> Option<String>;
    let groupings: [(&str, KeyFn); 7] = [
        ("channel", |s| Some(s.channel.to_owned())),
        ("measure", |s| s.measure.map(str::to_owned)),
        ("category", |s| Some(s.category.to_owned())),
        ("tier", |s| Some(s.tier.to_owned())),
        ("day", |s| Some(s.local.date().to_string())),
        ("week", |s| {
            Some(s.local.date().format("%G-W%V").to_string())
        }),
        ("month", |s| {
            Some(s.local.date().format("%Y-%m").to_string())
        }),
    ];
    for (group_by, key) in groupings {
        let r = report(
            &t,
            &sup,
            &format!("/api/v1/reports/contacts?from={from}&to={to}&group_by={group_by}"),
        )
        .await;
        assert_eq!(r["group_by"], group_by);
        assert_eq!(r["timezone"], "Europe/Rome");
        assert_eq!(
            rows_of(&r),
            expected(&seeds, from, to, key),
            "group_by={group_by}: {r}"
        );
        assert_eq!(r["total"], in_march, "group_by={group_by}");
    }

    // Periods are listed even when empty, in order: every day of March.
    let r = report(
        &t,
        &sup,
        &format!("/api/v1/reports/contacts?from={from}&to={to}&group_by=day"),
    )
    .await;
    let days: Vec<&str> = r["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert_eq!(days.len(), 31);
    assert_eq!((days[0], days[30]), ("2026-03-01", "2026-03-31"));
    // Tickets without a measure are one row with a null key, listed last.
    let r = report(
        &t,
        &sup,
        &format!("/api/v1/reports/contacts?from={from}&to={to}&group_by=measure"),
    )
    .await;
    assert!(
        r["rows"].as_array().unwrap().last().unwrap()["key"].is_null(),
        "{r}"
    );

    // Both ends are included, in local days: 1 March holds the contacts of 00:00 and 00:30
    // (still 28 February in UTC), 31 March the one of 23:59 and not April's midnight, 29
    // March (23 hours long) those on either side of the clock change.
    for d in ["2026-03-01", "2026-03-31", "2026-03-29"] {
        let r = report(
            &t,
            &sup,
            &format!("/api/v1/reports/contacts?from={d}&to={d}&group_by=channel"),
        )
        .await;
        assert_eq!(
            r["total"],
            expected(&seeds, d, d, |_| None)[&None],
            "{d}: {r}"
        );
    }
    let outside = report(
        &t,
        &sup,
        "/api/v1/reports/contacts?from=2026-04-01&to=2026-04-30&group_by=month",
    )
    .await;
    assert_eq!(outside["total"], 1, "only April's midnight: {outside}");
}

/// The CSV's records, header first.
fn csv_records(bytes: &[u8]) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(bytes)
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

/// Every cell of the first sheet equals the CSV's: text as text, numbers as the same number.
fn assert_xlsx_equals_csv(xlsx: &[u8], csv: &[Vec<String>]) {
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(Cursor::new(xlsx.to_vec())).expect("the XLSX opens");
    let sheet = book.sheet_names()[0].clone();
    let range = book.worksheet_range(&sheet).unwrap();
    let rows: Vec<&[Data]> = range.rows().collect();
    assert_eq!(rows.len(), csv.len(), "rows");
    for (r, (xrow, crow)) in rows.iter().zip(csv).enumerate() {
        for (c, text) in crow.iter().enumerate() {
            let cell = xrow.get(c).unwrap_or(&Data::Empty);
            match cell {
                Data::Empty => assert_eq!(text, "", "row {r} col {c}"),
                Data::String(s) => assert_eq!(s, text, "row {r} col {c}"),
                Data::Float(f) => {
                    assert!(r > 0, "the header row is text");
                    assert_eq!(*f, text.parse::<f64>().unwrap(), "row {r} col {c}")
                }
                Data::Int(i) => assert_eq!(*i, text.parse::<i64>().unwrap(), "row {r} col {c}"),
                other => panic!("unexpected cell {other:?} at row {r} col {c}"),
            }
        }
    }
}

async fn download(t: &TestApp, token: &str, path: &str) -> (String, String, Vec<u8>) {
    let res = t
        .client
        .get(t.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    let h = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (ctype, disposition) = (h("content-type"), h("content-disposition"));
    (ctype, disposition, res.bytes().await.unwrap().to_vec())
}

async fn csv_and_xlsx_carry_the_same_figures(t: TestApp) {
    let seeds = seeds();
    seed_contacts(&t, &seeds).await;
    let base = "/api/v1/reports/contacts?from=2026-03-01&to=2026-03-31&group_by=channel";
    let (ctype, disposition, csv) =
        download(&t, &t.admin_token, &format!("{base}&format=csv")).await;
    assert!(ctype.starts_with("text/csv"), "{ctype}");
    assert_eq!(
        disposition,
        "attachment; filename=\"contacts_2026-03-01_2026-03-31_channel.csv\""
    );
    let records = csv_records(&csv);
    assert_eq!(records[0], ["key", "count"], "header row");
    let want = expected(&seeds, "2026-03-01", "2026-03-31", |s| {
        Some(s.channel.to_owned())
    });
    let got: BTreeMap<Option<String>, u64> = records[1..]
        .iter()
        .map(|r| (Some(r[0].clone()), r[1].parse().unwrap()))
        .collect();
    assert_eq!(got, want);

    let (ctype, disposition, xlsx) =
        download(&t, &t.admin_token, &format!("{base}&format=xlsx")).await;
    assert_eq!(
        ctype,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    assert!(disposition.ends_with("channel.xlsx\""), "{disposition}");
    assert_xlsx_equals_csv(&xlsx, &records);
}

async fn bad_parameters_are_named(t: TestApp) {
    let (_, doc) = t.get("/api/v1/openapi.json", &t.admin_token).await;
    for path in [
        "contacts",
        "applications",
        "payments",
        "sla",
        "compare",
        "baselines",
    ] {
        assert!(
            doc["paths"][format!("/api/v1/reports/{path}")].is_object(),
            "{path} is in the OpenAPI document"
        );
    }
    let cases = [
        ("from=2026-02-30&to=2026-03-31", "from"),
        ("from=2026-03-01&to=31/03/2026", "to"),
        ("to=2026-03-31", "from"),
        ("from=2026-03-31&to=2026-03-01", "from"),
        ("from=2026-03-01&to=2026-03-31&group_by=colour", "group_by"),
        ("from=2026-03-01&to=2026-03-31&format=pdf", "format"),
        ("from=2000-01-01&to=2026-03-31&group_by=day", "group_by"),
    ];
    for (qs, field) in cases {
        let (status, body) = t
            .get(&format!("/api/v1/reports/contacts?{qs}"), &t.admin_token)
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{qs}: {body}");
        assert_eq!(body["errors"][0]["field"], field, "{qs}: {body}");
    }
    // Each report knows its own groupings.
    let (status, body) = t
        .get(
            "/api/v1/reports/payments?from=2026-03-01&to=2026-03-31&group_by=channel",
            &t.admin_token,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "group_by");
    let (status, body) = t
        .get(
            "/api/v1/reports/compare?from=2026-03-01&to=2026-03-31&metric=visits",
            &t.admin_token,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "metric");
}

async fn reports_need_their_roles_and_are_audited(t: TestApp) {
    let (_, front) = t.user("frontoffice", &["front_office"]).await;
    let (_, back) = t.user("backoffice", &["back_office"]).await;
    let (_, sup) = t.user("supervisore", &["supervisor"]).await;
    let range = "from=2026-03-01&to=2026-03-31";
    for path in ["contacts", "sla", "applications", "payments", "compare"] {
        let (status, _) = t
            .get(&format!("/api/v1/reports/{path}?{range}"), &front)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "front office: {path}");
        let (status, _) = t
            .get(&format!("/api/v1/reports/{path}?{range}"), &sup)
            .await;
        assert_eq!(status, StatusCode::OK, "supervisor: {path}");
    }
    for (path, allowed) in [
        ("contacts", false),
        ("sla", false),
        ("applications", true),
        ("payments", true),
        ("compare?metric=payments&", true),
        ("compare?metric=contacts&", false),
    ] {
        let sep = if path.contains('?') { "" } else { "?" };
        let (status, body) = t
            .get(&format!("/api/v1/reports/{path}{sep}{range}"), &back)
            .await;
        let want = if allowed {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(status, want, "back office: {path}: {body}");
    }
    let (status, _) = t
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/reports/contacts?{range}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = t
        .call(
            reqwest::Method::POST,
            "/api/v1/reports/baselines",
            Some(&back),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Each report run is on the trail: who, which report, which parameters; nothing else.
    let (_, _, _) = download(
        &t,
        &sup,
        &format!("/api/v1/reports/contacts?{range}&group_by=tier&format=csv"),
    )
    .await;
    let (status, trail) = t
        .get("/api/v1/audit?entity_type=report&limit=50", &t.admin_token)
        .await;
    assert_eq!(status, StatusCode::OK);
    let items = trail["items"].as_array().unwrap();
    let csv = items
        .iter()
        .find(|i| i["details"]["format"] == "csv")
        .unwrap_or_else(|| panic!("no CSV download on the trail: {trail}"));
    assert_eq!(csv["action"], "report.downloaded");
    assert_eq!(csv["details"]["report"], "contacts");
    assert_eq!(csv["details"]["group_by"], "tier");
    assert_eq!(csv["details"]["from"], "2026-03-01");
    // Every run by the supervisor above, JSON or file, is recorded; refused ones are not.
    let runs = items
        .iter()
        .filter(|i| i["action"] == "report.downloaded")
        .count();
    assert_eq!(runs, 5 + 3 + 1, "{trail}");
}

/// Polls a ticket until `done` holds (the router routes asynchronously).
async fn until(t: &TestApp, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        let (_, v) = t
            .get(&format!("/api/v1/tickets/{id}"), &t.admin_token)
            .await;
        if done(&v) {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("ticket {id} never reached the expected state");
}

async fn sla_report_counts_responses_and_resolutions(t: TestApp) {
    // Today's tickets, answered and resolved by an operator now: within every target.
    let mut ids = Vec::new();
    for (i, channel) in ["phone", "email", "email", "web", "counter"]
        .into_iter()
        .enumerate()
    {
        let v = t
            .ticket(
                &t.admin_token,
                json!({"channel": channel, "subject": format!("Domanda {i}"), "category": "eligibility", "citizen": {"name": format!("Persona {i}")}}),
            )
            .await;
        ids.push((channel, v["id"].as_str().unwrap().to_owned()));
    }
    for (_, id) in &ids {
        until(&t, id, |v| v["sla"].is_object()).await;
    }
    // Three are resolved (which is also their first response); two stay open.
    for (_, id) in &ids[..3] {
        for to in ["assigned", "open", "resolved"] {
            let (status, body) = t
                .post(
                    &format!("/api/v1/tickets/{id}/transitions"),
                    &t.admin_token,
                    json!({"to": to}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{to}: {body}");
        }
    }
    // Local today lies between yesterday and tomorrow in UTC, whatever the hour.
    let today = Utc::now().date_naive();
    let (from, to) = (today - Duration::days(1), today + Duration::days(1));
    let r = report(
        &t,
        &t.admin_token,
        &format!("/api/v1/reports/sla?from={from}&to={to}&group_by=channel"),
    )
    .await;
    let rows: BTreeMap<&str, &Value> = r["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| (row["key"].as_str().unwrap(), row))
        .collect();
    assert_eq!(rows["phone"]["resolutions"], 1, "{r}");
    assert_eq!(rows["email"]["resolutions"], 2, "{r}");
    assert_eq!(rows["email"]["first_responses"], 2, "{r}");
    assert!(
        !rows.contains_key("web"),
        "nothing answered on the web: {r}"
    );
    let total = &r["total"];
    assert_eq!(total["first_responses"], 3);
    assert_eq!(total["first_responses_met"], 3);
    assert_eq!(total["first_responses_breached"], 0);
    assert_eq!(total["resolutions"], 3);
    assert_eq!(total["resolutions_met"], 3);
    assert_eq!(total["resolution_attainment"], 1.0);
    assert!(
        total["resolution_median_secs"].as_i64().unwrap() >= 0,
        "{r}"
    );

    // The dashboard counts the same resolutions today.
    let (_, snap) = t.get("/api/v1/dashboard", &t.admin_token).await;
    assert_eq!(snap["sla"]["today"]["resolutions"], 3, "{snap}");

    // As files: many number columns, empty cells where there is nothing to measure.
    let sla = format!("/api/v1/reports/sla?from={from}&to={to}&group_by=channel");
    let (_, _, csv) = download(&t, &t.admin_token, &format!("{sla}&format=csv")).await;
    let (_, _, xlsx) = download(&t, &t.admin_token, &format!("{sla}&format=xlsx")).await;
    let records = csv_records(&csv);
    assert_eq!(
        records[0][..3],
        ["key", "first_responses", "first_responses_met"]
    );
    assert_eq!(records.len(), 1 + 2, "phone and email: {records:?}");
    assert_xlsx_equals_csv(&xlsx, &records);

    let all = report(
        &t,
        &t.admin_token,
        &format!("/api/v1/reports/sla?from={from}&to={to}&group_by=all"),
    )
    .await;
    assert_eq!(all["rows"][0]["key"], "all");
    assert_eq!(all["rows"][0]["resolutions"], 3);
}

async fn comparison_against_last_year_and_baselines(t: TestApp) {
    // March 2026 as seeded, and a smaller March 2025 (the same seeds a year earlier, every
    // other one).
    let this_year = seeds();
    let last_year: Vec<Seed> = this_year
        .iter()
        .step_by(2)
        .map(|s| Seed {
            local: s.local.with_year(2025).unwrap(),
            ..s.clone()
        })
        .collect();
    seed_contacts(&t, &this_year).await;
    seed_contacts(&t, &last_year).await;

    let csv = "metric;key;period;count\n\
               contacts;all;2024-03;40\n\
               contacts;all;2025-03;20\n\
               contacts;channel:phone;2025-03;4\n\
               payments;measure:b2;2025-03;7\n";
    let res = t
        .client
        .post(t.url("/api/v1/reports/baselines"))
        .bearer_auth(&t.admin_token)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let imported: Value = res.json().await.unwrap();
    assert_eq!(imported, json!({"imported": 4, "replaced": 0}));

    let march = |seeds: &[Seed], year: i32, channel: Option<&str>| {
        seeds
            .iter()
            .filter(|s| s.local.year() == year && s.local.month() == 3)
            .filter(|s| channel.is_none_or(|c| s.channel == c))
            .count() as i64
    };
    let now_all = march(&this_year, 2026, None);
    let before_all = march(&last_year, 2025, None);
    let r = report(
        &t,
        &t.admin_token,
        "/api/v1/reports/compare?from=2026-03-01&to=2026-03-31",
    )
    .await;
    assert_eq!(r["metric"], "contacts");
    assert_eq!(r["key"], "all");
    let row = &r["rows"][0];
    assert_eq!(row["key"], "2026-03");
    assert_eq!(row["partial"], false);
    assert_eq!(row["count"], now_all);
    assert_eq!(row["last_year_key"], "2025-03");
    assert_eq!(row["last_year_count"], before_all);
    assert_eq!(row["delta_last_year"], now_all - before_all);
    let pct = ((now_all - before_all) as f64 * 1000.0 / before_all as f64).round() / 10.0;
    assert_eq!(row["percent_last_year"], pct);
    // The latest earlier baseline of March: 2025's.
    assert_eq!(row["baseline_key"], "2025-03");
    assert_eq!(row["baseline"], 20);
    assert_eq!(row["delta_baseline"], now_all - 20);
    // Or a chosen year's.
    let r = report(
        &t,
        &t.admin_token,
        "/api/v1/reports/compare?from=2026-03-01&to=2026-03-31&baseline_year=2024",
    )
    .await;
    assert_eq!(r["rows"][0]["baseline"], 40);

    // One channel against its own baseline.
    let r = report(
        &t,
        &t.admin_token,
        "/api/v1/reports/compare?from=2026-03-01&to=2026-04-30&key=channel:phone",
    )
    .await;
    assert_eq!(r["rows"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(
        r["rows"][0]["count"],
        march(&this_year, 2026, Some("phone"))
    );
    assert_eq!(
        r["rows"][0]["last_year_count"],
        march(&last_year, 2025, Some("phone"))
    );
    assert_eq!(r["rows"][0]["baseline"], 4);
    assert!(r["rows"][1]["baseline"].is_null(), "no April baseline: {r}");
    assert!(
        r["total"]["baseline"].is_null(),
        "no total baseline when a month lacks one"
    );

    // Importing again replaces; a faulty file changes nothing and names its lines.
    let res = t
        .client
        .post(t.url("/api/v1/reports/baselines"))
        .bearer_auth(&t.admin_token)
        .body("metric,key,period,count\ncontacts,all,2025-03,25\n")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"imported": 1, "replaced": 1})
    );
    let res = t
        .client
        .post(t.url("/api/v1/reports/baselines"))
        .bearer_auth(&t.admin_token)
        .body("metric,key,period,count\ncontacts,all,2023-03,9\ncontacts,fax:x,2025-3,many\n")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "line 3", "{problem}");
    let (_, list) = t
        .get("/api/v1/reports/baselines?metric=contacts", &t.admin_token)
        .await;
    let periods: Vec<(&str, &str, i64)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["key"].as_str().unwrap(),
                i["period"].as_str().unwrap(),
                i["count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        periods,
        [
            ("all", "2024-03", 40),
            ("all", "2025-03", 25),
            ("channel:phone", "2025-03", 4)
        ]
    );

    // The comparison downloads like any report.
    let (_, _, csv) = download(
        &t,
        &t.admin_token,
        "/api/v1/reports/compare?from=2026-03-01&to=2026-03-31&format=csv",
    )
    .await;
    let records = csv_records(&csv);
    assert_eq!(records[0][..3], ["key", "partial", "count"]);
    assert_eq!(records[1][2], now_all.to_string());
    let (_, _, xlsx) = download(
        &t,
        &t.admin_token,
        "/api/v1/reports/compare?from=2026-03-01&to=2026-03-31&format=xlsx",
    )
    .await;
    assert_xlsx_equals_csv(&xlsx, &records);
}

/// One seeded application: its measure, when it was submitted (local time), how far it went
/// and what was paid (euros, payment date).
struct SeededApplication {
    measure: &'static str,
    submitted: NaiveDateTime,
    outcome: &'static str,
    payments: Vec<(&'static str, &'static str)>,
}

fn application_seeds() -> Vec<SeededApplication> {
    let measures = ["income_support", "b2", "dopo_di_noi"];
    let mut instants = vec![
        local("2026-02-28 23:45"), // February: outside
        local("2026-03-01 00:15"), // 1 March, though still 28 February in UTC
        local("2026-03-31 23:30"),
        local("2026-04-01 00:10"), // April: outside March
    ];
    for i in 0..10u32 {
        instants.push(local(&format!("2026-03-{:02} {:02}:20", 2 + i * 3, 8 + i)));
    }
    let payments: [Vec<(&str, &str)>; 4] = [
        vec![("750.00", "2026-03-01")],
        vec![("123.45", "2026-03-31"), ("123.45", "2026-04-01")],
        vec![("1000.00", "2026-02-28")],
        vec![("0.05", "2026-03-15")],
    ];
    instants
        .into_iter()
        .enumerate()
        .map(|(i, submitted)| {
            let outcome = ["submitted", "under_review", "paid", "not_eligible"][i % 4];
            SeededApplication {
                measure: measures[i % 3],
                submitted,
                outcome,
                payments: if outcome == "paid" {
                    payments[(i / 4) % 4].clone()
                } else {
                    Vec::new()
                },
            }
        })
        .collect()
}

/// Euro text to cents, as the test reads it: "123.45" → 12345.
fn cents(euros: &str) -> i64 {
    let (w, f) = euros.split_once('.').unwrap();
    w.parse::<i64>().unwrap() * 100 + f.parse::<i64>().unwrap()
}

fn euro_text(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

async fn application_and_payment_reports_match_the_seeded_data(t: TestApp) {
    let (_, back) = t.user("istruttore", &["back_office"]).await;
    let seeds = application_seeds();
    for (i, a) in seeds.iter().enumerate() {
        let (status, citizen) = t
            .post(
                "/api/v1/citizens",
                &back,
                json!({"name": format!("Richiedente {i}")}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{citizen}");
        let (status, app) = t
            .post(
                "/api/v1/applications",
                &back,
                json!({"citizen_id": citizen["id"], "measure": a.measure,
                       "submitted_at": utc_of(a.submitted).to_rfc3339()}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{app}");
        let id = app["id"].as_str().unwrap().to_owned();
        let path: &[&str] = match a.outcome {
            "submitted" => &[],
            "under_review" => &["under_review"],
            "not_eligible" => &["under_review", "not_eligible"],
            _ => &["under_review", "eligible", "payment_scheduled"],
        };
        for to in path {
            let (status, body) = t
                .post(
                    &format!("/api/v1/applications/{id}/transitions"),
                    &back,
                    json!({"to": to, "reason": "verifica dei requisiti"}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{to}: {body}");
        }
        let of = a.payments.len();
        for (n, (amount, paid_on)) in a.payments.iter().enumerate() {
            let (status, body) = t
                .post(
                    &format!("/api/v1/applications/{id}/payments"),
                    &back,
                    json!({"amount": amount, "paid_on": paid_on, "instalment": n + 1, "of": of}),
                )
                .await;
            assert!(status.is_success(), "payment: {status} {body}");
        }
    }

    // Applications by submission date (local), per status and per measure.
    let in_march = |a: &&SeededApplication| {
        a.submitted.date() >= day("2026-03-01") && a.submitted.date() <= day("2026-03-31")
    };
    let mut by_status: BTreeMap<Option<String>, u64> = BTreeMap::new();
    let mut by_measure: BTreeMap<Option<String>, u64> = BTreeMap::new();
    for a in seeds.iter().filter(in_march) {
        *by_status.entry(Some(a.outcome.to_owned())).or_default() += 1;
        *by_measure.entry(Some(a.measure.to_owned())).or_default() += 1;
    }
    let range = "from=2026-03-01&to=2026-03-31";
    let r = report(
        &t,
        &back,
        &format!("/api/v1/reports/applications?{range}&group_by=status"),
    )
    .await;
    assert_eq!(rows_of(&r), by_status, "{r}");
    assert_eq!(r["total"], seeds.iter().filter(in_march).count());
    let r = report(
        &t,
        &back,
        &format!("/api/v1/reports/applications?{range}&group_by=measure"),
    )
    .await;
    assert_eq!(rows_of(&r), by_measure, "{r}");

    // Payments by payment date: counts and sums per measure, and per month.
    let paid: Vec<(&str, i64, NaiveDate)> = seeds
        .iter()
        .flat_map(|a| {
            a.payments
                .iter()
                .map(move |(e, d)| (a.measure, cents(e), day(d)))
        })
        .collect();
    let sums = |from: &str, to: &str, key: &dyn Fn(&str, NaiveDate) -> String| {
        let mut out: BTreeMap<String, (u64, i64)> = BTreeMap::new();
        for (measure, c, d) in &paid {
            if *d >= day(from) && *d <= day(to) {
                let e = out.entry(key(measure, *d)).or_default();
                e.0 += 1;
                e.1 += c;
            }
        }
        out
    };
    let amounts = |r: &Value| -> BTreeMap<String, (u64, i64)> {
        r["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|row| row["count"].as_u64().unwrap() > 0)
            .map(|row| {
                (
                    row["key"].as_str().unwrap().to_owned(),
                    (
                        row["count"].as_u64().unwrap(),
                        cents(row["amount"].as_str().unwrap()),
                    ),
                )
            })
            .collect()
    };
    let want = sums("2026-03-01", "2026-03-31", &|m, _| m.to_owned());
    let r = report(
        &t,
        &back,
        &format!("/api/v1/reports/payments?{range}&group_by=measure"),
    )
    .await;
    assert_eq!(amounts(&r), want, "{r}");
    let total: i64 = want.values().map(|v| v.1).sum();
    assert_eq!(r["total_amount"], euro_text(total));
    assert!(
        r["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|row| row["amount"].as_str().unwrap().contains('.')),
        "amounts are decimal strings: {r}"
    );
    let want = sums("2026-02-01", "2026-04-30", &|_, d| {
        d.format("%Y-%m").to_string()
    });
    let r = report(
        &t,
        &back,
        "/api/v1/reports/payments?from=2026-02-01&to=2026-04-30&group_by=month",
    )
    .await;
    assert_eq!(amounts(&r), want, "{r}");
    assert_eq!(
        r["rows"].as_array().unwrap().len(),
        3,
        "every month listed: {r}"
    );
    // One measure only.
    let want = sums("2026-03-01", "2026-04-30", &|m, d| {
        if m == "b2" {
            d.format("%Y-%m").to_string()
        } else {
            "other".into()
        }
    });
    let r = report(
        &t,
        &back,
        "/api/v1/reports/payments?from=2026-03-01&to=2026-04-30&group_by=month&measure=b2",
    )
    .await;
    let mut want = want;
    want.remove("other");
    assert_eq!(amounts(&r), want, "{r}");

    // The regional report as files: euros as decimal text in CSV, as numbers in XLSX.
    let base = "/api/v1/reports/payments?from=2026-02-01&to=2026-04-30&group_by=month";
    let (_, disposition, csv) = download(&t, &back, &format!("{base}&format=csv")).await;
    assert!(
        disposition.contains("payments_2026-02-01_2026-04-30_month.csv"),
        "{disposition}"
    );
    let records = csv_records(&csv);
    assert_eq!(records[0], ["key", "count", "amount"]);
    let months = sums("2026-02-01", "2026-04-30", &|_, d| {
        d.format("%Y-%m").to_string()
    });
    for r in &records[1..] {
        let (n, c) = months.get(&r[0]).copied().unwrap_or_default();
        assert_eq!((r[1].clone(), r[2].clone()), (n.to_string(), euro_text(c)));
    }
    let (_, _, xlsx) = download(&t, &back, &format!("{base}&format=xlsx")).await;
    assert_xlsx_equals_csv(&xlsx, &records);
}

on_both_backends!(
    contact_reports_match_the_seeded_contacts,
    csv_and_xlsx_carry_the_same_figures,
    bad_parameters_are_named,
    reports_need_their_roles_and_are_audited,
    sla_report_counts_responses_and_resolutions,
    comparison_against_last_year_and_baselines,
    application_and_payment_reports_match_the_seeded_data,
);
