//! Routing and SLAs end to end: rules decide tier and policy, the router pushes tickets to
//! eligible operators within capacity, presence changes release work, escalation moves tickets
//! between tiers, and several instances never assign a ticket twice.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

on_both_backends!(
    tickets_reach_the_right_operator_with_an_sla,
    capacity_holds_and_going_offline_releases_work,
    escalation_moves_tickets_between_tiers,
    supervisors_assign_by_hand,
    rules_dry_run_and_validated_edits,
    sla_pauses_while_waiting_on_the_citizen,
    several_instances_never_assign_twice,
    a_waiting_ticket_reclassified_needs_the_skills_of_its_new_measure,
);

/// Polls a ticket until `done` holds (the router works asynchronously, pushed by events).
async fn until(t: &TestApp, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        let (_, v) = t
            .get(&format!("/api/v1/tickets/{id}"), &t.admin_token)
            .await;
        if done(&v) {
            return v;
        }
        last = v;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached; last state: {last}");
}

async fn tickets_reach_the_right_operator_with_an_sla(t: TestApp) {
    let (front, _) = t.available_operator("front1", &["front_office"], json!({"tiers": ["front_office"], "skills": {"income_support": 3}, "capacity": {"email": 4, "phone": 1}})).await;
    let (back, _) = t.available_operator(
        "back1",
        &["back_office"],
        json!({"tiers": ["back_office"], "skills": {"complaints": 3}, "capacity": {"email": 4}}),
    )
    .await;

    let question = t.ticket(&t.admin_token, json!({"channel": "email", "subject": "Requisiti sostegno", "category": "eligibility", "measure": "income_support"})).await;
    let complaint = t
        .ticket(
            &t.admin_token,
            json!({"channel": "email", "subject": "Tempi troppo lunghi", "category": "complaint"}),
        )
        .await;

    let q = until(&t, question["id"].as_str().unwrap(), |v| {
        v["assignee_id"].is_string()
    })
    .await;
    assert_eq!(q["assignee_id"], front.as_str());
    assert_eq!(q["status"], "assigned");
    assert_eq!(q["tier"], "front_office");
    assert_eq!(q["sla"]["state"], "ok");
    assert!(q["sla"]["first_response_due"].is_string(), "{q}");
    assert!(q["waiting_reason"].is_null());

    // The complaint rule sends it to the back office with the complaints policy.
    let c = until(&t, complaint["id"].as_str().unwrap(), |v| {
        v["assignee_id"].is_string()
    })
    .await;
    assert_eq!(c["tier"], "back_office");
    assert_eq!(c["assignee_id"], back.as_str());
    assert_eq!(c["sla"]["policy"], "complaint");
    let timeline = c["timeline"].as_array().unwrap();
    assert!(
        timeline
            .iter()
            .any(|e| e["kind"] == "system" && e["meta"]["by"] == "router"),
        "{c}"
    );
}

