//! Webhooks to clinic systems, pure: the event types an endpoint may listen to, the
//! endpoint URL rule, the signing secret and the Standard Webhooks signature, which
//! status changes make events, the retry schedule and when an endpoint is disabled.
//! No IO; every time is passed in.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::message::MessageStatus;
use super::Invalid;

/// The event types of the contract. `notification.read` is opt-in (only endpoints
/// that list it get it); the `patient.*` types are accepted but nothing emits them
/// yet (inbound patient replies are future work).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    MessageStatusChanged,
    MessageFailed,
    PatientReplied,
    PatientOptedOut,
    PatientConfirmed,
    PatientDeclined,
    NotificationRead,
}

impl EventType {
    pub const ALL: [EventType; 7] = [
        EventType::MessageStatusChanged,
        EventType::MessageFailed,
        EventType::PatientReplied,
        EventType::PatientOptedOut,
        EventType::PatientConfirmed,
        EventType::PatientDeclined,
        EventType::NotificationRead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::MessageStatusChanged => "message.status_changed",
            EventType::MessageFailed => "message.failed",
            EventType::PatientReplied => "patient.replied",
            EventType::PatientOptedOut => "patient.opted_out",
            EventType::PatientConfirmed => "patient.confirmed",
            EventType::PatientDeclined => "patient.declined",
            EventType::NotificationRead => "notification.read",
        }
    }

    pub fn parse(field: &str, raw: &str) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == raw)
            .ok_or_else(|| {
                let all: Vec<&str> = Self::ALL.iter().map(|t| t.as_str()).collect();
                Invalid::new(field, format!("must be one of {}", all.join(", ")))
            })
    }

    /// A list from a request: 1 or more known types, no repeats, kept in order.
    pub fn parse_list(field: &str, raw: &[String]) -> Result<Vec<Self>, Invalid> {
        if raw.is_empty() {
            return Err(Invalid::new(field, "must list at least one event type"));
        }
        let mut types = Vec::with_capacity(raw.len());
        for (i, r) in raw.iter().enumerate() {
            let t = Self::parse(&format!("{field}[{i}]"), r)?;
            if types.contains(&t) {
                return Err(Invalid::new(format!("{field}[{i}]"), "is listed twice"));
            }
            types.push(t);
        }
        Ok(types)
    }
}

/// Longest endpoint URL.
pub const URL_MAX_LEN: usize = 2048;

/// Where the hub may send: `https://` always; `http://` only when the hub runs in
/// development (a loopback listen), where nothing leaves the machine unencrypted.
/// No credentials in the URL (they would be logged and shown in every GET), no fragment.
/// Whether the host may be a private address is checked when the address is known
/// (at delivery: a name can resolve anywhere), by the sender.
pub fn check_url(field: &str, raw: &str, allow_http: bool) -> Result<(), Invalid> {
    let bad = |why: &str| Err(Invalid::new(field, why.to_owned()));
    if raw.is_empty() || raw.len() > URL_MAX_LEN {
        return bad("must be 1..2048 bytes");
    }
    if raw
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return bad("must not contain spaces, control characters or backslashes");
    }
    let lower = raw.to_ascii_lowercase();
    let rest = if let Some(rest) = lower.strip_prefix("https://") {
        rest
    } else if let Some(rest) = lower.strip_prefix("http://") {
        if !allow_http {
            return bad("must be an https:// URL");
        }
        rest
    } else {
        return bad("must be an https:// URL");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return bad("must name a host");
    }
    if authority.contains('@') {
        return bad("must not carry credentials");
    }
    if raw.contains('#') {
        return bad("must not have a fragment");
    }
    Ok(())
}

/// Whether an address is one the hub must not call unless allowed (SSRF): loopback,
/// private, link-local (cloud metadata at 169.254.169.254), unspecified, multicast,
/// shared (100.64/10), unique-local IPv6, and IPv4-mapped forms of these.
pub fn is_internal(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link local
        }
    }
}

/// Bytes of a generated secret (the spec asks for 24 to 64).
const SECRET_BYTES: usize = 32;

/// An endpoint's signing secret, `whsec_<base64 of the key>` as the spec serializes it.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(String);

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(***)")
    }
}

impl SigningSecret {
    /// A fresh random secret.
    pub fn generate() -> Self {
        let key: [u8; SECRET_BYTES] = rand::random();
        SigningSecret(format!("whsec_{}", BASE64.encode(key)))
    }

