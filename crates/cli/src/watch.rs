//! `sportello watch`: the live dashboard in a terminal, for administrators over SSH. Follows
//! `/api/v1/dashboard/ws` and redraws a queue summary on every message.

use std::collections::{BTreeMap, VecDeque};
use std::io::{IsTerminal, Write};

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// Most recent events shown under the figures.
const RECENT: usize = 8;

/// The websocket address of a server given by its HTTP address.
pub fn ws_url(url: &str) -> anyhow::Result<String> {
    let url = url.trim().trim_end_matches('/');
    let rest = if let Some(r) = url.strip_prefix("http://") {
        r
    } else if let Some(r) = url.strip_prefix("ws://") {
        r
    } else if url.starts_with("https://") || url.starts_with("wss://") {
        bail!(
            "--url {url}: this build speaks plain HTTP only; on the server itself use its local address (e.g. http://127.0.0.1:8080)"
        )
    } else if url.contains("://") {
        bail!("--url {url}: give an http:// address, e.g. http://127.0.0.1:8080")
    } else {
        url
    };
    if rest.is_empty() {
        bail!("--url is empty: give the server's address, e.g. http://127.0.0.1:8080");
    }
    Ok(format!("ws://{rest}/api/v1/dashboard/ws"))
}

pub async fn run(url: &str, token: &str) -> anyhow::Result<()> {
    let target = ws_url(url)?;
    let mut req = target
        .as_str()
        .into_client_request()
        .with_context(|| format!("--url {url} is not a valid address"))?;
    let bearer = HeaderValue::from_str(&format!("Bearer {}", token.trim()))
        .context("--token contains characters a header cannot carry")?;
    req.headers_mut().insert(header::AUTHORIZATION, bearer);
    let (mut ws, _) = match tokio_tungstenite::connect_async(req).await {
        Ok(c) => c,
        Err(WsError::Http(res)) if res.status() == StatusCode::UNAUTHORIZED => {
            bail!("the server refused the token (401): sign in again for a fresh one")
        }
        Err(WsError::Http(res)) if res.status() == StatusCode::FORBIDDEN => {
            bail!("this account may not watch the dashboard (403)")
        }
        Err(e) => return Err(e).with_context(|| format!("cannot connect to {target}")),
    };
    let mut view = View::default();
    let tty = std::io::stdout().is_terminal();
    loop {
        let msg = tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                let frame = CloseFrame { code: CloseCode::Normal, reason: "bye".into() };
                let _ = ws.send(Message::Close(Some(frame))).await;
                // Let the close handshake finish, briefly.
                let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async { while ws.next().await.is_some() {} }).await;
                println!();
                return Ok(());
            }
            m = ws.next() => m,
        };
        match msg {
            Some(Ok(Message::Text(text))) => {
                let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else {
                    continue;
                };
                if view.apply(v) {
                    let screen = view.render();
                    let mut out = std::io::stdout().lock();
                    if tty {
                        // Home and clear: one screen redrawn in place.
                        write!(out, "\x1b[H\x1b[2J{screen}")?;
                    } else {
                        writeln!(out, "{screen}{}", "-".repeat(60))?;
                    }
                    out.flush()?;
                }
            }
            Some(Ok(Message::Close(frame))) => {
                let code = frame.as_ref().map(|f| u16::from(f.code)).unwrap_or(1000);
                if code == 4401 {
                    bail!(
                        "the session ended (signed out or expired): sign in again for a fresh token"
                    );
                }
                println!("the server closed the connection ({code})");
                return Ok(());
            }
            Some(Ok(_)) => {}
            // The server went away without a goodbye (killed, or its host stopped).
            Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed | WsError::Io(_)))
            | Some(Err(WsError::Protocol(
                tokio_tungstenite::tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
            ))) => {
                println!("the server closed the connection");
                return Ok(());
            }
            Some(Err(e)) => return Err(e).context("the connection to the server failed"),
            None => {
                println!("the server closed the connection");
                return Ok(());
            }
        }
    }
}

/// What the terminal shows: the last snapshot and the deltas since.
#[derive(Default)]
pub struct View {
    snapshot: Option<Value>,
    seq: u64,
    recent: VecDeque<Value>,
}

fn n(v: &Value, path: &[&str]) -> u64 {
    let mut v = v;
    for p in path {
        v = &v[*p];
    }
    v.as_u64().unwrap_or(0)
}

