//! Decoding of stored columns that both backends keep in the same shape: one
//! place for the rules, so the SQLite and PostgreSQL stores cannot drift apart.

use crate::domain::preferences::{QuietHours, StaffPreferences};
use crate::store::StoreError;

/// Rebuilds staff preferences from their stored columns (muted categories as a JSON
/// array, quiet hours as three nullable texts).
pub(crate) fn prefs_from_columns(
    muted_json: &str,
    start: Option<String>,
    end: Option<String>,
    tz: Option<String>,
) -> Result<StaffPreferences, StoreError> {
    let corrupt = |e: String| StoreError::Internal(format!("bad preferences row: {e}"));
    let muted: Vec<String> =
        serde_json::from_str(muted_json).map_err(|e| corrupt(e.to_string()))?;
    let quiet = match (start, end, tz) {
        (Some(s), Some(e), Some(tz)) => {
            Some(QuietHours::parse(&s, &e, &tz).map_err(|e| corrupt(e.to_string()))?)
        }
        _ => None,
    };
    StaffPreferences::new(muted, quiet).map_err(|e| corrupt(e.to_string()))
}
