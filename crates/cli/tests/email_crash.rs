//! The real `sportello` binary killed (SIGKILL) in the middle of importing a burst of 500
//! messages from Dovecot, then started again: every message must end up imported exactly once.
//!
//! Switched on by SPORTELLO_TEST_IMAP_HOST (see deploy/scripts/test-services.sh); when set, an
//! unreachable server fails the test.

mod common;

use std::time::{Duration, Instant};

use common::{Scratch, Server, serve};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect};
use sportello_domain::EmailAddress;
use sportello_service::mail::sportello_mail::TlsMode;
use sportello_service::mail::sportello_mail::imap::{MailboxConfig, connect};
use sportello_store::entities::{mail_checkpoint, mail_message, ticket};

const BURST: usize = 500;
/// Messages appended before the burst waits for the first kill.
const HELD_UNTIL_KILL: usize = 100;

struct Imap {
    host: String,
    port: u16,
    user: String,
    pass: String,
}

fn imap() -> Option<Imap> {
    let Ok(host) = std::env::var("SPORTELLO_TEST_IMAP_HOST") else {
        eprintln!("SPORTELLO_TEST_IMAP_HOST is not set: crash test skipped");
        return None;
    };
    let var = |n: &str| {
        std::env::var(n)
            .unwrap_or_else(|_| panic!("SPORTELLO_TEST_IMAP_HOST is set but {n} is not"))
    };
    let port: u16 = var("SPORTELLO_TEST_IMAP_PORT").parse().expect("a port");
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
        .expect("resolvable")
        .next()
        .expect("an address");
    if let Err(e) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
        panic!("SPORTELLO_TEST_IMAP_HOST is set but {host}:{port} is unreachable: {e}");
    }
    Some(Imap {
        host,
        port,
        user: var("SPORTELLO_TEST_IMAP_USER"),
        pass: var("SPORTELLO_TEST_IMAP_PASS"),
    })
}

impl Imap {
    fn mailbox(&self, folder: &str) -> MailboxConfig {
        let mut m = MailboxConfig::new(
            "crash",
            self.host.clone(),
            TlsMode::None,
            self.user.clone(),
            self.pass.clone(),
            EmailAddress::parse("welfare@comune.example.it").expect("valid"),
        );
        m.imap_port = Some(self.port);
        m.folder = folder.to_owned();
        m
    }
}

fn message(i: usize, run: &str) -> Vec<u8> {
    format!(
        "From: Cittadino {i} <cittadino{i}@example.it>\r\nTo: welfare@comune.example.it\r\n\
         Subject: Richiesta {i}\r\nMessage-ID: <crash-{run}-{i}@example.it>\r\n\
         Date: Tue, 03 Mar 2026 09:15:02 +0100\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nLa pratica {i} è ferma.\r\n"
    )
    .into_bytes()
}

async fn imported(db: &sportello_store::Database) -> u64 {
    mail_message::Entity::find()
        .filter(mail_message::Column::Direction.eq("inbound"))
        .count(&db.read)
        .await
        .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_a_burst_imports_every_message_exactly_once() {
    let Some(imap) = imap() else { return };
    let run = uuid::Uuid::now_v7().simple().to_string();
    let folder = format!("crash-{run}");
    let mut admin = connect(&imap.mailbox("INBOX")).await.expect("IMAP session");
    admin.create(&folder).await.expect("CREATE");

    let s = Scratch::new("crash");
    let url = s.url.clone();
    let config = s.dir.join("email.toml");
    std::fs::write(
        &config,
        format!(
            "[[email.mailboxes]]\nname = \"crash\"\nimap_host = \"{}\"\nimap_port = {}\n\
             imap_tls = \"none\"\nusername = \"{}\"\npassword = \"{}\"\nfolder = \"{folder}\"\n\
             address = \"welfare@comune.example.it\"\nbatch_size = 25\nbackoff_initial_ms = 200\n\
             backoff_max_secs = 2\npoll_interval_secs = 600\n",
            imap.host, imap.port, imap.user, imap.pass
        ),
    )
    .unwrap();

    let start = || Server::start(serve(&url).arg("--config").arg(&config));
    let mut server = start();
    let opts = sportello_store::DbOptions {
        migrate: false,
        ..Default::default()
    };
    let db = sportello_store::connect(&url, &opts)
        .await
        .expect("open the database");

    // The burst goes in on its own session while the server imports it. It holds after
    // HELD_UNTIL_KILL messages until the first kill has happened, so that kill always lands
    // while messages are still arriving, however fast this machine imports or appends.
    let (first_kill, mut after_first_kill) = tokio::sync::oneshot::channel::<()>();
    let burst = tokio::spawn(async move {
        for i in 0..BURST {
            if i == HELD_UNTIL_KILL {
                (&mut after_first_kill)
                    .await
                    .expect("the first kill is signalled");
            }
            admin
                .append(&folder, None, None, message(i, &run))
                .await
                .expect("APPEND");
        }
        let _ = admin.logout().await;
    });
    // Killed twice: early in the burst while messages are still arriving, and again later.
    let mut burst = Some(burst);
    let mut first_kill = Some(first_kill);
    for kill_at in [40u64, 250] {
        let deadline = Instant::now() + Duration::from_secs(60);
        while imported(&db).await < kill_at {
            assert!(Instant::now() < deadline, "stuck below {kill_at} imported");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let still_appending = burst.as_ref().is_some_and(|b| !b.is_finished());
        server.process.kill();
        let at_kill = imported(&db).await;
        eprintln!(
            "killed with {at_kill} of {BURST} imported (burst still arriving: {still_appending})"
        );
        assert!(
            (at_kill as usize) < BURST,
            "the kill came after the import finished"
        );
        if kill_at == 40 {
            assert!(still_appending, "the first kill must hit the burst");
            assert!(
                (at_kill as usize) <= HELD_UNTIL_KILL,
                "the burst was held at {HELD_UNTIL_KILL}"
            );
            if let Some(tx) = first_kill.take() {
                tx.send(()).expect("the burst is waiting");
            }
        }
        if kill_at != 40
            && let Some(b) = burst.take()
        {
            b.await.expect("the burst finished");
        }
        server = start();
    }
    if let Some(b) = burst.take() {
        b.await.expect("the burst finished");
    }

    let deadline = Instant::now() + Duration::from_secs(120);
    while (imported(&db).await as usize) < BURST {
        assert!(
            Instant::now() < deadline,
            "only {} of {BURST} imported after the restart",
            imported(&db).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Anything imported twice would show up now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.process.terminate(Duration::from_secs(60));

    assert_eq!(imported(&db).await as usize, BURST);
    let mut ids: Vec<String> = mail_message::Entity::find()
        .select_only()
        .column(mail_message::Column::MessageId)
        .filter(mail_message::Column::Direction.eq("inbound"))
        .into_tuple()
        .all(&db.read)
        .await
        .unwrap();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), BURST, "every Message-ID once");
    let tickets = ticket::Entity::find()
        .filter(ticket::Column::Channel.eq("email"))
        .count(&db.read)
        .await
        .unwrap();
    assert_eq!(tickets as usize, BURST, "one ticket per message");
    let cp = mail_checkpoint::Entity::find_by_id("crash".to_owned())
        .one(&db.read)
        .await
        .unwrap()
        .expect("checkpoint");
    assert_eq!(cp.last_uid as usize, BURST);
    db.close().await;
}
