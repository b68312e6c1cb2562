//! Escalation steps: who else gets a notification when nobody of its chain has read
//! it after a while. Validated here once, for the API (`escalate` on publish) and
//! the clinic-event rules; errors name the JSON path (`escalate[1].after_s`).

use super::auth::Role;
use super::ids::UserId;
use super::Invalid;

/// Most steps one notification may have.
pub const MAX_STEPS: usize = 5;
/// The latest a step may come: 7 days after the publish.
pub const MAX_AFTER_SECS: i64 = 7 * 24 * 3600;

/// Who a step's copy goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EscalationTarget {
    User(UserId),
    /// Every directory user of the role when the step fires.
    Role(Role),
}

/// One step: `after_secs` after the publish, if the chain is still unread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationStep {
    pub after_secs: i64,
    pub to: EscalationTarget,
}

/// A step as it arrives: every field optional, so a missing one is named too.
#[derive(Debug, Clone, Default)]
pub struct StepInput<'a> {
    pub after_s: Option<i64>,
    pub user_id: Option<&'a str>,
    pub role: Option<&'a str>,
}

/// Validates the steps: 1..=[`MAX_STEPS`] of them, `after_s` in 1..=[`MAX_AFTER_SECS`]
/// and strictly increasing, `to` exactly one of `user_id` / `role`.
pub fn parse_steps(steps: &[StepInput<'_>]) -> Result<Vec<EscalationStep>, Invalid> {
    if steps.is_empty() || steps.len() > MAX_STEPS {
        return Err(Invalid::new(
            "escalate",
            format!("must list 1..{MAX_STEPS} steps"),
        ));
    }
    let mut out: Vec<EscalationStep> = Vec::with_capacity(steps.len());
    for (i, s) in steps.iter().enumerate() {
        let field = |f: &str| format!("escalate[{i}].{f}");
        let after = s
            .after_s
            .ok_or_else(|| Invalid::new(field("after_s"), "is required"))?;
        if !(1..=MAX_AFTER_SECS).contains(&after) {
            return Err(Invalid::new(
                field("after_s"),
                format!("must be 1..{MAX_AFTER_SECS} seconds"),
            ));
        }
        if let Some(prev) = out.last().filter(|p| p.after_secs >= after) {
            return Err(Invalid::new(
                field("after_s"),
                format!(
                    "must be greater than the previous step's ({})",
                    prev.after_secs
                ),
            ));
        }
        let to = match (s.user_id, s.role) {
            (Some(u), None) => EscalationTarget::User(
                UserId::parse(u).map_err(|e| Invalid::new(field("to.user_id"), e.message))?,
            ),
            (None, Some(r)) => EscalationTarget::Role(
                r.parse()
                    .map_err(|e: Invalid| Invalid::new(field("to.role"), e.message))?,
            ),
            _ => {
                return Err(Invalid::new(
                    field("to"),
                    "give exactly one of user_id, role",
                ))
            }
        };
        out.push(EscalationStep {
            after_secs: after,
            to,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(after: i64, user: &str) -> StepInput<'_> {
        StepInput {
            after_s: Some(after),
            user_id: Some(user),
            role: None,
        }
    }

    #[test]
    fn steps_are_bounded_increasing_and_name_their_path() {
        let ok = parse_steps(&[
            step(300, "u-1"),
            StepInput {
                after_s: Some(600),
                user_id: None,
                role: Some("front_desk"),
            },
        ])
        .unwrap();
        assert_eq!(ok[1].to, EscalationTarget::Role(Role::FrontDesk));
        let field = |steps: &[StepInput<'_>]| parse_steps(steps).unwrap_err().field;
        assert_eq!(field(&[]), "escalate");
        assert_eq!(field(&vec![step(1, "u"); 6]), "escalate");
        assert_eq!(
            field(&[step(300, "u"), step(300, "u")]),
            "escalate[1].after_s"
        );
        assert_eq!(
            field(&[step(300, "u"), step(200, "u")]),
            "escalate[1].after_s"
        );
        assert_eq!(field(&[step(0, "u")]), "escalate[0].after_s");
        assert_eq!(
            field(&[step(MAX_AFTER_SECS + 1, "u")]),
            "escalate[0].after_s"
        );
        assert!(parse_steps(&[step(MAX_AFTER_SECS, "u")]).is_ok());
        let none = StepInput {
            after_s: Some(5),
            ..Default::default()
        };
        assert_eq!(field(&[step(1, "u"), none]), "escalate[1].to");
        let both = StepInput {
            after_s: Some(5),
            user_id: Some("u"),
            role: Some("admin"),
        };
        assert_eq!(field(&[both]), "escalate[0].to");
        let bad_role = StepInput {
            after_s: Some(5),
            user_id: None,
            role: Some("janitor"),
        };
        assert_eq!(field(&[bad_role]), "escalate[0].to.role");
        assert_eq!(field(&[step(5, "")]), "escalate[0].to.user_id");
        let missing = StepInput {
            after_s: None,
            user_id: Some("u"),
            role: None,
        };
        assert_eq!(field(&[missing]), "escalate[0].after_s");
    }
}
