//! Dates and times as a patient reads them, in the clinic's time zone.
//!
//! English: `Saturday 28 November 2026`, `10:00 AM`. Arabic: `السبت 28 نوفمبر 2026`,
//! `10:00 ص` — Gulf month names (يناير … ديسمبر, as Saudi clinics and banks write
//! them), ص/م for morning/afternoon, and **Latin digits**: Saudi SMS traffic
//! (banks, ministries, clinics) writes numbers in Latin digits, they match the
//! appointment number and the phone keypad, and they survive every SMS gateway's
//! encoding unchanged. See docs/EVENTS.md ("Dates and times").

use chrono::{DateTime, Datelike, Timelike, Utc, Weekday};
use chrono_tz::Tz;

use super::template::Language;

const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

const MONTHS_AR: [&str; 12] = [
    "يناير",
    "فبراير",
    "مارس",
    "أبريل",
    "مايو",
    "يونيو",
    "يوليو",
    "أغسطس",
    "سبتمبر",
    "أكتوبر",
    "نوفمبر",
    "ديسمبر",
];

fn weekday(day: Weekday, language: Language) -> &'static str {
    match (language, day) {
        (Language::En, Weekday::Mon) => "Monday",
        (Language::En, Weekday::Tue) => "Tuesday",
        (Language::En, Weekday::Wed) => "Wednesday",
        (Language::En, Weekday::Thu) => "Thursday",
        (Language::En, Weekday::Fri) => "Friday",
        (Language::En, Weekday::Sat) => "Saturday",
        (Language::En, Weekday::Sun) => "Sunday",
        (Language::Ar, Weekday::Mon) => "الإثنين",
        (Language::Ar, Weekday::Tue) => "الثلاثاء",
        (Language::Ar, Weekday::Wed) => "الأربعاء",
        (Language::Ar, Weekday::Thu) => "الخميس",
        (Language::Ar, Weekday::Fri) => "الجمعة",
        (Language::Ar, Weekday::Sat) => "السبت",
        (Language::Ar, Weekday::Sun) => "الأحد",
    }
}

/// The calendar date of `t` in `tz`, with the weekday.
pub fn date(t: DateTime<Utc>, tz: Tz, language: Language) -> String {
    let local = t.with_timezone(&tz);
    let month = local.month0() as usize;
    let name = match language {
        Language::En => MONTHS_EN[month],
        Language::Ar => MONTHS_AR[month],
    };
    format!(
        "{} {} {} {}",
        weekday(local.weekday(), language),
        local.day(),
        name,
        local.year()
    )
}

/// The clock time of `t` in `tz`, 12-hour (how both languages say it in the Gulf).
pub fn time(t: DateTime<Utc>, tz: Tz, language: Language) -> String {
    let local = t.with_timezone(&tz);
    let (pm, hour) = local.hour12();
    let marker = match (language, pm) {
        (Language::En, false) => "AM",
        (Language::En, true) => "PM",
        (Language::Ar, false) => "ص",
        (Language::Ar, true) => "م",
    };
    format!("{hour}:{:02} {marker}", local.minute())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn riyadh_dates_in_both_languages() {
        let tz: Tz = "Asia/Riyadh".parse().unwrap();
        // 21:30 UTC on Friday is 00:30 on Saturday in Riyadh (UTC+3).
        let at = t("2026-11-27T21:30:00Z");
        assert_eq!(date(at, tz, Language::En), "Saturday 28 November 2026");
        assert_eq!(date(at, tz, Language::Ar), "السبت 28 نوفمبر 2026");
        assert_eq!(time(at, tz, Language::En), "12:30 AM");
        assert_eq!(time(at, tz, Language::Ar), "12:30 ص");
        let afternoon = t("2026-11-28T13:05:00Z");
        assert_eq!(time(afternoon, tz, Language::En), "4:05 PM");
        assert_eq!(time(afternoon, tz, Language::Ar), "4:05 م");
    }
}
