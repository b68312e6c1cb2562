//! Outbound patient messages: their status lifecycle, the patient's preferences and
//! the channel choice they imply, the retry schedule, and money (provider prices).
//!
//! All of it is pure: time is a parameter (`now`), never read from a clock, so the
//! queue worker, the webhook handlers and the tests share the same rules.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::contact::{Address, EmailAddress, PhoneNumber};
use super::template::{Channel, Language, MessageKind};
use super::Invalid;

/// An outbound message's id (a random UUID; the store's key, and the reference we
/// hand providers so their callbacks can find the message even before we know the
/// provider's own id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(uuid::Uuid);

impl MessageId {
    pub fn new_random() -> Self {
        Self(uuid::Uuid::new_v4())
    }

    pub fn from_uuid(id: uuid::Uuid) -> Self {
        Self(id)
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        uuid::Uuid::try_parse(raw)
            .map(Self)
            .map_err(|_| Invalid::new("id", "must be a message id (a UUID)"))
    }

    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// Where a message is in its life. The contract's nine statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageStatus {
    /// Committed, waiting for a worker (possibly until `send_at` or a retry time).
    Queued,
    /// A worker holds it and is talking to a provider (or the outcome of that
    /// conversation is unknown: see `ProviderError::Unknown`).
    Sending,
    /// A provider accepted it.
    Sent,
    /// The provider reports it reached the handset / mailbox.
    Delivered,
    /// WhatsApp read receipt.
    Read,
    /// Could not be sent: transient errors outlasted the retries, or the provider
    /// reported a delivery failure.
    Failed,
    /// Permanently refused (invalid number, unsubscribed, not a mobile, mailbox
    /// unavailable): never retried automatically.
    Bounced,
    /// Cancelled before it was sent.
    Cancelled,
    /// Never sent because the patient's preferences forbid it.
    Suppressed,
}

impl MessageStatus {
    pub const ALL: [MessageStatus; 9] = [
        MessageStatus::Queued,
        MessageStatus::Sending,
        MessageStatus::Sent,
        MessageStatus::Delivered,
        MessageStatus::Read,
        MessageStatus::Failed,
        MessageStatus::Bounced,
        MessageStatus::Cancelled,
        MessageStatus::Suppressed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Queued => "queued",
            MessageStatus::Sending => "sending",
            MessageStatus::Sent => "sent",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Read => "read",
            MessageStatus::Failed => "failed",
            MessageStatus::Bounced => "bounced",
            MessageStatus::Cancelled => "cancelled",
            MessageStatus::Suppressed => "suppressed",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| Invalid::new("status", "is not a message status"))
    }

    /// How far along the delivery path a status is. `Failed` and `Bounced` share a
    /// rank above `Sent` (a provider may report a failure after accepting) and below
    /// `Delivered` (proof of delivery beats an earlier failure report: it happens
    /// when a send we gave up on as unknown did reach the patient).
    /// `None` for the statuses outside the path.
    fn rank(self) -> Option<u8> {
        match self {
            MessageStatus::Queued => Some(0),
            MessageStatus::Sending => Some(1),
            MessageStatus::Sent => Some(2),
            MessageStatus::Failed | MessageStatus::Bounced => Some(3),
            MessageStatus::Delivered => Some(4),
            MessageStatus::Read => Some(5),
            MessageStatus::Cancelled | MessageStatus::Suppressed => None,
        }
    }

    /// Nothing more is expected to happen to the message (a later provider callback
    /// may still raise `Failed`/`Bounced` to `Delivered`/`Read`, see [`advance`]).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            MessageStatus::Delivered
                | MessageStatus::Read
                | MessageStatus::Failed
                | MessageStatus::Bounced
                | MessageStatus::Cancelled
                | MessageStatus::Suppressed
        )
    }

    /// `POST /v1/messages/{id}/cancel` is allowed: the message has not been sent.
    pub fn can_cancel(self) -> bool {
        self == MessageStatus::Queued
    }

    /// `POST /v1/messages/{id}/retry` is allowed (the contract: failed or bounced only).
    pub fn can_retry_manually(self) -> bool {
        matches!(self, MessageStatus::Failed | MessageStatus::Bounced)
    }
}

