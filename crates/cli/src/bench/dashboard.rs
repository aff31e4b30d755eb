//! `sportello bench dashboard`: websocket clients follow the live dashboard of the in-process
//! server while tickets are created through the API; measures the delay from the API call
//! returning to every client having the delta, and the server's memory.
//!
//! The clients run in a child process (this binary again, `bench dashboard-clients`), so the
//! memory figures of this process are the server's alone. The two compare wall-clock
//! timestamps, which on one machine share a clock.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use futures::StreamExt;
use sea_orm::{ActiveValue::Set, EntityTrait};
use serde_json::json;
use sportello_store::entities::user;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::{Running, ms, percentile};

const CATEGORIES: [&str; 8] = [
    "eligibility",
    "how_to_apply",
    "application_status",
    "missing_documents",
    "payments",
    "isee",
    "outcome_appeal",
    "changes",
];

/// Microseconds since the epoch: comparable between the two processes.
fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// A figure of /proc/<pid>/status, in KiB (Linux).
fn status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
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

fn check_open_files(connections: usize) -> anyhow::Result<()> {
    let needed = connections as u64 + 256;
    if let Some(limit) = open_files_limit()
        && limit < needed
    {
        bail!(
            "{connections} connections need about {needed} open files but the limit is {limit}: raise it first (ulimit -n {})",
            needed.next_power_of_two()
        );
    }
    Ok(())
}

fn mib(kib: Option<u64>) -> String {
    kib.map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
        .unwrap_or_else(|| "n/a".into())
}

/// A realistic board: operators with profiles (front and back office, most available) and a
/// backlog of tickets across channels and categories, so snapshots have the size they would
/// have in service.
async fn seed(r: &Running, operators: usize, backlog: usize) -> anyhow::Result<()> {
    for i in 0..operators {
        let back = i % 4 == 3;
        let tier = if back { "back_office" } else { "front_office" };
        // Inserted directly: these operators never sign in, and hashing 40 passwords (argon2
        // takes 19 MiB a time) would leave the allocator holding memory that the figures below
        // would then charge to the dashboard.
        let id = uuid::Uuid::now_v7();
        let at = chrono::Utc::now();
        let am = user::ActiveModel {
            id: Set(id),
            username: Set(format!("dashop{i}")),
            name: Set(format!("Operatore {i}")),
            password_hash: Set("!not-a-password-hash".into()),
            roles: Set(tier.into()),
            active: Set(true),
            created_at: Set(at),
            updated_at: Set(at),
        };
        user::Entity::insert(am)
            .exec_without_returning(&r.app.db().write)
            .await?;
        let profile = json!({"tiers": [tier], "skills": {}, "capacity": {"email": 4, "phone": 1, "web": 4, "counter": 1}});
        let presence = [
            "available",
            "available",
            "available",
            "busy",
            "break",
            "offline",
        ][i % 6];
        for (path, body) in [
            (format!("/api/v1/users/{id}/routing"), profile),
            (
                format!("/api/v1/users/{id}/presence"),
                json!({"state": presence}),
            ),
        ] {
            r.client
                .put(format!("{}{path}", r.base))
                .bearer_auth(&r.token)
                .json(&body)
                .send()
                .await?
                .error_for_status()?;
        }
    }
    for i in 0..backlog {
        let channel = ["phone", "email", "counter", "web"][i % 4];
        let category = CATEGORIES[i % CATEGORIES.len()];
        let tier = if i % 5 == 4 {
            "back_office"
        } else {
            "front_office"
        };
        let body = json!({
            "channel": channel,
            "subject": format!("Pratica {i}"),
            "category": category,
            "tier": tier,
        });
        let res = r
            .client
            .post(format!("{}/api/v1/tickets", r.base))
            .bearer_auth(&r.token)
            .json(&body)
            .send()
            .await?;
        anyhow::ensure!(res.status() == 201, "seeding answered {}", res.status());
    }
    // Let the router take what it can before the measurement starts.
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(())
}

