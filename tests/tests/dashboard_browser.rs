//! The dashboard page in headless Chromium, driven through chromedriver: sign in, the queue
//! shows, a ticket created through the API appears within a second, no console errors, and
//! axe-core finds no serious or critical accessibility violations (Italian and English).
//!
//! Switched on by `SPORTELLO_TEST_BROWSER=1` (then a missing browser, driver or axe-core fails
//! the test); `deploy/scripts/install-browser.sh` installs them and prints the path to give as
//! `SPORTELLO_TEST_AXE`. With `SPORTELLO_TEST_SCREENSHOTS=DIR` it also saves a picture of the
//! live page there.

mod common;

use std::time::{Duration, Instant};

use common::browser::{Axe, Tools};
use common::{Backend, TestApp};
use fantoccini::{Client, Locator};
use serde_json::json;

async fn text_of(c: &Client, id: &str) -> String {
    c.execute(
        &format!("var e = document.getElementById('{id}'); return e ? e.textContent : null;"),
        vec![],
    )
    .await
    .unwrap()
    .as_str()
    .unwrap_or_default()
    .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_page_works_in_chromium() {
    let Some(tools) = Tools::from_env(Axe::Everywhere) else {
        return;
    };

    let t = TestApp::spawn(Backend::Sqlite).await;
    let (status, body) = t
        .post("/api/v1/users", &t.admin_token, json!({"username": "supervisora", "password": "supervisora-password", "name": "Giulia Supervisora", "roles": ["supervisor"]}))
        .await;
    assert_eq!(status, 201, "{body}");

    // Whatever happens, the browser session is closed before the test reports.
    let result = tools.launch().await.run(async |c| {
        // Not signed in: the page asks for credentials.
        c.goto(&t.url("/dashboard")).await.unwrap();
        c.wait_for("sign-in form", "return !document.getElementById('signin').hidden;", Duration::from_secs(10)).await;
        assert_eq!(c.js("return document.documentElement.lang;").await, "it");
        assert_eq!(c.find(Locator::Css("h1")).await.unwrap().text().await.unwrap(), "Cruscotto del contact center");
        c.assert_accessible("the sign-in form").await;

        c.find(Locator::Id("username")).await.unwrap().send_keys("supervisora").await.unwrap();
        c.find(Locator::Id("password")).await.unwrap().send_keys("supervisora-password").await.unwrap();
        c.find(Locator::Css("#signin-form button[type=submit]")).await.unwrap().click().await.unwrap();

        // Signed in: the live queue shows.
        c.wait_for("live board", "return !document.getElementById('board').hidden && document.getElementById('conn').classList.contains('live') && document.getElementById('t-waiting').textContent === '0';", Duration::from_secs(10)).await;
        assert!(text_of(c, "queues-body").await.contains("Nessuna richiesta"), "an empty queue says so");

        // A ticket created through the API shows within a second.
        t.ticket(&t.admin_token, json!({"channel": "email", "subject": "Domanda dal browser", "category": "eligibility"})).await;
        let created = Instant::now();
        c.wait_for("the new ticket on the page", "return document.getElementById('t-waiting').textContent === '1';", Duration::from_secs(1)).await;
        let shown_after = created.elapsed();
        eprintln!("ticket shown on the page {} ms after the API answered", shown_after.as_millis());
        c.wait_for("the e-mail queue row", "return document.getElementById('queues-body').textContent.indexOf('E-mail') >= 0;", Duration::from_secs(3)).await;
        c.wait_for("the recent events list", "return document.getElementById('recent').children.length > 0;", Duration::from_secs(3)).await;
        // Keyboard: every control is reachable and labelled.
        let unlabelled = c
            .js(
                "return Array.prototype.filter.call(document.querySelectorAll('input, button, a, [tabindex]'), function (e) {
                   var visible = !e.closest('[hidden]');
                   var name = (e.getAttribute('aria-label') || e.getAttribute('aria-labelledby') || e.textContent || (e.labels && e.labels.length ? 'label' : '')).trim();
                   return visible && (e.tabIndex < 0 && e.id !== 'main' || !name);
                 }).map(function (e) { return e.outerHTML.slice(0, 80); });",
            )
            .await;
        assert_eq!(unlabelled, json!([]), "controls without a name or out of the tab order");
        if std::env::var_os("SPORTELLO_TEST_SCREENSHOTS").is_some() {
            c.screenshot("dashboard-it.png").await;
            c.js("window.scrollTo(0, 850);").await;
            c.screenshot("dashboard-it-2.png").await;
        }
        c.assert_accessible("the live dashboard").await;
        c.assert_no_errors("the live dashboard").await;

        // English on request, with the session kept.
        c.goto(&t.url("/dashboard?lang=en")).await.unwrap();
        c.wait_for("English live board", "return !document.getElementById('board').hidden && document.getElementById('conn').classList.contains('live') && document.getElementById('t-waiting').textContent === '1';", Duration::from_secs(10)).await;
        assert_eq!(c.js("return document.documentElement.lang;").await, "en");
        assert_eq!(c.find(Locator::Css("h1")).await.unwrap().text().await.unwrap(), "Contact center dashboard");
        c.assert_accessible("the dashboard in English").await;
        c.assert_no_errors("the dashboard in English").await;
        shown_after
    })
    .await;
    match result {
        Ok(shown_after) => assert!(shown_after < Duration::from_secs(1)),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}
