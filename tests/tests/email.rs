//! The e-mail channel through the service's sink and the REST API, on SQLite and PostgreSQL,
//! with no outside service: raw messages go through the fetchers' `MailSink` exactly as an
//! IMAP fetch delivers them, and outgoing mail goes to an in-process SMTP server.

mod common;
mod mailharness;

use std::time::Duration;

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sportello_domain::event::DomainEvent;
use sportello_service::mail::sportello_mail::SmtpSender;
use sportello_service::mail::sportello_mail::imap::FetchedMessage;
use sportello_service::mail::{IngestOutcome, OutboxOptions};

use mailharness::{
    FakeSmtp, MAILBOX, MailApp, SmtpMode, entries, header, message, mid, smtp_config,
};

on_both_backends_mail!(
    a_citizen_message_opens_a_ticket,
    replies_thread_by_in_reply_to_subject_tag_and_thread_index,
    another_sender_quoting_a_ticket_gets_a_linked_ticket,
    duplicate_message_ids_are_imported_once,
    unparseable_messages_are_quarantined_and_can_be_retried,
    acknowledgements_are_not_sent_to_robots_or_too_often,
    bounces_are_recorded_on_the_ticket_of_the_failed_reply,
    operator_replies_are_queued_with_threading_headers,
    the_outbox_worker_delivers_retries_and_gives_up,
    mailbox_status_is_for_supervisors_and_admins,
    one_instance_fetches_a_mailbox,
    counter_bookings_send_a_confirmation_and_a_reminder,
);

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

async fn a_citizen_message_opens_a_ticket(t: MailApp) {
    let mut events = t.app.bus().subscribe();
    let id = mid("first");
    let raw = format!(
        "From: =?UTF-8?Q?Mario_Rossi_Citt=C3=A0?= <mario.rossi@example.it>\r\n\
         To: {}\r\nSubject: =?ISO-8859-1?Q?Domanda_contributo_B2_=E8_urgente?=\r\n\
         Message-ID: <{id}>\r\nDate: Tue, 03 Mar 2026 09:15:02 +0100\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"XYZ\"\r\n\r\n\
         --XYZ\r\nContent-Type: multipart/alternative; boundary=\"ALT\"\r\n\r\n\
         --ALT\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBuongiorno, la pratica è ferma.\r\n\
         --ALT\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
         <p onclick=\"x()\">Buongiorno, la pratica <b>è</b> ferma.</p><script>alert(1)</script>\r\n\
         --ALT--\r\n\
         --XYZ\r\nContent-Type: application/pdf; name=\"isee.pdf\"\r\n\
         Content-Disposition: attachment; filename=\"isee.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n\
         {}\r\n--XYZ--\r\n",
        mailharness::MAILBOX_ADDRESS,
        b64("%PDF-1.4 finto isee")
    );
    t.deliver(&[raw.into_bytes()]).await;

    let tickets = t.email_tickets().await;
    assert_eq!(tickets.len(), 1);
    let ticket = t.ticket_of(&id).await;
    assert_eq!(ticket["channel"], "email");
    assert_eq!(ticket["status"], "new");
    assert_eq!(ticket["tier"], "front_office");
    assert_eq!(ticket["category"], "eligibility");
    assert_eq!(ticket["subject"], "Domanda contributo B2 è urgente");
    assert_eq!(ticket["citizen"]["name"], "Mario Rossi Città");
    let number = ticket["number"].as_str().unwrap().to_owned();

    let inbound = entries(&ticket, "inbound");
    assert_eq!(inbound.len(), 1);
    let e = inbound[0];
    assert_eq!(
        e["body"].as_str().unwrap().trim(),
        "Buongiorno, la pratica è ferma."
    );
    let html = e["body_html"].as_str().unwrap();
    assert!(html.contains("<b>è</b>"), "{html}");
    assert!(
        !html.contains("script") && !html.contains("onclick"),
        "{html}"
    );
    assert_eq!(e["meta"]["message_id"], id.as_str());
    assert_eq!(e["meta"]["mailbox"], MAILBOX);
    assert_eq!(e["meta"]["from"], "mario.rossi@example.it");
    assert_eq!(e["meta"]["auto_ack"], "queued");
    let att = &e["meta"]["attachments"][0];
    assert_eq!(att["filename"], "isee.pdf");
    assert_eq!(att["content_type"], "application/pdf");
    assert_eq!(att["size"], 19);

    // The citizen is found by address next time, and is searchable with the address.
    let (status, cit) = t
        .get(
            &format!(
                "/api/v1/citizens/{}",
                ticket["citizen_id"].as_str().unwrap()
            ),
            &t.admin_token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cit}");
    assert_eq!(cit["emails"], json!(["mario.rossi@example.it"]));

    // The attachment downloads for the ticket's tier only.
    let (_, fo) = t.user("fo1", &["front_office"]).await;
    let (_, bo) = t.user("bo1", &["back_office"]).await;
    let url = t.url(&format!(
        "/api/v1/attachments/{}",
        att["id"].as_str().unwrap()
    ));
    let res = t.client.get(&url).bearer_auth(&fo).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/pdf");
    let disposition = res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"%PDF-1.4 finto isee");
    let res = t.client.get(&url).bearer_auth(&bo).send().await.unwrap();
    assert_eq!(res.status(), 403);

    // The acknowledgement is queued, threaded, tagged and marked automatic.
    let outbound = entries(&ticket, "outbound");
    assert_eq!(outbound.len(), 1);
    assert_eq!(outbound[0]["meta"]["auto"], true);
    assert!(outbound[0]["body"].as_str().unwrap().contains(&number));
    let rows = t
        .app
        .outbox_rows(ticket["id"].as_str().unwrap().parse().unwrap())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].kind, "auto_ack");
    assert_eq!(rows[0].state, "queued");
    assert_eq!(rows[0].envelope_to, "mario.rossi@example.it");
    let raw = &rows[0].raw;
    assert_eq!(
        header(raw, "Auto-Submitted").as_deref(),
        Some("auto-replied")
    );
    assert_eq!(header(raw, "In-Reply-To"), Some(format!("<{id}>")));
    assert!(header(raw, "Subject").unwrap().len() > 5);
    let subject = String::from_utf8_lossy(raw);
    assert!(subject.contains(&format!("[{number}]")), "tag in subject");

    // The checkpoint moved with the batch.
    let cp = t
        .app
        .mail_sink()
        .checkpoint(MAILBOX)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((cp.uid_validity, cp.last_uid), (7, 1));

    // Events came after the commit: citizen, then ticket.
    let mut kinds = Vec::new();
    while let Ok(ev) = tokio::time::timeout(Duration::from_millis(200), events.recv()).await {
        kinds.push(match &*ev.unwrap() {
            DomainEvent::TicketCreated { channel, .. } => format!("created:{channel}"),
            DomainEvent::CitizenCreated { .. } => "citizen".into(),
            other => format!("{other:?}"),
        });
    }
    assert_eq!(kinds, ["citizen", "created:email"]);
}

