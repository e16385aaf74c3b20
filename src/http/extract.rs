//! A JSON extractor whose rejections are [`ApiError`]s, so a bad body gets a problem-details
//! answer that says what to fix instead of axum's plain-text default.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;

use super::error::ApiError;

pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = req.extensions().get::<BodyLimit>().map_or(0, |l| l.0);
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(match rejection {
                JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
                JsonRejection::JsonSyntaxError(e) => ApiError::MalformedJson(format!(
                    "the body is not valid JSON ({}); note that JSON has no NaN or Infinity",
                    e.body_text()
                        .trim_start_matches("Failed to parse the request body as JSON: ")
                )),
                JsonRejection::JsonDataError(e) => ApiError::InvalidInput(
                    e.body_text()
                        .trim_start_matches(
                            "Failed to deserialize the JSON body into the target type: ",
                        )
                        .to_string(),
                ),
                JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::PayloadTooLarge(limit)
                }
                other => ApiError::BadRequest(other.body_text()),
            }),
        }
    }
}

/// The configured body limit, made visible to the extractor for its error message.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);
