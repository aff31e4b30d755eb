//! The operator console over plain HTTP, as a browser would use it (forms, cookies, redirects):
//! sign-in and its cookie, signed-out and expired visitors sent to the sign-in page, CSRF and
//! origin checks on every form, tier access, the language switch, the security headers, and
//! the forms doing what they say. SQLite always; PostgreSQL when switched on.

mod common;
mod mailharness;

use common::TestApp;
use mailharness::{MailApp, header};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

/// A browser without JavaScript: keeps the session and language cookies, never follows
/// redirects on its own.
struct Browser {
    base: String,
    client: reqwest::Client,
    cookies: Vec<(String, String)>,
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> String {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    }

    fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect()
    }

    fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookies()
            .into_iter()
            .find(|c| c.starts_with(&format!("{name}=")))
    }

    /// The CSRF token of the first form on the page.
    fn csrf(&self) -> String {
        hidden(&self.body, "csrf").expect("a form with a csrf field")
    }
}

/// The value of the first hidden input with this name.
fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_owned())
}

impl Browser {
    fn new(t: &TestApp) -> Browser {
        Browser {
            base: t.base.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: Vec::new(),
        }
    }

    fn origin(&self) -> String {
        self.base.clone()
    }

    fn remember(&mut self, page: &Page) {
        for c in page.set_cookies() {
            let pair = c.split(';').next().unwrap_or("");
            if let Some((k, v)) = pair.split_once('=') {
                self.cookies.retain(|(name, _)| name != k);
                let expired = c.contains("Max-Age=0");
                if !expired {
                    self.cookies.push((k.to_owned(), v.to_owned()));
                }
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn session(&self) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(k, _)| k == "sportello_session")
            .map(|(_, v)| v.as_str())
    }

    async fn get(&mut self, path: &str) -> Page {
        let res = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .expect("GET");
        let page = Page {
            status: res.status(),
            headers: res.headers().clone(),
            body: res.text().await.unwrap(),
        };
        self.remember(&page);
        page
    }

    /// Posts a form as a browser does: with the cookies and our own Origin, unless `origin`
    /// says otherwise (`Some("")` sends none).
    async fn post_from(&mut self, path: &str, form: &[(&str, &str)], origin: Option<&str>) -> Page {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .form(form);
        match origin {
            None => req = req.header("origin", self.origin()),
            Some("") => {}
            Some(o) => req = req.header("origin", o),
        }
        let res = req.send().await.expect("POST");
        let page = Page {
            status: res.status(),
            headers: res.headers().clone(),
            body: res.text().await.unwrap(),
        };
        self.remember(&page);
        page
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.post_from(path, form, None).await
    }

    /// Signs in through the form; returns the response to the form.
    async fn sign_in(&mut self, username: &str, password: &str) -> Page {
        let form = self.get("/login").await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.body);
        let csrf = form.csrf();
        self.post(
            "/login",
            &[
                ("username", username),
                ("password", password),
                ("csrf", &csrf),
            ],
        )
        .await
    }

    /// The CSRF token of a signed-in page.
    async fn csrf(&mut self) -> String {
        let page = self.get("/").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        page.csrf()
    }
}

async fn operator(t: &TestApp, username: &str, roles: &[&str]) -> (String, String, Browser) {
    let (id, token) = t.user(username, roles).await;
    let mut b = Browser::new(t);
    let res = b.sign_in(username, &format!("{username}-password")).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    (id, token, b)
}

async fn ticket_for(t: &TestApp, tier: &str, cf: &str) -> Value {
    t.ticket(
        &t.admin_token,
        json!({
            "channel": "email", "subject": "Assegno di inclusione: requisiti", "tier": tier,
            "category": "eligibility", "body": "Vorrei sapere se posso fare domanda.",
            "citizen": { "name": "Maria Rossi", "codice_fiscale": cf, "emails": ["maria.rossi@example.it"] }
        }),
    )
    .await
}

