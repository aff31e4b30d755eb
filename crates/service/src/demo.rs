//! The live demo's engine (`sportello demo`): demo accounts, a calendar open around the clock,
//! SLA targets in minutes, counter sessions, and a traffic generator that keeps the contact
//! center busy through the real channel code.
//!
//! Nothing here bypasses a channel: phone calls go through the native webhook's parser and
//! [`App::ingest_call_events`] as a switchboard's reports do; e-mails are raw RFC 5322 messages
//! handed to the IMAP fetchers' sink ([`App::mail_sink`]), so they are parsed, threaded and
//! acknowledged like real mail; counter visits are booked, checked in, called and recorded with
//! the counter use cases. Simulated operators take what the router assigns them, answer,
//! call back and resolve, and now and then go on a break. Every person, address, number and
//! codice fiscale is made up (valid in form only).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;
use sportello_domain::calendar::{CalendarConfig, WeeklySession};
use sportello_domain::{CodiceFiscale, EmailAddress, PhoneNumber, Role, Status, Tier};
use sportello_mail::imap::{FetchedMessage, MailboxConfig};
use sportello_mail::{Secret, TlsMode};
use sportello_routing::RoutingProfile;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::auth::NewUser;
use crate::citizens::NewCitizen;
use crate::counter::{NewBooking, NewSession, NewWalkIn, VisitRecord};
use crate::mail::{IngestOutcome, NewReply};
use crate::phone::CallbackAttempt;
use crate::routing::RulesDocument;
use crate::tickets::{NewEntry, TicketQuery, TransitionRequest};
use crate::{Actor, App, ServiceConfig, ServiceError};

/// The password of every demo account.
pub const DEMO_PASSWORD: &str = "sportello-demo";
/// The mailbox the demo's e-mails arrive in (configured, never fetched).
pub const MAILBOX: &str = "welfare";
/// Its address.
pub const MAILBOX_ADDRESS: &str = "welfare@comune.example.org";
/// The switchboard integration the demo's calls are recorded under.
pub const SWITCHBOARD: &str = "centralino-demo";
/// The contact center's number the demo's citizens call.
pub const OWN_NUMBER: &str = "+39 02 0202 0202";

/// A demo account.
#[derive(Clone, Copy, Debug)]
pub struct DemoAccount {
    pub username: &'static str,
    pub name: &'static str,
    pub roles: &'static [&'static str],
    /// The phone extension the operator answers on.
    pub extension: Option<&'static str>,
}

/// Every demo account, the administrator first.
pub const ACCOUNTS: &[DemoAccount] = &[
    DemoAccount {
        username: "admin",
        name: "Amministratore",
        roles: &["admin"],
        extension: None,
    },
    DemoAccount {
        username: "supervisore",
        name: "Giulia Ferraro",
        roles: &["supervisor"],
        extension: None,
    },
    DemoAccount {
        username: "lbassi",
        name: "Laura Bassi",
        roles: &["front_office"],
        extension: Some("201"),
    },
    DemoAccount {
        username: "mrossi",
        name: "Marco Rossi",
        roles: &["front_office"],
        extension: Some("202"),
    },
    DemoAccount {
        username: "fesposito",
        name: "Francesca Esposito",
        roles: &["front_office"],
        extension: Some("203"),
    },
    DemoAccount {
        username: "gconti",
        name: "Giovanni Conti",
        roles: &["back_office"],
        extension: None,
    },
    DemoAccount {
        username: "sromano",
        name: "Sara Romano",
        roles: &["back_office"],
        extension: None,
    },
    DemoAccount {
        username: "aricci",
        name: "Alessandro Ricci",
        roles: &["counter"],
        extension: None,
    },
    DemoAccount {
        username: "cmarino",
        name: "Chiara Marino",
        roles: &["counter"],
        extension: None,
    },
];

/// The demo's settings over `config`: a calendar open every day around the clock (so the SLA
/// clocks and the counter run whenever the demo does), the operators' extensions, and the
/// mailbox the generated mail is filed under.
pub fn configure(config: &mut ServiceConfig) {
    config.calendar = CalendarConfig {
        timezone: "Europe/Rome".into(),
        sessions: vec![WeeklySession {
            days: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
                .map(String::from)
                .to_vec(),
            start: "00:00".into(),
            end: "24:00".into(),
        }],
        patron_days: Vec::new(),
        closures: Vec::new(),
    };
    config.phone.extensions = ACCOUNTS
        .iter()
        .filter_map(|a| a.extension.map(|e| (e.to_owned(), a.username.to_owned())))
        .collect();
    if let Ok(n) = PhoneNumber::parse(OWN_NUMBER) {
        config.phone.own_numbers = vec![n];
    }
    if let Ok(address) = EmailAddress::parse(MAILBOX_ADDRESS) {
        let mut mailbox = MailboxConfig::new(
            MAILBOX,
            "imap.comune.example.org",
            TlsMode::Tls,
            MAILBOX_ADDRESS,
            Secret::new("not-used-by-the-demo"),
            address,
        );
        mailbox.default_category = Some("eligibility".into());
        config.email.mailboxes = vec![mailbox];
    }
}

