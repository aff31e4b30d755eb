//! The whole routing configuration file: `[assignment]`, `[sla]`, `[default]` and `[[rules]]`.

use serde::{Deserialize, Serialize};

use crate::operators::{AssignmentConfigError, AssignmentDoc, AssignmentPolicy};
use crate::rules::{RuleDoc, RuleError, RuleSet, ThenDoc};
use crate::sla::{SlaConfigError, SlaDoc, SlaPolicies};

/// The documented defaults shipped in `config/routing.toml`.
pub const DEFAULT_ROUTING_TOML: &str = include_str!("../../../config/routing.toml");

/// A routing file that cannot be accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("routing configuration is not valid TOML: {0}")]
    Syntax(String),
    #[error(transparent)]
    Assignment(#[from] AssignmentConfigError),
    #[error(transparent)]
    Sla(#[from] SlaConfigError),
    #[error(transparent)]
    Rules(#[from] RuleError),
}

/// The file as written, every section checked for unknown keys.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutingDoc {
    #[serde(default)]
    assignment: AssignmentDoc,
    #[serde(default)]
    sla: SlaDoc,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    default: Option<ThenDoc>,
    #[serde(default)]
    rules: Vec<RuleDoc>,
}

/// Strategy and overflow, SLA policies and rules, validated together (every rule's policy
/// exists).
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingConfig {
    pub assignment: AssignmentPolicy,
    pub sla: SlaPolicies,
    pub rules: RuleSet,
}

impl RoutingConfig {
    /// Parses and validates a whole routing file.
    pub fn from_toml(text: &str) -> Result<RoutingConfig, ConfigError> {
        let doc: RoutingDoc = toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        let assignment = AssignmentPolicy::from_doc(&doc.assignment)?;
        let sla = SlaPolicies::from_doc(&doc.sla)?;
        let rules = RuleSet::from_doc(
            &crate::rules::RuleSetDoc { default: doc.default, rules: doc.rules },
            &sla,
        )?;
        Ok(RoutingConfig { assignment, sla, rules })
    }

    /// The embedded defaults of `config/routing.toml` (a test keeps them valid).
    pub fn builtin() -> Result<RoutingConfig, ConfigError> {
        RoutingConfig::from_toml(DEFAULT_ROUTING_TOML)
    }

    /// The whole file back as TOML (without the comments of the original).
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        let rules = self.rules.to_doc();
        toml::to_string(&RoutingDoc {
            assignment: self.assignment.to_doc(),
            sla: self.sla.to_doc(),
            default: rules.default,
            rules: rules.rules,
        })
    }
}