async fn timeline_kinds(t: &TestApp, id: &str) -> Vec<(String, String)> {
    let (status, v) = t
        .get(&format!("/api/v1/tickets/{id}"), &t.admin_token)
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["body"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

on_both_backends!(
    signed_out_visitors_land_on_the_sign_in_form,
    signing_in_sets_a_strict_http_only_session_cookie,
    every_form_needs_the_csrf_token_of_its_session_and_our_origin,
    an_operator_cannot_open_a_ticket_of_another_tier,
    the_language_switch_is_remembered,
    an_ended_session_goes_back_to_sign_in_with_a_message,
    console_pages_carry_a_strict_content_security_policy,
    the_forms_work_a_ticket_from_start_to_finish,
    citizens_and_the_counter_desk,
);

on_both_backends_mail!(the_reply_form_sends_the_subject_the_operator_chose);

async fn signed_out_visitors_land_on_the_sign_in_form(t: TestApp) {
    let mut b = Browser::new(&t);
    let home = b.get("/").await;
    assert_eq!(home.status, StatusCode::SEE_OTHER);
    assert_eq!(home.location(), "/login");
    let deep = b.get("/tickets/0190f0f0-0000-7000-8000-000000000000").await;
    assert_eq!(deep.status, StatusCode::SEE_OTHER);
    assert_eq!(
        deep.location(),
        "/login?next=/tickets/0190f0f0-0000-7000-8000-000000000000",
        "the sign-in remembers where the operator was going"
    );
    let login = b.get("/login").await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(
        login.body.contains("<html lang=\"it\">"),
        "Italian by default"
    );
    assert!(login.body.contains("Accesso alla console"));
    for (name, id) in [("username", "username"), ("password", "password")] {
        assert!(
            login.body.contains(&format!("id=\"{id}\" name=\"{name}\"")),
            "an input named {name}"
        );
        assert!(
            login.body.contains(&format!("<label for=\"{id}\">")),
            "{name} has a label"
        );
    }
}

async fn signing_in_sets_a_strict_http_only_session_cookie(t: TestApp) {
    t.user("lbassi", &["front_office"]).await;
    let mut b = Browser::new(&t);

    // Wrong password: the form again, with the reason, and no session.
    let form = b.get("/login").await;
    let csrf = form.csrf();
    let wrong = b
        .post(
            "/login",
            &[
                ("username", "lbassi"),
                ("password", "nope-nope-nope"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("Nome utente o password errati"));
    assert!(wrong.cookie("sportello_session").is_none());

    // A sign-in form not loaded by this browser (no nonce cookie, or no token) is refused.
    let mut stranger = Browser::new(&t);
    let refused = stranger
        .post(
            "/login",
            &[
                ("username", "lbassi"),
                ("password", "lbassi-password"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let refused = b
        .post(
            "/login",
            &[("username", "lbassi"), ("password", "lbassi-password")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(b.session().is_none());

    let res = b.sign_in("lbassi", "lbassi-password").await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.location(), "/", "signing in lands on the work list");
    let cookie = res.cookie("sportello_session").expect("session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP by default: {cookie}"
    );
    let home = b.get("/").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("Il mio lavoro"));
    assert!(
        home.body.contains("Operatore lbassi"),
        "the operator's name shows"
    );

    // Behind TLS (`server.secure_cookies`), the cookie is Secure too.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = sportello_server::ServerConfig {
        secure_cookies: true,
        ..Default::default()
    };
    let router = sportello_server::router(t.app.clone(), config);
    tokio::spawn(
        async move { sportello_server::serve(listener, router, std::future::pending()).await },
    );
    let mut secure = Browser {
        base,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        cookies: Vec::new(),
    };
    let res = secure.sign_in("lbassi", "lbassi-password").await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let cookie = res.cookie("sportello_session").unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
}

async fn every_form_needs_the_csrf_token_of_its_session_and_our_origin(t: TestApp) {
    let (_, _, mut b) = operator(&t, "lbassi", &["front_office"]).await;
    let (_, _, mut other) = operator(&t, "gverdi", &["front_office"]).await;
    let ticket = ticket_for(&t, "front_office", "RSSMRA85T10A562S").await;
    let id = ticket["id"].as_str().unwrap();
    let path = format!("/tickets/{id}/note");
    let csrf = b.csrf().await;
    let foreign = other.csrf().await;
    assert_ne!(csrf, foreign, "each session has its own token");

    let missing = b.post(&path, &[("body", "senza token")]).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    assert!(
        missing.body.contains("ricarica la pagina"),
        "{}",
        missing.body
    );
    let wrong = b
        .post(
            &path,
            &[
                ("body", "token sbagliato"),
                ("csrf", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let borrowed = b
        .post(
            &path,
            &[("body", "token di un'altra sessione"), ("csrf", &foreign)],
        )
        .await;
    assert_eq!(borrowed.status, StatusCode::FORBIDDEN);
    // Another site posting with the operator's cookie and even a valid token is refused.
    let cross = b
        .post_from(
            &path,
            &[("body", "da un altro sito"), ("csrf", &csrf)],
            Some("http://evil.example"),
        )
        .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    assert!(cross.body.contains("altro sito"));
    // The same through the JSON API with the cookie: refused too.
    let api = reqwest::Client::new()
        .post(t.url(&format!("/api/v1/tickets/{id}/entries")))
        .header("cookie", b.cookie_header())
        .header("origin", "http://evil.example")
        .json(&json!({ "kind": "note", "body": "via API da un altro sito" }))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::FORBIDDEN);
    // Sign-out is a form like the others.
    let logout = b.post("/logout", &[]).await;
    assert_eq!(logout.status, StatusCode::FORBIDDEN);
    assert_eq!(b.get("/").await.status, StatusCode::OK, "still signed in");

    assert!(
        timeline_kinds(&t, id)
            .await
            .iter()
            .all(|(k, _)| k != "note"),
        "no refused request left a note"
    );

    // With its own token, from its own page, the form works.
    let ok = b
        .post(&path, &[("body", "nota valida"), ("csrf", &csrf)])
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    assert_eq!(ok.location(), format!("/tickets/{id}?done=note"));
    assert!(
        timeline_kinds(&t, id)
            .await
            .contains(&("note".to_owned(), "nota valida".to_owned()))
    );
    // A script sends the token as a header instead.
    let by_header = b
        .client
        .post(format!("{}{path}", b.base))
        .header("cookie", b.cookie_header())
        .header("origin", b.origin())
        .header("x-csrf-token", &csrf)
        .form(&[("body", "nota da script")])
        .send()
        .await
        .unwrap();
    assert_eq!(by_header.status(), StatusCode::SEE_OTHER);
}

async fn an_operator_cannot_open_a_ticket_of_another_tier(t: TestApp) {
    let (_, _, mut front) = operator(&t, "lbassi", &["front_office"]).await;
    let (_, _, mut back) = operator(&t, "mneri", &["back_office"]).await;
    let ticket = ticket_for(&t, "back_office", "RSSMRA85T10A562S").await;
    let id = ticket["id"].as_str().unwrap();

    let page = front.get(&format!("/tickets/{id}")).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("Accesso negato"), "{}", page.body);
    assert!(
        !page.body.contains("Assegno di inclusione"),
        "nothing of the ticket shows"
    );
    let csrf = front.csrf().await;
    let note = front
        .post(
            &format!("/tickets/{id}/note"),
            &[("body", "x"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(note.status, StatusCode::FORBIDDEN);

    let nonsense = front.get("/tickets/not-a-ticket").await;
    assert_eq!(nonsense.status, StatusCode::NOT_FOUND);
    assert!(
        nonsense.body.contains("<html lang=\"it\">"),
        "a page, not a problem document"
    );

    let ok = back.get(&format!("/tickets/{id}")).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert!(ok.body.contains("Assegno di inclusione: requisiti"));
}

async fn the_language_switch_is_remembered(t: TestApp) {
    let mut b = Browser::new(&t);
    let en = b.get("/login?lang=en").await;
    assert!(en.body.contains("<html lang=\"en\">"));
    assert!(en.body.contains("Sign in to the console"));
    let c = en.cookie("sportello_lang").expect("language cookie");
    assert!(
        c.starts_with("sportello_lang=en") && !c.contains("Max-Age"),
        "a session cookie: {c}"
    );
    let again = b.get("/login").await;
    assert!(again.body.contains("<html lang=\"en\">"), "remembered");

    t.user("lbassi", &["front_office"]).await;
    let res = b.sign_in("lbassi", "lbassi-password").await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    let home = b.get("/").await;
    assert!(home.body.contains("<html lang=\"en\">"));
    assert!(home.body.contains("My work"));
    let citizens = b.get("/citizens").await;
    assert!(citizens.body.contains("Citizens"));
    let it = b.get("/citizens?lang=it").await;
    assert!(it.body.contains("<html lang=\"it\">"));
    assert!(
        b.get("/").await.body.contains("Il mio lavoro"),
        "Italian again"
    );
}

async fn an_ended_session_goes_back_to_sign_in_with_a_message(t: TestApp) {
    let (_, _, mut b) = operator(&t, "lbassi", &["front_office"]).await;
    let token = b.session().unwrap().to_owned();
    assert_eq!(b.get("/").await.status, StatusCode::OK);
    // The token stops working (expired, or ended elsewhere).
    t.app.logout(&token).await.unwrap();
    let page = b.get("/citizens").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/login?expired=1&next=/citizens");
    let cleared = page.cookie("sportello_session").unwrap();
    assert!(
        cleared.contains("Max-Age=0"),
        "the stale cookie is cleared: {cleared}"
    );
    let login = b.get(&page.location()).await;
    assert!(
        login.body.contains("La sessione è scaduta"),
        "{}",
        login.body
    );
    assert_eq!(hidden(&login.body, "next").as_deref(), Some("/citizens"));
    let csrf = login.csrf();
    let back = b
        .post(
            "/login",
            &[
                ("username", "lbassi"),
                ("password", "lbassi-password"),
                ("csrf", &csrf),
                ("next", "/citizens"),
            ],
        )
        .await;
    assert_eq!(back.status, StatusCode::SEE_OTHER);
    assert_eq!(back.location(), "/citizens", "back where the operator was");

    // Signing out ends the session on the server too.
    let csrf = b.csrf().await;
    let token = b.session().unwrap().to_owned();
    let out = b.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location(), "/login?out=1");
    assert!(t.app.authenticate(&token).await.is_err());
    assert_eq!(b.get("/").await.location(), "/login");
}

async fn console_pages_carry_a_strict_content_security_policy(t: TestApp) {
    let (_, _, mut b) = operator(&t, "lbassi", &["front_office"]).await;
    for path in ["/login", "/", "/citizens", "/counter", "/knowledge"] {
        let page = b.get(path).await;
        let h = |n: &str| {
            page.headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let csp = h("content-security-policy");
        for part in [
            "default-src 'self'",
            "script-src 'self'",
            "img-src 'self' data:",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ] {
            assert!(csp.contains(part), "{path}: {part} in {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(h("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(h("referrer-policy"), "same-origin", "{path}");
        assert_eq!(
            h("cache-control"),
            "no-store",
            "{path}: personal data is not cached"
        );
        // No inline scripts or handlers for the policy to have to allow.
        assert!(!page.body.contains("<script>"), "{path}");
        assert!(!page.body.contains(" onclick="), "{path}");
    }
}

async fn the_forms_work_a_ticket_from_start_to_finish(t: TestApp) {
    let (me, _, mut b) = operator(&t, "lbassi", &["front_office"]).await;
    let ticket = ticket_for(&t, "front_office", "RSSMRA85T10A562S").await;
    let id = ticket["id"].as_str().unwrap().to_owned();
    let number = ticket["number"].as_str().unwrap().to_owned();
    let csrf = b.csrf().await;

    // Presence, then the queue: the ticket waits; the operator takes it.
    let p = b
        .post("/presence", &[("state", "break"), ("csrf", &csrf)])
        .await;
    assert_eq!(p.location(), "/?done=presence");
    let home = b.get(&p.location()).await;
    assert!(home.body.contains("Stato di presenza aggiornato"));
    assert!(
        home.body.contains("id=\"presence-now\">In pausa<"),
        "{}",
        home.body
    );
    assert!(
        home.body.contains(&number),
        "the waiting ticket is in the queue"
    );
    let take = b
        .post(&format!("/queue/{id}/take"), &[("csrf", &csrf)])
        .await;
    assert_eq!(
        take.location(),
        format!("/tickets/{id}?done=taken"),
        "{}",
        take.body
    );
    let (status, mine) = t.get("/api/v1/me/work", b.session().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    assert_eq!(mine["items"][0]["id"], id.as_str());
    assert_eq!(mine["items"][0]["assignee_id"], me.as_str());
    let live = b.get("/work/live").await;
    assert!(
        live.body.contains("id=\"my-work\""),
        "the live fragment lists my work"
    );
    assert!(!live.body.contains("<html"), "a fragment, not a page");

    // The ticket page: timeline, citizen beside it, every form with a label.
    let page = b.get(&format!("/tickets/{id}?done=taken")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Richiesta presa in carico"));
    assert!(page.body.contains("Vorrei sapere se posso fare domanda."));
    assert!(page.body.contains("RSSMRA85T10A562S"), "the citizen's card");
    assert!(page.body.contains("name=\"body\""));
    assert!(page.body.contains("id=\"template\" name=\"template\""));
    for control in [
        "reply-subject",
        "reply-body",
        "template",
        "reply-lang",
        "note-body",
        "status-to",
        "escalate-reason",
        "call-direction",
    ] {
        assert!(
            page.body.contains(&format!("<label for=\"{control}\">")),
            "{control} is labelled"
        );
    }

    // A prepared answer chosen without scripts (`?answer=`) starts the reply, filled in.
    let (_, answers) = t
        .get("/api/v1/answers?lang=it&measure=none", b.session().unwrap())
        .await;
    let answer = answers["items"][0]["id"]
        .as_str()
        .expect("seeded answers")
        .to_owned();
    let (_, rendered) = t
        .post(
            &format!("/api/v1/answers/{answer}/render"),
            &t.admin_token,
            json!({ "ticket_id": id }),
        )
        .await;
    let first = rendered["reply_body"]
        .as_str()
        .unwrap()
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_else(|| panic!("a line of the answer: {rendered}"))
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    let with_answer = b.get(&format!("/tickets/{id}?answer={answer}")).await;
    let textarea = with_answer
        .body
        .split("id=\"reply-body\"")
        .nth(1)
        .and_then(|rest| rest.split("</textarea>").next())
        .unwrap();
    assert!(textarea.contains(&first), "{first:?} in {textarea}");
    let answer_subject = rendered["subject"]
        .as_str()
        .unwrap()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    assert!(
        with_answer.body.contains(&format!(
            "id=\"reply-subject\" name=\"subject\" type=\"text\" maxlength=\"200\" value=\"{answer_subject}\""
        )),
        "the prepared answer's subject {answer_subject:?} starts the reply's"
    );
    assert!(
        with_answer
            .body
            .contains(&format!("<option value=\"{answer}\" lang=\"it\" selected>"))
    );

    // Status, classification, a call, then escalation.
    let s = b
        .post(
            &format!("/tickets/{id}/status"),
            &[("to", "open"), ("reason", ""), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(
        s.location(),
        format!("/tickets/{id}?done=status"),
        "{}",
        s.body
    );
    let bad = b
        .post(
            &format!("/tickets/{id}/status"),
            &[("to", "closed"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(
        bad.status,
        StatusCode::CONFLICT,
        "open → closed is not allowed"
    );
    assert!(bad.body.contains("Operazione non possibile"));
    let c = b
        .post(
            &format!("/tickets/{id}/classification"),
            &[
                ("category", "how_to_apply"),
                ("measure", ""),
                ("priority", "high"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(
        c.location(),
        format!("/tickets/{id}?done=classification"),
        "{}",
        c.body
    );
    let call = b
        .post(
            &format!("/tickets/{id}/call"),
            &[
                ("direction", "outbound"),
                ("reached", "1"),
                ("note", "spiegati i requisiti"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(
        call.location(),
        format!("/tickets/{id}?done=call"),
        "{}",
        call.body
    );
    let (_, v) = t
        .get(&format!("/api/v1/tickets/{id}"), &t.admin_token)
        .await;
    assert_eq!(v["category"], "how_to_apply");
    assert_eq!(v["priority"], "high");
    assert!(
        v["first_response_at"].is_string(),
        "reaching the citizen is a response"
    );
    let kinds = timeline_kinds(&t, &id).await;
    assert!(
        kinds
            .iter()
            .any(|(k, b)| k == "call" && b.contains("spiegati i requisiti"))
    );
    assert!(
        kinds
            .iter()
            .any(|(k, b)| k == "system" && b.contains("categoria: eligibility → how_to_apply"))
    );

    let empty = b
        .post(
            &format!("/tickets/{id}/escalate"),
            &[("tier", "back_office"), ("reason", " "), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(
        empty.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a reason is required"
    );
    let esc = b
        .post(
            &format!("/tickets/{id}/escalate"),
            &[
                ("tier", "back_office"),
                ("reason", "serve verifica ISEE"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(
        esc.location(),
        "/?done=escalated",
        "the front office no longer sees it"
    );
    let (_, v) = t
        .get(&format!("/api/v1/tickets/{id}"), &t.admin_token)
        .await;
    assert_eq!(v["tier"], "back_office");
    assert_eq!(
        b.get(&format!("/tickets/{id}")).await.status,
        StatusCode::FORBIDDEN
    );
}

async fn citizens_and_the_counter_desk(t: TestApp) {
    let (_, token, mut b) = operator(&t, "sportello1", &["counter"]).await;
    let ticket = ticket_for(&t, "front_office", "RSSMRA85T10A562S").await;
    let citizen = ticket["citizen_id"].as_str().unwrap().to_owned();

    // Search by codice fiscale (any case), then the citizen's page.
    let found = b.get("/citizens?q=rssmra85t10a562s").await;
    assert_eq!(found.status, StatusCode::OK);
    assert!(
        found
            .body
            .contains(&format!("href=\"/citizens/{citizen}\"")),
        "{}",
        found.body
    );
    let short = b.get("/citizens?q=r").await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    let page = b.get(&format!("/citizens/{citizen}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Maria Rossi"));
    assert!(page.body.contains(ticket["number"].as_str().unwrap()));

    // Today's appointment: a session over the whole day (so a slot is still ahead whenever the
    // test runs), a booking, then check-in at the desk.
    let Some(booking) = t.book_today(&token, &citizen).await else {
        eprintln!("today is a holiday: counter sessions cannot open, the desk part is skipped");
        return;
    };
    let bid = booking["id"].as_str().unwrap();

    let desk = b.get("/counter?desk=2").await;
    assert_eq!(desk.status, StatusCode::OK);
    assert!(
        desk.body.contains("Maria Rossi"),
        "today's list names the visitor"
    );
    let csrf = desk.csrf();
    let checked = b
        .post(
            &format!("/counter/bookings/{bid}/check-in"),
            &[("desk", "2"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(
        checked.location(),
        "/counter?desk=2&done=checked_in",
        "{}",
        checked.body
    );
    let again = b
        .post(
            &format!("/counter/bookings/{bid}/check-in"),
            &[("desk", "2"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "checked in once");
    let called = b
        .post("/counter/call-next", &[("desk", "2"), ("csrf", &csrf)])
        .await;
    assert_eq!(called.location(), "/counter?desk=2&done=called");
    let visit = b
        .post(
            &format!("/counter/bookings/{bid}/visit"),
            &[
                ("desk", "2"),
                ("outcome", "informazioni fornite"),
                ("documents", "ISEE\ndocumento d'identità"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(
        visit.location(),
        "/counter?desk=2&done=visit",
        "{}",
        visit.body
    );
    let (_, v) = t
        .get(&format!("/api/v1/counter/bookings/{bid}"), &token)
        .await;
    assert_eq!(v["state"], "visited");
    let nobody = b
        .post("/counter/call-next", &[("desk", "2"), ("csrf", &csrf)])
        .await;
    assert_eq!(nobody.location(), "/counter?desk=2&done=nobody");
    let (status, apps) = t
        .get(&format!("/api/v1/citizens/{citizen}/appointments"), &token)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(apps["items"][0]["state"], "visited");
}

async fn the_reply_form_sends_the_subject_the_operator_chose(t: MailApp) {
    let (_, _, mut b) = operator(&t, "fo7", &["front_office"]).await;
    let ticket = ticket_for(&t, "front_office", "RSSMRA85T10A562S").await;
    let id = ticket["id"].as_str().unwrap().to_owned();
    let number = ticket["number"].as_str().unwrap().to_owned();
    let csrf = b.csrf().await;

    // The form starts from the subject the reply would get anyway.
    let page = b.get(&format!("/tickets/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains("<label for=\"reply-subject\">Oggetto</label>")
    );
    assert!(
        page.body.contains(&format!(
            "name=\"subject\" type=\"text\" maxlength=\"200\" value=\"Re: [{number}] Assegno di inclusione: requisiti\""
        )),
        "the default subject is prefilled"
    );

    // A subject that would add a header line: refused, the operator's text kept.
    let bad = b
        .post(
            &format!("/tickets/{id}/reply"),
            &[
                ("subject", "Esito\r\nBcc: altri@example.it"),
                ("body", "La domanda è accolta."),
                ("language", "it"),
                ("template", ""),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    assert!(
        bad.body.contains("subject: must be a single line"),
        "{}",
        bad.body
    );
    assert!(bad.body.contains("La domanda è accolta."));

    // The operator's own subject goes out, behind the ticket tag.
    let ok = b
        .post(
            &format!("/tickets/{id}/reply"),
            &[
                ("subject", "Esito della domanda"),
                ("body", "La domanda è accolta."),
                ("language", "it"),
                ("template", ""),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(
        ok.location(),
        format!("/tickets/{id}?done=reply"),
        "{}",
        ok.body
    );
    let rows = t.app.outbox_rows(id.parse().unwrap()).await.unwrap();
    let row = rows
        .iter()
        .find(|r| r.kind == "reply")
        .expect("the reply is queued");
    assert_eq!(
        header(&row.raw, "Subject"),
        Some(format!("[{number}] Esito della domanda"))
    );
}
