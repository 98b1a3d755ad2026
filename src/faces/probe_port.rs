//! The probe-only listener: grpc.health.v1 (h2c) and `/livez`, `/readyz` (HTTP/1.1) on one
//! plaintext port, for kubelets, which can neither verify a certificate nor send a token, when
//! the main listeners serve TLS. It serves nothing else.

use std::future::Future;

use tonic::{service::Routes, transport::Server};
use tower::util::MapResponseLayer;

use super::{
    grpc::health_service,
    http::probes,
    listener::hold_until_sent,
    listener::{Incoming, TrackLayer},
    WatchSlots,
};
use crate::engine::Engine;

/// Serves the probes on `incoming` until `drain` completes.
pub async fn serve(
    incoming: Incoming,
    engine: Engine,
    watch_slots: WatchSlots,
    drain: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let routes = Routes::from(probes::router(engine.clone()))
        .add_service(health_service(engine, watch_slots));
    Server::builder()
        .accept_http1(true)
        .layer(TrackLayer)
        .layer(MapResponseLayer::new(hold_until_sent))
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, drain)
        .await
}
