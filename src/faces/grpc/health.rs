//! `grpc.health.v1.Health` over the engine's published state: Check, List and Watch as the
//! standard defines them, so kubelet, meshes and grpc-health-probe work unchanged.

use std::{
    convert::Infallible,
    pin::Pin,
    task::{Context, Poll},
};

use futures_util::{
    future::{Either, MapOk},
    TryFutureExt,
};
use tokio_stream::{wrappers::WatchStream, Stream, StreamExt};
use tonic::{body::Body, Request, Response, Status};
use tower::{Layer, Service};

use crate::proto::health::{
    health_check_response::ServingStatus, health_server, HealthCheckRequest, HealthCheckResponse,
    HealthListRequest, HealthListResponse,
};
use crate::{
    engine::Engine,
    faces::{
        listener::{hold_nothing, HeldBody},
        WatchSlots,
    },
};

/// The path prefix of every grpc.health.v1 method.
const PATH: &str = "/grpc.health.v1.Health/";

/// Serves grpc.health.v1 ahead of the layers and the router the other services are behind
/// (the gate, the answer budget, the route table): a probe needs no token, no request slot and
/// no budget, so it pays for none. Only the connection's [`super::super::listener::TrackLayer`]
/// and tonic's own per-connection layers (which apply `grpc-timeout`) are outside it. An unknown method under the prefix gets UNIMPLEMENTED from the health
/// service itself, as from the router.
#[derive(Clone)]
pub struct ProbesFirstLayer(pub health_server::HealthServer<Health>);

impl<S> Layer<S> for ProbesFirstLayer {
    type Service = ProbesFirst<S>;

    fn layer(&self, rest: S) -> ProbesFirst<S> {
        ProbesFirst {
            probes: self.0.clone(),
            rest,
        }
    }
}

#[derive(Clone)]
pub struct ProbesFirst<S> {
    probes: health_server::HealthServer<Health>,
    rest: S,
}

type ProbeFuture<B> = MapOk<
    <health_server::HealthServer<Health> as Service<http::Request<B>>>::Future,
    fn(http::Response<Body>) -> http::Response<HeldBody<Body>>,
>;

impl<S, B> Service<http::Request<B>> for ProbesFirst<S>
where
    S: Service<http::Request<B>, Response = http::Response<HeldBody<Body>>, Error = Infallible>,
    health_server::HealthServer<Health>:
        Service<http::Request<B>, Response = http::Response<Body>, Error = Infallible>,
{
    type Response = http::Response<HeldBody<Body>>;
    type Error = Infallible;
    type Future = Either<ProbeFuture<B>, S::Future>;

    /// The health service is always ready: only the rest is asked.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.rest.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path().starts_with(PATH) {
            let held: fn(http::Response<Body>) -> http::Response<HeldBody<Body>> = hold_nothing;
            Either::Left(self.probes.call(request).map_ok(held))
        } else {
            Either::Right(self.rest.call(request))
        }
    }
}

pub struct Health {
    engine: Engine,
    watch_slots: WatchSlots,
}

impl Health {
    pub fn new(engine: Engine, watch_slots: WatchSlots) -> Self {
        Self {
            engine,
            watch_slots,
        }
    }
}

fn response(status: impl Into<ServingStatus>) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status.into().into(),
    }
}

type HealthWatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl health_server::Health for Health {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let service = &request.get_ref().service;
        match self.engine.serving(service) {
            Some(status) => Ok(Response::new(response(status))),
            None => Err(Status::not_found(format!("unknown service {service:?}"))),
        }
    }

    async fn list(
        &self,
        _request: Request<HealthListRequest>,
    ) -> Result<Response<HealthListResponse>, Status> {
        let state = self.engine.state();
        Ok(Response::new(HealthListResponse {
            statuses: state
                .probes
                .serving
                .iter()
                .map(|(name, status)| (name.to_string(), response(*status)))
                .collect(),
        }))
    }

    type WatchStream = HealthWatchStream;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let service = request.into_inner().service;
        let slot = self.watch_slots.open()?;
        let mut last_sent = None;
        // The standard: send the current status at once (SERVICE_UNKNOWN for a name not known
        // yet, without ending the call), then a message only when the status really changes.
        let stream = WatchStream::new(self.engine.subscribe()).filter_map(move |state| {
            // Held as long as the stream is.
            let _slot = &slot;
            let status = state
                .probes
                .serving
                .get(service.as_str())
                .map_or(ServingStatus::ServiceUnknown, |&s| s.into());
            if last_sent == Some(status) {
                return None;
            }
            last_sent = Some(status);
            Some(Ok(response(status)))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
