//! WatchHealth and GetSystemHealth served below tonic's codec. tonic encodes each message into
//! a buffer of the call's own, so every watcher, a stalled one too, and every read in flight
//! would hold its own copy of the report; here a message is the state's shared gRPC message
//! (`Envelope::Framed`: prefix, field and report in one buffer, made once per state and view),
//! so a call holds a reference to the bytes every other one sends, in one DATA frame
//! (`scripts/read-memory.sh`: 512 reads of a 69 KB report in flight). The other methods of
//! `healthscore.v1.HealthReports` go to the generated server.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use futures_util::future::Either;
use http_body::Frame;
use http_body_util::{BodyExt, Limited};
use prost::Message;
use tokio_stream::Stream;
use tonic::{body::Body, server::NamedService, Status};
use tower::{Layer, Service};

use super::reports::Reports;
use crate::proto::{
    framed,
    v1::{
        self,
        health_reports_server::{HealthReports, HealthReportsServer},
    },
    Envelope, SystemReportEnvelope,
};

const WATCH_HEALTH: &str = "/healthscore.v1.HealthReports/WatchHealth";
const GET_SYSTEM_HEALTH: &str = "/healthscore.v1.HealthReports/GetSystemHealth";
/// A WatchHealthRequest or GetSystemHealthRequest names a few subsystems and options; a longer
/// body is not one.
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// `healthscore.v1.HealthReports`: WatchHealth and GetSystemHealth here, the rest by the
/// generated server.
#[derive(Clone)]
pub struct HealthReportsService {
    generated: HealthReportsServer<Reports>,
    reports: Arc<Reports>,
}

impl HealthReportsService {
    pub fn new(reports: Reports) -> Self {
        let reports = Arc::new(reports);
        Self {
            generated: HealthReportsServer::from_arc(reports.clone()),
            reports,
        }
    }
}

impl NamedService for HealthReportsService {
    const NAME: &'static str = v1::health_reports_server::SERVICE_NAME;
}

/// What the hand-written gRPC services answer with.
pub(super) type Answer =
    Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

impl Service<http::Request<Body>> for HealthReportsService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Answer {
        let reports = self.reports.clone();
        match request.uri().path() {
            WATCH_HEALTH => Box::pin(async move {
                Ok(watch(&reports, request)
                    .await
                    .unwrap_or_else(Status::into_http))
            }),
            GET_SYSTEM_HEALTH => Box::pin(async move {
                Ok(system_health(&reports, request)
                    .await
                    .unwrap_or_else(Status::into_http))
            }),
            _ => self.generated.call(request),
        }
    }
}

/// Serves WatchHealth and GetSystemHealth ahead of tonic's router (inside the gate, which
/// still checks their token and takes their request slot), as `health::ProbesFirst` serves
/// probes. Through the router, each answer's body was boxed twice more, with an error map each
/// (axum's body and back), and every message of every watch stream was polled through them.
#[derive(Clone)]
pub struct ReadsFirstLayer(pub HealthReportsService);

impl<S> Layer<S> for ReadsFirstLayer {
    type Service = ReadsFirst<S>;

    fn layer(&self, rest: S) -> ReadsFirst<S> {
        ReadsFirst {
            reads: self.0.clone(),
            rest,
        }
    }
}

#[derive(Clone)]
pub struct ReadsFirst<S> {
    reads: HealthReportsService,
    rest: S,
}

impl<S> Service<http::Request<Body>> for ReadsFirst<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Either<Answer, S::Future>;

    /// `HealthReportsService` is always ready: only the rest is asked.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.rest.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        match request.uri().path() {
            WATCH_HEALTH | GET_SYSTEM_HEALTH => Either::Left(self.reads.call(request)),
            _ => Either::Right(self.rest.call(request)),
        }
    }
}

/// Reads the request, then answers with the stream of `Reports::watch_health`.
async fn watch(
    reports: &Reports,
    request: http::Request<Body>,
) -> Result<http::Response<Body>, Status> {
    let request: v1::WatchHealthRequest = read_request(request, "WatchHealthRequest").await?;
    let stream = reports
        .watch_health(tonic::Request::new(request))
        .await?
        .into_inner();
    Ok(answer(stream))
}

/// Reads the request, then answers with the report of `Reports::get_system_health`, holding
/// the answer's share of the budget (its extensions) until the body is sent.
async fn system_health(
    reports: &Reports,
    request: http::Request<Body>,
) -> Result<http::Response<Body>, Status> {
    let request: v1::GetSystemHealthRequest =
        read_request(request, "GetSystemHealthRequest").await?;
    let (_, message, extensions) = reports
        .get_system_health(tonic::Request::new(request))
        .await?
        .into_parts();
    let mut response = answer(tokio_stream::once(Ok(message)));
    *response.extensions_mut() = extensions;
    Ok(response)
}

/// The one message of a request's body, decoded; errors name the message `name`.
async fn read_request<M: Message + Default>(
    request: http::Request<Body>,
    name: &str,
) -> Result<M, Status> {
    let compressed = request
        .headers()
        .get("grpc-encoding")
        .is_some_and(|encoding| encoding != "identity");
    if compressed {
        return Err(Status::unimplemented(
            "compressed requests are not supported (grpc-encoding)",
        ));
    }
    let body = Limited::new(request.into_body(), MAX_REQUEST_BYTES)
        .collect()
        .await
        .map_err(|error| Status::invalid_argument(format!("cannot read the request: {error}")))?
        .to_bytes();
    let message = match (body.first(), body.get(1..5), body.get(5..)) {
        (Some(0), Some(length), Some(message))
            if u32::from_be_bytes(length.try_into().expect("four bytes")) as usize
                == message.len() =>
        {
            message
        }
        _ => {
            return Err(Status::invalid_argument(
                "the request is not one length-prefixed message",
            ))
        }
    };
    M::decode(message).map_err(|error| Status::invalid_argument(format!("{name}: {error}")))
}

/// A gRPC answer of the messages of `stream`, then its status.
fn answer<S>(stream: S) -> http::Response<Body>
where
    S: Stream<Item = Result<SystemReportEnvelope, Status>> + Unpin + Send + 'static,
{
    let body = Messages {
        stream,
        ended: false,
    };
    http::Response::builder()
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .body(Body::new(body))
        .expect("a static header is valid")
}

/// A WatchHealth or GetSystemHealth response body: each message as one chunk (the state's
/// shared gRPC message when it has one), then the trailers.
struct Messages<S> {
    stream: S,
    ended: bool,
}

impl<S> http_body::Body for Messages<S>
where
    S: Stream<Item = Result<SystemReportEnvelope, Status>> + Unpin,
{
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let status = match Pin::new(&mut self.stream).poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Some(Ok(message))) => {
                return Poll::Ready(Some(Ok(Frame::data(message_frame(message)))))
            }
            Poll::Ready(Some(Err(status))) => status,
            Poll::Ready(None) => Status::ok(""),
        };
        self.ended = true;
        let mut trailers = http::HeaderMap::new();
        if status.add_header(&mut trailers).is_err() {
            // Only a message that is not a valid header value fails: keep the code.
            trailers.insert("grpc-status", http::HeaderValue::from(status.code() as i32));
        }
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }
}

/// `message` as one gRPC message: a shared one as it is (not copied), a built one framed now.
fn message_frame(message: SystemReportEnvelope) -> Bytes {
    match message {
        Envelope::Framed(frame) => frame,
        built @ Envelope::Built(_) => framed(&built),
    }
}
