//! The `sportello` binary as an administrator meets it: first start, sign-in, graceful stop,
//! and a clear, fast failure when the database cannot be reached.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn sportello() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sportello"));
    c.env_remove("SPORTELLO_ADMIN_PASSWORD")
        .env_remove("SPORTELLO__DATABASE__URL")
        .env("RUST_LOG", "warn");
    c
}

fn scratch() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "sportello-cli-{}-{}",
        std::process::id(),
        uuid::Uuid::now_v7()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn unreachable_database_fails_within_ten_seconds_naming_it() {
    let started = Instant::now();
    let out = sportello()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            "postgres://sportello:secret@127.0.0.1:1/welfare",
        ])
        .output()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot connect to the database postgres://sportello:***@127.0.0.1:1/welfare"),
        "{err}"
    );
    assert!(!err.contains("secret"), "password leaked: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn first_start_creates_admin_and_serves_until_sigterm() {
    let dir = scratch();
    let url = format!("sqlite://{}/data/sportello.db?mode=rwc", dir.display());
    let mut child = sportello()
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &url])
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
    let (mut password, mut addr) = (None, None);
    while password.is_none() || addr.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server output");
        if let Some(p) = line.split("with password: ").nth(1) {
            password = Some(p.trim().to_owned());
        }
        if let Some(a) = line.split("serving on ").nth(1) {
            addr = Some(a.trim().to_owned());
        }
    }
    let (password, addr) = (password.unwrap(), addr.unwrap());
    assert!(password.len() >= 16);
    assert!(
        dir.join("data/sportello.db").exists(),
        "the database file is created on first start"
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        assert_eq!(
            client
                .get(format!("{addr}/healthz"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        let res = client
            .post(format!("{addr}/api/v1/auth/login"))
            .json(&serde_json::json!({"username": "admin", "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    });

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            assert!(s.success(), "graceful stop exits 0, got {s}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // A second start on the same database does not create another admin or print a password.
    let out = sportello()
        .args(["migrate", "--database-url", &url])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("up to date"));
    let out = sportello()
        .args([
            "admin",
            "create-user",
            "--database-url",
            &url,
            "--username",
            "lbassi",
            "--name",
            "Laura Bassi",
            "--roles",
            "front_office,counter",
        ])
        .env("SPORTELLO_NEW_PASSWORD", "laura-password-1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = sportello()
        .args([
            "admin",
            "create-user",
            "--database-url",
            &url,
            "--username",
            "x",
            "--name",
            "X",
            "--roles",
            "boss",
        ])
        .env("SPORTELLO_NEW_PASSWORD", "short")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("username") && err.contains("password") && err.contains("roles[0]"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
