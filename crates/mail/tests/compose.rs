//! Outgoing messages: headers, tag, threading and templates, checked by parsing what we send.

use sportello_domain::{EmailAddress, TicketNumber};
use sportello_mail::compose::{
    AutoAckDraft, Language, OutboundAttachment, ReplyDraft, Signature, compose_auto_ack,
    compose_reply,
};
use sportello_mail::loops::auto_reply_check;
use sportello_mail::parse::{self, ParseLimits, Party};
use sportello_mail::thread::subject_ticket_numbers;

fn party(address: &str, name: Option<&str>) -> Party {
    Party {
        address: EmailAddress::parse(address).expect("valid"),
        name: name.map(str::to_owned),
    }
}

fn draft() -> ReplyDraft {
    ReplyDraft {
        from: party(
            "welfare@comune.example.it",
            Some("Sportello Welfare – Città di Milano"),
        ),
        to: party("maria.esposito@example.it", Some("Maria Esposito")),
        ticket: TicketNumber::parse("SP-2026-000123").expect("valid"),
        subject: "R: Re: [SP-2026-000123] Richiesta contributo".into(),
        custom_subject: None,
        in_reply_to: Some("AM0PR01MB1234567@outlook.example.com".into()),
        references: vec![
            "first-citizen-msg@example.it".into(),
            "0190a1b2c3d4e5f6@comune.example.it".into(),
        ],
        greeting_name: Some("Maria Esposito".into()),
        body: "la sua domanda è stata accolta.\r\nIl contributo sarà versato entro trenta giorni."
            .into(),
        signature: Signature {
            operator_name: "Giulia Conti".into(),
            office: "Sportello Welfare – Municipio 9".into(),
            contact_lines: vec![
                "Tel. 02 0202 (lun–ven 9–16)".into(),
                "https://www.comune.example.it/welfare".into(),
            ],
        },
        language: Language::It,
        attachments: vec![],
        message_id_domain: None,
    }
}

fn header<'a>(raw: &'a str, name: &str) -> Vec<&'a str> {
    raw.split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .lines()
        .filter(|l| {
            l.len() > name.len()
                && l[..name.len()].eq_ignore_ascii_case(name)
                && l.as_bytes()[name.len()] == b':'
        })
        .collect()
}

#[test]
fn an_operator_reply_threads_back_and_reads_right() {
    let composed = compose_reply(&draft()).expect("composes");
    let raw = String::from_utf8(composed.raw.clone()).expect("7-bit/utf-8 output");
    assert!(
        composed.message_id.ends_with("@comune.example.it"),
        "{}",
        composed.message_id
    );
    assert_eq!(
        header(&raw, "Message-ID"),
        [format!("Message-ID: <{}>", composed.message_id)]
    );
    assert_eq!(header(&raw, "Auto-Submitted"), Vec::<&str>::new());

    let back = parse::parse(&composed.raw, &ParseLimits::default()).expect("our own output parses");
    assert_eq!(back.message_id, composed.message_id);
    assert_eq!(back.subject, "Re: [SP-2026-000123] Richiesta contributo");
    assert_eq!(
        subject_ticket_numbers(&back.subject).len(),
        1,
        "tag exactly once"
    );
    assert_eq!(
        back.in_reply_to.as_deref(),
        Some("AM0PR01MB1234567@outlook.example.com")
    );
    assert_eq!(
        back.references,
        [
            "first-citizen-msg@example.it",
            "0190a1b2c3d4e5f6@comune.example.it",
            "AM0PR01MB1234567@outlook.example.com"
        ]
    );
    let from = back.from.as_ref().expect("from");
    assert_eq!(from.address.as_str(), "welfare@comune.example.it");
    assert_eq!(
        from.name.as_deref(),
        Some("Sportello Welfare – Città di Milano")
    );
    assert_eq!(back.to[0].address.as_str(), "maria.esposito@example.it");
    assert!(back.date.is_some());
    assert_eq!(
        back.text,
        "Gentile Maria Esposito,\n\n\
         la sua domanda è stata accolta.\n\
         Il contributo sarà versato entro trenta giorni.\n\n\
         Cordiali saluti,\n\
         Giulia Conti\n\
         Sportello Welfare – Municipio 9\n\n\
         -- \n\
         Tel. 02 0202 (lun–ven 9–16)\n\
         https://www.comune.example.it/welfare\n\
         Per rispondere usi la funzione \"Rispondi\" e lasci nell'oggetto il codice [SP-2026-000123]."
    );
    assert_eq!(composed.envelope.to().len(), 1);
    assert_eq!(
        composed.envelope.from().map(|a| a.to_string()).as_deref(),
        Some("welfare@comune.example.it")
    );
}

