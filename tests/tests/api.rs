//! The foundation's API suite, run on SQLite and on PostgreSQL: tickets, citizens, users,
//! authentication, authorisation and errors, through real HTTP.

mod common;

use std::collections::HashSet;

use common::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

on_both_backends!(
    health_and_readiness,
    login_and_token_rules,
    roles_are_enforced,
    ticket_lifecycle_through_the_status_machine,
    listing_filters_and_cursor_pages,
    bad_input_is_named,
    citizens_are_found_and_deduplicated,
    timeline_notes_and_audit_trail,
    ticket_numbers_are_unique_under_concurrency,
    users_can_be_changed_and_deactivated,
    openapi_document_describes_the_api,
    domain_events_follow_commits,
);

async fn health_and_readiness(t: TestApp) {
    let res = t.client.get(t.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = t.client.get(t.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["checks"]["database"], "ok");
}

async fn login_and_token_rules(t: TestApp) {
    // Wrong password and unknown user both get the same 401.
    for (u, p) in [("admin", "wrong-password"), ("nobody", "whatever-password")] {
        let (status, body) = t
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": u, "password": p})),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["type"], "/problems/bad-credentials");
    }
    // The login answer carries the contract's fields and a session cookie.
    let res = t
        .client
        .post(t.url("/api/v1/auth/login"))
        .json(&json!({"username": "admin", "password": common::ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = res
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let body: Value = res.json().await.unwrap();
    assert!(body["expires_at"].is_string());
    assert_eq!(body["user"]["username"], "admin");
    let token = body["token"].as_str().unwrap().to_owned();

    // No token, a garbage token: 401 with a problem document.
    let (status, body) = t.call(Method::GET, "/api/v1/tickets", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["status"], 401);
    let (status, _) = t.get("/api/v1/tickets", "not-a-token").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, me) = t.get("/api/v1/auth/me", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["roles"], json!(["admin"]));
    // After logout the token is dead.
    let (status, _) = t
        .call(Method::POST, "/api/v1/auth/logout", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = t.get("/api/v1/auth/me", &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn roles_are_enforced(t: TestApp) {
    let (_, front) = t.user("mrossi", &["front_office"]).await;
    let (_, back) = t.user("lbianchi", &["back_office"]).await;

    // Only admins manage users.
    let (status, body) = t
        .post("/api/v1/users", &front, json!({"username": "x1234", "password": "long-enough-pw", "name": "X", "roles": ["admin"]}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("admin"));

    // Front office cannot see back-office tickets, by id, by list or by filter.
    let ticket = t.ticket(&back, json!({"channel": "internal", "subject": "Verifica pagamento B2", "tier": "back_office", "measure": "b2"})).await;
    let id = ticket["id"].as_str().unwrap();
    let (status, _) = t.get(&format!("/api/v1/tickets/{id}"), &front).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, page) = t.get("/api/v1/tickets", &front).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["tier"] == "front_office")
    );
    let (status, _) = t.get("/api/v1/tickets?tier=back_office", &front).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = t
        .post(
            &format!("/api/v1/tickets/{id}/entries"),
            &front,
            json!({"kind": "note", "body": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // ...and cannot open one there either.
    let (status, _) = t
        .post(
            "/api/v1/tickets",
            &front,
            json!({"channel": "phone", "subject": "x", "tier": "back_office"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The back office sees it.
    let (status, _) = t.get(&format!("/api/v1/tickets/{id}"), &back).await;
    assert_eq!(status, StatusCode::OK);
    // An account with only the admin role cannot read the audit trail of a supervisor? It can:
    // admins and supervisors both may; operators may not.
    let (status, _) = t.get("/api/v1/audit", &front).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

async fn ticket_lifecycle_through_the_status_machine(t: TestApp) {
    let (op_id, op) = t.user("operatore1", &["front_office"]).await;
    let created = t
        .ticket(
            &op,
            json!({
                "channel": "phone",
                "subject": "Informazioni sul sostegno al reddito",
                "body": "La cittadina chiede se può presentare domanda con ISEE di 5.800 €.",
                "category": "eligibility",
                "measure": "income_support",
                "tags": ["Prima-Chiamata"],
                "citizen": {"name": "Lucia Verdi", "codice_fiscale": "VRDLCU80A41F205N", "phones": ["347 111 2233"]}
            }),
        )
        .await;
    let number = created["number"].as_str().unwrap();
    let year = chrono::Utc::now().format("%Y").to_string();
    assert!(
        number.starts_with(&format!("SP-{year}-")) && number.len() == 14,
        "{number}"
    );
    assert_eq!(created["status"], "new");
    assert_eq!(created["tier"], "front_office");
    assert_eq!(created["tags"], json!(["prima-chiamata"]));
    assert_eq!(created["citizen"]["name"], "Lucia Verdi");
    let id = created["id"].as_str().unwrap();

    // Read back with the timeline holding the request.
    let (status, got) = t.get(&format!("/api/v1/tickets/{id}"), &op).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["number"], number);
    let timeline = got["timeline"].as_array().unwrap();
    assert_eq!(timeline.len(), 1);
    assert_eq!(timeline[0]["kind"], "inbound");
    assert!(timeline[0]["body"].as_str().unwrap().contains("5.800 €"));

    // Taking it assigns it to the operator; then the full path to closed.
    let path = [
        ("assigned", None),
        ("open", None),
        ("waiting_citizen", Some("Attendo l'ISEE aggiornato")),
        ("open", None),
        ("resolved", Some("Informazioni date")),
        ("closed", None),
    ];
    for (to, reason) in path {
        let (status, body) = t
            .post(
                &format!("/api/v1/tickets/{id}/transitions"),
                &op,
                json!({"to": to, "reason": reason}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "to {to}: {body}");
        assert_eq!(body["status"], to);
        if to == "assigned" {
            assert_eq!(body["assignee_id"], op_id.as_str());
        }
        if to == "resolved" {
            assert!(body["resolved_at"].is_string() && body["first_response_at"].is_string());
        }
    }
    // Closed is final: the 409 says so.
    let (status, body) = t
        .post(
            &format!("/api/v1/tickets/{id}/transitions"),
            &op,
            json!({"to": "open"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("'closed' to 'open'"),
        "{body}"
    );

    // Every transition is on the timeline with its reason.
    let (_, got) = t.get(&format!("/api/v1/tickets/{id}"), &op).await;
    let system: Vec<&Value> = got["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "system")
        .collect();
    assert_eq!(system.len(), path.len());
    assert_eq!(system[2]["meta"]["reason"], "Attendo l'ISEE aggiornato");
    assert_eq!(system[2]["author_name"], "Operatore operatore1");

    // An invalid jump on a fresh ticket names what is allowed.
    let other = t
        .ticket(&op, json!({"channel": "email", "subject": "Altro"}))
        .await;
    let (status, body) = t
        .post(
            &format!(
                "/api/v1/tickets/{}/transitions",
                other["id"].as_str().unwrap()
            ),
            &op,
            json!({"to": "closed"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("assigned, open, resolved"),
        "{body}"
    );
    // Unknown ticket: 404.
    let (status, _) = t
        .post(
            &format!("/api/v1/tickets/{}/transitions", uuid::Uuid::now_v7()),
            &op,
            json!({"to": "open"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn listing_filters_and_cursor_pages(t: TestApp) {
    let (op_id, op) = t.user("operatore2", &["front_office", "back_office"]).await;
    let citizen = t
        .post(
            "/api/v1/citizens",
            &op,
            json!({"name": "Anna Rossi", "emails": ["anna.rossi@example.org"]}),
        )
        .await
        .1;
    let cid = citizen["id"].as_str().unwrap();
    let mut expected_email = 0;
    for i in 0..23 {
        let channel = ["phone", "email", "counter"][i % 3];
        if channel == "email" {
            expected_email += 1;
        }
        let mut body = json!({"channel": channel, "subject": format!("Pratica numero {i}"), "category": if i % 2 == 0 { "payments" } else { "isee" }});
        if i < 5 {
            body["citizen_id"] = json!(cid);
        }
        if i == 7 {
            body["tier"] = json!("back_office");
        }
        t.ticket(&op, body).await;
    }
    let special = t
        .ticket(
            &op,
            json!({"channel": "web", "subject": "Cambio IBAN per il PAGAMENTO"}),
        )
        .await;
    let sid = special["id"].as_str().unwrap();
    t.post(
        &format!("/api/v1/tickets/{sid}/transitions"),
        &op,
        json!({"to": "assigned"}),
    )
    .await;

    let count = |q: &'static str| {
        let t = &t;
        let op = op.clone();
        async move {
            let (status, body) = t.get(&format!("/api/v1/tickets/count?{q}"), &op).await;
            assert_eq!(status, StatusCode::OK, "{q}: {body}");
            body["count"].as_u64().unwrap()
        }
    };
    assert_eq!(count("").await, 24);
    assert_eq!(count("channel=email").await, expected_email);
    assert_eq!(count("tier=back_office").await, 1);
    assert_eq!(count("category=payments").await, 12);
    assert_eq!(count("status=new").await, 23);
    assert_eq!(count("status=new,assigned").await, 24);
    assert_eq!(count("assignee=none").await, 23);
    assert_eq!(count(&*format!("assignee={op_id}").leak()).await, 1);
    assert_eq!(count(&*format!("citizen_id={cid}").leak()).await, 5);
    assert_eq!(count("q=pagamento").await, 1);
    assert_eq!(
        count(&*format!("q={}", special["number"].as_str().unwrap()).leak()).await,
        1
    );
    assert_eq!(count("q=100%25").await, 0);

    // Pages of 10, newest first, with no gaps or repeats, while a ticket arrives mid-way.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let q = match &cursor {
            Some(c) => format!("/api/v1/tickets?limit=10&cursor={c}"),
            None => "/api/v1/tickets?limit=10".to_owned(),
        };
        let (status, page) = t.get(&q, &op).await;
        assert_eq!(status, StatusCode::OK);
        for item in page["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        pages += 1;
        if pages == 1 {
            t.ticket(
                &op,
                json!({"channel": "phone", "subject": "arrivato durante la paginazione"}),
            )
            .await;
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 24);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 24);
    assert_eq!(seen[0], sid, "newest first");
    // Oldest first is queue order.
    let (_, page) = t.get("/api/v1/tickets?order=asc&limit=1", &op).await;
    assert_eq!(page["items"][0]["subject"], "Pratica numero 0");
}

async fn bad_input_is_named(t: TestApp) {
    let token = t.admin_token.clone();
    // Malformed JSON: 400.
    let res = t
        .client
        .post(t.url("/api/v1/tickets"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"channel\": \"phone\", ")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["type"], "/problems/malformed-json");

    // Missing field: 422 naming it.
    let (status, body) = t
        .post("/api/v1/tickets", &token, json!({"channel": "phone"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "subject", "{body}");

    // Several wrong fields at once, each named.
    let (status, body) = t
        .post(
            "/api/v1/tickets",
            &token,
            json!({"channel": "fax", "subject": "  ", "category": "weather", "priority": "asap",
                   "citizen": {"name": "Mario", "codice_fiscale": "RSSMRA85T10A562X", "emails": ["not-an-address"]}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: HashSet<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for f in [
        "channel",
        "subject",
        "category",
        "priority",
        "citizen.codice_fiscale",
        "citizen.emails[0]",
    ] {
        assert!(fields.contains(f), "{f} not named in {body}");
    }
    let cf_msg = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["field"] == "citizen.codice_fiscale")
        .unwrap();
    assert!(
        cf_msg["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("check"),
        "{cf_msg}"
    );

    // A wrong codice fiscale on a citizen, a bad query parameter, a bad path id, wrong media type.
    let (status, body) = t
        .post(
            "/api/v1/citizens",
            &token,
            json!({"name": "Mario Rossi", "codice_fiscale": "RSSMRA85T10A562"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "codice_fiscale");
    let (status, body) = t.get("/api/v1/tickets?status=pending", &token).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "status");
    let (status, _) = t.get("/api/v1/tickets?limit=100000", &token).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = t.get("/api/v1/tickets/not-a-uuid", &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let res = t
        .client
        .post(t.url("/api/v1/tickets"))
        .bearer_auth(&token)
        .body("channel=phone")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    // An oversized body is refused, not read into memory. The server then closes the
    // connection (the rest of the body is never read), so this request asks for a connection
    // of its own: otherwise the client's pool may hand the closing one to the next request.
    let huge = "x".repeat(3 * 1024 * 1024);
    let res = t
        .client
        .post(t.url("/api/v1/tickets"))
        .bearer_auth(&token)
        .header(reqwest::header::CONNECTION, "close")
        .json(&json!({"channel": "phone", "subject": "big", "body": huge}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Unknown routes are problems too.
    let (status, _) = t.get("/api/v1/nothing-here", &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn citizens_are_found_and_deduplicated(t: TestApp) {
    let (_, op) = t.user("operatore3", &["front_office"]).await;
    let first15 = "SPSGPP70C15F205";
    let check = sportello_domain::CodiceFiscale::check_character(first15).unwrap();
    let cf = format!("{first15}{check}");
    let (status, c) = t
        .post(
            "/api/v1/citizens",
            &op,
            json!({"name": "Giuseppe Esposito", "codice_fiscale": cf.to_lowercase(), "emails": ["G.Esposito@Example.ORG"], "phones": ["0039 333 9876543"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    assert_eq!(c["codice_fiscale"], cf.as_str());
    let id = c["id"].as_str().unwrap();
    assert_eq!(c["emails"], json!(["G.Esposito@example.org"]));
    assert_eq!(c["phones"], json!(["+393339876543"]));

    // Found by codice fiscale (any case), e-mail, phone in another shape, or part of the name.
    for q in [
        cf.to_lowercase(),
        "G.Esposito@EXAMPLE.org".into(),
        "+39 333 987 6543".into(),
        "esPOSit".into(),
    ] {
        let (status, found) = t
            .get(&format!("/api/v1/citizens?q={}", urlencode(&q)), &op)
            .await;
        assert_eq!(status, StatusCode::OK, "{q}");
        let ids: Vec<&str> = found["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, vec![id], "search {q}");
    }
    let (status, _) = t.get("/api/v1/citizens?q=x", &op).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // The same codice fiscale twice is a conflict naming the existing citizen.
    let (status, body) = t
        .post(
            "/api/v1/citizens",
            &op,
            json!({"name": "Altro", "codice_fiscale": cf}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["detail"].as_str().unwrap().contains(id));

    // A ticket whose requester gives the same phone joins that citizen, adding the new e-mail.
    let ticket = t
        .ticket(&op, json!({"channel": "phone", "subject": "Stato domanda", "citizen": {"name": "G. Esposito", "phones": ["333 9876543"], "emails": ["nuovo@example.org"]}}))
        .await;
    assert_eq!(ticket["citizen_id"], id);
    let (status, detail) = t.get(&format!("/api/v1/citizens/{id}"), &op).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["tickets"].as_array().unwrap().len(), 1);
    assert!(
        detail["emails"]
            .as_array()
            .unwrap()
            .contains(&json!("nuovo@example.org"))
    );
    // An unknown requester becomes a new citizen.
    let ticket = t.ticket(&op, json!({"channel": "email", "subject": "x", "citizen": {"name": "Nuova Persona", "emails": ["np@example.org"]}})).await;
    assert_ne!(ticket["citizen_id"], id);
    // A citizen_id that does not exist is named.
    let (status, body) = t
        .post(
            "/api/v1/tickets",
            &op,
            json!({"channel": "phone", "subject": "x", "citizen_id": uuid::Uuid::now_v7()}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "citizen_id");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn timeline_notes_and_audit_trail(t: TestApp) {
    let (op_id, op) = t.user("operatore4", &["front_office"]).await;
    let (_, sup) = t.user("supervisore", &["supervisor"]).await;
    let ticket = t.ticket(&op, json!({"channel": "counter", "subject": "Documenti consegnati", "citizen": {"name": "Paolo Neri"}})).await;
    let id = ticket["id"].as_str().unwrap();
    let (status, note) = t
        .post(
            &format!("/api/v1/tickets/{id}/entries"),
            &op,
            json!({"kind": "note", "body": "Manca il modello ISEE"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(note["author_id"], op_id.as_str());
    let (status, body) = t
        .post(
            &format!("/api/v1/tickets/{id}/entries"),
            &op,
            json!({"kind": "outbound", "body": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = t
        .post(
            &format!("/api/v1/tickets/{id}/entries"),
            &op,
            json!({"kind": "note", "body": " "}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (_, got) = t.get(&format!("/api/v1/tickets/{id}"), &sup).await;
    let notes: Vec<&Value> = got["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "note")
        .collect();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["body"], "Manca il modello ISEE");

    // The trail says who created, annotated and viewed it.
    let (status, trail) = t
        .get(
            &format!("/api/v1/audit?entity_type=ticket&entity_id={id}"),
            &sup,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let actions: Vec<(String, String)> = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_owned(),
                r["actor_id"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert!(
        actions.contains(&("ticket.created".into(), op_id.clone())),
        "{actions:?}"
    );
    assert!(actions.contains(&("ticket.note_added".into(), op_id.clone())));
    assert!(
        actions
            .iter()
            .any(|(a, who)| a == "ticket.viewed" && who != &op_id)
    );
    // The citizen's creation and viewing are on the trail too.
    let cid = ticket["citizen_id"].as_str().unwrap();
    t.get(&format!("/api/v1/citizens/{cid}"), &op).await;
    let (_, trail) = t
        .get(
            &format!("/api/v1/audit?entity_type=citizen&entity_id={cid}"),
            &sup,
        )
        .await;
    let actions: Vec<&str> = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"citizen.created") && actions.contains(&"citizen.viewed"),
        "{actions:?}"
    );
}

async fn ticket_numbers_are_unique_under_concurrency(t: TestApp) {
    let (_, op) = t.user("operatore5", &["front_office"]).await;
    let mut tasks = Vec::new();
    for i in 0..60 {
        let (client, url, op) = (t.client.clone(), t.url("/api/v1/tickets"), op.clone());
        tasks.push(tokio::spawn(async move {
            let res = client
                .post(url)
                .bearer_auth(op)
                .json(&json!({"channel": "web", "subject": format!("n{i}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 201);
            res.json::<Value>().await.unwrap()["number"]
                .as_str()
                .unwrap()
                .to_owned()
        }));
    }
    let mut numbers = HashSet::new();
    for task in tasks {
        assert!(
            numbers.insert(task.await.unwrap()),
            "duplicate ticket number"
        );
    }
    assert_eq!(numbers.len(), 60);
    // A second instance on the same database never hands out the same numbers.
    let other = TestApp::spawn_on(&t.database_url, None).await;
    for i in 0..25 {
        let a = t
            .ticket(&op, json!({"channel": "web", "subject": format!("a{i}")}))
            .await;
        let b = other
            .ticket(
                &other.admin_token,
                json!({"channel": "web", "subject": format!("b{i}")}),
            )
            .await;
        assert!(numbers.insert(a["number"].as_str().unwrap().to_owned()));
        assert!(numbers.insert(b["number"].as_str().unwrap().to_owned()));
    }
}

async fn users_can_be_changed_and_deactivated(t: TestApp) {
    let (id, token) = t.user("temporaneo", &["counter"]).await;
    let (status, _) = t.get("/api/v1/tickets", &token).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = t.post("/api/v1/users", &t.admin_token, json!({"username": "temporaneo", "password": "another-password", "name": "Dup", "roles": ["counter"]})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = t
        .post(
            "/api/v1/users",
            &t.admin_token,
            json!({"username": "Bad Name", "password": "short", "name": "", "roles": ["boss"]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: HashSet<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        HashSet::from(["username", "password", "name", "roles[0]"])
    );

    let (status, u) = t
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{id}"),
            Some(&t.admin_token),
            Some(json!({"roles": ["counter", "front_office"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{u}");
    assert_eq!(u["roles"], json!(["front_office", "counter"]));
    // Deactivation signs the user out at once and blocks sign-in.
    let (status, _) = t
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{id}"),
            Some(&t.admin_token),
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = t.get("/api/v1/tickets", &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = t
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "temporaneo", "password": "temporaneo-password"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, users) = t.get("/api/v1/users", &t.admin_token).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        users["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u.get("password_hash").is_none())
    );
}

async fn openapi_document_describes_the_api(t: TestApp) {
    let res = t
        .client
        .get(t.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/auth/login",
        "/api/v1/tickets",
        "/api/v1/tickets/{id}/transitions",
        "/api/v1/citizens",
        "/api/v1/users",
        "/healthz",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["schemas"].get("NewTicket").is_some());
    assert!(doc["components"]["securitySchemes"].get("bearer").is_some());
}

async fn domain_events_follow_commits(t: TestApp) {
    use sportello_domain::Status;
    use sportello_domain::event::DomainEvent;
    let mut rx = t.app.bus().subscribe();
    let (op_id, op) = t.user("operatore6", &["front_office"]).await;
    let created = t
        .ticket(
            &op,
            json!({"channel": "email", "subject": "Eventi", "citizen": {"name": "Eva Gialli"}}),
        )
        .await;
    let id: uuid::Uuid = created["id"].as_str().unwrap().parse().unwrap();
    t.post(
        &format!("/api/v1/tickets/{id}/transitions"),
        &op,
        json!({"to": "assigned"}),
    )
    .await;
    // A refused change publishes nothing.
    let (status, _) = t
        .post(
            &format!("/api/v1/tickets/{id}/transitions"),
            &op,
            json!({"to": "closed"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    t.post(
        &format!("/api/v1/tickets/{id}/entries"),
        &op,
        json!({"kind": "note", "body": "n"}),
    )
    .await;

    let mut got = Vec::new();
    while let Ok(Ok(e)) =
        tokio::time::timeout(std::time::Duration::from_millis(500), rx.recv()).await
    {
        got.push((*e).clone());
    }
    assert!(
        matches!(got[0], DomainEvent::CitizenCreated { .. }),
        "{got:?}"
    );
    assert!(
        matches!(&got[1], DomainEvent::TicketCreated { ticket_id, number, .. } if *ticket_id == id && number == created["number"].as_str().unwrap())
    );
    assert!(matches!(
        got[2],
        DomainEvent::TicketTransitioned {
            from: Status::New,
            to: Status::Assigned,
            ..
        }
    ));
    assert!(
        matches!(got[3], DomainEvent::TicketAssigned { assignee_id: Some(a), .. } if a.to_string() == op_id)
    );
    assert!(matches!(got[4], DomainEvent::EntryAdded { .. }));
    assert_eq!(got.len(), 5, "{got:?}");
}
