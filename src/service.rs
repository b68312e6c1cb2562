//! Use cases: publish, inbox, realtime sessions, auth, directory, retention.
//!
//! Services see only the store and bus ports and the domain; they know nothing
//! of HTTP. Each returns [`ServiceError`], mapped to status codes in one table
//! (`http/error.rs`).

pub mod auth;
pub mod batch;
pub mod clock;
pub mod directory;
pub mod escalation;
pub mod events;
pub mod frames;
pub mod inbox;
pub mod leased;
pub mod outbound;
pub mod publish;
pub mod ratelimit;
pub mod realtime;
pub mod retention;
pub mod webhooks;

use crate::domain::Invalid;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("not found")]
    NotFound,
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// The credential was a token past its `exp`: the client should get a new one
    /// (the API's `token_expired` code), unlike other refusals.
    #[error("unauthorized: token expired")]
    TokenExpired,
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("conflict: {message}")]
    Conflict { code: &'static str, message: String },
    /// A template could not be rendered: `field` is where the variables came from
    /// (`variables`, `recipients[3].variables`); the error names every one.
    #[error("{field}: {error}")]
    Render {
        field: String,
        error: crate::domain::template::RenderError,
    },
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bounded queue for this work is full: retry after the given seconds (429).
    #[error("busy: {message}")]
    Busy {
        message: &'static str,
        retry_after_secs: u64,
    },
    #[error("internal: {0}")]
    Internal(String),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ServiceError::NotFound,
            StoreError::Conflict(m) => ServiceError::Conflict {
                code: "conflict",
                message: m,
            },
            StoreError::Unavailable(m) => ServiceError::Unavailable(m),
            StoreError::Internal(m) => ServiceError::Internal(m),
        }
    }
}
