//! `/metrics` and `/readyz` as an operations team meets them: the metrics parse as Prometheus
//! text (checked by a strict parser of the 0.0.4 format written here), every name is prefixed
//! `sportello_`, counters move with traffic (tickets created per channel, HTTP requests per
//! route, assignments), only loopback scrapers or token holders may read them, and readiness
//! reports the database, each mailbox and the SMTP relay.

mod common;
mod mailharness;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use common::TestApp;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sportello_service::ServiceConfig;
use sportello_service::mail::sportello_mail::EmailConfig;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_util::sync::CancellationToken;

on_both_backends!(
    metrics_parse_and_move_with_traffic,
    metrics_are_for_this_machine_or_token_holders,
    readiness_reports_database_mail_and_relay,
);

// ---------------------------------------------------------------------------------------------
// A strict parser of the Prometheus text exposition format, version 0.0.4.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

#[derive(Debug, Default)]
struct MetricFamily {
    kind: String,
    help: Option<String>,
    samples: Vec<Sample>,
}

#[derive(Debug, Default)]
struct Exposition {
    families: BTreeMap<String, MetricFamily>,
}

impl Exposition {
    /// The value of the sample with this name and exactly these labels.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.families
            .values()
            .flat_map(|f| f.samples.iter())
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }

    fn family(&self, name: &str) -> &MetricFamily {
        self.families
            .get(name)
            .unwrap_or_else(|| panic!("no metric family {name}"))
    }
}

fn valid_metric_name(n: &str) -> bool {
    let mut chars = n.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(n: &str) -> bool {
    let mut chars = n.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => v
            .parse::<f64>()
            .map_err(|_| format!("'{v}' is not a sample value")),
    }
}

