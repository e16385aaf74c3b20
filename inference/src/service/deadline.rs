//! A request's wait for its answer, bounded by `--request-timeout`: one rule for every model.

use std::time::Duration;

use super::errors::PredictError;
use crate::{InferenceQueue, Runner};

/// Queue `rows` on `queue` and await their answers, within `limit` if one is set. A request
/// that times out leaves its batch if its forward pass has not started, and is counted as
/// refused for `timeout`.
pub(super) async fn answers_within<R: Runner>(
    queue: &InferenceQueue<R>,
    rows: Vec<R::Row>,
    limit: Option<Duration>,
) -> Result<Vec<R::Answer>, PredictError> {
    let answer = queue.predict(rows);
    match limit {
        None => Ok(answer.await?),
        Some(limit) => match tokio::time::timeout(limit, answer).await {
            Ok(result) => Ok(result?),
            Err(_) => {
                queue.metrics().rejected("timeout").increment(1);
                Err(PredictError::Timeout(limit))
            }
        },
    }
}