fn human(secs: i64) -> String {
    let s = secs.unsigned_abs();
    let (h, m, r) = (s / 3600, (s % 3600) / 60, s % 60);
    let text = if h > 0 {
        format!("{h} h {m:02} min")
    } else if m > 0 {
        format!("{m} min {r:02} s")
    } else {
        format!("{r} s")
    };
    if secs < 0 { format!("-{text}") } else { text }
}

/// An instant as this machine's local clock time (the server's, for an administrator on it).
fn local_time(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|_| "–".into())
}

fn pct(v: &Value) -> String {
    v.as_f64()
        .map(|x| format!("{:.0}%", x * 100.0))
        .unwrap_or_else(|| "–".into())
}

fn secs(v: &Value) -> String {
    v.as_i64().map(human).unwrap_or_else(|| "–".into())
}

impl View {
    /// Takes a message in; true when the screen should be redrawn.
    pub fn apply(&mut self, msg: Value) -> bool {
        match msg["type"].as_str() {
            Some("snapshot") => {
                self.seq = msg["seq"].as_u64().unwrap_or(self.seq);
                self.snapshot = Some(msg);
                true
            }
            Some("delta") => {
                self.seq = msg["seq"].as_u64().unwrap_or(self.seq);
                if let Some(s) = self.snapshot.as_mut()
                    && msg["event"] == "ticket_created"
                {
                    // Counted at once; the next snapshot (within a second) has the details.
                    for key in ["waiting", "arrivals_today", "active"] {
                        let v = s["totals"][key].as_u64().unwrap_or(0) + 1;
                        s["totals"][key] = v.into();
                    }
                }
                self.recent.push_front(msg);
                self.recent.truncate(RECENT);
                true
            }
            _ => false,
        }
    }

