//! The SMTP adapter against a real SMTP server (aiosmtpd, started by the test):
//! what arrives, byte for byte after MIME decoding, and how 4xx/5xx replies are
//! classified.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tidings::domain::contact::{Address, EmailAddress};
use tidings::domain::message::MessageId;
use tidings::domain::template::{Channel, Language};
use tidings::provider::config::Secret;
use tidings::provider::limit::RateLimit;
use tidings::provider::smtp::{Smtp, SmtpConfig, SmtpTls};
use tidings::provider::{OutboundMessage, Provider, ProviderError};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running aiosmtpd; killed when dropped.
pub struct SmtpServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    _child: Child,
}

/// The Python that has aiosmtpd: `TIDINGS_TEST_SMTP_PYTHON` (scripts/test sets it),
/// else Debian's /usr/bin/python3 (where python3-aiosmtpd installs), else `python3`.
fn python() -> String {
    if let Ok(p) = std::env::var("TIDINGS_TEST_SMTP_PYTHON") {
        return p;
    }
    if Path::new("/usr/bin/python3").exists() {
        return "/usr/bin/python3".into();
    }
    "python3".into()
}

pub async fn start_smtp() -> SmtpServer {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/contract/smtp_server.py");
    let mut child = Command::new(python())
        .arg(&script)
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start python for the SMTP server");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    let read = tokio::time::timeout(
        Duration::from_secs(15),
        BufReader::new(stdout).read_line(&mut line),
    )
    .await;
    let port: u16 = match read {
        Ok(Ok(_)) => line.trim().parse().unwrap_or_else(|_| {
            panic!("the SMTP server did not start (is aiosmtpd installed? scripts/test installs python3-aiosmtpd); it printed {line:?}")
        }),
        other => panic!("the SMTP server did not start within 15 s: {other:?}"),
    };
    SmtpServer {
        port,
        dir,
        _child: child,
    }
}

fn smtp_config(port: u16) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        tls: SmtpTls::None,
        username: None,
        password: None,
        from: "Clinic Reminders <noreply@clinic.example>".into(),
        timeout_ms: 5000,
        rate_limit: RateLimit {
            per_second: 0,
            burst: 0,
        },
    }
}

fn email(to: &str, subject: &str, body: &str) -> OutboundMessage {
    OutboundMessage {
        id: MessageId::new_random(),
        channel: Channel::Email,
        to: Address::Email(EmailAddress::parse(to).unwrap()),
        language: Language::Ar,
        subject: Some(subject.into()),
        body: body.into(),
        whatsapp_template: None,
    }
}

pub fn received(dir: &Path) -> Vec<Value> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}

#[tokio::test]
async fn smtp_delivers_arabic_mail_exactly() {
    let server = start_smtp().await;
    let smtp = Smtp::new("mail", smtp_config(server.port)).unwrap();
    let subject = "تذكير بموعدك — عيادة الأسنان";
    let body = "\u{200F}عَزِيزِي أَحْمَد،\nموعدك غداً الساعة ١٠:٠٠.\n\nClinic: Riyadh\n";
    let msg = email("patient@example.org", subject, body);
    let ok = smtp.send(&msg).await.unwrap();
    assert_eq!(
        ok.provider_message_id,
        format!("<{}@clinic.example>", msg.id)
    );
    assert!(ok.raw.starts_with("250 "), "{}", ok.raw);

    let got = received(server.dir.path());
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m["mail_from"], "noreply@clinic.example");
    assert_eq!(m["rcpt_tos"], serde_json::json!(["patient@example.org"]));
    assert_eq!(m["from"], "Clinic Reminders <noreply@clinic.example>");
    assert_eq!(m["to"], "patient@example.org");
    assert_eq!(m["subject"], subject);
    assert_eq!(m["message_id"], format!("<{}@clinic.example>", msg.id));
    assert_eq!(m["content_type"], "text/plain");
    assert_eq!(m["charset"], "utf-8");
    // MIME-decoded by Python's email package; the line ending is normalised by SMTP.
    assert_eq!(m["body"].as_str().unwrap().replace("\r\n", "\n"), body);
}

#[tokio::test]
async fn smtp_4xx_is_transient_and_5xx_is_a_bounce() {
    let server = start_smtp().await;
    let smtp = Smtp::new("mail", smtp_config(server.port)).unwrap();
    match smtp.send(&email("tempfail@example.org", "s", "b")).await {
        Err(ProviderError::Transient {
            code,
            message,
            retry_after: None,
        }) => {
            assert_eq!(code, "451");
            assert!(message.contains("try again later"), "{message}");
        }
        other => panic!("expected a transient error, got {other:?}"),
    }
    match smtp.send(&email("nobody@example.org", "s", "b")).await {
        Err(ProviderError::Rejected { code, message }) => {
            assert_eq!(code, "550");
            assert!(message.contains("Mailbox unavailable"), "{message}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert!(
        received(server.dir.path()).is_empty(),
        "nothing was accepted"
    );
    // The server is fine for everyone else.
    smtp.send(&email("ok@example.org", "s", "b")).await.unwrap();
    assert_eq!(received(server.dir.path()).len(), 1);
}

#[tokio::test]
async fn smtp_connection_refused_is_transient_and_bad_config_is_refused() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let smtp = Smtp::new("mail", smtp_config(port)).unwrap();
    let err = smtp
        .send(&email("ok@example.org", "s", "b"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Transient { ref code, .. } if code == "connection"),
        "{err:?}"
    );

    let mut plain_with_password = smtp_config(port);
    plain_with_password.username = Some("u".into());
    plain_with_password.password = Some(Secret::new("p"));
    assert_eq!(
        Smtp::new("mail", plain_with_password).err().unwrap(),
        ProviderError::Misconfigured {
            code: "config".into(),
            message: "providers.mail.tls: credentials need starttls or tls".into()
        }
    );
}

#[tokio::test]
async fn smtp_starttls_required_fails_against_a_plaintext_server() {
    // aiosmtpd here offers no STARTTLS: a `starttls` config must refuse to send in
    // the clear rather than fall back.
    let server = start_smtp().await;
    let mut cfg = smtp_config(server.port);
    cfg.tls = SmtpTls::Starttls;
    let smtp = Smtp::new("mail", cfg).unwrap();
    let err = smtp
        .send(&email("ok@example.org", "s", "b"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Misconfigured { ref code, ref message } if code == "client" && message.contains("STARTTLS")),
        "{err:?}"
    );
    assert!(
        received(server.dir.path()).is_empty(),
        "nothing sent in the clear"
    );
}
