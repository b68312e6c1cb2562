//! The tenant's user directory: who exists and with which role, for `role` publishes.

use chrono::{DateTime, Utc};

use super::auth::Role;
use super::ids::UserId;

#[derive(Debug, Clone, PartialEq)]
pub struct DirectoryUser {
    pub user: UserId,
    pub role: Role,
    pub name: Option<String>,
    pub locale: Option<String>,
    pub updated_at: DateTime<Utc>,
}
