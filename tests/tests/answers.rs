//! Prepared answers and the knowledge base through real HTTP on SQLite and PostgreSQL: the
//! seeded orientation answers, search, rendering for a ticket, template validation, who may
//! edit, and edits that survive a restart.

mod common;

use chrono::{Datelike, Duration, NaiveDate, Utc};
use common::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sportello_domain::calendar::BusinessCalendar;

on_both_backends!(
    seeds_cover_every_measure_in_italian_and_english,
    search_by_measure_topic_and_text,
    render_fills_citizen_ticket_and_operator,
    unknown_placeholders_are_refused_naming_them,
    only_supervisors_and_admins_edit,
    edits_and_deactivations_survive_a_restart,
);

const MEASURES: &[&str] = &[
    "income_support",
    "titoli_sociali_l1",
    "titoli_sociali_l2",
    "titoli_sociali_l4",
    "b2",
    "dopo_di_noi",
    "provi",
    "social_voucher",
];

const CORE_TOPICS: &[&str] = &[
    "who_can_apply",
    "isee_thresholds",
    "documents",
    "how_to_apply",
    "payment_timing",
];

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn list(t: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let (s, v) = t.get(&format!("/api/v1/answers?{query}"), token).await;
    assert_eq!(s, StatusCode::OK, "{query}: {v}");
    v["items"].as_array().unwrap().clone()
}

/// An answer by slug and language, active or not (read as the administrator).
async fn find(t: &TestApp, slug: &str, lang: &str) -> Value {
    list(
        t,
        &t.admin_token,
        &format!("lang={lang}&include_inactive=true"),
    )
    .await
    .into_iter()
    .find(|a| a["slug"] == slug)
    .unwrap_or_else(|| panic!("no answer {slug}/{lang}"))
}

async fn seeds_cover_every_measure_in_italian_and_english(t: TestApp) {
    let (_, fo) = t.user("fo1", &["front_office"]).await;
    for lang in ["it", "en"] {
        for m in MEASURES {
            let items = list(&t, &fo, &format!("measure={m}&lang={lang}")).await;
            for topic in CORE_TOPICS {
                let a = items
                    .iter()
                    .find(|a| a["topic"] == *topic)
                    .unwrap_or_else(|| panic!("no {lang} answer for {m}/{topic}"));
                assert_eq!(a["lang"], lang);
                assert_eq!(a["active"], true);
                let body = a["body"].as_str().unwrap();
                assert!(body.contains("{{citizen.name}}"), "{body}");
                assert!(body.contains("{{operator.name}}"), "{body}");
                assert!(a["measure_label"].as_str().is_some_and(|l| !l.is_empty()));
            }
        }
    }
    // The thresholds the office gave are in the Italian text operators read out on the phone.
    let income = list(
        &t,
        &fo,
        "measure=income_support&topic=isee_thresholds&lang=it",
    )
    .await;
    assert_eq!(income.len(), 1);
    assert!(income[0]["body"].as_str().unwrap().contains("€ 6.000"));
    let b2 = list(&t, &fo, "measure=b2&topic=isee_thresholds&lang=it").await;
    let b2 = b2[0]["body"].as_str().unwrap();
    assert!(
        b2.contains("sociosanitario") && b2.contains("€ 25.000") && b2.contains("€ 40.000"),
        "{b2}"
    );
    // Both languages share the slugs.
    let it: Vec<Value> = list(&t, &fo, "lang=it").await;
    let en: Vec<Value> = list(&t, &fo, "lang=en").await;
    let slugs = |v: &[Value]| {
        let mut s: Vec<String> = v
            .iter()
            .map(|a| a["slug"].as_str().unwrap().to_owned())
            .collect();
        s.sort();
        s
    };
    assert_eq!(slugs(&it), slugs(&en));
    // The topics have labels for the console's filter.
    let (s, topics) = t.get("/api/v1/answers/topics", &fo).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        topics["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["slug"] == "isee_thresholds" && x["label_it"] == "Soglie ISEE")
    );
    // Reading one by id.
    let id = it[0]["id"].as_str().unwrap();
    let (s, one) = t.get(&format!("/api/v1/answers/{id}"), &fo).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(one["slug"], it[0]["slug"]);
    // The OpenAPI document describes the endpoints the console and integrations use.
    let (_, doc) = t.get("/api/v1/openapi.json", &fo).await;
    for path in [
        "/api/v1/answers",
        "/api/v1/answers/topics",
        "/api/v1/answers/{id}",
        "/api/v1/answers/{id}/render",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from OpenAPI"
        );
    }
    assert!(doc["components"]["schemas"].get("RenderedAnswer").is_some());
    // Without a token there is nothing to read.
    let (s, _) = t.call(Method::GET, "/api/v1/answers", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

async fn search_by_measure_topic_and_text(t: TestApp) {
    let (_, fo) = t.user("fo1", &["front_office"]).await;
    let b2 = list(&t, &fo, "measure=b2&lang=it").await;
    assert!(b2.len() >= 5);
    assert!(b2.iter().all(|a| a["measure"] == "b2"));
    // Ordered by topic as the console lists them: who can apply first.
    assert_eq!(b2[0]["topic"], "who_can_apply");

    // Free text: every word, any case, with or without accents.
    let hits = list(&t, &fo, &format!("q={}", enc("SOCIOSANITARIO 25.000"))).await;
    assert!(
        hits.iter()
            .any(|a| a["slug"] == "b2_isee_thresholds" && a["lang"] == "it")
    );
    assert!(hits.iter().all(|a| {
        let text = format!("{} {}", a["title"], a["body"]).to_lowercase();
        text.contains("sociosanitario") && text.contains("25.000")
    }));
    for q in ["priorità", "PRIORITA", "Priorita'"] {
        let hits = list(&t, &fo, &format!("q={}&lang=it", enc(q))).await;
        assert!(
            hits.iter()
                .any(|a| a["slug"] == "dopo_di_noi_isee_thresholds"),
            "{q}: {hits:?}"
        );
    }
    let and = list(&t, &fo, &format!("q={}&lang=it", enc("priorità zanzibar"))).await;
    assert!(and.is_empty(), "every word must match: {and:?}");
    let mixed = list(
        &t,
        &fo,
        &format!("q={}&measure=provi", enc("Assistente Personale")),
    )
    .await;
    assert!(!mixed.is_empty());
    assert!(mixed.iter().all(|a| a["measure"] == "provi"));

    // Combined with topic and language; nothing found is an empty list, not an error.
    let one = list(
        &t,
        &fo,
        &format!(
            "measure=income_support&topic=payment_timing&lang=en&q={}",
            enc("instalments")
        ),
    )
    .await;
    assert_eq!(one.len(), 1);
    assert_eq!(one[0]["slug"], "income_support_payment_timing");
    assert!(
        list(&t, &fo, &format!("q={}", enc("zanzibar quokka")))
            .await
            .is_empty()
    );
    // LIKE wildcards are text, not patterns.
    assert!(list(&t, &fo, &format!("q={}", enc("%_%"))).await.is_empty());
    // Answers about no one measure.
    let general = list(&t, &fo, "measure=none&lang=it").await;
    assert!(general.iter().any(|a| a["slug"] == "general_appointment"));
    assert!(general.iter().all(|a| a["measure"].is_null()));

    // Bad filters are named.
    let (s, v) = t.get("/api/v1/answers?lang=fr&topic=gossip", &fo).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["lang", "topic"]);
}

