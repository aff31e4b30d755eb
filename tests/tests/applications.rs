//! Back-office applications through real HTTP on SQLite and PostgreSQL: the workflow's valid
//! and refused moves, ISEE/DSU warnings naming their figures, bad amounts named by field, the
//! documents checklist, payments by instalment, monitoring tickets opened once when due,
//! ticket links, who may do what, and the citizen's e-mails in the outbox (and not when
//! switched off).

mod common;
mod mailharness;

use chrono::{Duration, NaiveDate, Utc};
use common::{Backend, TestApp};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sportello_domain::calendar::BusinessCalendar;
use sportello_service::ServiceConfig;
use sportello_service::applications::ApplicationsConfig;
use sportello_store::entities::{application_monitoring, mail_outbox, payment};
use sportello_store::sea_orm::sea_query::Expr;
use sportello_store::sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

on_both_backends!(
    the_workflow_allows_its_moves_and_refuses_the_others,
    isee_and_dsu_warnings_name_their_figures,
    bad_input_is_refused_naming_the_field,
    the_documents_checklist_follows_the_measure,
    payments_by_instalment_then_monitoring_tickets_once_when_due,
    tickets_link_to_applications_within_their_tier,
    the_front_office_reads_but_does_not_change,
    a_check_opens_one_ticket_across_instances_and_abandoned_claims_recover,
);

/// Runs a body against an instance with a mailbox configured (so replies can be queued) and
/// the given applications settings, on SQLite and, when switched on, PostgreSQL.
macro_rules! on_both_backends_mailing {
    ($($name:ident => $config:expr),+ $(,)?) => {
        $(
            mod $name {
                use super::ApplicationsConfig;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(super::mailing(crate::common::Backend::Sqlite, $config).await).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if crate::common::pg_url().is_none() {
                        eprintln!("SPORTELLO_TEST_PG_URL not set: PostgreSQL variant switched off");
                        return;
                    }
                    super::$name(super::mailing(crate::common::Backend::Postgres, $config).await).await
                }
            }
        )+
    };
}

on_both_backends_mailing!(
    the_citizen_hears_of_documents_outcome_and_payment => ApplicationsConfig::default(),
    notifications_stay_off_when_switched_off => ApplicationsConfig {
        notify_documents_requested: false,
        notify_outcome: false,
        notify_payment: false,
        ..ApplicationsConfig::default()
    },
);

async fn mailing(backend: Backend, applications: ApplicationsConfig) -> TestApp {
    let (url, cleanup) = common::scratch_database(backend).await;
    let config = ServiceConfig {
        email: mailharness::email_config(),
        applications,
        ..ServiceConfig::default()
    };
    TestApp::spawn_with(&url, Some(cleanup), config, true).await
}

fn today() -> NaiveDate {
    BusinessCalendar::default().local_date(Utc::now())
}

async fn citizen(t: &TestApp, body: Value) -> String {
    let (s, c) = t.post("/api/v1/citizens", &t.admin_token, body).await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    c["id"].as_str().unwrap().to_owned()
}

async fn create(t: &TestApp, token: &str, body: Value) -> Value {
    let (s, a) = t.post("/api/v1/applications", token, body).await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    a
}

async fn move_to(
    t: &TestApp,
    token: &str,
    id: &str,
    to: &str,
    reason: Option<&str>,
) -> (StatusCode, Value) {
    let mut body = json!({ "to": to });
    if let Some(r) = reason {
        body["reason"] = json!(r);
    }
    t.post(
        &format!("/api/v1/applications/{id}/transitions"),
        token,
        body,
    )
    .await
}

async fn walk(t: &TestApp, token: &str, id: &str, path: &[&str]) {
    for to in path {
        let (s, v) = move_to(t, token, id, to, None).await;
        assert_eq!(s, StatusCode::OK, "→ {to}: {v}");
        assert_eq!(v["status"], *to);
    }
}