/// SLA targets of the routing file turned into minutes, so tickets come at risk and breach
/// while someone watches. Policy names and rules stay as they are.
fn minute_slas(toml_text: &str) -> Result<String, ServiceError> {
    let bad = |e: String| ServiceError::Internal(format!("demo routing file: {e}"));
    let mut doc: toml::Table = toml::from_str(toml_text).map_err(|e| bad(e.to_string()))?;
    let Some(policies) = doc
        .get_mut("sla")
        .and_then(|s| s.get_mut("policies"))
        .and_then(|p| p.as_table_mut())
    else {
        return Err(bad("no [sla.policies]".into()));
    };
    for (name, policy) in policies.iter_mut() {
        let Some(p) = policy.as_table_mut() else {
            continue;
        };
        let minutes: i64 = match name.as_str() {
            "phone_callback" => 3,
            "counter" => 4,
            "email" => 5,
            "general" => 6,
            _ => 8,
        };
        let target = |m: i64| {
            let mut t = toml::Table::new();
            t.insert("business_minutes".into(), toml::Value::Integer(m));
            toml::Value::Table(t)
        };
        for key in ["first_response", "next_response"] {
            if p.contains_key(key) {
                p.insert(key.into(), target(minutes));
            }
        }
        p.insert("resolution".into(), target(minutes * 3));
        p.remove("at_risk_before");
        p.insert("at_risk_fraction".into(), toml::Value::Float(0.5));
    }
    toml::to_string(&doc).map_err(|e| bad(e.to_string()))
}

/// The demo's people, ready to act.
#[derive(Clone)]
pub struct Demo {
    admin: Actor,
    supervisor: Actor,
    front: Vec<Actor>,
    back: Vec<Actor>,
    counter: Vec<Actor>,
}

fn actor_of(user: &crate::auth::UserView) -> Actor {
    Actor {
        id: user.id,
        username: user.username.clone(),
        name: user.name.clone(),
        roles: user.roles.clone(),
    }
}

