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
        let doc: RoutingDoc =
            toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        let assignment = AssignmentPolicy::from_doc(&doc.assignment)?;
        let sla = SlaPolicies::from_doc(&doc.sla)?;
        let rules = RuleSet::from_doc(
            &crate::rules::RuleSetDoc {
                default: doc.default,
                rules: doc.rules,
            },
            &sla,
        )?;
        Ok(RoutingConfig {
            assignment,
            sla,
            rules,
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::TicketFacts;
    use crate::sla::Target;
    use chrono::Duration;
    use sportello_domain::{Channel, Priority, Tier};

    #[test]
    fn the_shipped_routing_file_is_valid_and_has_the_documented_defaults() {
        let c = RoutingConfig::builtin().unwrap();
        let p = |n: &str| c.sla.get(n).unwrap().clone();
        assert_eq!(
            p("phone_callback").first_response,
            Some(Target::BusinessDays(1))
        );
        assert_eq!(p("email").first_response, Some(Target::BusinessDays(3)));
        assert_eq!(p("counter").first_response, Some(Target::SameDay));
        assert_eq!(p("complaint").resolution, Some(Target::CalendarDays(30)));
        assert!(c.sla.contains("general"));
        assert_eq!(SlaPolicies::builtin(), c.sla);
        assert_eq!(
            RuleSet::from_toml(DEFAULT_ROUTING_TOML).unwrap(),
            c.rules,
            "the rules alone read the same"
        );
        assert!(!c.assignment.overflow.steps().is_empty());

        let decide = |f: TicketFacts| c.rules.evaluate(&f);
        assert_eq!(
            decide(TicketFacts::new(Channel::Phone)).sla_policy,
            "phone_callback"
        );
        assert_eq!(
            decide(TicketFacts::new(Channel::Counter)).sla_policy,
            "counter"
        );
        assert_eq!(decide(TicketFacts::new(Channel::Email)).sla_policy, "email");
        assert_eq!(decide(TicketFacts::new(Channel::Internal)).rule, "default");
        let mut complaint = TicketFacts::new(Channel::Phone);
        complaint.category = Some("complaint".into());
        let d = decide(complaint);
        assert_eq!(
            (d.tier, d.sla_policy.as_str()),
            (Tier::BackOffice, "complaint")
        );
        let mut eviction = TicketFacts::new(Channel::Email);
        eviction.body = "Ho ricevuto lo SFRATTO, cosa posso fare?".into();
        assert_eq!(decide(eviction).priority, Priority::High);
        let mut inps = TicketFacts::new(Channel::Email);
        inps.sender = Some("sede.milano@inps.it".into());
        assert_eq!(decide(inps).tier, Tier::BackOffice);
    }

    #[test]
    fn the_whole_file_round_trips_through_toml() {
        let c = RoutingConfig::builtin().unwrap();
        let text = c.to_toml().unwrap();
        assert_eq!(RoutingConfig::from_toml(&text).unwrap(), c, "{text}");
    }

    #[test]
    fn errors_point_at_the_section() {
        let base = DEFAULT_ROUTING_TOML;
        let cases = [
            (
                base.replace("strategy = \"longest_idle\"", "strategy = \"random\""),
                "field 'strategy': unknown strategy 'random'",
            ),
            (
                base.replacen("\nby = 1", "\nby = 9", 1),
                "overflow step #1, field 'by'",
            ),
            (
                base.replacen(
                    "\nafter_seconds = 60",
                    "\nafter_seconds = 60\nafter_minutes = 1",
                    1,
                ),
                "overflow step #1, field 'after'",
            ),
            (
                base.replace("sla_policy = \"counter\"", "sla_policy = \"sportello\""),
                "rule 'counter_visits', field 'then.sla_policy'",
            ),
            (
                base.replacen("\n[assignment]", "\n[assignment]\nspeed = 3", 1),
                "unknown field `speed`",
            ),
            (format!("{base}\n[extra]\nx = 1"), "unknown field `extra`"),
        ];
        for (text, want) in cases {
            assert_ne!(text, base, "the case for {want:?} changed nothing");
            let err = RoutingConfig::from_toml(&text).unwrap_err().to_string();
            assert!(err.contains(want), "want {want:?} in {err:?}");
        }
        let c = RoutingConfig::builtin().unwrap();
        assert_eq!(
            c.assignment.overflow.steps()[0].after,
            Duration::seconds(60)
        );
    }
}
