//! The OpenAPI 3.1 document, assembled from the `#[utoipa::path]` descriptions beside the
//! handlers.
//!
//! A V2 model operation is one handler served at `/v2/models/{name}/...` and at
//! `/v2/models/{name}/versions/{version}/...`; it is described once, on the versioned path,
//! and [`unversioned_aliases`] derives the other, so the two descriptions cannot differ.

use utoipa::OpenApi;
use utoipa::openapi::path::ParameterIn;
use utoipa::openapi::{RefOr, Schema};

use super::types::*;
use super::{instances, routes, v2};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ember-serve",
        description = "Serve burn models: the digits CNN (`/v1/predict`) and every model \
                       compiled in from the model repository (`/v1/models/{name}:predict`), all \
                       of them over KServe V2 too. Errors are RFC 9457 \
                       problem details (`application/problem+json`); under `/v2` they are \
                       KServe V2's `{\"error\": \"...\"}`."
    ),
    paths(
        routes::index, routes::live, routes::ready, routes::models, routes::predict, routes::metrics,
        instances::model, instances::predict,
        v2::server_metadata, v2::server_live, v2::server_ready, v2::server_stats,
        v2::model_metadata, v2::model_ready, v2::model_config, v2::model_stats, v2::infer,
    ),
    components(schemas(
        PredictRequest, PredictResponse, PredictionBody, ModelsResponse, crate::service::ServedModel,
        ModelEntry, ImportedModelInfo, instances::InstancesRequest, instances::PredictionsResponse,
        HealthResponse, IndexResponse, Problem,
        v2::types::ServerMetadata, v2::types::Health, v2::types::ModelMetadata,
        v2::types::TensorMetadata, v2::types::ModelReady, v2::types::InferRequest,
        v2::types::Tensor, v2::types::RequestOutput, v2::types::OutputName,
        v2::types::OutputParameters, v2::types::InferResponse, v2::types::ErrorBody,
        v2::types::ModelConfig, v2::types::ConfigTensor, v2::types::ConfigReshape,
        v2::types::DynamicBatching, v2::types::QueuePolicy, v2::types::InstanceGroup,
        v2::types::ConfigParameter, v2::types::StatisticsResponse, v2::types::ModelStatistics,
        v2::types::InferStatistics, v2::types::BatchStatistics, v2::types::StatisticDuration,
    )),
    tags(
        (name = "inference", description = "Predictions and model metadata"),
        (name = "health", description = "Liveness and readiness probes"),
        (name = "meta", description = "Index and Prometheus metrics"),
        (name = "kserve-v2", description = "KServe V2 / Open Inference Protocol (Triton-compatible: binary tensor data, classification, model configuration, statistics)"),
    )
)]
pub(crate) struct ApiDoc;

/// Triton's model repository extension, documented when it is served.
#[derive(OpenApi)]
#[openapi(
    paths(v2::index, v2::load, v2::unload),
    components(schemas(
        v2::repository::IndexRequest, v2::repository::IndexModel, v2::repository::LoadRequest,
        v2::repository::ChangeBody,
    )),
    tags(
        (name = "model-repository", description = "Triton's model repository extension: index, load, unload (--model-control-mode explicit; admin keys only)"),
    )
)]
struct RepositoryDoc;

const VERSION_SEGMENT: &str = "/versions/{version}";

/// For every path with a `/versions/{version}` segment, the same operations without it.
fn unversioned_aliases(doc: &mut utoipa::openapi::OpenApi) {
    let aliases: Vec<_> = doc
        .paths
        .paths
        .iter()
        .filter(|(path, _)| path.contains(VERSION_SEGMENT))
        .map(|(path, item)| {
            let mut item = item.clone();
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                if let Some(params) = &mut op.parameters {
                    params.retain(|p| {
                        !matches!(p, RefOr::T(p) if p.name == "version" && p.parameter_in == ParameterIn::Path)
                    });
                }
                if let Some(id) = &mut op.operation_id {
                    id.push_str("_latest");
                }
            }
            (path.replace(VERSION_SEGMENT, ""), item)
        })
        .collect();
    doc.paths.paths.extend(aliases);
}

/// `/v1/predict` takes at most `--max-batch` rows: say so in the request schema.
fn limit_batch(doc: &mut utoipa::openapi::OpenApi, max_batch: usize) {
    let inputs = doc
        .components
        .as_mut()
        .and_then(|c| c.schemas.get_mut("PredictRequest"))
        .and_then(|s| match s {
            RefOr::T(Schema::Object(o)) => o.properties.get_mut("inputs"),
            _ => None,
        });
    if let Some(RefOr::T(Schema::Array(inputs))) = inputs {
        inputs.max_items = Some(max_batch);
    }
}

const BEARER: &str = "bearer";

/// Declare a bearer scheme named `name`, described as `description`.
fn declare_bearer(doc: &mut utoipa::openapi::OpenApi, name: &str, description: &str) {
    use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
    let scheme = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .description(Some(description))
        .build();
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(name, SecurityScheme::Http(scheme));
}

