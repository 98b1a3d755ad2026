//! The gRPC face: HealthReports, grpc.health.v1 and reflection on one port.

pub mod convert;
mod health;
pub mod proto;
mod reports;

use std::{future::Future, time::Duration};

use tokio::net::TcpListener;
use tonic::transport::{server::TcpIncoming, Server};

use crate::{core::ingest::Limits, engine::Engine};
use proto::{
    health::health_server::HealthServer, v1::health_reports_server::HealthReportsServer,
    FILE_DESCRIPTOR_SET,
};

use health::Health;
use reports::Reports;

/// How often an idle connection is pinged, and how long a ping may go unanswered.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a unary call may take before it fails with DEADLINE_EXCEEDED.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves on `listener` until `drain` completes, then stops accepting and waits for the open
/// calls to finish (the app bounds that wait).
pub async fn serve(
    listener: TcpListener,
    engine: Engine,
    limits: Limits,
    drain: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the built-in descriptor set is valid");
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .expect("the built-in descriptor set is valid");
    Server::builder()
        // A watcher that vanishes without closing its connection (a lost node, a partition)
        // would hold its stream forever; pings find such connections and free them.
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        // Bounds a unary call waiting on a saturated engine; clients' grpc-timeout still applies.
        .timeout(CALL_TIMEOUT)
        .add_service(HealthReportsServer::new(Reports::new(engine.clone(), limits)))
        .add_service(HealthServer::new(Health::new(engine)))
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        // Serving from our own listener skips the builder's socket options: set them here.
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener)
                .with_nodelay(Some(true))
                .with_keepalive(Some(KEEPALIVE_INTERVAL)),
            drain,
        )
        .await
}
