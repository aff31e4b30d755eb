//! The `sportello` binary as an administrator meets it: first start, sign-in, graceful stop,
//! and a clear, fast failure when the database cannot be reached.

mod common;

use std::time::{Duration, Instant};

use common::{Scratch, Server, Session, sportello};

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
    let s = Scratch::new("cli");
    let url = format!("sqlite://{}/data/sportello.db?mode=rwc", s.dir.display());
    // No administrator's password in the environment: the first start makes one up and shows it.
    let mut server = Server::start(sportello().args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        &url,
    ]));
    let password = server
        .greeting
        .iter()
        .find_map(|line| line.split("with password: ").nth(1))
        .map(|p| p.trim().to_owned())
        .unwrap_or_else(|| panic!("the first start shows a password: {:?}", server.greeting));
    let addr = server.base.clone();
    assert!(password.len() >= 16);
    assert!(
        s.dir.join("data/sportello.db").exists(),
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
        Session::login(&addr, "admin", &password).await;
    });

    let status = server
        .process
        .terminate(Duration::from_secs(10))
        .expect("did not stop on SIGTERM");
    assert!(status.success(), "graceful stop exits 0, got {status}");

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
}