/// Make every operation of `item` require the bearer scheme `name`, with its 401 answer.
fn require_bearer(item: &mut utoipa::openapi::PathItem, name: &str, unauthorized: &str) {
    use utoipa::openapi::security::SecurityRequirement;
    for op in [&mut item.get, &mut item.post].into_iter().flatten() {
        op.security = Some(vec![SecurityRequirement::new(name, Vec::<String>::new())]);
        op.responses.responses.insert(
            "401".into(),
            RefOr::T(utoipa::openapi::Response::new(unauthorized)),
        );
    }
}

/// Declare the bearer scheme (so Swagger UI offers "Authorize"), and when keys are required,
/// require it on every operation that needs one, with its 401 answer.
fn bearer_auth(doc: &mut utoipa::openapi::OpenApi, required: bool) {
    declare_bearer(
        doc,
        BEARER,
        "An API key, when the server runs with --api-key or --api-key-file.",
    );
    if !required {
        return;
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        if super::guard::OPEN_ROUTES.contains(&path.as_str())
            || path.starts_with(v2::REPOSITORY_PREFIX)
        {
            continue;
        }
        require_bearer(
            item,
            BEARER,
            "Missing or invalid API key (`Authorization: Bearer <key>`)",
        );
    }
}

const ADMIN_BEARER: &str = "admin_bearer";

/// The repository API's paths, each requiring an admin key.
fn repository_api(doc: &mut utoipa::openapi::OpenApi) {
    let mut repository = RepositoryDoc::openapi();
    for item in repository.paths.paths.values_mut() {
        require_bearer(
            item,
            ADMIN_BEARER,
            "Missing or invalid admin key (`Authorization: Bearer <admin key>`; an inference key is refused)",
        );
    }
    doc.merge(repository);
    declare_bearer(
        doc,
        ADMIN_BEARER,
        "An admin key (--admin-api-key, --admin-api-key-file): the repository API's only.",
    );
}

/// The document served at `/api-docs/openapi.json`, for a server taking up to `max_batch`
/// inputs per request, requiring an API key where `keys_required`, serving the repository API
/// where `repository_api`, and serving `models` from the repository (each gets a ready-to-send
/// example on the operations any model answers).
pub(crate) fn document(
    max_batch: usize,
    keys_required: bool,
    repository_api: bool,
    models: &[&ember_model::ModelConfig],
) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    unversioned_aliases(&mut doc);
    limit_batch(&mut doc, max_batch);
    if repository_api {
        self::repository_api(&mut doc);
    }
    bearer_auth(&mut doc, keys_required);
    model_examples(&mut doc, models);
    doc
}

/// A request body for one model, as one operation takes it.
type BodyFor = fn(&ember_model::ModelConfig) -> serde_json::Value;

/// The operations that take any model's tensors, and how a body for one model looks there.
const MODEL_BODIES: [(&str, BodyFor); 3] = [
    ("/v2/models/{name}/versions/{version}/infer", v2_body),
    ("/v2/models/{name}/infer", v2_body),
    ("/v1/models/{name}:predict", instances_body),
];

/// One row each input accepts: its minimum where it has one (inside any maximum), else zero.
fn example_row(input: &ember_model::TensorConfig) -> Vec<f64> {
    let value = input.min.unwrap_or(0.0).min(input.max.unwrap_or(f64::MAX));
    vec![value; input.row_len()]
}

fn v2_body(model: &ember_model::ModelConfig) -> serde_json::Value {
    let inputs: Vec<_> = model
        .inputs
        .iter()
        .map(|t| {
            let mut shape = vec![1i64];
            shape.extend(t.shape.iter().skip(1));
            serde_json::json!({"name": t.name, "shape": shape, "datatype": t.datatype,
                               "data": example_row(t)})
        })
        .collect();
    serde_json::json!({ "inputs": inputs })
}

fn instances_body(model: &ember_model::ModelConfig) -> serde_json::Value {
    let instance = match model.inputs.as_slice() {
        [one] => serde_json::json!(example_row(one)),
        many => serde_json::Value::Object(
            many.iter()
                .map(|t| (t.name.clone(), serde_json::json!(example_row(t))))
                .collect(),
        ),
    };
    serde_json::json!({ "instances": [instance] })
}

/// A named example per repository model on each operation that takes any model's tensors, so
/// Swagger UI offers each model's shapes ready to send (put the model's name in `name`).
fn model_examples(doc: &mut utoipa::openapi::OpenApi, models: &[&ember_model::ModelConfig]) {
    use utoipa::openapi::example::Example;
    for (path, body) in MODEL_BODIES {
        let Some(content) = doc
            .paths
            .paths
            .get_mut(path)
            .and_then(|item| item.post.as_mut())
            .and_then(|op| op.request_body.as_mut())
            .and_then(|b| match b {
                RefOr::T(b) => b.content.get_mut("application/json"),
                RefOr::Ref(_) => None,
            })
        else {
            continue;
        };
        let RefOr::T(content) = content else { continue };
        for model in models {
            let tensors = |ts: &[ember_model::TensorConfig]| {
                ts.iter()
                    .map(|t| format!("{} {} {:?}", t.name, t.datatype, t.shape))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let example = Example::builder()
                .summary(format!(
                    "{} {}: {} -> {}",
                    model.name,
                    model.version,
                    tensors(&model.inputs),
                    tensors(&model.outputs)
                ))
                .value(Some(body(model)))
                .build();
            content
                .examples
                .insert(model.name.clone(), RefOr::T(example));
        }
    }
}
