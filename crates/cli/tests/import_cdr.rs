//! `sportello import-cdr` as an administrator runs it: the real binary imports Asterisk CDR
//! files into a database that a running `sportello serve` shows through the API, with exact
//! counts, a re-import that changes nothing, and rejected rows reported by line.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};
use sportello_phone::synth::synthetic_cdr;

const ADMIN_PASSWORD: &str = "admin-password-1";
const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../phone/tests/data/asterisk-cdr-sample.csv"
);

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
    config: PathBuf,
}

impl Scratch {
    /// A fresh directory with a database URL and a configuration mapping the synthetic files'
    /// extensions 201–212 to operators op201–op212.
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "sportello-cdr-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("sportello.toml");
        let mut toml = String::from("[phone.extensions]\n");
        for e in 201..=212 {
            toml.push_str(&format!("\"{e}\" = \"op{e}\"\n"));
        }
        std::fs::write(&config, toml).unwrap();
        let url = format!("sqlite://{}/sportello.db?mode=rwc", dir.display());
        Scratch { dir, url, config }
    }

    fn import(&self, files: &[&Path]) -> Output {
        let mut c = sportello();
        c.arg("import-cdr")
            .args(["--database-url", &self.url])
            .arg("--config")
            .arg(&self.config);
        c.args(files);
        c.output().unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
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
            .arg("--config")
            .arg(&s.config)
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

    async fn get(&self, path: &str) -> Value {
        let res = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "GET {path}");
        res.json().await.unwrap()
    }

    async fn count(&self, path: &str) -> u64 {
        self.get(path).await["count"].as_u64().unwrap()
    }

    async fn operators(&self) {
        for e in 201..=212 {
            let res = self
                .client
                .post(format!("{}/api/v1/users", self.base))
                .bearer_auth(&self.token)
                .json(
                    &json!({"username": format!("op{e}"), "password": "operator-password-1",
                              "name": format!("Operatore {e}"), "roles": ["front_office"]}),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 201);
        }
    }

    /// Every call in the log, page by page.
    async fn all_calls(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/v1/calls?limit=200&cursor={c}"),
                None => "/api/v1/calls?limit=200".to_owned(),
            };
            let page = self.get(&path).await;
            out.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return out,
            }
        }
    }

    /// Figures that must not move when a file is imported again.
    async fn totals(&self) -> Vec<u64> {
        vec![
            self.count("/api/v1/calls/count").await,
            self.count("/api/v1/calls/count?outcome=answered").await,
            self.count("/api/v1/tickets/count").await,
            self.count("/api/v1/tickets/count?status=resolved").await,
            self.get("/api/v1/callbacks?state=open&limit=200").await["items"]
                .as_array()
                .unwrap()
                .len() as u64,
        ]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_file_imports_exactly_and_a_second_import_changes_nothing() {
    let s = Scratch::new();
    let server = Server::start(&s).await;
    let out = s.import(&[Path::new(SAMPLE)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout(&out).trim(),
        "imported 4 new, 0 already present, 0 rejected"
    );

    assert_eq!(server.count("/api/v1/calls/count").await, 4);
    assert_eq!(
        server.count("/api/v1/calls/count?outcome=answered").await,
        2
    );
    assert_eq!(server.count("/api/v1/calls/count?outcome=missed").await, 2);
    let calls = server.all_calls().await;
    let withheld: Vec<&Value> = calls.iter().filter(|c| c["withheld"] == true).collect();
    assert_eq!(withheld.len(), 1);
    assert_eq!(withheld[0]["callback_state"], "impossible");
    let callers: HashSet<&str> = calls
        .iter()
        .filter_map(|c| c["citizen_id"].as_str())
        .collect();
    assert_eq!(
        callers.len(),
        3,
        "three distinct numbers, one of them written 0039 333 ..."
    );
    let missed = calls
        .iter()
        .find(|c| c["call_id"] == "1772439611.102")
        .unwrap();
    assert_eq!(
        (missed["from"].as_str(), missed["callback_state"].as_str()),
        (Some("+390245678901"), Some("open"))
    );
    let callbacks = server.get("/api/v1/callbacks").await;
    assert_eq!(callbacks["items"][0]["number"], "+390245678901");
    assert_eq!(callbacks["items"][0]["missed_count"], 1);

    let before = server.totals().await;
    let out = s.import(&[Path::new(SAMPLE)]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout(&out).trim(),
        "imported 0 new, 4 already present, 0 rejected"
    );
    assert_eq!(server.totals().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_synthetic_calls_import_with_exact_counts() {
    let s = Scratch::new();
    let server = Server::start(&s).await;
    server.operators().await;
    let synth = synthetic_cdr(10_000, 2026);
    let file = s.dir.join("Master.csv");
    std::fs::write(&file, &synth.csv).unwrap();

    let out = s.import(&[&file]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout(&out).trim(),
        "imported 10000 new, 0 already present, 0 rejected"
    );

    assert_eq!(server.count("/api/v1/calls/count").await, 10_000);
    assert_eq!(
        server.count("/api/v1/calls/count?outcome=answered").await,
        synth.answered as u64
    );
    assert_eq!(
        server.count("/api/v1/calls/count?outcome=missed").await,
        synth.missed as u64
    );
    assert_eq!(
        server.count("/api/v1/calls/count?direction=outbound").await,
        0
    );
    let calls = server.all_calls().await;
    assert_eq!(calls.len(), 10_000);
    let withheld = calls.iter().filter(|c| c["withheld"] == true).count();
    assert_eq!(withheld, synth.withheld);
    let numbers: HashSet<&str> = calls
        .iter()
        .filter(|c| c["withheld"] == false)
        .filter_map(|c| c["from"].as_str())
        .collect();
    assert_eq!(numbers.len(), synth.distinct_callers);
    let citizens: HashSet<&str> = calls
        .iter()
        .filter_map(|c| c["citizen_id"].as_str())
        .collect();
    assert_eq!(
        citizens.len(),
        synth.distinct_callers,
        "one citizen per distinct caller"
    );
    let mut per_operator: BTreeMap<String, usize> = BTreeMap::new();
    for c in calls.iter().filter(|c| c["outcome"] == "answered") {
        let op = c["operator"]
            .as_str()
            .unwrap_or_else(|| panic!("answered call without operator: {c}"));
        *per_operator.entry(op.to_owned()).or_default() += 1;
    }
    let want: BTreeMap<String, usize> = synth
        .per_extension
        .iter()
        .map(|(ext, n)| (format!("op{ext}"), *n))
        .collect();
    assert_eq!(per_operator, want);
    // Every missed call from a known number is call-back work: open, or done because the
    // citizen got through later.
    for c in calls.iter().filter(|c| c["outcome"] == "missed") {
        let state = c["callback_state"].as_str().unwrap();
        let want: &[&str] = if c["withheld"] == true {
            &["impossible"]
        } else {
            &["open", "done", "not_needed"]
        };
        assert!(want.contains(&state), "{c}");
    }

    let before = server.totals().await;
    let out = s.import(&[&file]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout(&out).trim(),
        "imported 0 new, 10000 already present, 0 rejected"
    );
    assert_eq!(
        server.totals().await,
        before,
        "a second import changes nothing"
    );
}

#[test]
fn malformed_rows_are_reported_by_line_and_exit_2() {
    let s = Scratch::new();
    let sample = std::fs::read_to_string(SAMPLE).unwrap();
    let lines: Vec<&str> = sample.lines().collect();
    let data = [
        lines[0].to_owned(),
        lines[1].replace("\"NO ANSWER\"", "\"MAYBE\""),
        lines[1].to_owned(),
        "\"only\",\"three\",\"columns\"".to_owned(),
        lines[2].replace("2026-03-02 09:22:00", "02/03/2026 09:22"),
        lines[2].to_owned(),
        lines[3].to_owned(),
    ]
    .join("\n");
    let file = s.dir.join("broken.csv");
    std::fs::write(&file, data).unwrap();

    let out = s.import(&[&file]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    let report: Vec<&str> = text.lines().collect();
    assert_eq!(report.len(), 4, "{text}");
    assert!(
        report[0].starts_with("line 2: disposition 'MAYBE'"),
        "{text}"
    );
    assert!(report[1].starts_with("line 4: has 3 columns"), "{text}");
    assert!(
        report[2].starts_with("line 5: start '02/03/2026 09:22'"),
        "{text}"
    );
    assert_eq!(report[3], "imported 4 new, 0 already present, 3 rejected");
    assert!(
        !text.contains("3471112233") && !text.contains("0245678901"),
        "no numbers echoed: {text}"
    );

    let out = s.import(&[&file]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).ends_with("imported 0 new, 4 already present, 3 rejected\n"),
        "{}",
        stdout(&out)
    );

    // A file that cannot be read is an error (exit 1) naming it, and nothing is imported.
    let out = s.import(&[Path::new(SAMPLE), &s.dir.join("missing.csv")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.csv"), "{err}");
}