/// Creates the accounts (the administrator through [`App::bootstrap_admin`], on an empty
/// database), their routing profiles and presence, minute-scale SLAs and a week of counter
/// sessions.
pub async fn seed(app: &App) -> Result<Demo, ServiceError> {
    app.bootstrap_admin(Some(DEMO_PASSWORD.into())).await?;
    let mut by_name = HashMap::new();
    for a in ACCOUNTS.iter().skip(1) {
        let u = app
            .create_user_cli(NewUser {
                username: a.username.into(),
                password: DEMO_PASSWORD.into(),
                name: a.name.into(),
                roles: a.roles.iter().map(|r| r.to_string()).collect(),
            })
            .await?;
        by_name.insert(a.username, actor_of(&u));
    }
    let admin_view = app
        .list_users(&Actor {
            id: Uuid::nil(),
            username: "system".into(),
            name: "Sportello".into(),
            roles: vec![Role::Admin],
        })
        .await?
        .into_iter()
        .find(|u| u.username == "admin")
        .ok_or(ServiceError::NotFound("admin"))?;
    let admin = actor_of(&admin_view);
    let take = |names: &[&str]| -> Vec<Actor> {
        names
            .iter()
            .filter_map(|n| by_name.get(n).cloned())
            .collect()
    };
    let demo = Demo {
        supervisor: by_name
            .get("supervisore")
            .cloned()
            .ok_or(ServiceError::NotFound("supervisor"))?,
        front: take(&["lbassi", "mrossi", "fesposito"]),
        back: take(&["gconti", "sromano"]),
        counter: take(&["aricci", "cmarino"]),
        admin,
    };

    let skills = |list: &[(&str, u8)]| {
        list.iter()
            .map(|(s, l)| (s.to_string(), *l))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let capacity = |list: &[(sportello_domain::Channel, u32)]| {
        list.iter()
            .copied()
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    use sportello_domain::Channel::{Counter, Email, Phone, Web};
    for op in &demo.front {
        let profile = RoutingProfile {
            tiers: vec![Tier::FrontOffice],
            skills: skills(&[
                ("income_support", 3),
                ("titoli_sociali_l1", 3),
                ("disability", 2),
                ("lang_en", 3),
            ]),
            capacity: capacity(&[(Phone, 2), (Email, 3), (Web, 2)]),
        };
        app.set_routing_profile(&demo.admin, op.id, profile).await?;
    }
    for op in &demo.back {
        let profile = RoutingProfile {
            tiers: vec![Tier::BackOffice],
            skills: skills(&[
                ("complaints", 3),
                ("appeals", 3),
                ("privacy", 3),
                ("disability", 3),
            ]),
            capacity: capacity(&[(Email, 4), (Counter, 2), (Phone, 2), (Web, 2)]),
        };
        app.set_routing_profile(&demo.admin, op.id, profile).await?;
    }
    for op in &demo.counter {
        let profile = RoutingProfile {
            tiers: vec![Tier::FrontOffice],
            skills: Default::default(),
            capacity: capacity(&[(Counter, 3)]),
        };
        app.set_routing_profile(&demo.admin, op.id, profile).await?;
    }
    for op in demo.operators() {
        app.set_presence(&demo.admin, op.id, "available").await?;
    }

    let rules = app.routing_rules(&demo.admin).await?;
    app.replace_routing_rules(
        &demo.admin,
        RulesDocument {
            toml: minute_slas(&rules.toml)?,
            updated_at: None,
        },
    )
    .await?;

    // Today and the next six days; a day the calendar closes (a national holiday) is skipped.
    let today = app.inner.routing.calendar.local_date(Utc::now());
    for d in 0..7 {
        let date = today + chrono::Duration::days(d);
        let res = app
            .create_counter_session(
                &demo.supervisor,
                NewSession {
                    date: date.to_string(),
                    start: "00:00".into(),
                    end: "23:40".into(),
                    desks: 2,
                    slot_minutes: Some(20),
                },
            )
            .await;
        if let Err(e) = res {
            tracing::info!(date = %date, "demo: no counter session: {e}");
        }
    }
    Ok(demo)
}

impl Demo {
    /// Everyone who takes work from the router.
    fn operators(&self) -> impl Iterator<Item = &Actor> {
        self.front
            .iter()
            .chain(self.back.iter())
            .chain(self.counter.iter())
    }

    /// Produces traffic and works it until `cancel` fires. The first call, e-mail and counter
    /// visit come at once.
    pub async fn run(self, app: App, cancel: CancellationToken) {
        let state = std::sync::Arc::new(Traffic::new());
        let tasks = vec![
            tokio::spawn(channel_loop(
                app.clone(),
                self.clone(),
                state.clone(),
                cancel.clone(),
            )),
            tokio::spawn(operator_loop(
                app.clone(),
                self.clone(),
                state.clone(),
                cancel.clone(),
            )),
            tokio::spawn(counter_desks(
                app.clone(),
                self.clone(),
                state.clone(),
                cancel.clone(),
            )),
        ];
        for t in tasks {
            let _ = t.await;
        }
    }
}

/// A tiny xorshift generator: the demo needs variety, not cryptography.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let t = Utc::now().timestamp_nanos_opt().unwrap_or(1) as u64;
        Rng(t | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// 0..n
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn secs(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from * 1000 + self.next() % ((to - from).max(1) * 1000))
    }
}

/// A made-up citizen.
#[derive(Clone, Debug)]
struct Person {
    first: &'static str,
    last: &'static str,
    cf: String,
    phone: String,
    email: String,
    citizen_id: Option<Uuid>,
}

const WOMEN: &[&str] = &[
    "Maria",
    "Anna",
    "Giuseppina",
    "Rosa",
    "Angela",
    "Giovanna",
    "Teresa",
    "Lucia",
    "Carmela",
    "Francesca",
    "Elena",
    "Chiara",
    "Sofia",
    "Giulia",
    "Martina",
    "Paola",
    "Silvia",
    "Valentina",
];
const MEN: &[&str] = &[
    "Giuseppe",
    "Giovanni",
    "Antonio",
    "Mario",
    "Luigi",
    "Francesco",
    "Angelo",
    "Vincenzo",
    "Pietro",
    "Salvatore",
    "Carlo",
    "Franco",
    "Domenico",
    "Bruno",
    "Paolo",
    "Luca",
    "Matteo",
    "Andrea",
];
const SURNAMES: &[&str] = &[
    "Rossi",
    "Russo",
    "Ferrari",
    "Esposito",
    "Bianchi",
    "Romano",
    "Colombo",
    "Ricci",
    "Marino",
    "Greco",
    "Bruno",
    "Gallo",
    "Conti",
    "De Luca",
    "Mancini",
    "Costa",
    "Giordano",
    "Rizzo",
    "Lombardi",
    "Moretti",
    "Barbieri",
    "Fontana",
    "Santoro",
    "Mariani",
    "Rinaldi",
    "Caruso",
    "Ferrara",
    "Galli",
    "Martini",
    "Leone",
    "Longo",
    "Gentile",
    "Martinelli",
    "Vitale",
];
/// Municipalities' cadastral codes: Milano, Roma, Napoli, Torino, Bergamo, Palermo, Bari.
const PLACES: &[&str] = &["F205", "H501", "F839", "L219", "A794", "G273", "A662"];
const DOMAINS: &[&str] = &[
    "example.org",
    "example.net",
    "example.com",
    "mail.example.org",
];

fn letters(s: &str) -> Vec<u8> {
    s.to_ascii_uppercase()
        .bytes()
        .filter(u8::is_ascii_uppercase)
        .collect()
}

fn is_vowel(c: &u8) -> bool {
    b"AEIOU".contains(c)
}

/// The three letters of a surname (consonants, then vowels, then X).
fn surname_code(s: &str) -> String {
    let l = letters(s);
    let mut out: Vec<u8> = l.iter().filter(|c| !is_vowel(c)).copied().collect();
    out.extend(l.iter().filter(|c| is_vowel(c)));
    out.resize(out.len().max(3), b'X');
    String::from_utf8_lossy(&out[..3]).into_owned()
}

/// The three letters of a first name (1st, 3rd and 4th consonant when there are four or more).
fn name_code(s: &str) -> String {
    let l = letters(s);
    let consonants: Vec<u8> = l.iter().filter(|c| !is_vowel(c)).copied().collect();
    if consonants.len() >= 4 {
        return String::from_utf8_lossy(&[consonants[0], consonants[2], consonants[3]])
            .into_owned();
    }
    surname_code(s)
}

/// A codice fiscale valid in form (letters, date, place and check character), for a person
/// who does not exist.
fn codice_fiscale(first: &str, last: &str, female: bool, rng: &mut Rng) -> String {
    let year = 1940 + rng.below(65) as u32;
    let month = 1 + rng.below(12);
    let day = 1 + rng.below(28) as u32 + if female { 40 } else { 0 };
    let first15 = format!(
        "{}{}{:02}{}{:02}{}",
        surname_code(last),
        name_code(first),
        year % 100,
        char::from(b"ABCDEHLMPRST"[month - 1]),
        day,
        rng.pick(PLACES)
    );
    let check = CodiceFiscale::check_character(&first15).unwrap_or('X');
    format!("{first15}{check}")
}

fn ascii_slug(s: &str) -> String {
    s.to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase())
        .collect()
}

fn new_person(rng: &mut Rng) -> Person {
    let female = rng.chance(55);
    let first = if female {
        *rng.pick(WOMEN)
    } else {
        *rng.pick(MEN)
    };
    let last = *rng.pick(SURNAMES);
    let cf = codice_fiscale(first, last, female, rng);
    let phone = format!(
        "+39 3{}{} {:03} {:04}",
        rng.below(5) + 2,
        rng.below(10),
        rng.below(1000),
        rng.below(10000)
    );
    let email = format!(
        "{}.{}{}@{}",
        ascii_slug(first),
        ascii_slug(last),
        rng.below(90) + 10,
        rng.pick(DOMAINS)
    );
    Person {
        first,
        last,
        cf,
        phone,
        email,
        citizen_id: None,
    }
}