impl fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an observed status `to` (a send result or a provider callback) may
/// replace the stored status `from`. A status never moves backwards, so callbacks
/// arriving out of order, twice, or racing the worker are harmless: the caller
/// applies the observation only when this returns `true` (and still records the
/// callback as an event).
///
/// - Along the delivery path, only forward moves: queued → sending → sent →
///   delivered → read (skipping steps is fine: `delivered` may arrive before `sent`).
/// - `failed`/`bounced` may follow anything before `delivered`; once one of them is
///   recorded the other does not replace it (the first final word stands), but
///   `delivered`/`read` still may (the patient did get it).
/// - `cancelled` and `suppressed` only from `queued`, and nothing leaves them.
/// - The same status again is not a move (`false`).
///
/// Two moves are deliberately *not* observations and so not covered here: a worker
/// putting its own `sending` message back to `queued` for a retry, and the manual
/// retry of a failed or bounced message ([`MessageStatus::can_retry_manually`]).
pub fn advance(from: MessageStatus, to: MessageStatus) -> bool {
    use MessageStatus::*;
    match (from, to) {
        (Cancelled | Suppressed, _) => false,
        (Queued, Cancelled | Suppressed) => true,
        (_, Cancelled | Suppressed) => false,
        _ => match (from.rank(), to.rank()) {
            (Some(a), Some(b)) => b > a,
            _ => false,
        },
    }
}

/// Channels on or off for one patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelSwitches {
    pub sms: bool,
    pub whatsapp: bool,
    pub email: bool,
}

impl ChannelSwitches {
    pub fn get(&self, channel: Channel) -> bool {
        match channel {
            Channel::Sms => self.sms,
            Channel::Whatsapp => self.whatsapp,
            Channel::Email => self.email,
        }
    }
}

impl Default for ChannelSwitches {
    fn default() -> Self {
        Self {
            sms: true,
            whatsapp: true,
            email: true,
        }
    }
}

/// Message kinds a patient switched on or off. A kind with no entry falls back to
/// [`MessageKind::enabled_by_default`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KindSwitches(std::collections::BTreeMap<MessageKind, bool>);

impl KindSwitches {
    pub fn set(&mut self, kind: MessageKind, on: bool) {
        self.0.insert(kind, on);
    }

    pub fn get(&self, kind: MessageKind) -> bool {
        self.0
            .get(&kind)
            .copied()
            .unwrap_or_else(|| kind.enabled_by_default())
    }

    /// Only the kinds switched explicitly (what the store keeps, so defaults stay defaults).
    pub fn explicit(&self) -> impl Iterator<Item = (MessageKind, bool)> + '_ {
        self.0.iter().map(|(k, on)| (*k, *on))
    }

    /// Every kind with its effective value, for `GET …/preferences`.
    pub fn effective(&self) -> Vec<(MessageKind, bool)> {
        MessageKind::ALL
            .into_iter()
            .map(|k| (k, self.get(k)))
            .collect()
    }
}

/// A patient's messaging preferences (the contract's preferences object). A patient
/// the clinic never configured has `PatientPreferences::default()`: every channel on,
/// every kind but marketing on, English, no preferred channel, no addresses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PatientPreferences {
    pub phone: Option<PhoneNumber>,
    pub email: Option<EmailAddress>,
    pub language: Language,
    pub preferred_channel: Option<Channel>,
    pub channels: ChannelSwitches,
    pub kinds: KindSwitches,
}

impl PatientPreferences {
    /// The address `channel` would use, if the patient has one.
    pub fn address_for(&self, channel: Channel) -> Option<Address> {
        if channel.uses_phone() {
            self.phone.clone().map(Address::Phone)
        } else {
            self.email.clone().map(Address::Email)
        }
    }

    fn usable(&self, channel: Channel) -> Option<Address> {
        if self.channels.get(channel) {
            self.address_for(channel)
        } else {
            None
        }
    }

