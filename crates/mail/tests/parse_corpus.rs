//! Table-driven parser tests over the raw messages in tests/data: every case states the exact
//! decoded text a citizen wrote, so any mangled accent fails.

use std::path::PathBuf;

use sportello_mail::parse::{self, InboundMessage, ParseFailure, ParseLimits, ParseNote};

fn data(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn parsed(name: &str) -> InboundMessage {
    parse::parse(&data(name), &ParseLimits::default())
        .unwrap_or_else(|e| panic!("{name} should parse: {e}"))
}

struct Case {
    file: &'static str,
    subject: &'static str,
    from: Option<(&'static str, Option<&'static str>)>,
    message_id: &'static str,
    text: &'static str,
    check: fn(&InboundMessage),
}

fn no_more(_: &InboundMessage) {}

const CASES: &[Case] = &[
    Case {
        file: "latin1_8bit.eml",
        subject: "Domanda B2 in attesa - perché?",
        from: Some(("niccolo.bianchi@example.it", Some("Niccolò Bianchi"))),
        message_id: "20260303091502.4711@pc-niccolo.example.it",
        text: "Buongiorno,\n\
               vorrei sapere perché la mia domanda per la Misura B2 è ancora in attesa.\n\
               Ho già inviato l\u{2019}ISEE aggiornato (valore 7.350,00 €) il 3 marzo.\n\
               Città: Milano - Municipio 9, via Padova 12 (più o meno all\u{2019}angolo).\n\
               \n\
               Grazie, Niccolò Bianchi",
        check: |m| {
            assert!(m.html.is_none());
            assert!(m.notes.is_empty(), "{:?}", m.notes);
            assert_eq!(m.to[0].address.as_str(), "welfare@comune.example.it");
            assert_eq!(
                m.date.map(|d| d.to_rfc3339()).as_deref(),
                Some("2026-03-03T08:15:02+00:00")
            );
            assert_eq!(
                m.auto.return_path.as_deref(),
                Some("niccolo.bianchi@example.it")
            );
            assert!(!m.is_bounce());
        },
    },
    Case {
        file: "latin1_raw_headers.eml",
        subject: "Richiesta informazioni sull'attività del Centro",
        from: Some(("lucia@example.it", Some("Lucía Müller Pescò"))),
        message_id: "oldmailer-1@example.it",
        text: "Salve, è possibile avere un appuntamento lunedì? Grazie.",
        check: |m| {
            assert_eq!(m.notes, vec![ParseNote::CharsetRepaired]);
        },
    },
    Case {
        file: "qp_utf8.eml",
        subject: "Titoli Sociali L2 - mia madre",
        from: Some(("annamaria.dangelo@example.com", Some("Anna Maria D'Angelo"))),
        message_id: "CAF=qp-utf8-0001@mail.example.com",
        text: "Gentili operatori,\n\
               vi scrivo per conto di mia madre, che è invalida al 100% e non riesce più a \
               gestire la pratica dei Titoli Sociali L2: può l\u{2019}assistente sociale contattarmi?\n\
               Perché il sito dice «domanda respinta» ma nessuno ci ha spiegato il motivo…\n\
               \n\
               Cordiali saluti\n\
               Anna Maria D\u{2019}Angelo",
        check: no_more,
    },
    Case {
        file: "base64_alternative.eml",
        subject: "Pagamento",
        from: Some(("g.rossi@example.net", Some("Gianluca Rossi"))),
        message_id: "b64-alt-0001@example.net",
        text: "Buonasera,\nallego la ricevuta del pagamento. È corretto l\u{2019}importo di 1.250,00 €?\n\
               Saluti, Gianluca Rossi",
        check: |m| {
            let html = m.html.as_deref().expect("html body");
            assert!(
                html.contains("<b>È corretto</b> l\u{2019}importo di 1.250,00&nbsp;€?"),
                "{html}"
            );
            assert!(m.attachments.is_empty(), "{:?}", m.attachments);
        },
    },
    Case {
        file: "rfc2047_subject.eml",
        subject: "Richiesta urgente: l\u{2019}assegno è sospeso da lunedì",
        from: Some(("elise.benedetti@example.org", Some("Élise Benedetti Lò"))),
        message_id: "rfc2047-0001@example.org",
        text: "Vedi oggetto.",
        check: |m| {
            assert_eq!(m.to[0].name.as_deref(), Some("Sportello Welfare Città"));
            // The malformed second Cc entry is dropped, the valid one kept.
            assert_eq!(m.cc.len(), 1);
            assert_eq!(m.cc[0].address.as_str(), "anziani@comune.example.it");
        },
    },
    Case {
        file: "rfc2231_attachments.eml",
        subject: "Documenti ISEE",
        from: Some(("paolo.ferri@example.it", Some("Paolo Ferri"))),
        message_id: "rfc2231-0001@example.it",
        text: "In allegato la ricevuta e la foto del documento.",
        check: |m| {
            let names: Vec<&str> = m.attachments.iter().map(|a| a.filename.as_str()).collect();
            assert_eq!(
                names,
                [
                    "ricevuta ISEE 2026 \u{2013} Città.pdf",
                    "carta d'identità fronte e retro.png",
                    "passwd"
                ]
            );
            let pdf = &m.attachments[0];
            assert_eq!(pdf.content_type, "application/pdf");
            assert_eq!(
                pdf.data.as_deref(),
                Some(data("rfc2231_pdf.bin").as_slice())
            );
            assert_eq!(pdf.size, data("rfc2231_pdf.bin").len());
            let png = &m.attachments[1];
            assert_eq!(png.content_type, "image/png");
            assert_eq!(
                png.data.as_deref(),
                Some(data("rfc2231_png.bin").as_slice())
            );
        },
    },
    Case {
        file: "html_hostile.eml",
        subject: "Aggiornamento",
        from: Some(("info@phish.example.com", Some("Newsletter Falsa"))),
        message_id: "hostile-html-0001@phish.example.com",
        text: "Buongiorno, ecco la pagina (https://www.comune.milano.it/servizi).\n\n[rotta][firma]clicca qui",
        check: |m| {
            let html = m.html.as_deref().expect("html body");
            for bad in [
                "<script",
                "onload",
                "onerror",
                "tracker.example.com",
                "evil.example.com",
                "javascript:",
                "<iframe",
                "<form",
                "<input",
                "<style",
                "target=",
            ] {
                assert!(!html.contains(bad), "{bad} survived: {html}");
            }
            assert!(
                html.contains(r#"<img src="cid:firma@example.com" alt="firma">"#),
                "{html}"
            );
            assert!(
                html.contains(r#"<a href="https://www.comune.milano.it/servizi" rel="noopener noreferrer">pagina</a>"#),
                "{html}"
            );
            assert!(
                m.notes.contains(&ParseNote::RemoteImagesBlocked),
                "{:?}",
                m.notes
            );
        },
    },
    Case {
        file: "outlook_reply.eml",
        subject: "R: Re: [SP-2026-000123] Richiesta contributo",
        from: Some(("maria.esposito@example.it", Some("Maria Esposito"))),
        message_id: "AM0PR01MB1234567@AM0PR01MB1234.eurprd01.prod.outlook.com",
        text: "Buongiorno,\n\
               come richiesto allego l\u{2019}attestazione. Il costo è stato di 15 €.\n\
               \n\
               Cordiali saluti\n\
               Maria Esposito\n\
               \n\
               -----Messaggio originale-----\n\
               Da: Sportello Welfare <welfare@comune.example.it>\n\
               Oggetto: Re: [SP-2026-000123] Richiesta contributo",
        check: |m| {
            assert_eq!(
                m.in_reply_to.as_deref(),
                Some("0190a1b2c3d4e5f6@comune.example.it")
            );
            assert_eq!(
                m.references,
                [
                    "first-citizen-msg@example.it",
                    "0190a1b2c3d4e5f6@comune.example.it"
                ]
            );
            assert_eq!(
                m.thread_index.as_deref(),
                Some("AQHZpKx1bXl0aHJlYWRpbmRleHJvb3QAAQIDBAUGBw==")
            );
            assert_eq!(
                m.thread_index_root().as_deref(),
                Some("0101d9a4ac756d79746872656164696e646578726f6f")
            );
        },
    },
    Case {
        file: "auto_reply.eml",
        subject: "Risposta automatica: [SP-2026-000200] La sua richiesta",
        from: Some(("g.verdi@example.it", Some("Giuseppe Verdi"))),
        message_id: "ooo-0001@example.it",
        text: "Sarò assente fino al 20 marzo.",
        check: |m| {
            assert_eq!(m.auto.auto_submitted.as_deref(), Some("auto-replied"));
            assert!(m.auto.x_autoreply);
            assert_eq!(m.auto.precedence.as_deref(), Some("auto_reply"));
            assert_eq!(m.auto.auto_response_suppress.as_deref(), Some("All"));
            assert!(!m.is_bounce());
        },
    },
    Case {
        file: "bounce_dsn.eml",
        subject: "Undelivered Mail Returned to Sender",
        from: Some((
            "MAILER-DAEMON@mx.comune.example.it",
            Some("Mail Delivery System"),
        )),
        message_id: "20260313140005.ABC12@mx.comune.example.it",
        text: "This is the mail system at host mx.comune.example.it.\n\n\
               I'm sorry to have to inform you that your message could not\n\
               be delivered to one or more recipients.\n\n\
               <cittadino.inesistente@example.org>: host mx.example.org[192.0.2.10] said:\n    \
               550 5.1.1 <cittadino.inesistente@example.org>: Recipient address rejected:\n    \
               User unknown (in reply to RCPT TO command)",
        check: |m| {
            let b = m.bounce.as_ref().expect("a bounce");
            assert!(b.structured);
            assert!(b.is_failure());
            assert_eq!(
                b.original_message_id.as_deref(),
                Some("0190ffee0000reply@comune.example.it")
            );
            assert_eq!(
                b.failed_recipients().collect::<Vec<_>>(),
                ["cittadino.inesistente@example.org"]
            );
            assert_eq!(b.status(), Some("5.1.1"));
            assert_eq!(
                b.recipients[0].diagnostic.as_deref(),
                Some(
                    "550 5.1.1 <cittadino.inesistente@example.org>: Recipient address rejected: User unknown"
                )
            );
            assert_eq!(m.auto.return_path.as_deref(), Some(""));
            assert_eq!(m.auto.report_type.as_deref(), Some("delivery-status"));
            // The returned original stays visible as an attachment.
            assert!(
                m.attachments
                    .iter()
                    .any(|a| a.content_type == "message/rfc822")
            );
        },
    },
    Case {
        file: "bounce_delayed_headers_only.eml",
        subject: "Delivery Status Notification (Delay)",
        from: Some(("postmaster@relay.example.net", None)),
        message_id: "dsn-delay-1@relay.example.net",
        text: "Delivery is delayed to these recipients.",
        check: |m| {
            let b = m.bounce.as_ref().expect("a delivery report");
            assert!(!b.is_failure(), "a delay is not a failure");
            assert_eq!(b.failed_recipients().count(), 0);
            assert_eq!(b.status(), Some("4.4.7"));
            assert_eq!(
                b.original_message_id.as_deref(),
                Some("0190delayed@comune.example.it")
            );
        },
    },
    Case {
        file: "list_newsletter.eml",
        subject: "Bandi aperti di marzo",
        from: Some(("news@regione.example.it", Some("Notizie Regione"))),
        message_id: "news-0315@regione.example.it",
        text: "Bandi aperti.",
        check: |m| {
            assert_eq!(m.auto.precedence.as_deref(), Some("bulk"));
            assert_eq!(
                m.auto.list_id.as_deref(),
                Some("Notizie Regione <notizie.regione.example.it>")
            );
        },
    },
    Case {
        file: "no_message_id.eml",
        subject: "Senza identificativo",
        from: Some(("senza.id@example.it", None)),
        message_id: "",
        text: "Testo.",
        check: |m| {
            assert!(m.has_synthetic_message_id());
            assert_eq!(
                m.message_id,
                parse::synthetic_message_id(&data("no_message_id.eml"))
            );
            assert!(m.date.is_none());
        },
    },
];

#[test]
fn every_message_decodes_exactly() {
    for case in CASES {
        let m = parsed(case.file);
        assert_eq!(m.subject, case.subject, "{}: subject", case.file);
        match case.from {
            Some((address, name)) => {
                let from = m
                    .from
                    .as_ref()
                    .unwrap_or_else(|| panic!("{}: no sender", case.file));
                assert_eq!(
                    from.address.as_str(),
                    address,
                    "{}: sender address",
                    case.file
                );
                assert_eq!(from.name.as_deref(), name, "{}: sender name", case.file);
            }
            None => assert!(m.from.is_none(), "{}: unexpected sender", case.file),
        }
        if !case.message_id.is_empty() {
            assert_eq!(m.message_id, case.message_id, "{}: Message-ID", case.file);
        }
        assert_eq!(m.text, case.text, "{}: text", case.file);
        assert!(
            !m.text.contains('\u{FFFD}'),
            "{}: replacement character in text",
            case.file
        );
        assert!(
            !m.notes.contains(&ParseNote::DamagedText),
            "{}: {:?}",
            case.file,
            m.notes
        );
        assert_eq!(m.raw_size, data(case.file).len());
        (case.check)(&m);
    }
}

#[test]
fn every_file_in_the_corpus_has_a_case() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut covered: Vec<&str> = CASES.iter().map(|c| c.file).collect();
    covered.extend(["garbage.eml", "loop_xloop.eml"]);
    for entry in std::fs::read_dir(dir).expect("data dir") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".eml") {
            assert!(covered.contains(&name.as_str()), "{name} has no test case");
        }
    }
}

