//! The rules every text field a client sends shares (../shared/API.md, "Additions").
//!
//! Text refuses NUL and the other C0 control characters except tab, LF and CR:
//! PostgreSQL cannot store NUL in `text` or `jsonb` at all (one such value used to
//! fail a whole group-commit batch, other tenants' publishes included), and the
//! rest have no business in a clinic's names and messages (terminal escapes in
//! logs, invisible characters in a CSV).
//!
//! Every check here is a byte scan without allocation: the publish hot path runs it
//! on every body.

use super::Invalid;

/// True for the characters no text field may hold.
pub fn is_disallowed_byte(b: u8) -> bool {
    b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')
}

/// Refuses a value holding a disallowed control character, naming `field`.
pub fn check(field: &str, value: &str) -> Result<(), Invalid> {
    if value.bytes().any(is_disallowed_byte) {
        return Err(control_characters(field));
    }
    Ok(())
}

/// The error for a field holding a disallowed control character.
pub fn control_characters(field: &str) -> Invalid {
    Invalid::new(
        field,
        "must not contain control characters (other than tab, LF, CR)",
    )
}

/// An optional text of at most `max` characters (an absent value is fine, an
/// empty one too: it clears the field), without control characters.
pub fn check_optional(field: &str, value: Option<&str>, max: usize) -> Result<(), Invalid> {
    let Some(v) = value else { return Ok(()) };
    if v.chars().count() > max {
        return Err(Invalid::new(field, format!("at most {max} characters")));
    }
    check(field, v)
}

/// True when a JSON text (a request body) holds an escape that decodes to a
/// disallowed control character: `\b`, `\f` or `\u0000`..`\u001F` other than tab,
/// LF and CR. Raw control characters inside strings are already a JSON syntax
/// error; outside strings a backslash is one too, so no string tracking is needed.
pub fn json_has_control_escape(json: &[u8]) -> bool {
    let mut i = 0;
    while i < json.len() {
        if json[i] != b'\\' {
            i += 1;
            continue;
        }
        match json.get(i + 1) {
            Some(b'b' | b'f') => return true,
            Some(b'u') => {
                if let Some(code) = json.get(i + 2..i + 6).and_then(hex4) {
                    if u8::try_from(code).is_ok_and(is_disallowed_byte) {
                        return true;
                    }
                }
                i += 6;
            }
            // `\\`, `\"`, `\n`...: two bytes, whatever follows is a new token.
            _ => i += 2,
        }
    }
    false
}

fn hex4(digits: &[u8]) -> Option<u32> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| u32::from_str_radix(s, 16).ok())
}

/// The deepest nesting of arrays and objects in a JSON text (0 for a scalar,
/// 1 for `{}`). Brackets inside strings do not count.
pub fn json_depth(json: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut in_string = false;
    let mut escaped = false;
    for &b in json {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// A link a notification may carry: an absolute `https://` / `http://` URL, or a
/// path on the same site starting with a single `/`. No backslash and no control
/// character anywhere: browsers read `/\evil.example` as `//evil.example` (another
/// site) and drop tabs and newlines before resolving (`/\t/evil.example`).
pub fn check_link(link: &str) -> Result<(), Invalid> {
    let bad = || {
        Invalid::new(
            "link",
            "must be an http(s) URL or a path starting with a single /",
        )
    };
    if link.bytes().any(|b| b == b'\\' || b < 0x20 || b == 0x7f) {
        return Err(bad());
    }
    let lower = link.get(..8).unwrap_or(link).to_ascii_lowercase();
    let absolute = lower.starts_with("https://") || lower.starts_with("http://");
    let path = link.starts_with('/') && !link.starts_with("//");
    if absolute || path {
        Ok(())
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_refused_except_tab_lf_cr() {
        assert!(check("title", "a\tb\nc\r").is_ok());
        assert!(check("title", "موعد").is_ok());
        for bad in ["a\0b", "\u{1}", "x\u{1b}[31m", "\u{1f}", "\u{8}", "\u{c}"] {
            assert_eq!(check("title", bad).unwrap_err().field, "title", "{bad:?}");
        }
    }

    #[test]
    fn json_escapes_of_control_characters_are_found() {
        for bad in [
            r#"{"a":"\u0000"}"#,
            r#"{"a":"x\u001Fy"}"#,
            r#"{"a":"\u001b"}"#,
            r#"{"a":"\b"}"#,
            r#"{"a":"\f"}"#,
            r#"{"\u0001":1}"#,
        ] {
            assert!(json_has_control_escape(bad.as_bytes()), "{bad}");
        }
        for good in [
            r#"{"a":"\t\n\r\u0009\u000A\u000d"}"#,
            r#"{"a":"\\u0000"}"#,
            r#"{"a":"\\\\b\\f"}"#,
            r#"{"a":"\u0020\u00e9\u2028"}"#,
            r#"{"a":"\"\u0030"}"#,
            "{\"a\":\"trailing backslash\\",
        ] {
            assert!(!json_has_control_escape(good.as_bytes()), "{good}");
        }
    }

    #[test]
    fn depth_counts_nesting_outside_strings() {
        assert_eq!(json_depth(b"1"), 0);
        assert_eq!(json_depth(b"{}"), 1);
        assert_eq!(json_depth(br#"{"a":[{"b":"[[[{"}]}"#), 3);
        assert_eq!(json_depth(br#"{"a":"\"[[","b":[]}"#), 2);
        let deep = format!("{}{}", "[".repeat(4000), "]".repeat(4000));
        assert_eq!(json_depth(deep.as_bytes()), 4000);
    }

    #[test]
    fn links_are_http_urls_or_same_site_paths() {
        for good in [
            "https://clinic.example/a?b=c",
            "HTTP://clinic.example",
            "/appointments/42",
            "/",
        ] {
            assert!(check_link(good).is_ok(), "{good}");
        }
        for bad in [
            "//evil.example",
            "/\\evil.example/phish",
            "\\\\evil.example",
            "/\t/evil.example",
            "javascript:alert(1)",
            "appointments/42",
            "https:evil.example",
            " https://x",
            "",
        ] {
            assert_eq!(check_link(bad).unwrap_err().field, "link", "{bad:?}");
        }
    }
}
