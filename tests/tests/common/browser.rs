//! Headless Chromium for the browser tests, driven through chromedriver: the switch and the
//! tools from the environment, one browser session with an error hook in every page, and the
//! checks every page goes through (axe-core, console errors).
//!
//! Switched on by `SPORTELLO_TEST_BROWSER=1`; then a missing browser, driver or (when the test
//! uses it) axe-core fails the test. `deploy/scripts/install-browser.sh` installs them and
//! prints the path to give as `SPORTELLO_TEST_AXE`. With `SPORTELLO_TEST_SCREENSHOTS=DIR`
//! [`Browser::screenshot`] saves pictures there.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder};
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

/// How a test uses axe-core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Axe {
    /// Checks the page and every frame in it.
    Everywhere,
    /// Checks the page but not its frames: for pages that show content in sandboxed frames
    /// with an opaque origin, which axe-core cannot reach into (it would report a failure of
    /// its own instead of the page's).
    NotInFrames,
    /// Not used: `SPORTELLO_TEST_AXE` is not needed.
    Off,
}

/// What a browser test needs, found from the environment before the test sets anything up.
pub struct Tools {
    chromium: PathBuf,
    chromedriver: PathBuf,
    axe: Axe,
    axe_source: Option<String>,
}

impl Tools {
    /// `None` (saying so) when browser tests are switched off; panics naming what is missing
    /// when they are switched on.
    pub fn from_env(axe: Axe) -> Option<Tools> {
        if std::env::var("SPORTELLO_TEST_BROWSER").as_deref() != Ok("1") {
            eprintln!("SPORTELLO_TEST_BROWSER is not 1: browser test switched off");
            return None;
        }
        let chromium = which(&["chromium", "chromium-browser", "google-chrome"]).expect(
            "SPORTELLO_TEST_BROWSER=1 but chromium is missing: run deploy/scripts/install-browser.sh",
        );
        let chromedriver = which(&["chromedriver"]).expect(
            "SPORTELLO_TEST_BROWSER=1 but chromedriver is missing: run deploy/scripts/install-browser.sh",
        );
        let axe_source = (axe != Axe::Off).then(|| {
            let path = std::env::var("SPORTELLO_TEST_AXE").expect(
                "SPORTELLO_TEST_BROWSER=1 needs SPORTELLO_TEST_AXE (the path install-browser.sh prints)",
            );
            std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read axe-core at {path}: {e}"))
        });
        Some(Tools {
            chromium,
            chromedriver,
            axe,
            axe_source,
        })
    }

    /// Starts chromedriver and a headless Chromium session on a profile of its own, with the
    /// error hook installed in every page it opens.
    pub async fn launch(self) -> Browser {
        let (driver, driver_url) = start_driver(&self.chromedriver).await;
        let profile =
            std::env::temp_dir().join(format!("sportello-chromium-{}", uuid::Uuid::now_v7()));
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": self.chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                         "--disable-dev-shm-usage", "--window-size=1400,1000",
                         format!("--user-data-dir={}", profile.display())]
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&driver_url)
            .await
            .expect("a chromium session");
        let browser = Browser {
            client,
            axe: self.axe,
            axe_source: self.axe_source,
            profile,
            _driver: driver,
        };
        if let Err(e) = browser
            .issue_cmd(Cdp {
                cmd: "Page.addScriptToEvaluateOnNewDocument",
                params: json!({ "source": ERROR_HOOK }),
            })
            .await
        {
            browser.close().await;
            panic!("error hook installed: {e}");
        }
        browser
    }
}

/// A browser session (dereferences to the WebDriver client).
pub struct Browser {
    pub client: Client,
    axe: Axe,
    axe_source: Option<String>,
    profile: PathBuf,
    _driver: Driver,
}

impl Deref for Browser {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Browser {
    /// Runs a test body, then closes the session and removes the profile however the body
    /// ended. A panic of the body is handed back, so the caller can stop its own things
    /// before resuming it.
    pub async fn run<T>(self, body: impl AsyncFnOnce(&Browser) -> T) -> std::thread::Result<T> {
        let result = std::panic::AssertUnwindSafe(body(&self))
            .catch_unwind()
            .await;
        self.close().await;
        result
    }

    async fn close(self) {
        let _ = self.client.close().await;
        let _ = std::fs::remove_dir_all(&self.profile);
        // chromedriver stops when `_driver` drops, after the session is closed.
    }

    /// The value of a script.
    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    /// Waits until `script` returns true; `what` names it if it does not within `within`. It
    /// looks 200 times over that time, but not more often than every 25 ms nor less often
    /// than every 250 ms.
    pub async fn wait_for(&self, what: &str, script: &str, within: Duration) {
        let every = (within / 200).clamp(Duration::from_millis(25), Duration::from_millis(250));
        let deadline = Instant::now() + within;
        loop {
            if self.js(script).await == Value::Bool(true) {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: not within {within:?}");
            tokio::time::sleep(every).await;
        }
    }

    /// Serious and critical violations axe-core finds on the current page.
    pub async fn axe(&self) -> Vec<Value> {
        let source = self
            .axe_source
            .as_deref()
            .expect("this test started the browser with Axe::Off");
        self.client
            .execute(source, vec![])
            .await
            .expect("axe-core loads");
        let options = match self.axe {
            Axe::NotInFrames => "{ resultTypes: ['violations'], iframes: false }",
            _ => "{ resultTypes: ['violations'] }",
        };
        let found = self
            .client
            .execute_async(
                &format!(
                    "var done = arguments[arguments.length - 1];
                     axe.run(document, {options})
                       .then(function (r) {{ done(JSON.stringify(r.violations)); }})
                       .catch(function (e) {{ done(JSON.stringify([{{ id: 'axe-failed', impact: 'critical', help: String(e) }}])); }});"
                ),
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

    /// Fails naming every serious or critical axe-core violation on the current page.
    pub async fn assert_accessible(&self, what: &str) {
        let violations = self.axe().await;
        assert!(
            violations.is_empty(),
            "{what}: accessibility violations:\n{}",
            describe(&violations)
        );
    }

    /// What the error hook collected on the current page.
    pub async fn errors(&self) -> Vec<Value> {
        self.js("return window.__sportelloErrors || ['the error hook was not installed'];")
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Fails naming the console errors, uncaught errors and unhandled rejections of the page.
    pub async fn assert_no_errors(&self, what: &str) {
        let errs = self.errors().await;
        assert!(errs.is_empty(), "{what}: console errors: {errs:?}");
    }

    /// Saves a picture of the page as `file` in `SPORTELLO_TEST_SCREENSHOTS`, when set.
    pub async fn screenshot(&self, file: &str) {
        if let Some(dir) = std::env::var_os("SPORTELLO_TEST_SCREENSHOTS") {
            let png = self.client.screenshot().await.unwrap();
            std::fs::write(Path::new(&dir).join(file), png).unwrap();
        }
    }
}

/// axe-core's violations, one a line: rule, impact, help and where.
pub fn describe(violations: &[Value]) -> String {
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

async fn start_driver(driver: &Path) -> (Driver, String) {
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