    /// Picks the channel and address for a message of `kind`, or says why it must
    /// not be sent (the message is then recorded as `suppressed` with the reason).
    ///
    /// 1. A kind the patient switched off suppresses the message, whatever the channel.
    /// 2. A requested channel is used as is, or suppresses the message if it is off or
    ///    has no address: the caller asked for that channel, so we do not substitute one.
    /// 3. Else the preferred channel, if it is on and has an address.
    /// 4. Else the first of SMS → WhatsApp → email that is on and has an address.
    pub fn choose_channel(
        &self,
        requested: Option<Channel>,
        kind: MessageKind,
    ) -> Result<(Channel, Address), Suppression> {
        if !self.kinds.get(kind) {
            return Err(Suppression::KindDisabled(kind));
        }
        if let Some(channel) = requested {
            if !self.channels.get(channel) {
                return Err(Suppression::ChannelDisabled(channel));
            }
            return self
                .address_for(channel)
                .map(|a| (channel, a))
                .ok_or(Suppression::NoAddress(channel));
        }
        let preferred = self.preferred_channel.into_iter();
        preferred
            .chain(Channel::FALLBACK_ORDER)
            .find_map(|c| self.usable(c).map(|a| (c, a)))
            .ok_or(Suppression::NoUsableChannel)
    }
}

/// Why a message was not sent. `code()` is stable (API and analytics); `Display`
/// is the sentence shown to staff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suppression {
    KindDisabled(MessageKind),
    ChannelDisabled(Channel),
    NoAddress(Channel),
    NoUsableChannel,
}

impl Suppression {
    pub fn code(self) -> &'static str {
        match self {
            Suppression::KindDisabled(_) => "kind_disabled",
            Suppression::ChannelDisabled(_) => "channel_disabled",
            Suppression::NoAddress(_) => "no_address",
            Suppression::NoUsableChannel => "no_usable_channel",
        }
    }
}

impl fmt::Display for Suppression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Suppression::KindDisabled(k) => write!(f, "the patient turned off {k} messages"),
            Suppression::ChannelDisabled(c) => write!(f, "the patient turned off {c}"),
            Suppression::NoAddress(c) if c.uses_phone() => {
                write!(f, "the patient has no phone number for {c}")
            }
            Suppression::NoAddress(c) => write!(f, "the patient has no email address for {c}"),
            Suppression::NoUsableChannel => {
                f.write_str("no channel is both turned on and has an address")
            }
        }
    }
}

/// The automatic retry schedule for transient provider errors: exponential backoff
/// (60 s, 120 s, 240 s by default), at most `max_retries` retries, honouring a
/// provider's Retry-After.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay before the first retry.
    pub base_delay: Duration,
    /// Each further retry waits this many times longer.
    pub multiplier: u32,
    /// Retries after the first attempt; the attempt after the last retry fails the
    /// message (or hands it to the next provider in a failover chain).
    pub max_retries: u32,
    /// Upper bound on one delay, Retry-After included, so a provider asking for a
    /// day cannot park a patient's reminder past its appointment.
    pub max_delay: Duration,
    /// How long a send with an unknown outcome (`ProviderError::Unknown`) waits for
    /// the provider's status callback before it is treated as a transient failure
    /// and retried (see docs/OUTBOUND.md, "The Twilio timeout decision"). Providers
    /// call back within seconds; this bounds the wait when the callback is lost.
    pub unknown_outcome_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base_delay: Duration::from_secs(60),
            multiplier: 2,
            max_retries: 3,
            max_delay: Duration::from_secs(3600),
            unknown_outcome_wait: Duration::from_secs(600),
        }
    }
}

