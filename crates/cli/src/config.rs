//! Layered configuration: built-in defaults → `--config` files → `SPORTELLO__SECTION__KEY`
//! environment variables → command-line flags.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::{Deserialize, Serialize};
use sportello_server::ServerConfig;
use sportello_service::ServiceConfig;
use sportello_service::phone::sportello_phone::PhoneConfig;

/// The defaults, compiled in so a bare `cargo run --release` needs no file.
pub const DEFAULTS: &str = include_str!("../../../config/default.toml");

#[derive(Clone, Deserialize, Serialize)]
pub struct DatabaseConfig {
    pub url: String,
    pub max_connections: u32,
    pub connect_timeout_secs: u64,
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &sportello_store::connect::redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl DatabaseConfig {
    pub fn options(&self) -> sportello_store::DbOptions {
        sportello_store::DbOptions {
            max_connections: self.max_connections.max(1),
            connect_timeout: Duration::from_secs(self.connect_timeout_secs.clamp(1, 60)),
            migrate: true,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct LogConfig {
    pub format: String,
    pub level: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub service: ServiceConfig,
    pub log: LogConfig,
    /// The phone channel: integrations, extensions, own numbers.
    #[serde(default)]
    pub phone: PhoneConfig,
    /// The e-mail channel: mailboxes, SMTP relay, limits, acknowledgements (see
    /// config/email.example.toml). Empty by default: no mailbox is fetched.
    #[serde(default, skip_serializing)]
    pub email: sportello_service::mail::sportello_mail::EmailConfig,
    /// Who may read `/metrics`: loopback only unless a token is set (docs/ADMIN.md).
    #[serde(default, skip_serializing)]
    pub metrics: sportello_server::metrics::MetricsConfig,
}

/// Loads the layers; `overrides` are the command-line flags as `section.key` pairs.
pub fn load(files: &[PathBuf], overrides: &[(&str, Option<String>)]) -> anyhow::Result<Config> {
    let mut fig = Figment::from(Toml::string(DEFAULTS));
    for f in files {
        anyhow::ensure!(
            f.exists(),
            "configuration file {} does not exist",
            f.display()
        );
        fig = fig.merge(Toml::file(f));
    }
    fig = fig.merge(Env::prefixed("SPORTELLO__").split("__"));
    for (key, value) in overrides {
        if let Some(v) = value {
            fig = fig.merge((*key, v.clone()));
        }
    }
    fig.extract().context("invalid configuration")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_flags_win() {
        let c = load(&[], &[("server.listen", Some("0.0.0.0:9000".into()))]).unwrap();
        assert_eq!(c.server.listen, "0.0.0.0:9000");
        assert_eq!(c.database.url, "sqlite://data/sportello.db?mode=rwc");
        assert_eq!(c.service.ticket_prefix, "SP");
    }

    #[test]
    fn email_defaults_start_nothing_and_the_example_file_loads() {
        let c = load(&[], &[]).unwrap();
        assert!(c.email.mailboxes.is_empty());
        assert!(c.email.smtp.is_none());
        assert!(c.email.auto_ack.enabled);
        let example = std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../config/email.example.toml"
        ));
        let c = load(&[example], &[]).unwrap();
        assert_eq!(c.email.mailboxes.len(), 2);
        assert_eq!(c.email.mailboxes[0].name, "welfare");
        assert_eq!(c.email.smtp.as_ref().unwrap().port(), 587);
        c.email.validate().unwrap();
    }

    #[test]
    fn the_production_example_loads_with_every_section() {
        let example = std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../config/production.example.toml"
        ));
        let c = load(&[example], &[]).unwrap();
        assert!(c.server.secure_cookies);
        assert!(c.database.url.starts_with("postgres://"));
        assert_eq!(c.service.calendar.patron_days, ["12-07"]);
        assert_eq!(c.service.counter.template.len(), 2);
        assert_eq!(c.phone.integrations.len(), 1);
        assert_eq!(c.phone.extensions.len(), 2);
        assert_eq!(c.email.mailboxes.len(), 1);
        assert!(c.email.smtp.is_some());
        c.email.validate().unwrap();
        assert!(c.metrics.enabled);
        assert_eq!(c.log.format, "json");
    }

    #[test]
    fn files_override_defaults_and_bad_values_are_named() {
        let dir = std::env::temp_dir().join(format!("sportello-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("a.toml");
        std::fs::write(&f, "[service]\nticket_prefix = \"MI\"\n").unwrap();
        assert_eq!(
            load(std::slice::from_ref(&f), &[])
                .unwrap()
                .service
                .ticket_prefix,
            "MI"
        );
        std::fs::write(&f, "[server]\nrequest_timeout_secs = \"soon\"\n").unwrap();
        let err = format!("{:#}", load(&[f], &[]).unwrap_err());
        assert!(err.contains("request_timeout_secs"), "{err}");
        assert!(load(&[dir.join("missing.toml")], &[]).is_err());
    }
}
