//! Extractors whose rejections are problem documents naming what is wrong.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body; malformed JSON is a 400, a well-formed body with a missing or mistyped field a
/// 422 naming the field, a wrong content type a 415, a body over the limit a 413.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_problem(rejection)),
        }
    }
}

fn json_problem(r: JsonRejection) -> ApiError {
    match r {
        JsonRejection::JsonDataError(e) => {
            // "Failed to deserialize the JSON body into the target type: subject: missing
            // field `subject` at line 1 column 20" → field path and serde's message.
            let text = e.body_text();
            let detail = text
                .split_once(": ")
                .map(|(_, d)| d.to_owned())
                .unwrap_or(text);
            let field = field_of(&detail);
            let mut err = ApiError::invalid(&field, detail);
            err.title = "Invalid input";
            err
        }
        JsonRejection::JsonSyntaxError(e) => ApiError::bad_request(
            "malformed-json",
            format!(
                "malformed JSON: {}",
                e.body_text()
                    .split_once(": ")
                    .map(|(_, d)| d)
                    .unwrap_or("syntax error")
            ),
        ),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "send the body as JSON with 'Content-Type: application/json'",
        ),
        JsonRejection::BytesRejection(e) => {
            ApiError::new(e.status(), "body", "Unreadable body", e.body_text())
        }
        other => ApiError::bad_request("body", other.body_text()),
    }
}

/// The field a serde error is about: a `path: message` prefix, or a `missing field `x`` text.
fn field_of(detail: &str) -> String {
    if let Some(rest) = detail.split("missing field `").nth(1)
        && let Some(name) = rest.split('`').next()
    {
        let prefix = detail
            .split(": ")
            .next()
            .filter(|p| *p != detail && !p.contains(' '))
            .unwrap_or("");
        return if prefix.is_empty() || prefix == "." {
            name.to_owned()
        } else {
            format!("{prefix}.{name}")
        };
    }
    match detail.split_once(": ") {
        Some((path, _)) if !path.contains(' ') => path.to_owned(),
        _ => "body".to_owned(),
    }
}

/// Query parameters; a wrong one is a 422 naming it.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                let text = e.body_text();
                let detail = text
                    .split_once(": ")
                    .map(|(_, d)| d.to_owned())
                    .unwrap_or(text);
                Err(ApiError::invalid("query", detail))
            }
            Err(other) => Err(ApiError::bad_request("query", other.body_text())),
        }
    }
}

/// Path parameters; a malformed id is a 404-free 400 saying so.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => Err(ApiError::bad_request(
                "path",
                format!("invalid path parameter: {}", e.body_text()),
            )),
            Err(other) => Err(ApiError::bad_request("path", other.body_text())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::field_of;

    #[test]
    fn serde_messages_name_their_field() {
        assert_eq!(
            field_of("missing field `subject` at line 1 column 20"),
            "subject"
        );
        assert_eq!(
            field_of("citizen: missing field `name` at line 1 column 40"),
            "citizen.name"
        );
        assert_eq!(
            field_of("citizen_id: UUID parsing failed at line 1 column 9"),
            "citizen_id"
        );
        assert_eq!(
            field_of("invalid type: integer `5`, expected a string at line 1"),
            "body"
        );
    }
}