impl Person {
    fn name(&self) -> String {
        format!("{} {}", self.first, self.last)
    }
}

/// A request a citizen writes about.
struct Topic {
    subject: &'static str,
    body: &'static str,
    measure: Option<&'static str>,
    category: &'static str,
}

const TOPICS: &[Topic] = &[
    Topic {
        subject: "Domanda di sostegno al reddito: requisiti",
        body: "vorrei sapere se posso presentare domanda per il sostegno al reddito. Vivo da sola con due figli e il mio ISEE è di circa 7.800 euro. Quali documenti devo preparare?",
        measure: Some("income_support"),
        category: "eligibility",
    },
    Topic {
        subject: "Stato della mia domanda Titoli Sociali",
        body: "ho presentato la domanda per i Titoli Sociali il mese scorso ma non ho ancora ricevuto nessuna comunicazione. Potete dirmi a che punto è la pratica?",
        measure: Some("titoli_sociali_l1"),
        category: "application_status",
    },
    Topic {
        subject: "Misura B2 per mia madre",
        body: "mia madre ha 84 anni ed è non autosufficiente. Vorrei capire come richiedere il contributo della Misura B2 e se serve la certificazione di invalidità.",
        measure: Some("b2"),
        category: "how_to_apply",
    },
    Topic {
        subject: "Mancato accredito del contributo",
        body: "il contributo di questo mese non mi è stato accreditato. L'IBAN è lo stesso dell'anno scorso. Potete verificare?",
        measure: Some("income_support"),
        category: "payments",
    },
    Topic {
        subject: "Variazione IBAN per l'accredito",
        body: "ho cambiato banca e devo comunicare il nuovo IBAN per l'accredito del contributo. Come devo fare? Posso inviarlo via e-mail?",
        measure: None,
        category: "changes",
    },
    Topic {
        subject: "Documenti mancanti per la pratica",
        body: "mi è stato chiesto di integrare la domanda con l'attestazione ISEE aggiornata. La allego a questo messaggio.",
        measure: Some("titoli_sociali_l2"),
        category: "missing_documents",
    },
    Topic {
        subject: "Reclamo per mancata risposta",
        body: "presento reclamo perché da oltre un mese attendo una risposta alla mia richiesta e nessuno mi ha mai richiamato. Chiedo che la pratica venga esaminata.",
        measure: None,
        category: "complaint",
    },
    Topic {
        subject: "Sfratto: richiesta di aiuto urgente",
        body: "ho ricevuto un avviso di sfratto per morosità e ho due figli minori. Vorrei sapere se esistono contributi o aiuti per l'affitto.",
        measure: Some("income_support"),
        category: "eligibility",
    },
    Topic {
        subject: "Informazioni sui voucher sociali",
        body: "vorrei sapere se i voucher sociali possono essere usati per l'assistenza domiciliare di mio padre e a chi devo rivolgermi.",
        measure: Some("social_voucher"),
        category: "eligibility",
    },
    Topic {
        subject: "Progetto di vita indipendente",
        body: "sono una persona con disabilità e vorrei informazioni sul progetto di vita indipendente PRO.VI: requisiti, scadenze e come fare domanda.",
        measure: Some("provi"),
        category: "how_to_apply",
    },
    Topic {
        subject: "Dopo di Noi: informazioni per mio figlio",
        body: "mio figlio ha una disabilità grave e vorrei conoscere i percorsi previsti dalla misura Dopo di Noi.",
        measure: Some("dopo_di_noi"),
        category: "eligibility",
    },
    Topic {
        subject: "DSU e ISEE: quale scadenza?",
        body: "devo rinnovare la DSU per l'ISEE: entro quando devo presentarla per non perdere il contributo?",
        measure: None,
        category: "isee",
    },
];

/// RFC 2047 for a header value that is not plain ASCII.
fn header_text(s: &str) -> String {
    if s.is_ascii() {
        s.to_owned()
    } else {
        use base64::Engine;
        format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
        )
    }
}

/// A citizen's message as their mail program would send it: plain text, sometimes with an
/// HTML alternative or a PDF attachment.
fn raw_email(
    person: &Person,
    subject: &str,
    body: &str,
    message_id: &str,
    in_reply_to: Option<&str>,
    rng: &mut Rng,
) -> Vec<u8> {
    let greeting = if rng.chance(50) {
        "Buongiorno,"
    } else {
        "Gentili signori,"
    };
    let text = format!(
        "{greeting}\r\n\r\n{body}\r\n\r\nCodice fiscale: {}\r\nTelefono: {}\r\n\r\nCordiali saluti,\r\n{}\r\n",
        person.cf,
        person.phone,
        person.name()
    );
    let mut head = format!(
        "From: {} <{}>\r\nTo: Sportello Welfare <{MAILBOX_ADDRESS}>\r\nSubject: {}\r\nDate: {}\r\nMessage-ID: <{message_id}>\r\nMIME-Version: 1.0\r\n",
        header_text(&person.name()),
        person.email,
        header_text(subject),
        Utc::now().to_rfc2822()
    );
    if let Some(parent) = in_reply_to {
        head.push_str(&format!(
            "In-Reply-To: <{parent}>\r\nReferences: <{parent}>\r\n"
        ));
    }
    let boundary = format!("=_demo_{}", rng.next());
    let plain = format!(
        "Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{text}"
    );
    let message = match rng.below(5) {
        0 => {
            let html = format!(
                "<html><body><p>{greeting}</p><p>{body}</p><p>Codice fiscale: <b>{}</b></p><p>Cordiali saluti,<br>{}</p></body></html>",
                person.cf,
                person.name()
            );
            format!(
                "{head}Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n--{boundary}\r\n{plain}\r\n--{boundary}\r\nContent-Type: text/html; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{html}\r\n--{boundary}--\r\n"
            )
        }
        1 => {
            use base64::Engine;
            let pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";
            let data = base64::engine::general_purpose::STANDARD.encode(pdf);
            format!(
                "{head}Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n--{boundary}\r\n{plain}\r\n--{boundary}\r\nContent-Type: application/pdf; name=\"attestazione_isee.pdf\"\r\nContent-Disposition: attachment; filename=\"attestazione_isee.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{data}\r\n--{boundary}--\r\n"
            )
        }
        _ => format!("{head}{plain}"),
    };
    message.into_bytes()
}

