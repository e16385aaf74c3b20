//! The `inference.GRPCInferenceService` RPCs: each checks the model it is asked about, calls the
//! model service, and answers; every call is timed and counted by method and status code.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tonic::{Request, Response, Status};

use super::pb::grpc_inference_service_server::GrpcInferenceService;
use super::pb::*;
use super::{convert, imported, status};
use crate::protocol;
use crate::service::{ModelService, Served};
use crate::telemetry::metrics as m;

pub(crate) struct InferenceService {
    service: Arc<ModelService>,
    /// The repository calls are served (admin keys are set).
    repository_api: bool,
}

impl InferenceService {
    pub(crate) fn new(service: Arc<ModelService>, repository_api: bool) -> Self {
        Self {
            service,
            repository_api,
        }
    }

    fn find(&self, name: &str, version: &str) -> Result<Served, Status> {
        self.service
            .find(name, Some(version))
            .map_err(super::status::lookup_status)
    }

    /// The statistics of one served model.
    fn statistics(&self, served: Served) -> ModelStatistics {
        match served {
            Served::Digits => convert::statistics(
                &self.service.model.name,
                &self.service.model.version,
                self.service.queue.statistics(),
            ),
            Served::Imported(model) => convert::statistics(
                model.name(),
                &model.config().version,
                model.queue.statistics(),
            ),
        }
    }
}

/// The answer of `call`, unless the client's deadline passes first: then the request gives up
/// too (`gave_up` counts it), leaving its batch if its pass has not started.
async fn within<T>(
    deadline: Option<std::time::Duration>,
    call: impl Future<Output = Result<T, crate::service::PredictError>>,
    gave_up: impl FnOnce(),
) -> Result<T, Status> {
    match deadline {
        None => call.await.map_err(super::status::predict_status),
        Some(limit) => match tokio::time::timeout(limit, call).await {
            Ok(result) => result.map_err(super::status::predict_status),
            Err(_) => {
                gave_up();
                Err(Status::deadline_exceeded(format!(
                    "no answer within the client's deadline of {limit:?}"
                )))
            }
        },
    }
}

/// Run one call, recording its duration and status code.
async fn observed<T>(
    method: &'static str,
    call: impl Future<Output = Result<T, Status>>,
) -> Result<Response<T>, Status> {
    let call_metrics = CallMetrics {
        method,
        started: Instant::now(),
        answered: false,
    };
    let result = call.await;
    call_metrics.record(match &result {
        Ok(_) => tonic::Code::Ok,
        Err(status) => status.code(),
    });
    result.map(Response::new)
}

/// One call's metrics. The connection drops the call's future when its client goes away (a
/// cancelled RPC, a closed connection), so a call dropped unanswered is recorded on drop with
/// gRPC's own code for it, CANCELLED.
struct CallMetrics {
    method: &'static str,
    started: Instant,
    answered: bool,
}

impl CallMetrics {
    fn record(mut self, code: tonic::Code) {
        self.answered = true;
        self.write(code);
    }

    fn write(&self, code: tonic::Code) {
        let method = self.method;
        metrics::histogram!(m::GRPC_DURATION, "method" => method)
            .record(self.started.elapsed().as_secs_f64());
        metrics::counter!(m::GRPC_REQUESTS, "method" => method, "code" => code_name(code))
            .increment(1);
        crate::telemetry::traces::record_rpc(
            super::pb::grpc_inference_service_server::SERVICE_NAME,
            method,
            code as i32,
        );
    }
}

impl Drop for CallMetrics {
    fn drop(&mut self) {
        if !self.answered {
            self.write(tonic::Code::Cancelled);
        }
    }
}

/// The status code as gRPC spells it (`OK`, `INVALID_ARGUMENT`, ...).
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

#[tonic::async_trait]
impl GrpcInferenceService for InferenceService {
    async fn server_live(
        &self,
        _: Request<ServerLiveRequest>,
    ) -> Result<Response<ServerLiveResponse>, Status> {
        observed("ServerLive", async {
            Ok(ServerLiveResponse { live: true })
        })
        .await
    }

    async fn server_ready(
        &self,
        _: Request<ServerReadyRequest>,
    ) -> Result<Response<ServerReadyResponse>, Status> {
        let ready = self.service.is_ready();
        observed(
            "ServerReady",
            async move { Ok(ServerReadyResponse { ready }) },
        )
        .await
    }