impl RetryPolicy {
    /// When a message whose send outcome is unknown (at `now`) stops waiting for
    /// its callback and is retried as if the send had failed transiently.
    pub fn unknown_outcome_deadline(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let wait =
            chrono::Duration::from_std(self.unknown_outcome_wait).unwrap_or(chrono::Duration::MAX);
        now.checked_add_signed(wait)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

/// What to do after a transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Try again at this time (the `retry` event records it).
    RetryAt(DateTime<Utc>),
    /// Retries are used up.
    GiveUp,
}

impl RetryPolicy {
    /// `failed_attempts` counts the attempts that have failed transiently so far,
    /// this one included (1 after the first failure). `now` is when it failed;
    /// `retry_after` is the provider's Retry-After, if it sent one.
    ///
    /// Retry n (1-based) waits `base_delay × multiplier^(n-1)`, or Retry-After if that
    /// is longer, capped at `max_delay`.
    pub fn next(
        &self,
        failed_attempts: u32,
        now: DateTime<Utc>,
        retry_after: Option<Duration>,
    ) -> RetryDecision {
        if failed_attempts == 0 || failed_attempts > self.max_retries {
            return RetryDecision::GiveUp;
        }
        let factor = self.multiplier.saturating_pow(failed_attempts - 1);
        let backoff = self.base_delay.saturating_mul(factor);
        let delay = backoff
            .max(retry_after.unwrap_or_default())
            .min(self.max_delay);
        let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        match now.checked_add_signed(delay) {
            Some(at) => RetryDecision::RetryAt(at),
            None => RetryDecision::GiveUp,
        }
    }
}

/// An amount of money in millionths of the currency unit (a provider price such
/// as Twilio's `-0.00750` USD is 7,500 micros). Integer, so totals add up exactly.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Money {
    pub micros: i64,
    /// ISO 4217, upper case (`USD`, `SAR`).
    pub currency: String,
}

impl Money {
    /// Parses a decimal string (`"0.0075"`, `"-0.00750"`, `"12"`) into micros.
    /// Providers report costs as negative (Twilio) or positive (Unifonic) amounts;
    /// the sign is dropped: a price is what the message cost. More than six
    /// fractional digits are refused, not rounded.
    pub fn parse_price(amount: &str, currency: &str) -> Result<Self, Invalid> {
        let bad = || Invalid::new("price", format!("{amount:?} is not a decimal amount"));
        let unsigned = amount.trim().trim_start_matches(['-', '+']);
        let (whole, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
        if (whole.is_empty() && frac.is_empty())
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
            || frac.len() > 6
        {
            return Err(bad());
        }
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        let frac_micros: i64 = format!("{frac:0<6}").parse().map_err(|_| bad())?;
        let micros = whole
            .checked_mul(1_000_000)
            .and_then(|w| w.checked_add(frac_micros))
            .ok_or_else(bad)?;
        let currency = currency.trim().to_ascii_uppercase();
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(Invalid::new("currency", "must be a 3-letter ISO 4217 code"));
        }
        Ok(Self { micros, currency })
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:06} {}",
            self.micros / 1_000_000,
            self.micros % 1_000_000,
            self.currency
        )
    }
}

#[cfg(test)]
mod tests {
    use super::MessageStatus::*;
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn statuses_only_move_forward_along_the_path() {
        let path = [Queued, Sending, Sent, Delivered, Read];
        for (i, a) in path.iter().enumerate() {
            for (j, b) in path.iter().enumerate() {
                assert_eq!(advance(*a, *b), j > i, "{a} -> {b}");
            }
        }
    }

    #[test]
    fn out_of_order_callbacks_cannot_move_backwards() {
        // Twilio: "delivered" arrives, then the late "sent" and "queued".
        assert!(!advance(Delivered, Sent));
        assert!(!advance(Delivered, Queued));
        // WhatsApp: "read" then the late "delivered".
        assert!(!advance(Read, Delivered));
        // A failure report after delivery is stale.
        assert!(!advance(Delivered, Failed));
        assert!(!advance(Read, Bounced));
        // A late "sent" after the failure report.
        assert!(!advance(Failed, Sent));
        assert!(!advance(Bounced, Sending));
        // The first final word stands.
        assert!(!advance(Failed, Bounced));
        assert!(!advance(Bounced, Failed));
        // Duplicates are not moves.
        for s in MessageStatus::ALL {
            assert!(!advance(s, s), "{s}");
        }
    }

    #[test]
    fn failures_may_follow_acceptance_and_delivery_beats_a_failure() {
        assert!(advance(Sent, Failed));
        assert!(advance(Sending, Bounced));
        assert!(advance(Queued, Failed));
        assert!(advance(Failed, Delivered));
        assert!(advance(Bounced, Read));
    }

