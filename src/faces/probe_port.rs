//! The probe-only listener: grpc.health.v1 (h2c) and `/livez`, `/readyz` (HTTP/1.1) on one
//! plaintext port, for kubelets, which can neither verify a certificate nor send a token, when
//! the main listeners serve TLS. It serves nothing else.

use std::future::Future;

use tonic::{service::Routes, transport::Server};
use tower::util::MapResponseLayer;

use super::{
    grpc::probes_first,
    http::probes,
    listener::{hold_until_sent, Incoming, TrackLayer},
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
    Server::builder()
        .accept_http1(true)
        .layer(TrackLayer)
        .layer(probes_first(engine.clone(), watch_slots))
        .layer(MapResponseLayer::new(hold_until_sent))
        .add_routes(Routes::from(probes::router(engine)))
        .serve_with_incoming_shutdown(incoming, drain)
        .await
}
