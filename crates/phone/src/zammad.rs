//! Zammad's generic CTI (`newCall`, `answer`, `hangup`), form-encoded or JSON, as Zammad reads it.
//!
//! Follows Zammad's `Cti::Driver::Base` and `Cti::Log.process`: the direction is checked first
//! (anything but `in`/`out` is answered with 422 `{"error":"Invalid direction!"}`), `callId` or
//! `call_id` names the call, `user` may be one name or a list, and an `answer` whose user is
//! `voicemail` means the voicemail picked up. The CTI sends no timestamps: events are dated
//! when received.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::model::{Answerer, CallEvent, CallEventKind, Direction, HangupCause, Party};
use crate::native::check_call_id;

/// Zammad's answer to a CTI request with a bad token (status 401).
pub const UNAUTHORIZED_MESSAGE: &str = "Invalid token, please contact your admin!";
const INVALID_DIRECTION_MESSAGE: &str = "Invalid direction!";

/// A CTI request that cannot be turned into a call event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CtiError {
    #[error("field 'direction' must be 'in' or 'out'")]
    InvalidDirection,
    #[error("field '{0}' is required")]
    MissingField(&'static str),
    #[error("field 'event' must be newCall, answer or hangup")]
    UnknownEvent,
    #[error("field '{field}': {problem}")]
    BadField {
        field: &'static str,
        problem: String,
    },
    #[error("body is not a JSON object: {0}")]
    Malformed(String),
}

impl CtiError {
    /// The HTTP status Zammad-compatible clients expect: 422 for an invalid event, 400 for a
    /// body that is not JSON at all.
    pub fn http_status(&self) -> u16 {
        match self {
            CtiError::Malformed(_) => 400,
            _ => 422,
        }
    }

    /// The JSON body to answer with, `{"error": "..."}` as Zammad does.
    pub fn response_body(&self) -> Value {
        match self {
            CtiError::InvalidDirection => json!({ "error": INVALID_DIRECTION_MESSAGE }),
            other => json!({ "error": other.to_string() }),
        }
    }
}

/// Zammad's body for an accepted event: an empty object.
pub fn ok_body() -> Value {
    json!({})
}

/// Zammad's body for a bad token (send it with status 401).
pub fn unauthorized_body() -> Value {
    json!({ "error": UNAUTHORIZED_MESSAGE })
}

/// The CTI parameters, however they were encoded.
#[derive(Debug, Default)]
struct CtiParams {
    event: Option<String>,
    from: Option<String>,
    to: Option<String>,
    direction: Option<String>,
    call_id: Option<String>,
    call_id_snake: Option<String>,
    users: Vec<String>,
    queue: Option<String>,
    cause: Option<String>,
    answering_number: Option<String>,
}

/// Reads a form-encoded CTI request, given as its decoded pairs in order. `user[]` may repeat;
/// for any other repeated key the last value wins, as in Rails. Unknown keys are ignored.
pub fn parse_cti_form(
    pairs: &[(String, String)],
    source: &str,
    received_at: DateTime<Utc>,
) -> Result<CallEvent, CtiError> {
    let mut params = CtiParams::default();
    for (key, value) in pairs {
        let value = Some(value.clone());
        match key.as_str() {
            "event" => params.event = value,
            "from" => params.from = value,
            "to" => params.to = value,
            "direction" => params.direction = value,
            "callId" => params.call_id = value,
            "call_id" => params.call_id_snake = value,
            "user" | "user[]" => params.users.extend(value),
            "queue" => params.queue = value,
            "cause" => params.cause = value,
            "answeringNumber" => params.answering_number = value,
            _ => {}
        }
    }
    params.into_event(source, received_at)
}

/// Reads a JSON CTI request. Numbers are accepted where strings are expected (some PBX
/// scripts send `"from": 4930...`); `user` may be a string or an array of strings.
pub fn parse_cti_json(
    body: &[u8],
    source: &str,
    received_at: DateTime<Utc>,
) -> Result<CallEvent, CtiError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| CtiError::Malformed(e.to_string()))?;
    let Value::Object(map) = value else {
        return Err(CtiError::Malformed("expected an object".into()));
    };
    let text = |field: &'static str| -> Result<Option<String>, CtiError> {
        match map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(CtiError::BadField {
                field,
                problem: "must be a string".into(),
            }),
        }
    };
    // Zammad checks the direction before anything else; keep that order for the error.
    let direction = text("direction").ok().flatten();
    if !matches!(direction.as_deref(), Some("in" | "out")) {
        return Err(CtiError::InvalidDirection);
    }
    let users = match map.get("user") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(CtiError::BadField {
                    field: "user",
                    problem: "must be a string or an array of strings".into(),
                }),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(CtiError::BadField {
                field: "user",
                problem: "must be a string or an array of strings".into(),
            });
        }
    };
    let params = CtiParams {
        direction,
        event: text("event")?,
        from: text("from")?,
        to: text("to")?,
        call_id: text("callId")?,
        call_id_snake: text("call_id")?,
        users,
        queue: text("queue")?,
        cause: text("cause")?,
        answering_number: text("answeringNumber")?,
    };
    params.into_event(source, received_at)
}