    #[test]
    fn cancelled_and_suppressed_only_from_queued_and_absorbing() {
        for to in [Cancelled, Suppressed] {
            assert!(advance(Queued, to));
            for from in [Sending, Sent, Delivered, Read, Failed, Bounced] {
                assert!(!advance(from, to), "{from} -> {to}");
            }
        }
        for from in [Cancelled, Suppressed] {
            for to in MessageStatus::ALL {
                assert!(!advance(from, to), "{from} -> {to}");
            }
        }
        assert!(Queued.can_cancel() && !Sending.can_cancel() && !Sent.can_cancel());
        let retryable: Vec<_> = MessageStatus::ALL
            .into_iter()
            .filter(|s| s.can_retry_manually())
            .collect();
        assert_eq!(retryable, vec![Failed, Bounced]);
    }

    #[test]
    fn status_names_round_trip() {
        for s in MessageStatus::ALL {
            assert_eq!(MessageStatus::parse(s.as_str()).unwrap(), s);
        }
        assert!(MessageStatus::parse("undelivered").is_err());
    }

    fn prefs() -> PatientPreferences {
        PatientPreferences {
            phone: Some(PhoneNumber::parse("+966501234567").unwrap()),
            email: Some(EmailAddress::parse("p@clinic.example").unwrap()),
            ..PatientPreferences::default()
        }
    }

    fn phone() -> Address {
        Address::Phone(PhoneNumber::parse("+966501234567").unwrap())
    }

    fn email() -> Address {
        Address::Email(EmailAddress::parse("p@clinic.example").unwrap())
    }

    const REMINDER: MessageKind = MessageKind::AppointmentReminder;

    #[test]
    fn requested_channel_wins_or_suppresses() {
        let p = PatientPreferences {
            preferred_channel: Some(Channel::Email),
            ..prefs()
        };
        assert_eq!(
            p.choose_channel(Some(Channel::Whatsapp), REMINDER),
            Ok((Channel::Whatsapp, phone()))
        );
        let off = PatientPreferences {
            channels: ChannelSwitches {
                whatsapp: false,
                ..Default::default()
            },
            ..p.clone()
        };
        assert_eq!(
            off.choose_channel(Some(Channel::Whatsapp), REMINDER),
            Err(Suppression::ChannelDisabled(Channel::Whatsapp))
        );
        let no_email = PatientPreferences { email: None, ..p };
        let err = no_email
            .choose_channel(Some(Channel::Email), REMINDER)
            .unwrap_err();
        assert_eq!(err, Suppression::NoAddress(Channel::Email));
        assert_eq!(err.code(), "no_address");
        assert_eq!(
            err.to_string(),
            "the patient has no email address for email"
        );
    }

    #[test]
    fn preferred_then_sms_whatsapp_email() {
        let p = PatientPreferences {
            preferred_channel: Some(Channel::Email),
            ..prefs()
        };
        assert_eq!(
            p.choose_channel(None, REMINDER),
            Ok((Channel::Email, email()))
        );
        // No preference: SMS first.
        assert_eq!(
            prefs().choose_channel(None, REMINDER),
            Ok((Channel::Sms, phone()))
        );
        // Preferred channel off: fall back in order.
        let p = PatientPreferences {
            preferred_channel: Some(Channel::Email),
            channels: ChannelSwitches {
                email: false,
                sms: false,
                whatsapp: true,
            },
            ..prefs()
        };
        assert_eq!(
            p.choose_channel(None, REMINDER),
            Ok((Channel::Whatsapp, phone()))
        );
        // Preferred WhatsApp but no phone: email is the only channel with an address.
        let p = PatientPreferences {
            phone: None,
            preferred_channel: Some(Channel::Whatsapp),
            ..prefs()
        };
        assert_eq!(
            p.choose_channel(None, REMINDER),
            Ok((Channel::Email, email()))
        );
        // Nothing usable.
        let p = PatientPreferences {
            email: None,
            channels: ChannelSwitches {
                sms: false,
                whatsapp: false,
                email: true,
            },
            ..prefs()
        };
        assert_eq!(
            p.choose_channel(None, REMINDER),
            Err(Suppression::NoUsableChannel)
        );
        assert_eq!(
            PatientPreferences::default().choose_channel(None, REMINDER),
            Err(Suppression::NoUsableChannel)
        );
    }

