//! The phone channel end to end, on SQLite and PostgreSQL: the native webhook and Zammad's
//! generic CTI over real HTTP (duplicates, out-of-order events, bad tokens, malformed events),
//! calls becoming tickets linked to operators, call-backs and their completion, the call log.

mod common;

use std::collections::HashSet;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sportello_service::phone::sportello_phone::{Integration, IntegrationKind, PhoneConfig, Token};
use sportello_service::{App, ServiceConfig};
use tokio_util::sync::CancellationToken;

const NATIVE_TOKEN: &str = "native-token-0123456789abcdef";
const CTI_TOKEN: &str = "zammad-token-0123456789abcdef";
const EVENTS: &str = "/api/v1/channels/phone/events";

on_both_backends!(
    answered_calls_become_tickets_linked_to_operators,
    events_out_of_order_and_late_answers_converge,
    missed_calls_become_one_callback_until_the_citizen_is_reached,
    withheld_and_covered_missed_calls_need_no_callback,
    zammad_cti_form_and_json_answer_like_zammad,
    bad_tokens_and_malformed_events_write_nothing,
    call_log_filters_pages_and_notes,
    calls_entered_before_migration_11_are_on_the_timeline_once,
);

/// A second instance on the test's database, configured with the phone integrations (the
/// harness's own instance has the default, empty `[phone]` section).
struct Phone {
    t: TestApp,
    base: String,
    stop: CancellationToken,
}

impl Drop for Phone {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn phone_config() -> PhoneConfig {
    PhoneConfig {
        integrations: vec![
            Integration {
                name: "centralino".into(),
                kind: IntegrationKind::Native,
                token: Token::new(NATIVE_TOKEN),
            },
            Integration {
                name: "zammad-pbx".into(),
                kind: IntegrationKind::ZammadCti,
                token: Token::new(CTI_TOKEN),
            },
        ],
        extensions: [("201", "lbassi"), ("203", "mverdi")]
            .into_iter()
            .map(|(e, u)| (e.to_owned(), u.to_owned()))
            .collect(),
        own_numbers: vec!["02 0202".parse().unwrap()],
        ..Default::default()
    }
}

impl Phone {
    async fn start(t: TestApp) -> Phone {
        let db = sportello_store::connect(&t.database_url, &Default::default())
            .await
            .expect("connect");
        let config = ServiceConfig {
            phone: phone_config(),
            ..Default::default()
        };
        let app = App::new(db, config).await.expect("app");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let router = sportello_server::router(app, Default::default());
        let s = stop.clone();
        tokio::spawn(async move {
            sportello_server::serve(listener, router, async move { s.cancelled().await }).await
        });
        Phone { t, base, stop }
    }

    /// A request to the phone-configured instance; errors must be problem documents.
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .t
            .client
            .request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let ctype = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = res.text().await.unwrap();
        if status.is_client_error() || status.is_server_error() {
            assert_eq!(ctype, "application/problem+json", "{status} {path}: {text}");
        }
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        (status, v)
    }

