//! What the handlers share. Each handler extracts only the part it needs (`State<Arc<ModelService>>`
//! or `State<PrometheusHandle>`), so none of them sees more than it uses.

use std::sync::Arc;

use axum::extract::FromRef;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::service::ModelService;

/// The router's state: the model service, and the recorder `/metrics` renders.
#[derive(Clone, FromRef)]
pub(crate) struct ApiState {
    pub(crate) service: Arc<ModelService>,
    pub(crate) metrics: PrometheusHandle,
    pub(crate) repository_api: RepositoryApi,
}

/// Whether the repository API is served (admin keys are set), for `GET /v2`'s extension list.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RepositoryApi(pub(crate) bool);