async fn replies_thread_by_in_reply_to_subject_tag_and_thread_index(t: MailApp) {
    let citizen = "Anna Bianchi <anna.bianchi@example.it>";
    let first = mid("a1");
    t.deliver(&[message(
        citizen,
        "Richiesta ISEE",
        &first,
        &[],
        "Prima domanda",
    )])
    .await;
    let ticket = t.ticket_of(&first).await;
    let id = ticket["id"].as_str().unwrap().to_owned();
    let number = ticket["number"].as_str().unwrap().to_owned();

    // In-Reply-To, then References only, then the subject tag alone.
    let by_irt = mid("a2");
    let by_refs = mid("a3");
    let by_tag = mid("a4");
    t.deliver(&[
        message(
            citizen,
            "Re: Richiesta ISEE",
            &by_irt,
            &[&format!("In-Reply-To: <{first}>")],
            "Seconda",
        ),
        message(
            citizen,
            "Altro",
            &by_refs,
            &[&format!("References: <unknown@x.it> <{first}>")],
            "Terza",
        ),
        message(
            "anna.bianchi@example.it",
            &format!("R: [{number}] ancora io"),
            &by_tag,
            &[],
            "Quarta",
        ),
    ])
    .await;
    let ticket = t.read_ticket(&id).await;
    let inbound = entries(&ticket, "inbound");
    let reasons: Vec<&Value> = inbound
        .iter()
        .map(|e| &e["meta"]["thread"]["reason"])
        .collect();
    assert_eq!(
        reasons,
        [
            &Value::Null,
            &json!("in_reply_to"),
            &json!("references"),
            &json!("subject_tag")
        ]
    );
    assert_eq!(t.email_tickets().await.len(), 1, "no new tickets");

    // Outlook: a new conversation, then a reply that kept only Thread-Index.
    let root = base64::engine::general_purpose::STANDARD.encode([7u8; 22]);
    let mut child = [7u8; 27];
    child[22..].copy_from_slice(&[1, 2, 3, 4, 5]);
    let child = base64::engine::general_purpose::STANDARD.encode(child);
    let conv = mid("o1");
    let conv_reply = mid("o2");
    t.deliver(&[message(
        citizen,
        "Nuova questione",
        &conv,
        &[&format!("Thread-Index: {root}")],
        "Outlook",
    )])
    .await;
    t.deliver(&[message(
        citizen,
        "R: Nuova questione",
        &conv_reply,
        &[&format!("Thread-Index: {child}")],
        "Outlook risponde",
    )])
    .await;
    let outlook = t.ticket_of(&conv).await;
    assert_ne!(outlook["id"], ticket["id"]);
    let reply = t.ticket_of(&conv_reply).await;
    assert_eq!(reply["id"], outlook["id"]);
    assert_eq!(
        entries(&reply, "inbound")[1]["meta"]["thread"]["reason"],
        "thread_index"
    );

    // Within one batch: a new message and the answer to it.
    let b1 = mid("b1");
    let b2 = mid("b2");
    t.deliver(&[
        message(citizen, "Batch", &b1, &[], "uno"),
        message(
            citizen,
            "Re: Batch",
            &b2,
            &[&format!("In-Reply-To: <{b1}>")],
            "due",
        ),
    ])
    .await;
    assert_eq!(t.ticket_of(&b1).await["id"], t.ticket_of(&b2).await["id"]);

    // An answer to our acknowledgement joins too.
    let ack_id = entries(&ticket, "outbound")[0]["meta"]["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let to_ack = mid("a5");
    t.deliver(&[message(
        citizen,
        "Re: conferma",
        &to_ack,
        &[&format!("In-Reply-To: <{ack_id}>")],
        "Grazie",
    )])
    .await;
    assert_eq!(t.ticket_of(&to_ack).await["id"], ticket["id"]);

    // A ticket waiting for the citizen is reopened by their answer, through the status machine.
    for to in ["open", "waiting_citizen"] {
        let (status, body) = t
            .post(
                &format!("/api/v1/tickets/{id}/transitions"),
                &t.admin_token,
                json!({ "to": to }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let answer = mid("a6");
    t.deliver(&[message(
        citizen,
        "Re: Richiesta ISEE",
        &answer,
        &[&format!("In-Reply-To: <{by_irt}>")],
        "Ecco i documenti",
    )])
    .await;
    let ticket = t.read_ticket(&id).await;
    assert_eq!(ticket["status"], "open");
    let system = entries(&ticket, "system");
    let last = system.last().unwrap();
    assert_eq!(last["meta"]["from"], "waiting_citizen");
    assert_eq!(last["meta"]["to"], "open");
    assert_eq!(last["meta"]["reason"], "citizen_reply");
}

async fn another_sender_quoting_a_ticket_gets_a_linked_ticket(t: MailApp) {
    let first = mid("c1");
    t.deliver(&[message(
        "Carla Verdi <carla.verdi@example.it>",
        "Contributo affitto",
        &first,
        &[],
        "Domanda di Carla",
    )])
    .await;
    let carla = t.ticket_of(&first).await;
    let number = carla["number"].as_str().unwrap().to_owned();

    // Someone else answers Carla's thread and quotes her ticket number.
    let other = mid("x1");
    t.deliver(&[message(
        "Estraneo <estraneo@example.org>",
        &format!("Re: [{number}] Contributo affitto"),
        &other,
        &[&format!("In-Reply-To: <{first}>")],
        "Scrivo per la pratica di un'altra persona",
    )])
    .await;
    let linked = t.ticket_of(&other).await;
    assert_ne!(
        linked["id"], carla["id"],
        "never appended to another citizen's case"
    );
    assert_ne!(linked["citizen_id"], carla["citizen_id"]);
    assert_eq!(linked["tags"], json!(["linked"]));
    let meta = &entries(&linked, "inbound")[0]["meta"]["linked"];
    assert_eq!(meta["ticket_id"], carla["id"]);
    assert_eq!(meta["number"], number.as_str());
    assert_eq!(meta["reason"], "in_reply_to");
    assert_eq!(meta["flagged"], true);

    // Carla's ticket only learns that a linked ticket exists, not who wrote.
    let carla = t.read_ticket(carla["id"].as_str().unwrap()).await;
    assert_eq!(entries(&carla, "inbound").len(), 1);
    let note = entries(&carla, "system");
    assert_eq!(note.len(), 1);
    assert_eq!(note[0]["meta"]["linked_ticket"]["ticket_id"], linked["id"]);
    assert!(!note[0]["body"].as_str().unwrap().contains("estraneo"));

    // Once the address is a contact of Carla, the same kind of message joins.
    let cid = carla["citizen_id"].as_str().unwrap();
    let by_cf = mid("c2");
    t.deliver(&[message(
        "carla.verdi@example.it",
        &format!("[{number}] seguito"),
        &by_cf,
        &[],
        "seguito",
    )])
    .await;
    assert_eq!(t.ticket_of(&by_cf).await["citizen_id"], cid);
    assert_eq!(t.ticket_of(&by_cf).await["id"], carla["id"]);
}

async fn duplicate_message_ids_are_imported_once(t: MailApp) {
    let id = mid("dup");
    let raw = message(
        "Dario <dario@example.it>",
        "Doppio",
        &id,
        &[],
        "una volta sola",
    );
    let sink = t.app.mail_sink();
    // Twice in one batch, then again later under a new UIDVALIDITY (the server renumbered).
    let report = sink
        .store(
            MAILBOX,
            7,
            vec![
                FetchedMessage {
                    uid: 1,
                    raw: raw.clone(),
                },
                FetchedMessage {
                    uid: 2,
                    raw: raw.clone(),
                },
            ],
        )
        .await
        .unwrap();
    assert_eq!((report.created(), report.duplicates()), (1, 1));
    let report = sink
        .store(MAILBOX, 8, vec![FetchedMessage { uid: 1, raw }])
        .await
        .unwrap();
    assert_eq!(
        report.outcomes,
        [IngestOutcome::Duplicate {
            message_id: id.clone()
        }]
    );
    assert_eq!(t.email_tickets().await.len(), 1);
    let ticket = t.ticket_of(&id).await;
    assert_eq!(entries(&ticket, "inbound").len(), 1);
    let cp = sink.checkpoint(MAILBOX).await.unwrap().unwrap();
    assert_eq!((cp.uid_validity, cp.last_uid), (8, 1));
}

async fn unparseable_messages_are_quarantined_and_can_be_retried(t: MailApp) {
    let good = mid("ok");
    let garbage = b"\x00\x01\x02 questo non e' un messaggio\r\nsenza intestazioni".to_vec();
    t.deliver(&[
        garbage.clone(),
        message("Elena <elena@example.it>", "Buono", &good, &[], "ok"),
    ])
    .await;
    // The rest of the batch went in and the checkpoint moved past both.
    t.ticket_of(&good).await;
    let cp = t
        .app
        .mail_sink()
        .checkpoint(MAILBOX)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cp.last_uid, 2);

    let (status, page) = t.get("/api/v1/mail/quarantine", &t.admin_token).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    let q = &items[0];
    assert_eq!(q["mailbox"], MAILBOX);
    assert_eq!(q["uid"], 1);
    assert_eq!(q["state"], "held");
    assert_eq!(q["size"], garbage.len());
    assert!(
        q["reason"].as_str().unwrap().contains("none of From"),
        "{q}"
    );
    let qid = q["id"].as_str().unwrap().to_owned();

    // Only admins see it.
    let (_, sup) = t.user("sup", &["supervisor"]).await;
    let (status, _) = t.get("/api/v1/mail/quarantine", &sup).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The raw bytes are kept exactly.
    let res = t
        .client
        .get(t.url(&format!("/api/v1/mail/quarantine/{qid}/raw")))
        .bearer_auth(&t.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), garbage.as_slice());

    // Retrying what still cannot be parsed is a clear 409; nothing breaks, the attempt counts.
    let (status, body) = t
        .post(
            &format!("/api/v1/mail/quarantine/{qid}/retry"),
            &t.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("still cannot be imported")
    );
    let (_, page) = t.get("/api/v1/mail/quarantine", &t.admin_token).await;
    assert_eq!(page["items"][0]["attempts"], 1);
    assert_eq!(page["items"][0]["state"], "held");

    // The same bytes fetched again are not held twice.
    t.deliver(&[garbage]).await;
    let (_, page) = t
        .get("/api/v1/mail/quarantine?state=all", &t.admin_token)
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);

    // A message that the parser can read now (as after a parser fix) is imported by a retry.
    let fixed = mid("fixed");
    let qid2 = hold(
        &t,
        message(
            "Fabio <fabio@example.it>",
            "Recuperato",
            &fixed,
            &[],
            "eccomi",
        ),
    )
    .await;
    let (status, body) = t
        .post(
            &format!("/api/v1/mail/quarantine/{qid2}/retry"),
            &t.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outcome"], "ticket_created");
    assert_eq!(body["quarantine"]["state"], "imported");
    let ticket = t.ticket_of(&fixed).await;
    assert_eq!(body["ticket_id"], ticket["id"]);
    let (status, _) = t
        .post(
            &format!("/api/v1/mail/quarantine/{qid2}/retry"),
            &t.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, page) = t.get("/api/v1/mail/quarantine", &t.admin_token).await;
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        1,
        "only the garbage is held"
    );
}

/// Puts raw bytes straight into the quarantine, as a message the parser refused.
async fn hold(t: &MailApp, raw: Vec<u8>) -> String {
    use sportello_store::entities::mail_quarantine;
    use sportello_store::sea_orm::{ActiveValue::Set, EntityTrait};
    let id = uuid::Uuid::now_v7();
    let at = chrono::Utc::now();
    mail_quarantine::Entity::insert(mail_quarantine::ActiveModel {
        id: Set(id),
        mailbox: Set(MAILBOX.into()),
        uid_validity: Set(Some(7)),
        uid: Set(Some(999)),
        reason: Set("the message has no header section".into()),
        digest: Set(format!("{id}")),
        size: Set(raw.len() as i64),
        raw: Set(raw),
        state: Set("held".into()),
        attempts: Set(0),
        last_error: Set(None),
        ticket_id: Set(None),
        created_at: Set(at),
        updated_at: Set(at),
    })
    .exec_without_returning(&t.app.db().write)
    .await
    .unwrap();
    id.to_string()
}

async fn acknowledgements_are_not_sent_to_robots_or_too_often(t: MailApp) {
    let robot = mid("r1");
    let bulk = mid("r2");
    let own = mid("r3");
    t.deliver(&[
        message(
            "Ufficio <ufficio@example.it>",
            "Fuori sede",
            &robot,
            &["Auto-Submitted: auto-replied"],
            "Sono fuori sede",
        ),
        message(
            "News <news@example.it>",
            "Newsletter",
            &bulk,
            &["Precedence: bulk"],
            "news",
        ),
        message(
            &format!("Sportello <{}>", mailharness::MAILBOX_ADDRESS),
            "Da noi",
            &own,
            &[],
            "inoltro interno",
        ),
    ])
    .await;
    for (id, why) in [
        (&robot, "Auto-Submitted"),
        (&bulk, "Precedence: bulk"),
        (&own, "own addresses"),
    ] {
        let ticket = t.ticket_of(id).await;
        let ack = entries(&ticket, "inbound")[0]["meta"]["auto_ack"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(ack.starts_with("suppressed") && ack.contains(why), "{ack}");
        assert!(entries(&ticket, "outbound").is_empty());
        let rows = t
            .app
            .outbox_rows(ticket["id"].as_str().unwrap().parse().unwrap())
            .await
            .unwrap();
        assert!(rows.is_empty());
    }

    // Four new matters from one person in a day: three acknowledgements (the default cap).
    let ids: Vec<String> = (0..4).map(|i| mid(&format!("cap{i}"))).collect();
    for (i, id) in ids.iter().enumerate() {
        t.deliver(&[message(
            "Gino <gino@example.it>",
            &format!("Questione {i}"),
            id,
            &[],
            "testo",
        )])
        .await;
    }
    let mut states = Vec::new();
    for id in &ids {
        let ticket = t.ticket_of(id).await;
        states.push(
            entries(&ticket, "inbound")[0]["meta"]["auto_ack"]
                .as_str()
                .unwrap()
                .split(':')
                .next()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(states, ["queued", "queued", "queued", "capped"]);
}

/// A delivery-status report about `original`, sent to `rcpt`.
fn dsn(original: &str, rcpt: &str) -> Vec<u8> {
    format!(
        "Return-Path: <>\r\nFrom: MAILER-DAEMON@mx.comune.example.it (Mail Delivery System)\r\n\
         To: {}\r\nSubject: Undelivered Mail Returned to Sender\r\nAuto-Submitted: auto-replied\r\n\
         Message-ID: <{}>\r\nDate: Fri, 13 Mar 2026 15:00:05 +0100\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nYour message could not be delivered.\r\n\
         --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.comune.example.it\r\n\r\n\
         Final-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: 5.1.1\r\n\
         Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n\
         --B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: {}\r\nTo: {rcpt}\r\nSubject: Re: x\r\n\
         Message-ID: <{original}>\r\n\r\n--B--\r\n",
        mailharness::MAILBOX_ADDRESS,
        mid("dsn"),
        mailharness::MAILBOX_ADDRESS,
    )
    .into_bytes()
}

async fn bounces_are_recorded_on_the_ticket_of_the_failed_reply(t: MailApp) {
    let a = mid("ba");
    let b = mid("bb");
    t.deliver(&[
        message("Ugo <ugo@example.it>", "Prima", &a, &[], "a"),
        message("Vera <vera@example.it>", "Seconda", &b, &[], "b"),
    ])
    .await;
    let ugo = t.ticket_of(&a).await;
    let vera = t.ticket_of(&b).await;
    let ugo_id = ugo["id"].as_str().unwrap().to_owned();
    let (status, reply) = t
        .post(
            &format!("/api/v1/tickets/{ugo_id}/replies"),
            &t.admin_token,
            json!({ "body": "Le rispondiamo." }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    let sent_id = reply["delivery"]["message_id"].as_str().unwrap().to_owned();
    let tickets_before = t.email_tickets().await.len();

    t.deliver(&[dsn(&sent_id, "ugo@example.it")]).await;
    assert_eq!(
        t.email_tickets().await.len(),
        tickets_before,
        "a bounce opens no ticket"
    );
    let ugo = t.read_ticket(&ugo_id).await;
    let system = entries(&ugo, "system");
    assert_eq!(system.len(), 1);
    assert!(
        system[0]["body"]
            .as_str()
            .unwrap()
            .contains("non è stato consegnato")
    );
    assert_eq!(
        system[0]["meta"]["bounce"]["original_message_id"],
        sent_id.as_str()
    );
    assert_eq!(system[0]["meta"]["bounce"]["status"], "5.1.1");
    let reply_entry = entries(&ugo, "outbound")
        .into_iter()
        .find(|e| e["meta"]["message_id"] == sent_id.as_str())
        .unwrap();
    assert_eq!(reply_entry["meta"]["delivery"], "bounced");
    let rows = t.app.outbox_rows(ugo_id.parse().unwrap()).await.unwrap();
    let row = rows.iter().find(|r| r.message_id == sent_id).unwrap();
    assert_eq!(row.state, "bounced");
    // Nothing on the other ticket, and no acknowledgement to the mailer daemon.
    let vera = t.read_ticket(vera["id"].as_str().unwrap()).await;
    assert!(entries(&vera, "system").is_empty());
    assert_eq!(rows.iter().filter(|r| r.kind == "auto_ack").count(), 1);

    // A report about a message we never sent is held for an admin, not turned into a ticket.
    t.deliver(&[dsn("someone-else@elsewhere.it", "x@example.it")])
        .await;
    assert_eq!(t.email_tickets().await.len(), tickets_before);
    let (_, page) = t.get("/api/v1/mail/quarantine", &t.admin_token).await;
    assert!(
        page["items"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("did not send")
    );
}

async fn operator_replies_are_queued_with_threading_headers(t: MailApp) {
    let first = mid("r1");
    let root = mid("r0");
    t.deliver(&[message(
        "Lucia Neri <lucia.neri@example.it>",
        "R: Domanda B2",
        &first,
        &[&format!("References: <{root}>")],
        "Vorrei sapere lo stato",
    )])
    .await;
    let ticket = t.ticket_of(&first).await;
    let id = ticket["id"].as_str().unwrap().to_owned();
    let number = ticket["number"].as_str().unwrap().to_owned();
    let (_, op) = t.user("op1", &["front_office"]).await;

    let (status, body) = t
        .post(
            &format!("/api/v1/tickets/{id}/replies"),
            &op,
            json!({
                "body": "la sua domanda è in istruttoria.",
                "attachments": [{ "filename": "modulo è.pdf", "content_type": "application/pdf", "content_base64": b64("PDF!") }]
            }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["delivery"]["state"], "queued");
    assert_eq!(body["delivery"]["to"], "lucia.neri@example.it");
    assert_eq!(body["entry"]["kind"], "outbound");
    assert_eq!(body["entry"]["author_name"], "Operatore op1");
    assert_eq!(body["entry"]["meta"]["delivery"], "queued");
    let message_id = body["delivery"]["message_id"].as_str().unwrap().to_owned();

    let rows = t.app.outbox_rows(id.parse().unwrap()).await.unwrap();
    let row = rows.iter().find(|r| r.kind == "reply").unwrap();
    assert_eq!(row.state, "queued");
    assert_eq!(row.envelope_from, mailharness::MAILBOX_ADDRESS);
    assert_eq!(row.envelope_to, "lucia.neri@example.it");
    let raw = &row.raw;
    assert_eq!(header(raw, "Message-ID"), Some(format!("<{message_id}>")));
    assert_eq!(header(raw, "In-Reply-To"), Some(format!("<{first}>")));
    assert_eq!(
        header(raw, "References"),
        Some(format!("<{root}> <{first}>"))
    );
    assert_eq!(
        header(raw, "Subject"),
        Some(format!("Re: [{number}] Domanda B2"))
    );
    assert!(
        header(raw, "From")
            .unwrap()
            .contains(mailharness::MAILBOX_ADDRESS)
    );
    assert!(header(raw, "Auto-Submitted").is_none());
    let text = String::from_utf8_lossy(raw);
    assert!(
        text.contains("multipart/mixed"),
        "the attachment makes it multipart"
    );
    assert!(text.contains("Gentile Lucia Neri"), "greeting");
    assert!(text.contains("Operatore op1"), "operator's name");

    // The ticket counts as answered, and the sent file is on the ticket.
    let ticket = t.read_ticket(&id).await;
    assert!(ticket["first_response_at"].is_string());
    let (_, page) = t
        .get(
            &format!("/api/v1/audit?entity_type=ticket&entity_id={id}"),
            &t.admin_token,
        )
        .await;
    assert!(page.to_string().contains("ticket.replied"), "{page}");

    // The citizen's answer to the reply joins the ticket.
    let answer = mid("r2");
    t.deliver(&[message(
        "lucia.neri@example.it",
        "Re: la sua risposta",
        &answer,
        &[&format!("In-Reply-To: <{message_id}>")],
        "Grazie",
    )])
    .await;
    assert_eq!(t.ticket_of(&answer).await["id"], id.as_str());

    // The operator's own subject goes out as written, with the ticket tag in front; the
    // threading headers still answer the citizen's last message.
    let smtp = FakeSmtp::start().await;
    let sender = SmtpSender::new(smtp_config(smtp.port)).unwrap();
    let (status, body) = t
        .post(
            &format!("/api/v1/tickets/{id}/replies"),
            &op,
            json!({ "body": "la domanda è stata accolta.", "subject": "  Esito della domanda B2 " }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let tagged = format!("[{number}] Esito della domanda B2");
    assert_eq!(body["delivery"]["subject"], tagged.as_str());
    assert_eq!(body["entry"]["meta"]["subject"], tagged.as_str());
    let custom_id = body["delivery"]["message_id"].as_str().unwrap().to_owned();
    t.app.deliver_due(&sender, &quick()).await.unwrap();
    let sent = smtp
        .received()
        .into_iter()
        .find(|raw| header(raw, "Message-ID") == Some(format!("<{custom_id}>")))
        .expect("the reply with its own subject was sent");
    assert_eq!(header(&sent, "Subject"), Some(tagged.clone()));
    assert_eq!(header(&sent, "In-Reply-To"), Some(format!("<{answer}>")));
    assert!(
        header(&sent, "References")
            .unwrap()
            .ends_with(&format!("<{answer}>"))
    );
    // The citizen's answer comes back by the tag alone.
    let by_tag = mid("r3");
    t.deliver(&[message(
        "lucia.neri@example.it",
        &format!("Re: {tagged}"),
        &by_tag,
        &[],
        "Grazie mille",
    )])
    .await;
    assert_eq!(t.ticket_of(&by_tag).await["id"], id.as_str());

    // A subject that would add header lines, or is too long, is refused and nothing is queued.
    let queued = t.app.outbox_rows(id.parse().unwrap()).await.unwrap().len();
    for subject in [
        "Esito\r\nBcc: altri@example.it".to_owned(),
        "Esito\nBcc: altri@example.it".to_owned(),
        "x".repeat(201),
    ] {
        let (status, body) = t
            .post(
                &format!("/api/v1/tickets/{id}/replies"),
                &op,
                json!({ "body": "testo", "subject": subject }),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["errors"][0]["field"], "subject", "{body}");
        assert_eq!(body["errors"].as_array().unwrap().len(), 1, "{body}");
    }
    assert_eq!(
        t.app.outbox_rows(id.parse().unwrap()).await.unwrap().len(),
        queued
    );

    // Bad input is named field by field.
    let (status, body) = t
        .post(
            &format!("/api/v1/tickets/{id}/replies"),
            &op,
            json!({ "body": " ", "template": "fr", "attachments": [{ "filename": "a.pdf", "content_type": "application/pdf", "content_base64": "***" }] }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["body", "template", "attachments[0].content_base64"]
    );

    // A ticket with no e-mail address to write to.
    let (status, phone) = t
        .post(
            "/api/v1/tickets",
            &op,
            json!({ "channel": "phone", "subject": "Telefonata" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{phone}");
    let (status, body) = t
        .post(
            &format!("/api/v1/tickets/{}/replies", phone["id"].as_str().unwrap()),
            &op,
            json!({ "body": "ciao" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("no e-mail address")
    );
    // Another tier's ticket is out of reach.
    let (_, bo) = t.user("bo2", &["back_office"]).await;
    let (status, _) = t
        .post(
            &format!("/api/v1/tickets/{id}/replies"),
            &bo,
            json!({ "body": "x" }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

fn quick() -> OutboxOptions {
    OutboxOptions {
        initial_backoff: Duration::from_secs(60),
        max_attempts: 3,
        ..OutboxOptions::default()
    }
}

async fn the_outbox_worker_delivers_retries_and_gives_up(t: MailApp) {
    let smtp = FakeSmtp::start().await;
    let sender = SmtpSender::new(smtp_config(smtp.port)).unwrap();
    let id = mid("w1");
    t.deliver(&[message(
        "Walter <walter@example.it>",
        "Invio",
        &id,
        &[],
        "testo",
    )])
    .await;
    let ticket_id: uuid::Uuid = t.ticket_of(&id).await["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // The relay is up: the acknowledgement goes out and the timeline says so.
    let pass = t.app.deliver_due(&sender, &quick()).await.unwrap();
    assert_eq!(pass.sent, 1);
    let got = smtp.received();
    assert_eq!(got.len(), 1);
    assert_eq!(header(&got[0], "In-Reply-To"), Some(format!("<{id}>")));
    let ticket = t.read_ticket(&ticket_id.to_string()).await;
    let ack = entries(&ticket, "outbound")[0];
    assert_eq!(ack["meta"]["delivery"], "sent");
    assert!(ack["meta"]["sent_at"].is_string());
    assert!(
        t.app.outbox_rows(ticket_id).await.unwrap()[0]
            .sent_at
            .is_some()
    );

    // 4xx: kept, retried later with backoff.
    smtp.set(SmtpMode::RejectData(
        "451 4.3.0 Riprovare piu' tardi".into(),
    ));
    let (status, body) = t
        .post(
            &format!("/api/v1/tickets/{ticket_id}/replies"),
            &t.admin_token,
            json!({ "body": "Prima risposta" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let pass = t.app.deliver_due(&sender, &quick()).await.unwrap();
    assert_eq!(pass.retrying, 1);
    let rows = t.app.outbox_rows(ticket_id).await.unwrap();
    let row = rows.iter().find(|r| r.kind == "reply").unwrap();
    assert_eq!((row.state.as_str(), row.attempts), ("queued", 1));
    assert!(row.next_attempt_at > chrono::Utc::now() + chrono::Duration::seconds(30));
    assert!(row.last_error.as_deref().unwrap().contains("451"));
    // Not due yet: a pass does nothing.
    assert_eq!(
        t.app.deliver_due(&sender, &quick()).await.unwrap().retrying,
        0
    );
    let ticket = t.read_ticket(&ticket_id.to_string()).await;
    let reply = entries(&ticket, "outbound")
        .into_iter()
        .find(|e| e["body"] == "Prima risposta")
        .unwrap();
    assert_eq!(reply["meta"]["delivery"], "retrying");

    // 5xx: given up, and the operator sees why on the timeline.
    smtp.set(SmtpMode::RejectData("550 5.1.1 Casella inesistente".into()));
    let (status, _) = t
        .post(
            &format!("/api/v1/tickets/{ticket_id}/replies"),
            &t.admin_token,
            json!({ "body": "Seconda risposta" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let pass = t.app.deliver_due(&sender, &quick()).await.unwrap();
    assert_eq!(pass.failed, 1);
    let ticket = t.read_ticket(&ticket_id.to_string()).await;
    let failed = entries(&ticket, "system");
    let last = failed.last().unwrap();
    assert!(
        last["body"].as_str().unwrap().contains("non consegnato"),
        "{last}"
    );
    assert_eq!(last["meta"]["delivery_failed"]["permanent"], true);
    let second = entries(&ticket, "outbound")
        .into_iter()
        .find(|e| e["body"] == "Seconda risposta")
        .unwrap();
    assert_eq!(second["meta"]["delivery"], "failed");

    // A relay that is down is a transient failure too.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let down = SmtpSender::new(smtp_config(closed)).unwrap();
    let (status, _) = t
        .post(
            &format!("/api/v1/tickets/{ticket_id}/replies"),
            &t.admin_token,
            json!({ "body": "Terza risposta" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let pass = t.app.deliver_due(&down, &quick()).await.unwrap();
    assert_eq!(pass.retrying, 1);
    assert_eq!(smtp.received().len(), 1, "nothing else was accepted");
}

async fn mailbox_status_is_for_supervisors_and_admins(t: MailApp) {
    t.deliver(&[
        message("Zoe <zoe@example.it>", "Stato", &mid("s1"), &[], "x"),
        b"garbage without headers".to_vec(),
    ])
    .await;
    let (status, body) = t.get("/api/v1/mail/mailboxes", &t.admin_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let m = &body["mailboxes"][0];
    assert_eq!(m["name"], MAILBOX);
    assert_eq!(m["address"], mailharness::MAILBOX_ADDRESS);
    assert_eq!(m["fetcher"], "not_started");
    assert_eq!(m["connected"], false);
    assert_eq!(m["messages_received"], 1);
    assert_eq!(m["messages_sent"], 1, "the acknowledgement");
    assert_eq!(m["quarantined"], 1);
    assert_eq!(m["uid_validity"], 7);
    assert_eq!(m["last_uid"], 2);
    assert_eq!(body["outbox"]["queued"], 1);
    assert_eq!(body["smtp_configured"], false);
    let (_, sup) = t.user("sup2", &["supervisor"]).await;
    assert_eq!(
        t.get("/api/v1/mail/mailboxes", &sup).await.0,
        StatusCode::OK
    );
    let (_, fo) = t.user("fo2", &["front_office"]).await;
    assert_eq!(
        t.get("/api/v1/mail/mailboxes", &fo).await.0,
        StatusCode::FORBIDDEN
    );

    // The OpenAPI document describes the channel's endpoints.
    let (_, doc) = t.get("/api/v1/openapi.json", &t.admin_token).await;
    for path in [
        "/api/v1/tickets/{id}/replies",
        "/api/v1/attachments/{id}",
        "/api/v1/mail/mailboxes",
        "/api/v1/mail/quarantine",
        "/api/v1/mail/quarantine/{id}/retry",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
}

async fn one_instance_fetches_a_mailbox(t: MailApp) {
    // Both instances run their fetchers (against an IMAP port that refuses, which is fine:
    // the lock is about who may fetch, not whether the server answers).
    let second = MailApp::spawn_on(&t.database_url, None, mailharness::email_config()).await;
    let stop_a = tokio_util::sync::CancellationToken::new();
    let stop_b = tokio_util::sync::CancellationToken::new();
    let a = t.app.start_mail(stop_a.clone()).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let b = second.app.start_mail(stop_b.clone()).unwrap();
    let fetchers = |v: &Value| v["mailboxes"][0]["fetcher"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (fa, fb) = loop {
        let (_, sa) = t.get("/api/v1/mail/mailboxes", &t.admin_token).await;
        let (_, sb) = second
            .get("/api/v1/mail/mailboxes", &second.admin_token)
            .await;
        let (fa, fb) = (fetchers(&sa), fetchers(&sb));
        if (fa != "starting" && fb != "starting") || std::time::Instant::now() > deadline {
            break (fa, fb);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if t.app.db().backend() == sportello_store::sea_orm::DatabaseBackend::Postgres {
        assert_eq!((fa.as_str(), fb.as_str()), ("running", "standby"));
        // When the holder stops, the other takes over.
        stop_a.cancel();
        a.join().await;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (_, sb) = second
                .get("/api/v1/mail/mailboxes", &second.admin_token)
                .await;
            if fetchers(&sb) == "running" {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "standby never took over"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    } else {
        // One process per SQLite file: no lock to take.
        assert_eq!((fa.as_str(), fb.as_str()), ("running", "running"));
        stop_a.cancel();
        a.join().await;
    }
    stop_b.cancel();
    b.join().await;
}

async fn counter_bookings_send_a_confirmation_and_a_reminder(t: MailApp) {
    use chrono::{Datelike, Duration as Days, Utc};
    let cal = sportello_domain::calendar::BusinessCalendar::default();
    let mut day = cal.local_date(Utc::now()) + Days::days(7);
    while day.weekday().number_from_monday() > 5 || cal.is_holiday(day).is_some() {
        day += Days::days(1);
    }
    let (status, body) = t
        .post(
            "/api/v1/counter/sessions",
            &t.admin_token,
            json!({"date": day.to_string(), "start": "09:00", "end": "10:00", "desks": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, slots) = t
        .get(&format!("/api/v1/counter/slots?date={day}"), &t.admin_token)
        .await;
    let slot = slots["items"][0]["id"].as_str().unwrap().to_owned();
    let (_, op) = t.user("sportellista", &["counter", "front_office"]).await;
    let (_, citizen) = t
        .post(
            "/api/v1/citizens",
            &op,
            json!({"name": "Carla Fumagalli", "emails": ["carla.f@example.it"]}),
        )
        .await;
    let (status, booking) = t
        .post(
            "/api/v1/counter/bookings",
            &op,
            json!({"slot_id": slot, "citizen_id": citizen["id"], "measure": "b2"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{booking}");
    let ticket_id: uuid::Uuid = booking["ticket_id"].as_str().unwrap().parse().unwrap();

    // The confirmation is queued at once, to the citizen, on the booking's ticket.
    let rows = t.app.outbox_rows(ticket_id).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].envelope_to, "carla.f@example.it");
    let parsed =
        sportello_service::mail::sportello_mail::parse::parse(&rows[0].raw, &Default::default())
            .unwrap();
    let local_day = day.format("%d/%m/%Y").to_string();
    assert!(
        parsed.text.contains("le confermiamo l'appuntamento"),
        "{}",
        parsed.text
    );
    assert!(
        parsed.text.contains(&local_day) && parsed.text.contains("09:00"),
        "{}",
        parsed.text
    );
    assert!(
        parsed
            .subject
            .contains(booking["ticket_number"].as_str().unwrap_or("SP-")),
        "{}",
        parsed.subject
    );
    let (_, b) = t
        .get(
            &format!(
                "/api/v1/counter/bookings/{}",
                booking["id"].as_str().unwrap()
            ),
            &op,
        )
        .await;
    assert_eq!(b["notification"]["confirmation"]["state"], "queued", "{b}");
    assert_eq!(b["notification"]["reminder"]["state"], "pending_outbox");

    // The reminder goes out once its time has come, and only once.
    assert_eq!(t.app.send_counter_reminders(Utc::now()).await.unwrap(), 0);
    let later = Utc::now() + Days::days(30);
    assert_eq!(t.app.send_counter_reminders(later).await.unwrap(), 1);
    assert_eq!(t.app.send_counter_reminders(later).await.unwrap(), 0);
    assert_eq!(t.app.outbox_rows(ticket_id).await.unwrap().len(), 2);

    // Both reach the SMTP server, addressed to the citizen.
    let smtp = FakeSmtp::start().await;
    let sender = SmtpSender::new(smtp_config(smtp.port)).unwrap();
    assert_eq!(t.app.deliver_due(&sender, &quick()).await.unwrap().sent, 2);
    let got = smtp.received();
    assert_eq!(got.len(), 2);
    let reminder =
        sportello_service::mail::sportello_mail::parse::parse(&got[1], &Default::default())
            .unwrap();
    assert_eq!(reminder.to[0].address.as_str(), "carla.f@example.it");
    assert!(
        reminder
            .text
            .contains("le ricordiamo l'appuntamento di domani"),
        "{}",
        reminder.text
    );
}
