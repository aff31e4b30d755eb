//! `sportello backup` as an administrator uses it: a copy taken while the server is writing
//! tickets passes SQLite's integrity check and, served with `sportello serve --database-url
//! sqlite://COPY`, holds every ticket committed before the backup began. An existing file is
//! never overwritten without `--force`, and PostgreSQL is pointed to pg_dump.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{Value, json};

const ADMIN_PASSWORD: &str = "backup-admin-password";

fn sportello() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sportello"));
    c.env_remove("SPORTELLO__DATABASE__URL")
        .env("SPORTELLO_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("RUST_LOG", "warn");
    c
}

fn scratch() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("sportello-backup-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A running `sportello serve`, stopped (SIGTERM) when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(url: &str) -> Server {
        let mut child = sportello()
            .args(["serve", "--listen", "127.0.0.1:0", "--database-url", url])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let base = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("the server prints its address");
            if let Some(a) = line.split("serving on ").nth(1) {
                break a.trim().to_owned();
            }
        };
        Server { child, base }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..200 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn login(client: &reqwest::Client, base: &str) -> String {
    let res: Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    res["token"].as_str().expect("a token").to_owned()
}

fn backup(url: &str, output: &std::path::Path, force: bool) -> Output {
    let mut c = sportello();
    c.args(["backup", "--database-url", url, "--output"])
        .arg(output);
    if force {
        c.arg("--force");
    }
    c.output().unwrap()
}

#[test]
fn a_backup_taken_while_tickets_are_written_restores_every_committed_ticket() {
    let dir = scratch();
    let url = format!("sqlite://{}/live.db?mode=rwc", dir.display());
    let copy = dir.join("copy.db");
    let server = Server::start(&url);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let token = login(&client, &server.base).await;

        // A writer creating tickets without pause for the whole test.
        let committed = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let writer = tokio::spawn({
            let (client, base, token) = (client.clone(), server.base.clone(), token.clone());
            let (committed, stop) = (committed.clone(), stop.clone());
            async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let res = client
                        .post(format!("{base}/api/v1/tickets"))
                        .bearer_auth(&token)
                        .json(&json!({"channel": "email", "subject": format!("Richiesta {n}"), "category": "eligibility",
                                      "body": "Testo della richiesta, abbastanza lungo da riempire qualche pagina del database. ".repeat(20)}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(res.status(), 201);
                    let v: Value = res.json().await.unwrap();
                    committed.lock().unwrap().push(v["id"].as_str().unwrap().to_owned());
                }
            }
        });
        // Some tickets first, then the backup while the writer goes on.
        while committed.lock().unwrap().len() < 40 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let before: Vec<String> = committed.lock().unwrap().clone();
        let (backup_url, backup_copy) = (url.clone(), copy.clone());
        let out = tokio::task::spawn_blocking(move || backup(&backup_url, &backup_copy, false))
            .await
            .unwrap();
        let during = committed.lock().unwrap().len();
        stop.store(true, Ordering::Relaxed);
        writer.await.unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "backup failed: {stdout}{stderr}");
        assert!(stdout.contains("integrity check: ok"), "{stdout}");
        assert!(
            during > before.len(),
            "the writer kept writing during the backup ({} → {during})",
            before.len()
        );

        // The copy passes SQLite's own check, opened independently of Sportello.
        let db = Database::connect(format!("sqlite://{}?mode=ro", copy.display()))
            .await
            .unwrap();
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "PRAGMA integrity_check",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.try_get_by_index::<String>(0).unwrap(), "ok");
        db.close().await.unwrap();

        // Restored by serving the copy: every ticket committed before the backup is there.
        let restored = Server::start(&format!("sqlite://{}", copy.display()));
        let token = login(&client, &restored.base).await;
        for id in &before {
            let res = client
                .get(format!("{}/api/v1/tickets/{id}", restored.base))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "ticket {id} committed before the backup is missing");
        }
        let count: Value = client
            .get(format!("{}/api/v1/tickets/count", restored.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let count = count["count"].as_u64().unwrap() as usize;
        assert!(
            // One request may have been in flight when the copy finished.
            count >= before.len() && count <= during + 1,
            "the copy holds {count} tickets: at least the {} committed before and at most the {during} committed by its end",
            before.len()
        );
        drop(restored);
    });
    drop(server);

    // An existing file is not replaced without --force.
    let size = std::fs::metadata(&copy).unwrap().len();
    let out = backup(&url, &copy, false);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::metadata(&copy).unwrap().len(), size);
    let out = backup(&url, &copy, true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No partial file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn postgresql_is_pointed_to_pg_dump() {
    let dir = scratch();
    let out = backup(
        "postgres://sportello:secret@127.0.0.1:1/welfare",
        &dir.join("x.dump"),
        false,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pg_dump") && err.contains("docs/ADMIN.md"),
        "{err}"
    );
    assert!(!err.contains("secret"), "password leaked: {err}");
    assert!(!dir.join("x.dump").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
