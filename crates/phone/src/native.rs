//! The native webhook body (`POST /api/v1/channels/phone/events`): one event or a batch.
//!
//! The format is documented by docs/phone-webhook.schema.json. Fields are checked one by one so
//! every error names the field (and, in a batch, the event) at fault.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use crate::model::{Answerer, CallEvent, CallEventKind, Direction, HangupCause, Party};

/// Most events one request may carry.
pub const MAX_BATCH: usize = 500;
/// Longest call id accepted, here and from Zammad's CTI.
pub const MAX_CALL_ID_LEN: usize = 128;
const MAX_NAME_LEN: usize = 64;

const FIELDS: &[&str] = &[
    "call_id",
    "event",
    "direction",
    "from",
    "to",
    "at",
    "queue",
    "extensions",
    "answered_by",
    "duration_seconds",
    "talk_seconds",
    "cause",
];
const EVENTS: &str = "ringing, answered, ended, missed, abandoned, voicemail";

/// A webhook body that is not a valid event; `field` is `body` when the body as a whole is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct NativeError {
    /// Position in a batch; `None` for a single-event body.
    pub index: Option<usize>,
    pub field: String,
    pub problem: String,
}

impl NativeError {
    fn body(problem: impl Into<String>) -> Self {
        NativeError {
            index: None,
            field: "body".into(),
            problem: problem.into(),
        }
    }

    /// Where the error is, as `from` or, in a batch, `[3].from`.
    pub fn path(&self) -> String {
        match self.index {
            Some(i) => format!("[{i}].{}", self.field),
            None => self.field.clone(),
        }
    }
}

impl fmt::Display for NativeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path(), self.problem)
    }
}

/// Reads a webhook body: a JSON object (one event) or an array of up to `MAX_BATCH` objects.
/// The whole body is refused if any event is invalid, so nothing is half-written.
pub fn parse_native(body: &[u8], source: &str) -> Result<Vec<CallEvent>, NativeError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| NativeError::body(format!("not valid JSON ({e})")))?;
    match value {
        Value::Object(map) => {
            parse_event(&map, source)
                .map(|e| vec![e])
                .map_err(|(field, problem)| NativeError {
                    index: None,
                    field,
                    problem,
                })
        }
        Value::Array(items) => {
            if items.is_empty() {
                return Err(NativeError::body("the batch is empty"));
            }
            if items.len() > MAX_BATCH {
                return Err(NativeError::body(format!(
                    "the batch has {} events, more than {MAX_BATCH}",
                    items.len()
                )));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let fail = |field: String, problem: String| NativeError {
                        index: Some(i),
                        field,
                        problem,
                    };
                    match item {
                        Value::Object(map) => parse_event(map, source)
                            .map_err(|(field, problem)| fail(field, problem)),
                        _ => Err(fail("body".into(), "expected a JSON object".into())),
                    }
                })
                .collect()
        }
        _ => Err(NativeError::body(
            "expected a JSON object or an array of objects",
        )),
    }
}

type FieldError = (String, String);

fn fail<T>(field: &str, problem: impl Into<String>) -> Result<T, FieldError> {
    Err((field.to_owned(), problem.into()))
}

