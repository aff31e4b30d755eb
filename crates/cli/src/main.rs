//! `sportello`: one binary with subcommands to serve, migrate, administer and measure.

// mimalloc instead of glibc's malloc: call ingestion builds a batch's statements on one thread
// while SQLite's worker thread executes the previous one, and glibc's arenas made the two
// threads contend (the pipelined import ran 40 % slower than the sequential one with glibc,
// 45 % faster with mimalloc; docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod backup;
mod bench;
mod config;
mod demo;
mod import_cdr;
mod report;
mod sqlite_malloc;
mod watch;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sportello_service::App;
use sportello_service::auth::NewUser;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "sportello",
    version,
    about = "Omnichannel contact-center ticketing for public welfare services"
)]
struct Cli {
    /// Configuration file(s), applied in order over the built-in defaults.
    #[arg(long, global = true, env = "SPORTELLO_CONFIG")]
    config: Vec<PathBuf>,
    /// Database URL (sqlite://PATH?mode=rwc or postgres://...), overriding the configuration.
    #[arg(long, global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API and web UI (the default).
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8080.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Write a consistent copy of the SQLite database to FILE while the server runs (checked
    /// with SQLite's integrity check). For PostgreSQL use pg_dump (see docs/ADMIN.md).
    Backup {
        /// Where to write the copy; restore by serving it (`--database-url sqlite://FILE`).
        #[arg(long, short)]
        output: PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Run a live demo on a temporary database: operators, counter sessions and a stream of
    /// phone calls, e-mails and counter visits. Prints the URL and the demo accounts; runs
    /// until Ctrl-C.
    Demo {
        /// Address to listen on (default 127.0.0.1:8080; port 0 picks a free one).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Administration tasks.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Import Asterisk CDR files (Master.csv, cdr_csv column order) into the call log.
    ///
    /// Prints each rejected row as `line N: reason` and a summary line; exits 0 when every row
    /// was imported, 2 when rows were rejected, 1 on error. Importing a file again changes
    /// nothing.
    ImportCdr {
        /// The CDR files, imported in order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The source the calls are recorded under: call ids are unique per source. Give the
        /// name of the switchboard's webhook integration to merge CDRs with its live reports.
        #[arg(long, default_value = "cdr")]
        source: String,
        /// Rows written per transaction. Larger batches import faster and hold SQLite's
        /// write lock longer (about a second for the default on a small machine).
        #[arg(
            long,
            default_value_t = import_cdr::BATCH_ROWS,
            value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000)
        )]
        batch_rows: usize,
    },
    /// Simulate a day or a week of the contact center for a staffing plan: SLA attainment,
    /// waiting times and occupancy per tier, checked against Erlang C for the phone queue.
    Simulate {
        /// The staffing file (see config/staffing.example.toml).
        #[arg(long)]
        staffing: PathBuf,
        /// Print the figures as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Reports (contacts, applications, payments, SLA, comparison with the year before and
    /// baselines) as CSV, XLSX or JSON files; importing baselines.
    Report {
        #[command(subcommand)]
        command: report::ReportCommand,
    },
    /// Measure throughput and latency (prints figures for docs/benchmarks.md).
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
    /// Follow the live dashboard in a terminal: the queues, SLA alerts and operators, redrawn
    /// on every change. Ctrl-C quits.
    Watch {
        /// The server's address, e.g. http://127.0.0.1:8080.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// A bearer token (from POST /api/v1/auth/login); read from SPORTELLO_TOKEN when not
        /// given, which keeps it out of the process list.
        #[arg(long, env = "SPORTELLO_TOKEN", hide_env_values = true)]
        token: String,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a user account.
    CreateUser {
        #[arg(long)]
        username: String,
        #[arg(long)]
        name: String,
        /// Roles, comma-separated: front_office, back_office, counter, supervisor, admin.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        /// The password; read from SPORTELLO_NEW_PASSWORD when not given.
        #[arg(long, env = "SPORTELLO_NEW_PASSWORD", hide_env_values = true)]
        password: String,
    },
}

fn init_tracing(cfg: &config::LogConfig) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{},sqlx=warn,sea_orm=warn", cfg.level)));
    // Colours only on a terminal: a journal or a redirected log gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if cfg.format == "json" {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
        _ = token.cancelled() => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
    token.cancel();
}

/// Connects to the configured database and builds the application core.
pub async fn open_app(cfg: &config::Config) -> anyhow::Result<App> {
    let db = sportello_store::connect(&cfg.database.url, &cfg.database.options()).await?;
    let mut service = cfg.service.clone();
    service.phone = cfg.phone.clone();
    service.email = cfg.email.clone();
    Ok(App::new(db, service).await?)
}

async fn serve(cfg: config::Config) -> anyhow::Result<()> {
    let app = open_app(&cfg).await?;
    if let Some(pw) = app
        .bootstrap_admin(std::env::var("SPORTELLO_ADMIN_PASSWORD").ok())
        .await
        .context("creating the first administrator")?
    {
        // Shown once, on the console only (never in the log).
        println!(
            "\n  First start: created user 'admin' with password: {pw}\n  Sign in and change it.\n"
        );
    }
    let listener = bind(&cfg.server.listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "serving");
    println!("Sportello is serving on http://{addr}");
    run_server(app, &cfg, listener, CancellationToken::new(), true).await
}

/// Binds the HTTP listener, naming the address when that fails.
pub(crate) async fn bind(listen: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))
}

