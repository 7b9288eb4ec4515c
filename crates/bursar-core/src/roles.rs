//! LiteLLM's user roles (`LitellmUserRoles`), spelled exactly as on the wire.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserRole {
    ProxyAdmin,
    ProxyAdminViewer,
    OrgAdmin,
    InternalUser,
    InternalUserViewer,
    Team,
    Customer,
}

impl UserRole {
    pub const ALL: [UserRole; 7] = [
        UserRole::ProxyAdmin,
        UserRole::ProxyAdminViewer,
        UserRole::OrgAdmin,
        UserRole::InternalUser,
        UserRole::InternalUserViewer,
        UserRole::Team,
        UserRole::Customer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UserRole::ProxyAdmin => "proxy_admin",
            UserRole::ProxyAdminViewer => "proxy_admin_viewer",
            UserRole::OrgAdmin => "org_admin",
            UserRole::InternalUser => "internal_user",
            UserRole::InternalUserViewer => "internal_user_viewer",
            UserRole::Team => "team",
            UserRole::Customer => "customer",
        }
    }

    pub fn is_proxy_admin(self) -> bool {
        self == UserRole::ProxyAdmin
    }
}

impl fmt::Display for UserRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown user role {0:?}")]
pub struct UnknownRole(pub String);

impl FromStr for UserRole {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UserRole::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_their_wire_names() {
        for role in UserRole::ALL {
            assert_eq!(role.as_str().parse::<UserRole>(), Ok(role));
            assert_eq!(serde_json::to_string(&role).unwrap(), format!("\"{role}\""));
        }
        assert!("admin".parse::<UserRole>().is_err());
    }
}
