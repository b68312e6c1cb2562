//! Who is calling: roles and the authenticated principal.

use std::fmt;
use std::str::FromStr;

use super::ids::{TenantId, UserId};
use super::Invalid;

/// A staff or patient role, as carried in user tokens and the user directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Admin,
    FrontDesk,
    Provider,
    Patient,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::FrontDesk, Role::Provider, Role::Patient];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::FrontDesk => "front_desk",
            Role::Provider => "provider",
            Role::Patient => "patient",
        }
    }
}

impl FromStr for Role {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                Invalid::new(
                    "role",
                    "must be one of admin, front_desk, provider, patient",
                )
            })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A verified user token's contents.
#[derive(Debug, Clone)]
pub struct UserPrincipal {
    pub tenant: TenantId,
    pub user: UserId,
    pub role: Role,
    pub name: Option<String>,
    pub locale: Option<String>,
    /// Unix seconds; live connections are closed when it passes.
    pub expires_at: i64,
}

/// The caller of an endpoint after authentication.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A server-to-server API key: full access to its tenant.
    ApiKey {
        tenant: TenantId,
        key_prefix: String,
    },
    User(UserPrincipal),
}

impl Principal {
    pub fn tenant(&self) -> &TenantId {
        match self {
            Principal::ApiKey { tenant, .. } => tenant,
            Principal::User(u) => &u.tenant,
        }
    }
}