    /// A stored secret; it must decode (it was made by [`SigningSecret::generate`]).
    pub fn from_stored(raw: String) -> Result<Self, Invalid> {
        let s = SigningSecret(raw);
        s.key()?;
        Ok(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    fn key(&self) -> Result<Vec<u8>, Invalid> {
        let b64 = self.0.strip_prefix("whsec_").unwrap_or(&self.0);
        BASE64
            .decode(b64)
            .map_err(|_| Invalid::new("secret", "is not whsec_<base64>"))
    }

    /// `webhook-signature`'s value: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let key = self.key().unwrap_or_default();
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
    }
}

/// The event types a message's status change makes: none for the worker's own
/// comings and goings (`queued` ↔ `sending`: claims, retries, unknown-outcome waits)
/// or no change; `message.status_changed` for every other new status, and
/// `message.failed` too when it is `failed` or `bounced`.
pub fn status_events(from: MessageStatus, to: MessageStatus) -> Vec<EventType> {
    if from == to || matches!(to, MessageStatus::Queued | MessageStatus::Sending) {
        return Vec::new();
    }
    let mut types = vec![EventType::MessageStatusChanged];
    if matches!(to, MessageStatus::Failed | MessageStatus::Bounced) {
        types.push(EventType::MessageFailed);
    }
    types
}

/// When attempts are made after the first, from the spec's example schedule, cut at
/// the 24 hours the issue asks for.
const SCHEDULE: [Duration; 6] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
];

/// How long a delivery is retried, counted from its first attempt.
pub const RETRY_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// When to try again after the `attempts`-th failed attempt (1-based), or `None`: give
/// up (schedule used, or the next try would fall after the window). `jitter` in
/// `[0, 1)` spreads each delay by up to +20 %, so endpoints that failed together are
/// not all retried in the same instant. A `Retry-After` longer than the delay wins.
pub fn next_attempt(
    attempts: u32,
    window_start: DateTime<Utc>,
    now: DateTime<Utc>,
    jitter: f64,
    retry_after: Option<Duration>,
) -> Option<DateTime<Utc>> {
    let base = *SCHEDULE.get(attempts.checked_sub(1)? as usize)?;
    let spread = base.mul_f64(1.0 + 0.2 * jitter.clamp(0.0, 1.0));
    let delay = retry_after.map_or(spread, |r| r.max(spread));
    let at = now + chrono::Duration::from_std(delay).ok()?;
    let end = window_start + chrono::Duration::from_std(RETRY_WINDOW).ok()?;
    (at <= end).then_some(at)
}

/// When the hub disables an endpoint by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisablePolicy {
    /// Deliveries that ended `failed` in a row (no success between them).
    pub after_failed_deliveries: u32,
    /// Failing every attempt for this long.
    pub after_failing_for: Duration,
}

/// An endpoint's run of failures, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureRun {
    pub failed_deliveries: u32,
    pub failing_since: Option<DateTime<Utc>>,
}

/// Why an endpoint was disabled by the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisableReason {
    /// The run of failures passed the policy.
    Failures,
    /// The receiver answered `410 Gone`: it asks for no more (the spec's rule).
    Gone,
}

impl DisableReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DisableReason::Failures => "failures",
            DisableReason::Gone => "gone",
        }
    }
}

