//! Triton's model repository extension over REST: list every version there is, load a model
//! (optionally with a new version policy), unload one. Served only in
//! `--model-control-mode explicit`, behind the admin keys (`server.rs`); tritonclient's
//! `get_model_repository_index`, `load_model` and `unload_model` call these unchanged.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::V2Error;
use super::types::ErrorBody;
use crate::service::ModelService;
use crate::service::repository::{Change, RepositoryError, refuse_uploads};

/// `POST /v2/repository/index`'s body (all of it optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(as = V2RepositoryIndexRequest)]
pub(crate) struct IndexRequest {
    /// Only the versions that are ready.
    #[serde(default)]
    ready: bool,
}

/// One version of one model, as the index lists it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = V2RepositoryModel)]
pub(crate) struct IndexModel {
    name: String,
    version: String,
    /// `READY` or `UNAVAILABLE`.
    state: String,
    /// Why a version is not ready (empty when it is).
    reason: String,
}

/// `POST …/load` and `…/unload` bodies: Triton's `parameters` (all optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(as = V2RepositoryLoadRequest)]
pub(crate) struct LoadRequest {
    #[serde(default)]
    parameters: serde_json::Map<String, serde_json::Value>,
}

/// What a load or an unload changed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = V2RepositoryChange)]
pub(crate) struct ChangeBody {
    model: String,
    /// Versions that began serving (read, checked and warmed up first).
    loaded: Vec<String>,
    /// Versions taken out of service, each once its requests had their answers.
    unloaded: Vec<String>,
    /// The version unversioned requests now meet; absent once the model is unloaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    default_version: Option<String>,
}

impl From<Change> for ChangeBody {
    fn from(c: Change) -> Self {
        Self {
            model: c.model,
            loaded: c.loaded,
            unloaded: c.unloaded,
            default_version: c.default_version,
        }
    }
}

impl From<RepositoryError> for V2Error {
    fn from(e: RepositoryError) -> Self {
        if e.is_not_found() {
            Self::not_found(e.to_string())
        } else {
            Self::bad_request(e.to_string())
        }
    }
}

/// A body that may be empty (tritonclient sends `{}`, curl often nothing) and may come
/// without a JSON content type.
fn optional_json<T: for<'de> Deserialize<'de> + Default>(body: &Bytes) -> Result<T, V2Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| V2Error::bad_request(format!("request body: {e}")))
}

/// Every version of every model of the repository, loaded or not, and why not.
#[utoipa::path(post, path = "/v2/repository/index", tag = "model-repository",
    request_body(content = IndexRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The index", body = [IndexModel]),
        (status = 400, description = "The body is not the index request", body = ErrorBody),
    ))]
pub(crate) async fn index(
    State(state): State<Arc<ModelService>>,
    body: Bytes,
) -> Result<Json<Vec<IndexModel>>, V2Error> {
    let request: IndexRequest = optional_json(&body)?;
    let models = state.repository_index(request.ready);
    Ok(Json(
        models
            .into_iter()
            .map(|e| IndexModel {
                name: e.name,
                version: e.version,
                state: e.state.into(),
                reason: e.reason,
            })
            .collect(),
    ))
}

/// Load a model as its version policy says, or as `parameters.config` (a Triton model
/// configuration as a JSON string: `version_policy`, and ember's `default_version`, `traffic`
/// (canary shares, `{"1.1.0": 5}`) and `shadow` (`{"version": "1.1.0", "percent": 10}`))
/// sets it. New versions are read, checked and warmed up before they take a request; versions the
/// policy drops are drained. On any error nothing changes.
#[utoipa::path(post, path = "/v2/repository/models/{name}/load", tag = "model-repository",
    params(("name" = String, Path, description = "A model of the repository")),
    request_body(content = LoadRequest, content_type = "application/json",
        example = json!({"parameters": {"config": "{\"version_policy\": {\"latest\": {\"num_versions\": 2}}}"}})),
    responses(
        (status = 200, description = "Loaded", body = ChangeBody),
        (status = 400, description = "Bad config, a version that does not check out (sha256, graph, shapes), a failed warm-up, or over --memory-budget; what is served is unchanged", body = ErrorBody),
        (status = 404, description = "No such model in the repository", body = ErrorBody),
    ))]
pub(crate) async fn load(
    State(state): State<Arc<ModelService>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<ChangeBody>, V2Error> {
    let request: LoadRequest = optional_json(&body)?;
    refuse_uploads(request.parameters.keys())?;
    let config = match request.parameters.get("config") {
        None => None,
        Some(serde_json::Value::String(config)) => Some(config.as_str()),
        Some(_) => {
            return Err(V2Error::bad_request(
                "parameters.config: a model configuration as a JSON string",
            ));
        }
    };
    let change = state.load_model(&name, config).await?;
    Ok(Json(change.into()))
}

/// Take every version of a model out of service; returns once their queued and in-flight
/// requests have their answers and their threads have stopped.
#[utoipa::path(post, path = "/v2/repository/models/{name}/unload", tag = "model-repository",
    params(("name" = String, Path, description = "A model of the repository")),
    request_body(content = LoadRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Unloaded and drained", body = ChangeBody),
        (status = 400, description = "The body is not an unload request", body = ErrorBody),
        (status = 404, description = "No such model in the repository", body = ErrorBody),
    ))]
pub(crate) async fn unload(
    State(state): State<Arc<ModelService>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<ChangeBody>, V2Error> {
    let _: LoadRequest = optional_json(&body)?;
    let change = state.unload_model(&name).await?;
    Ok(Json(change.into()))
}
