//! The live dashboard end to end with a real websocket client: a snapshot on connect, deltas
//! with increasing sequence numbers as tickets are created, assigned and resolved through the
//! API, resynchronisation on request, refusal without a token, operators limited to their
//! tiers, SLA figures, and (on PostgreSQL) events crossing from one instance to another.

mod common;

use std::time::{Duration, Instant};

use common::TestApp;
use futures::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

on_both_backends!(
    snapshot_on_connect_then_deltas_in_order,
    resync_on_request,
    refused_without_a_valid_token,
    operators_follow_only_their_tiers,
    http_snapshot_counts_and_sla_figures,
    a_client_that_falls_behind_gets_a_fresh_snapshot,
);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn ws_url(t: &TestApp) -> String {
    format!("{}/api/v1/dashboard/ws", t.base.replace("http://", "ws://"))
}

async fn try_connect(url: &str, auth: Option<(&'static str, String)>) -> Result<Ws, WsError> {
    let mut req = url.into_client_request().unwrap();
    if let Some((name, value)) = auth {
        req.headers_mut()
            .insert(name, HeaderValue::from_str(&value).unwrap());
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

async fn connect(t: &TestApp, token: &str) -> Ws {
    try_connect(
        &ws_url(t),
        Some(("authorization", format!("Bearer {token}"))),
    )
    .await
    .expect("websocket connects")
}

/// A client that checks every numbered message follows the previous one.
struct Client {
    ws: Ws,
    seq: u64,
    seen: Vec<Value>,
}

impl Client {
    async fn new(t: &TestApp, token: &str) -> Client {
        let mut c = Client {
            ws: connect(t, token).await,
            seq: 0,
            seen: Vec::new(),
        };
        let first = c.next().await;
        assert_eq!(
            first["type"], "snapshot",
            "the first message is a snapshot: {first}"
        );
        assert_eq!(first["reason"], "connect");
        c
    }

    /// The next snapshot or delta (heartbeats skipped), within five seconds.
    async fn next(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(5), self.ws.next())
                .await
                .expect("a message within 5 s")
                .expect("the connection stays open")
                .expect("a websocket message");
            let Message::Text(text) = msg else { continue };
            let v: Value = serde_json::from_str(text.as_str()).expect("messages are JSON");
            if v["type"] == "heartbeat" {
                continue;
            }
            let seq = v["seq"].as_u64().expect("numbered message");
            assert_eq!(seq, self.seq + 1, "sequence numbers increase by one: {v}");
            self.seq = seq;
            self.seen.push(v.clone());
            return v;
        }
    }

    /// Reads until a message satisfies `want`.
    async fn until(&mut self, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(8);
        while Instant::now() < deadline {
            let v = self.next().await;
            if want(&v) {
                return v;
            }
        }
        panic!(
            "no {what} within 8 s; saw: {:?}",
            self.seen
                .iter()
                .map(|v| v["type"].to_string() + " " + v["event"].as_str().unwrap_or(""))
                .collect::<Vec<_>>()
        );
    }

    async fn delta(&mut self, event: &str, ticket: &str) -> Value {
        self.until(&format!("{event} delta"), |v| {
            v["type"] == "delta" && v["event"] == event && v["ticket_id"] == ticket
        })
        .await
    }
}

async fn snapshot_on_connect_then_deltas_in_order(t: TestApp) {
    let (op_id, _) = t.user("front1", &["front_office"]).await;
    let mut c = Client::new(&t, &t.admin_token).await;
    let first = &c.seen[0];
    assert_eq!(first["seq"], 1);
    for key in [
        "totals",
        "queues",
        "hourly",
        "operators",
        "sla",
        "at_risk",
        "breached",
        "phone",
    ] {
        assert!(!first[key].is_null(), "snapshot has {key}: {first}");
    }
    assert_eq!(
        first["tiers"],
        json!(["front_office", "back_office"]),
        "supervisors see every tier"
    );
    assert_eq!(first["timezone"], "Europe/Rome");
    assert_eq!(
        first["counter"],
        json!({"visitors_waiting": 0, "desks_open": 0, "no_shows_today": 0})
    );

    let ticket = t
        .ticket(
            &t.admin_token,
            json!({"channel": "email", "subject": "Domanda assegno", "category": "eligibility",
            "citizen": {"name": "Maria Rossi", "emails": ["maria.rossi@example.org"]}}),
        )
        .await;
    let id = ticket["id"].as_str().unwrap();
    let created = c.delta("ticket_created", id).await;
    assert_eq!(created["channel"], "email");
    assert_eq!(created["tier"], "front_office");
    assert_eq!(created["category"], "eligibility");
    assert_eq!(created["number"], ticket["number"]);
    let text = created.to_string();
    assert!(
        !text.contains("Rossi") && !text.contains("maria") && !text.contains("Domanda"),
        "deltas carry no personal data: {text}"
    );

    // A refreshed snapshot follows within a second or so, counting the new ticket.
    let refreshed = c
        .until("refreshed snapshot", |v| {
            v["type"] == "snapshot" && v["totals"]["arrivals_today"] == 1
        })
        .await;
    assert_eq!(refreshed["reason"], "refresh");
    assert_eq!(refreshed["totals"]["waiting"], 1, "{refreshed}");
    let row = refreshed["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["channel"] == "email")
        .cloned()
        .unwrap();
    assert_eq!(
        (row["tier"].as_str(), row["waiting"].as_u64()),
        (Some("front_office"), Some(1))
    );
    assert!(row["oldest_waiting_since"].is_string());

    let (status, body) = t
        .post(
            &format!("/api/v1/tickets/{id}/assign"),
            &t.admin_token,
            json!({"user_id": op_id}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let assigned = c.delta("ticket_assigned", id).await;
    assert_eq!(assigned["assigned"], true);
    assert_eq!(assigned["tier"], "front_office");
    assert!(assigned.get("assignee_id").is_none());

    let (status, body) = t
        .post(
            &format!("/api/v1/tickets/{id}/transitions"),
            &t.admin_token,
            json!({"to": "resolved"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let resolved = c.delta("ticket_transitioned", id).await;
    assert_eq!(resolved["from"], "assigned");
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(
        resolved["channel"], "email",
        "deltas are completed with the ticket's queue"
    );
    let after = c
        .until("snapshot with the resolution", |v| {
            v["type"] == "snapshot" && v["totals"]["resolved_today"] == 1
        })
        .await;
    assert_eq!(after["totals"]["waiting"], 0);
    assert_eq!(after["totals"]["active"], 0);
    assert!(
        after["hourly"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["resolutions"] == 1)
    );
    assert!(
        after["hourly"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["arrivals_by_channel"]["email"] == 1)
    );
}

async fn resync_on_request(t: TestApp) {
    let mut c = Client::new(&t, &t.admin_token).await;
    c.ws.send(Message::text(r#"{"type":"resync"}"#))
        .await
        .unwrap();
    let again = c
        .until("resync snapshot", |v| v["type"] == "snapshot")
        .await;
    assert_eq!(again["reason"], "resync");
    assert_eq!(again["seq"], 2);
    // A ticket after the resync still arrives as the next number.
    let ticket = t
        .ticket(
            &t.admin_token,
            json!({"channel": "phone", "subject": "Richiamata"}),
        )
        .await;
    c.delta("ticket_created", ticket["id"].as_str().unwrap())
        .await;
    // Unknown requests are answered, not fatal.
    c.ws.send(Message::text(r#"{"type":"dance"}"#))
        .await
        .unwrap();
    c.ws.send(Message::text(r#"{"type":"resync"}"#))
        .await
        .unwrap();
    let mut saw_error = false;
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), c.ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let Message::Text(text) = msg else { continue };
        let v: Value = serde_json::from_str(text.as_str()).unwrap();
        if v["type"] == "error" {
            saw_error = true;
        } else if v["type"] == "snapshot" && v["reason"] == "resync" {
            break;
        }
    }
    assert!(saw_error, "an unknown message gets an error reply");
}

async fn refused_without_a_valid_token(t: TestApp) {
    let url = ws_url(&t);
    assert_eq!(status_of(try_connect(&url, None).await), 401, "no token");
    assert_eq!(
        status_of(try_connect(&url, Some(("authorization", "Bearer not-a-token".into()))).await),
        401,
        "bad token"
    );
    // Browsers: a query token, or the session cookie from the same origin.
    let q = format!("{url}?token={}", t.admin_token);
    assert_eq!(status_of(try_connect(&q, None).await), 101, "query token");
    let cookie = format!("sportello_session={}", t.admin_token);
    assert_eq!(
        status_of(try_connect(&url, Some(("cookie", cookie.clone()))).await),
        101,
        "session cookie"
    );
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut()
        .insert("cookie", HeaderValue::from_str(&cookie).unwrap());
    req.headers_mut()
        .insert("origin", HeaderValue::from_static("http://evil.example"));
    match tokio_tungstenite::connect_async(req).await {
        Err(WsError::Http(res)) => {
            assert_eq!(res.status().as_u16(), 403, "cross-origin cookie refused")
        }
        other => panic!(
            "cross-origin websocket with a cookie must be refused: {:?}",
            other.map(|_| ())
        ),
    }
    let (status, body) = t.call(Method::GET, "/api/v1/dashboard", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // Signing out ends a session: new connections are refused.
    let (_, token) = t.user("leaver", &["front_office"]).await;
    let (status, _) = t
        .call(Method::POST, "/api/v1/auth/logout", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        status_of(try_connect(&url, Some(("authorization", format!("Bearer {token}")))).await),
        401
    );
}

fn status_of(r: Result<Ws, WsError>) -> u16 {
    match r {
        Err(WsError::Http(res)) => res.status().as_u16(),
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => 101,
    }
}

async fn operators_follow_only_their_tiers(t: TestApp) {
    let (_, front) = t.user("front2", &["front_office"]).await;
    let mut c = Client::new(&t, &front).await;
    assert_eq!(c.seen[0]["tiers"], json!(["front_office"]));
    let back = t
        .ticket(
            &t.admin_token,
            json!({"channel": "email", "subject": "Ricorso", "tier": "back_office"}),
        )
        .await;
    let front_ticket = t
        .ticket(
            &t.admin_token,
            json!({"channel": "email", "subject": "Informazioni"}),
        )
        .await;
    let back_id = back["id"].as_str().unwrap();
    // The front-office ticket, created after the back-office one, arrives alone...
    c.delta("ticket_created", front_ticket["id"].as_str().unwrap())
        .await;
    assert!(
        c.seen.iter().all(|v| v["ticket_id"] != back_id),
        "a back-office ticket never reaches a front-office dashboard"
    );
    let (status, body) = t
        .call(Method::GET, "/api/v1/dashboard", Some(&front), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tiers"], json!(["front_office"]));
    assert!(
        body["queues"]
            .as_array()
            .unwrap()
            .iter()
            .all(|q| q["tier"] == "front_office"),
        "{body}"
    );
    // ...and back-office transitions stay hidden too.
    let (status, _) = t
        .post(
            &format!("/api/v1/tickets/{back_id}/transitions"),
            &t.admin_token,
            json!({"to": "open"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let marker = t
        .ticket(
            &t.admin_token,
            json!({"channel": "phone", "subject": "Dopo"}),
        )
        .await;
    c.delta("ticket_created", marker["id"].as_str().unwrap())
        .await;
    assert!(
        c.seen.iter().all(|v| v["ticket_id"] != back_id),
        "back-office transitions are not sent to front-office dashboards"
    );
}

async fn http_snapshot_counts_and_sla_figures(t: TestApp) {
    let (status, empty) = t.get("/api/v1/dashboard", &t.admin_token).await;
    assert_eq!(status, StatusCode::OK, "{empty}");
    assert_eq!(empty["totals"]["active"], 0);
    assert!(
        empty["sla"]["today"]["first_response_attainment"].is_null(),
        "nothing measured yet"
    );
    let hours = empty["hourly"].as_array().unwrap().len();
    assert!(
        (23..=25).contains(&hours),
        "a day has 23 to 25 hours, got {hours}"
    );

    let ticket = t
        .ticket(
            &t.admin_token,
            json!({"channel": "web", "subject": "Modulo"}),
        )
        .await;
    let id = ticket["id"].as_str().unwrap();
    // The router gives the ticket its SLA clock; wait for it before resolving.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, v) = t
            .get(&format!("/api/v1/tickets/{id}"), &t.admin_token)
            .await;
        if v["sla"].is_object() {
            break;
        }
        assert!(Instant::now() < deadline, "ticket never routed: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = t
        .post(
            &format!("/api/v1/tickets/{id}/transitions"),
            &t.admin_token,
            json!({"to": "resolved"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Snapshots are shared for up to a second.
    let deadline = Instant::now() + Duration::from_secs(5);
    let snap = loop {
        let (_, v) = t.get("/api/v1/dashboard", &t.admin_token).await;
        if v["sla"]["today"]["resolutions"] == 1 {
            break v;
        }
        assert!(Instant::now() < deadline, "resolution never counted: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let today = &snap["sla"]["today"];
    assert_eq!(today["first_responses"], 1, "{today}");
    assert_eq!(today["first_responses_within_target"], 1, "{today}");
    assert_eq!(today["first_response_attainment"], 1.0);
    assert_eq!(today["resolution_attainment"], 1.0);
    assert!(
        today["resolution_p50_secs"]
            .as_i64()
            .is_some_and(|s| s >= 0)
    );
    assert_eq!(snap["sla"]["last_7_days"]["resolutions"], 1);
    assert_eq!(snap["totals"]["arrivals_today"], 1);
    assert_eq!(snap["totals"]["resolved_today"], 1);
}

/// Two instances on one PostgreSQL database: a ticket created through instance A reaches a
/// websocket client connected to instance B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_cross_instances_on_postgres() {
    if common::pg_url().is_none() {
        eprintln!("SPORTELLO_TEST_PG_URL not set: PostgreSQL variant switched off");
        return;
    }
    let a = TestApp::spawn(common::Backend::Postgres).await;
    let b = TestApp::spawn_on(&a.database_url, None).await;
    assert_ne!(a.app.instance_id(), b.app.instance_id());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(a.app.event_relay_listening() && b.app.event_relay_listening()) {
        assert!(
            Instant::now() < deadline,
            "the relays never started listening"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut on_b = Client::new(&b, &b.admin_token).await;
    let ticket = a
        .ticket(
            &a.admin_token,
            json!({"channel": "email", "subject": "Da un'altra istanza"}),
        )
        .await;
    let id = ticket["id"].as_str().unwrap();
    let d = on_b.delta("ticket_created", id).await;
    assert_eq!(d["number"], ticket["number"]);
    // A's own client gets it once, not echoed back by the relay.
    let mut on_a = Client::new(&a, &a.admin_token).await;
    let second = b
        .ticket(
            &b.admin_token,
            json!({"channel": "phone", "subject": "Ritorno"}),
        )
        .await;
    let sid = second["id"].as_str().unwrap();
    on_a.delta("ticket_created", sid).await;
    let marker = a
        .ticket(
            &a.admin_token,
            json!({"channel": "web", "subject": "Segnale"}),
        )
        .await;
    on_a.delta("ticket_created", marker["id"].as_str().unwrap())
        .await;
    let copies = on_a
        .seen
        .iter()
        .filter(|v| v["type"] == "delta" && v["ticket_id"] == sid && v["event"] == "ticket_created")
        .count();
    assert_eq!(copies, 1, "each event reaches a dashboard once");
    drop(b);
}

/// A flood of events larger than the hub keeps for slow clients: the client is not stalled or
/// disconnected, it gets a fresh snapshot instead of the deltas it could not take, and its
/// sequence numbers stay continuous.
async fn a_client_that_falls_behind_gets_a_fresh_snapshot(t: TestApp) {
    let ticket = t
        .ticket(
            &t.admin_token,
            json!({"channel": "email", "subject": "Molti eventi"}),
        )
        .await;
    let id: uuid::Uuid = ticket["id"].as_str().unwrap().parse().unwrap();
    let mut c = Client::new(&t, &t.admin_token).await;
    let flood: Vec<sportello_domain::event::DomainEvent> = (0..20_000)
        .map(|i| sportello_domain::event::DomainEvent::SlaChanged {
            ticket_id: id,
            state: if i % 2 == 0 {
                "at_risk".into()
            } else {
                "ok".into()
            },
            at: chrono::Utc::now(),
        })
        .collect();
    t.app.bus().publish_all(flood);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut deltas = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "no resynchronising snapshot after a flood of events"
        );
        let v = c.next().await;
        if v["type"] == "delta" {
            deltas += 1;
        } else if v["type"] == "snapshot" && (v["reason"] == "lagged" || v["reason"] == "resync") {
            break;
        }
    }
    assert!(
        deltas < 20_000,
        "the client was told to resynchronise instead of receiving every delta"
    );
    // Still connected and current afterwards.
    let after = t
        .ticket(
            &t.admin_token,
            json!({"channel": "phone", "subject": "Dopo la piena"}),
        )
        .await;
    c.until("delta after the flood", |v| {
        v["type"] == "delta" && v["ticket_id"] == after["id"]
    })
    .await;
}