#[test]
fn garbage_is_refused_with_its_bytes_kept_for_quarantine() {
    let raw = data("garbage.eml");
    let err = parse::parse(&raw, &ParseLimits::default()).expect_err("garbage must not parse");
    assert_eq!(err.raw(), raw.as_slice());
    assert!(
        matches!(
            err.reason,
            ParseFailure::NoHeaders | ParseFailure::NotAMessage
        ),
        "{err}"
    );
    assert!(
        !format!("{err:?}").contains("\\u{0}"),
        "Debug must not dump the bytes"
    );
    for empty in [&b""[..], b"\r\n\r\n", b"   "] {
        let err = parse::parse(empty, &ParseLimits::default()).expect_err("empty");
        assert_eq!(err.reason, ParseFailure::Empty);
    }
}

#[test]
fn oversized_attachments_are_listed_with_a_note() {
    let limits = ParseLimits {
        max_message_bytes: 1 << 20,
        max_attachment_bytes: 60,
    };
    let m = parse::parse(&data("rfc2231_attachments.eml"), &limits).expect("parses");
    let png = &m.attachments[1];
    assert_eq!(png.size, 69);
    assert!(png.data.is_none());
    let pdf = &m.attachments[0];
    assert!(pdf.data.is_some(), "51 bytes fit in the limit");
    let note = m
        .notes
        .iter()
        .find(|n| matches!(n, ParseNote::AttachmentTooLarge { .. }))
        .expect("a note");
    assert_eq!(
        note.to_string(),
        "Allegato «carta d'identità fronte e retro.png» troppo grande (1 kB, limite 1 kB): \
         non importato; l'originale è conservato."
    );
}

