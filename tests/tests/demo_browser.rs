//! The demo in headless Chromium: with the demo's accounts, calendar and traffic generator
//! running (as `sportello demo` runs them), the supervisor signs in to the dashboard and within
//! a minute it shows tickets from the phone, e-mail and counter channels, operators at work
//! and SLA figures.
//!
//! Switched on by `SPORTELLO_TEST_BROWSER=1` (then a missing browser or driver fails the test);
//! `deploy/scripts/install-browser.sh` installs them. With `SPORTELLO_TEST_SCREENSHOTS=DIR` it
//! saves a picture of the live demo there.

mod common;

use std::time::Duration;

use common::browser::{Axe, Tools};
use fantoccini::Locator;
use sportello_service::{App, ServiceConfig, demo};
use tokio_util::sync::CancellationToken;

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
    let Some(tools) = Tools::from_env(Axe::Off) else {
        return;
    };
    let stop = CancellationToken::new();
    let (base, _app, cleanup) = start_demo(&stop).await;

    let result = tools.launch().await.run(async |c| {
        c.goto(&format!("{base}/dashboard")).await.unwrap();
        c.wait_for(
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
        c.wait_for(
            "the live board",
            "return !document.getElementById('board').hidden && document.getElementById('conn').classList.contains('live');",
            Duration::from_secs(10),
        )
        .await;
        // The queue table names each channel's row as the page labels it.
        c.wait_for(
            "phone, e-mail and counter rows in the queues",
            "var t = document.getElementById('queues-body').textContent; \
             return t.indexOf('Telefono') >= 0 && t.indexOf('E-mail') >= 0 && t.indexOf('Sportello') >= 0;",
            Duration::from_secs(60),
        )
        .await;
        // Operators at work (tickets assigned or open), arrivals counted, the demo's operators
        // listed, and SLA figures drawn.
        c.wait_for(
            "assignments, arrivals, operators and SLA figures on the page",
            "var n = function (id) { return parseInt(document.getElementById(id).textContent.replace(/\\D/g, ''), 10) || 0; }; \
             return n('t-assigned') + n('t-open') + n('t-resolved') > 0 && n('t-arrivals') >= 3 \
               && document.getElementById('operators-body').textContent.indexOf('Laura Bassi') >= 0 \
               && document.getElementById('sla-body').textContent.trim().length > 0;",
            Duration::from_secs(60),
        )
        .await;
        c.screenshot("demo-dashboard.png").await;
    })
    .await;
    stop.cancel();
    if let common::Cleanup::Dir(d) = cleanup {
        let _ = std::fs::remove_dir_all(d);
    }
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
