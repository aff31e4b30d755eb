//! `sportello demo` as a newcomer meets it: it prints its URL and the demo accounts
//! (`user: password`, one a line), and within a minute the supervisor's dashboard shows tickets
//! from the phone, e-mail and counter channels, assignments and SLA figures; the metrics count
//! the three channels; SIGTERM stops it cleanly.

mod common;

use std::time::{Duration, Instant};

use common::{Process, Session, sportello};

#[test]
fn the_demo_comes_alive_with_all_three_channels() {
    let mut demo = Process::spawn(sportello().args(["demo", "--listen", "127.0.0.1:0"]));
    // The URL, then the accounts: every line of the form `user: password`.
    let (mut base, mut accounts) = (None, Vec::new());
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let Some(line) = demo.line(Duration::from_secs(5)) else {
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
        // Every printed account signs in, and the operators of both tiers are there.
        let mut roles = Vec::new();
        let mut session = None;
        for (user, password) in &accounts {
            let signed_in = Session::login(&base, user, password).await;
            for r in signed_in.user["roles"].as_array().into_iter().flatten() {
                roles.push(r.as_str().unwrap_or_default().to_owned());
            }
            if *user == supervisor.0 {
                session = Some(signed_in);
            }
        }
        let supervisor = session.unwrap();
        for r in ["admin", "supervisor", "front_office", "back_office", "counter"] {
            assert!(roles.iter().any(|x| x == r), "no demo account with role {r}");
        }

        let deadline = Instant::now() + Duration::from_secs(60);
        let last = loop {
            let snap = supervisor.get("/api/v1/dashboard").await;
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
        let page = supervisor.get("/api/v1/tickets?limit=50").await;
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
        let text = supervisor
            .client
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

    let status = demo.terminate(Duration::from_secs(15));
    if let Err(e) = outcome {
        panic!("{e}");
    }
    let status = status.expect("the demo stops on SIGTERM");
    assert!(
        status.success(),
        "the demo exits 0 on SIGTERM, got {status}"
    );
}
