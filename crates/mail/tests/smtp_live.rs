//! The SMTP sender against the real aiosmtpd sink (deploy/scripts/test-services.sh).
//!
//! Runs only when SPORTELLO_TEST_SMTP_HOST is set, and then fails (not skips) when the sink
//! cannot be reached. See tests/imap_live.rs for how to start the services.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sportello_domain::{EmailAddress, TicketNumber};
use sportello_mail::compose::{ComposedMessage, Language, ReplyDraft, Signature, compose_reply};
use sportello_mail::parse::{self, ParseLimits, Party};
use sportello_mail::smtp::{SmtpConfig, SmtpSender};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Sink {
    sender: SmtpSender,
    dir: PathBuf,
}

fn live() -> Option<Sink> {
    let Ok(host) = std::env::var("SPORTELLO_TEST_SMTP_HOST") else {
        eprintln!("SPORTELLO_TEST_SMTP_HOST is not set: live SMTP test skipped");
        return None;
    };
    let var = |n: &str| {
        std::env::var(n)
            .unwrap_or_else(|_| panic!("SPORTELLO_TEST_SMTP_HOST is set but {n} is not"))
    };
    let port: u16 = var("SPORTELLO_TEST_SMTP_PORT")
        .parse()
        .expect("SPORTELLO_TEST_SMTP_PORT is a port number");
    if let Err(e) = std::net::TcpStream::connect((host.as_str(), port)) {
        panic!("SPORTELLO_TEST_SMTP_HOST is set but {host}:{port} is unreachable: {e}");
    }
    let config: SmtpConfig = toml::from_str(&format!(
        "host = \"{host}\"\nport = {port}\ntls = \"none\"\nfrom_name = \"Comune di Milano\"\n\
         from_address = \"noreply@comune.example.it\"\ntimeout_secs = 5"
    ))
    .expect("config");
    Some(Sink {
        sender: SmtpSender::new(config).expect("transport"),
        dir: PathBuf::from(var("SPORTELLO_TEST_SMTP_DIR")),
    })
}

fn reply(body: &str) -> ComposedMessage {
    let party = |a: &str, n: &str| Party {
        address: EmailAddress::parse(a).expect("valid"),
        name: Some(n.to_owned()),
    };
    compose_reply(&ReplyDraft {
        from: party("welfare@comune.example.it", "Sportello Welfare"),
        to: party("maria.esposito@example.it", "Maria Esposito"),
        ticket: TicketNumber::parse("SP-2026-000123").expect("valid"),
        subject: "R: Richiesta contributo".into(),
        custom_subject: None,
        in_reply_to: Some("AM0PR01MB1234567@outlook.example.com".into()),
        references: vec!["first@example.it".into()],
        greeting_name: Some("Maria Esposito".into()),
        body: body.to_owned(),
        signature: Signature {
            operator_name: "Giulia Conti".into(),
            office: "Sportello Welfare".into(),
            contact_lines: vec!["Tel. 02 0202".into()],
        },
        language: Language::It,
        attachments: vec![],
        message_id_domain: None,
    })
    .expect("composes")
}

