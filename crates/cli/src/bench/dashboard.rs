//! `sportello bench dashboard`: websocket clients follow the live dashboard of the in-process
//! server while tickets are created through the API; measures the delay from the API call
//! returning to every client having the delta, and the process's memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use super::{Running, ms, percentile};

/// When each client saw each ticket's `ticket_created` delta.
type Arrivals = Arc<Mutex<HashMap<String, Vec<Instant>>>>;

/// A figure of /proc/self/status, in KiB (Linux).
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The soft limit on open files (Linux).
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn mib(kib: Option<u64>) -> String {
    kib.map(|k| format!("{:.1} MiB", k as f64 / 1024.0)).unwrap_or_else(|| "n/a".into())
}

async fn client(url: String, token: String, arrivals: Arrivals, ready: tokio::sync::mpsc::Sender<()>) -> anyhow::Result<()> {
    let mut req = url.as_str().into_client_request()?;
    req.headers_mut().insert("authorization", HeaderValue::from_str(&format!("Bearer {token}"))?);
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.context("websocket connect")?;
    let mut announced = false;
    while let Some(msg) = ws.next().await {
        let Message::Text(text) = msg? else { continue };
        let at = Instant::now();
        let text = text.as_str();
        if !announced && text.starts_with("{\"type\":\"snapshot\"") {
            announced = true;
            let _ = ready.send(()).await;
            continue;
        }
        // Snapshots and heartbeats are skipped unparsed; only deltas are read.
        if !text.starts_with("{\"type\":\"delta\"") || !text.contains("\"ticket_created\"") {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(text)?;
        if let Some(id) = v["ticket_id"].as_str()
            && let Ok(mut a) = arrivals.lock()
        {
            a.entry(id.to_owned()).or_default().push(at);
        }
    }
    Ok(())
}

pub(super) async fn bench_dashboard(r: &Running, clients: usize, tickets: usize, backend: &str) -> anyhow::Result<()> {
    let needed = clients as u64 * 2 + 256;
    if let Some(limit) = open_files_limit()
        && limit < needed
    {
        bail!("{clients} clients need about {needed} open files but the limit is {limit}: raise it first (ulimit -n {})", needed.next_power_of_two());
    }
    let rss_before = status_kib("VmRSS:");
    let url = format!("{}/api/v1/dashboard/ws", r.base.replace("http://", "ws://"));
    let arrivals: Arrivals = Arc::new(Mutex::new(HashMap::new()));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(clients.max(1));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        tasks.push(tokio::spawn(client(url.clone(), r.token.clone(), arrivals.clone(), ready_tx.clone())));
        // Connect in waves, so the listen backlog never overflows.
        if i % 200 == 199 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    drop(ready_tx);
    let mut connected = 0;
    while connected < clients {
        match tokio::time::timeout(Duration::from_secs(60), ready_rx.recv()).await {
            Ok(Some(())) => connected += 1,
            _ => bail!("only {connected} of {clients} clients got their first snapshot within a minute"),
        }
    }
    let connect_time = started.elapsed();
    let rss_connected = status_kib("VmRSS:");
    println!("bench dashboard: backend={backend} clients={clients} tickets={tickets}");
    println!("  {clients} clients connected with their snapshot in {:.2} s", connect_time.as_secs_f64());

    let mut all = Vec::with_capacity(tickets);
    let mut each = Vec::with_capacity(tickets * clients);
    let mut api = Vec::with_capacity(tickets);
    for i in 0..tickets {
        let channel = ["phone", "email", "counter", "web"][i % 4];
        let body = json!({ "channel": channel, "subject": format!("Richiesta {i}"), "category": "application_status" });
        let sent = Instant::now();
        let res = r.client.post(format!("{}/api/v1/tickets", r.base)).bearer_auth(&r.token).json(&body).send().await?;
        let returned = Instant::now();
        anyhow::ensure!(res.status() == 201, "create answered {}", res.status());
        let id = res.json::<serde_json::Value>().await?["id"].as_str().context("ticket id")?.to_owned();
        api.push(returned - sent);
        let deadline = Instant::now() + Duration::from_secs(30);
        let times = loop {
            let done = arrivals.lock().ok().and_then(|a| a.get(&id).filter(|v| v.len() >= clients).cloned());
            if let Some(times) = done {
                break times;
            }
            if Instant::now() > deadline {
                let got = arrivals.lock().ok().and_then(|a| a.get(&id).map(Vec::len)).unwrap_or(0);
                bail!("ticket {i}: only {got} of {clients} clients had the delta after 30 s");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        // A delta may even arrive before the HTTP answer: that counts as no delay.
        let last = times.iter().max().copied().unwrap_or(returned);
        all.push(last.saturating_duration_since(returned));
        each.extend(times.iter().map(|t| t.saturating_duration_since(returned)));
        // Spread the tickets so snapshot refreshes (at most one a second) interleave.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rss_after = status_kib("VmRSS:");
    let hwm = status_kib("VmHWM:");
    all.sort();
    each.sort();
    api.sort();
    println!(
        "  API create latency: p50 {}  p99 {}",
        ms(percentile(&api, 0.5)),
        ms(percentile(&api, 0.99))
    );
    println!(
        "  delay from the API answer to EVERY client having the delta: p50 {}  p90 {}  p99 {}  max {}",
        ms(percentile(&all, 0.5)),
        ms(percentile(&all, 0.9)),
        ms(percentile(&all, 0.99)),
        ms(all.last().copied().unwrap_or_default())
    );
    println!(
        "  delay per client delivery: p50 {}  p99 {}",
        ms(percentile(&each, 0.5)),
        ms(percentile(&each, 0.99))
    );
    println!(
        "  memory of this process (server and all clients): RSS before {}  connected {}  after {}  peak (VmHWM) {}",
        mib(rss_before),
        mib(rss_connected),
        mib(rss_after),
        mib(hwm)
    );
    for t in tasks {
        t.abort();
    }
    Ok(())
}