impl DisablePolicy {
    /// Whether a failed attempt at `now`, after which the run stands at `run`, disables
    /// the endpoint (`gone`: the answer was 410).
    pub fn decide(&self, run: FailureRun, gone: bool, now: DateTime<Utc>) -> Option<DisableReason> {
        if gone {
            return Some(DisableReason::Gone);
        }
        let too_many = run.failed_deliveries >= self.after_failed_deliveries;
        let too_long = run.failing_since.is_some_and(|since| {
            chrono::Duration::from_std(self.after_failing_for).is_ok_and(|d| now - since >= d)
        });
        (too_many || too_long).then_some(DisableReason::Failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn signs_the_spec_test_vector() {
        // The Standard Webhooks libraries' published vector.
        let secret = SigningSecret::from_stored("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into())
            .expect("valid secret");
        assert_eq!(
            secret.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn generated_secrets_are_whsec_base64_of_32_bytes_and_differ() {
        let a = SigningSecret::generate();
        let b = SigningSecret::generate();
        assert_ne!(a, b);
        assert!(a.expose().starts_with("whsec_"));
        assert_eq!(a.key().unwrap().len(), 32);
        assert!(SigningSecret::from_stored("whsec_not base64!".into()).is_err());
        assert_eq!(format!("{a:?}"), "SigningSecret(***)");
    }

    #[test]
    fn event_types_parse_from_the_closed_list() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse("t", t.as_str()).unwrap(), t);
        }
        let e = EventType::parse_list("event_types", &["message.failed".into(), "x.y".into()])
            .unwrap_err();
        assert_eq!(e.field, "event_types[1]");
        let e = EventType::parse_list("event_types", &[]).unwrap_err();
        assert_eq!(e.field, "event_types");
        let twice = ["message.failed".to_owned(), "message.failed".to_owned()];
        assert_eq!(
            EventType::parse_list("event_types", &twice)
                .unwrap_err()
                .field,
            "event_types[1]"
        );
    }

    #[test]
    fn urls_are_https_without_credentials_http_only_in_development() {
        for ok in [
            "https://clinic.example/hooks",
            "https://10.0.0.1:8443/x?y=1",
        ] {
            check_url("url", ok, false).expect(ok);
        }
        check_url("url", "http://127.0.0.1:9000/h", true).expect("development");
        for bad in [
            "http://clinic.example/h",
            "ftp://clinic.example",
            "https://",
            "https://user:pw@clinic.example/",
            "https://clinic.example/#frag",
            "https://clinic.example/a b",
            "//clinic.example",
            "",
        ] {
            assert_eq!(
                check_url("url", bad, false).unwrap_err().field,
                "url",
                "{bad}"
            );
        }
    }

    #[test]
    fn internal_addresses_are_recognized() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn status_changes_that_make_events() {
        use MessageStatus::*;
        let table = [
            (Sending, Sent, vec![EventType::MessageStatusChanged]),
            (Sent, Delivered, vec![EventType::MessageStatusChanged]),
            (
                Sending,
                Failed,
                vec![EventType::MessageStatusChanged, EventType::MessageFailed],
            ),
            (
                Sent,
                Bounced,
                vec![EventType::MessageStatusChanged, EventType::MessageFailed],
            ),
            (Sending, Queued, vec![]),
            (Queued, Sending, vec![]),
            (Sending, Sending, vec![]),
            (Delivered, Delivered, vec![]),
            (Sending, Suppressed, vec![EventType::MessageStatusChanged]),
        ];
        for (from, to, want) in table {
            assert_eq!(status_events(from, to), want, "{from} -> {to}");
        }
    }

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn backoff_follows_the_schedule_with_jitter_inside_24_hours() {
        let start = t(0);
        assert_eq!(next_attempt(1, start, t(0), 0.0, None), Some(t(5)));
        assert_eq!(next_attempt(2, start, t(5), 0.0, None), Some(t(305)));
        assert_eq!(
            next_attempt(1, start, t(0), 0.5, None),
            Some(t(5) + chrono::Duration::milliseconds(500))
        );
        // Retry-After longer than the delay wins.
        assert_eq!(
            next_attempt(1, start, t(0), 0.0, Some(Duration::from_secs(60))),
            Some(t(60))
        );
        // After the sixth failure the schedule is used up: give up.
        let late = t(17 * 3600);
        assert_eq!(next_attempt(7, start, late, 0.0, None), None);
        // The next try would fall outside the window (a replayed or slow delivery).
        assert_eq!(next_attempt(6, start, t(20 * 3600), 0.0, None), None);
        assert_eq!(next_attempt(0, start, t(0), 0.0, None), None);
        let mut now = start;
        for attempts in 1..=6 {
            now = next_attempt(attempts, start, now, 0.99, None).expect("inside the window");
        }
        assert!(now - start <= chrono::Duration::hours(24));
    }

    #[test]
    fn endpoints_are_disabled_after_a_run_of_failed_deliveries_or_days() {
        let policy = DisablePolicy {
            after_failed_deliveries: 3,
            after_failing_for: Duration::from_secs(5 * 86_400),
        };
        let run = |n, since: Option<i64>| FailureRun {
            failed_deliveries: n,
            failing_since: since.map(t),
        };
        assert_eq!(policy.decide(run(2, Some(0)), false, t(3600)), None);
        assert_eq!(
            policy.decide(run(3, Some(0)), false, t(3600)),
            Some(DisableReason::Failures)
        );
        assert_eq!(
            policy.decide(run(0, Some(0)), false, t(5 * 86_400)),
            Some(DisableReason::Failures)
        );
        assert_eq!(
            policy.decide(run(0, None), true, t(0)),
            Some(DisableReason::Gone)
        );
    }
}
