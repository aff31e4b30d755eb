//! Who is acting: the signed-in user and what their roles allow.

use serde::Serialize;
use sportello_domain::user::tiers_of;
use sportello_domain::{Role, Tier};
use uuid::Uuid;

use crate::error::ServiceError;

/// The authenticated user on whose behalf a use case runs.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Actor {
    pub id: Uuid,
    pub username: String,
    pub name: String,
    #[schema(value_type = Vec<String>)]
    pub roles: Vec<Role>,
}

impl Actor {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Requires at least one of the roles, naming them when refused.
    pub fn require_any(&self, roles: &[Role]) -> Result<(), ServiceError> {
        if roles.iter().any(|r| self.has(*r)) {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(format!(
                "this needs one of the roles: {}",
                roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }

    /// Roles that work tickets and see citizens' data.
    pub fn require_operator(&self) -> Result<(), ServiceError> {
        self.require_any(&[
            Role::FrontOffice,
            Role::BackOffice,
            Role::Counter,
            Role::Supervisor,
            Role::Admin,
        ])
    }

    pub fn tiers(&self) -> Vec<Tier> {
        tiers_of(&self.roles)
    }

    pub fn can_see_tier(&self, tier: Tier) -> bool {
        self.tiers().contains(&tier)
    }

    pub fn require_tier(&self, tier: Tier) -> Result<(), ServiceError> {
        if self.can_see_tier(tier) {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(format!(
                "you have no access to {tier} tickets"
            )))
        }
    }
}
