//! docs/phone-webhook.schema.json and the native parser must describe the same format.

use serde_json::Value;
use sportello_phone::{HangupCause, parse_native};

const SCHEMA: &str = include_str!("../../../docs/phone-webhook.schema.json");

fn schema() -> Value {
    serde_json::from_str(SCHEMA).unwrap_or_else(|e| panic!("schema is not JSON: {e}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

#[test]
fn schema_examples_are_accepted() {
    let schema = schema();
    let examples = schema["examples"].as_array().cloned().unwrap_or_default();
    assert_eq!(examples.len(), 3);
    for example in examples {
        let body = example.to_string();
        let events =
            parse_native(body.as_bytes(), "centralino").unwrap_or_else(|e| panic!("{body}: {e}"));
        assert!(!events.is_empty());
    }
}

#[test]
fn schema_enums_match_the_parser() {
    let schema = schema();
    let props = &schema["$defs"]["event"]["properties"];
    let causes: Vec<String> = HangupCause::ALL
        .iter()
        .map(|c| c.as_str().to_owned())
        .collect();
    assert_eq!(strings(&props["cause"]["enum"]), causes);
    assert_eq!(
        strings(&props["direction"]["enum"]),
        ["inbound", "outbound"]
    );
    let required = strings(&schema["$defs"]["event"]["required"]);
    // Each required field, left out of a valid event, is named in the error.
    let valid = r#"{"call_id":"c","event":"ringing","direction":"inbound","from":"3331234567","to":"020202","at":"2026-03-02T09:00:00Z"}"#;
    for field in &required {
        let mut event: Value = serde_json::from_str(valid).unwrap_or_default();
        if let Value::Object(map) = &mut event {
            map.remove(field);
        }
        let err = parse_native(event.to_string().as_bytes(), "x").unwrap_err();
        assert_eq!(&err.field, field, "{err}");
    }
    for event in strings(&props["event"]["enum"]) {
        let body = valid.replace("ringing", &event);
        assert!(parse_native(body.as_bytes(), "x").is_ok(), "{event}");
    }
    // Every property the schema lists is one the parser knows.
    for field in props
        .as_object()
        .map(|m| m.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        let body = valid.replace("\"call_id\"", &format!("\"{field}\":null,\"call_id\""));
        if let Err(err) = parse_native(body.as_bytes(), "x") {
            assert!(!err.problem.contains("unknown field"), "{field}: {err}");
        }
    }
}
