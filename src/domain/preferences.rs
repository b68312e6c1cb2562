//! Preferences, pure (every time is passed in):
//!
//! - Staff in-app preferences: muted categories and quiet hours. Both only decide
//!   whether a notification is *pushed* live; it is always stored and always
//!   counted as unread.
//! - A patient's channel for one message ([`PatientPreferences::route`]): the
//!   channel it goes by, or the one it is recorded on when it must not be sent.

use chrono::{DateTime, NaiveTime, Utc};
use chrono_tz::Tz;

use super::contact::Address;
use super::message::{PatientPreferences, Suppression};
use super::template::{Channel, MessageKind};
use super::Invalid;

/// Where one message to a patient goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelRoute {
    /// Send it on `channel` to `to`.
    Send { channel: Channel, to: Address },
    /// Record it as suppressed, on the channel it would have used (so staff see
    /// "SMS, suppressed: SMS turned off"), with that channel's address if any.
    Suppress {
        channel: Channel,
        to: Option<Address>,
        why: Suppression,
    },
}

impl PatientPreferences {
    /// [`PatientPreferences::choose_channel`], plus the channel a suppressed
    /// message is recorded on: the refused channel itself when that was the
    /// reason; for a kind turned off, the channel it would have used had the kind
    /// been on; failing all, the requested, then the preferred channel, then SMS.
    pub fn route(&self, requested: Option<Channel>, kind: MessageKind) -> ChannelRoute {
        let why = match self.choose_channel(requested, kind) {
            Ok((channel, to)) => return ChannelRoute::Send { channel, to },
            Err(why) => why,
        };
        let channel = match why {
            Suppression::ChannelDisabled(c) | Suppression::NoAddress(c) => c,
            Suppression::KindDisabled(_) | Suppression::NoUsableChannel => {
                let mut all_kinds = self.clone();
                all_kinds.kinds.set(kind, true);
                all_kinds
                    .choose_channel(requested, kind)
                    .map(|(c, _)| c)
                    .unwrap_or_else(|_| {
                        requested.or(self.preferred_channel).unwrap_or(Channel::Sms)
                    })
            }
        };
        ChannelRoute::Suppress {
            channel,
            to: self.address_for(channel),
            why,
        }
    }
}

const MAX_MUTED: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
    pub tz: Tz,
}

impl QuietHours {
    pub fn parse(start: &str, end: &str, tz: &str) -> Result<Self, Invalid> {
        let time = |field: &str, v: &str| {
            NaiveTime::parse_from_str(v, "%H:%M")
                .map_err(|_| Invalid::new(field, "must be HH:MM (24-hour)"))
        };
        let start = time("quiet_hours.start", start)?;
        let end = time("quiet_hours.end", end)?;
        if start == end {
            return Err(Invalid::new("quiet_hours.end", "must differ from start"));
        }
        let tz: Tz = tz.parse().map_err(|_| {
            Invalid::new(
                "quiet_hours.tz",
                "must be an IANA time zone such as Asia/Riyadh",
            )
        })?;
        Ok(Self { start, end, tz })
    }

