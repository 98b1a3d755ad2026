//! `grpc.health.v1.Health` over the engine's published state: Check, List and Watch as the
//! standard defines them, so kubelet, meshes and grpc-health-probe work unchanged.

use std::pin::Pin;

use tokio_stream::{wrappers::WatchStream, Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::proto::health::{
    health_check_response::ServingStatus, health_server, HealthCheckRequest, HealthCheckResponse,
    HealthListRequest, HealthListResponse,
};
use crate::{engine::Engine, faces::WatchSlots};

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
