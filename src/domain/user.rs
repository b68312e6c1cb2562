//! The tenant's user directory: who exists and with which role, for `role` publishes.

use chrono::{DateTime, Utc};

use super::auth::Role;
use super::ids::UserId;
use super::{text, Invalid};

#[derive(Debug, Clone, PartialEq)]
pub struct DirectoryUser {
    pub user: UserId,
    pub role: Role,
    pub name: Option<String>,
    pub locale: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// The longest display name a directory entry (or a user token) may carry.
pub const NAME_MAX_CHARS: usize = 200;
/// The longest locale: a BCP 47 tag is at most 35 characters in practice.
pub const LOCALE_MAX_CHARS: usize = 35;

/// A user's display name and locale, as the directory and `/v1/tokens` take them
/// (a token's claims end up in the directory, so both follow one rule).
pub fn check_profile(name: Option<&str>, locale: Option<&str>) -> Result<(), Invalid> {
    text::check_optional("name", name, NAME_MAX_CHARS)?;
    text::check_optional("locale", locale, LOCALE_MAX_CHARS)
}
