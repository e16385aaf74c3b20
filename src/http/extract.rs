//! A JSON extractor whose rejections are [`ApiError`]s, so a bad body gets a problem-details
//! answer that says what to fix instead of axum's plain-text default.
//!
//! A body is parsed with plain `serde_json` first. Only one that fails is parsed again through
//! axum's `Json`, whose error names the path of the bad value (`inputs[0]: invalid type ...`),
//! so only a failing request pays for tracking that path.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::connections::BodyTimeout;

pub(crate) struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = req.extensions().get::<BodyLimit>().map_or(0, |l| l.0);
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|e| body_rejection(e, limit))?;
        if let Ok(value) = serde_json::from_slice(&body) {
            return Ok(ApiJson(value));
        }
        match axum::Json::<T>::from_bytes(&body) {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(explain(rejection)),
        }
    }
}

/// What a body that could not be read becomes, on both APIs: 408 when the client sent it too
/// slowly, 413 past `--body-limit` (checked on the decompressed bytes when the body was
/// compressed), else 400 naming the cause.
pub(crate) fn body_rejection(rejection: BytesRejection, limit: usize) -> ApiError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&rejection);
    while let Some(e) = cause {
        if let Some(timeout) = e.downcast_ref::<BodyTimeout>() {
            return ApiError::ClientTimeout(BodyTimeout(timeout.0));
        }
        cause = e.source();
    }
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge(limit)
    } else {
        ApiError::BadRequest(rejection.body_text())
    }
}

/// `application/json` or `application/<anything>+json`, parameters allowed: what axum's `Json`
/// accepts.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| {
            m.type_() == "application"
                && (m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json"))
        })
}

fn explain(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonSyntaxError(e) => ApiError::MalformedJson(format!(
            "the body is not valid JSON ({}); note that JSON has no NaN or Infinity",
            e.body_text()
                .trim_start_matches("Failed to parse the request body as JSON: ")
        )),
        JsonRejection::JsonDataError(e) => ApiError::InvalidInput(
            e.body_text()
                .trim_start_matches("Failed to deserialize the JSON body into the target type: ")
                .to_string(),
        ),
        other => ApiError::BadRequest(other.body_text()),
    }
}

/// The configured body limit, made visible to the extractor for its error message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimit(pub usize);

/// The value of the `--sticky-header` a request carries, if the server has one: what keeps a
/// client on one version of a canary split.
pub(crate) fn sticky_key<'a>(
    state: &crate::service::ModelService,
    headers: &'a HeaderMap,
) -> Option<&'a str> {
    state
        .repository
        .sticky_header()
        .and_then(|name| headers.get(name))
        .and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
    use axum::routing::post;
    use tower::ServiceExt;

    use super::is_json;

    /// Whether axum's own `Json` extractor accepts `content_type` (None: no header).
    async fn axum_accepts(content_type: Option<&str>) -> bool {
        let app = Router::new().route(
            "/",
            post(|axum::Json(_): axum::Json<serde_json::Value>| async {}),
        );
        let mut req = Request::post("/");
        if let Some(v) = content_type {
            req = req.header(header::CONTENT_TYPE, v);
        }
        let res = app.oneshot(req.body(Body::from("{}")).unwrap()).await;
        res.unwrap().status() == StatusCode::OK
    }

    #[tokio::test]
    async fn json_content_types_are_recognised_as_axum_recognises_them() {
        let cases = [
            Some("application/json"),
            Some("application/json; charset=utf-8"),
            Some("Application/JSON"),
            Some("application/cloudevents+json"),
            Some("text/plain"),
            Some("text/json"),
            Some("application/jsonx"),
            Some("application/x-www-form-urlencoded"),
            Some("json"),
            Some(""),
            None,
        ];
        let mut accepted = 0;
        for case in cases {
            let mut headers = HeaderMap::new();
            if let Some(v) = case {
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(v).unwrap());
            }
            let ours = is_json(&headers);
            assert_eq!(ours, axum_accepts(case).await, "{case:?}");
            accepted += usize::from(ours);
        }
        // Both sides of the check are exercised, not only refusals.
        assert!(accepted >= 3, "only {accepted} JSON content types accepted");
    }
}
