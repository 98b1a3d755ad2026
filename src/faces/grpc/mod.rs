//! The gRPC face: HealthReports, grpc.health.v1, reflection and the OTLP metrics receiver on
//! one port.

pub mod convert;
mod engine_wait;
mod health;
mod otlp;
mod reports;
mod watch;

use std::{future::Future, sync::Arc};

use tonic::transport::Server;
use tower::util::MapResponseLayer;

use super::{
    admission::Admission,
    auth::{Denied, Scope, Tokens},
    budget::Budget,
    gate::{GateLayer, Policy},
    listener::{hold_until_sent, Incoming, TrackLayer},
    WatchSlots,
};
use crate::proto::{health::health_server::HealthServer, FILE_DESCRIPTOR_SET};
use crate::{core::ingest::Limits, engine::Engine, sources::otlp::Otlp, telemetry::Telemetry};

use health::{Health, ProbesFirstLayer};
use reports::Reports;
use watch::{HealthReportsService, ReadsFirstLayer};

/// What the gRPC face needs beyond the engine.
#[derive(Clone, Debug)]
pub struct Settings {
    pub limits: Limits,
    /// SETTINGS_MAX_CONCURRENT_STREAMS of every connection.
    pub max_concurrent_streams: u32,
    /// Watch streams open at once, shared with the other faces.
    pub watch_slots: WatchSlots,
    /// grpc.health.v1 Watch streams open at once, shared with the probe-only listener.
    pub probe_watch_slots: WatchSlots,
    /// Where pushes are counted.
    pub telemetry: Arc<Telemetry>,
    /// The OTLP receiver, when `otlp.enabled`.
    pub otlp: Option<Arc<Otlp>>,
    /// Bytes that report answers in flight may hold.
    pub answers: Budget,
    /// The bearer tokens, when `auth.tokens` are configured.
    pub tokens: Option<Arc<Tokens>>,
    /// Requests at once and pushes per source, shared with the other faces.
    pub admission: Arc<Admission>,
}

/// Serves the connections of `incoming` until `drain` completes, then stops accepting and
/// waits for the open calls to finish (the app bounds that wait).
pub async fn serve(
    incoming: Incoming,
    engine: Engine,
    settings: Settings,
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
    let reports = HealthReportsService::new(Reports::new(
        engine.clone(),
        settings.limits,
        settings.admission.clone(),
        settings.watch_slots.clone(),
        settings.answers,
        settings.telemetry,
    ));
    Server::builder()
        // No HTTP/2 keepalive pings: a watcher that vanishes without closing its connection is
        // found by TCP keepalive (`listener::Incoming`), which costs nothing per request;
        // hyper's pings read the clock on every frame (callgrind: about 750 instructions of a
        // Check's 57,000).
        .max_concurrent_streams(settings.max_concurrent_streams)
        .layer(TrackLayer)
        .layer(probes_first(engine.clone(), settings.probe_watch_slots))
        .layer(MapResponseLayer::new(hold_until_sent))
        .layer(GateLayer::new(
            settings.tokens,
            settings.admission.requests.clone(),
            GrpcPolicy,
        ))
        .layer(ReadsFirstLayer(reports.clone()))
        .add_service(reports)
        .add_optional_service(
            settings
                .otlp
                .map(|otlp| otlp::OtlpMetrics::new(otlp, settings.admission)),
        )
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        // Serving from our own listener skips the builder's socket options: `Incoming` sets them.
        .serve_with_incoming_shutdown(incoming, drain)
        .await
}

/// The ingestion RPCs need `push`; everything else (reports, watches, reflection) needs `read`.
/// grpc.health.v1 never reaches the gate: [`probes_first`] serves it ahead, with no token
/// (kubelets and meshes send none).
#[derive(Clone, Copy)]
struct GrpcPolicy;

const PUSH_METHODS: [&str; 3] = [
    "/healthscore.v1.HealthReports/ReportMetrics",
    "/healthscore.v1.HealthReports/ForgetSource",
    "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
];

impl Policy for GrpcPolicy {
    type Body = tonic::body::Body;

    fn scope<B>(&self, request: &http::Request<B>) -> Option<Scope> {
        if PUSH_METHODS.contains(&request.uri().path()) {
            Some(Scope::Push)
        } else {
            Some(Scope::Read)
        }
    }

    fn cookie_allowed<B>(&self, _: &http::Request<B>) -> bool {
        false
    }

    fn deny(&self, denied: Denied) -> http::Response<tonic::body::Body> {
        let status = match denied {
            Denied::Unauthenticated(_) => tonic::Status::unauthenticated(denied.to_string()),
            Denied::Forbidden(_) => tonic::Status::permission_denied(denied.to_string()),
            Denied::Busy => tonic::Status::resource_exhausted(denied.to_string()),
            Denied::ProbesOnly => tonic::Status::unavailable(denied.to_string()),
        };
        status.into_http()
    }
}

/// grpc.health.v1, served ahead of everything else on the gRPC listener and the probe-only one.
pub fn probes_first(engine: Engine, watch_slots: WatchSlots) -> ProbesFirstLayer {
    ProbesFirstLayer(HealthServer::new(Health::new(engine, watch_slots)))
}