fn parse_event(map: &Map<String, Value>, source: &str) -> Result<CallEvent, FieldError> {
    if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return fail(
            unknown,
            format!("unknown field (expected: {})", FIELDS.join(", ")),
        );
    }
    let get = |field: &str| map.get(field).filter(|v| !v.is_null());

    let call_id = required_str(map, "call_id")?;
    let call_id = check_call_id(call_id).map_err(|p| ("call_id".to_owned(), p))?;
    let event = required_str(map, "event")?;
    let direction = match required_str(map, "direction")? {
        "inbound" => Direction::Inbound,
        "outbound" => Direction::Outbound,
        _ => return fail("direction", "must be 'inbound' or 'outbound'"),
    };
    let from = party(map, "from")?;
    let to = party(map, "to")?;
    let at = required_str(map, "at")?;
    let at = DateTime::parse_from_rfc3339(at)
        .map_err(|_| {
            (
                "at".to_owned(),
                "must be an RFC 3339 time with offset, such as 2026-03-02T09:14:05+01:00"
                    .to_owned(),
            )
        })?
        .with_timezone(&Utc);
    let queue = match get("queue") {
        None => None,
        Some(v) => Some(short_name(v, "queue")?),
    };
    let extensions = match get("extensions") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| short_name(v, "extensions"))
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return fail("extensions", "must be an array of strings"),
    };

    let allowed: &[&str] = match event {
        "answered" => &["answered_by"],
        "ended" => &["answered_by", "duration_seconds", "talk_seconds", "cause"],
        "ringing" | "missed" | "abandoned" | "voicemail" => &[],
        _ => return fail("event", format!("must be one of: {EVENTS}")),
    };
    for field in ["answered_by", "duration_seconds", "talk_seconds", "cause"] {
        if get(field).is_some() && !allowed.contains(&field) {
            return fail(field, format!("is not allowed on a '{event}' event"));
        }
    }

    let kind = match event {
        "ringing" => CallEventKind::Ringing,
        "answered" => CallEventKind::Answered {
            by: answerer(get("answered_by"))?,
        },
        "ended" => CallEventKind::Ended {
            duration_secs: seconds(get("duration_seconds"), "duration_seconds")?,
            talk_secs: seconds(get("talk_seconds"), "talk_seconds")?,
            cause: match get("cause") {
                None => HangupCause::NormalClearing,
                Some(Value::String(s)) => {
                    HangupCause::parse(s).map_err(|e| ("cause".to_owned(), e.to_string()))?
                }
                Some(_) => return fail("cause", "must be a string"),
            },
            answered_by: answerer(get("answered_by"))?,
        },
        "missed" => CallEventKind::Missed,
        "abandoned" => CallEventKind::Abandoned,
        _ => CallEventKind::Voicemail,
    };

    Ok(CallEvent {
        source: source.to_owned(),
        call_id,
        direction,
        from: Some(from),
        to: Some(to),
        kind,
        at,
        queue,
        extensions,
    })
}

fn required_str<'a>(map: &'a Map<String, Value>, field: &str) -> Result<&'a str, FieldError> {
    match map.get(field) {
        None | Some(Value::Null) => fail(field, "is required"),
        Some(Value::String(s)) => Ok(s),
        Some(_) => fail(field, "must be a string"),
    }
}

/// Call ids are printable and short: they end up in URLs, logs and unique indexes.
pub(crate) fn check_call_id(raw: &str) -> Result<String, String> {
    let id = raw.trim();
    if id.is_empty() {
        return Err("must not be empty".into());
    }
    if id.chars().count() > MAX_CALL_ID_LEN {
        return Err(format!("must be at most {MAX_CALL_ID_LEN} characters"));
    }
    if id.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(id.to_owned())
}

fn party(map: &Map<String, Value>, field: &str) -> Result<Party, FieldError> {
    match map.get(field) {
        None => fail(
            field,
            "is required (null or \"anonymous\" for a withheld number)",
        ),
        Some(Value::Null) => Ok(Party::Withheld),
        Some(Value::String(s)) => Party::parse(s).map_err(|e| (field.to_owned(), e.to_string())),
        Some(_) => fail(field, "must be a string or null"),
    }
}

fn short_name(value: &Value, field: &str) -> Result<String, FieldError> {
    match value {
        Value::String(s) => {
            let s = s.trim();
            if s.is_empty() || s.chars().count() > MAX_NAME_LEN || s.chars().any(char::is_control) {
                fail(
                    field,
                    format!("must be 1 to {MAX_NAME_LEN} printable characters"),
                )
            } else {
                Ok(s.to_owned())
            }
        }
        _ => fail(field, "must be a string"),
    }
}

fn seconds(value: Option<&Value>, field: &str) -> Result<Option<u32>, FieldError> {
    match value {
        None => Ok(None),
        Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) => Ok(Some(n)),
            None => fail(field, "must be a whole number of seconds, 0 or more"),
        },
    }
}

