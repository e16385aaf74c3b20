//! KServe V2 / Open Inference Protocol over gRPC (`inference.GRPCInferenceService`), for clients
//! that speak only gRPC (ModelMesh, many Triton deployments, `tritonclient.grpc`,
//! `perf_analyzer -i grpc`). Calls go through the same model service, queue, batching, limits and
//! statistics as REST; the protocol's checks and encodings are shared with it
//! (`crate::protocol`), so the two answer alike.
//!
//! Served on its own port (`--grpc-port`) beside gRPC health checking (`grpc.health.v1`, which
//! follows readiness) and server reflection, so `grpcurl`-style tools and Kubernetes' gRPC
//! probes work without a copy of the `.proto`.

mod convert;
pub mod pb;
mod service;
mod status;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::service::ModelService;

pub use self::service::InferenceService;

/// The service name health checks and reflection report.
pub const SERVICE_NAME: &str = "inference.GRPCInferenceService";

/// Why the gRPC surface could not be built or served.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("gRPC server: {0}")]
    Serve(#[from] std::io::Error),
}

/// Every gRPC service this server offers, as one router.
pub fn router(service: Arc<ModelService>, body_limit: usize) -> Result<axum::Router, GrpcError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    tokio::spawn(follow_readiness(service.clone(), reporter));
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let inference = pb::grpc_inference_service_server::GrpcInferenceServiceServer::new(
        InferenceService::new(service),
    )
    // The same bound as --body-limit puts on a REST body.
    .max_decoding_message_size(body_limit);
    Ok(tonic::service::Routes::new(inference)
        .add_service(health)
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?)
        .into_axum_router())
}

/// Serve gRPC on `listener` until `shutdown` resolves, then let in-flight calls finish.
pub async fn serve(
    listener: TcpListener,
    service: Arc<ModelService>,
    body_limit: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GrpcError> {
    let app = router(service, body_limit)?;
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// Keep `grpc.health.v1` in step with readiness, for the server as a whole ("") and for the
/// inference service: NOT_SERVING until warm-up succeeds and again once shutdown begins.
async fn follow_readiness(service: Arc<ModelService>, reporter: HealthReporter) {
    let mut readiness = service.watch_readiness();
    drop(service); // only the channel is needed; the service must be free to shut down
    loop {
        let status = if *readiness.borrow_and_update() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        for name in ["", SERVICE_NAME] {
            reporter.set_service_status(name, status).await;
        }
        if readiness.changed().await.is_err() {
            return;
        }
    }
}