async fn capacity_holds_and_going_offline_releases_work(t: TestApp) {
    let (a, a_token) = t
        .available_operator(
            "opa",
            &["front_office"],
            json!({"tiers": ["front_office"], "capacity": {"email": 2}}),
        )
        .await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            t.ticket(
                &t.admin_token,
                json!({"channel": "email", "subject": format!("richiesta {i}")}),
            )
            .await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // Two are assigned, two wait because everyone is at capacity.
    let mut assigned = 0;
    for id in &ids {
        let v = until(&t, id, |v| {
            v["assignee_id"].is_string() || v["waiting_reason"]["code"].is_string()
        })
        .await;
        if v["assignee_id"] == a.as_str() {
            assigned += 1;
        } else {
            assert_eq!(v["waiting_reason"]["code"], "everyone_at_capacity", "{v}");
        }
    }
    assert_eq!(assigned, 2);
    let (_, count) = t
        .get(
            &format!("/api/v1/tickets/count?assignee={a}"),
            &t.admin_token,
        )
        .await;
    assert_eq!(count["count"], 2);

    // A second operator arrives; then the first goes offline: their unstarted work moves.
    let (b, _) = t
        .available_operator(
            "opb",
            &["front_office"],
            json!({"tiers": ["front_office"], "capacity": {"email": 4}}),
        )
        .await;
    let (status, _) = t
        .call(
            Method::PUT,
            &format!("/api/v1/users/{a}/presence"),
            Some(&a_token),
            Some(json!({"state": "offline"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    for id in &ids {
        let v = until(&t, id, |v| v["assignee_id"] == b.as_str()).await;
        assert_eq!(v["status"], "assigned");
    }
    let (_, ops) = t.get("/api/v1/routing/operators", &t.admin_token).await;
    let by_name: HashMap<&str, &Value> = ops["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["username"].as_str().unwrap(), o))
        .collect();
    assert_eq!(by_name["opa"]["presence"], "offline");
    assert_eq!(by_name["opb"]["load"]["email"], 4);
    // A started ticket is not taken away when its operator goes on break.
    let (_, b_token) = (b.clone(), t.login("opb", "opb-password").await);
    t.post(
        &format!("/api/v1/tickets/{}/transitions", ids[0]),
        &b_token,
        json!({"to": "open"}),
    )
    .await;
    t.call(
        Method::PUT,
        &format!("/api/v1/users/{b}/presence"),
        Some(&b_token),
        Some(json!({"state": "break"})),
    )
    .await;
    let v = until(&t, &ids[0], |v| v["status"] == "open").await;
    assert_eq!(v["assignee_id"], b.as_str());
    let v = until(&t, &ids[1], |v| v["assignee_id"].is_null()).await;
    assert_eq!(v["status"], "new");
}

async fn escalation_moves_tickets_between_tiers(t: TestApp) {
    let (front, front_token) = t
        .available_operator(
            "frontx",
            &["front_office"],
            json!({"tiers": ["front_office"], "capacity": {"phone": 1, "email": 5}}),
        )
        .await;
    let (back, back_token) = t
        .available_operator(
            "backx",
            &["back_office"],
            json!({"tiers": ["back_office"], "capacity": {"phone": 1, "email": 5}}),
        )
        .await;
    let tk = t.ticket(&front_token, json!({"channel": "email", "subject": "Pagamento non arrivato", "category": "payments"})).await;
    let id = tk["id"].as_str().unwrap();
    until(&t, id, |v| v["assignee_id"] == front.as_str()).await;

    let (status, body) = t
        .post(
            &format!("/api/v1/tickets/{id}/escalate"),
            &front_token,
            json!({"tier": "back_office", "reason": ""}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "reason");
    let (status, body) = t
        .post(
            &format!("/api/v1/tickets/{id}/escalate"),
            &front_token,
            json!({"tier": "back_office", "reason": "Verifica del mandato di pagamento"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tier"], "back_office");
    let v = until(&t, id, |v| v["assignee_id"] == back.as_str()).await;
    let esc = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["meta"]["to_tier"] == "back_office")
        .unwrap();
    assert_eq!(esc["meta"]["reason"], "Verifica del mandato di pagamento");
    // Front office no longer sees it; the back office answers and sends it back.
    let (status, _) = t.get(&format!("/api/v1/tickets/{id}"), &front_token).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = t
        .post(
            &format!("/api/v1/tickets/{id}/escalate"),
            &back_token,
            json!({"tier": "front_office", "reason": "Pagamento disposto il 3/3"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let v = until(&t, id, |v| v["assignee_id"] == front.as_str()).await;
    assert_eq!(v["tier"], "front_office");
}

async fn supervisors_assign_by_hand(t: TestApp) {
    let (op, op_token) = t.user("manuale", &["front_office"]).await;
    let (_, sup) = t.user("capoturno", &["supervisor"]).await;
    let (back_only, _) = t.user("soloback", &["back_office"]).await;
    let tk = t
        .ticket(
            &op_token,
            json!({"channel": "phone", "subject": "Richiamare"}),
        )
        .await;
    let id = tk["id"].as_str().unwrap();
    let (status, _) = t
        .post(
            &format!("/api/v1/tickets/{id}/assign"),
            &op_token,
            json!({"user_id": op}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = t
        .post(
            &format!("/api/v1/tickets/{id}/assign"),
            &sup,
            json!({"user_id": back_only}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = t
        .post(
            &format!("/api/v1/tickets/{id}/assign"),
            &sup,
            json!({"user_id": op}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["assignee_id"], op.as_str());
    assert_eq!(body["status"], "assigned");
}

async fn rules_dry_run_and_validated_edits(t: TestApp) {
    let (status, d) = t
        .post(
            "/api/v1/routing/dry-run",
            &t.admin_token,
            json!({"channel": "email", "subject": "Vorrei fare un reclamo"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(d["rule"], "complaints_by_keyword");
    assert_eq!(d["tier"], "back_office");
    assert_eq!(d["sla_policy"], "complaint");
    assert!(!d["tried"].as_array().unwrap().is_empty());

    let (status, doc) = t.get("/api/v1/routing/rules", &t.admin_token).await;
    assert_eq!(status, StatusCode::OK);
    let toml = doc["toml"].as_str().unwrap().to_owned();
    // A broken file is refused naming the problem, and nothing changes.
    let broken = toml.replace("sla_policy = \"complaint\"", "sla_policy = \"nonexistent\"");
    let (status, body) = t
        .call(
            Method::PUT,
            "/api/v1/routing/rules",
            Some(&t.admin_token),
            Some(json!({"toml": broken})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["detail"].as_str().unwrap().contains("nonexistent"),
        "{body}"
    );
    // A valid edit takes effect at once.
    let edited = toml.replace(
        "keywords = [\"reclamo\"",
        "keywords = [\"protesta\", \"reclamo\"",
    );
    assert_ne!(edited, toml);
    let (status, body) = t
        .call(
            Method::PUT,
            "/api/v1/routing/rules",
            Some(&t.admin_token),
            Some(json!({"toml": edited})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, d) = t
        .post(
            "/api/v1/routing/dry-run",
            &t.admin_token,
            json!({"channel": "web", "subject": "una protesta formale"}),
        )
        .await;
    assert_eq!(d["rule"], "complaints_by_keyword");
    let (_, op) = t.user("nonadmin", &["supervisor"]).await;
    let (status, _) = t
        .call(
            Method::PUT,
            "/api/v1/routing/rules",
            Some(&op),
            Some(json!({"toml": edited})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

async fn sla_pauses_while_waiting_on_the_citizen(t: TestApp) {
    let (_, op) = t.user("slaop", &["front_office"]).await;
    let tk = t
        .ticket(
            &op,
            json!({"channel": "email", "subject": "Documenti ISEE", "category": "isee"}),
        )
        .await;
    let id = tk["id"].as_str().unwrap();
    let v = until(&t, id, |v| v["sla"].is_object()).await;
    assert_eq!(v["sla"]["policy"], "email");
    t.post(
        &format!("/api/v1/tickets/{id}/transitions"),
        &op,
        json!({"to": "open"}),
    )
    .await;
    let (_, v) = t
        .post(
            &format!("/api/v1/tickets/{id}/transitions"),
            &op,
            json!({"to": "waiting_citizen", "reason": "Manca la DSU"}),
        )
        .await;
    assert_eq!(v["sla"]["state"], "paused", "{v}");
    let (_, v) = t
        .post(
            &format!("/api/v1/tickets/{id}/transitions"),
            &op,
            json!({"to": "open"}),
        )
        .await;
    assert_ne!(v["sla"]["state"], "paused", "{v}");
    let (_, v) = t
        .post(
            &format!("/api/v1/tickets/{id}/transitions"),
            &op,
            json!({"to": "resolved"}),
        )
        .await;
    assert!(
        v["sla"]["resolution_due"].is_null() || v["sla"]["state"] == "ok",
        "{v}"
    );
}

async fn several_instances_never_assign_twice(t: TestApp) {
    // A second and third instance share the database, each with its own router.
    let b = TestApp::spawn_on(&t.database_url, None).await;
    let c = TestApp::spawn_on(&t.database_url, None).await;
    let mut ops = Vec::new();
    for i in 0..5 {
        ops.push(
            t.available_operator(
                &format!("conc{i}"),
                &["front_office"],
                json!({"tiers": ["front_office"], "capacity": {"web": 7}}),
            )
            .await
            .0,
        );
    }
    let instances = [&t, &b, &c];
    let mut tasks = Vec::new();
    for i in 0..90 {
        let inst = instances[i % 3];
        let (client, url, token) = (
            inst.client.clone(),
            inst.url("/api/v1/tickets"),
            inst.admin_token.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let res = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"channel": "web", "subject": format!("modulo {i}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 201);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // Let every router settle.
    let mut assigned = 0;
    for _ in 0..100 {
        let (_, n) = t
            .get("/api/v1/tickets/count?status=assigned", &t.admin_token)
            .await;
        assigned = n["count"].as_u64().unwrap();
        if assigned == 35 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, n) = t
        .get("/api/v1/tickets/count?status=assigned", &t.admin_token)
        .await;
    assert_eq!(n["count"], 35, "5 operators × capacity 7 (was {assigned})");
    for op in &ops {
        let (_, n) = t
            .get(
                &format!("/api/v1/tickets/count?assignee={op}"),
                &t.admin_token,
            )
            .await;
        assert_eq!(n["count"], 7, "operator {op} holds exactly their capacity");
    }
    // Each ticket was assigned at most once: one router entry on its timeline.
    let (_, page) = t
        .get("/api/v1/tickets?status=assigned&limit=200", &t.admin_token)
        .await;
    for item in page["items"].as_array().unwrap() {
        let (_, v) = t
            .get(
                &format!("/api/v1/tickets/{}", item["id"].as_str().unwrap()),
                &t.admin_token,
            )
            .await;
        let n = v["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["meta"]["by"] == "router")
            .count();
        assert_eq!(n, 1, "{v}");
    }
}

/// A request first filed under income support, then recognised as a B2 (disability) one while
/// it waits: it needs the disability skill now, so a generalist does not get it and the
/// operator who has the skill does.
async fn a_waiting_ticket_reclassified_needs_the_skills_of_its_new_measure(t: TestApp) {
    let tk = t
        .ticket(
            &t.admin_token,
            json!({"channel": "email", "subject": "Domanda di contributo", "measure": "income_support"}),
        )
        .await;
    let id = tk["id"].as_str().unwrap();
    until(&t, id, |v| v["sla"].is_object()).await;

    let (status, v) = t
        .call(
            Method::PUT,
            &format!("/api/v1/tickets/{id}/classification"),
            Some(&t.admin_token),
            Some(json!({"measure": "b2"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let v = until(&t, id, |v| v["measure"] == "b2").await;
    let change = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["meta"]["classification"]["measure"]["to"] == "b2")
        .cloned()
        .unwrap_or_else(|| panic!("no classification entry: {v}"));
    let routing = &change["meta"]["classification"]["routing"];
    assert_eq!(routing["rule"]["to"], "disability_measures", "{change}");
    assert_eq!(
        routing["skills"]["to"],
        json!({"disability": 2}),
        "{change}"
    );
    assert!(
        change["body"].as_str().unwrap().contains("disability 2"),
        "{change}"
    );

    // A generalist becomes available: the ticket waits for the skill it needs now.
    t.available_operator(
        "generalista",
        &["front_office"],
        json!({"tiers": ["front_office"], "skills": {}, "capacity": {"email": 4}}),
    )
    .await;
    let v = until(&t, id, |v| {
        v["assignee_id"].is_string() || v["waiting_reason"]["code"] == "no_one_with_skills"
    })
    .await;
    assert!(v["assignee_id"].is_null(), "given to the generalist: {v}");

    let (specialist, _) = t
        .available_operator(
            "esperta_b2",
            &["front_office"],
            json!({"tiers": ["front_office"], "skills": {"disability": 2}, "capacity": {"email": 4}}),
        )
        .await;
    let v = until(&t, id, |v| v["assignee_id"].is_string()).await;
    assert_eq!(v["assignee_id"], specialist.as_str());
}
