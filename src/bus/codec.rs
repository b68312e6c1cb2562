//! The byte format of an [`Envelope`] between nodes.
//!
//! A frame's `data` is already JSON, so it travels as a raw JSON value and the
//! receiving node rebuilds the [`Frame`] without re-encoding the payload. The
//! facts a session filters on (notification id, unread version) travel beside it.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{Delivery, Envelope};
use crate::domain::ids::{NodeId, NotificationId, TenantId, UserId};
use crate::domain::notification::UnreadCount;
use crate::wire::{Frame, FrameKind};

#[derive(Serialize, Deserialize)]
struct WireEnvelope<'a> {
    /// Origin node, hex.
    o: String,
    #[serde(borrow)]
    t: &'a str,
    #[serde(borrow)]
    d: Vec<WireDelivery<'a>>,
    /// Only in catch-up hints: the seq before the oldest event that was lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    f: Option<i64>,
}

/// What a bus message carries.
pub enum Decoded {
    Events(Envelope),
    /// "Events of this tenant were lost; catch its connections up (from `after`)".
    CatchUp {
        origin: NodeId,
        tenant: TenantId,
        after: Option<NotificationId>,
    },
}

/// A catch-up hint for `tenant`.
pub fn encode_hint(origin: NodeId, tenant: &TenantId, after: Option<NotificationId>) -> Vec<u8> {
    let wire = WireEnvelope {
        o: format!("{:032x}", origin.0),
        t: tenant.as_str(),
        d: Vec::new(),
        f: after.map(|a| a.seq()),
    };
    serde_json::to_vec(&wire).unwrap_or_default()
}

#[derive(Serialize, Deserialize)]
struct WireDelivery<'a> {
    #[serde(borrow)]
    u: &'a str,
    /// n: notification, c: unread count, r: read, a: read_all.
    k: char,
    /// Notification seq, or [unread, version, head] for counts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    x: Vec<i64>,
    #[serde(borrow)]
    b: &'a RawValue,
}

#[derive(Debug, thiserror::Error)]
#[error("bad bus message: {0}")]
pub struct DecodeError(String);

pub fn encode(envelope: &Envelope) -> Vec<u8> {
    let mut d = Vec::with_capacity(envelope.deliveries.len());
    for del in &envelope.deliveries {
        let (k, x) = match del.frame.kind() {
            FrameKind::Notification(id) => ('n', vec![id.seq()]),
            FrameKind::UnreadCount(c) => ('c', vec![c.unread, c.version, c.head]),
            FrameKind::Read => ('r', vec![]),
            FrameKind::ReadAll => ('a', vec![]),
            // Connection-local frames never cross nodes.
            FrameKind::Hello | FrameKind::Error | FrameKind::Pong => continue,
        };
        let Ok(text) = std::str::from_utf8(del.frame.data()) else {
            continue;
        };
        let Ok(b) = serde_json::from_str::<&RawValue>(text) else {
            continue;
        };
        d.push(WireDelivery {
            u: del.user.as_str(),
            k,
            x,
            b,
        });
    }
    let wire = WireEnvelope {
        o: format!("{:032x}", envelope.origin.0),
        t: envelope.tenant.as_str(),
        d,
        f: None,
    };
    serde_json::to_vec(&wire).unwrap_or_default()
}

pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let bad = |e: &dyn std::fmt::Display| DecodeError(e.to_string());
    let wire: WireEnvelope<'_> = serde_json::from_slice(bytes).map_err(|e| bad(&e))?;
    let origin = NodeId(u128::from_str_radix(&wire.o, 16).map_err(|e| bad(&e))?);
    let tenant = TenantId::parse(wire.t).map_err(|e| bad(&e))?;
    if wire.d.is_empty() {
        return Ok(Decoded::CatchUp {
            origin,
            tenant,
            after: wire.f.map(NotificationId::from_seq),
        });
    }
    let mut deliveries = Vec::with_capacity(wire.d.len());
    for d in wire.d {
        let kind = match (d.k, d.x.as_slice()) {
            ('n', [seq]) => FrameKind::Notification(NotificationId::from_seq(*seq)),
            ('c', [unread, version, head]) => FrameKind::UnreadCount(UnreadCount {
                unread: *unread,
                version: *version,
                head: *head,
            }),
            ('r', []) => FrameKind::Read,
            ('a', []) => FrameKind::ReadAll,
            _ => return Err(DecodeError(format!("unknown delivery kind {:?}", d.k))),
        };
        let user = UserId::parse(d.u).map_err(|e| bad(&e))?;
        deliveries.push(Delivery {
            user,
            frame: Frame::new(kind, d.b.get().as_bytes().to_vec()),
        });
    }
    Ok(Decoded::Events(Envelope {
        origin,
        tenant,
        deliveries,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_with_their_filter_facts() {
        let env = Envelope {
            origin: NodeId(0xabc),
            tenant: TenantId::parse("clinic-a").unwrap(),
            deliveries: vec![
                Delivery {
                    user: UserId::parse("u-1").unwrap(),
                    frame: Frame::new(
                        FrameKind::Notification(NotificationId::from_seq(7)),
                        r#"{"id":"n7","t":"مرحبا"}"#,
                    ),
                },
                Delivery {
                    user: UserId::parse("u-2").unwrap(),
                    frame: Frame::new(
                        FrameKind::UnreadCount(UnreadCount {
                            unread: 3,
                            version: 9,
                            head: 7,
                        }),
                        r#"{"unread":3,"version":9}"#,
                    ),
                },
                Delivery {
                    user: UserId::parse("u-1").unwrap(),
                    frame: Frame::new(FrameKind::Pong, "{}"),
                },
            ],
        };
        let Decoded::Events(back) = decode(&encode(&env)).unwrap() else {
            panic!("events expected")
        };
        assert_eq!(back.origin, env.origin);
        assert_eq!(back.tenant, env.tenant);
        assert_eq!(
            back.deliveries.len(),
            2,
            "connection-local frames are not sent"
        );
        assert_eq!(
            back.deliveries[0].frame.kind(),
            FrameKind::Notification(NotificationId::from_seq(7))
        );
        assert_eq!(
            &back.deliveries[0].frame.data()[..],
            r#"{"id":"n7","t":"مرحبا"}"#.as_bytes()
        );
        assert_eq!(
            back.deliveries[1].frame.kind(),
            FrameKind::UnreadCount(UnreadCount {
                unread: 3,
                version: 9,
                head: 7
            })
        );
        let hint = encode_hint(NodeId(1), &env.tenant, Some(NotificationId::from_seq(41)));
        match decode(&hint).unwrap() {
            Decoded::CatchUp {
                origin,
                tenant,
                after,
            } => {
                assert_eq!(origin, NodeId(1));
                assert_eq!(tenant, env.tenant);
                assert_eq!(after, Some(NotificationId::from_seq(41)));
            }
            Decoded::Events(_) => panic!("a hint decodes as a catch-up"),
        }
        assert!(decode(b"{}").is_err());
        assert!(decode(b"not json").is_err());
    }
}
