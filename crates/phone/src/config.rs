//! The `[phone]` configuration section: integrations and their tokens, extensions, own numbers.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sportello_domain::contact::PhoneNumber;
use sportello_domain::slug_enum;
use subtle::ConstantTimeEq;

use crate::cdr::DEFAULT_CDR_TIMEZONE;
use crate::model::Answerer;

/// Shortest integration token accepted: it is the only thing guarding the webhooks.
pub const MIN_TOKEN_LEN: usize = 16;

slug_enum! {
    /// Which webhook an integration speaks.
    pub enum IntegrationKind as "integration kind" {
        /// `POST /api/v1/channels/phone/events` with a bearer token.
        Native => "native",
        /// `POST /api/v1/channels/phone/cti/{token}`, Zammad's generic CTI.
        ZammadCti => "zammad_cti",
    }
}

/// A secret integration token; never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(secret: impl Into<String>) -> Token {
        Token(secret.into())
    }

    /// Compares with a presented token in time that does not depend on where they differ.
    /// (A length mismatch is told apart sooner; token length is not the secret.)
    pub fn matches(&self, presented: &str) -> bool {
        let (ours, theirs) = (self.0.as_bytes(), presented.as_bytes());
        if ours.len() != theirs.len() {
            // Same work as a real comparison, so a wrong length is not faster to reject.
            let _ = ours.ct_eq(ours);
            return false;
        }
        ours.ct_eq(theirs).into()
    }

    /// The secret, for building the CTI URL shown to an administrator.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

impl Serialize for Token {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Token {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Token)
    }
}

/// One `[[phone.integrations]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Integration {
    /// Scopes call ids: two switchboards may reuse the same ids.
    pub name: String,
    pub kind: IntegrationKind,
    pub token: Token,
}

/// The `[phone]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhoneConfig {
    #[serde(default)]
    pub integrations: Vec<Integration>,
    /// Extension → user name (`"201" = "lbassi"`).
    #[serde(default)]
    pub extensions: BTreeMap<String, String>,
    /// The contact center's own numbers, never taken for a citizen's.
    #[serde(default)]
    pub own_numbers: Vec<PhoneNumber>,
    /// The zone the PBX writes CDR times in.
    #[serde(default = "default_zone", with = "zone_name")]
    pub cdr_timezone: Tz,
}

fn default_zone() -> Tz {
    DEFAULT_CDR_TIMEZONE
}

mod zone_name {
    use super::*;

    pub fn serialize<S: Serializer>(zone: &Tz, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(zone.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Tz, D::Error> {
        let name = String::deserialize(d)?;
        name.parse::<Tz>().map_err(|_| {
            serde::de::Error::custom(format!(
                "cdr_timezone '{name}' is not an IANA time zone such as Europe/Rome"
            ))
        })
    }
}

impl Default for PhoneConfig {
    fn default() -> Self {
        PhoneConfig {
            integrations: Vec::new(),
            extensions: BTreeMap::new(),
            own_numbers: Vec::new(),
            cdr_timezone: DEFAULT_CDR_TIMEZONE,
        }
    }
}

/// A `[phone]` section that would make the webhooks unsafe or ambiguous.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneConfigError {
    #[error("phone.integrations: an integration has an empty name")]
    EmptyName,
    #[error("phone.integrations: the name '{0}' is used twice")]
    DuplicateName(String),
    #[error("phone.integrations '{0}': token must be at least {MIN_TOKEN_LEN} characters")]
    WeakToken(String),
    #[error("phone.integrations '{0}': token is the same as another integration's")]
    DuplicateToken(String),
    #[error("phone.extensions: extension '{0}' must map to a user name")]
    EmptyUser(String),
}

impl PhoneConfig {
    /// Checks what serde cannot: unique names and tokens, tokens long enough.
    pub fn validate(&self) -> Result<(), PhoneConfigError> {
        let mut names = BTreeSet::new();
        for (i, integration) in self.integrations.iter().enumerate() {
            let name = integration.name.trim();
            if name.is_empty() {
                return Err(PhoneConfigError::EmptyName);
            }
            if !names.insert(name) {
                return Err(PhoneConfigError::DuplicateName(name.to_owned()));
            }
            if integration.token.0.chars().count() < MIN_TOKEN_LEN {
                return Err(PhoneConfigError::WeakToken(name.to_owned()));
            }
            if self.integrations[..i]
                .iter()
                .any(|other| other.token == integration.token)
            {
                return Err(PhoneConfigError::DuplicateToken(name.to_owned()));
            }
        }
        if let Some((ext, _)) = self
            .extensions
            .iter()
            .find(|(_, user)| user.trim().is_empty())
        {
            return Err(PhoneConfigError::EmptyUser(ext.clone()));
        }
        Ok(())
    }

