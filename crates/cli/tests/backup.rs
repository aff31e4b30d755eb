//! `sportello backup` as an administrator uses it: a copy taken while the server is writing
//! tickets passes SQLite's integrity check and, served with `sportello serve --database-url
//! sqlite://COPY`, holds every ticket committed before the backup began. An existing file is
//! never overwritten without `--force`, and PostgreSQL is pointed to pg_dump.

mod common;

use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Scratch, Server, serve, sportello};
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::json;

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
    let s = Scratch::new("backup");
    let url = s.url.clone();
    let copy = s.dir.join("copy.db");
    let server = Server::start(&mut serve(&url));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let admin = server.admin().await;

        // A writer creating tickets without pause for the whole test.
        let committed = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let writer = tokio::spawn({
            let (admin, committed, stop) = (admin.clone(), committed.clone(), stop.clone());
            async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let v = admin
                        .create("/api/v1/tickets", json!({"channel": "email", "subject": format!("Richiesta {n}"), "category": "eligibility",
                                      "body": "Testo della richiesta, abbastanza lungo da riempire qualche pagina del database. ".repeat(20)}))
                        .await;
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
        let restored = Server::start(&mut serve(&format!("sqlite://{}", copy.display())));
        let admin = restored.admin().await;
        for id in &before {
            let res = admin
                .request(reqwest::Method::GET, &format!("/api/v1/tickets/{id}"))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "ticket {id} committed before the backup is missing");
        }
        let count = admin.count("/api/v1/tickets/count").await as usize;
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
    let leftovers: Vec<_> = std::fs::read_dir(&s.dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn postgresql_is_pointed_to_pg_dump() {
    let s = Scratch::new("backup");
    let out = backup(
        "postgres://sportello:secret@127.0.0.1:1/welfare",
        &s.dir.join("x.dump"),
        false,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pg_dump") && err.contains("docs/ADMIN.md"),
        "{err}"
    );
    assert!(!err.contains("secret"), "password leaked: {err}");
    assert!(!s.dir.join("x.dump").exists());
}
