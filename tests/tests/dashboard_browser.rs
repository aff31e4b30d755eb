//! The dashboard page in headless Chromium, driven through chromedriver: sign in, the queue
//! shows, a ticket created through the API appears within a second, no console errors, and
//! axe-core finds no serious or critical accessibility violations (Italian and English).
//!
//! Switched on by `SPORTELLO_TEST_BROWSER=1` (then a missing browser, driver or axe-core fails
//! the test); `deploy/scripts/install-browser.sh` installs them and prints the path to give as
//! `SPORTELLO_TEST_AXE`. With `SPORTELLO_TEST_SCREENSHOTS=DIR` it also saves a picture of the
//! live page there.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Backend, TestApp};
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use serde_json::{Value, json};

/// Collects console errors, uncaught errors and unhandled rejections, installed before any of
/// the page's own scripts run.
const ERROR_HOOK: &str = r#"
window.__sportelloErrors = [];
(function () {
  var original = console.error;
  console.error = function () {
    window.__sportelloErrors.push('console.error: ' + Array.prototype.map.call(arguments, String).join(' '));
    return original.apply(console, arguments);
  };
  window.addEventListener('error', function (e) { window.__sportelloErrors.push('error: ' + e.message); });
  window.addEventListener('unhandledrejection', function (e) { window.__sportelloErrors.push('unhandled rejection: ' + e.reason); });
})();
"#;

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

/// A Chrome DevTools command sent through chromedriver's `goog/cdp/execute` endpoint.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({ "cmd": self.cmd, "params": self.params }).to_string()),
        )
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

