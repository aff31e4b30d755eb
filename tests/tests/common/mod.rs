//! Test harness: the real server on a loopback port over a scratch database, SQLite always and
//! PostgreSQL when `SPORTELLO_TEST_PG_URL` is set (then an unreachable server fails the test).

#![allow(dead_code)]

pub mod browser;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sportello_service::{App, ServiceConfig};
use sportello_store::sea_orm::{ConnectionTrait, Statement};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const ADMIN_PASSWORD: &str = "admin-password-1";

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL URL the suite may create scratch databases on, when switched on.
pub fn pg_url() -> Option<String> {
    std::env::var("SPORTELLO_TEST_PG_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

/// Runs a test body on SQLite and, when switched on, on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::common::TestApp::spawn($crate::common::Backend::Sqlite).await).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if $crate::common::pg_url().is_none() {
                        eprintln!("SPORTELLO_TEST_PG_URL not set: PostgreSQL variant switched off");
                        return;
                    }
                    super::$name($crate::common::TestApp::spawn($crate::common::Backend::Postgres).await).await
                }
            }
        )+
    };
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub app: App,
    pub admin_token: String,
    pub database_url: String,
    stop: CancellationToken,
    cleanup: Option<Cleanup>,
}

pub enum Cleanup {
    Dir(std::path::PathBuf),
    PgDatabase { admin_url: String, name: String },
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
        match self.cleanup.take() {
            Some(Cleanup::Dir(d)) => {
                let _ = std::fs::remove_dir_all(d);
            }
            Some(Cleanup::PgDatabase { admin_url, name }) => {
                // Best effort, on a thread of its own: Drop cannot await.
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .ok()?;
                    rt.block_on(async {
                        let opts = sportello_store::DbOptions {
                            migrate: false,
                            ..Default::default()
                        };
                        let db = sportello_store::connect(&admin_url, &opts).await.ok()?;
                        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                        db.write
                            .execute_raw(Statement::from_string(db.backend(), sql))
                            .await
                            .ok()?;
                        Some(())
                    })
                })
                .join();
            }
            None => {}
        }
    }
}

/// A scratch database URL (a temporary SQLite file, or a fresh PostgreSQL database) and what
/// removes it.
pub async fn scratch_database(backend: Backend) -> (String, Cleanup) {
    match backend {
        Backend::Sqlite => {
            let dir = std::env::temp_dir().join(format!("sportello-test-{}", Uuid::now_v7()));
            std::fs::create_dir_all(&dir).unwrap();
            (
                format!("sqlite://{}/t.db?mode=rwc", dir.display()),
                Cleanup::Dir(dir),
            )
        }
        Backend::Postgres => {
            let (url, admin_url, name) = fresh_pg_database().await;
            (url, Cleanup::PgDatabase { admin_url, name })
        }
    }
}

