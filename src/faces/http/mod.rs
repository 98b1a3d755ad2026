//! The HTTP face: probes for kubelets and load balancers (`/livez`, `/readyz`), the reports as
//! the seeds' JSON (`/v1/health`), live events (`/v1/watch`, Server-Sent Events), OpenMetrics
//! for Prometheus (`/metrics`), the Flask seed's endpoint (`/api/process/health-check`), and the
//! OTLP/HTTP metrics receiver (`POST /v1/metrics`).
//!
//! `GET /` is the dashboard page, embedded in the binary.
//!
//! Every answer is built from the published state; those in the default view are built once
//! per state and shared.

mod flask;
mod metrics;
mod otlp;
pub mod probes;
mod query;
mod reports;

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, LazyLock},
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio_stream::StreamExt;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower::ServiceExt;

use super::{
    admission::Admission,
    auth::{Denied, Scope, Tokens},
    gate::{GateLayer, Policy},
    listener::{hold_until_sent, Incoming, TrackLayer},
    mcp::McpHttp,
    WatchSlots,
};
use crate::{
    core::{
        ingest::Refusal,
        published::{Published, Rendition, Serving},
        scoring::Subsystem,
    },
    engine::Engine,
    sources::otlp::Otlp,
    telemetry::Telemetry,
};

/// What the HTTP face needs beyond the engine.
#[derive(Clone)]
pub struct Settings {
    /// Most entities or issues a reader may ask a report to list.
    pub max_listed: usize,
    /// Watch streams open at once, shared with the other faces.
    pub watch_slots: WatchSlots,
    pub telemetry: Arc<Telemetry>,
    /// The OTLP receiver, when `otlp.enabled`: `POST /v1/metrics` (OTLP/HTTP, protobuf).
    pub otlp: Option<Arc<Otlp>>,
    /// The bearer tokens, when `auth.tokens` are configured.
    pub tokens: Option<Arc<Tokens>>,
    /// Requests at once and pushes per source, shared with the other faces.
    pub admission: Arc<Admission>,
    /// MCP's streamable HTTP transport at `/mcp`, when `mcp.enabled`.
    pub mcp: Option<McpHttp>,
}

/// What every handler reads.
#[derive(Clone)]
struct Face {
    engine: Engine,
    settings: Settings,
}

impl axum::extract::FromRef<Face> for Engine {
    fn from_ref(face: &Face) -> Engine {
        face.engine.clone()
    }
}

/// The routes, over `engine`'s published state.
pub fn router(engine: Engine, settings: Settings) -> Router {
    let gate = GateLayer::new(
        settings.tokens.clone(),
        settings.admission.requests.clone(),
        HttpPolicy,
    );
    let router = Router::new()
        .route("/", get(dashboard))
        .route("/livez", get(probes::livez))
        .route("/readyz", get(probes::readyz))
        .route("/v1/health", get(reports::system))
        .route("/v1/health/{subsystem}", get(reports::subsystem))
        .route("/v1/watch", get(reports::watch))
        .route("/v1/history", get(reports::history))
        .route("/metrics", get(metrics::metrics))
        .route("/api/process/health-check", get(flask::health_check))
        .route("/v1/metrics", post(otlp::export))
        .fallback(not_found);
    let router = match settings.mcp.clone() {
        Some(mcp) => router.route_service("/mcp", mcp),
        None => router,
    };
    router.layer(gate).with_state(Face { engine, settings })
}

/// The probes and the dashboard page (which holds no data) are open; `POST /v1/metrics` needs
/// `push`; every other path needs `read`, from the header or, for a GET, the dashboard's cookie.
#[derive(Clone, Copy)]
struct HttpPolicy;

impl Policy for HttpPolicy {
    type Body = axum::body::Body;

    fn scope<B>(&self, request: &axum::http::Request<B>) -> Option<Scope> {
        match request.uri().path() {
            "/livez" | "/readyz" | "/" => None,
            // MCP's tools only read, over POST.
            "/mcp" => Some(Scope::Read),
            _ if request.method() == axum::http::Method::POST => Some(Scope::Push),
            _ => Some(Scope::Read),
        }
    }

    fn cookie_allowed<B>(&self, request: &axum::http::Request<B>) -> bool {
        request.method() == axum::http::Method::GET
    }

    fn deny(&self, denied: Denied) -> Response {
        let status = match denied {
            Denied::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Denied::Forbidden(_) => StatusCode::FORBIDDEN,
            Denied::Busy => StatusCode::TOO_MANY_REQUESTS,
            Denied::ProbesOnly => StatusCode::SERVICE_UNAVAILABLE,
        };
        let mut response = error(status, denied.to_string(), None);
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"healthscore\""),
            );
        }
        response
    }
}

/// The HTTP status of a refused input.
fn refusal_status(refusal: Refusal) -> StatusCode {
    match refusal {
        Refusal::Invalid => StatusCode::BAD_REQUEST,
        Refusal::Exhausted => StatusCode::TOO_MANY_REQUESTS,
        Refusal::Denied => StatusCode::FORBIDDEN,
    }
}