async fn wait_for(c: &Client, what: &str, script: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if c.execute(script, vec![]).await.unwrap() == Value::Bool(true) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Serious and critical violations axe-core finds on the current page.
async fn axe(c: &Client, source: &str) -> Vec<Value> {
    c.execute(source, vec![]).await.expect("axe-core loads");
    let found = c
        .execute_async(
            "var done = arguments[arguments.length - 1];
             axe.run(document, { resultTypes: ['violations'] })
               .then(function (r) { done(JSON.stringify(r.violations)); })
               .catch(function (e) { done(JSON.stringify([{ id: 'axe-failed', impact: 'critical', help: String(e) }])); });",
            vec![],
        )
        .await
        .expect("axe-core runs");
    let violations: Vec<Value> = serde_json::from_str(found.as_str().unwrap_or("[]")).unwrap();
    violations
        .into_iter()
        .filter(|v| v["impact"] == "serious" || v["impact"] == "critical")
        .collect()
}

fn describe(violations: &[Value]) -> String {
    violations
        .iter()
        .map(|v| {
            let targets: Vec<String> = v["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|n| n["target"].to_string())
                .collect();
            format!(
                "{} ({}): {} at {}",
                v["id"],
                v["impact"],
                v["help"],
                targets.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn errors(c: &Client) -> Vec<Value> {
    c.execute(
        "return window.__sportelloErrors || ['the error hook was not installed'];",
        vec![],
    )
    .await
    .unwrap()
    .as_array()
    .cloned()
    .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_page_works_in_chromium() {
    if std::env::var("SPORTELLO_TEST_BROWSER").as_deref() != Ok("1") {
        eprintln!("SPORTELLO_TEST_BROWSER is not 1: browser test switched off");
        return;
    }
    let chromium = which(&["chromium", "chromium-browser", "google-chrome"]).expect(
        "SPORTELLO_TEST_BROWSER=1 but chromium is missing: run deploy/scripts/install-browser.sh",
    );
    let driver = which(&["chromedriver"]).expect("SPORTELLO_TEST_BROWSER=1 but chromedriver is missing: run deploy/scripts/install-browser.sh");
    let axe_path = std::env::var("SPORTELLO_TEST_AXE").expect(
        "SPORTELLO_TEST_BROWSER=1 needs SPORTELLO_TEST_AXE (the path install-browser.sh prints)",
    );
    let axe_source = std::fs::read_to_string(&axe_path)
        .unwrap_or_else(|e| panic!("cannot read axe-core at {axe_path}: {e}"));

    let t = TestApp::spawn(Backend::Sqlite).await;
    let (status, body) = t
        .post("/api/v1/users", &t.admin_token, json!({"username": "supervisora", "password": "supervisora-password", "name": "Giulia Supervisora", "roles": ["supervisor"]}))
        .await;
    assert_eq!(status, 201, "{body}");

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
    // Whatever happens, the browser session is closed before the test reports.
    let result = std::panic::AssertUnwindSafe(async {
        c.issue_cmd(Cdp { cmd: "Page.addScriptToEvaluateOnNewDocument", params: json!({ "source": ERROR_HOOK }) })
            .await
            .expect("error hook installed");

        // Not signed in: the page asks for credentials.
        c.goto(&t.url("/dashboard")).await.unwrap();
        wait_for(&c, "sign-in form", "return !document.getElementById('signin').hidden;", Duration::from_secs(10)).await;
        assert_eq!(c.execute("return document.documentElement.lang;", vec![]).await.unwrap(), "it");
        assert_eq!(c.find(Locator::Css("h1")).await.unwrap().text().await.unwrap(), "Cruscotto del contact center");
        let violations = axe(&c, &axe_source).await;
        assert!(violations.is_empty(), "accessibility of the sign-in form:\n{}", describe(&violations));

        c.find(Locator::Id("username")).await.unwrap().send_keys("supervisora").await.unwrap();
        c.find(Locator::Id("password")).await.unwrap().send_keys("supervisora-password").await.unwrap();
        c.find(Locator::Css("#signin-form button[type=submit]")).await.unwrap().click().await.unwrap();

        // Signed in: the live queue shows.
        wait_for(&c, "live board", "return !document.getElementById('board').hidden && document.getElementById('conn').classList.contains('live') && document.getElementById('t-waiting').textContent === '0';", Duration::from_secs(10)).await;
        assert!(text_of(&c, "queues-body").await.contains("Nessuna richiesta"), "an empty queue says so");

        // A ticket created through the API shows within a second.
        t.ticket(&t.admin_token, json!({"channel": "email", "subject": "Domanda dal browser", "category": "eligibility"})).await;
        let created = Instant::now();
        wait_for(&c, "the new ticket on the page", "return document.getElementById('t-waiting').textContent === '1';", Duration::from_secs(1)).await;
        let shown_after = created.elapsed();
        eprintln!("ticket shown on the page {} ms after the API answered", shown_after.as_millis());
        wait_for(&c, "the e-mail queue row", "return document.getElementById('queues-body').textContent.indexOf('E-mail') >= 0;", Duration::from_secs(3)).await;
        wait_for(&c, "the recent events list", "return document.getElementById('recent').children.length > 0;", Duration::from_secs(3)).await;
        // Keyboard: every control is reachable and labelled.
        let unlabelled = c
            .execute(
                "return Array.prototype.filter.call(document.querySelectorAll('input, button, a, [tabindex]'), function (e) {
                   var visible = !e.closest('[hidden]');
                   var name = (e.getAttribute('aria-label') || e.getAttribute('aria-labelledby') || e.textContent || (e.labels && e.labels.length ? 'label' : '')).trim();
                   return visible && (e.tabIndex < 0 && e.id !== 'main' || !name);
                 }).map(function (e) { return e.outerHTML.slice(0, 80); });",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(unlabelled, json!([]), "controls without a name or out of the tab order");
        if let Some(dir) = std::env::var_os("SPORTELLO_TEST_SCREENSHOTS") {
            let png = c.screenshot().await.unwrap();
            std::fs::write(PathBuf::from(&dir).join("dashboard-it.png"), png).unwrap();
            c.execute("window.scrollTo(0, 850);", vec![]).await.unwrap();
            let png = c.screenshot().await.unwrap();
            std::fs::write(PathBuf::from(&dir).join("dashboard-it-2.png"), png).unwrap();
        }
        let violations = axe(&c, &axe_source).await;
        assert!(violations.is_empty(), "accessibility of the live dashboard:\n{}", describe(&violations));
        let errs = errors(&c).await;
        assert!(errs.is_empty(), "console errors: {errs:?}");

        // English on request, with the session kept.
        c.goto(&t.url("/dashboard?lang=en")).await.unwrap();
        wait_for(&c, "English live board", "return !document.getElementById('board').hidden && document.getElementById('conn').classList.contains('live') && document.getElementById('t-waiting').textContent === '1';", Duration::from_secs(10)).await;
        assert_eq!(c.execute("return document.documentElement.lang;", vec![]).await.unwrap(), "en");
        assert_eq!(c.find(Locator::Css("h1")).await.unwrap().text().await.unwrap(), "Contact center dashboard");
        let violations = axe(&c, &axe_source).await;
        assert!(violations.is_empty(), "accessibility in English:\n{}", describe(&violations));
        let errs = errors(&c).await;
        assert!(errs.is_empty(), "console errors in English: {errs:?}");
        shown_after
    })
    .catch_unwind()
    .await;
    let _ = c.close().await;
    let _ = std::fs::remove_dir_all(&profile);
    match result {
        Ok(shown_after) => assert!(shown_after < Duration::from_secs(1)),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}
