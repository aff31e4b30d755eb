//! `sportello import-cdr` as an administrator runs it: the real binary imports Asterisk CDR
//! files into a database that a running `sportello serve` shows through the API, with exact
//! counts, a re-import that changes nothing, and rejected rows reported by line.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{Scratch, Server, Session, serve, sportello, text};
use serde_json::{Value, json};
use sportello_phone::synth::synthetic_cdr;

const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../phone/tests/data/asterisk-cdr-sample.csv"
);

/// A scratch database and a configuration mapping the synthetic files' extensions 201–212 to
/// operators op201–op212.
struct Cdr {
    scratch: Scratch,
    config: PathBuf,
}

impl Cdr {
    fn new() -> Cdr {
        let scratch = Scratch::new("cdr");
        let config = scratch.dir.join("sportello.toml");
        let mut toml = String::from("[phone.extensions]\n");
        for e in 201..=212 {
            toml.push_str(&format!("\"{e}\" = \"op{e}\"\n"));
        }
        std::fs::write(&config, toml).unwrap();
        Cdr { scratch, config }
    }

    fn import(&self, files: &[&Path]) -> Output {
        self.import_with(files, &[])
    }

    fn import_with(&self, files: &[&Path], options: &[&str]) -> Output {
        let mut c = sportello();
        // The importer's own summary of how it planned the batches.
        c.env("RUST_LOG", "warn,sportello=info");
        c.arg("import-cdr")
            .args(["--database-url", &self.scratch.url])
            .arg("--config")
            .arg(&self.config)
            .args(options);
        c.args(files);
        c.output().unwrap()
    }

    /// `sportello serve` on the scratch database, and the administrator's session on it.
    async fn serve(&self) -> (Server, Session) {
        let server = Server::start(serve(&self.scratch.url).arg("--config").arg(&self.config));
        let admin = server.admin().await;
        (server, admin)
    }
}

/// The operators of the configured extensions.
async fn operators(api: &Session) {
    for e in 201..=212 {
        api.create(
            "/api/v1/users",
            json!({"username": format!("op{e}"), "password": "operator-password-1",
                   "name": format!("Operatore {e}"), "roles": ["front_office"]}),
        )
        .await;
    }
}

