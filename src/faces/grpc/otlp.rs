//! `opentelemetry.proto.collector.metrics.v1.MetricsService/Export` on the gRPC listener: OTLP
//! exports decoded into the OTLP source's own messages (`sources::otlp::wire`, whose strings
//! are slices of the request) and handed to the source. The generated `MetricsServiceServer`
//! is not used because it decodes into opentelemetry-proto's types, a `String` per attribute.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use prost::{bytes::Buf, Message};
use tonic::{
    body::Body,
    codec::{Codec, DecodeBuf, Decoder},
    server::{Grpc, NamedService, UnaryService},
    Request, Response, Status,
};
use tonic_prost::ProstEncoder;
use tower::Service;

use super::{engine_wait::waiting_on_engine, watch::Answer};
use crate::{
    core::ingest::FieldError,
    faces::{
        admission::{Admission, PushesOf},
        auth::Grant,
    },
    sources::otlp::{wire, Otlp},
};

const EXPORT: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

/// The OTLP metrics service: its one method, `Export`.
#[derive(Clone)]
pub struct OtlpMetrics {
    otlp: Arc<Otlp>,
    admission: Arc<Admission>,
}

impl OtlpMetrics {
    pub fn new(otlp: Arc<Otlp>, admission: Arc<Admission>) -> Self {
        Self { otlp, admission }
    }
}

impl NamedService for OtlpMetrics {
    const NAME: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
}

impl Service<http::Request<Body>> for OtlpMetrics {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Answer {
        if request.uri().path() != EXPORT {
            return Box::pin(async {
                Ok(Status::unimplemented("MetricsService has only Export").into_http())
            });
        }
        let export = Export(self.clone());
        Box::pin(async move { Ok(Grpc::new(ExportCodec).unary(export, request).await) })
    }
}

/// Encodes the answer as prost does; decodes the request from one contiguous buffer.
struct ExportCodec;

impl Codec for ExportCodec {
    type Encode = ExportMetricsServiceResponse;
    type Decode = wire::Export;
    type Encoder = ProstEncoder<ExportMetricsServiceResponse>;
    type Decoder = ExportDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> ExportDecoder {
        ExportDecoder
    }
}

/// Takes the message's bytes whole (no copy), then decodes them: prost reads a `Bytes` by moving
/// a pointer, where tonic's `DecodeBuf` advances its `BytesMut` at every field (callgrind: a
/// twentieth of an export of 100 points). A message that is not an export is INVALID_ARGUMENT.
struct ExportDecoder;

impl Decoder for ExportDecoder {
    type Item = wire::Export;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<wire::Export>, Status> {
        let message = buf.copy_to_bytes(buf.remaining());
        wire::Export::decode(message).map(Some).map_err(|error| {
            Status::invalid_argument(format!(
                "the message is not an ExportMetricsServiceRequest: {error}"
            ))
        })
    }
}

/// One Export call.
struct Export(OtlpMetrics);

impl UnaryService<wire::Export> for Export {
    type Response = ExportMetricsServiceResponse;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Self::Response>, Status>> + Send>>;

    fn call(&mut self, request: Request<wire::Export>) -> Self::Future {
        let OtlpMetrics { otlp, admission } = self.0.clone();
        Box::pin(async move {
            let grant = request.extensions().get::<Grant>().cloned();
            let admit = PushesOf {
                admission: &admission,
                grant: grant.as_ref(),
            };
            waiting_on_engine(async {
                otlp.export(request.into_inner(), &admit)
                    .await
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
        })
    }
}
