//! Typed identifiers. No bare strings past the HTTP edge.

use std::fmt;

use super::Invalid;

/// Longest id a client may send for tenants and users. Keeps keys and channel names bounded.
const MAX_EXTERNAL_ID_LEN: usize = 128;

fn validate_external(field: &str, raw: &str) -> Result<(), Invalid> {
    if raw.is_empty() {
        return Err(Invalid::new(field, "must not be empty"));
    }
    if raw.len() > MAX_EXTERNAL_ID_LEN {
        return Err(Invalid::new(
            field,
            format!("must be at most {MAX_EXTERNAL_ID_LEN} bytes"),
        ));
    }
    // Ids end up in URLs, Redis channel names and log lines: keep them printable and unambiguous.
    if !raw
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@' | b':'))
    {
        return Err(Invalid::new(
            field,
            "may contain only ASCII letters, digits and - _ . @ :",
        ));
    }
    Ok(())
}

macro_rules! external_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, Invalid> {
                validate_external($field, raw)?;
                Ok(Self(raw.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

external_id!(
    /// A clinic group. Every object belongs to exactly one tenant.
    TenantId,
    "tenant"
);
external_id!(
    /// A staff member (or patient) as the clinic system names them.
    UserId,
    "user_id"
);

external_id!(
    /// A patient as the clinic system names them (outbound messages, preferences).
    PatientId,
    "patient_id"
);

external_id!(
    /// A clinic event as the clinic system names it: the idempotency key of `POST /v1/events`.
    EventId,
    "id"
);

external_id!(
    /// An appointment as the clinic system names it (clinic events, reminder groups).
    AppointmentId,
    "appointment.id"
);

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(uuid::Uuid);

        impl $name {
            pub fn new_random() -> Self {
                Self(uuid::Uuid::new_v4())
            }

            pub fn from_uuid(id: uuid::Uuid) -> Self {
                Self(id)
            }

            pub fn parse(raw: &str) -> Result<Self, Invalid> {
                uuid::Uuid::try_parse(raw)
                    .map(Self)
                    .map_err(|_| Invalid::new("id", concat!("must be a ", $what, " id (a UUID)")))
            }

            pub fn as_uuid(&self) -> uuid::Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }
    };
}

uuid_id!(
    /// An outbound message template (stable across its versions).
    TemplateId,
    "template"
);
uuid_id!(
    /// A bulk send.
    BatchId,
    "batch"
);

/// A notification's id: a store-assigned sequence number, strictly increasing in
/// commit order per user (see ARCHITECTURE.md, "Resume without gaps").
///
/// On the wire it is an opaque, fixed-width, lexicographically sortable string
/// (`n` + 16 hex digits), so clients can compare but are not invited to do arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NotificationId(i64);

impl NotificationId {
    pub fn from_seq(seq: i64) -> Self {
        Self(seq)
    }

    pub fn seq(self) -> i64 {
        self.0
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let bad = || Invalid::new("id", "not a notification id");
        let hex = raw.strip_prefix('n').ok_or_else(bad)?;
        if hex.len() != 16 {
            return Err(bad());
        }
        let seq = i64::from_str_radix(hex, 16).map_err(|_| bad())?;
        if seq < 0 {
            return Err(bad());
        }
        Ok(Self(seq))
    }
}

impl fmt::Display for NotificationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{:016x}", self.0)
    }
}

/// One live WebSocket or SSE connection on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub u64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{:x}", self.0)
    }
}

/// One hub process. Bus messages carry it so a node ignores its own publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeId(pub u128);

impl NodeId {
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().as_u128())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_ids_round_trip_and_sort_like_their_sequence() {
        let a = NotificationId::from_seq(9);
        let b = NotificationId::from_seq(10);
        assert_eq!(NotificationId::parse(&a.to_string()).unwrap(), a);
        assert!(a.to_string() < b.to_string());
        assert_eq!(a.to_string(), "n0000000000000009");
        assert!(NotificationId::parse("n12").is_err());
        assert!(NotificationId::parse("x0000000000000009").is_err());
        assert!(NotificationId::parse("nffffffffffffffff").is_err());
    }

    #[test]
    fn external_ids_reject_empty_long_and_odd_characters() {
        assert!(UserId::parse("u-17").is_ok());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse(&"a".repeat(129)).is_err());
        assert!(UserId::parse("a b").is_err());
        assert!(TenantId::parse("demo/x").is_err());
    }
}
