//! `opentelemetry.proto.collector.metrics.v1.MetricsService/Export` on the gRPC listener: OTLP
//! exports handed to the OTLP source.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::metrics::v1::{
    metrics_service_server::MetricsService, ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
};
use tonic::{Request, Response, Status};

use super::engine_wait::waiting_on_engine;
use crate::{
    core::ingest::FieldError,
    faces::{
        admission::{Admission, PushesOf},
        auth::Grant,
    },
    sources::otlp::Otlp,
};

pub struct OtlpMetrics {
    otlp: Arc<Otlp>,
    admission: Arc<Admission>,
}

impl OtlpMetrics {
    pub fn new(otlp: Arc<Otlp>, admission: Arc<Admission>) -> Self {
        Self { otlp, admission }
    }
}

#[tonic::async_trait]
impl MetricsService for OtlpMetrics {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let grant = request.extensions().get::<Grant>().cloned();
        let admit = PushesOf {
            admission: &self.admission,
            grant: grant.as_ref(),
        };
        waiting_on_engine(async {
            let exported = self.otlp.export(request.into_inner(), &admit).await;
            exported
                .response()
                .map(Response::new)
                .map_err(|(refusal, message)| {
                    FieldError {
                        refusal,
                        field: "resource_metrics".into(),
                        problem: message,
                    }
                    .into()
                })
        })
        .await
    }
}