async fn read(t: &TestApp, token: &str, id: &str) -> Value {
    let (s, v) = t.get(&format!("/api/v1/applications/{id}"), token).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

fn field_errors(v: &Value) -> Vec<String> {
    v["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn codes(a: &Value) -> Vec<String> {
    a["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["code"].as_str().unwrap().to_owned())
        .collect()
}

fn valid_isee(kind: &str, value: &str) -> Value {
    json!({
        "type": kind,
        "value": value,
        "dsu_protocol": "INPS-ISEE-2026-00012345F-00",
        "dsu_date": today().to_string(),
    })
}

async fn the_workflow_allows_its_moves_and_refuses_the_others(t: TestApp) {
    let (_, bo) = t.user("istruttore", &["back_office"]).await;
    let cid = citizen(&t, json!({"name": "Giulia Brambilla"})).await;
    let a = create(
        &t,
        &bo,
        json!({
            "citizen_id": cid,
            "measure": "income_support",
            "protocol_number": "PG-2026-0001234",
            "submission_channel": "counter",
            "isee": valid_isee("ordinario", "4200.00"),
        }),
    )
    .await;
    assert_eq!(a["status"], "submitted");
    assert_eq!(a["warnings"], json!([]), "{a}");
    assert_eq!(a["submission_channel"], "counter");
    assert_eq!(a["isee"]["value"], "4200.00");
    let id = a["id"].as_str().unwrap().to_owned();

    // A jump the workflow does not allow is a conflict naming both ends.
    let (s, e) = move_to(&t, &bo, &id, "paid", None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    let detail = e["detail"].as_str().unwrap();
    assert!(
        detail.contains("'submitted'") && detail.contains("'paid'"),
        "{detail}"
    );
    let (s, e) = move_to(&t, &bo, &id, "approved", None).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(field_errors(&e), vec!["to"]);

    walk(&t, &bo, &id, &["under_review"]).await;
    // A refusal needs its reason, and keeps it.
    let (s, e) = move_to(&t, &bo, &id, "not_eligible", None).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(field_errors(&e), vec!["reason"]);
    let (s, v) = move_to(
        &t,
        &bo,
        &id,
        "not_eligible",
        Some("residenza non nel Comune"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["outcome_reason"], "residenza non nel Comune");
    // Reviewed again on appeal, then admitted and scheduled for payment.
    walk(
        &t,
        &bo,
        &id,
        &[
            "under_review",
            "documents_requested",
            "eligible",
            "payment_scheduled",
        ],
    )
    .await;
    let (s, _) = move_to(&t, &bo, &id, "under_review", None).await;
    assert_eq!(s, StatusCode::CONFLICT);

    let v = read(&t, &bo, &id).await;
    let moves: Vec<(Value, Value)> = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["kind"] == "transition")
        .map(|h| (h["from"].clone(), h["to"].clone()))
        .collect();
    assert_eq!(moves.len(), 6, "{moves:?}");
    assert_eq!(moves[0], (json!("submitted"), json!("under_review")));
    assert_eq!(moves[1].1, json!("not_eligible"));
    assert_eq!(moves[5].1, json!("payment_scheduled"));
    let created = &v["history"][0];
    assert_eq!(created["kind"], "created");
    assert_eq!(created["to"], "submitted");

    // Lists filter by status, measure and citizen; an unknown status is named.
    let other = create(&t, &bo, json!({"citizen_id": cid, "measure": "b2"})).await;
    let (_, page) = t
        .get(
            "/api/v1/applications?status=payment_scheduled&measure=income_support",
            &bo,
        )
        .await;
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![id.as_str()]);
    let (_, page) = t
        .get(&format!("/api/v1/applications?citizen_id={cid}"), &bo)
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["items"][0]["id"], other["id"], "newest first");
    let (_, page) = t
        .get("/api/v1/applications?measure=b2&status=submitted", &bo)
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let (s, e) = t.get("/api/v1/applications?status=pending", &bo).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(field_errors(&e), vec!["status"]);
    let (_, page) = t.get("/api/v1/applications?limit=1", &bo).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, page2) = t
        .get(
            &format!("/api/v1/applications?limit=1&cursor={cursor}"),
            &bo,
        )
        .await;
    assert_eq!(page2["items"][0]["id"], json!(id));
    assert!(page2["next_cursor"].is_null());

    // Every change is in the audit trail, with no personal data.
    let (_, trail) = t
        .get(
            &format!("/api/v1/audit?entity_type=application&entity_id={id}"),
            &t.admin_token,
        )
        .await;
    let trail = trail
        .as_array()
        .cloned()
        .unwrap_or_else(|| trail["items"].as_array().cloned().unwrap_or_default());
    let actions: Vec<&str> = trail
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"application.created"), "{actions:?}");
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "application.transitioned")
            .count(),
        6
    );
    let text = serde_json::to_string(&trail).unwrap();
    assert!(
        !text.contains("residenza") && !text.contains("Brambilla") && !text.contains("4200"),
        "{text}"
    );
}