    /// Whether `at` falls inside the window, in the window's own time zone.
    /// A window whose end is before its start wraps past midnight (22:00–07:00).
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.tz).time();
        if self.start < self.end {
            self.start <= local && local < self.end
        } else {
            local >= self.start || local < self.end
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StaffPreferences {
    pub muted_categories: Vec<String>,
    pub quiet_hours: Option<QuietHours>,
}

impl StaffPreferences {
    pub fn new(
        muted_categories: Vec<String>,
        quiet_hours: Option<QuietHours>,
    ) -> Result<Self, Invalid> {
        if muted_categories.len() > MAX_MUTED {
            return Err(Invalid::new(
                "muted_categories",
                format!("at most {MAX_MUTED} entries"),
            ));
        }
        if muted_categories
            .iter()
            .any(|c| c.is_empty() || c.chars().count() > 100)
        {
            return Err(Invalid::new(
                "muted_categories",
                "entries must be 1..100 characters",
            ));
        }
        let mut muted_categories = muted_categories;
        muted_categories.sort();
        muted_categories.dedup();
        Ok(Self {
            muted_categories,
            quiet_hours,
        })
    }

    /// True when a notification of `category` created at `at` must not be pushed live.
    pub fn silences(&self, category: Option<&str>, at: DateTime<Utc>) -> bool {
        let muted = category.is_some_and(|c| self.muted_categories.iter().any(|m| m == c));
        muted || self.quiet_hours.as_ref().is_some_and(|q| q.contains(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn quiet_hours_wrap_midnight_in_their_time_zone() {
        let q = QuietHours::parse("22:00", "07:00", "Asia/Riyadh").unwrap(); // UTC+3
        let utc = |h, m| Utc.with_ymd_and_hms(2026, 11, 27, h, m, 0).unwrap();
        assert!(q.contains(utc(19, 0))); // 22:00 Riyadh
        assert!(q.contains(utc(3, 59))); // 06:59 Riyadh
        assert!(!q.contains(utc(4, 0))); // 07:00 Riyadh
        assert!(!q.contains(utc(18, 59))); // 21:59 Riyadh
        let day = QuietHours::parse("12:00", "13:00", "UTC").unwrap();
        assert!(day.contains(utc(12, 30)));
        assert!(!day.contains(utc(13, 0)));
    }

    #[test]
    fn bad_quiet_hours_name_the_field() {
        assert_eq!(
            QuietHours::parse("25:00", "07:00", "UTC")
                .unwrap_err()
                .field,
            "quiet_hours.start"
        );
        assert_eq!(
            QuietHours::parse("22:00", "22:00", "UTC")
                .unwrap_err()
                .field,
            "quiet_hours.end"
        );
        assert_eq!(
            QuietHours::parse("22:00", "07:00", "Mars/Base")
                .unwrap_err()
                .field,
            "quiet_hours.tz"
        );
    }

    #[test]
    fn muted_categories_silence_only_their_category() {
        let p = StaffPreferences::new(vec!["appointment.completed".into()], None).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 12, 3, 10, 0, 0).unwrap();
        assert!(p.silences(Some("appointment.completed"), now));
        assert!(!p.silences(Some("appointment.booked"), now));
        assert!(!p.silences(None, now));
    }

    #[test]
    fn a_suppressed_message_is_recorded_on_the_channel_it_would_have_used() {
        use crate::domain::contact::{EmailAddress, PhoneNumber};
        let phone = PhoneNumber::parse("+966501234567").unwrap();
        let email = EmailAddress::parse("p@clinic.example").unwrap();
        let reminder = MessageKind::AppointmentReminder;
        let prefs = PatientPreferences {
            phone: Some(phone.clone()),
            email: Some(email.clone()),
            preferred_channel: Some(Channel::Email),
            ..Default::default()
        };
        let mut kind_off = prefs.clone();
        kind_off.kinds.set(reminder, false);
        let mut sms_off = prefs.clone();
        sms_off.channels.sms = false;
        let mut all_off = kind_off.clone();
        all_off.channels = crate::domain::message::ChannelSwitches {
            sms: false,
            whatsapp: false,
            email: false,
        };
        let nobody = PatientPreferences::default();
        let (sms, mail) = (Address::Phone(phone), Address::Email(email));
        let suppress = |channel, to: Option<&Address>, why| ChannelRoute::Suppress {
            channel,
            to: to.cloned(),
            why,
        };
        #[rustfmt::skip]
        let table = [
            ("preferred channel", &prefs, None,
             ChannelRoute::Send { channel: Channel::Email, to: mail.clone() }),
            ("requested channel", &prefs, Some(Channel::Sms),
             ChannelRoute::Send { channel: Channel::Sms, to: sms.clone() }),
            ("requested channel off: that channel", &sms_off, Some(Channel::Sms),
             suppress(Channel::Sms, Some(&sms), Suppression::ChannelDisabled(Channel::Sms))),
            ("no address: that channel, no address", &nobody, Some(Channel::Whatsapp),
             suppress(Channel::Whatsapp, None, Suppression::NoAddress(Channel::Whatsapp))),
            ("kind off: the channel it would have used", &kind_off, None,
             suppress(Channel::Email, Some(&mail), Suppression::KindDisabled(reminder))),
            ("kind off, every channel off: the preferred one", &all_off, None,
             suppress(Channel::Email, Some(&mail), Suppression::KindDisabled(reminder))),
            ("nothing usable, nothing preferred: SMS", &nobody, None,
             suppress(Channel::Sms, None, Suppression::NoUsableChannel)),
        ];
        for (name, prefs, requested, want) in table {
            assert_eq!(prefs.route(requested, reminder), want, "{name}");
        }
    }
}