#[test]
fn english_template_and_neutral_greeting() {
    let mut d = draft();
    d.language = Language::En;
    d.greeting_name = None;
    d.subject = String::new();
    let back = parse::parse(
        &compose_reply(&d).expect("composes").raw,
        &ParseLimits::default(),
    )
    .expect("parses");
    assert_eq!(back.subject, "Re: [SP-2026-000123] Your request");
    assert!(
        back.text.starts_with("Dear Sir or Madam,\n\n"),
        "{}",
        back.text
    );
    assert!(back.text.contains("\nKind regards,\n"), "{}", back.text);
}

#[test]
fn references_stay_bounded_with_the_root_first() {
    let mut d = draft();
    d.references = (0..100).map(|i| format!("m{i}@example.it")).collect();
    let composed = compose_reply(&d).expect("composes");
    assert_eq!(composed.references.len(), 20);
    assert_eq!(composed.references[0], "m0@example.it");
    assert_eq!(
        composed.references[19],
        "AM0PR01MB1234567@outlook.example.com"
    );
    let raw = String::from_utf8(composed.raw).expect("utf-8");
    assert!(
        raw.split("\r\n").all(|l| l.len() <= 998),
        "no header line over the RFC 5322 limit"
    );
    let back = parse::parse(raw.as_bytes(), &ParseLimits::default()).expect("parses");
    assert_eq!(back.references, composed.references);
}

#[test]
fn attachments_keep_their_italian_names_and_bytes() {
    let mut d = draft();
    let pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n%%EOF\n".to_vec();
    d.attachments = vec![OutboundAttachment {
        filename: "Esito domanda – Città di Milano.pdf".into(),
        content_type: "application/pdf".into(),
        data: pdf.clone(),
    }];
    let composed = compose_reply(&d).expect("composes");
    let back = parse::parse(&composed.raw, &ParseLimits::default()).expect("parses");
    assert_eq!(back.attachments.len(), 1);
    assert_eq!(
        back.attachments[0].filename,
        "Esito domanda – Città di Milano.pdf"
    );
    assert_eq!(back.attachments[0].content_type, "application/pdf");
    assert_eq!(back.attachments[0].data.as_deref(), Some(pdf.as_slice()));
    assert!(
        back.text.starts_with("Gentile Maria Esposito,"),
        "{}",
        back.text
    );

    d.attachments[0].content_type = "not a type".into();
    assert!(
        compose_reply(&d)
            .unwrap_err()
            .to_string()
            .contains("'not a type'")
    );
}

#[test]
fn auto_acknowledgements_are_marked_and_never_answered_by_us() {
    let ack = AutoAckDraft {
        from: party("welfare@comune.example.it", Some("Sportello Welfare")),
        to: party("niccolo.bianchi@example.it", None),
        ticket: TicketNumber::parse("SP-2026-000321").expect("valid"),
        subject: "Domanda B2 in attesa - perché?".into(),
        in_reply_to: Some("20260303091502.4711@pc-niccolo.example.it".into()),
        references: vec![],
        greeting_name: None,
        language: Language::It,
        text: None,
        office: "Sportello Welfare – Comune di Milano".into(),
        message_id_domain: Some("sportello.comune.example.it".into()),
    };
    let composed = compose_auto_ack(&ack).expect("composes");
    let raw = String::from_utf8(composed.raw.clone()).expect("utf-8");
    assert_eq!(
        header(&raw, "Auto-Submitted"),
        ["Auto-Submitted: auto-replied"]
    );
    assert!(
        composed
            .message_id
            .ends_with("@sportello.comune.example.it")
    );
    let back = parse::parse(&composed.raw, &ParseLimits::default()).expect("parses");
    assert_eq!(
        back.subject,
        "Re: [SP-2026-000321] Domanda B2 in attesa - perché?"
    );
    assert_eq!(
        back.in_reply_to.as_deref(),
        Some("20260303091502.4711@pc-niccolo.example.it")
    );
    assert_eq!(
        back.text,
        "Gentile utente,\n\n\
         abbiamo ricevuto il suo messaggio e lo abbiamo registrato con il numero di pratica SP-2026-000321.\n\
         Un operatore le risponderà al più presto.\n\n\
         Per aggiungere informazioni risponda a questo messaggio lasciando nell'oggetto il codice [SP-2026-000321].\n\n\
         Questo è un messaggio automatico.\n\n\
         Sportello Welfare – Comune di Milano"
    );
    // If it ever comes back to one of our mailboxes, we do not acknowledge our own robot.
    assert!(
        auto_reply_check(
            &back,
            &[EmailAddress::parse("altra@comune.example.it").expect("valid")]
        )
        .is_err()
    );

    let custom = AutoAckDraft {
        text: Some("Pratica {numero} registrata. Citi {tag} nelle risposte.".into()),
        ..ack
    };
    let back = parse::parse(
        &compose_auto_ack(&custom).expect("composes").raw,
        &ParseLimits::default(),
    )
    .expect("parses");
    assert!(
        back.text
            .contains("Pratica SP-2026-000321 registrata. Citi [SP-2026-000321] nelle risposte."),
        "{}",
        back.text
    );
}