fn answerer(value: Option<&Value>) -> Result<Option<Answerer>, FieldError> {
    const FIELD: &str = "answered_by";
    let Some(value) = value else { return Ok(None) };
    let Value::Object(map) = value else {
        return fail(
            FIELD,
            "must be an object: {\"extension\": \"203\"} or {\"operator\": \"lbassi\"}",
        );
    };
    let mut entries = map.iter();
    match (entries.next(), entries.next()) {
        (Some((key, v)), None) => {
            let name = short_name(v, &format!("{FIELD}.{key}"))?;
            match key.as_str() {
                "extension" => Ok(Some(Answerer::Extension(name))),
                "operator" => Ok(Some(Answerer::Operator(name))),
                _ => fail(
                    &format!("{FIELD}.{key}"),
                    "unknown field (expected: extension or operator)",
                ),
            }
        }
        _ => fail(FIELD, "must have exactly one of 'extension' or 'operator'"),
    }
}

/// The webhook body for one event: what an integration (or a load test) would send.
pub fn native_json(event: &CallEvent) -> Value {
    let mut body = json!({
        "call_id": event.call_id,
        "event": event.kind.slug(),
        "direction": event.direction.as_str(),
        "from": party_json(event.from.as_ref()),
        "to": party_json(event.to.as_ref()),
        "at": event.at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
    });
    let Value::Object(map) = &mut body else {
        return body;
    };
    if let Some(queue) = &event.queue {
        map.insert("queue".into(), json!(queue));
    }
    if !event.extensions.is_empty() {
        map.insert("extensions".into(), json!(event.extensions));
    }
    let by = match &event.kind {
        CallEventKind::Answered { by } => by.as_ref(),
        CallEventKind::Ended {
            duration_secs,
            talk_secs,
            cause,
            answered_by,
        } => {
            if let Some(d) = duration_secs {
                map.insert("duration_seconds".into(), json!(d));
            }
            if let Some(t) = talk_secs {
                map.insert("talk_seconds".into(), json!(t));
            }
            map.insert("cause".into(), json!(cause.as_str()));
            answered_by.as_ref()
        }
        _ => None,
    };
    if let Some(by) = by {
        map.insert("answered_by".into(), json!(by));
    }
    body
}

