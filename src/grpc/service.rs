//! The `inference.GRPCInferenceService` RPCs: each checks the model it is asked about, calls the
//! model service, and answers; every call is timed and counted by method and status code.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tonic::{Request, Response, Status};

use super::pb::grpc_inference_service_server::GrpcInferenceService;
use super::pb::*;
use super::{convert, status};
use crate::protocol::{self, EXTENSIONS};
use crate::service::ModelService;
use crate::telemetry::metrics as m;

pub struct InferenceService {
    service: Arc<ModelService>,
}

impl InferenceService {
    pub fn new(service: Arc<ModelService>) -> Self {
        Self { service }
    }

    fn check_model(&self, name: &str, version: &str) -> Result<(), Status> {
        Ok(protocol::check_model(
            &self.service.model,
            name,
            Some(version),
        )?)
    }
}

/// Run one call, recording its duration and status code.
async fn observed<T>(
    method: &'static str,
    call: impl Future<Output = Result<T, Status>>,
) -> Result<Response<T>, Status> {
    let started = Instant::now();
    let result = call.await;
    let code = match &result {
        Ok(_) => tonic::Code::Ok,
        Err(status) => status.code(),
    };
    metrics::histogram!(m::GRPC_DURATION, "method" => method)
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(m::GRPC_REQUESTS, "method" => method, "code" => code_name(code)).increment(1);
    crate::telemetry::traces::record_rpc(
        super::pb::grpc_inference_service_server::SERVICE_NAME,
        method,
        code as i32,
    );
    result.map(Response::new)
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
            self.check_model(&request.name, &request.version)?;
            Ok(ModelReadyResponse {
                ready: self.service.is_ready(),
            })
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
                extensions: EXTENSIONS.iter().map(|e| e.to_string()).collect(),
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
            self.check_model(&request.name, &request.version)?;
            Ok(convert::metadata(&self.service))
        })
        .await
    }

    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        observed("ModelInfer", async {
            let deadline = status::client_timeout(request.metadata());
            let request = request.into_inner();
            self.check_model(&request.model_name, &request.model_version)?;
            let rows = convert::images(&request, self.service.model.max_batch_size)?;
            let outputs = convert::requested_outputs(&request)?;
            let answer = self.service.predict(rows);
            let predictions = match deadline {
                None => answer.await?,
                // The client gives up at its deadline: so does the request, and it leaves its
                // batch if its pass has not started.
                Some(limit) => tokio::time::timeout(limit, answer).await.map_err(|_| {
                    self.service
                        .queue
                        .metrics()
                        .rejected("client_deadline")
                        .increment(1);
                    Status::deadline_exceeded(format!(
                        "no answer within the client's deadline of {limit:?}"
                    ))
                })??,
            };
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
            self.check_model(&request.name, &request.version)?;
            Ok(ModelConfigResponse {
                config: Some(convert::config(&self.service)),
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
                self.check_model(&request.name, &request.version)?;
            }
            Ok(convert::statistics(&self.service))
        })
        .await
    }
}
