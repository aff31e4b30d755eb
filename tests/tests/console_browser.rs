//! The operator console in headless Chromium, driven through chromedriver against the real
//! server: sign in, see the assigned ticket, reply with a prepared answer (the e-mail reaches
//! the SMTP server with the ticket's tag), add a note, escalate to the back office, find a
//! citizen by codice fiscale, check a visitor in; no serious or critical axe-core violation on
//! any page, no console errors; and a citizen's e-mail full of script, event handlers and a
//! remote image pointing at a listener of the test neither runs nor loads anything.
//!
//! Switched on by `SPORTELLO_TEST_BROWSER=1` (then a missing browser, driver or axe-core fails
//! the test); `deploy/scripts/install-browser.sh` installs them and prints the path to give as
//! `SPORTELLO_TEST_AXE`. Replies go to the SMTP sink of `deploy/scripts/test-services.sh` when
//! `SPORTELLO_TEST_SMTP_HOST` is set, else to the mail harness's in-process SMTP server. With
//! `SPORTELLO_TEST_SCREENSHOTS=DIR` it saves pictures of the pages there.

mod common;
mod mailharness;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::browser::{Axe, Browser, Tools};
use common::{Backend, TestApp};
use fantoccini::{Client, Locator};
use serde_json::json;
use sportello_service::ServiceConfig;
use sportello_service::mail::OutboxOptions;
use sportello_service::mail::sportello_mail::imap::FetchedMessage;
use sportello_service::mail::sportello_mail::parse::{ParseLimits, parse};
use sportello_service::mail::sportello_mail::{MailSink, SmtpSender};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

const CF: &str = "RSSMRA85T10A562S";

/// What every page must be: Italian or English as asked, every form control labelled, no
/// serious accessibility violation, no console error.
async fn check_page(c: &Browser, name: &str, lang: &str) {
    assert_eq!(
        c.js("return document.documentElement.lang;").await,
        lang,
        "{name}: language"
    );
    let unlabelled = c
        .js(
            "return Array.prototype.filter.call(document.querySelectorAll('input, select, textarea'), function (e) {
               return e.type !== 'hidden' && !(e.labels && e.labels.length);
             }).map(function (e) { return e.outerHTML.slice(0, 100); });",
        )
        .await;
    assert_eq!(
        unlabelled,
        json!([]),
        "{name}: form controls without a label"
    );
    c.assert_accessible(name).await;
    c.assert_no_errors(name).await;
    c.screenshot(&format!("console-{name}.png")).await;
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn type_into(c: &Client, css: &str, text: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .send_keys(text)
        .await
        .unwrap_or_else(|e| panic!("type into {css}: {e}"));
}

async fn wait_url(c: &Client, what: &str, part: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let url = c.current_url().await.unwrap();
        if url.as_str().contains(part) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still at {url}, expected {part}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A plain HTTP listener that records the path of every request it receives.
async fn canary() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = head
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("(unreadable)")
                    .to_owned();
                log.lock().unwrap().push(path);
                let _ = sock
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (port, seen)
}

/// Where the replies go: the services' SMTP sink, or an in-process one.
enum Smtp {
    Sink(PathBuf),
    Fake(mailharness::FakeSmtp),
}

impl Smtp {
    fn received(&self) -> Vec<Vec<u8>> {
        match self {
            Smtp::Fake(f) => f.received(),
            Smtp::Sink(dir) => std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "eml"))
                .filter_map(|p| std::fs::read(p).ok())
                .collect(),
        }
    }
}

