//! The counter channel through real HTTP on SQLite and PostgreSQL: sessions and holidays,
//! slots, capacity under 50 concurrent bookings, check-in and queue numbers, the visit on the
//! ticket timeline, automatic no-shows, and the planner from proposal to open slots.

mod common;

use chrono::{Datelike, Duration, NaiveDate, Utc};
use common::TestApp;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sportello_domain::calendar::BusinessCalendar;

on_both_backends!(
    sessions_refuse_holidays_and_overlaps,
    capacity_holds_under_fifty_concurrent_bookings,
    check_in_visit_and_follow_up_on_the_timeline,
    no_shows_are_marked_after_the_grace_period,
    planner_reacts_to_demand_and_approval_opens_slots,
    overlapping_sessions_opened_at_once_leave_one,
);

fn cal() -> BusinessCalendar {
    BusinessCalendar::default()
}

fn today() -> NaiveDate {
    cal().local_date(Utc::now())
}

/// The first weekday at least `days` ahead that is not a holiday.
fn open_weekday(days: i64) -> NaiveDate {
    let mut d = today() + Duration::days(days);
    while d.weekday().number_from_monday() > 5 || cal().is_holiday(d).is_some() {
        d += Duration::days(1);
    }
    d
}

async fn citizen(t: &TestApp, token: &str, name: &str) -> String {
    let (s, c) = t
        .post("/api/v1/citizens", token, json!({"name": name}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    c["id"].as_str().unwrap().to_owned()
}

async fn session(t: &TestApp, body: Value) -> (StatusCode, Value) {
    t.post("/api/v1/counter/sessions", &t.admin_token, body)
        .await
}

async fn slots(t: &TestApp, date: NaiveDate) -> Vec<Value> {
    let (s, v) = t
        .get(
            &format!("/api/v1/counter/slots?date={date}"),
            &t.admin_token,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["items"].as_array().unwrap().clone()
}

async fn sessions_refuse_holidays_and_overlaps(t: TestApp) {
    // Christmas of next year, whatever the weekday.
    let christmas = NaiveDate::from_ymd_opt(today().year() + 1, 12, 25).unwrap();
    let (s, v) = session(
        &t,
        json!({"date": christmas.to_string(), "start": "08:30", "end": "12:30", "desks": 2}),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("Natale"), "{v}");
    let patron = NaiveDate::from_ymd_opt(today().year() + 1, 12, 7).unwrap();
    let (s, v) = session(
        &t,
        json!({"date": patron.to_string(), "start": "08:30", "end": "12:30", "desks": 2}),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(
        v["detail"].as_str().unwrap().contains("santo patrono"),
        "{v}"
    );

    let day = open_weekday(7);
    let (s, v) = session(
        &t,
        json!({"date": day.to_string(), "start": "08:30", "end": "12:30", "desks": 2}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["slots"], 12);
    assert_eq!(v["slot_minutes"], 20);
    let (s, v) = session(
        &t,
        json!({"date": day.to_string(), "start": "12:00", "end": "13:00", "desks": 1}),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("overlaps"), "{v}");
    let (s, v) = session(&t, json!({"date": day.to_string(), "start": "14:00", "end": "15:30", "desks": 3, "slot_minutes": 30})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = session(
        &t,
        json!({"date": day.to_string(), "start": "16:00", "end": "17:00", "desks": 0}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["field"], "desks", "{v}");

    let items = slots(&t, day).await;
    assert_eq!(items.len(), 15);
    assert_eq!(items[0]["local_start"], "08:30");
    assert_eq!(items[0]["capacity"], 2);
    assert_eq!(items[0]["booked"], 0);
    assert_eq!(items[12]["local_start"], "14:00");
    assert_eq!(items[12]["capacity"], 3);
    // Counter staff cannot open sessions.
    let (_, op) = t.user("sportello1", &["counter"]).await;
    let (s, _) = t
        .post(
            "/api/v1/counter/sessions",
            &op,
            json!({"date": day.to_string(), "start": "16:00", "end": "17:00", "desks": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

async fn capacity_holds_under_fifty_concurrent_bookings(t: TestApp) {
    let (_, op) = t.user("operatore", &["front_office"]).await;
    let cid = citizen(&t, &op, "Mario Bianchi").await;
    let day = open_weekday(3);
    let (s, v) = session(&t, json!({"date": day.to_string(), "start": "09:00", "end": "10:00", "desks": 3, "slot_minutes": 60})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let slot = slots(&t, day).await[0]["id"].as_str().unwrap().to_owned();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (client, url, op, slot, cid) = (
            t.client.clone(),
            t.url("/api/v1/counter/bookings"),
            op.clone(),
            slot.clone(),
            cid.clone(),
        );
        tasks.spawn(async move {
            let res = client
                .post(url)
                .bearer_auth(op)
                .json(&json!({"slot_id": slot, "citizen_id": cid, "measure": "b2"}))
                .send()
                .await
                .unwrap();
            let status = res.status();
            (status, res.json::<Value>().await.unwrap())
        });
    }
    let mut created = Vec::new();
    let mut conflicts = 0;
    while let Some(r) = tasks.join_next().await {
        let (status, body) = r.unwrap();
        match status {
            StatusCode::CREATED => created.push(body),
            StatusCode::CONFLICT => {
                assert!(body["detail"].as_str().unwrap().contains("full"), "{body}");
                conflicts += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(created.len(), 3);
    assert_eq!(conflicts, 47);
    let s = &slots(&t, day).await[0];
    assert_eq!(s["booked"], 3);
    // Each booking got its own counter ticket, with the confirmation waiting to be sent.
    let b = &created[0];
    let ticket_id = b["ticket_id"].as_str().unwrap();
    let (_, ticket) = t.get(&format!("/api/v1/tickets/{ticket_id}"), &op).await;
    assert_eq!(ticket["channel"], "counter");
    assert_eq!(ticket["measure"], "b2");
    let confirmation = b["notification"]["confirmation"]["body"].as_str().unwrap();
    assert!(confirmation.contains("09:00"), "{confirmation}");
    assert!(confirmation.contains("invalidità civile"), "{confirmation}");
    assert!(b["notification"]["reminder"]["due_at"].is_string());

    // Cancelling frees a place; rescheduling into a full slot is refused.
    let id = b["id"].as_str().unwrap();
    let (s, v) = t
        .post(
            &format!("/api/v1/counter/bookings/{id}/cancel"),
            &op,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "cancelled");
    assert_eq!(slots(&t, day).await[0]["booked"], 2);
    let (s, _) = t
        .post(
            &format!("/api/v1/counter/bookings/{id}/cancel"),
            &op,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, v) = t
        .post(
            "/api/v1/counter/bookings",
            &op,
            json!({"slot_id": slot, "citizen_id": cid, "ticket_id": ticket_id}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["ticket_id"], ticket_id);
    let (s, v) = session(&t, json!({"date": day.to_string(), "start": "10:00", "end": "11:00", "desks": 1, "slot_minutes": 60})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let other = slots(&t, day).await[1]["id"].as_str().unwrap().to_owned();
    let moving = created[1]["id"].as_str().unwrap();
    let (s, v) = t
        .post(
            &format!("/api/v1/counter/bookings/{moving}/reschedule"),
            &op,
            json!({"slot_id": other}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let moving2 = created[2]["id"].as_str().unwrap();
    let (s, _) = t
        .post(
            &format!("/api/v1/counter/bookings/{moving2}/reschedule"),
            &op,
            json!({"slot_id": other}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let all = slots(&t, day).await;
    assert_eq!(
        (all[0]["booked"].as_i64(), all[1]["booked"].as_i64()),
        (Some(2), Some(1))
    );
}

async fn check_in_visit_and_follow_up_on_the_timeline(t: TestApp) {
    let now = today();
    if cal().is_holiday(now).is_some() {
        eprintln!("today is a holiday: sessions cannot open, check-in skipped");
        return;
    }
    let (_, op) = t.user("sportello", &["counter", "front_office"]).await;
    let cid = citizen(&t, &op, "Lucia Verdi").await;
    // A session over the whole day, so that a slot is still ahead whenever the test runs.
    let (s, v) = session(&t, json!({"date": now.to_string(), "start": "00:00", "end": "23:55", "desks": 2, "slot_minutes": 5})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let slot = slots(&t, now)
        .await
        .into_iter()
        .find(|s| {
            s["end"]
                .as_str()
                .unwrap()
                .parse::<chrono::DateTime<Utc>>()
                .unwrap()
                > Utc::now() + Duration::minutes(1)
        })
        .expect("a slot still ahead today");
    let (s, b) = t
        .post("/api/v1/counter/bookings", &op, json!({"slot_id": slot["id"], "citizen_id": cid, "measure": "income_support", "notes": "domanda ADI"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let id = b["id"].as_str().unwrap();
    let ticket_id = b["ticket_id"].as_str().unwrap();

    // A booking on another day cannot be checked in today.
    let later = open_weekday(2);
    session(
        &t,
        json!({"date": later.to_string(), "start": "09:00", "end": "10:00", "desks": 1}),
    )
    .await;
    let other_slot = slots(&t, later).await[0]["id"].clone();
    let (_, other) = t
        .post(
            "/api/v1/counter/bookings",
            &op,
            json!({"slot_id": other_slot, "citizen_id": cid}),
        )
        .await;
    let (s, v) = t
        .post(
            &format!(
                "/api/v1/counter/bookings/{}/check-in",
                other["id"].as_str().unwrap()
            ),
            &op,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");

    // Visit before check-in is refused.
    let (s, _) = t
        .post(
            &format!("/api/v1/counter/bookings/{id}/visit"),
            &op,
            json!({"outcome": "x"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, v) = t
        .post(
            &format!("/api/v1/counter/bookings/{id}/check-in"),
            &op,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["queue_number"], "A001");
    let (s, w) = t
        .post(
            "/api/v1/counter/walk-ins",
            &op,
            json!({"citizen_id": cid, "measure": "b2"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{w}");
    assert_eq!(w["queue_number"], "W001");

    let (s, today_view) = t.get("/api/v1/counter/today?desk=1", &op).await;
    assert_eq!(s, StatusCode::OK, "{today_view}");
    assert_eq!(today_view["counts"]["waiting"], 2);
    assert_eq!(today_view["counts"]["walk_ins"], 1);
    let (s, called) = t
        .post("/api/v1/counter/call-next", &op, json!({"desk": 1}))
        .await;
    assert_eq!(s, StatusCode::OK, "{called}");
    assert_eq!(called["called"]["queue_number"], "A001");
    assert_eq!(called["called"]["desk"], 1);
    let (_, called) = t
        .post("/api/v1/counter/call-next", &op, json!({"desk": 2}))
        .await;
    assert_eq!(called["called"]["queue_number"], "W001");
    let (_, called) = t
        .post("/api/v1/counter/call-next", &op, json!({"desk": 2}))
        .await;
    assert!(called["called"].is_null());

    let (s, v) = t
        .post(
            &format!("/api/v1/counter/bookings/{id}/visit"),
            &op,
            json!({
                "documents_received": ["Attestazione ISEE in corso di validità", "Documento d'identità in corso di validità"],
                "outcome": "domanda completata",
                "notes": "manca l'IBAN",
                "follow_up": "verificare i requisiti di residenza"
            }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["booking"]["state"], "visited");
    assert_eq!(v["escalated"], true);
    let (_, ticket) = t
        .get(&format!("/api/v1/tickets/{ticket_id}"), &t.admin_token)
        .await;
    assert_eq!(ticket["tier"], "back_office");
    let timeline = ticket["timeline"].as_array().unwrap();
    let visit = timeline
        .iter()
        .find(|e| e["kind"] == "visit")
        .expect("a visit entry");
    assert_eq!(visit["meta"]["outcome"], "domanda completata");
    assert_eq!(visit["meta"]["queue_number"], "A001");
    assert_eq!(visit["meta"]["desk"], 1);
    let missing = visit["meta"]["documents_missing"].as_array().unwrap();
    assert!(
        missing.iter().any(|d| d.as_str().unwrap().contains("IBAN")),
        "{missing:?}"
    );
    assert!(
        visit["body"]
            .as_str()
            .unwrap()
            .contains("Documenti ricevuti")
    );
    assert!(
        timeline
            .iter()
            .any(|e| e["kind"] == "system" && e["body"].as_str().unwrap().contains("A001"))
    );
    // A second visit record on the same booking is refused.
    let (s, _) = t
        .post(
            &format!("/api/v1/counter/bookings/{id}/visit"),
            &op,
            json!({"outcome": "x"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
}

async fn no_shows_are_marked_after_the_grace_period(t: TestApp) {
    let (_, op) = t.user("operatore", &["front_office"]).await;
    let cid = citizen(&t, &op, "Paolo Neri").await;
    let day = open_weekday(1);
    session(&t, json!({"date": day.to_string(), "start": "09:00", "end": "10:00", "desks": 2, "slot_minutes": 30})).await;
    let all = slots(&t, day).await;
    let mut ids = Vec::new();
    for s in &all {
        let (status, b) = t
            .post(
                "/api/v1/counter/bookings",
                &op,
                json!({"slot_id": s["id"], "citizen_id": cid}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{b}");
        ids.push(b);
    }
    let first_start: chrono::DateTime<Utc> = all[0]["start"].as_str().unwrap().parse().unwrap();
    // Within the grace period nobody is a no-show yet.
    assert_eq!(
        t.app
            .mark_counter_no_shows(first_start + Duration::minutes(14))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        t.app
            .mark_counter_no_shows(first_start + Duration::minutes(15))
            .await
            .unwrap(),
        1
    );
    // Running again changes nothing; the second slot is still ahead.
    assert_eq!(
        t.app
            .mark_counter_no_shows(first_start + Duration::minutes(20))
            .await
            .unwrap(),
        0
    );
    let (_, b) = t
        .get(
            &format!(
                "/api/v1/counter/bookings/{}",
                ids[0]["id"].as_str().unwrap()
            ),
            &op,
        )
        .await;
    assert_eq!(b["state"], "no_show");
    let (_, b2) = t
        .get(
            &format!(
                "/api/v1/counter/bookings/{}",
                ids[1]["id"].as_str().unwrap()
            ),
            &op,
        )
        .await;
    assert_eq!(b2["state"], "booked");
    let (_, ticket) = t
        .get(
            &format!("/api/v1/tickets/{}", ids[0]["ticket_id"].as_str().unwrap()),
            &op,
        )
        .await;
    assert!(
        ticket["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["body"].as_str().unwrap().contains("non si è presentato"))
    );
    let (s, run) = t
        .post("/api/v1/counter/no-shows/run", &t.admin_token, json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{run}");
    assert_eq!(run["no_shows_total"], 1);
    let (s, _) = t.post("/api/v1/counter/no-shows/run", &op, json!({})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

/// Mondays `k` and `k + 2` weeks ahead whose weeks are free of holidays on weekdays.
fn quiet_weeks() -> (NaiveDate, NaiveDate) {
    let free =
        |monday: NaiveDate| (0..5).all(|i| cal().is_holiday(monday + Duration::days(i)).is_none());
    let mut monday =
        today() + Duration::days(7 - i64::from(today().weekday().num_days_from_monday()));
    loop {
        if free(monday)
            && free(monday + Duration::weeks(1))
            && free(monday + Duration::weeks(2))
            && free(monday + Duration::weeks(3))
        {
            return (monday, monday + Duration::weeks(2));
        }
        monday += Duration::weeks(1);
    }
}

fn iso(date: NaiveDate) -> String {
    let w = date.iso_week();
    format!("{}-W{:02}", w.year(), w.week())
}

async fn planner_reacts_to_demand_and_approval_opens_slots(t: TestApp) {
    let (_, op) = t.user("operatore", &["front_office"]).await;
    let cid = citizen(&t, &op, "Giulia Russo").await;
    let (heavy_ref, quiet_ref) = quiet_weeks();
    // Heavy reference week: Monday morning fully booked (4 one-hour slots, one desk).
    session(&t, json!({"date": heavy_ref.to_string(), "start": "08:30", "end": "12:30", "desks": 1, "slot_minutes": 60})).await;
    for s in slots(&t, heavy_ref).await {
        let (status, b) = t
            .post(
                "/api/v1/counter/bookings",
                &op,
                json!({"slot_id": s["id"], "citizen_id": cid}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{b}");
    }
    // Quiet reference week: Monday morning and afternoon open, nobody booked.
    session(
        &t,
        json!({"date": quiet_ref.to_string(), "start": "08:30", "end": "12:30", "desks": 2}),
    )
    .await;
    session(
        &t,
        json!({"date": quiet_ref.to_string(), "start": "14:00", "end": "15:30", "desks": 2}),
    )
    .await;

    let (s, heavy) = t
        .get(
            &format!(
                "/api/v1/counter/plan?week={}",
                iso(heavy_ref + Duration::weeks(1))
            ),
            &t.admin_token,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{heavy}");
    let (s, quiet) = t
        .get(
            &format!(
                "/api/v1/counter/plan?week={}",
                iso(quiet_ref + Duration::weeks(1))
            ),
            &t.admin_token,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{quiet}");
    let hs = heavy["sessions"].as_array().unwrap();
    let qs = quiet["sessions"].as_array().unwrap();
    assert!(hs.len() > qs.len(), "heavy {heavy:#} quiet {quiet:#}");
    let days = |s: &[Value]| {
        s.iter()
            .map(|x| x["date"].as_str().unwrap().to_owned())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    assert!(days(qs) >= 4, "{quiet:#}");
    assert!(
        hs.iter().any(|s| s["reason"]
            .as_str()
            .unwrap()
            .contains("sessione aggiuntiva")),
        "{heavy:#}"
    );
    assert!(
        qs.iter()
            .any(|s| s["reason"].as_str().unwrap().contains("accorciata")),
        "{quiet:#}"
    );
    assert!(hs.iter().all(|s| !s["reason"].as_str().unwrap().is_empty()));
    let (s, _) = t
        .get("/api/v1/counter/plan?week=2026-W99", &t.admin_token)
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = t.get("/api/v1/counter/plan?week=2026-W10", &op).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Approval opens the proposed sessions; their slots can be booked.
    let id = heavy["id"].as_str().unwrap();
    let (s, approved) = t
        .post(
            &format!("/api/v1/counter/plan/{id}/approve"),
            &t.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{approved}");
    assert_eq!(
        approved["opened"].as_array().unwrap().len(),
        hs.len(),
        "{approved:#}"
    );
    let first_day: NaiveDate = hs[0]["date"].as_str().unwrap().parse().unwrap();
    let open = slots(&t, first_day).await;
    assert!(!open.is_empty());
    assert_eq!(open[0]["local_start"], hs[0]["start"]);
    let (s, b) = t
        .post(
            "/api/v1/counter/bookings",
            &op,
            json!({"slot_id": open[0]["id"], "citizen_id": cid}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, _) = t
        .post(
            &format!("/api/v1/counter/plan/{id}/approve"),
            &t.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
}

/// Supervisors on several instances (PostgreSQL) or one (SQLite) open overlapping sessions for
/// the same day at the same moment: exactly one opens, the others are told it overlaps, and the
/// day has the slots of one session.
async fn overlapping_sessions_opened_at_once_leave_one(t: TestApp) {
    let other = match common::pg_url() {
        Some(_) if t.database_url.starts_with("postgres") => {
            Some(TestApp::spawn_on(&t.database_url, None).await)
        }
        _ => None,
    };
    let day = open_weekday(9);
    let attempts = (0..8).map(|i| {
        let target = match (&other, i % 2) {
            (Some(o), 1) => o,
            _ => &t,
        };
        // Every attempt overlaps every other (they all cover 10:00–11:00).
        let start = format!("{:02}:00", 9 + i % 2);
        let body = json!({"date": day.to_string(), "start": start, "end": "11:00", "desks": 1});
        async move {
            target
                .post("/api/v1/counter/sessions", &target.admin_token, body)
                .await
        }
    });
    let results = futures::future::join_all(attempts).await;
    let created = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "{results:?}");
    for (s, v) in &results {
        assert!(
            *s == StatusCode::CREATED || *s == StatusCode::CONFLICT,
            "{s}: {v}"
        );
    }
    let sessions: Vec<Value> = slots(&t, day).await;
    let starts: std::collections::BTreeSet<&str> = sessions
        .iter()
        .filter_map(|s| s["local_start"].as_str())
        .collect();
    assert_eq!(starts.len(), sessions.len(), "no slot twice: {sessions:?}");
}
