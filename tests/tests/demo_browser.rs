//! The demo in headless Chromium: with the demo's accounts, calendar and traffic generator
//! running (as `sportello demo` runs them), the supervisor signs in to the dashboard and within
//! a minute it shows tickets from the phone, e-mail and counter channels, operators at work
//! and SLA figures.
//!
//! Switched on by `SPORTELLO_TEST_BROWSER=1` (then a missing browser or driver fails the test);
//! `deploy/scripts/install-browser.sh` installs them. With `SPORTELLO_TEST_SCREENSHOTS=DIR` it
//! saves a picture of the live demo there.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};
use futures::FutureExt;
use serde_json::{Value, json};
use sportello_service::{App, ServiceConfig, demo};
use tokio_util::sync::CancellationToken;

fn which(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|n| {
        std::env::split_paths(&path)
            .map(|d| d.join(n))
            .find(|p| p.is_file())
    })
}

/// chromedriver, stopped when the test ends however it ends.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_driver(driver: &PathBuf) -> (Driver, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver.display()));
    let guard = Driver(child);
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = reqwest::get(format!("{url}/status")).await
            && r.status().is_success()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "chromedriver did not come up on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (guard, url)
}

async fn wait_for(c: &fantoccini::Client, what: &str, script: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if c.execute(script, vec![]).await.unwrap() == Value::Bool(true) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The demo as `sportello demo` starts it, on a scratch SQLite database: accounts, calendar,
/// router, counter tasks and traffic, served on a loopback port.
async fn start_demo(stop: &CancellationToken) -> (String, App, common::Cleanup) {
    let (url, cleanup) = common::scratch_database(common::Backend::Sqlite).await;
    let mut config = ServiceConfig::default();
    demo::configure(&mut config);
    let db = sportello_store::connect(&url, &Default::default())
        .await
        .expect("connect");
    let app = App::new(db, config).await.expect("app");
    let people = demo::seed(&app).await.expect("demo seed");
    tokio::spawn({
        let (app, stop) = (app.clone(), stop.clone());
        async move { app.run_router(stop, Duration::from_secs(1)).await }
    });
    tokio::spawn({
        let (app, stop) = (app.clone(), stop.clone());
        async move { app.run_counter_tasks(stop).await }
    });
    tokio::spawn({
        let (app, stop) = (app.clone(), stop.clone());
        async move { people.run(app, stop).await }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = sportello_server::router(app.clone(), Default::default());
    let s = stop.clone();
    tokio::spawn(async move {
        sportello_server::serve(listener, router, async move { s.cancelled().await }).await
    });
    (base, app, cleanup)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_dashboard_shows_all_three_channels() {
    if std::env::var("SPORTELLO_TEST_BROWSER").as_deref() != Ok("1") {
        eprintln!("SPORTELLO_TEST_BROWSER is not 1: browser test switched off");
        return;
    }
    let chromium = which(&["chromium", "chromium-browser", "google-chrome"]).expect(
        "SPORTELLO_TEST_BROWSER=1 but chromium is missing: run deploy/scripts/install-browser.sh",
    );
    let driver = which(&["chromedriver"]).expect(
        "SPORTELLO_TEST_BROWSER=1 but chromedriver is missing: run deploy/scripts/install-browser.sh",
    );
    let stop = CancellationToken::new();
    let (base, _app, cleanup) = start_demo(&stop).await;

    let (_guard, driver_url) = start_driver(&driver).await;
    let profile = std::env::temp_dir().join(format!("sportello-chromium-{}", uuid::Uuid::now_v7()));
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-dev-shm-usage", "--window-size=1400,1000", format!("--user-data-dir={}", profile.display())]
        }),
    );
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver_url)
        .await
        .expect("a chromium session");
    let result = std::panic::AssertUnwindSafe(async {
        c.goto(&format!("{base}/dashboard")).await.unwrap();
        wait_for(
            &c,
            "sign-in form",
            "return !document.getElementById('signin').hidden;",
            Duration::from_secs(10),
        )
        .await;
        c.find(Locator::Id("username"))
            .await
            .unwrap()
            .send_keys("supervisore")
            .await
            .unwrap();
        c.find(Locator::Id("password"))
            .await
            .unwrap()
            .send_keys(demo::DEMO_PASSWORD)
            .await
            .unwrap();
        c.find(Locator::Css("#signin-form button[type=submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for(
            &c,
            "the live board",
            "return !document.getElementById('board').hidden && document.getElementById('conn').classList.contains('live');",
            Duration::from_secs(10),
        )
        .await;
        // The queue table names each channel's row as the page labels it.
        wait_for(
            &c,
            "phone, e-mail and counter rows in the queues",
            "var t = document.getElementById('queues-body').textContent; \
             return t.indexOf('Telefono') >= 0 && t.indexOf('E-mail') >= 0 && t.indexOf('Sportello') >= 0;",
            Duration::from_secs(60),
        )
        .await;
        // Operators at work (tickets assigned or open), arrivals counted, the demo's operators
        // listed, and SLA figures drawn.
        wait_for(
            &c,
            "assignments, arrivals, operators and SLA figures on the page",
            "var n = function (id) { return parseInt(document.getElementById(id).textContent.replace(/\\D/g, ''), 10) || 0; }; \
             return n('t-assigned') + n('t-open') + n('t-resolved') > 0 && n('t-arrivals') >= 3 \
               && document.getElementById('operators-body').textContent.indexOf('Laura Bassi') >= 0 \
               && document.getElementById('sla-body').textContent.trim().length > 0;",
            Duration::from_secs(60),
        )
        .await;
        if let Some(dir) = std::env::var_os("SPORTELLO_TEST_SCREENSHOTS") {
            let png = c.screenshot().await.unwrap();
            std::fs::write(PathBuf::from(&dir).join("demo-dashboard.png"), png).unwrap();
        }
    })
    .catch_unwind()
    .await;
    let _ = c.close().await;
    let _ = std::fs::remove_dir_all(&profile);
    stop.cancel();
    if let common::Cleanup::Dir(d) = cleanup {
        let _ = std::fs::remove_dir_all(d);
    }
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
