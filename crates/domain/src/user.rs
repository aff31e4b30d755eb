//! Users' roles and what each may do.

use crate::ticket::Tier;

slug_enum! {
    /// A role held by a user account; a user may hold several.
    pub enum Role as "role" {
        FrontOffice => "front_office",
        BackOffice => "back_office",
        Counter => "counter",
        Supervisor => "supervisor",
        Admin => "admin",
    }
}

impl Role {
    /// The tiers whose tickets a holder of this role may see and work.
    pub fn tiers(self) -> &'static [Tier] {
        match self {
            Role::FrontOffice | Role::Counter => &[Tier::FrontOffice],
            Role::BackOffice => &[Tier::BackOffice],
            Role::Supervisor | Role::Admin => &[Tier::FrontOffice, Tier::BackOffice],
        }
    }
}

/// The tiers a set of roles gives access to.
pub fn tiers_of(roles: &[Role]) -> Vec<Tier> {
    let mut tiers: Vec<Tier> = roles
        .iter()
        .flat_map(|r| r.tiers().iter().copied())
        .collect();
    tiers.sort();
    tiers.dedup();
    tiers
}

/// Whether the roles include one that may work tickets (every role but a pure admin can).
pub fn is_operator(roles: &[Role]) -> bool {
    roles.iter().any(|r| {
        matches!(
            r,
            Role::FrontOffice | Role::BackOffice | Role::Counter | Role::Supervisor
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_office_does_not_see_back_office() {
        assert_eq!(tiers_of(&[Role::FrontOffice]), vec![Tier::FrontOffice]);
        assert_eq!(
            tiers_of(&[Role::Counter, Role::BackOffice]),
            vec![Tier::FrontOffice, Tier::BackOffice]
        );
        assert_eq!(tiers_of(&[Role::Supervisor]).len(), 2);
    }
}
