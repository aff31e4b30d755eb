//! Harness of the binary's integration tests: the `sportello` command with none of the
//! developer's Sportello settings, scratch directories, a running `sportello` whose output is
//! read line by line and which is stopped however the test ends, and API sessions on it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The administrator's password of the servers started with [`serve`].
pub const ADMIN_PASSWORD: &str = "admin-password-1";

/// The binary under test, unaffected by the environment it runs in: no configuration file, no
/// `SPORTELLO__…` overrides, no passwords or tokens, and only warnings logged.
pub fn sportello() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sportello"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SPORTELLO__") {
            c.env_remove(name);
        }
    }
    for name in [
        "SPORTELLO_CONFIG",
        "SPORTELLO_ADMIN_PASSWORD",
        "SPORTELLO_NEW_PASSWORD",
        "SPORTELLO_TOKEN",
    ] {
        c.env_remove(name);
    }
    c.env("RUST_LOG", "warn");
    c
}

/// `sportello serve` on a loopback port of its own over `database_url`, creating the
/// administrator with [`ADMIN_PASSWORD`] on first start; add more arguments to it.
pub fn serve(database_url: &str) -> Command {
    let mut c = sportello();
    c.env("SPORTELLO_ADMIN_PASSWORD", ADMIN_PASSWORD).args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        database_url,
    ]);
    c
}

/// The text of a command's output.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fresh directory, removed when dropped, and the URL of a SQLite database in it.
pub struct Scratch {
    pub dir: PathBuf,
    pub url: String,
}

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "sportello-{name}-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}/sportello.db?mode=rwc", dir.display());
        Scratch { dir, url }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running `sportello` whose standard output arrives line by line; stopped (SIGTERM, then
/// SIGKILL after ten seconds) when dropped while still running.
pub struct Process {
    child: Child,
    lines: Receiver<String>,
}

impl Process {
    pub fn spawn(command: &mut Command) -> Process {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start sportello: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Process { child, lines }
    }

    /// The next line of output, if one comes within `within` (`None` also once the output
    /// has ended).
    pub fn line(&self, within: Duration) -> Option<String> {
        self.lines.recv_timeout(within).ok()
    }

    /// Sends SIGTERM and waits up to `within` for the process to exit; `None` when it did
    /// not (it is then killed).
    pub fn terminate(&mut self, within: Duration) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
        None
    }

    /// Stops the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.terminate(Duration::from_secs(10));
    }
}

/// A running `sportello serve` (or `sportello demo`) that has said where it serves.
pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// What it printed before saying where it serves.
    pub greeting: Vec<String>,
    pub process: Process,
}

impl Server {
    /// Starts `command` and waits up to a minute for its `serving on` line.
    pub fn start(command: &mut Command) -> Server {
        let process = Process::spawn(command);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut greeting = Vec::new();
        loop {
            let line = process
                .line(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|| {
                    panic!("sportello did not say where it serves; it printed {greeting:?}")
                });
            if let Some(a) = line.split("serving on ").nth(1) {
                let base = a.trim().trim_end_matches('/').to_owned();
                return Server {
                    base,
                    greeting,
                    process,
                };
            }
            greeting.push(line);
        }
    }

    /// The administrator's API session.
    pub async fn admin(&self) -> Session {
        Session::login(&self.base, "admin", ADMIN_PASSWORD).await
    }
}

/// Someone signed in to a server's API.
#[derive(Clone)]
pub struct Session {
    pub base: String,
    pub client: reqwest::Client,
    pub token: String,
    /// The signed-in user as the sign-in answered (`id`, `roles`, …).
    pub user: Value,
}

impl Session {
    /// Signs in; fails unless the server accepts the credentials.
    pub async fn login(base: &str, username: &str, password: &str) -> Session {
        let client = reqwest::Client::new();
        let res = client
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{username} cannot sign in");
        let v: Value = res.json().await.unwrap();
        let token = v["token"].as_str().expect("a token").to_owned();
        Session {
            base: base.to_owned(),
            client,
            token,
            user: v["user"].clone(),
        }
    }

    /// A request to `path` with the session's token.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// The JSON of a GET that must answer 200.
    pub async fn get(&self, path: &str) -> Value {
        let res = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "GET {path}");
        res.json().await.unwrap()
    }

    /// The `count` of a GET that must answer 200.
    pub async fn count(&self, path: &str) -> u64 {
        self.get(path).await["count"].as_u64().unwrap()
    }

    /// The JSON of a POST that must answer 201.
    pub async fn create(&self, path: &str, body: Value) -> Value {
        let res = self
            .request(reqwest::Method::POST, path)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "POST {path}");
        res.json().await.unwrap()
    }
}