/// Serves the connections of `incoming` over HTTP/1.1 until `drain` is cancelled, then lets
/// the open requests and event streams finish (the app bounds that wait; event streams end with
/// the engine). A request's headers must arrive within `timeouts.header` (which also bounds the
/// wait for the next request on a kept-alive connection) and its body within `timeouts.body`.
pub async fn serve(
    mut incoming: Incoming,
    engine: Engine,
    settings: Settings,
    timeouts: Timeouts,
    drain: CancellationToken,
) {
    let service = tower::ServiceBuilder::new()
        .layer(TrackLayer)
        .map_response(hold_until_sent)
        .service(router(engine, settings));
    let connections = TaskTracker::new();
    loop {
        let io = tokio::select! {
            () = drain.cancelled() => break,
            io = incoming.next() => match io {
                Some(Ok(io)) => io,
                // `Incoming` handles accept errors itself and never ends.
                _ => continue,
            },
        };
        let peer = io.peer().clone();
        let body_timeout = timeouts.body;
        let service = service
            .clone()
            .map_request(move |mut request: http::Request<_>| {
                request.extensions_mut().insert(peer.clone());
                request.map(|body| axum::body::Body::new(Deadline::new(body, body_timeout)))
            });
        let drain = drain.clone();
        let header_timeout = timeouts.header;
        connections.spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let connection = builder.serve_connection(
                TokioIo::new(io),
                hyper_util::service::TowerToHyperService::new(service),
            );
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = drain.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    connections.close();
    connections.wait().await;
}

/// How long an HTTP/1.1 request's parts may take to arrive.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub header: Duration,
    pub body: Duration,
}

pin_project_lite::pin_project! {
    /// A request body that fails when it has not arrived whole by its deadline, so a peer that
    /// sends a byte now and then does not hold a connection and a handler forever.
    struct Deadline<B> {
        #[pin]
        body: B,
        #[pin]
        deadline: tokio::time::Sleep,
    }
}

impl<B> Deadline<B> {
    fn new(body: B, timeout: Duration) -> Self {
        Self {
            body,
            deadline: tokio::time::sleep(timeout),
        }
    }
}

impl<B: HttpBody> HttpBody for Deadline<B>
where
    B::Error: Into<axum::BoxError>,
{
    type Data = B::Data;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, axum::BoxError>>> {
        let this = self.project();
        match this.body.poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|frame| frame.map_err(Into::into))),
            Poll::Pending if this.deadline.poll(cx).is_ready() => Poll::Ready(Some(Err(
                "the request body did not arrive in time (server.body_timeout_secs)".into(),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// A JSON error: `{"error": "...", "parameter": "..."}` (the parameter when one is to blame).
fn error(status: StatusCode, message: String, parameter: Option<&str>) -> Response {
    let body = match parameter {
        Some(parameter) => serde_json::json!({ "error": message, "parameter": parameter }),
        None => serde_json::json!({ "error": message }),
    };
    json_response(status, to_json(&body))
}

fn json_response(status: StatusCode, body: Bytes) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The dashboard: one self-contained page (no CDN, no build step) over `/v1/health` and
/// `/v1/watch`, tested in a real browser by `.ci/dashboard.sh`. It lists the subsystems in the
/// table's order, written into the page once.
static DASHBOARD: LazyLock<String> = LazyLock::new(|| {
    let keys = serde_json::to_string(&Subsystem::ALL).expect("subsystem keys serialize");
    include_str!("dashboard.html").replace("[/* subsystems */]", &keys)
});

/// Everything from healthscore itself; inline styles and script are the page's own. `data:`
/// images let the page name an empty favicon, so the browser does not ask for one.
const DASHBOARD_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
    style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; connect-src 'self'";

async fn dashboard() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, DASHBOARD_POLICY),
        ],
        DASHBOARD.as_str(),
    )
        .into_response()
}

async fn not_found(uri: axum::http::Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("no such endpoint: {}", uri.path()),
        None,
    )
}

/// 200 when `serving`, 503 when not: the body and the code agree.
fn status_code(serving: Option<Serving>) -> StatusCode {
    match serving {
        Some(Serving::Serving) => StatusCode::OK,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// A JSON answer: `rendition` of `state` when the view is the default one (built once per
/// state), else built for this request.
fn json_answer(
    status: StatusCode,
    state: &Published,
    rendition: Option<Rendition>,
    render: impl FnOnce(&Published) -> Bytes,
) -> Response {
    let body = match rendition {
        Some(rendition) => state.rendition(rendition, render),
        None => render(state),
    };
    json_response(status, body)
}

/// Serializes `value`; the reports' JSON cannot fail to encode (no maps with non-string keys,
/// only finite numbers).
fn to_json(value: &impl serde::Serialize) -> Bytes {
    serde_json::to_vec(value)
        .expect("reports always serialize to JSON")
        .into()
}