    async fn get(&self, path: &str, token: &str) -> Value {
        let (status, body) = self.call(Method::GET, path, Some(token), None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    async fn count(&self, query: &str, token: &str) -> u64 {
        self.get(&format!("/api/v1/calls/count?{query}"), token)
            .await["count"]
            .as_u64()
            .unwrap()
    }

    /// Sends native events (an object or an array); they must be accepted.
    async fn events(&self, body: Value) -> Value {
        let (status, report) = self
            .call(Method::POST, EVENTS, Some(NATIVE_TOKEN), Some(body))
            .await;
        assert_eq!(status, StatusCode::OK, "{report}");
        report
    }

    /// The one call with this switchboard id.
    async fn find_call(&self, call_id: &str, token: &str) -> Value {
        let page = self.get("/api/v1/calls?limit=200", token).await;
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["call_id"] == call_id)
            .cloned()
            .unwrap_or_else(|| panic!("no call {call_id} in {page}"))
    }

    async fn callbacks(&self, state: &str, token: &str) -> Vec<Value> {
        self.get(&format!("/api/v1/callbacks?state={state}"), token)
            .await["items"]
            .as_array()
            .unwrap()
            .clone()
    }

    async fn ticket(&self, id: &Value, token: &str) -> Value {
        self.get(&format!("/api/v1/tickets/{}", id.as_str().unwrap()), token)
            .await
    }

    /// Posts to the CTI endpoint as a switchboard would; returns status and JSON body.
    async fn cti_form(&self, token: &str, pairs: &[(&str, &str)]) -> (StatusCode, Value) {
        let body: String = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect::<Vec<_>>()
            .join("&");
        let res = self
            .t
            .client
            .post(format!("{}/api/v1/channels/phone/cti/{token}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = res.status();
        (status, res.json().await.unwrap())
    }

    async fn cti_json(&self, token: &str, body: Value) -> (StatusCode, Value) {
        let res = self
            .t
            .client
            .post(format!("{}/api/v1/channels/phone/cti/{token}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status();
        (status, res.json().await.unwrap())
    }
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Monday 2 March 2026, 10:00 in Milan.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).single().unwrap()
}

fn at(minutes: i64) -> String {
    (t0() + Duration::minutes(minutes)).to_rfc3339()
}

/// A native event; `extra` adds or overrides fields.
fn ev(
    call_id: &str,
    event: &str,
    direction: &str,
    from: Value,
    to: Value,
    minute: i64,
    extra: Value,
) -> Value {
    let mut e = json!({
        "call_id": call_id, "event": event, "direction": direction,
        "from": from, "to": to, "at": at(minute),
    });
    if let (Value::Object(map), Value::Object(more)) = (&mut e, extra) {
        map.extend(more);
    }
    e
}

fn inbound(call_id: &str, event: &str, from: &str, minute: i64, extra: Value) -> Value {
    ev(
        call_id,
        event,
        "inbound",
        json!(from),
        json!("020202"),
        minute,
        extra,
    )
}

fn outbound(call_id: &str, event: &str, to: &str, minute: i64, extra: Value) -> Value {
    ev(
        call_id,
        event,
        "outbound",
        json!("201"),
        json!(to),
        minute,
        extra,
    )
}

fn answered_by(ext: &str) -> Value {
    json!({ "answered_by": { "extension": ext } })
}

fn ended(cause: &str, extra: Value) -> Value {
    let mut e = json!({ "cause": cause });
    if let (Value::Object(map), Value::Object(more)) = (&mut e, extra) {
        map.extend(more);
    }
    e
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
        .unwrap()
        .with_timezone(&Utc)
}

fn call_entries(ticket: &Value) -> Vec<Value> {
    ticket["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "call")
        .cloned()
        .collect()
}

async fn answered_calls_become_tickets_linked_to_operators(t: TestApp) {
    let (mverdi_id, op) = t.user("mverdi", &["front_office"]).await;
    let (lbassi_id, _) = t.user("lbassi", &["front_office"]).await;
    let p = Phone::start(t).await;

    let call = [
        inbound(
            "c-1",
            "ringing",
            "+39 347 111 2233",
            0,
            json!({"queue": "sostegno", "extensions": ["201", "203"]}),
        ),
        inbound("c-1", "answered", "+39 347 111 2233", 1, answered_by("203")),
        inbound(
            "c-1",
            "ended",
            "+39 347 111 2233",
            6,
            ended(
                "normal_clearing",
                json!({"duration_seconds": 360, "talk_seconds": 300}),
            ),
        ),
    ];
    let report = p.events(json!(call)).await;
    assert_eq!(
        (report["new"].as_u64(), report["known"].as_u64()),
        (Some(1), Some(2)),
        "{report}"
    );
    assert_eq!(report["tickets_created"], 1);

    let c = p.find_call("c-1", &op).await;
    assert_eq!(c["source"], "centralino");
    assert_eq!(c["outcome"], "answered");
    assert_eq!(c["direction"], "inbound");
    assert_eq!(c["from"], "+393471112233");
    assert_eq!(c["operator"], "mverdi");
    assert_eq!(c["operator_id"], mverdi_id.as_str());
    assert_eq!(c["extension"], "203");
    assert_eq!(c["queue"], "sostegno");
    assert_eq!(
        (c["duration_secs"].as_i64(), c["talk_secs"].as_i64()),
        (Some(360), Some(300))
    );
    assert_eq!(time(&c["started_at"]), t0());
    assert!(c["callback_ticket_id"].is_null() && c["callback_state"].is_null());

    // The unknown caller became a citizen, found again by their number.
    let citizen = p
        .get(
            &format!("/api/v1/citizens/{}", c["citizen_id"].as_str().unwrap()),
            &op,
        )
        .await;
    assert_eq!(citizen["name"], "Chiamante +393471112233");
    assert_eq!(citizen["phones"], json!(["+393471112233"]));

    // The ticket: phone, front office, assigned to whoever answered, the call on its timeline.
    let ticket = p.ticket(&c["ticket_id"], &op).await;
    assert_eq!(ticket["channel"], "phone");
    assert_eq!(ticket["tier"], "front_office");
    assert_eq!(ticket["status"], "assigned");
    assert_eq!(ticket["assignee_id"], mverdi_id.as_str());
    assert_eq!(ticket["citizen_id"], c["citizen_id"]);
    let entries = call_entries(&ticket);
    assert_eq!(entries.len(), 1, "{ticket}");
    assert_eq!(entries[0]["id"], c["id"], "the timeline item is the call");
    assert_eq!(entries[0]["author_id"], mverdi_id.as_str());
    let meta = &entries[0]["meta"];
    assert_eq!(
        (meta["direction"].as_str(), meta["outcome"].as_str()),
        (Some("inbound"), Some("answered"))
    );
    assert_eq!(
        (meta["duration_secs"].as_i64(), meta["operator"].as_str()),
        (Some(360), Some("mverdi"))
    );
    assert!(
        entries[0]["body"].as_str().unwrap().contains("5 min 0 s"),
        "{}",
        entries[0]["body"]
    );

    // Delivered again, in whole or in part: nothing changes.
    let report = p.events(json!(call)).await;
    assert_eq!(
        (report["new"].as_u64(), report["unchanged"].as_u64()),
        (Some(0), Some(3)),
        "{report}"
    );
    let report = p.events(call[1].clone()).await;
    assert_eq!(report["unchanged"], 1);
    assert_eq!(p.count("", &op).await, 1);

    // The same citizen calls again (the number written differently), answered on 201: the call
    // joins the open ticket and is linked to the other operator.
    p.events(json!([
        inbound(
            "c-2",
            "answered",
            "0039 347 1112233",
            30,
            answered_by("201")
        ),
        inbound(
            "c-2",
            "ended",
            "0039 347 1112233",
            33,
            ended("normal_clearing", json!({}))
        ),
    ]))
    .await;
    let c2 = p.find_call("c-2", &op).await;
    assert_eq!(c2["citizen_id"], c["citizen_id"]);
    assert_eq!(c2["ticket_id"], c["ticket_id"]);
    assert_eq!(c2["operator_id"], lbassi_id.as_str());
    assert_eq!(c2["talk_secs"], 180);
    let ticket = p.ticket(&c["ticket_id"], &op).await;
    assert_eq!(call_entries(&ticket).len(), 2);
    let by_citizen = format!("citizen_id={}", c["citizen_id"].as_str().unwrap());
    assert_eq!(p.count(&by_citizen, &op).await, 2);
    assert_eq!(
        p.count(
            &format!("ticket_id={}", c["ticket_id"].as_str().unwrap()),
            &op
        )
        .await,
        2
    );

    // Once that ticket is resolved, the next call opens a new one.
    let (status, _) = p
        .call(
            Method::POST,
            &format!(
                "/api/v1/tickets/{}/transitions",
                c["ticket_id"].as_str().unwrap()
            ),
            Some(&op),
            Some(json!({"to": "resolved"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    p.events(inbound(
        "c-3",
        "answered",
        "3471112233",
        90,
        answered_by("203"),
    ))
    .await;
    let c3 = p.find_call("c-3", &op).await;
    assert_ne!(c3["ticket_id"], c["ticket_id"]);
    assert_eq!(c3["citizen_id"], c["citizen_id"]);
}

async fn events_out_of_order_and_late_answers_converge(t: TestApp) {
    let (_, op) = t.user("mverdi", &["front_office"]).await;
    let p = Phone::start(t).await;

    // The same call reported in order, and (as another call) in reverse with duplicates:
    // both converge on the same record.
    let events = |id: &str| {
        vec![
            inbound(id, "ringing", "3339990001", 0, json!({"queue": "sostegno"})),
            inbound(id, "answered", "3339990001", 1, answered_by("203")),
            inbound(
                id,
                "ended",
                "3339990001",
                5,
                ended("normal_clearing", json!({"duration_seconds": 300})),
            ),
        ]
    };
    p.events(json!(events("in-order"))).await;
    let mut reversed = events("reversed");
    reversed.reverse();
    reversed.push(reversed[0].clone());
    for e in reversed {
        p.events(e).await;
    }
    let a = p.find_call("in-order", &op).await;
    let b = p.find_call("reversed", &op).await;
    for field in [
        "outcome",
        "operator",
        "extension",
        "duration_secs",
        "talk_secs",
        "started_at",
        "answered_at",
        "ended_at",
        "queue",
    ] {
        assert_eq!(a[field], b[field], "{field}: {a} vs {b}");
    }
    assert_eq!(b["talk_secs"], 240);

    // A hangup with normal_clearing naming the extension means answered, even with no answer
    // event at all.
    p.events(inbound(
        "hangup-only",
        "ended",
        "3339990002",
        10,
        ended("normal_clearing", answered_by("203")),
    ))
    .await;
    let c = p.find_call("hangup-only", &op).await;
    assert_eq!(
        (c["outcome"].as_str(), c["operator"].as_str()),
        (Some("answered"), Some("mverdi"))
    );
    assert!(c["callback_state"].is_null());

    // A caller hangs up in the queue: abandoned, a call-back opens. Then the answer event
    // arrives late: the call was answered after all, and its call-back is closed.
    p.events(json!([
        inbound("late", "ringing", "3339990003", 20, json!({})),
        inbound(
            "late",
            "ended",
            "3339990003",
            22,
            ended("cancel", json!({}))
        ),
    ]))
    .await;
    let c = p.find_call("late", &op).await;
    assert_eq!(c["outcome"], "abandoned");
    assert_eq!(c["callback_state"], "open");
    let open = p.callbacks("open", &op).await;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["number"], "+393339990003");
    assert_eq!(open[0]["missed_count"], 1);
    let cb_ticket = open[0]["ticket_id"].clone();

    p.events(inbound(
        "late",
        "answered",
        "3339990003",
        21,
        answered_by("203"),
    ))
    .await;
    let c = p.find_call("late", &op).await;
    assert_eq!(c["outcome"], "answered");
    assert_eq!(c["operator"], "mverdi");
    assert_eq!(c["callback_state"], "done");
    assert!(p.callbacks("open", &op).await.is_empty());
    // (The reversed call looked missed too until its answer came: its call-back is done as well.)
    let done = p.callbacks("done", &op).await;
    let done = done
        .iter()
        .find(|c| c["number"] == "+393339990003")
        .unwrap();
    assert_eq!(
        (done["done_reason"].as_str(), done["missed_count"].as_i64()),
        (Some("answered"), Some(0))
    );
    let ticket = p.ticket(&cb_ticket, &op).await;
    assert_eq!(ticket["status"], "resolved");
    let entries = call_entries(&ticket);
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0]["meta"]["outcome"], "answered",
        "the call entry follows the call"
    );
    // Repeating any of it changes nothing.
    let report = p
        .events(inbound(
            "late",
            "ended",
            "3339990003",
            22,
            ended("cancel", json!({})),
        ))
        .await;
    assert_eq!(report["unchanged"], 1);
    assert!(p.callbacks("open", &op).await.is_empty());
    assert_eq!(p.count("outcome=answered", &op).await, 4);
}

async fn missed_calls_become_one_callback_until_the_citizen_is_reached(t: TestApp) {
    let (lbassi_id, op) = t.user("lbassi", &["front_office"]).await;
    let (_, back) = t.user("bback", &["back_office"]).await;
    let p = Phone::start(t).await;
    let number = "+393331112222";

    // Two missed calls from one number: one call-back, counting both, due in a business day.
    p.events(inbound("m-1", "missed", "333 1112222", 0, json!({})))
        .await;
    p.events(json!([
        inbound("m-2", "ringing", "+39 333 111 2222", 30, json!({})),
        inbound("m-2", "abandoned", "+39 333 111 2222", 31, json!({})),
    ]))
    .await;
    let open = p.callbacks("open", &op).await;
    assert_eq!(open.len(), 1, "{open:?}");
    let cb = &open[0];
    assert_eq!(cb["number"], number);
    assert_eq!(cb["missed_count"], 2);
    assert_eq!(cb["attempts"], 0);
    assert_eq!(cb["state"], "open");
    assert_eq!(time(&cb["first_missed_at"]), t0());
    assert_eq!(time(&cb["last_missed_at"]), t0() + Duration::minutes(30));
    // Monday 10:00 in Milan → Tuesday 10:00, one business day later.
    assert_eq!(time(&cb["deadline"]), t0() + Duration::days(1));
    assert!(cb["citizen_name"].as_str().unwrap().contains(number));
    let ticket = p.ticket(&cb["ticket_id"], &op).await;
    assert_eq!(ticket["tags"], json!(["callback"]));
    assert_eq!(
        (ticket["status"].as_str(), ticket["tier"].as_str()),
        (Some("new"), Some("front_office"))
    );
    assert_eq!(ticket["number"], cb["ticket_number"]);
    assert_eq!(call_entries(&ticket).len(), 2);
    // Only the front office works call-backs.
    let (status, _) = p
        .call(Method::GET, "/api/v1/callbacks", Some(&back), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // An operator calls out and nobody answers: an attempt. Then one that gets through: done.
    p.events(json!([
        outbound("o-1", "ringing", "3331112222", 60, json!({})),
        outbound(
            "o-1",
            "ended",
            "3331112222",
            61,
            ended("no_answer", json!({}))
        ),
    ]))
    .await;
    assert_eq!(p.callbacks("open", &op).await[0]["attempts"], 1);
    p.events(json!([
        outbound("o-2", "answered", "3331112222", 90, answered_by("201")),
        outbound(
            "o-2",
            "ended",
            "3331112222",
            95,
            ended("normal_clearing", json!({}))
        ),
    ]))
    .await;
    assert!(p.callbacks("open", &op).await.is_empty());
    let done = p.callbacks("done", &op).await;
    assert_eq!(done[0]["done_reason"], "reached");
    let o2 = p.find_call("o-2", &op).await;
    assert_eq!(o2["callback_ticket_id"], cb["ticket_id"]);
    assert_eq!(o2["operator_id"], lbassi_id.as_str());
    let ticket = p.ticket(&cb["ticket_id"], &op).await;
    assert_eq!(ticket["status"], "resolved");
    assert_eq!(call_entries(&ticket).len(), 4);

    // A new missed call opens a new call-back; the citizen getting through on a later call
    // completes it.
    p.events(inbound("m-3", "missed", number, 120, json!({})))
        .await;
    let open = p.callbacks("open", &op).await;
    assert_eq!(open.len(), 1);
    assert_ne!(open[0]["ticket_id"], cb["ticket_id"]);
    assert_eq!(open[0]["missed_count"], 1);
    p.events(inbound("a-1", "answered", number, 150, answered_by("201")))
        .await;
    assert!(p.callbacks("open", &op).await.is_empty());
    let done = p.callbacks("done", &op).await;
    assert_eq!(done.len(), 2);
    assert_eq!(
        done[0]["done_reason"], "citizen_called",
        "most recently done first: {done:?}"
    );

    // Attempts recorded by hand: one without reaching the citizen, then closing.
    p.events(inbound("m-4", "voicemail", number, 200, json!({})))
        .await;
    let cb4 = p.callbacks("open", &op).await[0]["ticket_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let attempts = format!("/api/v1/callbacks/{cb4}/attempts");
    let (status, view) = p
        .call(
            Method::POST,
            &attempts,
            Some(&op),
            Some(json!({"reached": false, "note": "Squilla a vuoto"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(
        (view["attempts"].as_i64(), view["state"].as_str()),
        (Some(1), Some("open"))
    );
    let (status, view) = p
        .call(
            Method::POST,
            &attempts,
            Some(&op),
            Some(json!({"reached": false, "close": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(
        (view["state"].as_str(), view["done_reason"].as_str()),
        (Some("done"), Some("closed"))
    );
    assert_eq!(view["attempts"], 2);
    let ticket = p.ticket(&json!(cb4), &op).await;
    assert_eq!(ticket["status"], "resolved");
    assert!(
        ticket["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["body"].as_str().unwrap().contains("Squilla a vuoto")),
        "{ticket}"
    );
    let (status, body) = p
        .call(
            Method::POST,
            &attempts,
            Some(&op),
            Some(json!({"reached": true})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = p
        .call(
            Method::POST,
            &attempts,
            Some(&op),
            Some(json!({"reached": "yes"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = p
        .call(
            Method::POST,
            &format!("/api/v1/callbacks/{}/attempts", uuid::Uuid::now_v7()),
            Some(&op),
            Some(json!({"reached": true})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A call-back whose ticket an operator resolves by hand is done too.
    p.events(inbound("m-5", "missed", "3335550000", 300, json!({})))
        .await;
    let cb5 = p.callbacks("open", &op).await[0]["ticket_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = p
        .call(
            Method::POST,
            &format!("/api/v1/tickets/{cb5}/transitions"),
            Some(&op),
            Some(json!({"to": "resolved"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(p.callbacks("open", &op).await.is_empty());
    p.events(inbound("m-6", "missed", "3335550000", 330, json!({})))
        .await;
    let open = p.callbacks("open", &op).await;
    assert_eq!(open.len(), 1);
    assert_ne!(open[0]["ticket_id"].as_str(), Some(cb5.as_str()));
}

async fn withheld_and_covered_missed_calls_need_no_callback(t: TestApp) {
    let (_, op) = t.user("mverdi", &["front_office"]).await;
    let p = Phone::start(t).await;

    // A withheld caller nobody answered: logged, no citizen, no call-back possible.
    p.events(ev(
        "w-1",
        "missed",
        "inbound",
        Value::Null,
        json!("020202"),
        0,
        json!({}),
    ))
    .await;
    let w = p.find_call("w-1", &op).await;
    assert_eq!(
        (w["withheld"].as_bool(), w["from"].as_str()),
        (Some(true), Some("anonymous"))
    );
    assert!(w["citizen_id"].is_null() && w["ticket_id"].is_null());
    assert_eq!(w["callback_state"], "impossible");
    assert!(p.callbacks("open", &op).await.is_empty());
    // A note cannot go anywhere for such a call.
    let (status, _) = p
        .call(
            Method::POST,
            &format!("/api/v1/calls/{}/notes", w["id"].as_str().unwrap()),
            Some(&op),
            Some(json!({"body": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // A withheld caller who got through gets a ticket of their own, without a citizen.
    p.events(ev(
        "w-2",
        "answered",
        "inbound",
        json!("anonymous"),
        json!("020202"),
        5,
        answered_by("203"),
    ))
    .await;
    let w2 = p.find_call("w-2", &op).await;
    assert!(w2["citizen_id"].is_null());
    let ticket = p.ticket(&w2["ticket_id"], &op).await;
    assert!(ticket["citizen_id"].is_null());
    assert_eq!(ticket["subject"], "Chiamata da numero anonimo");

    // The number of a later report reveals a caller the first report hid.
    p.events(ev(
        "w-3",
        "ringing",
        "inbound",
        Value::Null,
        json!("020202"),
        10,
        json!({}),
    ))
    .await;
    p.events(inbound("w-3", "missed", "3337770000", 11, json!({})))
        .await;
    let w3 = p.find_call("w-3", &op).await;
    assert_eq!(w3["from"], "+393337770000");
    assert_eq!(w3["callback_state"], "open");

    // A missed call reported after a later call from the same number got through needs no
    // call-back (the citizen was already served).
    p.events(inbound(
        "s-2",
        "answered",
        "3338880000",
        60,
        answered_by("203"),
    ))
    .await;
    p.events(inbound("s-1", "missed", "3338880000", 40, json!({})))
        .await;
    let s1 = p.find_call("s-1", &op).await;
    assert_eq!(s1["callback_state"], "not_needed");
    assert_eq!(
        s1["ticket_id"],
        p.find_call("s-2", &op).await["ticket_id"],
        "logged on the citizen's open ticket"
    );
    assert_eq!(p.callbacks("open", &op).await.len(), 1);

    // Calls between extensions and calls from our own numbers are nobody's.
    p.events(ev(
        "i-1",
        "answered",
        "inbound",
        json!("203"),
        json!("201"),
        70,
        answered_by("201"),
    ))
    .await;
    p.events(inbound("i-2", "missed", "02 0202", 71, json!({})))
        .await;
    for id in ["i-1", "i-2"] {
        let c = p.find_call(id, &op).await;
        assert!(c["citizen_id"].is_null() && c["ticket_id"].is_null(), "{c}");
    }
    assert_eq!(p.callbacks("open", &op).await.len(), 1);
}

async fn zammad_cti_form_and_json_answer_like_zammad(t: TestApp) {
    let (mverdi_id, op) = t.user("mverdi", &["front_office"]).await;
    let p = Phone::start(t).await;

    let base = [
        ("from", "393331234567"),
        ("to", "020202"),
        ("direction", "in"),
        ("callId", "z-1"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        base.iter().chain(extra).copied().collect()
    };
    for pairs in [
        with(&[
            ("event", "newCall"),
            ("user[]", "Operatore 203"),
            ("user[]", "Operatore 201"),
            ("queue", "sostegno"),
        ]),
        with(&[("event", "answer"), ("answeringNumber", "203")]),
        with(&[
            ("event", "hangup"),
            ("cause", "normalClearing"),
            ("answeringNumber", "203"),
        ]),
        // A retry of the answer, as switchboards do on a timeout.
        with(&[("event", "answer"), ("answeringNumber", "203")]),
    ] {
        let (status, body) = p.cti_form(CTI_TOKEN, &pairs).await;
        assert_eq!((status, body), (StatusCode::OK, json!({})));
    }
    let c = p.find_call("z-1", &op).await;
    assert_eq!(c["source"], "zammad-pbx");
    assert_eq!(c["outcome"], "answered");
    assert_eq!(c["operator_id"], mverdi_id.as_str());
    assert_eq!(c["queue"], "sostegno");
    assert!(!c["ticket_id"].is_null());

    // JSON, with the snake_case call_id Zammad also accepts: a caller who hangs up unanswered.
    for event in [
        json!({"event": "newCall", "from": 393339998877u64, "to": "020202", "direction": "in", "call_id": "z-2", "user": "Operatore 203"}),
        json!({"event": "hangup", "from": "393339998877", "to": "020202", "direction": "in", "call_id": "z-2", "cause": "cancel"}),
    ] {
        let (status, body) = p.cti_json(CTI_TOKEN, event).await;
        assert_eq!((status, body), (StatusCode::OK, json!({})));
    }
    let c = p.find_call("z-2", &op).await;
    assert_eq!(c["outcome"], "abandoned");
    assert_eq!(c["callback_state"], "open");

    // Zammad's answers to what is wrong.
    let (status, body) = p
        .cti_form("wrong-token-0123456789", &with(&[("event", "newCall")]))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"error": "Invalid token, please contact your admin!"})
    );
    let (status, _) = p
        .cti_form(NATIVE_TOKEN, &with(&[("event", "newCall")]))
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a native token is not a CTI token"
    );
    let (status, body) = p
        .cti_form(
            CTI_TOKEN,
            &[
                ("event", "newCall"),
                ("direction", "sideways"),
                ("callId", "z-3"),
            ],
        )
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"error": "Invalid direction!"})
        )
    );
    let (status, body) = p
        .cti_form(CTI_TOKEN, &[("event", "newCall"), ("direction", "in")])
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"].as_str().unwrap().contains("callId"), "{body}");
    let (status, body) = p
        .cti_form(
            CTI_TOKEN,
            &[
                ("event", "newCall"),
                ("direction", "in"),
                ("callId", "z-4"),
                ("from", "Mario Rossi"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"].as_str().unwrap().contains("from"), "{body}");
    let (status, _) = p.cti_json(CTI_TOKEN, json!(["not", "an", "object"])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        p.count("", &op).await,
        2,
        "refused requests recorded nothing"
    );
}

async fn bad_tokens_and_malformed_events_write_nothing(t: TestApp) {
    let (_, op) = t.user("mverdi", &["front_office"]).await;
    let p = Phone::start(t).await;
    let good = inbound("x-1", "missed", "3331234567", 0, json!({}));

    // Integration tokens open only the webhooks; user tokens open everything else.
    for token in [
        None,
        Some("wrong-token-0123456789"),
        Some(CTI_TOKEN),
        Some(op.as_str()),
    ] {
        let (status, body) = p
            .call(Method::POST, EVENTS, token, Some(good.clone()))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}: {body}");
    }
    let (status, _) = p
        .call(Method::GET, "/api/v1/calls", Some(NATIVE_TOKEN), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = p.call(Method::GET, "/api/v1/callbacks", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A batch with one bad event is refused whole, naming the event and the field.
    let bad_from = inbound("x-2", "ringing", "333 12ab", 1, json!({}));
    let (status, body) = p
        .call(
            Method::POST,
            EVENTS,
            Some(NATIVE_TOKEN),
            Some(json!([good, bad_from])),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "[1].from");
    assert!(
        !body["detail"].as_str().unwrap().contains("12ab"),
        "no personal data echoed: {body}"
    );
    let cases = [
        (
            inbound("x-3", "hangup", "3331234567", 0, json!({})),
            "event",
        ),
        (
            inbound("x-3", "ringing", "3331234567", 0, json!({"callId": "x"})),
            "callId",
        ),
        (
            inbound(
                "x-3",
                "ringing",
                "3331234567",
                0,
                json!({"at": "yesterday"}),
            ),
            "at",
        ),
        (
            inbound("x-3", "missed", "3331234567", 0, json!({"cause": "busy"})),
            "cause",
        ),
        (
            inbound(
                "x-3",
                "ended",
                "3331234567",
                0,
                json!({"duration_seconds": -4}),
            ),
            "duration_seconds",
        ),
        (json!({"event": "ringing"}), "call_id"),
    ];
    for (event, field) in cases {
        let (status, body) = p
            .call(Method::POST, EVENTS, Some(NATIVE_TOKEN), Some(event))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["errors"][0]["field"], field, "{body}");
    }
    let res =
        p.t.client
            .post(format!("{}{EVENTS}", p.base))
            .bearer_auth(NATIVE_TOKEN)
            .body("{\"call_id\": ")
            .send()
            .await
            .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(p.count("", &op).await, 0, "nothing was half-written");
    assert!(p.callbacks("open", &op).await.is_empty());

    // Bad query parameters are named.
    for (query, field) in [
        ("outcome=busy", "outcome"),
        ("direction=sideways", "direction"),
        ("from=yesterday", "from"),
        ("limit=0", "limit"),
        ("cursor=nope", "cursor"),
    ] {
        let (status, body) = p
            .call(
                Method::GET,
                &format!("/api/v1/calls?{query}"),
                Some(&op),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert_eq!(body["errors"][0]["field"], field, "{body}");
    }
    let (status, body) = p
        .call(
            Method::GET,
            "/api/v1/callbacks?state=later",
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "state");
}

async fn call_log_filters_pages_and_notes(t: TestApp) {
    let (mverdi_id, op) = t.user("mverdi", &["front_office"]).await;
    let p = Phone::start(t).await;
    let mut batch = Vec::new();
    for i in 0..9i64 {
        let id = format!("log-{i}");
        let number = format!("33344400{i:02}");
        match i % 3 {
            0 => batch.push(inbound(
                &id,
                "answered",
                &number,
                i * 10,
                answered_by("203"),
            )),
            1 => batch.push(inbound(&id, "missed", &number, i * 10, json!({}))),
            _ => batch.push(outbound(
                &id,
                "answered",
                &number,
                i * 10,
                answered_by("203"),
            )),
        }
    }
    p.events(json!(batch)).await;

    assert_eq!(p.count("", &op).await, 9);
    assert_eq!(p.count("direction=outbound", &op).await, 3);
    assert_eq!(p.count("outcome=missed", &op).await, 3);
    assert_eq!(p.count("direction=inbound&outcome=answered", &op).await, 3);
    let from = enc(&at(20));
    let to = enc(&at(50));
    assert_eq!(
        p.count(&format!("from={from}&to={to}"), &op).await,
        3,
        "from is inclusive, to exclusive"
    );

    // Pages of two, newest first, cover every call exactly once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/calls?limit=2&cursor={c}"),
            None => "/api/v1/calls?limit=2".to_owned(),
        };
        let page = p.get(&path, &op).await;
        for item in page["items"].as_array().unwrap() {
            seen.push(item["call_id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let want: Vec<String> = (0..9).rev().map(|i| format!("log-{i}")).collect();
    assert_eq!(seen, want);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 9);

    // Per ticket and per citizen.
    let c0 = p.find_call("log-0", &op).await;
    let page = p
        .get(
            &format!(
                "/api/v1/calls?ticket_id={}",
                c0["ticket_id"].as_str().unwrap()
            ),
            &op,
        )
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let page = p
        .get(
            &format!(
                "/api/v1/calls?citizen_id={}",
                c0["citizen_id"].as_str().unwrap()
            ),
            &op,
        )
        .await;
    assert_eq!(page["items"][0]["call_id"], "log-0");

    // The operator notes what came of the call.
    let (status, entry) = p
        .call(
            Method::POST,
            &format!("/api/v1/calls/{}/notes", c0["id"].as_str().unwrap()),
            Some(&op),
            Some(json!({"body": "Spiegati i requisiti ISEE.", "result": "informazioni fornite"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{entry}");
    assert_eq!(
        (entry["kind"].as_str(), entry["author_id"].as_str()),
        (Some("note"), Some(mverdi_id.as_str()))
    );
    assert_eq!(
        p.find_call("log-0", &op).await["result"],
        "informazioni fornite"
    );
    let ticket = p.ticket(&c0["ticket_id"], &op).await;
    assert!(
        ticket["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["body"] == "Spiegati i requisiti ISEE.")
    );
    let (status, body) = p
        .call(
            Method::POST,
            &format!("/api/v1/calls/{}/notes", c0["id"].as_str().unwrap()),
            Some(&op),
            Some(json!({"body": " "})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "body");

    // The OpenAPI document describes the phone routes.
    let doc = p.get("/api/v1/openapi.json", &op).await;
    for path in [
        "/api/v1/channels/phone/events",
        "/api/v1/channels/phone/cti/{token}",
        "/api/v1/calls",
        "/api/v1/calls/count",
        "/api/v1/callbacks",
        "/api/v1/callbacks/{ticket_id}/attempts",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
}

/// A CDR import plans each batch while the previous one is written. A call recorded in
/// between through the same process (a webhook on an in-process server, here a new caller
/// whose number the next batch also has) makes the plan made ahead stale: the batch is planned
/// again, and the caller stays one citizen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cdr_batch_planned_ahead_is_planned_again_after_a_write_in_between() {
    use sportello_service::phone::sportello_phone::{CdrReader, synth::synthetic_cdr};
    use sportello_store::entities::citizen_contact;
    use sportello_store::sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

    let t = TestApp::spawn(common::Backend::Sqlite).await;
    let app = &t.app;
    let zone = PhoneConfig::default().cdr_timezone;
    let synth = synthetic_cdr(400, 5);
    let rows: Vec<_> = CdrReader::new(synth.csv.as_bytes(), zone)
        .map(Result::unwrap)
        .collect();
    let (first, second) = rows.split_at(200);
    let number = |r: &sportello_service::phone::sportello_phone::CdrRow| {
        r.from.number().map(|n| n.as_str().to_owned())
    };
    let earlier: HashSet<String> = first.iter().filter_map(number).collect();
    let newcomer = second
        .iter()
        .find(|r| number(r).is_some_and(|n| !earlier.contains(&n)))
        .expect("the second half has a caller the first does not");
    let newcomer_number = number(newcomer).unwrap();

    let mut import = app.cdr_import("cdr");
    assert!(import.push(first.to_vec()).await.unwrap().is_none());
    // Writes the first batch and plans the second meanwhile.
    let written = import.push(second.to_vec()).await.unwrap().unwrap();
    assert_eq!(written.new, 200);
    // The newcomer's call reaches the webhook first (under another source).
    app.ingest_call_events(&newcomer.to_events("webhook"))
        .await
        .unwrap();
    let (last, stats) = import.finish().await.unwrap();
    assert_eq!(last.unwrap().new, 200);
    assert_eq!(
        (stats.batches, stats.planned_ahead, stats.planned_again),
        (2, 0, 1)
    );
    let citizens = citizen_contact::Entity::find()
        .filter(citizen_contact::Column::Value.eq(newcomer_number.clone()))
        .count(&app.db().read)
        .await
        .unwrap();
    assert_eq!(citizens, 1, "{newcomer_number} is one citizen");
}

/// Versions before migration 11 kept a copy of each switchboard call in `ticket_entries`; the
/// timeline now reads `calls`. After the upgrade such a call is on its ticket once.
async fn calls_entered_before_migration_11_are_on_the_timeline_once(t: TestApp) {
    use sportello_migrations::{Migrator, MigratorTrait};
    use sportello_store::entities::ticket_entry;
    use sportello_store::sea_orm::sea_query::{Expr, ExprTrait, Query};
    use sportello_store::sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait};

    let (_, op) = t.user("mverdi", &["front_office"]).await;
    let p = Phone::start(t).await;
    p.events(json!([
        inbound("m-1", "answered", "+39 347 555 1212", 0, answered_by("203")),
        inbound(
            "m-1",
            "ended",
            "+39 347 555 1212",
            4,
            ended("normal_clearing", json!({}))
        ),
    ]))
    .await;
    let c = p.find_call("m-1", &op).await;
    let ticket_id: uuid::Uuid = c["ticket_id"].as_str().unwrap().parse().unwrap();
    let call_id: uuid::Uuid = c["id"].as_str().unwrap().parse().unwrap();

    // Back to the schema before migration 11, with the call's entry as those versions wrote it.
    let opts = sportello_store::DbOptions {
        migrate: false,
        ..Default::default()
    };
    let db = sportello_store::connect(&p.t.database_url, &opts)
        .await
        .unwrap();
    let later = Migrator::migrations().len() - 11;
    Migrator::down(&db.write, Some(later as u32 + 1))
        .await
        .unwrap();
    let legacy = uuid::Uuid::now_v7();
    ticket_entry::Entity::insert(ticket_entry::ActiveModel {
        id: Set(legacy),
        ticket_id: Set(ticket_id),
        kind: Set("call".into()),
        author_id: Set(None),
        body: Set("Chiamata ricevuta da +393475551212, interno 203.".into()),
        body_html: Set(None),
        meta: Set(Some(json!({ "call": call_id }).to_string())),
        created_at: Set(t0()),
    })
    .exec_without_returning(&db.write)
    .await
    .unwrap();
    let link = Query::update()
        .table("calls")
        .value("entry_id", legacy)
        .and_where(Expr::col("id").eq(call_id))
        .to_owned();
    db.write.execute(&link).await.unwrap();
    assert_eq!(call_entries(&p.ticket(&c["ticket_id"], &op).await).len(), 2);

    Migrator::up(&db.write, None).await.unwrap();
    let ticket = p.ticket(&c["ticket_id"], &op).await;
    let calls = call_entries(&ticket);
    assert_eq!(calls.len(), 1, "{ticket}");
    assert_eq!(calls[0]["id"], c["id"]);
    assert_eq!(calls[0]["meta"]["operator"], "mverdi");
    assert!(
        ticket_entry::Entity::find_by_id(legacy)
            .one(&db.write)
            .await
            .unwrap()
            .is_none()
    );
    db.close().await;
}