    async fn model_ready(
        &self,
        request: Request<ModelReadyRequest>,
    ) -> Result<Response<ModelReadyResponse>, Status> {
        observed("ModelReady", async {
            let request = request.into_inner();
            let ready = self
                .service
                .model_ready(&request.name, Some(&request.version))
                .map_err(super::status::lookup_status)?;
            Ok(ModelReadyResponse { ready })
        })
        .await
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        observed("ServerMetadata", async {
            Ok(ServerMetadataResponse {
                name: env!("CARGO_PKG_NAME").into(),
                version: env!("CARGO_PKG_VERSION").into(),
                extensions: protocol::extensions(self.repository_api),
            })
        })
        .await
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        observed("ModelMetadata", async {
            let request = request.into_inner();
            Ok(match self.find(&request.name, &request.version)? {
                Served::Digits => convert::metadata(&self.service),
                Served::Imported(model) => {
                    imported::metadata(&model, self.service.versions_of(&request.name))
                }
            })
        })
        .await
    }

    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        observed("ModelInfer", async {
            let deadline = status::client_timeout(request.metadata());
            let key = self
                .service
                .repository
                .sticky_header()
                .and_then(|name| request.metadata().get(name))
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let request = request.into_inner();
            let (served, shadow) = self
                .service
                .route(
                    &request.model_name,
                    Some(&request.model_version),
                    key.as_deref(),
                )
                .map_err(super::status::lookup_status)?;
            if let Served::Imported(model) = served {
                let rows = imported::rows(&model, &request)?;
                let outputs = imported::requested_outputs(&model, &request)?;
                let answers = within(deadline, model.predict_shadowed(rows, shadow), || {
                    model
                        .queue
                        .metrics()
                        .rejected("client_deadline")
                        .increment(1);
                })
                .await?;
                return Ok(imported::response(&model, request.id, &answers, &outputs));
            }
            let rows = convert::images(&request, self.service.model.max_batch_size)?;
            let outputs = convert::requested_outputs(&request)?;
            let predictions = within(deadline, self.service.predict(rows), || {
                self.service
                    .queue
                    .metrics()
                    .rejected("client_deadline")
                    .increment(1);
            })
            .await?;
            Ok(convert::response(
                &self.service,
                request.id,
                &predictions,
                &outputs,
            ))
        })
        .await
    }

    async fn model_config(
        &self,
        request: Request<ModelConfigRequest>,
    ) -> Result<Response<ModelConfigResponse>, Status> {
        observed("ModelConfig", async {
            let request = request.into_inner();
            let config = match self.find(&request.name, &request.version)? {
                Served::Digits => convert::config(&self.service),
                Served::Imported(model) => imported::config(&model),
            };
            Ok(ModelConfigResponse {
                config: Some(config),
            })
        })
        .await
    }

    async fn model_statistics(
        &self,
        request: Request<ModelStatisticsRequest>,
    ) -> Result<Response<ModelStatisticsResponse>, Status> {
        observed("ModelStatistics", async {
            let request = request.into_inner();
            // An empty name asks for every model (Triton's convention).
            if !request.name.is_empty() {
                let served = self.find(&request.name, &request.version)?;
                return Ok(ModelStatisticsResponse {
                    model_stats: vec![self.statistics(served)],
                });
            }
            let mut model_stats = vec![self.statistics(Served::Digits)];
            for model in self.service.imported() {
                model_stats.push(self.statistics(Served::Imported(model)));
            }
            Ok(ModelStatisticsResponse { model_stats })
        })
        .await
    }

    async fn repository_index(
        &self,
        request: Request<RepositoryIndexRequest>,
    ) -> Result<Response<RepositoryIndexResponse>, Status> {
        observed("RepositoryIndex", async {
            let request = request.into_inner();
            let models = self
                .service
                .repository_index(request.ready)
                .into_iter()
                .map(|e| repository_index_response::ModelIndex {
                    name: e.name,
                    version: e.version,
                    state: e.state.into(),
                    reason: e.reason,
                })
                .collect();
            Ok(RepositoryIndexResponse { models })
        })
        .await
    }

    async fn repository_model_load(
        &self,
        request: Request<RepositoryModelLoadRequest>,
    ) -> Result<Response<RepositoryModelLoadResponse>, Status> {
        observed("RepositoryModelLoad", async {
            let request = request.into_inner();
            crate::service::repository::refuse_uploads(request.parameters.keys())
                .map_err(status::repository_status)?;
            let config = match request
                .parameters
                .get("config")
                .map(|p| &p.parameter_choice)
            {
                None => None,
                Some(Some(model_repository_parameter::ParameterChoice::StringParam(c))) => {
                    Some(c.as_str())
                }
                Some(_) => {
                    return Err(Status::invalid_argument(
                        "parameters.config: a model configuration as a JSON string",
                    ));
                }
            };
            self.service
                .load_model(&request.model_name, config)
                .await
                .map_err(status::repository_status)?;
            Ok(RepositoryModelLoadResponse {})
        })
        .await
    }

    async fn repository_model_unload(
        &self,
        request: Request<RepositoryModelUnloadRequest>,
    ) -> Result<Response<RepositoryModelUnloadResponse>, Status> {
        observed("RepositoryModelUnload", async {
            let request = request.into_inner();
            self.service
                .unload_model(&request.model_name)
                .await
                .map_err(status::repository_status)?;
            Ok(RepositoryModelUnloadResponse {})
        })
        .await
    }
}
