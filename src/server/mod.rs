//! The gRPC server: HealthReports, grpc.health.v1 and reflection on one port, with a graceful
//! shutdown that tells probes first.

mod health;
mod reports;

use std::{future::Future, time::Duration};

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;

use crate::{
    engine::Engine,
    proto::{
        health::health_server::HealthServer, v1::health_reports_server::HealthReportsServer,
        FILE_DESCRIPTOR_SET,
    },
};

pub use health::Health;
pub use reports::Reports;

/// How the server runs.
#[derive(Clone, Debug)]
pub struct Settings {
    pub max_name_bytes: usize,
    /// Time between turning every health name NOT_SERVING and closing the server.
    pub shutdown_grace: Duration,
}

/// Serves on `listener` until `shutdown` completes; then turns every grpc.health.v1 name
/// NOT_SERVING, waits `shutdown_grace` while still serving, stops the engine (ending every
/// watch stream) and drains the remaining calls.
pub async fn serve(
    listener: TcpListener,
    engine: Engine,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the built-in descriptor set is valid");
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .expect("the built-in descriptor set is valid");
    let draining = {
        let engine = engine.clone();
        async move {
            shutdown.await;
            tracing::info!(grace = ?settings.shutdown_grace, "shutting down: every health name is NOT_SERVING");
            // An error means the engine already stopped, which is where this is heading anyway.
            let _ = engine.begin_shutdown().await;
            tokio::time::sleep(settings.shutdown_grace).await;
            engine.stop().await;
            tracing::info!("grace period over: closing connections");
        }
    };
    Server::builder()
        .add_service(HealthReportsServer::new(Reports::new(
            engine.clone(),
            settings.max_name_bytes,
        )))
        .add_service(HealthServer::new(Health::new(engine)))
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), draining)
        .await
}
