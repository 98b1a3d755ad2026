//! The gRPC server: HealthReports, grpc.health.v1 and reflection on one port, with a graceful
//! shutdown that tells probes first.

mod health;
mod reports;

use std::{future::Future, time::Duration};

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;

use crate::{
    config::Config,
    engine::Engine,
    proto::{
        health::health_server::HealthServer, v1::health_reports_server::HealthReportsServer,
        FILE_DESCRIPTOR_SET,
    },
    store::Store,
};

pub use health::Health;
pub use reports::Reports;

/// How often an idle connection is pinged, and how long a ping may go unanswered.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a unary call may take before it fails with DEADLINE_EXCEEDED.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the service could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot start the host sampler thread: {0}")]
    Sampler(#[source] std::io::Error),
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
}

/// The whole service as configured: the engine, the host sampler (if enabled) and the server on
/// `listener`, until `shutdown` completes and the grace period is over.
pub async fn run(
    listener: TcpListener,
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let engine = Engine::start(
        Store::new(config.limits.clone()),
        config.policy(),
        config.health.not_serving_at,
    );
    if config.host.enabled {
        crate::host::spawn(engine.clone(), &config.host).map_err(ServeError::Sampler)?;
    }
    let settings = Settings {
        max_name_bytes: config.limits.max_name_bytes,
        shutdown_grace: config.shutdown_grace(),
    };
    Ok(serve(listener, engine, settings, shutdown).await?)
}

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
        // A watcher that vanishes without closing its connection (a lost node, a partition)
        // would hold its stream forever; pings find such connections and free them.
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .tcp_keepalive(Some(KEEPALIVE_INTERVAL))
        // Bounds a unary call waiting on a saturated engine; clients' grpc-timeout still applies.
        .timeout(CALL_TIMEOUT)
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