/// An e-mail conversation the demo may continue.
#[derive(Clone)]
struct Thread {
    person: Person,
    subject: String,
    message_id: String,
}

/// What the generators remember between rounds.
struct Traffic {
    inner: Mutex<TrafficState>,
}

#[derive(Default)]
struct TrafficState {
    /// Citizens who got in touch, to come back by phone or mail.
    people: VecDeque<Person>,
    /// E-mail tickets and their conversation.
    threads: HashMap<Uuid, Thread>,
    /// Tickets waiting for the citizen's answer, with when they started waiting.
    waiting_citizen: HashMap<Uuid, Instant>,
    /// Today's bookings not yet checked in, with the slot's start.
    to_check_in: Vec<(Uuid, chrono::DateTime<Utc>)>,
    /// What each desk is doing: the booking it called, and since when.
    desks: HashMap<u32, (Uuid, Instant)>,
    /// When the simulated operators should next act on a ticket in a status.
    timers: HashMap<(Uuid, Status), Instant>,
    /// Operators on a break, until when.
    breaks: HashMap<Uuid, Instant>,
    uid: u32,
    calls: u64,
}

impl Traffic {
    fn new() -> Traffic {
        Traffic {
            inner: Mutex::new(TrafficState::default()),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut TrafficState) -> R) -> R {
        match self.inner.lock() {
            Ok(mut s) => f(&mut s),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    fn remember(&self, p: Person) {
        self.with(|s| {
            s.people.push_back(p);
            if s.people.len() > 200 {
                s.people.pop_front();
            }
        });
    }

    /// A citizen who got in touch before (about one time in four), or a new one.
    fn someone(&self, rng: &mut Rng) -> Person {
        let known = self.with(|s| {
            if !s.people.is_empty() && rng.chance(25) {
                let i = rng.below(s.people.len());
                Some(s.people[i].clone())
            } else {
                None
            }
        });
        known.unwrap_or_else(|| new_person(rng))
    }
}

async fn sleep_or_stop(d: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = cancel.cancelled() => false,
    }
}

fn report<T>(what: &str, r: Result<T, ServiceError>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::debug!("demo: {what}: {e}");
            None
        }
    }
}

/// New calls, e-mails and counter bookings: one of each at once, then one every few seconds.
async fn channel_loop(
    app: App,
    demo: Demo,
    state: std::sync::Arc<Traffic>,
    cancel: CancellationToken,
) {
    let mut rng = Rng::seeded();
    phone_call(&app, &demo, &state, &mut rng, Some(false)).await;
    email(&app, &state, &mut rng).await;
    counter_visit(&app, &demo, &state, &mut rng, true).await;
    phone_call(&app, &demo, &state, &mut rng, Some(true)).await;
    loop {
        let pause = rng.secs(2, 7);
        if !sleep_or_stop(pause, &cancel).await {
            break;
        }
        match rng.below(100) {
            0..=39 => phone_call(&app, &demo, &state, &mut rng, None).await,
            40..=69 => email(&app, &state, &mut rng).await,
            70..=79 => follow_up(&app, &state, &mut rng).await,
            _ => counter_visit(&app, &demo, &state, &mut rng, false).await,
        }
    }
}

/// A call to the contact center, reported by the switchboard as its native webhook would:
/// answered on an operator's extension, or missed, abandoned or left on the voicemail.
async fn phone_call(
    app: &App,
    demo: &Demo,
    state: &Traffic,
    rng: &mut Rng,
    answered: Option<bool>,
) {
    let person = state.someone(rng);
    let n = state.with(|s| {
        s.calls += 1;
        s.calls
    });
    let call_id = format!("{}.{n}", Utc::now().timestamp());
    let start = Utc::now() - chrono::Duration::seconds(40 + rng.below(200) as i64);
    let at = |secs: i64| (start + chrono::Duration::seconds(secs)).to_rfc3339();
    let extensions: Vec<&str> = ACCOUNTS.iter().filter_map(|a| a.extension).collect();
    let withheld = rng.chance(4);
    let from = if withheld {
        serde_json::Value::String("anonymous".into())
    } else {
        serde_json::Value::String(person.phone.clone())
    };
    let ring = serde_json::json!({"call_id": call_id, "event": "ringing", "direction": "inbound",
        "from": from, "to": OWN_NUMBER, "at": at(0), "queue": "sostegno", "extensions": extensions});
    let answered = answered.unwrap_or_else(|| rng.chance(60));
    let events = if answered {
        // An operator who is not on a break answers.
        let free: Vec<&str> = ACCOUNTS
            .iter()
            .filter(|a| {
                a.extension.is_some()
                    && demo.front.iter().any(|f| {
                        f.username == a.username && !state.with(|s| s.breaks.contains_key(&f.id))
                    })
            })
            .filter_map(|a| a.extension)
            .collect();
        let ext = if free.is_empty() {
            "201"
        } else {
            *rng.pick(&free)
        };
        let talk = 60 + rng.below(400) as i64;
        serde_json::json!([ring,
            {"call_id": call_id, "event": "answered", "direction": "inbound", "from": from,
             "to": OWN_NUMBER, "at": at(12), "answered_by": {"extension": ext}},
            {"call_id": call_id, "event": "ended", "direction": "inbound", "from": from,
             "to": OWN_NUMBER, "at": at(12 + talk), "duration_seconds": 12 + talk,
             "talk_seconds": talk, "cause": "normal_clearing", "answered_by": {"extension": ext}}])
    } else {
        let kind = *rng.pick(&["missed", "missed", "abandoned", "voicemail"]);
        serde_json::json!([ring,
            {"call_id": call_id, "event": kind, "direction": "inbound", "from": from,
             "to": OWN_NUMBER, "at": at(35)}])
    };
    let body = events.to_string();
    let parsed = match crate::phone::sportello_phone::parse_native(body.as_bytes(), SWITCHBOARD) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!("demo: a generated call did not parse: {e}");
            return;
        }
    };
    if report("recording a call", app.ingest_call_events(&parsed).await).is_some() && !withheld {
        state.remember(person);
    }
}