/// The .eml the sink wrote for a Message-ID, once it exists.
async fn received(
    dir: &Path,
    message_id: &str,
    limit: Duration,
) -> Option<(Vec<u8>, serde_json::Value)> {
    let needle = format!("<{message_id}>");
    let start = Instant::now();
    loop {
        for entry in std::fs::read_dir(dir).expect("sink dir").flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "eml") {
                let bytes = std::fs::read(&path).expect("read eml");
                if String::from_utf8_lossy(&bytes).contains(&needle) {
                    let meta = std::fs::read(path.with_extension("json")).expect("envelope json");
                    return Some((bytes, serde_json::from_slice(&meta).expect("json")));
                }
            }
        }
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn script(command: &str) {
    let script =
        std::env::var("SPORTELLO_TEST_SERVICES_SCRIPT").expect("SPORTELLO_TEST_SERVICES_SCRIPT");
    let dir = std::env::var("SPORTELLO_TEST_SERVICES_DIR").expect("SPORTELLO_TEST_SERVICES_DIR");
    let out = tokio::process::Command::new("bash")
        .args([script.as_str(), command, dir.as_str()])
        .output()
        .await
        .expect("run test-services.sh");
    assert!(
        out.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_reply_reaches_the_smtp_server_intact() {
    let Some(sink) = live() else { return };
    let _serial = SERIAL.lock().await;
    let msg = reply("la sua domanda è stata accolta.\n.\nRiga che inizia con un punto: .ok");
    sink.sender.send(&msg).await.expect("delivered");
    let (bytes, envelope) = received(&sink.dir, &msg.message_id, Duration::from_secs(5))
        .await
        .expect("the sink received the message");
    assert_eq!(envelope["mail_from"], "welfare@comune.example.it");
    assert_eq!(
        envelope["rcpt_tos"],
        serde_json::json!(["maria.esposito@example.it"])
    );
    // lettre ends DATA with CRLF "." CRLF even after a final CRLF, so one blank line is added.
    let trim = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .trim_end_matches("\r\n")
            .to_owned()
    };
    assert_eq!(
        trim(&bytes),
        trim(&msg.raw),
        "the bytes arrive as composed (dot-stuffing undone)"
    );
    let back = parse::parse(&bytes, &ParseLimits::default()).expect("parses");
    assert_eq!(back.subject, "Re: [SP-2026-000123] Richiesta contributo");
    assert_eq!(
        back.in_reply_to.as_deref(),
        Some("AM0PR01MB1234567@outlook.example.com")
    );
    assert!(
        back.text
            .contains("la sua domanda è stata accolta.\n.\nRiga che inizia"),
        "{}",
        back.text
    );
}

#[tokio::test]
async fn a_stopped_server_is_transient_and_delivery_works_once_it_is_back() {
    let Some(sink) = live() else { return };
    let _serial = SERIAL.lock().await;
    let msg = reply("consegna dopo il ripristino");
    script("stop-smtp").await;
    let result = sink.sender.send(&msg).await;
    script("start-smtp").await;
    let err = result.expect_err("nothing listens while the sink is stopped");
    assert!(err.is_transient(), "{err}");

    // What an outbox worker does: retry until the transient fault passes.
    let mut attempts = 0;
    loop {
        attempts += 1;
        match sink.sender.send(&msg).await {
            Ok(()) => break,
            Err(e) if e.is_transient() && attempts < 10 => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("delivery after restart failed: {e}"),
        }
    }
    assert!(
        received(&sink.dir, &msg.message_id, Duration::from_secs(5))
            .await
            .is_some()
    );
}

#[tokio::test]
async fn refusals_are_classified_by_reply_code() {
    let Some(sink) = live() else { return };
    let _serial = SERIAL.lock().await;
    let dir = std::env::var("SPORTELLO_TEST_SERVICES_DIR").expect("SPORTELLO_TEST_SERVICES_DIR");
    let reject = PathBuf::from(dir).join("smtp.reject");
    let msg = reply("rifiutato");

    std::fs::write(&reject, "550 5.1.1 No such user here\n").expect("write reject file");
    let permanent = sink.sender.send(&msg).await;
    std::fs::write(&reject, "451 4.3.0 Try again later\n").expect("write reject file");
    let transient = sink.sender.send(&msg).await;
    std::fs::remove_file(&reject).expect("remove reject file");

    let permanent = permanent.expect_err("refused");
    assert!(permanent.is_permanent(), "{permanent}");
    assert_eq!(permanent.code, Some(550));
    let transient = transient.expect_err("refused");
    assert!(transient.is_transient(), "{transient}");
    assert_eq!(transient.code, Some(451));
    assert!(
        received(&sink.dir, &msg.message_id, Duration::from_millis(300))
            .await
            .is_none()
    );
}
