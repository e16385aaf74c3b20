//! How a request names a model: by name, and perhaps a version, spelled as its major version
//! (what Triton's tools send, since they parse versions as integers) or in full.

/// The model version as the protocol names it: the major version, because Triton's tools
/// (perf_analyzer) parse versions as integers. The full semantic version is accepted too.
pub fn protocol_version(semver: &str) -> &str {
    semver.split('.').next().unwrap_or(semver)
}

/// A request named a model or version this server does not serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelLookupError {
    #[error("unknown model '{asked}'; this server serves '{served}'")]
    UnknownModel { asked: String, served: String },
    #[error(
        "unknown version '{asked}' of model '{model}'; the versions loaded are {loaded} (a major names its newest)"
    )]
    UnknownVersion {
        asked: String,
        model: String,
        loaded: String,
    },
    #[error("no model named '{asked}' in the repository (there: '{there}')")]
    NotInRepository { asked: String, there: String },
    #[error("model '{model}' has no version loaded (it was unloaded through the repository API)")]
    Unavailable { model: String },
}

/// Ok if `version` is absent, empty, or a spelling of model `name`'s `semver` (its major
/// version or all of it).
pub(crate) fn check_version(
    name: &str,
    semver: &str,
    version: Option<&str>,
) -> Result<(), ModelLookupError> {
    match version {
        Some(v) if !v.is_empty() && v != protocol_version(semver) && v != semver => {
            Err(ModelLookupError::UnknownVersion {
                asked: v.to_string(),
                model: name.to_string(),
                loaded: semver.to_string(),
            })
        }
        _ => Ok(()),
    }
}