/// A citizen's e-mail, handed to the same sink the IMAP fetchers store into.
async fn email(app: &App, state: &Traffic, rng: &mut Rng) {
    let person = state.someone(rng);
    let topic = rng.pick(TOPICS);
    let message_id = format!(
        "{}@{}",
        Uuid::now_v7().simple(),
        person.email.split('@').nth(1).unwrap_or("example.org")
    );
    let raw = raw_email(&person, topic.subject, topic.body, &message_id, None, rng);
    let subject = topic.subject.to_owned();
    if let Some(ticket) = store_mail(app, state, raw).await {
        state.with(|s| {
            // A demo left running for days keeps only recent conversations.
            if s.threads.len() > 2000 {
                s.threads.clear();
            }
            s.threads.insert(
                ticket,
                Thread {
                    person: person.clone(),
                    subject,
                    message_id,
                },
            )
        });
        state.remember(person);
    }
}

/// A citizen answering our reply on a ticket that waits for them.
async fn follow_up(app: &App, state: &Traffic, rng: &mut Rng) {
    let pick = state.with(|s| {
        let ids: Vec<Uuid> = s
            .waiting_citizen
            .keys()
            .filter(|id| s.threads.contains_key(id))
            .copied()
            .collect();
        if ids.is_empty() {
            return None;
        }
        let id = ids[rng.below(ids.len())];
        s.waiting_citizen.remove(&id);
        s.threads.get(&id).cloned().map(|t| (id, t))
    });
    let Some((ticket_id, thread)) = pick else {
        return email(app, state, rng).await;
    };
    use sea_orm::EntityTrait;
    let number = sportello_store::entities::ticket::Entity::find_by_id(ticket_id)
        .one(&app.db().read)
        .await
        .ok()
        .flatten()
        .map(|t| t.number);
    let subject = match number {
        Some(n) => format!("Re: [{n}] {}", thread.subject),
        None => format!("Re: {}", thread.subject),
    };
    let message_id = format!(
        "{}@{}",
        Uuid::now_v7().simple(),
        thread
            .person
            .email
            .split('@')
            .nth(1)
            .unwrap_or("example.org")
    );
    let body = *rng.pick(&[
        "grazie per la risposta. Allego il documento richiesto e resto in attesa di notizie.",
        "vi ringrazio. Ho ancora un dubbio: il contributo è compatibile con l'assegno di invalidità?",
        "ho provato a seguire le indicazioni ma il modulo online non funziona. Posso venire allo sportello?",
    ]);
    let raw = raw_email(
        &thread.person,
        &subject,
        body,
        &message_id,
        Some(&thread.message_id),
        rng,
    );
    store_mail(app, state, raw).await;
}

async fn store_mail(app: &App, state: &Traffic, raw: Vec<u8>) -> Option<Uuid> {
    let uid = state.with(|s| {
        s.uid += 1;
        s.uid
    });
    let report = report(
        "storing an e-mail",
        app.mail_sink()
            .store(MAILBOX, 1, vec![FetchedMessage { uid, raw }])
            .await,
    )?;
    report.outcomes.into_iter().find_map(|o| match o {
        IngestOutcome::Created { ticket_id, .. } => Some(ticket_id),
        _ => None,
    })
}

/// A counter appointment booked during a call (today when a seat is free, else another
/// day), or a visitor walking in.
async fn counter_visit(app: &App, demo: &Demo, state: &Traffic, rng: &mut Rng, today_only: bool) {
    let mut person = state.someone(rng);
    let Some(op) = demo.front.first().cloned() else {
        return;
    };
    let citizen = match person.citizen_id {
        Some(id) => Some(id),
        None => report(
            "registering a citizen",
            app.create_citizen(
                &op,
                NewCitizen {
                    name: person.name(),
                    codice_fiscale: Some(person.cf.clone()),
                    emails: vec![person.email.clone()],
                    phones: vec![person.phone.clone()],
                },
            )
            .await,
        )
        .map(|c| c.id),
    };
    let Some(citizen_id) = citizen else {
        return;
    };
    person.citizen_id = Some(citizen_id);
    let topic = rng.pick(TOPICS);
    let measure = topic.measure.map(String::from);
    if !today_only && rng.chance(15) {
        if let Some(counter) = demo.counter.first() {
            report(
                "a walk-in",
                app.counter_walk_in(
                    counter,
                    NewWalkIn {
                        citizen_id,
                        category: Some(topic.category.into()),
                        measure,
                        notes: Some("Visitatore senza appuntamento".into()),
                        ticket_id: None,
                    },
                )
                .await,
            );
        }
        state.remember(person);
        return;
    }
    let now = Utc::now();
    let today = app.inner.routing.calendar.local_date(now);
    let days: Vec<i64> = if today_only || rng.chance(70) {
        vec![0, 1, 2]
    } else {
        vec![1 + rng.below(5) as i64, 0]
    };
    for d in days {
        let date = today + chrono::Duration::days(d);
        let Some(slots) = report(
            "reading the slots",
            app.counter_slots(&op, &date.to_string()).await,
        ) else {
            continue;
        };
        let free: Vec<_> = slots
            .items
            .iter()
            .filter(|s| s.booked < s.capacity && s.start > now)
            .take(4)
            .collect();
        let Some(slot) = free.get(rng.below(free.len().max(1))) else {
            continue;
        };
        let booked = report(
            "booking a slot",
            app.book_counter_slot(
                &op,
                NewBooking {
                    slot_id: slot.id,
                    citizen_id,
                    category: Some("counter_appointment".into()),
                    measure: measure.clone(),
                    notes: Some(format!("Prenotato per telefono: {}", topic.subject)),
                    ticket_id: None,
                },
            )
            .await,
        );
        if let Some(b) = booked
            && d == 0
        {
            // Most come; a few never show up and are marked no-show after the grace period.
            if today_only || rng.chance(85) {
                state.with(|s| s.to_check_in.push((b.id, slot.start)));
            }
        }
        break;
    }
    state.remember(person);
}