fn party_json(party: Option<&Party>) -> Value {
    match party {
        None | Some(Party::Withheld) => Value::Null,
        Some(p) => json!(p.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWERED: &str = r#"{"call_id":"c-1","event":"answered","direction":"inbound",
        "from":"+39 347 111 2233","to":"020202","at":"2026-03-02T09:14:31+01:00",
        "queue":"sostegno","extensions":["203"],"answered_by":{"extension":"203"}}"#;

    #[test]
    fn single_event_is_read() {
        let events = parse_native(ANSWERED.as_bytes(), "pbx").unwrap();
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(e.source, "pbx");
        assert_eq!(e.call_id, "c-1");
        assert_eq!(e.direction, Direction::Inbound);
        assert_eq!(
            e.from.as_ref().map(|p| p.to_string()).as_deref(),
            Some("+393471112233")
        );
        assert_eq!(e.at.to_rfc3339(), "2026-03-02T08:14:31+00:00");
        assert_eq!(
            e.kind,
            CallEventKind::Answered {
                by: Some(Answerer::Extension("203".into()))
            }
        );
        assert_eq!(e.queue.as_deref(), Some("sostegno"));
    }

    #[test]
    fn batch_and_round_trip() {
        let body = format!(
            r#"[{ANSWERED}, {{"call_id":"c-1","event":"ended","direction":"inbound","from":null,
            "to":"020202","at":"2026-03-02T08:19:02Z","duration_seconds":297,"talk_seconds":271,
            "cause":"normal_clearing","answered_by":{{"operator":"lbassi"}}}}]"#
        );
        let events = parse_native(body.as_bytes(), "pbx").unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].from, Some(Party::Withheld));
        for e in &events {
            let again = parse_native(native_json(e).to_string().as_bytes(), "pbx").unwrap();
            assert_eq!(&again[0], e);
        }
    }

    #[test]
    fn errors_name_the_field() {
        let base = r#""call_id":"c","direction":"inbound","from":"3331234567","to":"020202","at":"2026-03-02T09:00:00Z""#;
        let cases: Vec<(String, &str, &str)> = vec![
            ("nope".into(), "body", "not valid JSON"),
            ("42".into(), "body", "expected a JSON object"),
            ("[]".into(), "body", "empty"),
            (format!(r#"{{{base}}}"#), "event", "is required"),
            (
                format!(r#"{{{base},"event":"hangup"}}"#),
                "event",
                "must be one of",
            ),
            (
                format!(r#"{{{base},"event":"ringing","callId":"x"}}"#),
                "callId",
                "unknown field",
            ),
            (
                r#"{"event":"ringing","direction":"inbound","from":"x","to":"1","at":"x"}"#.into(),
                "call_id",
                "is required",
            ),
            (
                format!(r#"{{{},"event":"ringing"}}"#, base.replace("inbound", "in")),
                "direction",
                "'inbound' or 'outbound'",
            ),
            (
                format!(
                    r#"{{{},"event":"ringing"}}"#,
                    base.replace("3331234567", "33312ab")
                ),
                "from",
                "'a'",
            ),
            (
                format!(
                    r#"{{{},"event":"ringing"}}"#,
                    base.replace("2026-03-02T09:00:00Z", "2026-03-02 09:00")
                ),
                "at",
                "RFC 3339",
            ),
            (
                format!(r#"{{{base},"event":"ringing","cause":"busy"}}"#),
                "cause",
                "not allowed on a 'ringing'",
            ),
            (
                format!(r#"{{{base},"event":"ended","cause":"hangup"}}"#),
                "cause",
                "unknown hangup cause",
            ),
            (
                format!(r#"{{{base},"event":"ended","duration_seconds":-3}}"#),
                "duration_seconds",
                "whole number",
            ),
            (
                format!(r#"{{{base},"event":"answered","answered_by":"203"}}"#),
                "answered_by",
                "must be an object",
            ),
            (
                format!(
                    r#"{{{base},"event":"answered","answered_by":{{"extension":"203","operator":"x"}}}}"#
                ),
                "answered_by",
                "exactly one",
            ),
            (
                format!(r#"{{{base},"event":"answered","answered_by":{{"phone":"203"}}}}"#),
                "answered_by.phone",
                "unknown field",
            ),
            (
                format!(r#"{{{base},"event":"ringing","extensions":"203"}}"#),
                "extensions",
                "array",
            ),
            (
                format!(
                    r#"{{{},"event":"ringing"}}"#,
                    base.replace(r#""c""#, r#""  ""#)
                ),
                "call_id",
                "empty",
            ),
        ];
        for (body, field, problem) in cases {
            let err = parse_native(body.as_bytes(), "pbx").unwrap_err();
            assert_eq!(err.field, field, "{body}: {err}");
            assert!(err.problem.contains(problem), "{body}: {err}");
        }
    }

    #[test]
    fn batch_errors_say_which_event_and_reject_the_whole_batch() {
        let body = format!(
            r#"[{ANSWERED}, {}]"#,
            ANSWERED.replace("\"at\":\"2026-03-02T09:14:31+01:00\"", "\"at\":5")
        );
        let err = parse_native(body.as_bytes(), "pbx").unwrap_err();
        assert_eq!(err.path(), "[1].at");
        assert_eq!(err.to_string(), "[1].at: must be a string");
    }

    #[test]
    fn oversized_batch_is_refused() {
        let body = format!("[{}]", vec![ANSWERED; MAX_BATCH + 1].join(","));
        let err = parse_native(body.as_bytes(), "pbx").unwrap_err();
        assert!(err.problem.contains("more than 500"), "{err}");
    }
}
