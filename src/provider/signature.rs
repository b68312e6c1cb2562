//! Webhook signatures: proof that a status callback comes from the provider.
//! Comparisons are constant-time (`hmac`'s `verify_slice`), so a forger learns
//! nothing from response timing.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

/// Twilio's `X-Twilio-Signature`: base64(HMAC-SHA1(auth token, URL + every POST
/// parameter's name and value, sorted by name)). `url` is the full URL Twilio
/// called, scheme, host, port (if any), path and query exactly as configured.
/// Parameters with the same name are sorted by value too.
pub fn twilio_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(twilio_mac(auth_token, url, params).finalize().into_bytes())
}

fn twilio_mac(auth_token: &str, url: &str, params: &[(String, String)]) -> Hmac<Sha1> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac =
        Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

/// Checks an `X-Twilio-Signature` header.
pub fn verify_twilio(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    header: &str,
) -> bool {
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(header.trim()) else {
        return false;
    };
    twilio_mac(auth_token, url, params)
        .verify_slice(&given)
        .is_ok()
}

/// Meta's `X-Hub-Signature-256`: `sha256=` + hex(HMAC-SHA256(app secret, raw body)).
pub fn meta_signature(app_secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks an `X-Hub-Signature-256` header against the raw body, byte for byte as
/// received (re-serialised JSON would not match).
pub fn verify_meta(app_secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(given) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac =
        Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// Compares two secrets (a URL token, a verify token) without leaking where they
/// differ: both hashed first, then compared in full.
pub fn same_secret(a: &str, b: &str) -> bool {
    use sha2::Digest;
    let (x, y) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Twilio's published example (twilio.com/docs/usage/security, and the test
    /// suites of Twilio's helper libraries): auth token `12345`.
    const TWILIO_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    fn twilio_params() -> Vec<(String, String)> {
        // Deliberately not in sorted order: the algorithm sorts.
        params(&[
            ("To", "+18005551212"),
            ("From", "+14158675310"),
            ("Digits", "1234"),
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675310"),
        ])
    }

    #[test]
    fn twilio_published_vector() {
        assert_eq!(
            twilio_signature("12345", TWILIO_URL, &twilio_params()),
            "GvWf1cFY/Q7PnoempGyD5oXAezc="
        );
        assert!(verify_twilio(
            "12345",
            TWILIO_URL,
            &twilio_params(),
            "GvWf1cFY/Q7PnoempGyD5oXAezc="
        ));
    }

    #[test]
    fn twilio_rejects_any_change() {
        let sig = "GvWf1cFY/Q7PnoempGyD5oXAezc=";
        assert!(!verify_twilio("12346", TWILIO_URL, &twilio_params(), sig));
        assert!(!verify_twilio(
            "12345",
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            &twilio_params(),
            sig
        ));
        assert!(!verify_twilio(
            "12345",
            "http://mycompany.com/myapp.php?foo=1&bar=2",
            &twilio_params(),
            sig
        ));
        let mut tampered = twilio_params();
        tampered[2].1 = "9999".into();
        assert!(!verify_twilio("12345", TWILIO_URL, &tampered, sig));
        let mut extra = twilio_params();
        extra.push(("MessageStatus".into(), "delivered".into()));
        assert!(!verify_twilio("12345", TWILIO_URL, &extra, sig));
        assert!(!verify_twilio("12345", TWILIO_URL, &twilio_params(), ""));
        assert!(!verify_twilio(
            "12345",
            TWILIO_URL,
            &twilio_params(),
            "not base64!"
        ));
        assert!(!verify_twilio(
            "12345",
            TWILIO_URL,
            &twilio_params(),
            "GvWf1cFY/Q7PnoempGyD5oXAeza="
        ));
    }

    #[test]
    fn meta_signature_round_trip_and_known_value() {
        // Computed independently: printf '{"object":"whatsapp_business_account"}' |
        //   openssl dgst -sha256 -hmac 'app-secret'
        let body = br#"{"object":"whatsapp_business_account"}"#;
        let sig = meta_signature("app-secret", body);
        assert_eq!(sig, KNOWN_META);
        assert!(verify_meta("app-secret", body, &sig));
        assert!(!verify_meta("other-secret", body, &sig));
        assert!(!verify_meta(
            "app-secret",
            br#"{"object": "whatsapp_business_account"}"#,
            &sig
        ));
        assert!(!verify_meta(
            "app-secret",
            body,
            &sig.replace("sha256=", "sha1=")
        ));
        assert!(!verify_meta("app-secret", body, &sig[7..]));
        assert!(!verify_meta("app-secret", body, "sha256=zz"));
        assert!(!verify_meta("app-secret", body, ""));
    }

    const KNOWN_META: &str =
        "sha256=0bf7374433906636bed1653bc7c64affb42fa5da9a39e251ab95c2e3a9c06923";
}
