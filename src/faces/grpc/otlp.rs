//! `opentelemetry.proto.collector.metrics.v1.MetricsService/Export` on the gRPC listener: OTLP
//! exports handed to the OTLP source.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::metrics::v1::{
    metrics_service_server::MetricsService, ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
};
use tonic::{Request, Response, Status};

use crate::sources::otlp::Otlp;

pub struct OtlpMetrics {
    otlp: Arc<Otlp>,
}

impl OtlpMetrics {
    pub fn new(otlp: Arc<Otlp>) -> Self {
        Self { otlp }
    }
}

#[tonic::async_trait]
impl MetricsService for OtlpMetrics {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let exported = self.otlp.export(request.into_inner()).await;
        exported
            .response()
            .map(Response::new)
            .map_err(Status::invalid_argument)
    }
}