impl CtiParams {
    fn into_event(self, source: &str, received_at: DateTime<Utc>) -> Result<CallEvent, CtiError> {
        let direction = match self.direction.as_deref() {
            Some("in") => Direction::Inbound,
            Some("out") => Direction::Outbound,
            _ => return Err(CtiError::InvalidDirection),
        };
        let event = self
            .event
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty());
        let event = event.ok_or(CtiError::MissingField("event"))?;
        let call_id = self
            .call_id
            .filter(|c| !c.trim().is_empty())
            .or(self.call_id_snake)
            .ok_or(CtiError::MissingField("callId"))?;
        let call_id = check_call_id(&call_id).map_err(|problem| CtiError::BadField {
            field: "callId",
            problem,
        })?;

        let answering = self
            .answering_number
            .as_deref()
            .and_then(Answerer::from_cti);
        let kind = match event {
            "newCall" => CallEventKind::Ringing,
            "answer" => {
                let voicemail = self
                    .users
                    .iter()
                    .any(|u| u.trim().eq_ignore_ascii_case("voicemail"))
                    || self
                        .answering_number
                        .as_deref()
                        .is_some_and(|a| a.trim().eq_ignore_ascii_case("voicemail"));
                if voicemail {
                    CallEventKind::Voicemail
                } else {
                    CallEventKind::Answered { by: answering }
                }
            }
            "hangup" => CallEventKind::Ended {
                duration_secs: None,
                talk_secs: None,
                // Zammad decides "missed" by whether an answer came, not by the cause; a
                // hangup without a cause is an ordinary end of call.
                cause: match self.cause.as_deref().map(str::trim) {
                    None | Some("") => HangupCause::NormalClearing,
                    Some(cause) => HangupCause::from_cti(cause),
                },
                answered_by: answering,
            },
            _ => return Err(CtiError::UnknownEvent),
        };

        Ok(CallEvent {
            source: source.to_owned(),
            call_id,
            direction,
            from: party(self.from.as_deref(), "from")?,
            to: party(self.to.as_deref(), "to")?,
            kind,
            at: received_at,
            queue: self
                .queue
                .map(|q| q.trim().to_owned())
                .filter(|q| !q.is_empty()),
            extensions: Vec::new(),
        })
    }
}