fn email(from: &str, subject: &str, message_id: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: Sportello Welfare <{}>\r\nSubject: {subject}\r\nMessage-ID: <{message_id}>\r\n\
         Date: Tue, 03 Mar 2026 09:15:02 +0100\r\nMIME-Version: 1.0\r\nContent-Type: {content_type}; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n",
        mailharness::MAILBOX_ADDRESS
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_works_in_chromium() {
    // The mail frames are sandboxed with an opaque origin: axe-core checks the pages around them.
    let Some(tools) = Tools::from_env(Axe::NotInFrames) else {
        return;
    };

    // The server with the e-mail channel, the router and the outbox worker running.
    let (smtp, smtp_port) = match std::env::var("SPORTELLO_TEST_SMTP_HOST") {
        Ok(_) => {
            let port: u16 = std::env::var("SPORTELLO_TEST_SMTP_PORT")
                .expect("SPORTELLO_TEST_SMTP_HOST is set but SPORTELLO_TEST_SMTP_PORT is not")
                .parse()
                .expect("SPORTELLO_TEST_SMTP_PORT is a port");
            let dir = std::env::var("SPORTELLO_TEST_SMTP_DIR")
                .expect("SPORTELLO_TEST_SMTP_HOST is set but SPORTELLO_TEST_SMTP_DIR is not");
            (Smtp::Sink(PathBuf::from(dir)), port)
        }
        Err(_) => {
            let fake = mailharness::FakeSmtp::start().await;
            let port = fake.port;
            (Smtp::Fake(fake), port)
        }
    };
    let mut email_config = mailharness::email_config();
    email_config.smtp = Some(mailharness::smtp_config(smtp_port));
    let config = ServiceConfig {
        email: email_config,
        ..ServiceConfig::default()
    };
    let (url, cleanup) = common::scratch_database(Backend::Sqlite).await;
    let t = TestApp::spawn_with(&url, Some(cleanup), config, true).await;
    let stop = CancellationToken::new();
    {
        let sender = SmtpSender::new(t.app.email_config().smtp.clone().unwrap()).unwrap();
        let app = t.app.clone();
        let token = stop.clone();
        let options = OutboxOptions {
            poll_interval: Duration::from_millis(300),
            initial_backoff: Duration::from_millis(300),
            max_backoff: Duration::from_secs(2),
            ..OutboxOptions::default()
        };
        tokio::spawn(async move { app.run_outbox(sender, options, token).await });
    }
    let (canary_port, canary_log) = canary().await;

    // An operator of the front office who also works the counter, and a citizen who writes.
    let (op_id, op_token) = t.user("lbassi", &["front_office", "counter"]).await;
    let (status, citizen) = t
        .post(
            "/api/v1/citizens",
            &t.admin_token,
            json!({ "name": "Maria Rossi", "codice_fiscale": CF, "emails": ["maria.rossi@example.it"] }),
        )
        .await;
    assert_eq!(status, 201, "{citizen}");
    let citizen_id = citizen["id"].as_str().unwrap().to_owned();
    let question = mailharness::mid("domanda");
    let hostile = mailharness::mid("ostile");
    let evil = format!(
        "<p>Buongiorno, allego il modulo.</p>\
         <script>document.title = 'pwned'; parent.document.title = 'pwned'; new Image().src = 'http://127.0.0.1:{canary_port}/script';</script>\
         <img src=\"x\" onerror=\"document.title='pwned'; parent.document.title='pwned'; fetch('http://127.0.0.1:{canary_port}/onerror')\">\
         <img src=\"http://127.0.0.1:{canary_port}/remote.png\" alt=\"logo\">\
         <svg onload=\"parent.document.title='pwned'\"></svg>\
         <a href=\"javascript:parent.document.title='pwned'\">clicca qui</a>\
         <iframe src=\"http://127.0.0.1:{canary_port}/frame\"></iframe>\
         <link rel=\"stylesheet\" href=\"http://127.0.0.1:{canary_port}/style.css\">\
         <div style=\"background-image: url(http://127.0.0.1:{canary_port}/background.png)\">Saluti</div>"
    );
    let raws = vec![
        email(
            "Maria Rossi <maria.rossi@example.it>",
            "Assegno di inclusione: posso fare domanda?",
            &question,
            "text/plain",
            "Buongiorno, vorrei sapere se posso fare domanda per l'Assegno di inclusione.",
        ),
        email(
            "Maria Rossi <maria.rossi@example.it>",
            "Modulo allegato",
            &hostile,
            "text/html",
            &evil,
        ),
    ];
    t.app
        .mail_sink()
        .store_batch(
            mailharness::MAILBOX,
            7,
            raws.into_iter()
                .enumerate()
                .map(|(i, raw)| FetchedMessage {
                    uid: i as u32 + 1,
                    raw,
                })
                .collect(),
        )
        .await
        .expect("store_batch");
    let ticket_id = t.app.ticket_of_message(&question).await.unwrap().unwrap();
    let hostile_id = t.app.ticket_of_message(&hostile).await.unwrap().unwrap();
    assert_ne!(ticket_id, hostile_id, "two tickets");
    for id in [ticket_id, hostile_id] {
        let (status, v) = t
            .post(
                &format!("/api/v1/tickets/{id}/assign"),
                &t.admin_token,
                json!({ "user_id": op_id }),
            )
            .await;
        assert_eq!(status, 200, "{v}");
    }
    let (_, ticket) = t
        .get(&format!("/api/v1/tickets/{ticket_id}"), &t.admin_token)
        .await;
    let number = ticket["number"].as_str().unwrap().to_owned();
    // A measure, so the reply form offers that measure's prepared answers.
    let (_, tax) = t.get("/api/v1/taxonomy", &op_token).await;
    let measure = tax["measures"][0]["slug"].as_str().unwrap().to_owned();
    let (status, v) = t
        .call(
            reqwest::Method::PUT,
            &format!("/api/v1/tickets/{ticket_id}/classification"),
            Some(&op_token),
            Some(json!({ "measure": measure })),
        )
        .await;
    assert_eq!(status, 200, "{v}");

    // Today's counter appointment (none on a holiday: that part is skipped then).
    let booking_id = match t.book_today(&op_token, &citizen_id).await {
        Some(b) => Some(b["id"].as_str().unwrap().to_owned()),
        None => {
            eprintln!("today is a holiday: no counter session, the check-in step is skipped");
            None
        }
    };

    let result = tools.launch().await.run(async |c| {
        // Signed out: the work list sends to the sign-in form.
        c.goto(&t.url("/")).await.unwrap();
        wait_url(c, "sign-in redirect", "/login").await;
        assert_eq!(c.find(Locator::Css("h1")).await.unwrap().text().await.unwrap(), "Accesso alla console");
        check_page(c, "login", "it").await;
        type_into(c, "#username", "lbassi").await;
        type_into(c, "#password", "lbassi-password").await;
        click(c, "form.login button[type=submit]").await;

        // My work: the assigned ticket is there.
        c.wait_for("the work list", "return location.pathname === '/' && !!document.getElementById('my-work');", Duration::from_secs(10)).await;
        let mine = c.js("return document.getElementById('my-work').textContent;").await;
        assert!(mine.as_str().unwrap().contains(&number), "{mine}");
        check_page(c, "work", "it").await;
        // A ticket assigned meanwhile shows without reloading (the dashboard websocket says
        // something changed; the page fetches its lists again).
        c.wait_for("the live connection", "return document.getElementById('work-live').dataset.live === 'connected';", Duration::from_secs(10)).await;
        let (_, late) = t
            .post("/api/v1/tickets", &t.admin_token, json!({ "channel": "phone", "subject": "Richiesta arrivata dopo", "citizen_id": citizen_id }))
            .await;
        let (status, v) = t
            .post(&format!("/api/v1/tickets/{}/assign", late["id"].as_str().unwrap()), &t.admin_token, json!({ "user_id": op_id }))
            .await;
        assert_eq!(status, 200, "{v}");
        let late_number = late["number"].as_str().unwrap().to_owned();
        c.wait_for("the new ticket in my work without a reload",
            &format!("return document.getElementById('my-work').textContent.indexOf('{late_number}') >= 0;"),
            Duration::from_secs(10)).await;

        // The ticket: reply with a prepared answer.
        click(c, &format!("#my-work tr[data-ticket='{ticket_id}'] a.ticket-link")).await;
        wait_url(c, "the ticket page", &format!("/tickets/{ticket_id}")).await;
        c.wait_for("the timeline", "return document.querySelectorAll('ol.timeline li.entry').length > 0;", Duration::from_secs(10)).await;
        assert!(c.js("return document.querySelector('ol.timeline').textContent;").await.as_str().unwrap().contains("vorrei sapere se posso fare domanda"));
        check_page(c, "ticket", "it").await;
        let offered = c.js("return document.querySelectorAll('#template option[value]:not([value=\"\"])').length;").await;
        assert!(offered.as_u64().unwrap() > 0, "prepared answers are offered");
        c.js("var s = document.getElementById('template'); s.value = s.querySelector('option[value]:not([value=\"\"])').value; s.dispatchEvent(new Event('change')); return true;").await;
        c.wait_for("the prepared answer in the reply", "return document.getElementById('reply-body').value.trim().length > 20;", Duration::from_secs(10)).await;
        let filled = c.js("return document.getElementById('reply-body').value;").await.as_str().unwrap().to_owned();
        // The prepared answer's subject replaces the default `Re: …` one.
        let chosen_subject = c.js("return document.getElementById('reply-subject').value;").await.as_str().unwrap().to_owned();
        assert!(!chosen_subject.is_empty() && !chosen_subject.starts_with("Re: "), "the answer's subject: {chosen_subject:?}");
        type_into(c, "#reply-body", "\nRif. prova-console-42").await;
        click(c, "#reply button[type=submit]").await;
        wait_url(c, "the reply confirmation", "done=reply").await;
        assert!(c.js("return document.querySelector('.notice.ok').textContent;").await.as_str().unwrap().contains("Risposta registrata"));
        let tag = format!("[{number}]");
        let deadline = Instant::now() + Duration::from_secs(20);
        // The citizen also got an acknowledgement in the same thread: the reply is the one with
        // the operator's words.
        let parsed = loop {
            let found = smtp
                .received()
                .into_iter()
                .filter(|raw| {
                    mailharness::header(raw, "In-Reply-To").as_deref() == Some(format!("<{question}>").as_str())
                })
                .filter_map(|raw| parse(&raw, &ParseLimits::default()).ok())
                .find(|m| m.text.contains("prova-console-42"));
            if let Some(m) = found {
                break m;
            }
            assert!(Instant::now() < deadline, "the reply did not reach the SMTP server");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(parsed.subject.contains(&tag), "subject {:?} carries {tag}", parsed.subject);
        assert!(parsed.subject.contains(&chosen_subject), "subject {:?} is the answer's {chosen_subject:?}", parsed.subject);
        let first_line = filled.lines().map(str::trim).find(|l| !l.is_empty()).unwrap();
        assert!(parsed.text.contains(first_line), "the prepared answer is in the e-mail: {first_line:?} in {}", parsed.text);
        assert_eq!(parsed.to.first().map(|p| p.address.as_str()), Some("maria.rossi@example.it"));

        // An internal note.
        type_into(c, "#note-body", "Richiamare dopo le 15.").await;
        click(c, "#note button[type=submit]").await;
        wait_url(c, "the note confirmation", "done=note").await;
        let notes = c.js("return Array.prototype.map.call(document.querySelectorAll('li.kind-note'), function (e) { return e.textContent; }).join('|');").await;
        assert!(notes.as_str().unwrap().contains("Richiamare dopo le 15."), "{notes}");

        // Escalation to the back office: the front office no longer holds it.
        type_into(c, "#escalate-reason", "Serve la verifica dell'ISEE.").await;
        click(c, "#escalate button[type=submit]").await;
        c.wait_for("back at work after escalating", "return location.pathname === '/' && location.search.indexOf('done=escalated') >= 0;", Duration::from_secs(10)).await;
        let (_, v) = t.get(&format!("/api/v1/tickets/{ticket_id}"), &t.admin_token).await;
        assert_eq!(v["tier"], "back_office", "{v}");
        let kinds: Vec<String> = v["timeline"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap().to_owned()).collect();
        assert!(kinds.contains(&"outbound".to_owned()) && kinds.contains(&"note".to_owned()), "{kinds:?}");

        // Finding a citizen by codice fiscale, from the keyboard.
        c.js("document.dispatchEvent(new KeyboardEvent('keydown', { key: '/', bubbles: true })); return true;").await;
        assert_eq!(c.js("return document.activeElement && document.activeElement.id;").await, "quick-q", "'/' focuses the search");
        type_into(c, "#quick-q", &CF.to_lowercase()).await;
        type_into(c, "#quick-q", "\u{E007}").await;
        wait_url(c, "the search results", "/citizens?q=").await;
        c.wait_for("the citizen found", "return !!document.querySelector('#citizen-results a');", Duration::from_secs(10)).await;
        check_page(c, "citizens", "it").await;
        click(c, "#citizen-results a").await;
        wait_url(c, "the citizen page", &format!("/citizens/{citizen_id}")).await;
        assert_eq!(c.find(Locator::Css("h1")).await.unwrap().text().await.unwrap(), "Maria Rossi");
        check_page(c, "citizen", "it").await;

        // The counter desk: check the visitor in.
        c.goto(&t.url("/counter")).await.unwrap();
        check_page(c, "counter", "it").await;
        if let Some(b) = &booking_id {
            click(c, &format!("tr[data-booking='{b}'] form button[type=submit]")).await;
            wait_url(c, "the check-in confirmation", "done=checked_in").await;
            let row = c.js(&format!("return document.querySelector(\"tr[data-booking='{b}']\").textContent;")).await;
            assert!(row.as_str().unwrap().contains("In sala d'attesa"), "{row}");
            let (_, v) = t.get(&format!("/api/v1/counter/bookings/{b}"), &op_token).await;
            assert_eq!(v["state"], "checked_in");
            check_page(c, "counter-checked-in", "it").await;
        }

        // Knowledge.
        c.goto(&t.url("/knowledge")).await.unwrap();
        c.wait_for("answers listed", "return document.querySelectorAll('article.answer').length > 0;", Duration::from_secs(10)).await;
        check_page(c, "knowledge", "it").await;

        // The hostile e-mail: shown, but nothing in it runs or loads.
        c.goto(&t.url(&format!("/tickets/{hostile_id}"))).await.unwrap();
        c.wait_for("the page and its frames loaded", "return document.readyState === 'complete';", Duration::from_secs(10)).await;
        let frame = c.js("var f = document.querySelector('iframe.mail-html'); return f ? { sandbox: f.getAttribute('sandbox'), srcdoc: f.getAttribute('srcdoc'), reachable: (function () { try { return !!f.contentDocument; } catch (e) { return false; } })() } : null;").await;
        assert_eq!(frame["sandbox"], "", "a sandbox that allows nothing: {frame}");
        assert_eq!(frame["reachable"], false, "the frame has an opaque origin: {frame}");
        let srcdoc = frame["srcdoc"].as_str().unwrap().to_lowercase();
        assert!(srcdoc.contains("allego il modulo"), "the message is shown: {srcdoc}");
        for bad in ["<script", "onerror", "onload", "javascript:", &format!("127.0.0.1:{canary_port}")] {
            assert!(!srcdoc.contains(bad), "{bad} is gone from the shown HTML: {srcdoc}");
        }
        // Flush: a request of ours reaches the listener after anything the page sent.
        let _ = reqwest::get(format!("http://127.0.0.1:{canary_port}/sentinel")).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !canary_log.lock().unwrap().iter().any(|p| p == "/sentinel") {
            assert!(Instant::now() < deadline, "the listener is not answering");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let title = c.js("return document.title;").await;
        assert!(!title.as_str().unwrap().contains("pwned"), "no script ran: title {title}");
        assert!(title.as_str().unwrap().contains("Modulo allegato"), "{title}");
        let seen: Vec<String> = canary_log.lock().unwrap().iter().filter(|p| *p != "/sentinel").cloned().collect();
        assert!(seen.is_empty(), "the e-mail made the browser call out: {seen:?}");
        check_page(c, "hostile-ticket", "it").await;

        // English on request, remembered for the session.
        c.goto(&t.url("/?lang=en")).await.unwrap();
        assert_eq!(c.find(Locator::Css("h1")).await.unwrap().text().await.unwrap(), "My work");
        check_page(c, "work-en", "en").await;
        c.goto(&t.url(&format!("/tickets/{hostile_id}"))).await.unwrap();
        assert!(c.js("return document.querySelector('#reply-h').textContent;").await.as_str().unwrap().contains("Reply by e-mail"));
        check_page(c, "ticket-en", "en").await;

        // Signing out from the header.
        click(c, "header form[action='/logout'] button").await;
        wait_url(c, "signed out", "/login?out=1").await;
        c.goto(&t.url("/")).await.unwrap();
        wait_url(c, "signed out for good", "/login").await;
    })
    .await;
    stop.cancel();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