/// Every item of a paged list (`path` with its query, without `cursor`), page by page.
async fn all_pages(api: &Session, path: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = match &cursor {
            Some(c) => api.get(&format!("{path}&cursor={c}")).await,
            None => api.get(path).await,
        };
        out.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

/// Every call in the log.
async fn all_calls(api: &Session) -> Vec<Value> {
    all_pages(api, "/api/v1/calls?limit=200").await
}

/// Figures that must not move when a file is imported again.
async fn totals(api: &Session) -> Vec<u64> {
    vec![
        api.count("/api/v1/calls/count").await,
        api.count("/api/v1/calls/count?outcome=answered").await,
        api.count("/api/v1/tickets/count").await,
        api.count("/api/v1/tickets/count?status=resolved").await,
        api.get("/api/v1/callbacks?state=open&limit=200").await["items"]
            .as_array()
            .unwrap()
            .len() as u64,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_file_imports_exactly_and_a_second_import_changes_nothing() {
    let s = Cdr::new();
    let (_server, api) = s.serve().await;
    let out = s.import(&[Path::new(SAMPLE)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "imported 4 new, 0 already present, 0 rejected"
    );

    assert_eq!(api.count("/api/v1/calls/count").await, 4);
    assert_eq!(api.count("/api/v1/calls/count?outcome=answered").await, 2);
    assert_eq!(api.count("/api/v1/calls/count?outcome=missed").await, 2);
    let calls = all_calls(&api).await;
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
    let callbacks = api.get("/api/v1/callbacks").await;
    assert_eq!(callbacks["items"][0]["number"], "+390245678901");
    assert_eq!(callbacks["items"][0]["missed_count"], 1);

    let before = totals(&api).await;
    let out = s.import(&[Path::new(SAMPLE)]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout).trim(),
        "imported 0 new, 4 already present, 0 rejected"
    );
    assert_eq!(totals(&api).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_synthetic_calls_import_with_exact_counts() {
    let s = Cdr::new();
    let (_server, api) = s.serve().await;
    operators(&api).await;
    let synth = synthetic_cdr(10_000, 2026);
    let file = s.scratch.dir.join("Master.csv");
    std::fs::write(&file, &synth.csv).unwrap();

    let out = s.import(&[&file]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "imported 10000 new, 0 already present, 0 rejected"
    );

    assert_eq!(api.count("/api/v1/calls/count").await, 10_000);
    assert_eq!(
        api.count("/api/v1/calls/count?outcome=answered").await,
        synth.answered as u64
    );
    assert_eq!(
        api.count("/api/v1/calls/count?outcome=missed").await,
        synth.missed as u64
    );
    assert_eq!(api.count("/api/v1/calls/count?direction=outbound").await, 0);
    let calls = all_calls(&api).await;
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

    let before = totals(&api).await;
    let out = s.import(&[&file]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout).trim(),
        "imported 0 new, 10000 already present, 0 rejected"
    );
    assert_eq!(
        totals(&api).await,
        before,
        "a second import changes nothing"
    );
}

#[test]
fn malformed_rows_are_reported_by_line_and_exit_2() {
    let s = Cdr::new();
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
    let file = s.scratch.dir.join("broken.csv");
    std::fs::write(&file, data).unwrap();

    let out = s.import(&[&file]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    let report: Vec<&str> = printed.lines().collect();
    assert_eq!(report.len(), 4, "{printed}");
    assert!(
        report[0].starts_with("line 2: disposition 'MAYBE'"),
        "{printed}"
    );
    assert!(report[1].starts_with("line 4: has 3 columns"), "{printed}");
    assert!(
        report[2].starts_with("line 5: start '02/03/2026 09:22'"),
        "{printed}"
    );
    assert_eq!(report[3], "imported 4 new, 0 already present, 3 rejected");
    assert!(
        !printed.contains("3471112233") && !printed.contains("0245678901"),
        "no numbers echoed: {printed}"
    );

    let out = s.import(&[&file]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stdout).ends_with("imported 0 new, 4 already present, 3 rejected\n"),
        "{}",
        text(&out.stdout)
    );

    // A file that cannot be read is an error (exit 1) naming it, and nothing is imported.
    let out = s.import(&[Path::new(SAMPLE), &s.scratch.dir.join("missing.csv")]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("missing.csv"), "{err}");
}

/// Where every call of the log ended up, in terms that do not depend on generated ids: per
/// call id its outcome, call-back state, caller, operator, the call ids sharing its ticket and
/// those sharing its call-back; then the tickets, resolved tickets and open call-backs (with
/// their missed-call counts).
async fn placement(api: &Session) -> (BTreeMap<String, String>, Vec<u64>, Vec<(String, u64)>) {
    let calls = all_calls(api).await;
    let mut groups: BTreeMap<(&str, String), Vec<String>> = BTreeMap::new();
    for c in &calls {
        for field in ["ticket_id", "callback_ticket_id"] {
            if let Some(t) = c[field].as_str() {
                groups
                    .entry((field, t.to_owned()))
                    .or_default()
                    .push(c["call_id"].as_str().unwrap().to_owned());
            }
        }
    }
    let group_of = |field: &'static str, c: &Value| -> String {
        c[field]
            .as_str()
            .map(|t| {
                let mut ids = groups[&(field, t.to_owned())].clone();
                ids.sort();
                ids.join(",")
            })
            .unwrap_or_default()
    };
    let by_call = calls
        .iter()
        .map(|c| {
            (
                c["call_id"].as_str().unwrap().to_owned(),
                format!(
                    "{} {} {} {} | ticket {} | call-back {}",
                    c["outcome"],
                    c["callback_state"],
                    c["from"],
                    c["operator"],
                    group_of("ticket_id", c),
                    group_of("callback_ticket_id", c),
                ),
            )
        })
        .collect();
    let mut callbacks: Vec<(String, u64)> =
        all_pages(api, "/api/v1/callbacks?state=open&limit=200")
            .await
            .iter()
            .map(|cb| {
                (
                    cb["number"].as_str().unwrap().to_owned(),
                    cb["missed_count"].as_u64().unwrap(),
                )
            })
            .collect();
    callbacks.sort();
    (by_call, totals(api).await, callbacks)
}

/// The importer plans each batch while the previous one is written, from what that one
/// knew. Small batches put many citizens' calls, call-backs and tickets across batch
/// boundaries: the result must be the one of a single batch, call by call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_of_any_size_place_every_call_the_same_way() {
    let synth = synthetic_cdr(6_000, 77);
    let mut results = Vec::new();
    for batch_rows in ["6000", "457"] {
        let s = Cdr::new();
        let (_server, api) = s.serve().await;
        operators(&api).await;
        let file = s.scratch.dir.join("Master.csv");
        std::fs::write(&file, &synth.csv).unwrap();
        let out = s.import_with(&[&file], &["--batch-rows", batch_rows]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(
            text(&out.stdout).trim(),
            "imported 6000 new, 0 already present, 0 rejected"
        );
        if batch_rows == "457" {
            // 14 batches; all but the first planned while the one before was written (one
            // may be planned again if the server committed meanwhile).
            let log = text(&out.stderr);
            let ahead: u64 = log
                .split("planned_ahead=")
                .nth(1)
                .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no planning figures in the log: {log}"));
            assert!(ahead >= 10, "{log}");
        }
        results.push(placement(&api).await);
    }
    let (one, small) = (&results[0], &results[1]);
    assert_eq!(one.0.len(), 6_000);
    let differing: Vec<(&String, &String, Option<&String>)> = one
        .0
        .iter()
        .filter(|(k, v)| small.0.get(*k) != Some(*v))
        .map(|(k, v)| (k, v, small.0.get(k)))
        .take(5)
        .collect();
    assert!(
        differing.is_empty(),
        "calls placed differently: {differing:#?}"
    );
    assert_eq!(
        one.1, small.1,
        "calls, answered, tickets, resolved, open call-backs"
    );
    assert_eq!(one.2, small.2, "open call-backs and their missed calls");
    assert!(one.2.len() > 10, "the sample leaves call-backs open");
}
