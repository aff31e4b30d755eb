//! `sportello demo`: the whole system alive in one command, on a temporary SQLite database
//! that is removed when the demo stops. The accounts, calendar and traffic come from
//! `sportello_service::demo`; the server is the one `serve` runs.

use anyhow::Context;
use sportello_service::demo;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// A scratch directory removed when the demo ends, however it ends.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub async fn run(mut cfg: Config) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("sportello-demo-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the demo directory {}", dir.display()))?;
    let scratch = Scratch(dir);
    cfg.database.url = format!("sqlite://{}/demo.db?mode=rwc", scratch.0.display());
    let mut service = cfg.service.clone();
    service.phone = cfg.phone.clone();
    service.email = cfg.email.clone();
    demo::configure(&mut service);
    cfg.phone = service.phone.clone();
    cfg.email = service.email.clone();
    cfg.service = service;

    let app = crate::open_app(&cfg).await?;
    let people = demo::seed(&app).await.context("preparing the demo")?;
    let listener = crate::bind(&cfg.server.listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "demo serving");
    println!("Sportello demo is serving on http://{addr}");
    println!(
        "Open http://{addr}/dashboard (supervisors) and sign in with one of these accounts (user: password):"
    );
    for a in demo::ACCOUNTS {
        println!("{}: {}", a.username, demo::DEMO_PASSWORD);
    }
    println!(
        "Calls, e-mails and counter visits start now; Ctrl-C stops the demo and deletes its data."
    );

    let token = CancellationToken::new();
    let traffic = tokio::spawn({
        let (app, token) = (app.clone(), token.clone());
        async move { people.run(app, token).await }
    });
    // The demo's mailbox is fed by the traffic generator, not fetched over IMAP.
    let served = crate::run_server(app, &cfg, listener, token.clone(), false).await;
    token.cancel();
    let _ = traffic.await;
    drop(scratch);
    served
}
