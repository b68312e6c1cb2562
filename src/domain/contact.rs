//! How a patient is reached: a phone number (E.164) or an email address.
//!
//! Both are parsed once at the edge; providers receive these types and never
//! re-validate. Neither type normalises its input (not even trimming): a value
//! that is not already canonical is refused, so what is stored is exactly what is sent.

use std::fmt;

use super::Invalid;

/// A phone number in E.164: `+`, then 8 to 15 digits, the first not `0`.
///
/// Spaces, dashes, brackets and a leading `00` are refused rather than cleaned up:
/// the clinic system owns the number and should send it canonical; guessing a
/// country code for a local number would message the wrong person.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(String);

/// Fewest digits after the `+`. E.164 allows shorter numbers in theory, but no mobile
/// number that SMS or WhatsApp can reach is shorter than this.
const PHONE_MIN_DIGITS: usize = 8;
/// E.164's maximum.
const PHONE_MAX_DIGITS: usize = 15;

impl PhoneNumber {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        Self::parse_field("phone", raw)
    }

    /// As [`PhoneNumber::parse`], naming `field` in the error (e.g. `recipients[3].to`).
    pub fn parse_field(field: &str, raw: &str) -> Result<Self, Invalid> {
        let Some(digits) = raw.strip_prefix('+') else {
            return Err(Invalid::new(
                field,
                "must be E.164: + and the country code, e.g. +966501234567",
            ));
        };
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Invalid::new(field, "must be + followed by digits only"));
        }
        if !(PHONE_MIN_DIGITS..=PHONE_MAX_DIGITS).contains(&digits.len()) {
            return Err(Invalid::new(
                field,
                format!("must have {PHONE_MIN_DIGITS} to {PHONE_MAX_DIGITS} digits after +"),
            ));
        }
        if digits.starts_with('0') {
            return Err(Invalid::new(field, "country code cannot start with 0"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The canonical form, `+966501234567`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits without the `+` (`966501234567`), as Unifonic and WhatsApp want them.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address, validated with practical rules rather than all of RFC 5322:
/// one `@`; a local part of 1..=64 printable ASCII characters without spaces, quotes,
/// angle brackets, commas, semicolons or backslashes, and without leading, trailing or
/// doubled dots; a domain of at least two dot-separated labels, each 1..=63 letters,
/// digits or hyphens not at either end, the last one not all digits; 254 bytes at most.
///
/// Quoted local parts and IP-literal domains are valid RFC 5322 but are refused: no
/// patient has one, and they are a favourite of header-injection attempts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EmailAddress(String);

/// RFC 5321's limit on a forward path.
const EMAIL_MAX_LEN: usize = 254;
const EMAIL_LOCAL_MAX_LEN: usize = 64;
const DOMAIN_LABEL_MAX_LEN: usize = 63;

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        Self::parse_field("email", raw)
    }

    /// As [`EmailAddress::parse`], naming `field` in the error.
    pub fn parse_field(field: &str, raw: &str) -> Result<Self, Invalid> {
        let bad = |why: &str| Err(Invalid::new(field, why));
        if raw.is_empty() {
            return bad("must not be empty");
        }
        if raw.len() > EMAIL_MAX_LEN {
            return bad("must be at most 254 bytes");
        }
        let Some((local, domain)) = raw.split_once('@') else {
            return bad("must contain @");
        };
        if domain.contains('@') {
            return bad("must contain exactly one @");
        }
        if local.is_empty() || local.len() > EMAIL_LOCAL_MAX_LEN {
            return bad("the part before @ must be 1 to 64 characters");
        }
        let local_ok = local.bytes().all(|b| {
            b.is_ascii_graphic()
                && !matches!(
                    b,
                    b'"' | b'(' | b')' | b',' | b':' | b';' | b'<' | b'>' | b'[' | b']' | b'\\'
                )
        });
        if !local_ok {
            return bad("the part before @ has a character that is not allowed");
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return bad("the part before @ cannot start or end with a dot or have two in a row");
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 {
            return bad("the domain must have a dot, e.g. clinic.example");
        }
        for label in &labels {
            let ok = !label.is_empty()
                && label.len() <= DOMAIN_LABEL_MAX_LEN
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return bad("the domain must be letters, digits, hyphens and dots");
            }
        }
        if labels
            .last()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
        {
            return bad("the domain cannot end in a number");
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where one message goes: the address kind decides which channels can carry it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    Phone(PhoneNumber),
    Email(EmailAddress),
}

impl Address {
    pub fn as_str(&self) -> &str {
        match self {
            Address::Phone(p) => p.as_str(),
            Address::Email(e) => e.as_str(),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_e164_numbers() {
        for ok in [
            "+966501234567",
            "+14155550100",
            "+12345678",
            "+123456789012345",
        ] {
            let p = PhoneNumber::parse(ok).unwrap();
            assert_eq!(p.as_str(), ok);
            assert_eq!(p.digits(), &ok[1..]);
        }
    }

    #[test]
    fn refuses_numbers_that_are_not_e164() {
        let cases = [
            (
                "966501234567",
                "must be E.164: + and the country code, e.g. +966501234567",
            ),
            (
                "00966501234567",
                "must be E.164: + and the country code, e.g. +966501234567",
            ),
            ("+966 50 123 4567", "must be + followed by digits only"),
            ("+966-501234567", "must be + followed by digits only"),
            ("+1234567", "must have 8 to 15 digits after +"),
            ("+1234567890123456", "must have 8 to 15 digits after +"),
            ("+0966501234567", "country code cannot start with 0"),
            ("+", "must have 8 to 15 digits after +"),
            (
                "",
                "must be E.164: + and the country code, e.g. +966501234567",
            ),
            ("+٩٦٦٥٠١٢٣٤٥٦٧", "must be + followed by digits only"),
        ];
        for (raw, why) in cases {
            let err = PhoneNumber::parse(raw).unwrap_err();
            assert_eq!(err, Invalid::new("phone", why), "input {raw:?}");
        }
        assert_eq!(
            PhoneNumber::parse_field("recipients[2].to", "123")
                .unwrap_err()
                .field,
            "recipients[2].to"
        );
    }

    #[test]
    fn accepts_practical_emails() {
        for ok in [
            "patient@clinic.example",
            "first.last+tag@mail.clinic.sa",
            "a@b.co",
            "o'neil@x-ray.example",
            "user_1@xn--mgbh0fb.example",
        ] {
            assert_eq!(EmailAddress::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_broken_emails() {
        let long_local = format!("{}@clinic.example", "a".repeat(65));
        let long_total = format!("a@{}.example", "b".repeat(250));
        let cases: Vec<(&str, &str)> = vec![
            ("", "must not be empty"),
            ("patient.clinic.example", "must contain @"),
            ("a@b@clinic.example", "must contain exactly one @"),
            (
                "@clinic.example",
                "the part before @ must be 1 to 64 characters",
            ),
            (&long_local, "the part before @ must be 1 to 64 characters"),
            (&long_total, "must be at most 254 bytes"),
            (
                "pat ient@clinic.example",
                "the part before @ has a character that is not allowed",
            ),
            (
                "\"quoted\"@clinic.example",
                "the part before @ has a character that is not allowed",
            ),
            (
                "a<b>@clinic.example",
                "the part before @ has a character that is not allowed",
            ),
            (
                ".a@clinic.example",
                "the part before @ cannot start or end with a dot or have two in a row",
            ),
            (
                "a..b@clinic.example",
                "the part before @ cannot start or end with a dot or have two in a row",
            ),
            (
                "a@localhost",
                "the domain must have a dot, e.g. clinic.example",
            ),
            (
                "a@clinic..example",
                "the domain must be letters, digits, hyphens and dots",
            ),
            (
                "a@-clinic.example",
                "the domain must be letters, digits, hyphens and dots",
            ),
            (
                "a@clinic.example\r\nBcc",
                "the domain must be letters, digits, hyphens and dots",
            ),
            (
                "a@[127.0.0.1]",
                "the domain must be letters, digits, hyphens and dots",
            ),
            ("a@10.0.0.1", "the domain cannot end in a number"),
            (
                "مريض@clinic.example",
                "the part before @ has a character that is not allowed",
            ),
        ];
        for (raw, why) in cases {
            let err = EmailAddress::parse(raw).unwrap_err();
            assert_eq!(err, Invalid::new("email", why), "input {raw:?}");
        }
    }

    #[test]
    fn address_displays_its_canonical_form() {
        let a = Address::Phone(PhoneNumber::parse("+966501234567").unwrap());
        assert_eq!(a.to_string(), "+966501234567");
        let e = Address::Email(EmailAddress::parse("p@clinic.example").unwrap());
        assert_eq!(e.as_str(), "p@clinic.example");
    }
}