#[test]
fn mislabelled_utf8_body_is_repaired_not_mangled() {
    let mut raw = b"From: a@example.it\r\nMessage-ID: <m@x.it>\r\nContent-Type: text/plain; charset=utf-8\r\n\
                    Content-Transfer-Encoding: 8bit\r\n\r\n"
        .to_vec();
    raw.extend_from_slice(b"Citt\xe0 di Milano, perch\xe9 no?\r\n");
    let m = parse::parse(&raw, &ParseLimits::default()).expect("parses");
    assert_eq!(m.text, "Città di Milano, perché no?");
    assert_eq!(m.notes, vec![ParseNote::CharsetRepaired]);

    // Really undecodable bytes in a declared single-byte charset keep the note that says so.
    let raw = b"From: a@example.it\r\nMessage-ID: <n@x.it>\r\nContent-Type: text/plain; charset=x-unknown-42\r\n\r\n\xff\xfe ok\r\n";
    let m = parse::parse(raw, &ParseLimits::default()).expect("parses");
    assert!(
        m.notes.contains(&ParseNote::DamagedText),
        "{:?} {:?}",
        m.notes,
        m.text
    );
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    const CORPUS: &[&str] = &[
        "latin1_8bit.eml",
        "rfc2231_attachments.eml",
        "bounce_dsn.eml",
        "html_hostile.eml",
        "base64_alternative.eml",
        "outlook_reply.eml",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn on_arbitrary_bytes(raw in proptest::collection::vec(any::<u8>(), 0..2048)) {
            match parse::parse(&raw, &ParseLimits::default()) {
                Ok(m) => prop_assert_eq!(m.raw_size, raw.len()),
                Err(e) => prop_assert_eq!(e.raw(), raw.as_slice()),
            }
        }

        /// Truncated and corrupted real messages: the shapes a broken mailer or a cut
        /// connection produce.
        #[test]
        fn on_damaged_real_messages(
            which in 0..CORPUS.len(),
            cut in any::<prop::sample::Index>(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        ) {
            let mut raw = data(CORPUS[which]);
            for (at, byte) in flips {
                let i = at.index(raw.len());
                raw[i] = byte;
            }
            raw.truncate(cut.index(raw.len() + 1));
            let tight = ParseLimits { max_message_bytes: 800, max_attachment_bytes: 16 };
            for limits in [ParseLimits::default(), tight] {
                if let Err(e) = parse::parse(&raw, &limits) {
                    prop_assert_eq!(e.raw(), raw.as_slice());
                }
            }
        }
    }
}
