//! The benchmarks' peer: a bare tonic-health server with "" SERVING, nothing else. Built with
//! the same release profile as healthscore so a ratio between the two measures healthscore's
//! own cost.
//!
//!     cargo run --release --example bare_health -- 127.0.0.1:50052 [ANSWER]
//!
//! With ANSWER (a GetSystemHealth answer saved by `bench_client seed ADDR FILE`) it also answers
//! `healthscore.v1.HealthReports/GetSystemHealth` with that report's bytes, encoded once at start
//! as healthscore keeps its views: the peer for healthscore's memory under the same read load,
//! doing no work per call but tonic's own.

use std::{
    convert::Infallible,
    future::{ready, Future, Ready},
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use healthscore::proto::{
    framed,
    v1::{GetSystemHealthRequest, GetSystemHealthResponse},
};
use prost::Message;
use tonic::{
    body::Body,
    server::{Grpc, NamedService, UnaryService},
    transport::Server,
    Request, Response, Status,
};
use tonic_health::ServingStatus;
use tonic_prost::ProstCodec;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:50052".into())
        .parse()?;
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    let mut router = Server::builder().add_service(service);
    if let Some(file) = args.next() {
        let answer = GetSystemHealthResponse::decode(std::fs::read(&file)?.as_slice())?;
        let report = answer.report().ok_or("the answer holds no report")?;
        router = router.add_service(SystemReport(framed(&GetSystemHealthResponse::built(
            report,
        ))));
    }
    eprintln!("bare tonic-health listening on {addr}");
    router.serve(addr).await?;
    Ok(())
}

/// `healthscore.v1.HealthReports` with one method, GetSystemHealth, answering a fixed report.
#[derive(Clone)]
struct SystemReport(Bytes);

impl NamedService for SystemReport {
    const NAME: &'static str = "healthscore.v1.HealthReports";
}

impl UnaryService<GetSystemHealthRequest> for SystemReport {
    type Response = GetSystemHealthResponse;
    type Future = Ready<Result<Response<GetSystemHealthResponse>, Status>>;

    fn call(&mut self, _: Request<GetSystemHealthRequest>) -> Self::Future {
        // tonic's codec copies the encoding into the call's buffer, as for any message.
        ready(Ok(Response::new(GetSystemHealthResponse::Framed(
            self.0.clone(),
        ))))
    }
}

impl tower::Service<http::Request<Body>> for SystemReport {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let service = self.clone();
        Box::pin(async move {
            if request.uri().path() != "/healthscore.v1.HealthReports/GetSystemHealth" {
                return Ok(Status::unimplemented("only GetSystemHealth").into_http());
            }
            let mut grpc = Grpc::new(ProstCodec::default());
            Ok(grpc.unary(service, request).await)
        })
    }
}
