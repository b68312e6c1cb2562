//! nul-postgres: the attacker publishes text fields carrying NUL (`\u0000`: PostgreSQL's
//! `text` cannot store it) at a high rate while the victim publishes. Every NUL publish must
//! be refused with a 4xx naming the field, and none may fail or delay anybody else's (a
//! group commit shared with a poisoned row must not fail as a whole).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::{kinds, paced, AttackReport, Check, Tally};
use crate::cli::HostileArgs;
use crate::rest::RestClient;
use crate::scenario::Context;

/// Publishes in flight at most.
const IN_FLIGHT: usize = 64;

/// The recipient of the attacker's publishes.
const USER: &str = "hostile-nul";

/// Where the NUL goes, in turn: every text field the contract says refuses it.
const FIELDS: [&str; 3] = ["title", "message", "category"];

pub(super) struct Plan {
    rest: RestClient,
    rate: f64,
}

impl Plan {
    pub(super) fn new(ctx: &Context, args: &HostileArgs) -> Result<Self> {
        Ok(Self {
            rest: ctx.rest(IN_FLIGHT, Duration::from_secs(10))?,
            rate: args.nul_rate,
        })
    }

    pub(super) async fn run(self, cancel: CancellationToken) -> AttackReport {
        let answers = Arc::new(Tally::default());
        let not_4xx = Arc::new(AtomicU64::new(0));
        let samples = Arc::new(Mutex::new(
            std::collections::BTreeMap::<String, String>::new(),
        ));
        let sent = paced(self.rate, IN_FLIGHT, &cancel, |i| {
            let field = FIELDS[i as usize % FIELDS.len()];
            let body = serde_json::to_vec(&body_with_nul(field, i)).unwrap_or_default();
            let rest = self.rest.clone();
            let (answers, not_4xx, samples) = (answers.clone(), not_4xx.clone(), samples.clone());
            async move {
                let kind = match rest.publish(body).await {
                    Ok(r) => {
                        let kind = format!("{field}: http {}", r.status);
                        if !(400..500).contains(&r.status) {
                            not_4xx.fetch_add(1, Ordering::Relaxed);
                        }
                        samples
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .entry(kind.clone())
                            .or_insert_with(|| {
                                String::from_utf8_lossy(&r.body[..r.body.len().min(200)])
                                    .into_owned()
                            });
                        kind
                    }
                    Err(e) => {
                        not_4xx.fetch_add(1, Ordering::Relaxed);
                        format!("{field}: {}", e.kind())
                    }
                };
                answers.add(kind);
            }
        })
        .await;
        let answers = answers.snapshot();
        let samples = samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let not_4xx = not_4xx.load(Ordering::Relaxed);
        AttackReport {
            rows: vec![
                ("NUL publishes sent".into(), sent.to_string()),
                ("NUL publishes: answers".into(), kinds(&answers)),
            ],
            json: json!({"sent": sent, "rate_asked": self.rate, "answers": answers,
                         "first_bodies": samples}),
            checks: vec![Check::zero(
                "NUL publishes not answered 4xx",
                not_4xx,
                format!("{}; first bodies: {samples:?}", kinds(&answers)),
            )],
        }
    }
}

/// A publish whose `field` carries a NUL in the middle of otherwise valid text.
fn body_with_nul(field: &str, i: u64) -> Value {
    let mut body = json!({
        "user_id": USER,
        "title": format!("title {i}"),
        "message": format!("message {i}"),
        "category": "hostile.nul",
    });
    body[field] = Value::String(format!("before\u{0}after {i}"));
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_body_carries_one_nul_in_its_field() {
        for (i, field) in FIELDS.iter().enumerate() {
            let body = body_with_nul(field, i as u64);
            let text = serde_json::to_string(&body).unwrap();
            assert_eq!(text.matches("\\u0000").count(), 1, "{text}");
            assert!(body[*field].as_str().unwrap().contains('\0'));
        }
    }
}
