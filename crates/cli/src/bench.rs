//! `sportello bench`: throughput and latency figures measured through the real HTTP API, for
//! docs/benchmarks.md. Runs the server in-process on a loopback port against a scratch
//! database (a temporary SQLite file, or the PostgreSQL given with `--database-url`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use clap::Subcommand;
use sea_orm::{ActiveValue::Set, EntityTrait, TransactionTrait};
use serde_json::json;
use sportello_service::App;
use sportello_store::entities::ticket;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::Config;

mod dashboard;
mod report;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Tickets created per second through POST /api/v1/tickets.
    Create {
        /// How many tickets to create.
        #[arg(long, default_value_t = 20_000)]
        tickets: usize,
        /// Concurrent HTTP clients.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    /// Latency of filtered first pages of GET /api/v1/tickets over a large table.
    List {
        /// Tickets to store before measuring.
        #[arg(long, default_value_t = 1_000_000)]
        seed: usize,
        /// Requests per query shape.
        #[arg(long, default_value_t = 300)]
        requests: usize,
    },
    /// CDR rows imported per second: a synthetic Master.csv through the import-cdr code, then
    /// the same file again (which changes nothing).
    Cdr {
        /// Rows (calls) in the synthetic file.
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
    },
    /// Native webhook events recorded per second through POST /api/v1/channels/phone/events,
    /// one event per request.
    Webhook {
        /// How many events to send.
        #[arg(long, default_value_t = 20_000)]
        events: usize,
        /// Concurrent HTTP clients.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
    /// Counter bookings under contention: many clients booking the slots of one day at once.
    Counter {
        /// Booking attempts (more than the day's capacity, so many are refused).
        #[arg(long, default_value_t = 3_000)]
        attempts: usize,
        /// Concurrent HTTP clients.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    /// Routing: one assignment decision with 10,000 waiting tickets and 500 operators (pure
    /// engine), then sustained assignments per second through the service and the database.
    Assign {
        /// Waiting tickets to assign through the service.
        #[arg(long, default_value_t = 10_000)]
        tickets: usize,
        /// Operators sharing them (capacity is tickets / operators each).
        #[arg(long, default_value_t = 200)]
        operators: usize,
    },
    /// E-mail ingest: APPENDs a mailbox of Italian messages (ISO-8859-1 8-bit, UTF-8
    /// quoted-printable, HTML) to the test Dovecot (SPORTELLO_TEST_IMAP_* variables, see
    /// deploy/scripts/test-services.sh), then measures messages/s through the real IMAP fetcher
    /// and sink into tickets, peak memory, and bodies whose text came out damaged.
    Mail {
        /// Messages in the mailbox.
        #[arg(long, default_value_t = 5_000)]
        messages: usize,
        /// Messages fetched and stored per transaction (the mailbox's `batch_size`).
        #[arg(long, default_value_t = 100)]
        batch_size: usize,
    },
    /// The live dashboard: websocket clients follow /api/v1/dashboard/ws while tickets are
    /// created; the p99 delay from the API call returning to every client having the delta,
    /// and the process's memory. Needs about two open files per client: `ulimit -n 8192`.
    Dashboard {
        /// Websocket clients connected at once.
        #[arg(long, default_value_t = 2_000)]
        clients: usize,
        /// Tickets created, one at a time, while they watch.
        #[arg(long, default_value_t = 100)]
        tickets: usize,
        /// Operators with routing profiles on the board.
        #[arg(long, default_value_t = 40)]
        operators: usize,
        /// Tickets in the queues before the clients connect.
        #[arg(long, default_value_t = 300)]
        backlog: usize,
    },
    /// Reports: the monthly contacts, applications and payments reports (JSON, CSV, XLSX)
    /// through GET /api/v1/reports/... over a year of tickets and applications.
    Report {
        /// Tickets spread over the year before now.
        #[arg(long, default_value_t = 1_000_000)]
        tickets: usize,
        /// Applications over the same year (with their payments).
        #[arg(long, default_value_t = 100_000)]
        applications: usize,
    },
    /// The client side of `bench dashboard`, in a process of its own (token in SPORTELLO_TOKEN).
    #[command(hide = true)]
    DashboardClients {
        #[arg(long)]
        url: String,
        #[arg(long)]
        clients: usize,
    },
}

/// The integration token the webhook benchmark configures.
const BENCH_PHONE_TOKEN: &str = "bench-native-token-0123456789";

/// Extensions 201–212 (those of the synthetic CDR files) mapped to operators, and a native
/// integration for the webhook benchmark.
fn bench_phone(cfg: &mut Config) {
    use sportello_service::phone::sportello_phone::{Integration, IntegrationKind, Token};
    cfg.phone.integrations = vec![Integration {
        name: "bench".into(),
        kind: IntegrationKind::Native,
        token: Token::new(BENCH_PHONE_TOKEN),
    }];
    cfg.phone.extensions = (201..=212)
        .map(|e| (e.to_string(), format!("op{e}")))
        .collect();
}

async fn bench_operators(app: &App) -> anyhow::Result<()> {
    for e in 201..=212 {
        let created = app
            .create_user_cli(sportello_service::auth::NewUser {
                username: format!("op{e}"),
                password: PASSWORD.into(),
                name: format!("Operatore {e}"),
                roles: vec!["front_office".into()],
            })
            .await;
        match created {
            // An earlier run on the same database (--database-url) made them already.
            Ok(_) | Err(sportello_service::ServiceError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

const PASSWORD: &str = "bench-password-123";

struct Running {
    base: String,
    token: String,
    client: reqwest::Client,
    app: App,
    stop: CancellationToken,
    _dir: Option<TempDir>,
}

/// A scratch directory removed on drop.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn start(cfg: &Config, explicit_db: bool) -> anyhow::Result<Running> {
    let mut cfg = cfg.clone();
    let mut dir = None;
    if !explicit_db {
        let d = std::env::temp_dir().join(format!("sportello-bench-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&d)?;
        cfg.database.url = format!("sqlite://{}/bench.db?mode=rwc", d.display());
        dir = Some(TempDir(d));
    }
    let app = crate::open_app(&cfg).await?;
    let login = format!("bench{}", &Uuid::now_v7().simple().to_string()[20..]);
    app.create_user_cli(sportello_service::auth::NewUser {
        username: login.clone(),
        password: PASSWORD.into(),
        name: "Bench".into(),
        roles: vec!["supervisor".into()],
    })
    .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let stop = CancellationToken::new();
    let router = sportello_server::router(app.clone(), cfg.server.clone());
    let s = stop.clone();
    tokio::spawn(async move {
        sportello_server::serve(listener, router, async move { s.cancelled().await }).await
    });
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let res: serde_json::Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({ "username": login, "password": PASSWORD }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = res["token"]
        .as_str()
        .context("no token in login answer")?
        .to_owned();
    Ok(Running {
        base,
        token,
        client,
        app,
        stop,
        _dir: dir,
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

pub async fn run(cmd: BenchCommand, cfg: Config) -> anyhow::Result<()> {
    let explicit_db = std::env::args().any(|a| a.starts_with("--database-url"))
        || std::env::var("SPORTELLO__DATABASE__URL").is_ok();
    let mut cfg = cfg;
    if let BenchCommand::DashboardClients { url, clients } = &cmd {
        return dashboard::run_clients(url, *clients).await;
    }
    if let BenchCommand::Mail {
        messages,
        batch_size,
    } = cmd
    {
        return mail::bench_mail(cfg, explicit_db, messages, batch_size).await;
    }
    if matches!(cmd, BenchCommand::Cdr { .. } | BenchCommand::Webhook { .. }) {
        bench_phone(&mut cfg);
    }
    let r = start(&cfg, explicit_db).await?;
    let backend = format!("{:?}", r.app.db().backend());
    let result = match cmd {
        BenchCommand::Create {
            tickets,
            concurrency,
        } => bench_create(&r, tickets, concurrency, &backend).await,
        BenchCommand::List { seed, requests } => bench_list(&r, seed, requests, &backend).await,
        BenchCommand::Counter {
            attempts,
            concurrency,
        } => bench_counter(&r, attempts, concurrency, &backend).await,
        BenchCommand::Assign { tickets, operators } => {
            bench_assign(&r, tickets, operators, &backend).await
        }
        BenchCommand::Cdr { rows } => bench_cdr(&r, rows, &backend).await,
        BenchCommand::Webhook {
            events,
            concurrency,
        } => bench_webhook(&r, events, concurrency, &backend).await,
        BenchCommand::Dashboard {
            clients,
            tickets,
            operators,
            backlog,
        } => dashboard::bench_dashboard(&r, clients, tickets, operators, backlog, &backend).await,
        BenchCommand::Report {
            tickets,
            applications,
        } => report::bench_report(&r, tickets, applications, &backend).await,
        // Handled before the server starts: the mailbox must be filled first; the dashboard's
        // clients run in their own process.
        BenchCommand::Mail { .. } | BenchCommand::DashboardClients { .. } => Ok(()),
    };
    r.stop.cancel();
    result
}

async fn bench_create(
    r: &Running,
    total: usize,
    concurrency: usize,
    backend: &str,
) -> anyhow::Result<()> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (client, url, token, next) = (
            r.client.clone(),
            format!("{}/api/v1/tickets", r.base),
            r.token.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let channel = ["phone", "email", "counter", "web"][i % 4];
                let body = json!({
                    "channel": channel,
                    "subject": format!("Richiesta informazioni {i}"),
                    "body": "Buongiorno, vorrei sapere a che punto è la mia domanda.",
                    "category": "application_status",
                    "measure": "income_support",
                    "citizen": { "name": format!("Cittadino {}", i % 5000), "emails": [format!("c{}@example.org", i % 5000)] }
                });
                let t = Instant::now();
                let res = client.post(&url).bearer_auth(&token).json(&body).send().await?;
                anyhow::ensure!(res.status() == 201, "create answered {}: {}", res.status(), res.text().await.unwrap_or_default());
                lat.push(t.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    let elapsed = started.elapsed();
    lat.sort();
    println!("bench create: backend={backend} tickets={total} concurrency={concurrency}");
    println!(
        "  elapsed {:.2} s, {:.0} tickets/s",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  latency p50 {}  p90 {}  p99 {}",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.9)),
        ms(percentile(&lat, 0.99))
    );
    Ok(())
}

/// Inserts `n` tickets straight into the table in large batches (setup, not measured).
async fn seed(app: &App, n: usize) -> anyhow::Result<Vec<Uuid>> {
    let statuses = [
        "new",
        "assigned",
        "open",
        "waiting_citizen",
        "resolved",
        "closed",
        "closed",
        "closed",
    ];
    let channels = ["phone", "email", "counter", "web"];
    let categories = [
        "eligibility",
        "application_status",
        "payments",
        "isee",
        "missing_documents",
    ];
    let assignees: Vec<Uuid> = (0..50).map(|_| Uuid::now_v7()).collect();
    let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let started = Instant::now();
    let base_time = Utc::now() - chrono::Duration::days(365);
    let db = &app.db().write;
    let batch = 1000;
    let mut done = 0;
    while done < n {
        let txn = db.begin().await?;
        let rows: Vec<ticket::ActiveModel> = (done..(done + batch).min(n))
            .map(|i| {
                let status = statuses[(next() % statuses.len() as u64) as usize];
                let assigned = !matches!(status, "new");
                let at = base_time + chrono::Duration::seconds(i as i64 * 30);
                ticket::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    number: Set(format!("BN-2025-{i:07}")),
                    channel: Set(channels[(next() % 4) as usize].into()),
                    tier: Set(if next() % 5 == 0 {
                        "back_office"
                    } else {
                        "front_office"
                    }
                    .into()),
                    status: Set(status.into()),
                    priority: Set("normal".into()),
                    category: Set(Some(categories[(next() % 5) as usize].into())),
                    measure: Set(Some("income_support".into())),
                    subject: Set(format!("Richiesta {i}")),
                    citizen_id: Set(None),
                    assignee_id: Set(None),
                    tags: Set("[]".into()),
                    created_by: Set(None),
                    created_at: Set(at),
                    updated_at: Set(at),
                    first_response_at: Set(None),
                    resolved_at: Set(None),
                    closed_at: Set(None),
                    sla_due_at: Set(assigned.then_some(at)),
                }
            })
            .collect();
        ticket::Entity::insert_many(rows)
            .exec_without_returning(&txn)
            .await?;
        txn.commit().await?;
        done = (done + batch).min(n);
        if done % 100_000 == 0 {
            eprintln!(
                "  seeded {done}/{n} ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(assignees)
}

async fn bench_list(r: &Running, n: usize, requests: usize, backend: &str) -> anyhow::Result<()> {
    seed(&r.app, n).await?;
    // Let the planner know the table's shape, as a production database's autovacuum would.
    let analyze = sea_orm::Statement::from_string(r.app.db().backend(), "ANALYZE");
    sea_orm::ConnectionTrait::execute_raw(&r.app.db().write, analyze).await?;
    println!("bench list: backend={backend} tickets={n} requests per query={requests}");
    let shapes = [
        (
            "queue: status=new&tier=front_office, oldest first",
            "status=new&tier=front_office&order=asc&limit=50",
        ),
        ("status=open,assigned", "status=open,assigned&limit=50"),
        (
            "channel=email&status=waiting_citizen",
            "channel=email&status=waiting_citizen&limit=50",
        ),
        ("category=payments", "category=payments&limit=50"),
        ("no filter", "limit=50"),
    ];
    for (label, qs) in shapes {
        let url = format!("{}/api/v1/tickets?{qs}", r.base);
        let mut lat = Vec::with_capacity(requests);
        for _ in 0..requests {
            let t = Instant::now();
            let res = r.client.get(&url).bearer_auth(&r.token).send().await?;
            anyhow::ensure!(res.status() == 200, "list answered {}", res.status());
            let _ = res.bytes().await?;
            lat.push(t.elapsed());
        }
        lat.sort();
        println!(
            "  {label:<55} p50 {:>9}  p99 {:>9}",
            ms(percentile(&lat, 0.5)),
            ms(percentile(&lat, 0.99))
        );
    }
    Ok(())
}

async fn bench_cdr(r: &Running, rows: usize, backend: &str) -> anyhow::Result<()> {
    use sportello_service::phone::sportello_phone::{measure_cdr_parse, synth::synthetic_cdr};
    bench_operators(&r.app).await?;
    let synth = synthetic_cdr(rows, 42);
    let bytes = synth.csv.into_bytes();
    let parse = measure_cdr_parse(&bytes, r.app.config().phone.cdr_timezone);
    println!(
        "bench cdr: backend={backend} rows={rows} file={:.1} MB",
        bytes.len() as f64 / 1e6
    );
    println!(
        "  parse only        {:>9.0} rows/s",
        parse.rows as f64 / parse.elapsed.as_secs_f64()
    );
    for pass in ["first import", "re-import"] {
        let started = Instant::now();
        let imported = crate::import_cdr::import_reader(
            &r.app,
            "bench-cdr",
            std::io::Cursor::new(bytes.clone()),
            crate::import_cdr::BATCH_ROWS,
            &indicatif::ProgressBar::hidden(),
        )
        .await?;
        let elapsed = started.elapsed();
        anyhow::ensure!(
            imported.rejected.is_empty(),
            "synthetic rows were rejected: {}",
            imported.rejected[0]
        );
        println!(
            "  {pass:<17} {:>9.0} rows/s ({:.2} s: {} new, {} already present)",
            rows as f64 / elapsed.as_secs_f64(),
            elapsed.as_secs_f64(),
            imported.new,
            imported.known
        );
    }
    Ok(())
}

async fn bench_webhook(
    r: &Running,
    total: usize,
    concurrency: usize,
    backend: &str,
) -> anyhow::Result<()> {
    use sportello_service::phone::sportello_phone::{native_json, synth::synthetic_cdr};
    bench_operators(&r.app).await?;
    let zone = r.app.config().phone.cdr_timezone;
    let synth = synthetic_cdr(total / 2 + 1, 11);
    let bodies: Vec<String> =
        sportello_service::phone::sportello_phone::CdrReader::new(synth.csv.as_bytes(), zone)
            .filter_map(Result::ok)
            .flat_map(|row| row.to_events("bench"))
            .take(total)
            .map(|e| native_json(&e).to_string())
            .collect();
    let bodies = Arc::new(bodies);
    let total = bodies.len();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let url = format!("{}/api/v1/channels/phone/events", r.base);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (client, url, bodies, next) =
            (r.client.clone(), url.clone(), bodies.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let t = Instant::now();
                let res = client
                    .post(&url)
                    .bearer_auth(BENCH_PHONE_TOKEN)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await?;
                anyhow::ensure!(
                    res.status() == 200,
                    "webhook answered {}: {}",
                    res.status(),
                    res.text().await.unwrap_or_default()
                );
                lat.push(t.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    let elapsed = started.elapsed();
    lat.sort();
    println!("bench webhook: backend={backend} events={total} concurrency={concurrency}");
    println!(
        "  elapsed {:.2} s, {:.0} events/s",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  latency p50 {}  p90 {}  p99 {}",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.9)),
        ms(percentile(&lat, 0.99))
    );
    Ok(())
}

/// `bench mail`: e-mail ingest from a real Dovecot mailbox into tickets.
mod mail {
    use std::collections::HashMap;
    use std::time::{Duration, Instant};

    use anyhow::Context;
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect};
    use sportello_domain::EmailAddress;
    use sportello_service::mail::sportello_mail::TlsMode;
    use sportello_service::mail::sportello_mail::imap::{MailboxConfig, connect};
    use sportello_store::entities::{mail_message, ticket_entry};
    use tokio_util::sync::CancellationToken;
    use uuid::Uuid;

    use super::TempDir;
    use crate::config::Config;

    fn env(name: &str) -> anyhow::Result<String> {
        std::env::var(name).with_context(|| {
            format!(
                "{name} is not set: start the test services with \
                 eval \"$(deploy/scripts/test-services.sh start /tmp/svc)\""
            )
        })
    }

    /// The sentences citizens write, with the accented letters decoders get wrong.
    const SENTENCES: &[&str] = &[
        "Buongiorno, la mia pratica è ferma da tre settimane: perché?",
        "Città di Milano, via Sant'Antonio 12: è lì che abito da più di un anno.",
        "Ho già inviato l'ISEE; cosa manca ancora? Così non va.",
        "Vorrei sapere se il contributo B2 è compatibile con l'indennità.",
        "Grazie per l'attenzione, cordiali saluti. «Urgente»: 37,5 °C di febbre.",
        "Sono la figlia di una persona non autosufficiente: può chiamarmi lunedì?",
    ];

    fn text_of(i: usize, utf8: bool) -> String {
        let mut t = format!(
            "{} {} Pratica n. {i}.",
            SENTENCES[i % SENTENCES.len()],
            SENTENCES[(i / SENTENCES.len() + 1) % SENTENCES.len()]
        );
        if utf8 {
            // Outside Latin-1: the euro sign and Outlook's typographic apostrophe.
            t.push_str(" Costo: 15 € — l’importo è giusto?");
        }
        t
    }

    fn latin1(s: &str) -> Vec<u8> {
        s.chars()
            .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
            .collect()
    }

    fn quoted_printable(bytes: &[u8]) -> String {
        let mut out = String::new();
        let mut line = 0;
        for &b in bytes {
            let piece = if (b.is_ascii_graphic() && b != b'=') || b == b' ' {
                (b as char).to_string()
            } else {
                format!("={b:02X}")
            };
            if line + piece.len() > 75 {
                out.push_str("=\r\n");
                line = 0;
            }
            line += piece.len();
            out.push_str(&piece);
        }
        out
    }

    fn base64(bytes: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for (n, chunk) in bytes.chunks(3).enumerate() {
            if n > 0 && n % 19 == 0 {
                out.push_str("\r\n");
            }
            let b = [
                chunk[0],
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for k in 0..4 {
                if k <= chunk.len() {
                    out.push(A[((v >> (18 - 6 * k)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    /// Message `i`: its Message-ID, raw bytes, and the subject and text it must decode to.
    fn sample(i: usize, run: &str) -> (String, Vec<u8>, String, String) {
        let id = format!("bench-{run}-{i}@example.it");
        let head = |subject_encoded: &str| {
            format!(
                "From: Cittadino {i} <cittadino{i}@example.it>\r\nTo: welfare@comune.example.it\r\n\
                 Subject: {subject_encoded}\r\nMessage-ID: <{id}>\r\n\
                 Date: Tue, 03 Mar 2026 09:15:02 +0100\r\nMIME-Version: 1.0\r\n"
            )
        };
        match i % 3 {
            0 => {
                let subject = format!("Richiesta n. {i}: perché è ferma?");
                let text = text_of(i, false);
                let mut raw = head(&format!(
                    "=?ISO-8859-1?Q?{}?=",
                    quoted_printable(&latin1(&subject))
                        .replace(' ', "_")
                        .replace('?', "=3F")
                ))
                .into_bytes();
                raw.extend_from_slice(
                    b"Content-Type: text/plain; charset=iso-8859-1\r\n\
                      Content-Transfer-Encoding: 8bit\r\n\r\n",
                );
                raw.extend_from_slice(&latin1(&text));
                raw.extend_from_slice(b"\r\n");
                (id, raw, subject, text)
            }
            1 => {
                let subject = format!("Città di Milano – domanda {i} (€)");
                let text = text_of(i, true);
                let mut raw = head(&format!("=?UTF-8?B?{}?=", base64(subject.as_bytes())));
                raw.push_str(
                    "Content-Type: text/plain; charset=utf-8\r\n\
                     Content-Transfer-Encoding: quoted-printable\r\n\r\n",
                );
                raw.push_str(&quoted_printable(text.as_bytes()));
                raw.push_str("\r\n");
                (id, raw.into_bytes(), subject, text)
            }
            _ => {
                let subject = format!("Informazioni sull’indennità {i}");
                let text = text_of(i, true);
                let html = format!(
                    "<html><body><p style=\"color:red\">{}</p><script>x()</script></body></html>",
                    text.replace('«', "&laquo;").replace('»', "&raquo;")
                );
                let mut raw = head(&format!("=?UTF-8?B?{}?=", base64(subject.as_bytes())));
                raw.push_str(
                    "Content-Type: text/html; charset=utf-8\r\n\
                     Content-Transfer-Encoding: base64\r\n\r\n",
                );
                raw.push_str(&base64(html.as_bytes()));
                raw.push_str("\r\n");
                (id, raw.into_bytes(), subject, text)
            }
        }
    }

    fn collapse(s: &str) -> String {
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// Peak resident memory of this process, from /proc/self/status (Linux).
    fn peak_rss_kib() -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    pub(super) async fn bench_mail(
        mut cfg: Config,
        explicit_db: bool,
        n: usize,
        batch_size: usize,
    ) -> anyhow::Result<()> {
        let host = env("SPORTELLO_TEST_IMAP_HOST")?;
        let port: u16 = env("SPORTELLO_TEST_IMAP_PORT")?
            .parse()
            .context("SPORTELLO_TEST_IMAP_PORT is not a port")?;
        let run = Uuid::now_v7().simple().to_string();
        let folder = format!("bench-{run}");
        let mut mailbox = MailboxConfig::new(
            format!("bench-{run}"),
            host,
            TlsMode::None,
            env("SPORTELLO_TEST_IMAP_USER")?,
            env("SPORTELLO_TEST_IMAP_PASS")?,
            EmailAddress::parse("welfare@comune.example.it")?,
        );
        mailbox.imap_port = Some(port);
        mailbox.folder = folder.clone();
        mailbox.batch_size = batch_size.max(1);
        mailbox.poll_interval_secs = 600;
        let name = mailbox.name.clone();

        // The mailbox, filled before anything is measured.
        let mut session = connect(&mailbox)
            .await
            .context("connecting to the test IMAP server")?;
        session
            .create(&folder)
            .await
            .context("creating the bench folder")?;
        let filling = Instant::now();
        let mut expected: HashMap<String, (String, String)> = HashMap::with_capacity(n);
        for i in 0..n {
            let (id, raw, subject, text) = sample(i, &run);
            session
                .append(&folder, None, None, &raw)
                .await
                .with_context(|| format!("APPEND of message {i}"))?;
            expected.insert(id, (subject, text));
        }
        let _ = session.logout().await;
        println!(
            "mailbox: {n} messages appended to {folder} in {:.1} s",
            filling.elapsed().as_secs_f64()
        );

        let mut _dir = None;
        if !explicit_db {
            let d = std::env::temp_dir().join(format!("sportello-bench-{run}"));
            std::fs::create_dir_all(&d)?;
            cfg.database.url = format!("sqlite://{}/bench.db?mode=rwc", d.display());
            _dir = Some(TempDir(d));
        }
        cfg.email.mailboxes = vec![mailbox];
        cfg.email.smtp = None;
        let app = crate::open_app(&cfg).await?;
        let backend = format!("{:?}", app.db().backend());
        let count = || async {
            mail_message::Entity::find()
                .filter(mail_message::Column::Mailbox.eq(name.as_str()))
                .filter(mail_message::Column::Direction.eq("inbound"))
                .count(&app.db().read)
                .await
        };

        let stop = CancellationToken::new();
        let started = Instant::now();
        let tasks = app.start_mail(stop.clone())?;
        let mut first_at = None;
        loop {
            let done = count().await? as usize;
            if done > 0 && first_at.is_none() {
                first_at = Some(started.elapsed());
            }
            if done >= n {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(1800),
                "only {done} of {n} messages imported after 30 minutes"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let elapsed = started.elapsed();
        stop.cancel();
        tasks.join().await;

        // Every body and subject compared with what was sent.
        let rows: Vec<(String, Option<Uuid>, String)> = mail_message::Entity::find()
            .select_only()
            .column(mail_message::Column::MessageId)
            .column(mail_message::Column::EntryId)
            .column(mail_message::Column::Subject)
            .filter(mail_message::Column::Mailbox.eq(name.as_str()))
            .filter(mail_message::Column::Direction.eq("inbound"))
            .into_tuple()
            .all(&app.db().read)
            .await?;
        let entry_ids: Vec<Uuid> = rows.iter().filter_map(|r| r.1).collect();
        let mut bodies: HashMap<Uuid, String> = HashMap::with_capacity(entry_ids.len());
        for chunk in entry_ids.chunks(500) {
            let got: Vec<(Uuid, String)> = ticket_entry::Entity::find()
                .select_only()
                .column(ticket_entry::Column::Id)
                .column(ticket_entry::Column::Body)
                .filter(ticket_entry::Column::Id.is_in(chunk.to_vec()))
                .into_tuple()
                .all(&app.db().read)
                .await?;
            bodies.extend(got);
        }
        let (mut damaged_bodies, mut damaged_subjects, mut missing) = (0usize, 0usize, 0usize);
        for (id, (subject, text)) in &expected {
            let Some((_, entry, got_subject)) = rows.iter().find(|r| &r.0 == id) else {
                missing += 1;
                continue;
            };
            let body = entry
                .and_then(|e| bodies.get(&e))
                .map(String::as_str)
                .unwrap_or("");
            if collapse(body) != collapse(text) {
                damaged_bodies += 1;
                if damaged_bodies <= 3 {
                    eprintln!("damaged body of {id}:\n  sent: {text}\n  got:  {body}");
                }
            }
            if collapse(got_subject) != collapse(subject) {
                damaged_subjects += 1;
            }
        }
        let rate = n as f64 / elapsed.as_secs_f64();
        println!("bench mail ({backend}, {n} messages, batch_size {batch_size}):");
        println!(
            "  ingested in {:.2} s = {rate:.0} messages/s (first message stored after {} ms)",
            elapsed.as_secs_f64(),
            first_at.unwrap_or_default().as_millis()
        );
        if let Some(kib) = peak_rss_kib() {
            println!("  peak RSS (VmHWM): {:.1} MB", kib as f64 / 1024.0);
        }
        println!(
            "  damaged bodies: {damaged_bodies}, damaged subjects: {damaged_subjects}, missing: {missing}"
        );
        let tickets = sportello_store::entities::ticket::Entity::find()
            .filter(sportello_store::entities::ticket::Column::Channel.eq("email"))
            .count(&app.db().read)
            .await?;
        println!("  email tickets in the database: {tickets}");
        app.db().clone().close().await;
        Ok(())
    }
}

async fn bench_assign(
    r: &Running,
    tickets: usize,
    operators: usize,
    backend: &str,
) -> anyhow::Result<()> {
    use sportello_domain::Role;
    use sportello_service::Actor;
    let engine =
        sportello_routing::run_assignment_bench(&sportello_routing::BenchConfig::default());
    println!(
        "bench assign (engine): {} waiting tickets, {} operators: single decision p50 {:.1} µs p99 {:.1} µs; \
         decision within a full round p99 {:.1} µs; full round {:.1} ms ({} assigned)",
        engine.config.tickets,
        engine.config.operators,
        engine.single_decision.p50_us,
        engine.single_decision.p99_us,
        engine.decision_in_round.p99_us,
        engine.full_round_ms,
        engine.assigned_in_round,
    );
    let system = Actor {
        id: Uuid::nil(),
        username: "bench".into(),
        name: "bench".into(),
        roles: vec![Role::Admin],
    };
    let started = Instant::now();
    for i in 0..tickets {
        r.app
            .create_ticket(
                &system,
                sportello_service::tickets::NewTicket {
                    channel: "web".into(),
                    subject: format!("Modulo web {i}"),
                    ..Default::default()
                },
            )
            .await?;
    }
    // Route everything first (no operator exists yet, so nothing is assigned).
    loop {
        r.app.router_round().await?;
        let routed = sea_orm::PaginatorTrait::count(
            <sportello_store::entities::ticket_routing::Entity as sea_orm::EntityTrait>::find(),
            &r.app.db().read,
        )
        .await?;
        if routed as usize >= tickets {
            break;
        }
    }
    eprintln!(
        "  {tickets} tickets created and routed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let per_operator = tickets.div_ceil(operators.max(1)) as u32;
    for i in 0..operators {
        let u = r
            .app
            .create_user_cli(sportello_service::auth::NewUser {
                username: format!("op{i:04}"),
                password: PASSWORD.into(),
                name: format!("Operatore {i}"),
                roles: vec!["front_office".into()],
            })
            .await?;
        let profile = sportello_routing::RoutingProfile {
            tiers: vec![sportello_domain::Tier::FrontOffice],
            skills: Default::default(),
            capacity: [(sportello_domain::Channel::Web, per_operator)]
                .into_iter()
                .collect(),
        };
        r.app.set_routing_profile(&system, u.id, profile).await?;
        r.app.set_presence(&system, u.id, "available").await?;
    }
    let started = Instant::now();
    let mut assigned = 0;
    let mut rounds = 0;
    while assigned < tickets {
        let n = r.app.assign_round().await?;
        rounds += 1;
        if n == 0 {
            break;
        }
        assigned += n;
    }
    let elapsed = started.elapsed();
    println!(
        "bench assign (service): backend={backend} {assigned} assignments to {operators} operators in {rounds} round(s), \
         {:.2} s, {:.0} assignments/s",
        elapsed.as_secs_f64(),
        assigned as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

async fn bench_counter(
    r: &Running,
    attempts: usize,
    concurrency: usize,
    backend: &str,
) -> anyhow::Result<()> {
    use chrono::Datelike;
    let cal = sportello_domain::calendar::BusinessCalendar::default();
    let mut day = cal.local_date(Utc::now()) + chrono::Duration::days(7);
    while day.weekday().number_from_monday() > 5 || cal.is_holiday(day).is_some() {
        day += chrono::Duration::days(1);
    }
    let post = |path: &str, body: serde_json::Value| {
        r.client
            .post(format!("{}{path}", r.base))
            .bearer_auth(&r.token)
            .json(&body)
            .send()
    };
    let res = post("/api/v1/counter/sessions", json!({"date": day.to_string(), "start": "08:00", "end": "18:00", "desks": 20, "slot_minutes": 10})).await?;
    anyhow::ensure!(
        res.status() == 201,
        "session: {}",
        res.text().await.unwrap_or_default()
    );
    let slots: serde_json::Value = r
        .client
        .get(format!("{}/api/v1/counter/slots?date={day}", r.base))
        .bearer_auth(&r.token)
        .send()
        .await?
        .json()
        .await?;
    let slots: Vec<String> = slots["items"]
        .as_array()
        .context("slots")?
        .iter()
        .filter_map(|s| s["id"].as_str().map(str::to_owned))
        .collect();
    let capacity = slots.len() * 20;
    let mut citizens = Vec::new();
    for i in 0..200 {
        let c: serde_json::Value = post(
            "/api/v1/citizens",
            json!({"name": format!("Cittadino {i}")}),
        )
        .await?
        .json()
        .await?;
        citizens.push(c["id"].as_str().context("citizen id")?.to_owned());
    }
    let (slots, citizens) = (Arc::new(slots), Arc::new(citizens));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (client, url, token) = (
            r.client.clone(),
            format!("{}/api/v1/counter/bookings", r.base),
            r.token.clone(),
        );
        let (slots, citizens, next) = (slots.clone(), citizens.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut full, mut lat) = (0usize, 0usize, Vec::new());
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= attempts {
                    break;
                }
                // Everyone wants the morning: half the attempts go to the first five slots.
                let slot = if i % 2 == 0 {
                    &slots[i % 5]
                } else {
                    &slots[(i * 7919) % slots.len()]
                };
                let t = Instant::now();
                let res = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"slot_id": slot, "citizen_id": citizens[i % citizens.len()]}))
                    .send()
                    .await?;
                match res.status().as_u16() {
                    201 => ok += 1,
                    409 => full += 1,
                    s => anyhow::bail!(
                        "booking answered {s}: {}",
                        res.text().await.unwrap_or_default()
                    ),
                }
                lat.push(t.elapsed());
            }
            anyhow::Ok((ok, full, lat))
        }));
    }
    let (mut ok, mut full, mut lat) = (0, 0, Vec::new());
    for t in tasks {
        let (o, f, l) = t.await??;
        ok += o;
        full += f;
        lat.extend(l);
    }
    let elapsed = started.elapsed();
    lat.sort();
    println!(
        "bench counter: backend={backend} attempts={attempts} concurrency={concurrency} capacity={capacity}"
    );
    println!(
        "  {:.0} attempts/s, {:.0} bookings/s ({ok} booked, {full} refused as full) in {:.2} s",
        attempts as f64 / elapsed.as_secs_f64(),
        ok as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!(
        "  latency p50 {}  p99 {}",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99))
    );
    anyhow::ensure!(
        ok <= capacity,
        "more bookings ({ok}) than capacity ({capacity})"
    );
    Ok(())
}
