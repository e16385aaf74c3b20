//! gRPC status codes for every refusal, with the same wording REST uses, and the client's
//! deadline (`grpc-timeout`) read from the call's metadata.

use std::time::Duration;

use tonic::{Code, Status};

use crate::inference::InferenceError;
use crate::protocol::ModelLookupError;
use crate::protocol::imported::ModelTensorError;
use crate::protocol::tensors::TensorError;
use crate::service::PredictError;

impl From<TensorError> for Status {
    fn from(e: TensorError) -> Self {
        Status::invalid_argument(e.to_string())
    }
}

impl From<ModelTensorError> for Status {
    fn from(e: ModelTensorError) -> Self {
        Status::invalid_argument(e.to_string())
    }
}

/// An unknown model or version: NOT_FOUND. (Functions, not `From`: both types are
/// ember-inference's and `Status` is tonic's.)
pub(crate) fn lookup_status(e: ModelLookupError) -> Status {
    Status::not_found(e.to_string())
}

/// A refused or failed prediction, with the code and wording REST's answer has.
pub(crate) fn predict_status(e: PredictError) -> Status {
    {
        let code = match &e {
            PredictError::NotReady => Code::Unavailable,
            PredictError::Timeout(_) => Code::DeadlineExceeded,
            PredictError::Inference(InferenceError::QueueFull(_)) => Code::ResourceExhausted,
            PredictError::Inference(InferenceError::Stopped) => Code::Unavailable,
            PredictError::Inference(InferenceError::Failed(_)) => Code::Internal,
        };
        if code == Code::Internal {
            // The cause stays in the log (with the request id), as REST keeps it.
            tracing::error!(cause = %e, "gRPC call failed");
        }
        let message = match e {
            _ if code == Code::Internal => crate::service::INTERNAL_DETAIL.to_string(),
            PredictError::Inference(InferenceError::QueueFull(_)) => format!("{e}; retry shortly"),
            PredictError::Inference(InferenceError::Stopped) => {
                "the server is shutting down".to_string()
            }
            _ => e.to_string(),
        };
        Status::new(code, message)
    }
}

/// The deadline a client set (`grpc-timeout: <up to 8 digits><H|M|S|m|u|n>`), if any.
pub(crate) fn client_timeout(metadata: &tonic::metadata::MetadataMap) -> Option<Duration> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    let split = value.len().checked_sub(1)?;
    let (digits, unit) = value.split_at(split);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// A repository call that did nothing: NOT_FOUND for a model that is not there,
/// RESOURCE_EXHAUSTED over --memory-budget, INVALID_ARGUMENT for everything else (a bad
/// config, a version that does not check out, a failed warm-up).
pub(crate) fn repository_status(e: crate::service::repository::RepositoryError) -> Status {
    if e.is_not_found() {
        Status::not_found(e.to_string())
    } else if e.is_over_budget() {
        Status::resource_exhausted(e.to_string())
    } else {
        Status::invalid_argument(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout(v: &str) -> Option<Duration> {
        let mut m = tonic::metadata::MetadataMap::new();
        m.insert("grpc-timeout", v.parse().unwrap());
        client_timeout(&m)
    }

    #[test]
    fn client_deadlines_are_read_in_every_unit() {
        assert_eq!(timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(timeout("5u"), Some(Duration::from_micros(5)));
        assert_eq!(timeout("123456789S"), None, "more than 8 digits");
        assert_eq!(timeout("S"), None);
        assert_eq!(timeout("10x"), None);
        assert_eq!(client_timeout(&tonic::metadata::MetadataMap::new()), None);
    }

    #[test]
    fn refusals_get_the_codes_clients_retry_on() {
        let status = |e: PredictError| predict_status(e).code();
        assert_eq!(
            status(InferenceError::QueueFull(3).into()),
            Code::ResourceExhausted
        );
        assert_eq!(
            status(PredictError::Timeout(Duration::from_secs(1))),
            Code::DeadlineExceeded
        );
        assert_eq!(status(PredictError::NotReady), Code::Unavailable);
        assert_eq!(
            status(InferenceError::Failed("x".into()).into()),
            Code::Internal
        );
    }

    #[test]
    fn a_failed_forward_pass_keeps_its_cause_out_of_the_answer() {
        let cause = "index out of bounds: the len is 3 but the index is 7 (src/secret.rs:12)";
        let status = predict_status(PredictError::from(InferenceError::Failed(cause.into())));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), crate::service::INTERNAL_DETAIL);
    }
}
