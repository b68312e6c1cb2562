//! Property tests of the decoders at the edge: whatever bytes a client sends, a
//! body through `parse_json` (and a cursor through `page_request`) is either
//! accepted or refused with a 4xx in the contract's shape, never a panic, and a
//! text field holding a control character is always a 422 naming that field.

use axum::http::{header, HeaderMap, HeaderValue};
use proptest::prelude::*;
use serde_json::json;

use super::error::ApiError;
use super::extract::{encode_cursor, page_request, parse_json};
use super::notifications::PublishBody;
use crate::domain::clinic_event::ClinicEvent;
use crate::domain::notification::{ContentInput, NotificationContent};
use crate::wire::events::EventBody;
use crate::wire::outbound::SendBody;

fn json_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h
}

fn assert_client_error(e: &ApiError) {
    assert!(e.status.is_client_error(), "{e:?}");
    assert!(!e.code.is_empty() && !e.message.is_empty(), "{e:?}");
}

/// Parses `body` as every main wire type, then runs the domain parse the handler
/// runs next: nothing may panic, every refusal is a 4xx.
fn decode_all(body: &[u8]) {
    let h = json_headers();
    match parse_json::<PublishBody>(&h, body) {
        Ok(p) => {
            let data_json = p.data.as_ref().map(|d| d.get().to_owned());
            let _ = NotificationContent::parse(ContentInput {
                title: &p.title,
                message: &p.message,
                kind: p.kind.as_deref(),
                category: p.category.as_deref(),
                related: p.related.as_ref().map(|r| (r.kind.as_str(), r.id.as_str())),
                link: p.link.as_deref(),
                data_json,
                priority: p.priority.as_deref(),
            });
        }
        Err(e) => assert_client_error(&e),
    }
    match parse_json::<EventBody>(&h, body) {
        Ok(ev) => {
            let _ = ClinicEvent::parse(&ev.into_input());
        }
        Err(e) => assert_client_error(&e),
    }
    if let Err(e) = parse_json::<SendBody>(&h, body) {
        assert_client_error(&e);
    }
}

/// A JSON string literal holding `s`, with control characters as `\uXXXX` escapes
/// (how a client sends them: raw ones are a syntax error).
fn literal(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// Text that sometimes holds a control character (escaped in the JSON).
fn any_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => any::<char>(),
            1 => (0u8..0x20).prop_map(char::from),
        ],
        0..24,
    )
    .prop_map(|cs| cs.into_iter().collect())
}

fn has_control(s: &str) -> bool {
    crate::domain::text::check("", s).is_err()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_all(&body);
    }

    #[test]
    fn mutated_valid_bodies_never_panic(
        at in 0usize..400,
        cut in 0usize..8,
        insert in "[{}\\[\\]\",:\\\\u0-9a-z ]{0,8}",
    ) {
        let bodies = [
            json!({"user_id": "u1", "title": "t", "message": "m", "data": {"a": [1, {"b": null}]},
                   "related": {"type": "appointment", "id": "a1"}, "link": "/x"}).to_string(),
            json!({"id": "e1", "type": "appointment.booked", "occurred_at": "2026-01-01T10:00:00+03:00",
                   "appointment": {"id": "a1", "number": "A-1", "start_at": "2026-01-02T10:00:00+03:00",
                   "provider": {"id": "dr-1", "name": "Dr"}, "patient": {"id": "p1", "name": "P"}}}).to_string(),
            json!({"to": "+966501234567", "body": "b", "kind": "billing", "variables": {"k": "v"}}).to_string(),
        ];
        for body in bodies {
            let at = at.min(body.len());
            let end = (at + cut).min(body.len());
            let mut mutated = body.as_bytes()[..at].to_vec();
            mutated.extend_from_slice(insert.as_bytes());
            mutated.extend_from_slice(&body.as_bytes()[end..]);
            decode_all(&mutated);
        }
    }

    #[test]
    fn a_control_character_in_any_text_field_is_422_naming_it(
        title in any_text(),
        category in any_text(),
        related_id in any_text(),
        data_key in any_text(),
        data_value in any_text(),
    ) {
        let body = format!(
            r#"{{"user_id":"u1","title":{},"message":"m","category":{},"related":{{"type":"a","id":{}}},"data":{{"n":[{{{}:{}}}]}}}}"#,
            literal(&title), literal(&category), literal(&related_id), literal(&data_key), literal(&data_value),
        );
        // Keys are visited in the map's order, so any one of the bad fields may be named.
        let bad: Vec<String> = [
            (has_control(&title), "title".to_owned()),
            (has_control(&category), "category".to_owned()),
            (has_control(&related_id), "related.id".to_owned()),
            (has_control(&data_key), format!("data.n[0].{}", data_key.escape_debug())),
            (has_control(&data_value) && !has_control(&data_key), format!("data.n[0].{data_key}")),
        ]
        .into_iter()
        .filter_map(|(is_bad, field)| is_bad.then_some(field))
        .collect();
        match parse_json::<PublishBody>(&json_headers(), body.as_bytes()) {
            Err(e) => {
                prop_assert_eq!(e.status.as_u16(), 422, "{}", body);
                let field = e.field.clone().unwrap_or_default();
                prop_assert!(bad.contains(&field), "{body}: named {field:?}, bad: {bad:?}");
            }
            Ok(_) => prop_assert!(bad.is_empty(), "{body}: accepted, bad: {bad:?}"),
        }
    }

    #[test]
    fn trailing_bytes_are_400(tail in "[ -~]{1,16}") {
        prop_assume!(!tail.trim().is_empty());
        let body = format!(r#"{{"user_id":"u1","title":"t","message":"m"}}{tail}"#);
        let e = parse_json::<PublishBody>(&json_headers(), body.as_bytes()).unwrap_err();
        prop_assert_eq!(e.status.as_u16(), 400, "{}", body);
    }

    #[test]
    fn any_cursor_decodes_or_is_400_naming_it(cursor in ".{0,40}", limit in any::<Option<i64>>()) {
        match page_request(limit, Some(&cursor)) {
            Ok(p) => prop_assert!((1..=200).contains(&p.limit)),
            Err(e) => {
                prop_assert_eq!(e.status.as_u16(), 400);
                prop_assert!(matches!(e.field.as_deref(), Some("cursor" | "limit")));
            }
        }
    }

    #[test]
    fn every_position_round_trips_through_its_cursor(pos in any::<i64>()) {
        let page = page_request(None, Some(&encode_cursor(pos))).unwrap();
        prop_assert_eq!(page.before, Some(pos));
    }
}