/// The counter: visitors check in, the desks call them and record the visits.
async fn counter_desks(
    app: App,
    demo: Demo,
    state: std::sync::Arc<Traffic>,
    cancel: CancellationToken,
) {
    let mut rng = Rng::seeded();
    loop {
        // Arrivals: everyone booked for today comes within a few seconds.
        let arrivals: Vec<Uuid> = state.with(|s| {
            let (now, later): (Vec<_>, Vec<_>) =
                s.to_check_in.drain(..).partition(|_| rng.chance(60));
            s.to_check_in = later;
            now.into_iter().map(|(id, _)| id).collect()
        });
        for id in arrivals {
            if let Some(counter) = demo.counter.first() {
                report("a check-in", app.counter_check_in(counter, id).await);
            }
        }
        for (i, staff) in demo.counter.iter().enumerate() {
            let desk = i as u32 + 1;
            let busy = state.with(|s| s.desks.get(&desk).copied());
            match busy {
                Some((booking, since)) if since.elapsed() > rng.secs(8, 25) => {
                    let Some(b) = report("reading a booking", app.booking_view(booking).await)
                    else {
                        state.with(|s| s.desks.remove(&desk));
                        continue;
                    };
                    let documents: Vec<String> =
                        sportello_counter::documents_for(b.measure.as_deref())
                            .into_iter()
                            .filter(|_| rng.chance(85))
                            .map(String::from)
                            .collect();
                    let follow_up = rng.chance(15).then(|| {
                        serde_json::Value::String(
                            "Serve la verifica dell'ufficio: pratica con situazione complessa"
                                .into(),
                        )
                    });
                    report(
                        "recording a visit",
                        app.record_counter_visit(
                            staff,
                            booking,
                            VisitRecord {
                                documents_received: documents,
                                outcome: rng
                                    .pick(&[
                                        "informazioni fornite",
                                        "domanda presentata",
                                        "documenti ritirati",
                                        "pratica da completare",
                                    ])
                                    .to_string(),
                                information_given: Some(
                                    "Requisiti, scadenze e documenti necessari".into(),
                                ),
                                notes: None,
                                follow_up,
                            },
                        )
                        .await,
                    );
                    state.with(|s| s.desks.remove(&desk));
                }
                Some(_) => {}
                None => {
                    if let Some(called) = report(
                        "calling the next visitor",
                        app.counter_call_next(staff, desk).await,
                    ) && let Some(b) = called.called
                    {
                        state.with(|s| s.desks.insert(desk, (b.id, Instant::now())));
                    }
                }
            }
        }
        if !sleep_or_stop(Duration::from_secs(3), &cancel).await {
            break;
        }
    }
}

/// How long an operator takes before acting on a ticket in a status.
fn delay_for(status: Status, rng: &mut Rng) -> Duration {
    match status {
        Status::Assigned => rng.secs(3, 20),
        Status::Open => rng.secs(15, 150),
        Status::WaitingCitizen => rng.secs(60, 240),
        _ => rng.secs(30, 120),
    }
}

/// The operators: they start what is assigned to them, answer, call back, resolve, and take
/// short breaks (which hands their unstarted work back to the queue).
async fn operator_loop(
    app: App,
    demo: Demo,
    state: std::sync::Arc<Traffic>,
    cancel: CancellationToken,
) {
    let mut rng = Rng::seeded();
    let mut next_break = Instant::now() + rng.secs(60, 120);
    loop {
        if !sleep_or_stop(Duration::from_secs(2), &cancel).await {
            break;
        }
        // Breaks: one operator at a time, a minute or so.
        let back: Vec<Uuid> = state.with(|s| {
            let done: Vec<Uuid> = s
                .breaks
                .iter()
                .filter(|(_, until)| **until <= Instant::now())
                .map(|(id, _)| *id)
                .collect();
            for id in &done {
                s.breaks.remove(id);
            }
            done
        });
        for id in back {
            report(
                "back from a break",
                app.set_presence(&demo.supervisor, id, "available").await,
            );
        }
        if Instant::now() >= next_break {
            next_break = Instant::now() + rng.secs(90, 180);
            let ops: Vec<&Actor> = demo.front.iter().chain(demo.back.iter()).collect();
            let op = *rng.pick(&ops);
            if state.with(|s| s.breaks.is_empty())
                && report(
                    "a break",
                    app.set_presence(&demo.supervisor, op.id, "break").await,
                )
                .is_some()
            {
                let until = Instant::now() + rng.secs(45, 90);
                state.with(|s| s.breaks.insert(op.id, until));
            }
        }
        for op in demo.operators() {
            if state.with(|s| s.breaks.contains_key(&op.id)) {
                continue;
            }
            let query = TicketQuery {
                assignee: Some(op.id.to_string()),
                status: Some("assigned,open,waiting_citizen,waiting_internal".into()),
                order: Some("asc".into()),
                limit: Some(20),
                ..Default::default()
            };
            let Some(page) = report("listing work", app.list_tickets(op, &query).await) else {
                continue;
            };
            for t in page.items {
                let key = (t.id, t.status);
                let due = state.with(|s| {
                    *s.timers
                        .entry(key)
                        .or_insert_with(|| Instant::now() + delay_for(t.status, &mut rng))
                });
                if Instant::now() < due {
                    continue;
                }
                work(&app, op, &t, &state, &mut rng).await;
                state.with(|s| s.timers.remove(&key));
            }
        }
        // Forget timers of tickets long gone.
        state.with(|s| {
            if s.timers.len() > 5000 {
                s.timers.clear();
            }
        });
    }
}

