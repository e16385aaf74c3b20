//! How a V2 path names the served model: its name, and perhaps a version, which may be spelled
//! as the major version (what Triton's tools send) or in full.

use serde::Deserialize;
use utoipa::IntoParams;

use super::error::V2Error;
use crate::service::ModelService;

/// Where a model operation's path names the model, and perhaps its version. Described once for
/// every operation's OpenAPI parameters (the unversioned paths drop `version`, `openapi.rs`).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ModelPath {
    /// Model name.
    #[param(example = "digits-cnn")]
    pub name: String,
    /// Model version: the major version (`2`) or the full one (`2.0.0`).
    #[serde(default)]
    #[param(required = true, value_type = String, example = "2")]
    pub version: Option<String>,
}

/// The model version as the V2 surface names it: the major version, because Triton's tools
/// (perf_analyzer) parse versions as integers. The full semantic version is accepted too.
pub fn protocol_version(semver: &str) -> &str {
    semver.split('.').next().unwrap_or(semver)
}

/// 404 unless the path names the served model (and one of its version spellings, if any).
pub fn check_model(state: &ModelService, path: &ModelPath) -> Result<(), V2Error> {
    let served = &state.model;
    if path.name != served.name {
        return Err(V2Error::not_found(format!(
            "unknown model '{}'; this server serves '{}'",
            path.name, served.name
        )));
    }
    match &path.version {
        Some(v) if v != protocol_version(&served.version) && *v != served.version => {
            Err(V2Error::not_found(format!(
                "unknown version '{v}' of model '{}'; the served version is '{}' ({})",
                path.name,
                protocol_version(&served.version),
                served.version
            )))
        }
        _ => Ok(()),
    }
}
