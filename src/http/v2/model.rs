//! How a V2 path names the served model: its name, and perhaps a version, which may be spelled
//! as the major version (what Triton's tools send) or in full (`crate::protocol::check_version`).

use serde::Deserialize;
use utoipa::IntoParams;

use super::error::V2Error;
use crate::service::{ModelService, Served};

/// Where a model operation's path names the model, and perhaps its version. Described once for
/// every operation's OpenAPI parameters (the unversioned paths drop `version`, `openapi.rs`).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct ModelPath {
    /// Model name.
    #[param(example = "digits-cnn")]
    pub(crate) name: String,
    /// Model version: the major version (`2`) or the full one (`2.0.0`).
    #[serde(default)]
    #[param(required = true, value_type = String, example = "2")]
    pub(crate) version: Option<String>,
}

/// The model the path names (with one of its version spellings, if any), or a 404.
pub(crate) fn find_model(state: &ModelService, path: &ModelPath) -> Result<Served, V2Error> {
    Ok(state.find(&path.name, path.version.as_deref())?)
}
