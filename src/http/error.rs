//! One error type for the whole API, mapped to status codes here and nowhere else.
//!
//! Bodies are RFC 9457 problem details (`application/problem+json`) with a stable `type` URI per
//! error class, so clients can branch on it without parsing the human-readable `detail`.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::types::Problem;
use crate::auth::AuthError;
use crate::inference::InferenceError;
use crate::service::PredictError;
use ember_model::InputError;

pub(crate) const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// The body is not valid JSON.
    #[error("{0}")]
    MalformedJson(String),
    /// JSON, but not the shape or values the endpoint takes.
    #[error("{0}")]
    InvalidInput(String),
    #[error("expected a JSON body with `Content-Type: application/json`")]
    UnsupportedMediaType,
    #[error("Content-Encoding {0:?} is not supported; send the body uncompressed, gzip or deflate")]
    UnsupportedEncoding(String),
    #[error("the request body exceeds the limit of {0} bytes (--body-limit)")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    BadRequest(String),
    #[error("no route {0}")]
    NotFound(String),
    /// The path names a model this server does not serve.
    #[error(transparent)]
    UnknownModel(#[from] crate::service::ModelLookupError),
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    #[error("{0}")]
    NotReady(String),
    #[error("{0}; retry shortly")]
    Overloaded(String),
    #[error("no answer within the request timeout of {0:?} (--request-timeout)")]
    Timeout(std::time::Duration),
    /// The cause goes to the log (with the request id), never to the client: a backend's panic
    /// text says nothing a client can act on and may say more than it should.
    #[error("{}", crate::service::INTERNAL_DETAIL)]
    Internal(String),
    #[error(transparent)]
    Unauthorized(AuthError),
    /// The client sent the body too slowly (`--client-timeout`).
    #[error(transparent)]
    ClientTimeout(#[from] crate::connections::BodyTimeout),
}

impl ApiError {
    /// A failure of the server's own (a forward pass, encoding the answer): logged here, inside
    /// the request's span so the line carries its request id, and answered with
    /// [`crate::service::INTERNAL_DETAIL`].
    pub(crate) fn internal(cause: impl Into<String>) -> Self {
        let cause = cause.into();
        tracing::error!(cause = %cause, "request failed");
        ApiError::Internal(cause)
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use ApiError::*;
        match self {
            MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed-json", "Malformed JSON"),
            BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
            InvalidInput(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-input",
                "Invalid input",
            ),
            UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            UnsupportedEncoding(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-content-encoding",
                "Unsupported content encoding",
            ),
            PayloadTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
            ),
            NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            UnknownModel(_) => (StatusCode::NOT_FOUND, "unknown-model", "Unknown model"),
            MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            NotReady(_) => (StatusCode::SERVICE_UNAVAILABLE, "not-ready", "Not ready"),
            Overloaded(_) => (StatusCode::SERVICE_UNAVAILABLE, "overloaded", "Overloaded"),
            Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "timeout", "Request timed out"),
            Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
            Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            ClientTimeout(_) => (
                StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                "Request timeout",
            ),
        }
    }

    /// The status code this error is answered with, on either API.
    pub(crate) fn status(&self) -> StatusCode {
        self.parts().0
    }

    /// Headers the answer must carry whatever its body shape: how to authenticate, when to
    /// retry, and that a connection whose body never arrived is closed.
    pub(crate) fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        match self {
            ApiError::Overloaded(_) | ApiError::NotReady(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::Unauthorized(e) => {
                let challenge = match e {
                    AuthError::Missing => r#"Bearer realm="ember-serve""#,
                    AuthError::Invalid => r#"Bearer realm="ember-serve", error="invalid_token""#,
                };
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge),
                );
            }
            ApiError::ClientTimeout(_) => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        headers
    }

    /// The problem-details body this error is answered with.
    pub(crate) fn problem(&self) -> Problem {
        let (status, slug, title) = self.parts();
        Problem {
            r#type: format!("urn:ember-serve:problem:{slug}"),
            title: title.to_string(),
            status: status.as_u16(),
            detail: self.to_string(),
            request_id: super::request_id::current(),
        }
    }
}

impl From<InputError> for ApiError {
    fn from(e: InputError) -> Self {
        ApiError::InvalidInput(e.to_string())
    }
}

impl From<PredictError> for ApiError {
    fn from(e: PredictError) -> Self {
        match e {
            PredictError::NotReady => ApiError::NotReady(e.to_string()),
            PredictError::Timeout(limit) => ApiError::Timeout(limit),
            PredictError::Inference(e) => e.into(),
        }
    }
}

impl From<InferenceError> for ApiError {
    fn from(e: InferenceError) -> Self {
        match e {
            InferenceError::QueueFull(_) => ApiError::Overloaded(e.to_string()),
            InferenceError::Stopped => ApiError::NotReady("the server is shutting down".into()),
            InferenceError::Failed(_) => ApiError::internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, ..) = self.parts();
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = (status, self.headers(), body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_forward_pass_keeps_its_cause_out_of_the_answer() {
        let cause = "index out of bounds: the len is 3 but the index is 7 (src/secret.rs:12)";
        let error = ApiError::from(InferenceError::Failed(cause.into()));
        let v2 = crate::http::v2::error::V2Error::from(ApiError::from(InferenceError::Failed(
            cause.into(),
        )));
        assert_eq!(v2.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(v2.message, crate::service::INTERNAL_DETAIL);
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["detail"], crate::service::INTERNAL_DETAIL);
        assert!(!String::from_utf8_lossy(&body).contains("secret"));
    }
}
