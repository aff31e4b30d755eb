//! `sportello demo` as a newcomer meets it: it prints its URL and the demo accounts
//! (`user: password`, one a line), and within a minute the supervisor's dashboard shows tickets
//! from the phone, e-mail and counter channels, assignments and SLA figures; the metrics count
//! the three channels; SIGTERM stops it cleanly.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[test]
fn the_demo_comes_alive_with_all_three_channels() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sportello"))
        .args(["demo", "--listen", "127.0.0.1:0"])
        .env_remove("SPORTELLO__DATABASE__URL")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The URL, then the accounts: every line of the form `user: password`.
    let (mut base, mut accounts) = (None, Vec::new());
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) else {
            if base.is_some() && !accounts.is_empty() {
                break;
            }
            continue;
        };
        if let Some(url) = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .filter(|_| base.is_none())
        {
            base = Some(url.trim_end_matches('/').to_owned());
            continue;
        }
        let mut parts = line.splitn(2, ": ");
        if let (Some(user), Some(password)) = (parts.next(), parts.next())
            && !user.is_empty()
            && !user.contains(' ')
            && !password.contains(' ')
        {
            accounts.push((user.to_owned(), password.to_owned()));
        }
        if line.contains("Ctrl-C") {
            break;
        }
    }
    let base = base.expect("the demo prints its URL");
    let supervisor = accounts
        .iter()
        .find(|(u, _)| u == "supervisore")
        .unwrap_or_else(|| panic!("a supervisor among the accounts: {accounts:?}"))
        .clone();
    assert!(accounts.len() >= 5, "{accounts:?}");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let outcome = rt.block_on(async {
        let client = reqwest::Client::new();
        // Every printed account signs in, and the operators of both tiers are there.
        let mut roles = Vec::new();
        let mut token = String::new();
        for (user, password) in &accounts {
            let res = client
                .post(format!("{base}/api/v1/auth/login"))
                .json(&json!({"username": user, "password": password}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{user} cannot sign in");
            let v: Value = res.json().await.unwrap();
            for r in v["user"]["roles"].as_array().into_iter().flatten() {
                roles.push(r.as_str().unwrap_or_default().to_owned());
            }
            if *user == supervisor.0 {
                token = v["token"].as_str().unwrap().to_owned();
            }
        }
        for r in ["admin", "supervisor", "front_office", "back_office", "counter"] {
            assert!(roles.iter().any(|x| x == r), "no demo account with role {r}");
        }

        let deadline = Instant::now() + Duration::from_secs(60);
        let last = loop {
            let snap: Value = client
                .get(format!("{base}/api/v1/dashboard"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let channels: Vec<String> = snap["queues"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|q| q["arrivals_today"].as_u64().unwrap_or(0) > 0)
                .filter_map(|q| q["channel"].as_str().map(String::from))
                .collect();
            let all_channels = ["phone", "email", "counter"]
                .iter()
                .all(|c| channels.iter().any(|x| x == c));
            let assigned = snap["totals"]["assigned"].as_u64().unwrap_or(0)
                + snap["totals"]["open"].as_u64().unwrap_or(0)
                + snap["totals"]["resolved_today"].as_u64().unwrap_or(0);
            let sla = snap["sla"]["today"]["first_responses"].as_u64().unwrap_or(0);
            if all_channels && assigned > 0 && sla > 0 {
                break snap;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "within a minute the dashboard shows channels {channels:?}, {assigned} assigned, {sla} first responses: {snap}"
                ));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        // Tickets carry SLA deadlines set by the router.
        let page: Value = client
            .get(format!("{base}/api/v1/tickets?limit=50"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let with_sla = page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["sla"]["policy"].is_string())
            .count();
        assert!(with_sla > 0, "no ticket has an SLA: {page}");
        assert!(
            last["sla"]["today"]["first_response_attainment"].is_number(),
            "{}",
            last["sla"]
        );

        // The same traffic in the metrics.
        let text = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for channel in ["phone", "email", "counter"] {
            let line = text
                .lines()
                .find(|l| {
                    l.starts_with(&format!(
                        "sportello_tickets_created_total{{channel=\"{channel}\"}}"
                    ))
                })
                .unwrap_or_else(|| panic!("no counter for {channel}:\n{text}"));
            let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
            assert!(n > 0.0, "{line}");
        }
        Ok(())
    });

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let stopped = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if stopped.elapsed() > Duration::from_secs(15) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if let Err(e) = outcome {
        panic!("{e}");
    }
    let status = status.expect("the demo stops on SIGTERM");
    assert!(
        status.success(),
        "the demo exits 0 on SIGTERM, got {status}"
    );
}
