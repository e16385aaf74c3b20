//! The protocol's error shape, `{"error": "..."}`, with the status codes it allows: 400 for bad
//! input, 404 for an unknown model or version; 413/503/504 only for limits and load.

use axum::Json;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::types::ErrorBody;
use crate::http::ApiError;
use crate::protocol::ModelLookupError;
use crate::protocol::imported::ModelTensorError;
use crate::protocol::tensors::TensorError;
use crate::service::PredictError;
use ember_model::InputError;

#[derive(Debug)]
pub struct V2Error {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
    /// Headers the answer carries besides the body (Retry-After, WWW-Authenticate, ...); boxed,
    /// as most errors have none and a `HeaderMap` would triple the error's size.
    pub(crate) headers: Option<Box<HeaderMap>>,
}

impl V2Error {
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            headers: None,
        }
    }
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
            headers: None,
        }
    }
}

/// The same failures `/v1` reports as problem details, in V2's shape. Every client mistake is
/// a 400 here, as the protocol asks.
impl From<ApiError> for V2Error {
    fn from(e: ApiError) -> Self {
        let status = match &e {
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotFound(_) | ApiError::UnknownModel(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UnsupportedMediaType | ApiError::UnsupportedEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ApiError::NotReady(_) | ApiError::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout(_)
            | ApiError::Internal(_)
            | ApiError::Unauthorized(_)
            | ApiError::ClientTimeout(_) => e.status(),
            _ => StatusCode::BAD_REQUEST,
        };
        Self {
            status,
            message: e.to_string(),
            headers: Some(Box::new(e.headers())).filter(|h| !h.is_empty()),
        }
    }
}

impl From<PredictError> for V2Error {
    fn from(e: PredictError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<TensorError> for V2Error {
    fn from(e: TensorError) -> Self {
        Self::bad_request(e.to_string())
    }
}

impl From<ModelTensorError> for V2Error {
    fn from(e: ModelTensorError) -> Self {
        Self::bad_request(e.to_string())
    }
}

impl From<ModelLookupError> for V2Error {
    fn from(e: ModelLookupError) -> Self {
        Self::not_found(e.to_string())
    }
}

impl From<InputError> for V2Error {
    fn from(e: InputError) -> Self {
        Self::bad_request(e.to_string())
    }
}

impl IntoResponse for V2Error {
    fn into_response(self) -> Response {
        (
            self.status,
            self.headers.map(|h| *h).unwrap_or_default(),
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response()
    }
}

/// An error in the shape of the API its path belongs to: `{"error": ...}` under `/v2`, problem
/// details elsewhere.
pub(crate) fn in_api_shape(uri: &Uri, error: ApiError) -> Response {
    if is_v2_path(uri.path()) {
        V2Error::from(error).into_response()
    } else {
        error.into_response()
    }
}

/// Whether `path` belongs to the V2 surface (whose errors are `{"error": ...}`).
pub(crate) fn is_v2_path(path: &str) -> bool {
    path == "/v2" || path.starts_with("/v2/")
}