fn cal() -> BusinessCalendar {
    BusinessCalendar::default()
}

/// The first weekday at least `days` ahead that is not a holiday.
fn open_weekday(days: i64) -> NaiveDate {
    let mut d = cal().local_date(Utc::now()) + Duration::days(days);
    while d.weekday().number_from_monday() > 5 || cal().is_holiday(d).is_some() {
        d += Duration::days(1);
    }
    d
}

async fn render_fills_citizen_ticket_and_operator(t: TestApp) {
    let (_, fo) = t.user("fo1", &["front_office"]).await;
    let ticket = t
        .ticket(
            &fo,
            json!({"channel": "email", "subject": "Informazioni B2", "measure": "b2",
                   "citizen": {"name": "Giulia Ferrari", "emails": ["giulia.ferrari@example.org"]}}),
        )
        .await;
    let number = ticket["number"].as_str().unwrap();
    let tid = ticket["id"].as_str().unwrap();
    let answer = find(&t, "b2_isee_thresholds", "it").await;
    let (s, r) = t
        .post(
            &format!("/api/v1/answers/{}/render", answer["id"].as_str().unwrap()),
            &fo,
            json!({"ticket_id": tid}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let body = r["body"].as_str().unwrap();
    assert!(body.starts_with("Gentile Giulia Ferrari,"), "{body}");
    assert!(
        body.contains("Operatore fo1"),
        "signed by the operator: {body}"
    );
    assert!(!body.contains("{{"), "{body}");
    assert!(r["subject"].as_str().unwrap().contains(number), "{r}");
    assert_eq!(r["missing"], json!([]));
    assert_eq!(r["lang"], "it");
    // The reply form gets the text without greeting and sign-off: the e-mail adds its own.
    let reply = r["reply_body"].as_str().unwrap();
    assert!(
        reply.starts_with("per la Misura B2 le soglie ISEE sono:"),
        "{reply}"
    );
    assert!(
        !reply.contains("Gentile") && !reply.contains("Operatore fo1"),
        "{reply}"
    );
    assert!(reply.contains("€ 25.000"));

    // English, and a number the citizen quotes back.
    let en = find(&t, "b2_payment_timing", "en").await;
    let (_, r) = t
        .post(
            &format!("/api/v1/answers/{}/render", en["id"].as_str().unwrap()),
            &fo,
            json!({"ticket_id": tid}),
        )
        .await;
    assert!(
        r["body"]
            .as_str()
            .unwrap()
            .starts_with("Dear Giulia Ferrari,")
    );
    assert!(r["reply_body"].as_str().unwrap().contains(number));

    // A general answer takes the ticket's measure; with no counter opening scheduled the
    // placeholder stays visible and is reported, and once one is scheduled it is spelled out.
    let appt = find(&t, "general_appointment", "it").await;
    let appt_path = format!("/api/v1/answers/{}/render", appt["id"].as_str().unwrap());
    let (_, r) = t.post(&appt_path, &fo, json!({"ticket_id": tid})).await;
    assert_eq!(r["missing"], json!(["{{counter.next_opening}}"]));
    assert!(
        r["body"]
            .as_str()
            .unwrap()
            .contains("{{counter.next_opening}}")
    );
    let day = open_weekday(3);
    let (s, v) = t
        .post(
            "/api/v1/counter/sessions",
            &t.admin_token,
            json!({"date": day.to_string(), "start": "09:00", "end": "12:30", "desks": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, r) = t.post(&appt_path, &fo, json!({"ticket_id": tid})).await;
    assert_eq!(r["missing"], json!([]));
    let body = r["body"].as_str().unwrap();
    let expected = format!(
        "La prossima apertura è {}, dalle 9:00 alle 12:30.",
        sportello_domain::answer::long_date("it", day)
    );
    assert!(body.contains(&expected), "{expected}\n{body}");
    let status = find(&t, "general_application_status", "it").await;
    let (_, r) = t
        .post(
            &format!("/api/v1/answers/{}/render", status["id"].as_str().unwrap()),
            &fo,
            json!({"ticket_id": tid}),
        )
        .await;
    assert!(r["body"].as_str().unwrap().contains("per Misura B2"), "{r}");

    // A ticket without a citizen: a neutral text to fill in, reported as missing.
    let anon = t
        .ticket(
            &fo,
            json!({"channel": "phone", "subject": "Chiamata anonima"}),
        )
        .await;
    let (_, r) = t
        .post(
            &format!("/api/v1/answers/{}/render", answer["id"].as_str().unwrap()),
            &fo,
            json!({"ticket_id": anon["id"]}),
        )
        .await;
    assert_eq!(r["missing"], json!(["{{citizen.name}}"]));

    // A back-office ticket is out of a front-office operator's reach, answers or not.
    let (_, bo) = t.user("bo1", &["back_office"]).await;
    let back = t
        .ticket(
            &bo,
            json!({"channel": "internal", "subject": "Verifica", "tier": "back_office"}),
        )
        .await;
    let (s, _) = t
        .post(
            &format!("/api/v1/answers/{}/render", answer["id"].as_str().unwrap()),
            &fo,
            json!({"ticket_id": back["id"]}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = t
        .post(
            &format!("/api/v1/answers/{}/render", answer["id"].as_str().unwrap()),
            &fo,
            json!({"ticket_id": uuid::Uuid::now_v7()}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn unknown_placeholders_are_refused_naming_them(t: TestApp) {
    let (_, sup) = t.user("sup1", &["supervisor"]).await;
    let new = json!({
        "slug": "b2_rinnovo", "lang": "it", "measure": "b2", "topic": "general",
        "title": "Rinnovo B2", "subject": "Rinnovo – {{ticket.number}}",
        "body": "Gentile {{citizen.name}},\n\nil rinnovo per {{citizen.surname}} è automatico.\n\n{{operator.name}}",
    });
    let (s, v) = t.post("/api/v1/answers", &sup, new.clone()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["field"], "body");
    let msg = v["errors"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("{{citizen.surname}}") && msg.contains("line 3"),
        "{msg}"
    );
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("{{citizen.surname}}")
    );

    // Unclosed braces, unknown measure and topic are named too, all at once.
    let mut bad = new.clone();
    bad["subject"] = json!("Rinnovo {{ticket.number");
    bad["measure"] = json!("reddito_di_cittadinanza");
    bad["topic"] = json!("gossip");
    bad["body"] = json!("ok");
    let (s, v) = t.post("/api/v1/answers", &sup, bad).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let mut fields: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(fields, vec!["measure", "subject", "topic"], "{v}");

    // Fixed, it saves; the same slug and language again is a conflict.
    let mut good = new.clone();
    good["body"] =
        json!("Gentile {{ citizen.name }},\n\nil rinnovo è automatico.\n\n{{operator.name}}");
    let (s, created) = t.post("/api/v1/answers", &sup, good.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["placeholders"],
        json!(["{{citizen.name}}", "{{ticket.number}}", "{{operator.name}}"])
    );
    let (s, _) = t.post("/api/v1/answers", &sup, good).await;
    assert_eq!(s, StatusCode::CONFLICT);

    // An update is checked the same way.
    let id = created["id"].as_str().unwrap();
    let (s, v) = t
        .call(
            Method::PUT,
            &format!("/api/v1/answers/{id}"),
            Some(&sup),
            Some(
                json!({"measure": "b2", "topic": "general", "title": "Rinnovo B2",
                        "subject": "Rinnovo", "body": "Saldo il {{payment.date}}"}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        v["detail"].as_str().unwrap().contains("{{payment.date}}"),
        "{v}"
    );
}

async fn only_supervisors_and_admins_edit(t: TestApp) {
    let (_, fo) = t.user("fo1", &["front_office"]).await;
    let (_, sup) = t.user("sup1", &["supervisor"]).await;
    let a = find(&t, "provi_documents", "it").await;
    let id = a["id"].as_str().unwrap();
    let path = format!("/api/v1/answers/{id}");
    let update = json!({"measure": "provi", "topic": "documents", "title": "PRO.VI: documenti",
                        "subject": "Documenti", "body": "Gentile {{citizen.name}},\n\ntesto nuovo."});

    let (s, _) = t
        .post(
            "/api/v1/answers",
            &fo,
            json!({"slug": "x", "lang": "it", "topic": "general", "title": "t", "subject": "s", "body": "b"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = t
        .call(Method::PUT, &path, Some(&fo), Some(update.clone()))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = t.call(Method::DELETE, &path, Some(&fo), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = t.get("/api/v1/answers?include_inactive=true", &fo).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Nothing changed.
    let (_, now) = t.get(&path, &fo).await;
    assert_eq!(now["body"], a["body"]);

    // A supervisor edits; the edit is audited, without the text.
    let (s, v) = t.call(Method::PUT, &path, Some(&sup), Some(update)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["body"], "Gentile {{citizen.name}},\n\ntesto nuovo.");
    assert!(v["updated_by"].is_string());
    let (s, trail) = t
        .get(
            &format!("/api/v1/audit?entity_type=prepared_answer&entity_id={id}"),
            &t.admin_token,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{trail}");
    let items = trail["items"].as_array().unwrap();
    assert!(
        items.iter().any(|r| r["action"] == "answer.updated"),
        "{trail}"
    );
    assert!(!trail.to_string().contains("testo nuovo"));
    // Front office reads the new text.
    let found = list(&t, &fo, &format!("q={}", enc("testo nuovo"))).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["id"], id);
}

async fn edits_and_deactivations_survive_a_restart(t: TestApp) {
    let (_, sup) = t.user("sup1", &["supervisor"]).await;
    let before = list(&t, &sup, "include_inactive=true").await.len();
    let edited = find(&t, "income_support_documents", "it").await;
    let removed = find(&t, "social_voucher_documents", "en").await;
    let (s, _) = t
        .call(
            Method::PUT,
            &format!("/api/v1/answers/{}", edited["id"].as_str().unwrap()),
            Some(&sup),
            Some(json!({"measure": "income_support", "topic": "documents",
                        "title": "Sostegno al reddito: documenti (aggiornato)",
                        "subject": "Documenti – {{ticket.number}}",
                        "body": "Gentile {{citizen.name}},\n\nelenco aggiornato dall'ufficio.\n\n{{operator.name}}"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = t
        .call(
            Method::DELETE,
            &format!("/api/v1/answers/{}", removed["id"].as_str().unwrap()),
            Some(&sup),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["active"], false);
    assert!(
        !list(&t, &sup, "lang=en&measure=social_voucher")
            .await
            .iter()
            .any(|a| a["id"] == removed["id"])
    );

    // Another start on the same database runs the seeding again.
    let again = TestApp::spawn_on(&t.database_url, None).await;
    let token = again.login("sup1", "sup1-password").await;
    assert_eq!(
        list(&again, &token, "include_inactive=true").await.len(),
        before
    );
    let e = find(&again, "income_support_documents", "it").await;
    assert_eq!(e["title"], "Sostegno al reddito: documenti (aggiornato)");
    assert!(e["body"].as_str().unwrap().contains("elenco aggiornato"));
    let r = find(&again, "social_voucher_documents", "en").await;
    assert_eq!(r["active"], false);

    // Reactivation is an edit like any other.
    let mut back = json!({"measure": r["measure"], "topic": r["topic"], "title": r["title"],
                          "subject": r["subject"], "body": r["body"], "active": true});
    back["title"] = json!("Social vouchers: documents");
    let (s, v) = again
        .call(
            Method::PUT,
            &format!("/api/v1/answers/{}", r["id"].as_str().unwrap()),
            Some(&token),
            Some(back),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["active"], true);
}