/// Parses `{a="x",b="y"}` at the start of `s`; returns the labels and the rest.
fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = s.strip_prefix('{').ok_or("labels must start with '{'")?;
    loop {
        rest = rest.trim_start_matches(' ');
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find('=').ok_or("a label without '='")?;
        let name = rest[..eq].trim();
        if !valid_label_name(name) {
            return Err(format!("invalid label name '{name}'"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or_else(|| format!("the value of label '{name}' is not quoted"))?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("invalid escape {other:?} in label '{name}'")),
                },
                Some((i, '"')) => break i,
                Some((_, '\n')) | None => {
                    return Err(format!("unterminated value of label '{name}'"));
                }
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(name.to_owned(), value).is_some() {
            return Err(format!("label '{name}' given twice"));
        }
        rest = &rest[end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if !rest.starts_with('}') {
            return Err(format!("expected ',' or '}}' after label '{name}'"));
        }
    }
}

/// The family a sample belongs to, given the declared types.
fn family_of(name: &str, types: &HashMap<String, String>) -> String {
    for (suffix, kinds) in [
        ("_bucket", &["histogram"][..]),
        ("_sum", &["histogram", "summary"][..]),
        ("_count", &["histogram", "summary"][..]),
    ] {
        if let Some(base) = name.strip_suffix(suffix)
            && types.get(base).is_some_and(|k| kinds.contains(&k.as_str()))
        {
            return base.to_owned();
        }
    }
    name.to_owned()
}

fn parse_exposition(text: &str) -> Result<Exposition, String> {
    let mut out = Exposition::default();
    let mut types: HashMap<String, String> = HashMap::new();
    let mut finished: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    let mut seen: std::collections::HashSet<String> = Default::default();
    if !text.ends_with('\n') {
        return Err("the exposition must end with a newline".into());
    }
    for (i, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line}", i + 1);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut parts = comment.trim_start().splitn(3, ' ');
            let keyword = parts.next().unwrap_or_default();
            if keyword != "HELP" && keyword != "TYPE" {
                continue;
            }
            let name = parts.next().ok_or_else(|| at("no metric name".into()))?;
            if !valid_metric_name(name) {
                return Err(at(format!("invalid metric name '{name}'")));
            }
            let rest = parts.next().unwrap_or_default();
            if finished.iter().any(|f| f == name) {
                return Err(at(format!("{name} appears again after other families")));
            }
            if current.as_deref() != Some(name) {
                if let Some(c) = current.take() {
                    finished.push(c);
                }
                current = Some(name.to_owned());
            }
            let fam = out.families.entry(name.to_owned()).or_default();
            if keyword == "HELP" {
                if fam.help.replace(rest.to_owned()).is_some() {
                    return Err(at("a second HELP line".into()));
                }
            } else {
                if !fam.samples.is_empty() {
                    return Err(at("TYPE after the family's samples".into()));
                }
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&rest) {
                    return Err(at(format!("unknown type '{rest}'")));
                }
                if types.insert(name.to_owned(), rest.to_owned()).is_some() {
                    return Err(at("a second TYPE line".into()));
                }
                fam.kind = rest.to_owned();
            }
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .ok_or_else(|| at("a sample without a value".into()))?;
        let name = &line[..name_end];
        if !valid_metric_name(name) {
            return Err(at(format!("invalid metric name '{name}'")));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(at)?
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let mut fields = rest.split_whitespace();
        let value = parse_value(fields.next().ok_or_else(|| at("no value".into()))?).map_err(at)?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>()
                .map_err(|_| at(format!("invalid timestamp '{ts}'")))?;
        }
        if fields.next().is_some() {
            return Err(at("trailing text after the sample".into()));
        }
        let family = family_of(name, &types);
        if finished.contains(&family) {
            return Err(at(format!("samples of {family} are not contiguous")));
        }
        if current.as_deref() != Some(family.as_str()) {
            if let Some(c) = current.take() {
                finished.push(c);
            }
            current = Some(family.clone());
        }
        let key = format!("{name}{labels:?}");
        if !seen.insert(key) {
            return Err(at("a duplicate sample".into()));
        }
        let fam = out.families.entry(family).or_default();
        if fam.kind.is_empty() {
            fam.kind = "untyped".into();
        }
        fam.samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    // Histograms: cumulative buckets ending in +Inf, which equals the count, and a sum.
    for (name, fam) in &out.families {
        match fam.kind.as_str() {
            "counter" => {
                for s in &fam.samples {
                    if s.value < 0.0 || s.value.is_nan() {
                        return Err(format!("counter {} is {}", s.name, s.value));
                    }
                }
            }
            "histogram" => {
                let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
                for s in fam.samples.iter().filter(|s| s.name.ends_with("_bucket")) {
                    let mut key = s.labels.clone();
                    let le = key
                        .remove("le")
                        .ok_or_else(|| format!("{} without 'le'", s.name))?;
                    series
                        .entry(format!("{key:?}"))
                        .or_default()
                        .push((parse_value(&le)?, s.value));
                }
                for (key, buckets) in series {
                    for w in buckets.windows(2) {
                        if w[0].0 >= w[1].0 || w[0].1 > w[1].1 {
                            return Err(format!(
                                "{name}{key}: buckets not cumulative: {buckets:?}"
                            ));
                        }
                    }
                    let last = buckets.last().ok_or("no bucket")?;
                    if last.0 != f64::INFINITY {
                        return Err(format!("{name}{key}: no +Inf bucket"));
                    }
                    let count = fam
                        .samples
                        .iter()
                        .find(|s| {
                            s.name == format!("{name}_count") && format!("{:?}", s.labels) == key
                        })
                        .ok_or_else(|| format!("{name}{key}: no _count"))?;
                    if count.value != last.1 {
                        return Err(format!("{name}{key}: _count differs from the +Inf bucket"));
                    }
                    if !fam.samples.iter().any(|s| {
                        s.name == format!("{name}_sum") && format!("{:?}", s.labels) == key
                    }) {
                        return Err(format!("{name}{key}: no _sum"));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

#[test]
fn the_parser_refuses_what_prometheus_refuses() {
    assert!(parse_exposition("# TYPE a counter\na 1\n").is_ok());
    assert!(parse_exposition("a 1").is_err(), "no final newline");
    assert!(
        parse_exposition("a{b=\"1} 1\n").is_err(),
        "unterminated label"
    );
    assert!(parse_exposition("a{b=1} 1\n").is_err(), "unquoted label");
    assert!(parse_exposition("a one\n").is_err(), "not a number");
    assert!(parse_exposition("# TYPE a counter\n# TYPE a gauge\na 1\n").is_err());
    assert!(
        parse_exposition("a 1\nb 1\na{x=\"y\"} 2\n").is_err(),
        "not contiguous"
    );
    assert!(parse_exposition("a 1\na 2\n").is_err(), "duplicate");
    assert!(
        parse_exposition(
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n"
        )
        .is_err(),
        "buckets not cumulative"
    );
    assert!(
        parse_exposition("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n").is_err(),
        "no +Inf"
    );
}

// ---------------------------------------------------------------------------------------------

/// Scrapes until the value of `name` with `labels` satisfies `done` (for up to ten seconds, as
/// the router and the hub work asynchronously); returns the last value seen.
async fn metric_until(
    t: &TestApp,
    name: &str,
    labels: &[(&str, &str)],
    done: impl Fn(Option<f64>) -> bool,
) -> Option<f64> {
    let mut value = None;
    for _ in 0..200 {
        value = scrape(t).await.value(name, labels);
        if done(value) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    value
}

async fn scrape(t: &TestApp) -> Exposition {
    let res = t.client.get(t.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let ctype = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    let text = res.text().await.unwrap();
    let parsed = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    for name in parsed.families.keys() {
        assert!(name.starts_with("sportello_"), "{name} lacks the prefix");
    }
    parsed
}

fn created(m: &Exposition, channel: &str) -> f64 {
    m.value("sportello_tickets_created_total", &[("channel", channel)])
        .unwrap_or_else(|| panic!("no ticket counter for {channel}"))
}

fn http_count(m: &Exposition, method: &str, route: &str, status: &str) -> f64 {
    m.value(
        "sportello_http_request_duration_seconds_count",
        &[("method", method), ("route", route), ("status", status)],
    )
    .unwrap_or(0.0)
}

async fn metrics_parse_and_move_with_traffic(t: TestApp) {
    let first = t
        .ticket(
            &t.admin_token,
            json!({"channel": "counter", "subject": "Appuntamento", "category": "counter_appointment"}),
        )
        .await;
    let before = scrape(&t).await;
    for kind in ["counter", "gauge", "histogram"] {
        assert!(
            before.families.values().any(|f| f.kind == kind),
            "no {kind} family"
        );
    }
    // Tickets by status: read from the database, every status present.
    let by_status = before.family("sportello_tickets");
    assert_eq!(by_status.kind, "gauge");
    for s in [
        "new",
        "assigned",
        "open",
        "waiting_citizen",
        "waiting_internal",
        "resolved",
        "closed",
    ] {
        assert!(
            before
                .value("sportello_tickets", &[("status", s)])
                .is_some(),
            "no gauge for {s}"
        );
    }
    let total: f64 = by_status.samples.iter().map(|s| s.value).sum();
    assert_eq!(total, 1.0, "the one ticket is counted");
    assert_eq!(created(&before, "counter"), 1.0);
    for g in [
        "sportello_sla_at_risk_tickets",
        "sportello_sla_breached_tickets",
        "sportello_outbox_backlog",
        "sportello_dashboard_websocket_clients",
    ] {
        assert_eq!(before.family(g).kind, "gauge", "{g}");
    }

    // Tickets created through the API move their channel's counter, and the requests show
    // in the latency histogram under their route template.
    let posts = http_count(&before, "POST", "/api/v1/tickets", "201");
    let reads = http_count(&before, "GET", "/api/v1/tickets/{id}", "200");
    for _ in 0..2 {
        t.ticket(
            &t.admin_token,
            json!({"channel": "email", "subject": "Requisiti", "category": "eligibility"}),
        )
        .await;
    }
    t.ticket(
        &t.admin_token,
        json!({"channel": "phone", "subject": "Telefonata", "category": "eligibility"}),
    )
    .await;
    let (status, _) = t
        .get(
            &format!("/api/v1/tickets/{}", first["id"].as_str().unwrap()),
            &t.admin_token,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let after = scrape(&t).await;
    assert_eq!(created(&after, "email"), created(&before, "email") + 2.0);
    assert_eq!(created(&after, "phone"), created(&before, "phone") + 1.0);
    assert_eq!(created(&after, "counter"), 1.0);
    assert_eq!(
        http_count(&after, "POST", "/api/v1/tickets", "201"),
        posts + 3.0
    );
    assert_eq!(
        http_count(&after, "GET", "/api/v1/tickets/{id}", "200"),
        reads + 1.0
    );
    // The path itself (with the ticket id) never becomes a label.
    assert!(
        after
            .families
            .values()
            .flat_map(|f| f.samples.iter())
            .all(|s| s
                .labels
                .values()
                .all(|v| !v.contains(first["id"].as_str().unwrap()))),
        "a ticket id leaked into a label"
    );
    // A path no route serves is counted as `unmatched`, not by its text.
    let res = t
        .client
        .get(t.url("/no/such/path/12345"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let m = scrape(&t).await;
    assert!(http_count(&m, "GET", "unmatched", "404") >= 1.0);

    // A dashboard connected by websocket is counted while it stays connected.
    assert_eq!(
        m.value("sportello_dashboard_websocket_clients", &[]),
        Some(0.0)
    );
    let mut req = format!("{}/api/v1/dashboard/ws", t.base.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", t.admin_token).parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    // The snapshot arrives once the hub has registered the client.
    ws.next().await.unwrap().unwrap();
    let m = scrape(&t).await;
    assert_eq!(
        m.value("sportello_dashboard_websocket_clients", &[]),
        Some(1.0)
    );
    assert_eq!(
        http_count(&m, "GET", "/api/v1/dashboard/ws", "101"),
        1.0,
        "the upgrade is timed under its route"
    );
    ws.close(None).await.unwrap();
    drop(ws);
    let clients = metric_until(&t, "sportello_dashboard_websocket_clients", &[], |v| {
        v == Some(0.0)
    })
    .await;
    assert_eq!(
        clients,
        Some(0.0),
        "a closed dashboard is no longer counted"
    );

    // The router assigns a waiting ticket: the assignment latency histogram counts it.
    let assigned_before = m
        .value(
            "sportello_assignment_latency_seconds_count",
            &[("tier", "front_office")],
        )
        .unwrap_or(0.0);
    t.available_operator(
        "metrico",
        &["front_office"],
        json!({"tiers": ["front_office"], "capacity": {"email": 10, "phone": 10, "counter": 10}}),
    )
    .await;
    let counted = metric_until(
        &t,
        "sportello_assignment_latency_seconds_count",
        &[("tier", "front_office")],
        |v| v.unwrap_or(0.0) > assigned_before,
    )
    .await
    .unwrap_or(0.0);
    assert!(
        counted > assigned_before,
        "the router's assignments were not counted ({counted})"
    );
}

/// Serves the same application with a `[metrics]` configuration of its own.
async fn serve_with(
    t: &TestApp,
    metrics: sportello_server::metrics::MetricsConfig,
) -> (String, CancellationToken) {
    let config = sportello_server::ServerConfig {
        metrics,
        ..Default::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let router = sportello_server::router(t.app.clone(), config);
    let s = stop.clone();
    tokio::spawn(async move {
        sportello_server::serve(listener, router, async move { s.cancelled().await }).await
    });
    (base, stop)
}

async fn metrics_are_for_this_machine_or_token_holders(t: TestApp) {
    // By default: direct loopback connections only; a request relayed by a proxy is refused
    // (the proxy connects from loopback too), with a problem document.
    let res = t
        .client
        .get(t.url("/metrics"))
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        res.headers().get("content-type").unwrap(),
        "application/problem+json"
    );
    let res = t
        .client
        .get(t.url("/metrics"))
        .header("forwarded", "for=203.0.113.7")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    // With a token: only with it, proxied or not.
    let (base, stop) = serve_with(
        &t,
        sportello_server::metrics::MetricsConfig {
            enabled: true,
            token: Some("scrape-token-0123456789".into()),
        },
    )
    .await;
    let res = t
        .client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = t
        .client
        .get(format!("{base}/metrics"))
        .bearer_auth("wrong-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = t
        .client
        .get(format!("{base}/metrics"))
        .bearer_auth("scrape-token-0123456789")
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.unwrap();
    parse_exposition(&text).unwrap();
    stop.cancel();

    // Switched off: the endpoint is not there at all.
    let (base, stop) = serve_with(
        &t,
        sportello_server::metrics::MetricsConfig {
            enabled: false,
            token: None,
        },
    )
    .await;
    let res = t
        .client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    stop.cancel();
}

async fn readyz(base: &str) -> (StatusCode, Value) {
    let res = reqwest::get(format!("{base}/readyz")).await.unwrap();
    (res.status(), res.json().await.unwrap())
}

async fn readiness_reports_database_mail_and_relay(t: TestApp) {
    // No mail configured: ready, and says so.
    let (status, body) = readyz(&t.base).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["smtp"]["state"], "not_configured");
    assert_eq!(body["checks"]["mailboxes"], json!([]));

    // A mailbox whose IMAP server refuses connections and a relay that answers: the fetcher
    // is running but disconnected, so the instance is degraded yet still serving (200).
    let smtp = mailharness::FakeSmtp::start().await;
    let email = EmailConfig {
        smtp: Some(mailharness::smtp_config(smtp.port)),
        ..mailharness::email_config()
    };
    let config = ServiceConfig {
        email,
        ..ServiceConfig::default()
    };
    let mail = TestApp::spawn_with(&t.database_url, None, config, false).await;
    let (status, body) = readyz(&mail.base).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["checks"]["smtp"]["state"], "ok", "{body}");
    assert!(body["checks"]["smtp"]["checked_at"].is_string(), "{body}");
    assert_eq!(body["checks"]["mailboxes"][0]["name"], mailharness::MAILBOX);
    assert_eq!(
        body["checks"]["mailboxes"][0]["state"], "not_started",
        "{body}"
    );
    assert_eq!(body["status"], "ready", "{body}");

    let stop = CancellationToken::new();
    let tasks = mail.app.start_mail(stop.clone()).unwrap();
    let mut last = Value::Null;
    for _ in 0..200 {
        let (status, body) = readyz(&mail.base).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "a mailbox down keeps the instance in service"
        );
        if body["checks"]["mailboxes"][0]["state"] == "disconnected" {
            last = body;
            break;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        last["checks"]["mailboxes"][0]["state"], "disconnected",
        "{last}"
    );
    assert_eq!(
        last["checks"]["mailboxes"][0]["fetcher"], "running",
        "{last}"
    );
    assert_eq!(last["status"], "degraded", "{last}");
    // Nothing in the report names the server's error (it is unauthenticated).
    assert!(!last.to_string().contains("127.0.0.1"), "{last}");

    // The same state in the metrics.
    let res = mail.client.get(mail.url("/metrics")).send().await.unwrap();
    let m = parse_exposition(&res.text().await.unwrap()).unwrap();
    let mb = [("mailbox", mailharness::MAILBOX)];
    assert_eq!(m.value("sportello_imap_connected", &mb), Some(0.0));
    assert_eq!(
        m.value(
            "sportello_imap_fetcher_state",
            &[("mailbox", mailharness::MAILBOX), ("state", "running")]
        ),
        Some(1.0)
    );
    assert!(m.value("sportello_imap_session_failures", &mb).unwrap() >= 1.0);
    stop.cancel();
    tasks.join().await;
    drop(mail);

    // A relay that cannot be reached: degraded, still serving.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = ServiceConfig {
        email: EmailConfig {
            smtp: Some(mailharness::smtp_config(closed)),
            ..Default::default()
        },
        ..ServiceConfig::default()
    };
    let down = TestApp::spawn_with(&t.database_url, None, config, false).await;
    let (status, body) = readyz(&down.base).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["checks"]["smtp"]["state"], "unreachable", "{body}");
    assert_eq!(body["status"], "degraded", "{body}");
}
