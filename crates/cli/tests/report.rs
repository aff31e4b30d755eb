//! `sportello report` as an administrator runs it: the real binary writes CSV, XLSX and JSON
//! reports of the database a running server fills, with the same figures the API shows;
//! imports baselines from a file; and refuses bad parameters naming them.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

const ADMIN_PASSWORD: &str = "admin-password-1";

fn sportello() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sportello"));
    c.env_remove("SPORTELLO__DATABASE__URL")
        .env_remove("SPORTELLO_CONFIG")
        .env("SPORTELLO_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("RUST_LOG", "warn");
    c
}

struct Scratch {
    dir: PathBuf,
    url: String,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "sportello-report-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}/sportello.db?mode=rwc", dir.display());
        Scratch { dir, url }
    }

    fn report(&self, args: &[&str]) -> Output {
        sportello()
            .arg("report")
            .args(args)
            .args(["--database-url", &self.url])
            .output()
            .unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `sportello serve` on the scratch database; killed on drop.
struct Server {
    child: Child,
    base: String,
    token: String,
    client: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    async fn start(s: &Scratch) -> Server {
        let mut child = sportello()
            .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &s.url])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let base = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("server output");
            if let Some(a) = line.split("serving on ").nth(1) {
                break a.trim().to_owned();
            }
        };
        let client = reqwest::Client::new();
        let login: Value = client
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = login["token"].as_str().unwrap().to_owned();
        Server {
            child,
            base,
            token,
            client,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        assert!(res.status().is_success(), "{path}: {}", res.status());
        res.json().await.unwrap()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn reports_from_the_command_line_match_the_api() {
    let s = Scratch::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let channels = [
        "phone", "phone", "email", "counter", "phone", "web", "email",
    ];
    let (today, api_report) = rt.block_on(async {
        let server = Server::start(&s).await;
        for (i, channel) in channels.iter().enumerate() {
            server
                .call(
                    reqwest::Method::POST,
                    "/api/v1/tickets",
                    Some(json!({"channel": channel, "subject": format!("Domanda {i}"),
                                "category": "eligibility", "citizen": {"name": format!("Persona {i}")}})),
                )
                .await;
        }
        let snapshot = server
            .call(reqwest::Method::GET, "/api/v1/dashboard", None)
            .await;
        let today = snapshot["day"].as_str().unwrap().to_owned();
        let report = server
            .call(
                reqwest::Method::GET,
                &format!("/api/v1/reports/contacts?from={today}&to={today}&group_by=channel"),
                None,
            )
            .await;
        (today, report)
    });

    // CSV: a header row, then one row per channel with the API's figures.
    let csv_path = s.dir.join("contacts.csv");
    let out = s.report(&[
        "contacts",
        "--from",
        &today,
        "--to",
        &today,
        "--group-by",
        "channel",
        "--output",
        csv_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("key,count"));
    let rows: Vec<(String, u64)> = lines
        .map(|l| {
            let (k, n) = l.split_once(',').unwrap();
            (k.to_owned(), n.parse().unwrap())
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("counter".to_owned(), 1),
            ("email".to_owned(), 2),
            ("phone".to_owned(), 3),
            ("web".to_owned(), 1)
        ]
    );
    let api_rows: Vec<(String, u64)> = api_report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_owned(),
                r["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows, api_rows, "the command line and the API agree");

    // XLSX, chosen by the file's extension (its cells are checked in tests/tests/reports.rs).
    let xlsx_path = s.dir.join("contacts.xlsx");
    let out = s.report(&[
        "contacts",
        "--from",
        &today,
        "--to",
        &today,
        "--output",
        xlsx_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let xlsx = std::fs::read(&xlsx_path).unwrap();
    assert_eq!(&xlsx[..2], b"PK", "an XLSX is a zip archive");

    // JSON on standard output.
    let out = s.report(&[
        "contacts", "--from", &today, "--to", &today, "--format", "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["total"], channels.len());

    // Baselines from a file, then the comparison against them.
    let month = &today[..7];
    let year: i32 = today[..4].parse().unwrap();
    let baselines = s.dir.join("baselines.csv");
    std::fs::write(
        &baselines,
        format!(
            "metric,key,period,count\ncontacts,all,{}{},5\n",
            year - 1,
            &today[4..7]
        ),
    )
    .unwrap();
    let out = sportello()
        .args(["report", "import-baseline"])
        .arg(&baselines)
        .args(["--database-url", &s.url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("imported 1 baseline figures"));
    let out = s.report(&[
        "compare", "--from", &today, "--to", &today, "--format", "csv",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let csv = text(&out.stdout);
    let row: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(row[0], month);
    assert_eq!(row[2], channels.len().to_string(), "{csv}");
    assert_eq!(row[8], "5", "the baseline: {csv}");
    assert_eq!(
        row[9],
        (channels.len() as i64 - 5).to_string(),
        "the delta: {csv}"
    );

    // Bad parameters name themselves; nothing is written.
    let out = s.report(&["contacts", "--from", "2026-02-30", "--to", "2026-03-01"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("from: '2026-02-30' is not a date"), "{err}");
    let bad = s.dir.join("bad.csv");
    std::fs::write(&bad, "metric,key,period,count\ncontacts,all,2025-13,1\n").unwrap();
    let out = sportello()
        .args(["report", "import-baseline"])
        .arg(&bad)
        .args(["--database-url", &s.url])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("line 2"),
        "{}",
        text(&out.stderr)
    );
}