/// Runs what `serve` runs on an opened application and a bound listener: the e-mail channel,
/// the router, the counter tasks, the cross-instance relay and the HTTP server, until SIGTERM,
/// Ctrl-C or `token` stops them; then drains requests and closes the database. Without
/// `fetch_mail` no mailbox fetcher or outbox worker starts (the demo feeds its mailbox itself).
pub(crate) async fn run_server(
    app: App,
    cfg: &config::Config,
    listener: tokio::net::TcpListener,
    token: CancellationToken,
    fetch_mail: bool,
) -> anyhow::Result<()> {
    // Mailbox fetchers and the outbox worker; nothing starts without [email] settings.
    let mail_tasks = if fetch_mail {
        Some(
            app.start_mail(token.clone())
                .context("starting the e-mail channel")?,
        )
    } else {
        None
    };
    // The router: routes every new ticket, keeps SLA states, pushes work to operators.
    let router_task = tokio::spawn({
        let (app, token) = (app.clone(), token.clone());
        async move {
            app.run_router(token, std::time::Duration::from_secs(5))
                .await
        }
    });
    // Counter no-shows, marked after the grace period.
    let counter_task = tokio::spawn({
        let (app, token) = (app.clone(), token.clone());
        async move { app.run_counter_tasks(token).await }
    });
    // Post-payment monitoring checks that fell due become back-office tickets.
    let applications_task = tokio::spawn({
        let (app, token) = (app.clone(), token.clone());
        async move { app.run_application_tasks(token).await }
    });
    // Dashboard events to and from the other instances (PostgreSQL only).
    let relay_task = app.start_event_relay(token.clone());
    let mut server = cfg.server.clone();
    server.metrics = cfg.metrics.clone();
    let (router, hub) = sportello_server::router_and_hub(app.clone(), server);
    let shutdown = {
        let token = token.clone();
        async move {
            shutdown_signal(token).await;
            // Dashboards hear goodbye (and reconnect elsewhere) rather than a reset.
            hub.close_all();
        }
    };
    let served = sportello_server::serve(listener, router, shutdown).await;
    token.cancel();
    if let Some(tasks) = mail_tasks {
        tasks.join().await;
    }
    let _ = router_task.await;
    let _ = counter_task.await;
    let _ = applications_task.await;
    if let Some(relay) = relay_task {
        let _ = relay.await;
    }
    served?;
    app.db().clone().close().await;
    Ok(())
}

/// Runs the staffing simulator; needs no database.
fn simulate(file: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the staffing file {}", file.display()))?;
    let staffing = sportello_routing::Staffing::from_toml(&text)
        .with_context(|| format!("invalid staffing file {}", file.display()))?;
    let report = sportello_routing::simulate(&staffing);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render_table());
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve { listen: None });
    let listen = match &command {
        Command::Serve { listen } | Command::Demo { listen } => listen.clone(),
        _ => None,
    };
    let mut cfg = config::load(
        &cli.config,
        &[
            ("server.listen", listen),
            ("database.url", cli.database_url.clone()),
        ],
    )?;
    if matches!(command, Command::Demo { .. })
        && std::env::var_os("RUST_LOG").is_none()
        && std::env::var_os("SPORTELLO__LOG__LEVEL").is_none()
    {
        // The demo's console is for its URL and accounts; its traffic would drown them.
        cfg.log.level = "warn".into();
    }
    init_tracing(&cfg.log);
    // SPORTELLO_SQLITE_SYSTEM_MALLOC=1 keeps SQLite on the C library's malloc: a way back if
    // the allocator is ever suspected, and the "before" of the comparison in benchmarks.md.
    if std::env::var_os("SPORTELLO_SQLITE_SYSTEM_MALLOC").is_some_and(|v| v == "1") {
        tracing::info!(
            "SQLite allocates with the C library's malloc (SPORTELLO_SQLITE_SYSTEM_MALLOC)"
        );
    } else {
        match sqlite_malloc::install() {
            sqlite_malloc::Installed::Yes => tracing::debug!("SQLite allocates through mimalloc"),
            sqlite_malloc::Installed::Refused(a, b) => {
                tracing::warn!(malloc = a, memstatus = b, "SQLite keeps its own allocator")
            }
        }
    }
    if matches!(command, Command::ImportCdr { .. } | Command::Bench { .. }) {
        sqlite_malloc::keep_freed_memory();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match command {
            Command::Serve { .. } => serve(cfg).await,
            Command::Migrate => {
                open_app(&cfg).await?;
                println!("database is up to date");
                Ok(())
            }
            Command::Admin {
                command:
                    AdminCommand::CreateUser {
                        username,
                        name,
                        roles,
                        password,
                    },
            } => {
                let app = open_app(&cfg).await?;
                let u = app
                    .create_user_cli(NewUser {
                        username,
                        password,
                        name,
                        roles,
                    })
                    .await?;
                println!("created user {} ({})", u.username, u.id);
                Ok(())
            }
            Command::ImportCdr {
                files,
                source,
                batch_rows,
            } => {
                let app = open_app(&cfg).await?;
                let rejected = import_cdr::run(&app, &source, &files, batch_rows).await?;
                app.db().clone().close().await;
                if rejected {
                    // Documented exit status: rows were rejected, the rest was imported.
                    std::process::exit(2);
                }
                Ok(())
            }
            Command::Backup { output, force } => {
                let done = backup::run(&cfg.database.url, &output, force).await?;
                println!(
                    "backup written to {} ({} tickets, {:.1} MB); integrity check: ok",
                    done.path.display(),
                    done.tickets,
                    done.bytes as f64 / 1_048_576.0
                );
                Ok(())
            }
            Command::Demo { .. } => demo::run(cfg).await,
            Command::Simulate { staffing, json } => simulate(&staffing, json),
            Command::Report { command } => {
                let app = open_app(&cfg).await?;
                let done = report::run(&app, command).await;
                app.db().clone().close().await;
                done
            }
            Command::Bench { command } => bench::run(command, cfg).await,
            Command::Watch { url, token } => watch::run(&url, &token).await,
        }
    })
}