    /// The integration of this kind whose token was presented. Every token of that kind is
    /// compared, so the time taken does not tell which one came close.
    pub fn authenticate(&self, kind: IntegrationKind, presented: &str) -> Option<&Integration> {
        let mut found = None;
        for integration in self.integrations.iter().filter(|i| i.kind == kind) {
            if integration.token.matches(presented) && found.is_none() {
                found = Some(integration);
            }
        }
        found
    }

    /// The user name of whoever answered: an extension through `[phone.extensions]`, an
    /// operator by name as given.
    pub fn operator_for<'a>(&'a self, answerer: &'a Answerer) -> Option<&'a str> {
        match answerer {
            Answerer::Extension(ext) => self.extensions.get(ext).map(String::as_str),
            Answerer::Operator(user) => Some(user),
        }
    }

    pub fn is_own_number(&self, number: &PhoneNumber) -> bool {
        self.own_numbers.contains(number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML: &str = r#"
        [phone]
        own_numbers = ["02 0202", "+39 02 0203"]
        cdr_timezone = "Europe/Rome"

        [[phone.integrations]]
        name = "centralino"
        kind = "native"
        token = "n-0123456789abcdef"

        [[phone.integrations]]
        name = "zammad-pbx"
        kind = "zammad_cti"
        token = "z-0123456789abcdef"

        [phone.extensions]
        "201" = "lbassi"
        "203" = "mverdi"
    "#;

    #[derive(Deserialize)]
    struct Root {
        phone: PhoneConfig,
    }

    fn config() -> PhoneConfig {
        toml::from_str::<Root>(TOML).unwrap().phone
    }

    #[test]
    fn reads_the_contract_shape() {
        let c = config();
        assert!(c.validate().is_ok());
        assert_eq!(c.integrations[1].kind, IntegrationKind::ZammadCti);
        assert_eq!(c.own_numbers[0].as_str(), "+39020202");
        assert!(c.is_own_number(&PhoneNumber::parse("020202").unwrap()));
        assert_eq!(c.cdr_timezone, chrono_tz::Europe::Rome);
        assert_eq!(
            c.operator_for(&Answerer::Extension("203".into())),
            Some("mverdi")
        );
        assert_eq!(c.operator_for(&Answerer::Extension("299".into())), None);
        assert_eq!(
            c.operator_for(&Answerer::Operator("lbassi".into())),
            Some("lbassi")
        );
    }

    #[test]
    fn defaults_and_bad_values() {
        let c: PhoneConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, PhoneConfig::default());
        assert_eq!(c.cdr_timezone, chrono_tz::Europe::Rome);
        let err =
            serde_json::from_str::<PhoneConfig>(r#"{"cdr_timezone":"Mars/Olympus"}"#).unwrap_err();
        assert!(
            err.to_string().contains("cdr_timezone 'Mars/Olympus'"),
            "{err}"
        );
        let err = serde_json::from_str::<PhoneConfig>(
            r#"{"integrations":[{"name":"a","kind":"sip","token":"x"}]}"#,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("unknown integration kind 'sip'"),
            "{err}"
        );
        let err = serde_json::from_str::<PhoneConfig>(r#"{"own_numbers":["abc"]}"#).unwrap_err();
        assert!(err.to_string().contains("'a'"), "{err}");
    }

    #[test]
    fn tokens_authenticate_by_kind_and_never_show() {
        let c = config();
        let native = c.authenticate(IntegrationKind::Native, "n-0123456789abcdef");
        assert_eq!(native.map(|i| i.name.as_str()), Some("centralino"));
        assert!(
            c.authenticate(IntegrationKind::ZammadCti, "n-0123456789abcdef")
                .is_none()
        );
        assert!(
            c.authenticate(IntegrationKind::Native, "n-0123456789abcdeX")
                .is_none()
        );
        assert!(
            c.authenticate(IntegrationKind::Native, "n-0123456789abcdef0")
                .is_none()
        );
        assert!(c.authenticate(IntegrationKind::Native, "").is_none());
        let shown = format!("{c:?}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert!(shown.contains("Token(***)"));
    }

    #[test]
    fn validation_catches_unsafe_setups() {
        let mut c = config();
        c.integrations[1].token = c.integrations[0].token.clone();
        assert_eq!(
            c.validate(),
            Err(PhoneConfigError::DuplicateToken("zammad-pbx".into()))
        );
        let mut c = config();
        c.integrations[0].token = Token::new("short");
        assert_eq!(
            c.validate(),
            Err(PhoneConfigError::WeakToken("centralino".into()))
        );
        let mut c = config();
        c.integrations[1].name = "centralino".into();
        assert_eq!(
            c.validate(),
            Err(PhoneConfigError::DuplicateName("centralino".into()))
        );
        let mut c = config();
        c.extensions.insert("205".into(), " ".into());
        assert_eq!(c.validate(), Err(PhoneConfigError::EmptyUser("205".into())));
    }
}