/// Creates an empty database on the configured PostgreSQL and returns its URL.
pub async fn fresh_pg_database() -> (String, String, String) {
    let admin_url = pg_url().expect("SPORTELLO_TEST_PG_URL");
    let opts = sportello_store::DbOptions {
        migrate: false,
        ..Default::default()
    };
    let db = sportello_store::connect(&admin_url, &opts)
        .await
        .unwrap_or_else(|e| {
            panic!("SPORTELLO_TEST_PG_URL is set but PostgreSQL is unreachable: {e}")
        });
    let name = format!("sportello_t_{}", Uuid::now_v7().simple());
    db.write
        .execute_raw(Statement::from_string(
            db.backend(),
            format!("CREATE DATABASE \"{name}\""),
        ))
        .await
        .expect("create scratch database");
    db.close().await;
    let (prefix, _) = admin_url
        .rsplit_once('/')
        .expect("database URL with a path");
    (format!("{prefix}/{name}"), admin_url, name)
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        let (url, cleanup) = scratch_database(backend).await;
        Self::spawn_on(&url, Some(cleanup)).await
    }

    /// Runs another instance on an existing database (for multi-instance tests).
    pub async fn spawn_on(url: &str, cleanup: Option<Cleanup>) -> TestApp {
        Self::spawn_with(url, cleanup, ServiceConfig::default(), true).await
    }

    /// An instance with its own service configuration; `background` starts the router and the
    /// cross-instance event relay as `sportello serve` does (suites of a single channel may
    /// leave them off to observe the channel alone).
    pub async fn spawn_with(
        url: &str,
        cleanup: Option<Cleanup>,
        config: ServiceConfig,
        background: bool,
    ) -> TestApp {
        let db = sportello_store::connect(url, &Default::default())
            .await
            .expect("connect");
        let app = App::new(db, config).await.expect("app");
        app.bootstrap_admin(Some(ADMIN_PASSWORD.into()))
            .await
            .expect("bootstrap admin");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        if background {
            let router_app = app.clone();
            let router_stop = stop.clone();
            tokio::spawn(async move {
                router_app
                    .run_router(router_stop, std::time::Duration::from_millis(200))
                    .await
            });
            // Dashboard events to and from other instances on the same PostgreSQL database.
            app.start_event_relay(stop.clone());
        }
        let router = sportello_server::router(app.clone(), Default::default());
        let s = stop.clone();
        tokio::spawn(async move {
            sportello_server::serve(listener, router, async move { s.cancelled().await }).await
        });
        let client = reqwest::Client::new();
        let mut t = TestApp {
            base,
            client,
            app,
            admin_token: String::new(),
            database_url: url.to_owned(),
            stop,
            cleanup,
        };
        t.admin_token = t.login("admin", ADMIN_PASSWORD).await;
        t
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn login(&self, username: &str, password: &str) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": username, "password": password})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "login {username}: {body}");
        body["token"].as_str().unwrap().to_owned()
    }

    /// Sends a request and returns the status and the JSON body (Null when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let ctype = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = res.text().await.unwrap();
        if status.is_client_error() || status.is_server_error() {
            assert_eq!(
                ctype, "application/problem+json",
                "{status} {path}: errors must be problem+json: {text}"
            );
        }
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, v)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// Creates a user with the given roles and returns (id, token).
    pub async fn user(&self, username: &str, roles: &[&str]) -> (String, String) {
        let pw = format!("{username}-password");
        let (status, body) = self
            .post("/api/v1/users", &self.admin_token, json!({"username": username, "password": pw, "name": format!("Operatore {username}"), "roles": roles}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (
            body["id"].as_str().unwrap().to_owned(),
            self.login(username, &pw).await,
        )
    }

    /// Creates a user with the given roles and routing profile, available for work; returns
    /// (id, token).
    pub async fn available_operator(
        &self,
        username: &str,
        roles: &[&str],
        profile: Value,
    ) -> (String, String) {
        let (id, token) = self.user(username, roles).await;
        let (status, body) = self
            .call(
                Method::PUT,
                &format!("/api/v1/users/{id}/routing"),
                Some(&self.admin_token),
                Some(profile),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = self
            .call(
                Method::PUT,
                &format!("/api/v1/users/{id}/presence"),
                Some(&token),
                Some(json!({"state": "available"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (id, token)
    }

    /// Today's counter appointment for a citizen, booked with `token` in a session opened over
    /// the whole day (so a slot is still ahead whenever the test runs); `None` on a holiday,
    /// when no session can open. Returns the booking.
    pub async fn book_today(&self, token: &str, citizen_id: &str) -> Option<Value> {
        let cal =
            sportello_domain::calendar::BusinessCalendar::from_config(&Default::default()).unwrap();
        let today = cal.local_date(chrono::Utc::now());
        if cal.is_holiday(today).is_some() {
            return None;
        }
        let (status, session) = self
            .post(
                "/api/v1/counter/sessions",
                &self.admin_token,
                json!({ "date": today.to_string(), "start": "00:00", "end": "23:55", "desks": 2, "slot_minutes": 5 }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{session}");
        let (_, slots) = self
            .get(&format!("/api/v1/counter/slots?date={today}"), token)
            .await;
        let ahead = chrono::Utc::now() + chrono::Duration::minutes(2);
        let slot = slots["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| {
                s["end"]
                    .as_str()
                    .unwrap()
                    .parse::<chrono::DateTime<chrono::Utc>>()
                    .unwrap()
                    > ahead
            })
            .expect("a slot still ahead today")["id"]
            .clone();
        let (status, booking) = self
            .post(
                "/api/v1/counter/bookings",
                token,
                json!({ "slot_id": slot, "citizen_id": citizen_id }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{booking}");
        Some(booking)
    }

    pub async fn ticket(&self, token: &str, body: Value) -> Value {
        let (status, t) = self.post("/api/v1/tickets", token, body).await;
        assert_eq!(status, StatusCode::CREATED, "{t}");
        t
    }
}