/// Zammad sends `from` and `to` on every event, but only reads them on `newCall`; some PBX
/// scripts leave them out afterwards, so a missing party is "not reported", not an error.
fn party(raw: Option<&str>, field: &'static str) -> Result<Option<Party>, CtiError> {
    match raw {
        None => Ok(None),
        Some(raw) => Party::parse(raw).map(Some).map_err(|e| CtiError::BadField {
            field,
            problem: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 8, 14, 5).single().unwrap()
    }

    fn form(pairs: &[(&str, &str)]) -> Result<CallEvent, CtiError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        parse_cti_form(&pairs, "zammad", now())
    }

    #[test]
    fn form_new_call_with_repeated_users() {
        let e = form(&[
            ("event", "newCall"),
            ("from", "493055571600"),
            ("to", "020202"),
            ("direction", "in"),
            ("callId", "abc"),
            ("user[]", "Christopher Miller"),
            ("user[]", "Emma Taylor"),
            ("queue", "support"),
        ])
        .unwrap();
        assert_eq!(e.kind, CallEventKind::Ringing);
        assert_eq!(e.call_id, "abc");
        assert_eq!(e.direction, Direction::Inbound);
        assert_eq!(
            e.from.map(|p| p.to_string()).as_deref(),
            Some("+493055571600")
        );
        assert_eq!(e.queue.as_deref(), Some("support"));
        assert_eq!(e.at, now());
    }

    #[test]
    fn call_id_snake_case_and_hangup_with_answerer() {
        let e = form(&[
            ("event", "hangup"),
            ("direction", "in"),
            ("call_id", "abc"),
            ("cause", "normalClearing"),
            ("answeringNumber", "203"),
        ])
        .unwrap();
        assert_eq!(e.call_id, "abc");
        assert_eq!(e.from, None);
        assert_eq!(
            e.kind,
            CallEventKind::Ended {
                duration_secs: None,
                talk_secs: None,
                cause: HangupCause::NormalClearing,
                answered_by: Some(Answerer::Extension("203".into())),
            }
        );
    }

    #[test]
    fn answer_by_voicemail_user() {
        let e = form(&[
            ("event", "answer"),
            ("direction", "in"),
            ("callId", "x"),
            ("user", "voicemail"),
        ])
        .unwrap();
        assert_eq!(e.kind, CallEventKind::Voicemail);
        let e = form(&[
            ("event", "answer"),
            ("direction", "in"),
            ("callId", "x"),
            ("answeringNumber", "jdoe"),
        ])
        .unwrap();
        assert_eq!(
            e.kind,
            CallEventKind::Answered {
                by: Some(Answerer::Operator("jdoe".into()))
            }
        );
    }

    #[test]
    fn direction_is_checked_first_and_answers_422_like_zammad() {
        for dir in [None, Some("inbound"), Some("IN"), Some("")] {
            let mut pairs = vec![("event", "bogus")];
            if let Some(d) = dir {
                pairs.push(("direction", d));
            }
            let err = form(&pairs).unwrap_err();
            assert_eq!(err, CtiError::InvalidDirection, "{dir:?}");
            assert_eq!(err.http_status(), 422);
            assert_eq!(err.response_body(), json!({"error": "Invalid direction!"}));
        }
    }

    #[test]
    fn malformed_requests_name_the_field() {
        let cases: Vec<(Vec<(&str, &str)>, CtiError)> = vec![
            (
                vec![("direction", "in"), ("callId", "x")],
                CtiError::MissingField("event"),
            ),
            (
                vec![("direction", "in"), ("event", "ring"), ("callId", "x")],
                CtiError::UnknownEvent,
            ),
            (
                vec![("direction", "in"), ("event", "newCall")],
                CtiError::MissingField("callId"),
            ),
            (
                vec![("direction", "in"), ("event", "newCall"), ("callId", "  ")],
                CtiError::MissingField("callId"),
            ),
        ];
        for (pairs, want) in cases {
            assert_eq!(form(&pairs).unwrap_err(), want, "{pairs:?}");
        }
        let err = form(&[
            ("direction", "in"),
            ("event", "newCall"),
            ("callId", "x"),
            ("from", "Mario Rossi"),
        ])
        .unwrap_err();
        assert!(
            matches!(err, CtiError::BadField { field: "from", .. }),
            "{err}"
        );
        assert!(err.to_string().starts_with("field 'from': "), "{err}");
        assert!(!err.to_string().contains("Mario"), "{err}");
    }

    #[test]
    fn json_accepts_numbers_user_string_or_list() {
        let body = br#"{"event":"newCall","from":393471112233,"to":"020202","direction":"out",
            "callId":"n1","user":"Operatore 203"}"#;
        let e = parse_cti_json(body, "zammad", now()).unwrap();
        assert_eq!(e.direction, Direction::Outbound);
        assert_eq!(
            e.from.map(|p| p.to_string()).as_deref(),
            Some("+393471112233")
        );
        let body = br#"{"event":"answer","direction":"in","callId":"n1","user":["a","voicemail"]}"#;
        assert_eq!(
            parse_cti_json(body, "zammad", now()).unwrap().kind,
            CallEventKind::Voicemail
        );
    }

    #[test]
    fn json_errors() {
        let err = parse_cti_json(b"[1]", "zammad", now()).unwrap_err();
        assert_eq!(err.http_status(), 400);
        let err = parse_cti_json(
            b"{\"direction\":\"sideways\",\"event\":\"newCall\"}",
            "zammad",
            now(),
        )
        .unwrap_err();
        assert_eq!(err, CtiError::InvalidDirection);
        let err = parse_cti_json(
            br#"{"direction":"in","event":"newCall","callId":"x","user":{"a":1}}"#,
            "zammad",
            now(),
        )
        .unwrap_err();
        assert!(matches!(err, CtiError::BadField { field: "user", .. }));
        let err = parse_cti_json(
            br#"{"direction":"in","event":"newCall","callId":["x"]}"#,
            "zammad",
            now(),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            CtiError::BadField {
                field: "callId",
                ..
            }
        ));
    }

    #[test]
    fn bodies_match_zammad() {
        assert_eq!(ok_body().to_string(), "{}");
        assert_eq!(unauthorized_body()["error"], UNAUTHORIZED_MESSAGE);
    }
}