    #[test]
    fn a_disabled_kind_suppresses_before_anything_else() {
        let marketing = prefs()
            .choose_channel(Some(Channel::Sms), MessageKind::Marketing)
            .unwrap_err();
        assert_eq!(marketing, Suppression::KindDisabled(MessageKind::Marketing));
        assert_eq!(
            marketing.to_string(),
            "the patient turned off marketing messages"
        );
        let mut p = prefs();
        p.kinds.set(MessageKind::Marketing, true);
        p.kinds.set(MessageKind::Billing, false);
        assert!(p.choose_channel(None, MessageKind::Marketing).is_ok());
        assert_eq!(
            p.choose_channel(None, MessageKind::Billing),
            Err(Suppression::KindDisabled(MessageKind::Billing))
        );
        assert_eq!(p.kinds.effective().len(), MessageKind::ALL.len());
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap()
    }

    #[test]
    fn default_schedule_is_60_120_240_then_give_up() {
        let p = RetryPolicy::default();
        let at = |secs| RetryDecision::RetryAt(t0() + chrono::Duration::seconds(secs));
        assert_eq!(p.next(1, t0(), None), at(60));
        assert_eq!(p.next(2, t0(), None), at(120));
        assert_eq!(p.next(3, t0(), None), at(240));
        assert_eq!(p.next(4, t0(), None), RetryDecision::GiveUp);
        assert_eq!(p.next(0, t0(), None), RetryDecision::GiveUp);
    }

    #[test]
    fn retry_after_is_honoured_when_longer_and_capped() {
        let p = RetryPolicy::default();
        let at = |secs| RetryDecision::RetryAt(t0() + chrono::Duration::seconds(secs));
        assert_eq!(p.next(1, t0(), Some(Duration::from_secs(300))), at(300));
        assert_eq!(p.next(2, t0(), Some(Duration::from_secs(5))), at(120));
        assert_eq!(p.next(1, t0(), Some(Duration::from_secs(86_400))), at(3600));
    }

    #[test]
    fn schedule_is_configurable() {
        let p = RetryPolicy {
            base_delay: Duration::from_secs(10),
            multiplier: 3,
            max_retries: 5,
            max_delay: Duration::from_secs(500),
            unknown_outcome_wait: Duration::from_secs(120),
        };
        let got: Vec<_> = (1..=6).map(|n| p.next(n, t0(), None)).collect();
        let at = |secs| RetryDecision::RetryAt(t0() + chrono::Duration::seconds(secs));
        assert_eq!(
            got,
            vec![
                at(10),
                at(30),
                at(90),
                at(270),
                at(500),
                RetryDecision::GiveUp
            ]
        );
    }

    #[test]
    fn prices_parse_to_exact_micros() {
        assert_eq!(
            Money::parse_price("-0.00750", "usd").unwrap(),
            Money {
                micros: 7_500,
                currency: "USD".into()
            }
        );
        assert_eq!(Money::parse_price("0.0355", "SAR").unwrap().micros, 35_500);
        assert_eq!(Money::parse_price("12", "SAR").unwrap().micros, 12_000_000);
        assert_eq!(Money::parse_price(".5", "SAR").unwrap().micros, 500_000);
        assert_eq!(
            Money::parse_price("1.5", "EUR").unwrap().to_string(),
            "1.500000 EUR"
        );
        for bad in ["", "-", "abc", "1.2.3", "0.0000001", "1e3"] {
            assert_eq!(
                Money::parse_price(bad, "USD").unwrap_err().field,
                "price",
                "{bad:?}"
            );
        }
        assert_eq!(Money::parse_price("1", "US").unwrap_err().field, "currency");
    }

    #[test]
    fn message_ids_parse_and_display() {
        let id = MessageId::new_random();
        assert_eq!(MessageId::parse(&id.to_string()).unwrap(), id);
        assert!(MessageId::parse("nope").is_err());
    }
}
