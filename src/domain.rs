//! Pure domain types and rules: no IO, no framework types.
//!
//! Everything here is validated at construction ("parse, don't validate"), so a
//! value of these types that exists past the HTTP edge is known to be well-formed.

pub mod auth;
pub mod clinic_event;
pub mod clinic_format;
pub mod clinic_plan;
pub mod clinic_rules;
pub mod contact;
pub mod escalation;
pub mod ids;
pub mod message;
pub mod notification;
pub mod preferences;
pub mod priority;
pub mod template;
pub mod text;
pub mod user;
pub mod webhook;

/// A field-level validation failure. `field` is the JSON path the client sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}