/// Lines the client process prints: `ready N`, then `got ID T1 T2 …` once every client has
/// ticket ID's `ticket_created` delta (Tn: microseconds since the epoch).
fn spawn_clients(
    url: &str,
    token: &str,
    clients: usize,
) -> anyhow::Result<(
    std::process::Child,
    tokio::sync::mpsc::UnboundedReceiver<String>,
)> {
    let exe = std::env::current_exe().context("cannot find this program to start the clients")?;
    let mut child = Command::new(exe)
        .args([
            "bench",
            "dashboard-clients",
            "--url",
            url,
            "--clients",
            &clients.to_string(),
        ])
        .env("SPORTELLO_TOKEN", token)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start the client process")?;
    let stdout = child
        .stdout
        .take()
        .context("no output from the client process")?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Ok((child, rx))
}

pub(super) async fn bench_dashboard(
    r: &Running,
    clients: usize,
    tickets: usize,
    operators: usize,
    backlog: usize,
    backend: &str,
) -> anyhow::Result<()> {
    check_open_files(clients)?;
    seed(r, operators, backlog).await?;
    let res = r
        .client
        .get(format!("{}/api/v1/dashboard", r.base))
        .bearer_auth(&r.token)
        .send()
        .await?;
    anyhow::ensure!(
        res.status().is_success(),
        "GET /api/v1/dashboard answered {}",
        res.status()
    );
    let snapshot_bytes = res.text().await?.len();
    let rss_before = status_kib("self", "VmRSS:");
    let url = format!("{}/api/v1/dashboard/ws", r.base.replace("http://", "ws://"));
    let started = std::time::Instant::now();
    let (mut child, mut lines) = spawn_clients(&url, &r.token, clients)?;
    let child_pid = child.id().to_string();
    let result = async {
        match tokio::time::timeout(Duration::from_secs(120), lines.recv()).await {
            Ok(Some(l)) if l.starts_with("ready") => {}
            other => bail!("the clients did not all connect: {other:?}"),
        }
        let connect_time = started.elapsed();
        let rss_connected = status_kib("self", "VmRSS:");
        println!(
            "bench dashboard: backend={backend} clients={clients} tickets={tickets} operators={operators} backlog={backlog} (snapshot {:.1} KiB)",
            snapshot_bytes as f64 / 1024.0
        );
        println!("  {clients} clients connected with their snapshot in {:.2} s", connect_time.as_secs_f64());
        let mut all = Vec::with_capacity(tickets);
        let mut each = Vec::with_capacity(tickets * clients);
        let mut api = Vec::with_capacity(tickets);
        let mut pending: HashMap<String, Vec<u64>> = HashMap::new();
        for i in 0..tickets {
            let channel = ["phone", "email", "counter", "web"][i % 4];
            let category = CATEGORIES[i % CATEGORIES.len()];
            let body = json!({ "channel": channel, "subject": format!("Richiesta {i}"), "category": category });
            let sent = std::time::Instant::now();
            let res = r
                .client
                .post(format!("{}/api/v1/tickets", r.base))
                .bearer_auth(&r.token)
                .json(&body)
                .send()
                .await?;
            let returned = now_us();
            api.push(sent.elapsed());
            anyhow::ensure!(res.status() == 201, "create answered {}", res.status());
            let id = res.json::<serde_json::Value>().await?["id"]
                .as_str()
                .context("ticket id")?
                .to_owned();
            let times = loop {
                if let Some(t) = pending.remove(&id) {
                    break t;
                }
                let line = match tokio::time::timeout(Duration::from_secs(30), lines.recv()).await {
                    Ok(Some(l)) => l,
                    _ => bail!("ticket {i}: not every client had the delta within 30 s"),
                };
                let mut parts = line.split_whitespace();
                if parts.next() == Some("got")
                    && let Some(got) = parts.next()
                {
                    pending.insert(got.to_owned(), parts.filter_map(|p| p.parse().ok()).collect());
                }
            };
            // A delta may even arrive before the HTTP answer: that counts as no delay.
            let delay = |t: u64| Duration::from_micros(t.saturating_sub(returned));
            all.push(delay(times.iter().copied().max().unwrap_or(returned)));
            each.extend(times.iter().map(|t| delay(*t)));
            // Spread the tickets so snapshot refreshes (at most one a second) interleave.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        all.sort();
        each.sort();
        api.sort();
        println!("  API create latency: p50 {}  p99 {}", ms(percentile(&api, 0.5)), ms(percentile(&api, 0.99)));
        println!(
            "  delay from the API answer to EVERY client having the delta: p50 {}  p90 {}  p99 {}  max {}",
            ms(percentile(&all, 0.5)),
            ms(percentile(&all, 0.9)),
            ms(percentile(&all, 0.99)),
            ms(all.last().copied().unwrap_or_default())
        );
        println!("  delay per client delivery: p50 {}  p99 {}", ms(percentile(&each, 0.5)), ms(percentile(&each, 0.99)));
        println!(
            "  server process memory: RSS before clients {}  with clients {}  after the tickets {}  peak (VmHWM) {}",
            mib(rss_before),
            mib(rss_connected),
            mib(status_kib("self", "VmRSS:")),
            mib(status_kib("self", "VmHWM:"))
        );
        println!(
            "  client process memory ({clients} clients): RSS {}",
            mib(status_kib(&child_pid, "VmRSS:"))
        );
        Ok(())
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// The client side, in its own process: connects `clients` websockets, says `ready`, and
/// reports each ticket once every client has its `ticket_created` delta.
pub(super) async fn run_clients(url: &str, clients: usize) -> anyhow::Result<()> {
    let token = std::env::var("SPORTELLO_TOKEN").context("SPORTELLO_TOKEN is not set")?;
    check_open_files(clients)?;
    let arrivals: Arc<Mutex<HashMap<String, Vec<u64>>>> = Arc::new(Mutex::new(HashMap::new()));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(clients.max(1));
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<(String, Vec<u64>)>();
    for i in 0..clients {
        tokio::spawn(client(
            url.to_owned(),
            token.clone(),
            clients,
            arrivals.clone(),
            ready_tx.clone(),
            done_tx.clone(),
        ));
        // Connect in waves, so the listen backlog never overflows.
        if i % 200 == 199 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    drop(ready_tx);
    drop(done_tx);
    for n in 0..clients {
        if tokio::time::timeout(Duration::from_secs(60), ready_rx.recv())
            .await
            .ok()
            .flatten()
            .is_none()
        {
            bail!("only {n} of {clients} clients got their first snapshot within a minute");
        }
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {clients}")?;
    out.flush()?;
    drop(out);
    while let Some((id, times)) = done_rx.recv().await {
        let mut line = format!("got {id}");
        for t in times {
            line.push(' ');
            line.push_str(&t.to_string());
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    Ok(())
}

async fn client(
    url: String,
    token: String,
    clients: usize,
    arrivals: Arc<Mutex<HashMap<String, Vec<u64>>>>,
    ready: tokio::sync::mpsc::Sender<()>,
    done: tokio::sync::mpsc::UnboundedSender<(String, Vec<u64>)>,
) -> anyhow::Result<()> {
    let mut req = url.as_str().into_client_request()?;
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}"))?,
    );
    // Small buffers (the default read buffer is 128 KiB): thousands of clients in one process.
    let config = WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(req, Some(config), true)
        .await
        .context("websocket connect")?;
    let mut announced = false;
    while let Some(msg) = ws.next().await {
        let Message::Text(text) = msg? else { continue };
        let at = now_us();
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
        let Some(id) = v["ticket_id"].as_str() else {
            continue;
        };
        let complete = {
            let Ok(mut a) = arrivals.lock() else { continue };
            let times = a.entry(id.to_owned()).or_default();
            times.push(at);
            if times.len() == clients {
                a.remove(id)
            } else {
                None
            }
        };
        if let Some(times) = complete {
            let _ = done.send((id.to_owned(), times));
        }
    }
    Ok(())
}
