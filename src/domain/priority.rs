//! A notification's priority, and the one place that decides how far beyond the inbox
//! a notification reaches: pushed live (WebSocket/SSE, replayed on resume) and, once
//! browser push exists, pushed by web push. Every delivery path asks [`reach`].

use super::Invalid;

/// How urgent a notification is (`normal` when the publisher does not say).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
    Critical,
}

impl Priority {
    pub const ALL: [Priority; 4] = [Self::Low, Self::Normal, Self::High, Self::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Normal => "normal",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == raw)
            .ok_or_else(|| Invalid::new("priority", "must be one of low, normal, high, critical"))
    }

    /// The stored form: a small integer, so the column costs the publish nothing.
    pub fn code(self) -> i16 {
        match self {
            Self::Low => 0,
            Self::Normal => 1,
            Self::High => 2,
            Self::Critical => 3,
        }
    }

    pub fn from_code(code: i64) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|p| i64::from(p.code()) == code)
            .ok_or_else(|| Invalid::new("priority", format!("unknown priority code {code}")))
    }
}

/// Where a notification goes besides the inbox (it is always stored, listed and counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reach {
    /// Pushed to the user's open connections and replayed on resume.
    pub live: bool,
    /// Sent by web push to the user's browsers (the push work reads this decision).
    pub push: bool,
}

/// The delivery rule: `silenced` is what the recipient's preferences say (a muted
/// category, or quiet hours at the notification's time). `critical` ignores them,
/// everywhere; `low` is never pushed outside the inbox (live only when not silenced,
/// as any other); `normal` and `high` follow the preferences.
pub fn reach(priority: Priority, silenced: bool) -> Reach {
    match priority {
        Priority::Critical => Reach {
            live: true,
            push: true,
        },
        Priority::Low => Reach {
            live: !silenced,
            push: false,
        },
        Priority::Normal | Priority::High => Reach {
            live: !silenced,
            push: !silenced,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn critical_ignores_preferences_and_low_is_never_pushed() {
        use Priority::*;
        let table = [
            // priority, silenced, live, push
            (Low, false, true, false),
            (Low, true, false, false),
            (Normal, false, true, true),
            (Normal, true, false, false),
            (High, false, true, true),
            (High, true, false, false),
            (Critical, false, true, true),
            (Critical, true, true, true),
        ];
        for (priority, silenced, live, push) in table {
            assert_eq!(
                reach(priority, silenced),
                Reach { live, push },
                "{priority:?} silenced={silenced}"
            );
        }
    }

    #[test]
    fn priorities_round_trip_through_text_and_code() {
        for p in Priority::ALL {
            assert_eq!(Priority::parse(p.as_str()).unwrap(), p);
            assert_eq!(Priority::from_code(i64::from(p.code())).unwrap(), p);
        }
        assert_eq!(Priority::parse("urgent").unwrap_err().field, "priority");
        assert_eq!(Priority::parse("Critical").unwrap_err().field, "priority");
        assert!(Priority::from_code(7).is_err());
        assert_eq!(Priority::default(), Priority::Normal);
    }
}