    pub fn render(&self) -> String {
        let mut o = String::new();
        let Some(s) = &self.snapshot else {
            return "Sportello: in attesa dei dati…\n".into();
        };
        let t = &s["totals"];
        let at = s["generated_at"].as_str().unwrap_or("");
        o.push_str(&format!(
            "Sportello — code in diretta   (dati delle {}, seq {})\n\n",
            local_time(at),
            self.seq
        ));
        let oldest = t["oldest_waiting_since"]
            .as_str()
            .and_then(|x| chrono::DateTime::parse_from_rfc3339(x).ok())
            .map(|x| human((chrono::Utc::now() - x.with_timezone(&chrono::Utc)).num_seconds()))
            .unwrap_or_else(|| "–".into());
        o.push_str(&format!(
            "In attesa {}  (la più lunga da {})   Assegnate {}   In lavorazione {}   Attesa cittadino {}\n",
            n(t, &["waiting"]),
            oldest,
            n(t, &["assigned"]),
            n(t, &["open"]),
            n(t, &["waiting_citizen"])
        ));
        o.push_str(&format!(
            "Arrivi oggi {}   Risolte oggi {}   A rischio SLA {}   Fuori SLA {}   Richiamate da fare {} (in ritardo {})\n\n",
            n(t, &["arrivals_today"]),
            n(t, &["resolved_today"]),
            n(t, &["at_risk"]),
            n(t, &["breached"]),
            n(s, &["phone", "callbacks_pending"]),
            n(s, &["phone", "callbacks_overdue"])
        ));
        // Channel × tier, categories summed.
        let mut rows: BTreeMap<(String, String), [u64; 6]> = BTreeMap::new();
        for q in s["queues"].as_array().into_iter().flatten() {
            let key = (
                q["channel"].as_str().unwrap_or("?").to_owned(),
                q["tier"].as_str().unwrap_or("?").to_owned(),
            );
            let r = rows.entry(key).or_default();
            for (i, f) in [
                "waiting",
                "assigned",
                "open",
                "arrivals_today",
                "resolved_today",
                "at_risk",
            ]
            .iter()
            .enumerate()
            {
                r[i] += n(q, &[f]);
            }
        }
        o.push_str(&format!(
            "{:<10} {:<13} {:>7} {:>8} {:>8} {:>7} {:>8} {:>8}\n",
            "Canale", "Livello", "Attesa", "Assegn.", "Lavoraz.", "Arrivi", "Risolte", "Rischio"
        ));
        if rows.is_empty() {
            o.push_str("  (nessuna richiesta)\n");
        }
        for ((c, tier), r) in &rows {
            o.push_str(&format!(
                "{c:<10} {tier:<13} {:>7} {:>8} {:>8} {:>7} {:>8} {:>8}\n",
                r[0], r[1], r[2], r[3], r[4], r[5]
            ));
        }
        for (name, key) in [("oggi", "today"), ("7 giorni", "last_7_days")] {
            let p = &s["sla"][key];
            o.push_str(&format!(
                "\nSLA {name:<8} prime risposte nei tempi {:>4}  (mediana {}, p90 {})   risoluzioni nei tempi {:>4}  (mediana {})",
                pct(&p["first_response_attainment"]),
                secs(&p["first_response_p50_secs"]),
                secs(&p["first_response_p90_secs"]),
                pct(&p["resolution_attainment"]),
                secs(&p["resolution_p50_secs"])
            ));
        }
        o.push('\n');
        let alerts = s["at_risk"].as_array().map(|a| a.len()).unwrap_or(0);
        if alerts > 0 {
            o.push_str("\nA rischio:\n");
            for a in s["at_risk"].as_array().into_iter().flatten().take(10) {
                let left = a["due"]
                    .as_str()
                    .and_then(|x| chrono::DateTime::parse_from_rfc3339(x).ok())
                    .map(|x| {
                        human((x.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds())
                    })
                    .unwrap_or_else(|| "–".into());
                o.push_str(&format!(
                    "  {:<16} {:<8} {:<13} scade tra {left}\n",
                    a["number"].as_str().unwrap_or(""),
                    a["channel"].as_str().unwrap_or(""),
                    a["tier"].as_str().unwrap_or("")
                ));
            }
        }
        let presence = &s["operators"]["by_presence"];
        o.push_str(&format!(
            "\nOperatori: disponibili {}, occupati {}, chiusura pratica {}, in pausa {}, non collegati {}\n",
            n(presence, &["available"]),
            n(presence, &["busy"]),
            n(presence, &["wrap_up"]),
            n(presence, &["break"]),
            n(presence, &["offline"])
        ));
        if !self.recent.is_empty() {
            o.push_str("\nUltimi eventi:\n");
            for d in &self.recent {
                let at = d["at"].as_str().unwrap_or("");
                o.push_str(&format!(
                    "  {} {:<20} {:<16} {}{}\n",
                    local_time(at),
                    d["event"].as_str().unwrap_or(""),
                    d["number"].as_str().unwrap_or(""),
                    d["channel"]
                        .as_str()
                        .map(|c| format!("{c} "))
                        .unwrap_or_default(),
                    d["status"]
                        .as_str()
                        .map(|c| format!("→ {c}"))
                        .unwrap_or_default()
                ));
            }
        }
        o.push_str("\nCtrl-C per uscire.\n");
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn addresses_become_websocket_urls() {
        assert_eq!(
            ws_url("http://127.0.0.1:8080").unwrap(),
            "ws://127.0.0.1:8080/api/v1/dashboard/ws"
        );
        assert_eq!(
            ws_url("http://host:1/").unwrap(),
            "ws://host:1/api/v1/dashboard/ws"
        );
        assert_eq!(
            ws_url("localhost:8080").unwrap(),
            "ws://localhost:8080/api/v1/dashboard/ws"
        );
        assert!(
            ws_url("https://x")
                .unwrap_err()
                .to_string()
                .contains("plain HTTP")
        );
        assert!(ws_url("ftp://x").is_err());
    }

    #[test]
    fn the_screen_shows_the_queues_and_counts_deltas_at_once() {
        let mut v = View::default();
        assert!(v.render().contains("in attesa dei dati"));
        assert!(v.apply(json!({"type": "snapshot", "seq": 1, "generated_at": "2026-03-02T10:00:00Z",
            "totals": {"waiting": 2, "arrivals_today": 5},
            "queues": [{"channel": "email", "tier": "front_office", "waiting": 2, "arrivals_today": 5}],
            "sla": {"today": {"first_response_attainment": 0.5}}, "operators": {"by_presence": {"available": 3}}, "phone": {}})));
        let screen = v.render();
        assert!(screen.contains("In attesa 2"), "{screen}");
        assert!(screen.contains("email"), "{screen}");
        assert!(screen.contains("50%"), "{screen}");
        assert!(screen.contains("disponibili 3"), "{screen}");
        assert!(v.apply(json!({"type": "delta", "seq": 2, "event": "ticket_created", "number": "SP-2026-000009", "channel": "phone", "at": "2026-03-02T10:00:01Z"})));
        let screen = v.render();
        assert!(screen.contains("In attesa 3"), "{screen}");
        assert!(screen.contains("SP-2026-000009"), "{screen}");
        assert!(
            !v.apply(json!({"type": "heartbeat", "seq": 2})),
            "heartbeats change nothing on screen"
        );
    }
}