async fn isee_and_dsu_warnings_name_their_figures(t: TestApp) {
    let (_, bo) = t.user("istruttore", &["back_office"]).await;
    let cid = citizen(&t, json!({"name": "Paolo Colombo"})).await;

    // B2 with a socio-sanitary ISEE over €25,000: a warning naming value and threshold.
    let a = create(
        &t,
        &bo,
        json!({"citizen_id": cid, "measure": "b2", "isee": valid_isee("sociosanitario", "30000.00")}),
    )
    .await;
    assert_eq!(a["status"], "submitted", "a warning never decides");
    assert_eq!(codes(&a), vec!["isee_over_threshold"]);
    let w = &a["warnings"][0];
    let msg = w["message"].as_str().unwrap();
    assert!(
        msg.contains("30000.00") && msg.contains("25000.00"),
        "{msg}"
    );
    assert!(msg.contains("INPS-ISEE-2026-00012345F-00"), "{msg}");
    assert_eq!(w["isee_value"], "30000.00");
    assert_eq!(w["threshold"], "25000.00");
    // The warnings are recomputed on every read.
    let v = read(&t, &bo, a["id"].as_str().unwrap()).await;
    assert_eq!(v["warnings"], a["warnings"]);

    // Minors are held to €40,000.
    let a = create(
        &t,
        &bo,
        json!({"citizen_id": cid, "measure": "b2", "isee": valid_isee("minorenni", "39000")}),
    )
    .await;
    assert_eq!(a["warnings"], json!([]), "{a}");
    let a = create(
        &t,
        &bo,
        json!({"citizen_id": cid, "measure": "b2", "isee": valid_isee("minorenni", "40000.01")}),
    )
    .await;
    assert_eq!(codes(&a), vec!["isee_over_threshold"]);
    assert!(
        a["warnings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("40000.00")
    );

    // Income support: over €6,000, and a DSU of an earlier year (expired on 31 December).
    let a = create(
        &t,
        &bo,
        json!({
            "citizen_id": cid,
            "measure": "income_support",
            "isee": {
                "type": "ordinario",
                "value": "6500.00",
                "dsu_protocol": "INPS-ISEE-2024-00099999A-00",
                "dsu_date": "2024-03-01",
            },
        }),
    )
    .await;
    assert_eq!(codes(&a), vec!["isee_over_threshold", "dsu_expired"]);
    let msg = a["warnings"][1]["message"].as_str().unwrap();
    assert!(
        msg.contains("INPS-ISEE-2024-00099999A-00")
            && msg.contains("2024-03-01")
            && msg.contains("2024-12-31"),
        "{msg}"
    );
    assert_eq!(a["warnings"][1]["expires_on"], "2024-12-31");
    assert_eq!(a["isee"]["valid_until"], "2024-12-31");

    // An explicit expiry wins over the end of the year.
    let a = create(
        &t,
        &bo,
        json!({
            "citizen_id": cid,
            "measure": "income_support",
            "submitted_at": "2025-01-20",
            "isee": {"type": "ordinario", "value": "100", "dsu_protocol": "P-1",
                     "dsu_date": "2024-06-01", "expires_on": "2025-06-30"},
        }),
    )
    .await;
    assert_eq!(a["warnings"], json!([]), "{a}");

    // No ISEE where the measure needs one.
    let a = create(
        &t,
        &bo,
        json!({"citizen_id": cid, "measure": "income_support"}),
    )
    .await;
    assert_eq!(codes(&a), vec!["isee_missing"]);
}

async fn bad_input_is_refused_naming_the_field(t: TestApp) {
    let (_, bo) = t.user("istruttore", &["back_office"]).await;
    let cid = citizen(&t, json!({"name": "Anna Ferrari"})).await;
    for bad in [
        json!("abc"),
        json!("-5.00"),
        json!("1.234"),
        json!("12,50"),
        json!(""),
        json!(true),
    ] {
        let (s, e) = t
            .post(
                "/api/v1/applications",
                &bo,
                json!({"citizen_id": cid, "measure": "b2",
                       "isee": {"type": "sociosanitario", "value": bad, "dsu_protocol": "P"}}),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {e}");
        assert_eq!(field_errors(&e), vec!["isee.value"], "{bad}: {e}");
    }
    let (s, e) = t
        .post(
            "/api/v1/applications",
            &bo,
            json!({"citizen_id": cid, "measure": "bonus_bebe", "submission_channel": "fax",
                   "isee": {"type": "straordinario", "value": "10", "dsu_date": "01/03/2026"}}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    let mut fields = field_errors(&e);
    fields.sort();
    assert_eq!(
        fields,
        vec![
            "isee.dsu_date",
            "isee.type",
            "measure",
            "submission_channel"
        ]
    );
    let (s, e) = t
        .post(
            "/api/v1/applications",
            &bo,
            json!({"citizen_id": uuid::Uuid::now_v7(), "measure": "b2"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(field_errors(&e), vec!["citizen_id"]);
    let (s, e) = t
        .post(
            "/api/v1/applications",
            &bo,
            json!({"citizen_id": cid, "measure": "b2", "submitted_at": "2999-01-01"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(field_errors(&e), vec!["submitted_at"]);

    // One protocol number, one application.
    create(
        &t,
        &bo,
        json!({"citizen_id": cid, "measure": "b2", "protocol_number": "PG-1"}),
    )
    .await;
    let (s, e) = t
        .post(
            "/api/v1/applications",
            &bo,
            json!({"citizen_id": cid, "measure": "b2", "protocol_number": "PG-1"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert!(e["detail"].as_str().unwrap().contains("PG-1"));

    // Payment amounts.
    let a = create(&t, &bo, json!({"citizen_id": cid, "measure": "b2"})).await;
    let id = a["id"].as_str().unwrap();
    walk(
        &t,
        &bo,
        id,
        &["under_review", "eligible", "payment_scheduled"],
    )
    .await;
    let url = format!("/api/v1/applications/{id}/payments");
    for bad in ["750,00", "750.001", "-750.00", "settecento", "", "0.00"] {
        let (s, e) = t
            .post(
                &url,
                &bo,
                json!({"amount": bad, "paid_on": today().to_string(), "instalment": 1, "of": 1}),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {e}");
        assert_eq!(field_errors(&e), vec!["amount"], "{bad}: {e}");
    }
    let (s, e) = t
        .post(&url, &bo, json!({"paid_on": today().to_string()}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(field_errors(&e), vec!["amount"]);
    let (s, e) = t
        .post(
            &url,
            &bo,
            json!({"amount": "750.00", "paid_on": "ieri", "instalment": 0, "of": 2}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    let mut fields = field_errors(&e);
    fields.sort();
    assert_eq!(fields, vec!["instalment", "paid_on"]);
    // Nothing was recorded by the refused requests.
    let v = read(&t, &bo, id).await;
    assert_eq!(v["payments"], json!([]));
    assert_eq!(v["status"], "payment_scheduled");
}

async fn the_documents_checklist_follows_the_measure(t: TestApp) {
    let (_, bo) = t.user("istruttore", &["back_office"]).await;
    let cid = citizen(&t, json!({"name": "Marco Villa"})).await;
    let a = create(&t, &bo, json!({"citizen_id": cid, "measure": "provi"})).await;
    let names: Vec<&str> = a["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"documento_identita"), "{names:?}");
    assert!(names.contains(&"progetto_individuale"), "{names:?}");
    assert!(
        a["documents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["received"] == false && !d["label"].as_str().unwrap().is_empty())
    );
    let b2 = create(&t, &bo, json!({"citizen_id": cid, "measure": "b2"})).await;
    let b2_names: Vec<&str> = b2["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert!(b2_names.contains(&"verbale_l104"), "{b2_names:?}");
    assert!(!b2_names.contains(&"progetto_individuale"), "{b2_names:?}");

    let id = a["id"].as_str().unwrap();
    let missing_before = a["missing_documents"].as_array().unwrap().len();
    assert!(
        a["missing_documents"]
            .as_array()
            .unwrap()
            .contains(&json!("progetto_individuale"))
    );
    let (s, v) = t
        .post(
            &format!("/api/v1/applications/{id}/documents/progetto_individuale"),
            &bo,
            json!({"received": true}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let doc = v["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "progetto_individuale")
        .unwrap();
    assert_eq!(doc["received"], true);
    assert!(doc["received_at"].is_string());
    assert_eq!(
        v["missing_documents"].as_array().unwrap().len(),
        missing_before - 1
    );
    // Back to missing.
    let (_, v) = t
        .post(
            &format!("/api/v1/applications/{id}/documents/progetto_individuale"),
            &bo,
            json!({"received": false}),
        )
        .await;
    assert_eq!(
        v["missing_documents"].as_array().unwrap().len(),
        missing_before
    );
    let v = read(&t, &bo, id).await;
    let docs_history: Vec<&Value> = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["kind"] == "document")
        .collect();
    assert_eq!(docs_history.len(), 2);
    assert_eq!(
        docs_history[0]["detail"]["document"],
        "progetto_individuale"
    );
    assert_eq!(docs_history[1]["detail"]["state"], "missing");
    // A name outside the checklist is refused, naming the checklist.
    let (s, e) = t
        .post(
            &format!("/api/v1/applications/{id}/documents/passaporto"),
            &bo,
            json!({"received": true}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(field_errors(&e), vec!["name"]);
    assert!(e["detail"].as_str().unwrap().contains("documento_identita"));
    let (s, e) = t
        .post(
            &format!("/api/v1/applications/{id}/documents/iban"),
            &bo,
            json!({"received": "yes"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(field_errors(&e), vec!["received"]);

    // Without e-mail settings the request for documents is noted as not sent, and no ticket
    // is opened to carry it.
    let cid = citizen(
        &t,
        json!({"name": "Ada Marini", "emails": ["ada.marini@example.it"]}),
    )
    .await;
    let a = create(&t, &bo, json!({"citizen_id": cid, "measure": "b2"})).await;
    let id = a["id"].as_str().unwrap();
    walk(&t, &bo, id, &["documents_requested"]).await;
    let v = read(&t, &bo, id).await;
    let notes = notifications(&v);
    assert_eq!(notes.len(), 1, "{v}");
    assert_eq!(notes[0]["detail"]["state"], "not_sent");
    assert!(
        notes[0]["reason"]
            .as_str()
            .unwrap()
            .contains("not configured")
    );
    let (_, list) = t
        .get(&format!("/api/v1/tickets?citizen_id={cid}"), &t.admin_token)
        .await;
    assert_eq!(list["items"], json!([]));
}

async fn payments_by_instalment_then_monitoring_tickets_once_when_due(t: TestApp) {
    let (_, bo) = t.user("istruttore", &["back_office"]).await;
    let cid = citizen(&t, json!({"name": "Lucia Galli"})).await;
    let a = create(
        &t,
        &bo,
        json!({"citizen_id": cid, "measure": "income_support", "protocol_number": "PG-77",
               "isee": valid_isee("ordinario", "3000")}),
    )
    .await;
    let id = a["id"].as_str().unwrap().to_owned();
    let url = format!("/api/v1/applications/{id}/payments");
    let day = today();
    let pay = |n: i64, of: i64, amount: &str, on: NaiveDate| json!({"amount": amount, "paid_on": on.to_string(), "instalment": n, "of": of});
    // Not before payment is scheduled.
    let (s, e) = t.post(&url, &bo, pay(1, 2, "750.00", day)).await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert!(e["detail"].as_str().unwrap().contains("payment_scheduled"));
    walk(
        &t,
        &bo,
        &id,
        &["under_review", "eligible", "payment_scheduled"],
    )
    .await;

    let (s, v) = t
        .post(&url, &bo, pay(1, 2, "750.00", day - Duration::days(30)))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["status"], "paid");
    assert_eq!(v["payment"]["amount"], "750.00");
    assert_eq!(v["payment"]["instalment"], 1);
    assert_eq!(v["payment"]["of"], 2);
    assert_eq!(v["paid_total"], "750.00");
    assert_eq!(
        v["monitoring"],
        json!([]),
        "nothing to monitor before the last instalment"
    );
    // The same instalment twice, a different count, an instalment past the count: refused.
    let (s, _) = t.post(&url, &bo, pay(1, 2, "750.00", day)).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, e) = t.post(&url, &bo, pay(2, 3, "750.00", day)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(field_errors(&e), vec!["of"]);
    let (s, e) = t.post(&url, &bo, pay(3, 2, "750.00", day)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(field_errors(&e), vec!["instalment"]);

    let (s, v) = t.post(&url, &bo, pay(2, 2, "750.50", day)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["status"], "paid");
    assert_eq!(v["paid_total"], "1500.50");
    assert_eq!(v["instalments_paid"], 2);
    assert_eq!(v["payments"].as_array().unwrap().len(), 2);
    // The last instalment schedules the measure's checks (90 and 180 days after it).
    let checks = v["monitoring"].as_array().unwrap().clone();
    assert_eq!(checks.len(), 2, "{v}");
    assert_eq!(checks[0]["due_on"], (day + Duration::days(90)).to_string());
    assert_eq!(checks[1]["due_on"], (day + Duration::days(180)).to_string());
    assert!(checks.iter().all(|c| c["state"] == "scheduled"));

    // The regional reports read the payments with their measure.
    let rows = payment::Entity::find().all(&t.app.db().read).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|p| p.measure == "income_support"));
    assert_eq!(rows.iter().map(|p| p.amount_cents).sum::<i64>(), 150_050);

    // Nothing is due yet; on the due day one back-office ticket opens, once.
    assert_eq!(t.app.run_application_monitoring(day).await.unwrap(), 0);
    let first_due = day + Duration::days(90);
    assert_eq!(
        t.app.run_application_monitoring(first_due).await.unwrap(),
        1
    );
    assert_eq!(
        t.app.run_application_monitoring(first_due).await.unwrap(),
        0
    );
    let v = read(&t, &bo, &id).await;
    assert_eq!(v["status"], "monitoring");
    assert_eq!(v["monitoring"][0]["state"], "ticketed");
    assert_eq!(v["monitoring"][1]["state"], "scheduled");
    let tid = v["monitoring"][0]["ticket_id"].as_str().unwrap().to_owned();
    let (s, ticket) = t.get(&format!("/api/v1/tickets/{tid}"), &bo).await;
    assert_eq!(s, StatusCode::OK, "{ticket}");
    assert_eq!(ticket["tier"], "back_office");
    assert_eq!(ticket["channel"], "internal");
    assert_eq!(ticket["citizen_id"], json!(cid));
    assert_eq!(ticket["measure"], "income_support");
    assert!(
        ticket["subject"].as_str().unwrap().contains("PG-77"),
        "{ticket}"
    );
    assert!(
        v["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == json!(tid))
    );
    assert_eq!(
        t.app
            .run_application_monitoring(day + Duration::days(400))
            .await
            .unwrap(),
        1
    );
    let (_, list) = t
        .get(
            &format!("/api/v1/tickets?citizen_id={cid}&tier=back_office"),
            &bo,
        )
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");

    // Closing ends it; a closed application takes no payment.
    walk(&t, &bo, &id, &["closed"]).await;
    let (s, _) = t.post(&url, &bo, pay(2, 2, "1.00", day)).await;
    assert_eq!(s, StatusCode::CONFLICT);
}

async fn tickets_link_to_applications_within_their_tier(t: TestApp) {
    let (_, bo) = t.user("istruttore", &["back_office"]).await;
    let (_, fo) = t.user("centralino", &["front_office"]).await;
    let cid = citizen(&t, json!({"name": "Sara Ricci"})).await;
    let a = create(
        &t,
        &bo,
        json!({"citizen_id": cid, "measure": "dopo_di_noi"}),
    )
    .await;
    let aid = a["id"].as_str().unwrap().to_owned();
    let call = t
        .ticket(
            &fo,
            json!({"channel": "phone", "subject": "A che punto è la mia domanda?", "citizen_id": cid,
                   "category": "application_status"}),
        )
        .await;
    let tid = call["id"].as_str().unwrap().to_owned();
    let url = format!("/api/v1/tickets/{tid}/links");

    // The back office cannot reach a front-office ticket; the front office links it.
    let (s, _) = t.post(&url, &bo, json!({"application_id": aid})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, l) = t.post(&url, &fo, json!({"application_id": aid})).await;
    assert_eq!(s, StatusCode::CREATED, "{l}");
    assert_eq!(l["created"], true);
    let (s, l) = t.post(&url, &fo, json!({"application_id": aid})).await;
    assert_eq!(s, StatusCode::OK, "{l}");
    assert_eq!(l["created"], false);
    let (s, e) = t
        .post(&url, &fo, json!({"application_id": uuid::Uuid::now_v7()}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(field_errors(&e), vec!["application_id"]);

    // The operator sees the application from the ticket and from the citizen.
    let (_, linked) = t.get(&url, &fo).await;
    assert_eq!(linked["items"][0]["id"], json!(aid));
    assert_eq!(linked["items"][0]["status_label"], "presentata");
    let (s, mine) = t
        .get(&format!("/api/v1/citizens/{cid}/applications"), &fo)
        .await;
    assert_eq!(s, StatusCode::OK, "{mine}");
    assert_eq!(mine["items"][0]["id"], json!(aid));
    assert_eq!(mine["items"][0]["measure"], "dopo_di_noi");
    let v = read(&t, &fo, &aid).await;
    assert_eq!(v["tickets"][0]["number"], call["number"]);
    // The back office sees the link in the history but not the ticket it cannot open.
    let v = read(&t, &bo, &aid).await;
    assert_eq!(v["tickets"], json!([]));
    assert!(
        v["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["kind"] == "link" && h["detail"]["ticket_id"] == json!(tid))
    );
    let (_, ticket) = t.get(&format!("/api/v1/tickets/{tid}"), &fo).await;
    assert!(
        ticket["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "system" && e["meta"]["application_id"] == json!(aid)),
        "{ticket}"
    );
    let (s, _) = t
        .get(
            &format!("/api/v1/citizens/{}/applications", uuid::Uuid::now_v7()),
            &fo,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn the_front_office_reads_but_does_not_change(t: TestApp) {
    let (_, bo) = t.user("istruttore", &["back_office"]).await;
    let (_, fo) = t.user("centralino", &["front_office"]).await;
    let (_, desk) = t.user("sportello1", &["counter"]).await;
    let (_, sup) = t.user("coordinatrice", &["supervisor"]).await;
    let cid = citizen(&t, json!({"name": "Elena Conti"})).await;
    let (s, _) = t
        .post(
            "/api/v1/applications",
            &fo,
            json!({"citizen_id": cid, "measure": "b2"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let a = create(&t, &bo, json!({"citizen_id": cid, "measure": "b2"})).await;
    let id = a["id"].as_str().unwrap();
    for token in [&fo, &desk] {
        let (s, e) = move_to(&t, token, id, "under_review", None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
        let (s, _) = t
            .post(
                &format!("/api/v1/applications/{id}/documents/iban"),
                token,
                json!({"received": true}),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _) = t
            .post(
                &format!("/api/v1/applications/{id}/payments"),
                token,
                json!({"amount": "1.00", "paid_on": today().to_string()}),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        // "Where is my application?": they read it.
        let v = read(&t, token, id).await;
        assert_eq!(v["status"], "submitted");
        let (s, _) = t.get("/api/v1/applications", token).await;
        assert_eq!(s, StatusCode::OK);
    }
    let (s, v) = move_to(&t, &sup, id, "under_review", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _) = t
        .call(reqwest::Method::GET, "/api/v1/applications", None, None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // The contract is in the OpenAPI document.
    let (_, doc) = t.get("/api/v1/openapi.json", &fo).await;
    for path in [
        "/api/v1/applications",
        "/api/v1/applications/{id}",
        "/api/v1/applications/{id}/transitions",
        "/api/v1/applications/{id}/documents/{name}",
        "/api/v1/applications/{id}/payments",
        "/api/v1/tickets/{id}/links",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    // Readings are audited.
    let (_, trail) = t
        .get(
            &format!("/api/v1/audit?entity_type=application&entity_id={id}"),
            &t.admin_token,
        )
        .await;
    let text = trail.to_string();
    assert!(text.contains("application.viewed"), "{text}");
}

/// The outbox rows of the instance, oldest first, with their parsed text.
async fn outbox(t: &TestApp) -> Vec<(mail_outbox::Model, String)> {
    let mut rows = mail_outbox::Entity::find()
        .all(&t.app.db().read)
        .await
        .unwrap();
    rows.sort_by_key(|r| r.id);
    rows.into_iter()
        .map(|r| {
            let parsed =
                sportello_service::mail::sportello_mail::parse::parse(&r.raw, &Default::default())
                    .unwrap();
            (r, parsed.text)
        })
        .collect()
}

fn notifications(v: &Value) -> Vec<Value> {
    v["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["kind"] == "notification")
        .cloned()
        .collect()
}

async fn the_citizen_hears_of_documents_outcome_and_payment(t: TestApp) {
    let (_, bo) = t.user("istruttore", &["back_office"]).await;
    let cid = citizen(
        &t,
        json!({"name": "Francesca Rossi", "emails": ["francesca.rossi@example.it"]}),
    )
    .await;
    let a = create(
        &t,
        &bo,
        json!({"citizen_id": cid, "measure": "b2", "protocol_number": "PG-2026-0042",
               "isee": valid_isee("sociosanitario", "12000.00")}),
    )
    .await;
    let id = a["id"].as_str().unwrap().to_owned();
    t.post(
        &format!("/api/v1/applications/{id}/documents/documento_identita"),
        &bo,
        json!({"received": true}),
    )
    .await;
    walk(&t, &bo, &id, &["under_review"]).await;
    assert!(outbox(&t).await.is_empty(), "no e-mail for a review");

    // Documents requested: the missing ones, in Italian, to the citizen.
    walk(&t, &bo, &id, &["documents_requested"]).await;
    let sent = outbox(&t).await;
    assert_eq!(sent.len(), 1);
    let (row, text) = &sent[0];
    assert_eq!(row.envelope_to, "francesca.rossi@example.it");
    assert!(text.contains("Documenti mancanti"), "{text}");
    assert!(text.contains("Verbale di disabilità grave"), "{text}");
    assert!(text.contains("PG-2026-0042"), "{text}");
    assert!(
        !text.contains("Documento d'identità"),
        "a received document is not asked again: {text}"
    );
    let v = read(&t, &bo, &id).await;
    let n = notifications(&v);
    assert_eq!(n.len(), 1);
    assert_eq!(n[0]["detail"]["notice"], "documents_requested");
    assert_eq!(n[0]["detail"]["state"], "queued");
    // It went out on a back-office ticket linked to the application, set aside as resolved.
    let tid = n[0]["detail"]["ticket_id"].as_str().unwrap().to_owned();
    assert_eq!(row.ticket_id.to_string(), tid);
    let (_, ticket) = t.get(&format!("/api/v1/tickets/{tid}"), &bo).await;
    assert_eq!(ticket["tier"], "back_office");
    assert_eq!(ticket["status"], "resolved", "{ticket}");
    assert!(
        v["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == json!(tid))
    );

    // Outcome: admitted.
    walk(&t, &bo, &id, &["eligible"]).await;
    let sent = outbox(&t).await;
    assert_eq!(sent.len(), 2);
    assert!(sent[1].1.contains("è stata accolta"), "{}", sent[1].1);
    assert_eq!(sent[1].0.ticket_id, sent[0].0.ticket_id, "one thread");

    // Payment: amount, date and instalment.
    walk(&t, &bo, &id, &["payment_scheduled"]).await;
    let (s, v) = t
        .post(
            &format!("/api/v1/applications/{id}/payments"),
            &bo,
            json!({"amount": "1250.50", "paid_on": "2026-03-02", "instalment": 1, "of": 3}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let sent = outbox(&t).await;
    assert_eq!(sent.len(), 3);
    let text = &sent[2].1;
    assert!(
        text.contains("1.250,50") && text.contains("rata 1 di 3") && text.contains("02/03/2026"),
        "{text}"
    );

    // A refusal carries its reason; a citizen without e-mail is noted, not an error.
    let b = create(
        &t,
        &bo,
        json!({"citizen_id": cid, "measure": "income_support"}),
    )
    .await;
    let bid = b["id"].as_str().unwrap();
    walk(&t, &bo, bid, &["under_review"]).await;
    let (s, _) = move_to(
        &t,
        &bo,
        bid,
        "not_eligible",
        Some("ISEE superiore alla soglia di 6000.00 euro"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let sent = outbox(&t).await;
    assert_eq!(sent.len(), 4);
    assert!(
        sent[3].1.contains("non è stata accolta")
            && sent[3].1.contains("ISEE superiore alla soglia"),
        "{}",
        sent[3].1
    );

    let nomail = citizen(
        &t,
        json!({"name": "Giorgio Bianchi", "phones": ["+393331234567"]}),
    )
    .await;
    let c = create(&t, &bo, json!({"citizen_id": nomail, "measure": "b2"})).await;
    let cid2 = c["id"].as_str().unwrap();
    walk(&t, &bo, cid2, &["documents_requested"]).await;
    assert_eq!(outbox(&t).await.len(), 4);
    let v = read(&t, &bo, cid2).await;
    let n = notifications(&v);
    assert_eq!(n.len(), 1, "{v}");
    assert_eq!(n[0]["detail"]["state"], "no_email");

    // A ticket of the citizen already linked carries the notice.
    let (_, fo) = t.user("centralino", &["front_office"]).await;
    let d = create(&t, &bo, json!({"citizen_id": cid, "measure": "provi"})).await;
    let did = d["id"].as_str().unwrap();
    let call = t
        .ticket(
            &fo,
            json!({"channel": "phone", "subject": "Domanda PRO.VI", "citizen_id": cid}),
        )
        .await;
    let (s, _) = t
        .post(
            &format!("/api/v1/tickets/{}/links", call["id"].as_str().unwrap()),
            &fo,
            json!({"application_id": did}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    walk(&t, &bo, did, &["documents_requested"]).await;
    let sent = outbox(&t).await;
    assert_eq!(sent.len(), 5);
    assert_eq!(
        sent[4].0.ticket_id.to_string(),
        call["id"].as_str().unwrap()
    );
    assert!(sent[4].1.contains("Progetto individuale"), "{}", sent[4].1);
}

async fn notifications_stay_off_when_switched_off(t: TestApp) {
    let (_, bo) = t.user("istruttore", &["back_office"]).await;
    let cid = citizen(
        &t,
        json!({"name": "Francesca Rossi", "emails": ["francesca.rossi@example.it"]}),
    )
    .await;
    let a = create(&t, &bo, json!({"citizen_id": cid, "measure": "b2"})).await;
    let id = a["id"].as_str().unwrap();
    walk(
        &t,
        &bo,
        id,
        &["documents_requested", "eligible", "payment_scheduled"],
    )
    .await;
    let (s, _) = t
        .post(
            &format!("/api/v1/applications/{id}/payments"),
            &bo,
            json!({"amount": "500", "paid_on": today().to_string()}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert!(outbox(&t).await.is_empty());
    let v = read(&t, &bo, id).await;
    assert!(notifications(&v).is_empty());
    assert_eq!(v["status"], "paid");
    // No correspondence ticket was opened either.
    let (_, list) = t
        .get(&format!("/api/v1/tickets?citizen_id={cid}"), &t.admin_token)
        .await;
    assert_eq!(list["items"], json!([]));
}

async fn a_check_opens_one_ticket_across_instances_and_abandoned_claims_recover(t: TestApp) {
    let (_, bo) = t.user("istruttore", &["back_office"]).await;
    let cid = citizen(&t, json!({"name": "Roberto Fontana"})).await;
    let a = create(&t, &bo, json!({"citizen_id": cid, "measure": "b2"})).await;
    let id = a["id"].as_str().unwrap().to_owned();
    // Declared paid without instalments recorded here: the checks run from today.
    walk(
        &t,
        &bo,
        &id,
        &["under_review", "eligible", "payment_scheduled", "paid"],
    )
    .await;
    let v = read(&t, &bo, &id).await;
    let checks = v["monitoring"].as_array().unwrap();
    assert_eq!(checks.len(), 2, "{v}");
    assert_eq!(
        checks[0]["due_on"],
        (today() + Duration::days(90)).to_string()
    );

    // Four passes at once (on PostgreSQL, two instances with two each; several instances
    // share PostgreSQL only): one ticket for the check due.
    let other = if t.database_url.starts_with("postgres") {
        Some(TestApp::spawn_on(&t.database_url, None).await)
    } else {
        None
    };
    let second_app = other.as_ref().map_or(&t.app, |o| &o.app);
    let due = today() + Duration::days(100);
    let (a1, a2, b1, b2) = tokio::join!(
        t.app.run_application_monitoring(due),
        t.app.run_application_monitoring(due),
        second_app.run_application_monitoring(due),
        second_app.run_application_monitoring(due),
    );
    let opened = [a1, a2, b1, b2].map(|r| r.unwrap());
    assert_eq!(opened.iter().sum::<usize>(), 1, "{opened:?}");
    drop(other);

    // A claim abandoned by a stopped instance is taken over once it is stale.
    let later = today() + Duration::days(200);
    let second = v["monitoring"][1]["id"]
        .as_str()
        .unwrap()
        .parse::<uuid::Uuid>()
        .unwrap();
    application_monitoring::Entity::update_many()
        .col_expr(
            application_monitoring::Column::State,
            Expr::value("claimed"),
        )
        .col_expr(
            application_monitoring::Column::ClaimedAt,
            Expr::value(Some(Utc::now() - Duration::minutes(2))),
        )
        .filter(application_monitoring::Column::Id.eq(second))
        .exec(&t.app.db().write)
        .await
        .unwrap();
    assert_eq!(
        t.app.run_application_monitoring(later).await.unwrap(),
        0,
        "claim still fresh"
    );
    application_monitoring::Entity::update_many()
        .col_expr(
            application_monitoring::Column::ClaimedAt,
            Expr::value(Some(Utc::now() - Duration::minutes(30))),
        )
        .filter(application_monitoring::Column::Id.eq(second))
        .exec(&t.app.db().write)
        .await
        .unwrap();
    assert_eq!(t.app.run_application_monitoring(later).await.unwrap(), 1);
    assert_eq!(t.app.run_application_monitoring(later).await.unwrap(), 0);
    let v = read(&t, &bo, &id).await;
    assert_eq!(v["status"], "monitoring");
    assert!(
        v["monitoring"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["state"] == "ticketed")
    );
    // An instance that stopped after opening the ticket but before recording it: the ticket
    // it opened is found by the check's tag and recorded, not opened twice.
    let first = v["monitoring"][0]["id"]
        .as_str()
        .unwrap()
        .parse::<uuid::Uuid>()
        .unwrap();
    let first_ticket = v["monitoring"][0]["ticket_id"].clone();
    application_monitoring::Entity::update_many()
        .col_expr(
            application_monitoring::Column::State,
            Expr::value("claimed"),
        )
        .col_expr(
            application_monitoring::Column::TicketId,
            Expr::value(Option::<uuid::Uuid>::None),
        )
        .col_expr(
            application_monitoring::Column::ClaimedAt,
            Expr::value(Some(Utc::now() - Duration::minutes(30))),
        )
        .filter(application_monitoring::Column::Id.eq(first))
        .exec(&t.app.db().write)
        .await
        .unwrap();
    assert_eq!(t.app.run_application_monitoring(later).await.unwrap(), 1);
    let v = read(&t, &bo, &id).await;
    assert_eq!(v["monitoring"][0]["ticket_id"], first_ticket);
    assert_eq!(v["monitoring"][0]["state"], "ticketed");
    let (_, list) = t
        .get(&format!("/api/v1/tickets?citizen_id={cid}"), &t.admin_token)
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");
    assert!(list["items"].as_array().unwrap().iter().all(|t| {
        t["tags"]
            .as_array()
            .unwrap()
            .contains(&json!("monitoraggio"))
    }));
}
