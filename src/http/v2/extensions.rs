//! Triton's model configuration and statistics extensions: what Triton's own tools read before
//! and while they send traffic (perf_analyzer gives up without the configuration, and splits
//! latency into queue and compute time from the statistics).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};

use super::error::V2Error;
use super::imported;
use super::model::{ModelPath, find_model};
use super::types::*;
use crate::inference::InferenceStatistics;
use crate::inference::stats::{StatisticsSnapshot, TimedSnapshot};
use crate::protocol;
use crate::protocol::protocol_version;
use crate::service::{ModelService, Served};

/// The model's configuration in Triton's terms, with this server's real batching settings.
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}/config", tag = "kserve-v2",
    params(ModelPath),
    responses(
        (status = 200, description = "Model configuration", body = ModelConfig),
        (status = 404, description = "Unknown model or version", body = ErrorBody),
    ))]
pub(crate) async fn model_config(
    State(state): State<Arc<ModelService>>,
    Path(path): Path<ModelPath>,
) -> Result<Json<ModelConfig>, V2Error> {
    if let Served::Imported(model) = find_model(&state, &path)? {
        return Ok(Json(imported::config(&model)));
    }
    let model = &state.model;
    let queue = state.queue.config();
    let tensor = |t: protocol::TensorDescription| {
        let (dims, reshape) = t.config_dims();
        ConfigTensor {
            name: t.name.into(),
            data_type: t.datatype.config_name(),
            dims,
            reshape: reshape.map(|shape| ConfigReshape { shape }),
        }
    };
    let parameter = |value: String| ConfigParameter {
        string_value: value,
    };
    let labels = serde_json::to_string(&model.labels).unwrap_or_default();
    let parameters = BTreeMap::from([
        ("labels".to_string(), parameter(labels)),
        ("burn_backend".to_string(), parameter(model.backend.clone())),
        ("device".to_string(), parameter(model.device.clone())),
        (
            "model_version".to_string(),
            parameter(model.version.clone()),
        ),
        (
            "weights_sha256".to_string(),
            parameter(model.weights_sha256.clone()),
        ),
    ]);
    Ok(Json(ModelConfig {
        name: model.name.clone(),
        platform: String::new(),
        backend: "burn".into(),
        max_batch_size: model.max_batch_size as u64,
        input: protocol::inputs().into_iter().map(tensor).collect(),
        output: protocol::outputs().into_iter().map(tensor).collect(),
        dynamic_batching: DynamicBatching::of(queue),
        instance_group: state
            .instance_groups()
            .into_iter()
            .map(InstanceGroup::from)
            .collect(),
        parameters,
    }))
}

fn duration(t: TimedSnapshot) -> StatisticDuration {
    StatisticDuration {
        count: t.count,
        ns: t.ns,
    }
}

/// One model's statistics.
fn model_statistics(name: &str, semver: &str, statistics: &InferenceStatistics) -> ModelStatistics {
    let StatisticsSnapshot {
        last_inference_ms,
        inference_count,
        execution_count,
        success,
        fail,
        queue,
        compute_input,
        compute_infer,
        compute_output,
        batches,
    } = statistics.snapshot();
    ModelStatistics {
        name: name.to_string(),
        version: protocol_version(semver).to_string(),
        last_inference: last_inference_ms,
        inference_count,
        execution_count,
        inference_stats: InferStatistics {
            success: duration(success),
            fail: duration(fail),
            queue: duration(queue),
            compute_input: duration(compute_input),
            compute_infer: duration(compute_infer),
            compute_output: duration(compute_output),
            cache_hit: StatisticDuration::default(),
            cache_miss: StatisticDuration::default(),
        },
        batch_stats: batches
            .into_iter()
            .map(|b| BatchStatistics {
                batch_size: b.batch_size as u64,
                compute_input: duration(b.compute_input),
                compute_infer: duration(b.compute_infer),
                compute_output: duration(b.compute_output),
            })
            .collect(),
    }
}

/// The statistics of the model `served`.
fn statistics(state: &ModelService, served: Served) -> ModelStatistics {
    match served {
        Served::Digits => model_statistics(
            &state.model.name,
            &state.model.version,
            state.queue.statistics(),
        ),
        Served::Imported(model) => model_statistics(
            model.name(),
            &model.config().version,
            model.queue.statistics(),
        ),
    }
}

/// Statistics of every model this server serves.
#[utoipa::path(get, path = "/v2/models/stats", tag = "kserve-v2",
    responses((status = 200, description = "Cumulative statistics since start", body = StatisticsResponse)))]
pub(crate) async fn server_stats(
    State(state): State<Arc<ModelService>>,
) -> Json<StatisticsResponse> {
    let mut model_stats = vec![statistics(&state, Served::Digits)];
    for model in state.imported() {
        model_stats.push(statistics(&state, Served::Imported(model)));
    }
    Json(StatisticsResponse { model_stats })
}

/// Statistics of one model: requests, queue time, forward passes by batch size.
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}/stats", tag = "kserve-v2",
    params(ModelPath),
    responses(
        (status = 200, description = "Cumulative statistics since start", body = StatisticsResponse),
        (status = 404, description = "Unknown model or version", body = ErrorBody),
    ))]
pub(crate) async fn model_stats(
    State(state): State<Arc<ModelService>>,
    Path(path): Path<ModelPath>,
) -> Result<Json<StatisticsResponse>, V2Error> {
    let served = find_model(&state, &path)?;
    Ok(Json(StatisticsResponse {
        model_stats: vec![statistics(&state, served)],
    }))
}