fn transition(to: &str, reason: Option<&str>) -> TransitionRequest {
    TransitionRequest {
        to: to.into(),
        reason: reason.map(String::from),
    }
}

/// One step of an operator's work on a ticket.
async fn work(
    app: &App,
    op: &Actor,
    t: &crate::tickets::TicketView,
    state: &Traffic,
    rng: &mut Rng,
) {
    use sportello_domain::Channel;
    match t.status {
        Status::Assigned => {
            report(
                "starting work",
                app.transition(op, t.id, transition("open", None)).await,
            );
        }
        Status::Open | Status::WaitingInternal => {
            if t.channel == Channel::Phone && t.tags.iter().any(|g| g == "callback") {
                let reached = rng.chance(75);
                report(
                    "a call-back",
                    app.record_callback_attempt(
                        op,
                        t.id,
                        CallbackAttempt {
                            reached,
                            note: Some(if reached {
                                "Richiamato: informazioni fornite".into()
                            } else {
                                "Squilla a vuoto".into()
                            }),
                            close: !reached && rng.chance(30),
                        },
                    )
                    .await,
                );
                return;
            }
            if t.channel == Channel::Email && t.first_response_at.is_none() {
                let body = "grazie per averci scritto. Abbiamo verificato la sua richiesta: può presentare la documentazione indicata sul sito del Comune oppure fissare un appuntamento allo sportello. Restiamo a disposizione per ogni chiarimento.";
                if report(
                    "an e-mail reply",
                    app.reply_by_email(
                        op,
                        t.id,
                        NewReply {
                            body: body.into(),
                            template: None,
                            subject: None,
                            attachments: Vec::new(),
                        },
                    )
                    .await,
                )
                .is_some()
                    && rng.chance(50)
                    && report(
                        "waiting for the citizen",
                        app.transition(
                            op,
                            t.id,
                            transition("waiting_citizen", Some("in attesa di documenti")),
                        )
                        .await,
                    )
                    .is_some()
                {
                    state.with(|s| s.waiting_citizen.insert(t.id, Instant::now()));
                }
                return;
            }
            report(
                "a note",
                app.add_entry(
                    op,
                    t.id,
                    NewEntry {
                        kind: "note".into(),
                        body: rng
                            .pick(&[
                                "Verificata la posizione in banca dati: requisiti presenti.",
                                "Informazioni fornite, pratica conclusa.",
                                "Controllati i documenti: completi.",
                            ])
                            .to_string(),
                    },
                )
                .await,
            );
            report(
                "resolving",
                app.transition(op, t.id, transition("resolved", None)).await,
            );
        }
        Status::WaitingCitizen => {
            // No answer came: the ticket is closed as resolved with what the citizen was told.
            state.with(|s| s.waiting_citizen.remove(&t.id));
            report(
                "resolving a silent ticket",
                app.transition(
                    op,
                    t.id,
                    transition("resolved", Some("nessuna risposta dal cittadino")),
                )
                .await,
            );
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codici_fiscali_are_valid() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..500 {
            let p = new_person(&mut rng);
            let cf = CodiceFiscale::parse(&p.cf).unwrap_or_else(|e| panic!("{}: {e}", p.cf));
            assert_eq!(
                cf.is_female(),
                WOMEN.contains(&p.first),
                "{} {}",
                p.first,
                p.cf
            );
            assert!(PhoneNumber::parse(&p.phone).is_ok(), "{}", p.phone);
            assert!(EmailAddress::parse(&p.email).is_ok(), "{}", p.email);
        }
        assert_eq!(surname_code("Rossi"), "RSS");
        assert_eq!(name_code("Mario"), "MRA");
        assert_eq!(name_code("Francesco"), "FNC");
        assert_eq!(surname_code("Fo"), "FOX");
    }

    #[test]
    fn generated_mail_parses_as_mail() {
        let mut rng = Rng(7);
        let limits = sportello_mail::parse::ParseLimits::default();
        for i in 0..20 {
            let p = new_person(&mut rng);
            let t = &TOPICS[i % TOPICS.len()];
            let raw = raw_email(
                &p,
                t.subject,
                t.body,
                &format!("m{i}@example.org"),
                None,
                &mut rng,
            );
            let m = sportello_mail::parse::parse(&raw, &limits)
                .unwrap_or_else(|e| panic!("{:?}", e.reason));
            assert_eq!(m.subject, t.subject);
            assert!(m.text.contains(&p.cf), "{}", m.text);
        }
    }

    #[test]
    fn sla_targets_become_minutes() {
        let text = minute_slas(sportello_routing::DEFAULT_ROUTING_TOML).unwrap();
        sportello_routing::RoutingConfig::from_toml(&text).unwrap();
        assert!(text.contains("business_minutes = 3"), "{text}");
        assert!(!text.contains("business_days"), "{text}");
    }
}
