//! Starts a real healthscore server on 127.0.0.1:0 and connects real tonic clients to it.
#![allow(dead_code)] // each test binary uses a different part of this helper

use std::{net::SocketAddr, ops::Range, path::Path, time::Duration};

use healthscore::{
    proto::v1::{
        health_reports_client::HealthReportsClient, DatasourceSnapshot, ReportMetricsRequest,
    },
    service::{self, Config},
};
use tokio::{net::TcpListener, sync::oneshot};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_client::HealthClient;

/// The config every test starts from: no host sampler (its readings would vary by machine) and
/// no shutdown grace (tests end at once).
pub fn config() -> Config {
    let mut config = Config::default();
    config.host.enabled = false;
    config.server.shutdown_grace_secs = 0;
    config
}

pub struct TestServer {
    pub addr: SocketAddr,
    /// The HTTP face's address.
    pub http: SocketAddr,
    /// The probe-only listener's address, when the config sets `probes.listen`.
    pub probes: Option<SocketAddr>,
    /// A plaintext channel to `addr`.
    pub channel: Channel,
    shutdown: Option<oneshot::Sender<()>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(config()).await
    }

    pub async fn start_with(config: Config) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let http_listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let http = http_listener.local_addr().expect("local address");
        let probes_listener = match config.probes.listen {
            Some(_) => Some(
                TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind 127.0.0.1:0"),
            ),
            None => None,
        };
        let probes = probes_listener
            .as_ref()
            .map(|listener| listener.local_addr().expect("local address"));
        let listeners = service::Listeners {
            grpc: listener,
            http: Some(http_listener),
            probes: probes_listener,
        };
        let tls = config.tls.cert.is_some();
        let (shutdown, stop) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let stopped = async move {
                let _ = stop.await;
            };
            if let Err(error) = service::run(listeners, &config, stopped).await {
                panic!("test server failed: {error}");
            }
        });
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .expect("valid URI")
            .connect_timeout(Duration::from_secs(5));
        // A TLS server refuses this plaintext channel: connected on first use, so that tests
        // can show it. Otherwise connected now, so tests can count on its connection.
        let channel = if tls {
            endpoint.connect_lazy()
        } else {
            endpoint
                .connect()
                .await
                .expect("connect to the test server")
        };
        Self {
            addr,
            http,
            probes,
            channel,
            shutdown: Some(shutdown),
        }
    }

    pub fn reports(&self) -> HealthReportsClient<Channel> {
        HealthReportsClient::new(self.channel.clone())
    }

    pub fn health(&self) -> HealthClient<Channel> {
        HealthClient::new(self.channel.clone())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

pub fn pool(name: &str, active: u32, max: u32) -> DatasourceSnapshot {
    DatasourceSnapshot {
        name: name.into(),
        started: None,
        active,
        idle: max - active,
        max,
        threads_awaiting: 0,
    }
}

pub fn push_pools(source: &str, pools: Vec<DatasourceSnapshot>) -> ReportMetricsRequest {
    ReportMetricsRequest {
        source: source.into(),
        datasources: pools,
        ..ReportMetricsRequest::default()
    }
}

/// Waits for the next stream message, failing the test after `secs` seconds.
pub async fn next<T>(stream: &mut tonic::Streaming<T>, secs: u64) -> T {
    tokio::time::timeout(Duration::from_secs(secs), stream.message())
        .await
        .expect("a stream message in time")
        .expect("the stream is healthy")
        .expect("the stream is still open")
}

/// Polls `check` every 50 ms until it gives a value, and returns it; fails the test, naming
/// `what`, when none came within `within`. Waiting for the condition itself, not a fixed time:
/// not too short on a loaded machine, not wasted on an idle one.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {within:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of `series` (a name with its labels, as `/metrics` writes them) in a `/metrics`
/// answer; 0 when it is not there yet.
pub fn series_value(metrics: &str, series: &str) -> f64 {
    let prefix = format!("{series} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

/// An HTTP answer, read whole.
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl HttpAnswer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Opens an HTTP/1.1 connection to `addr` and sends `request` (its `host` header is set here).
pub async fn http_send(
    addr: SocketAddr,
    request: hyper::Request<http_body_util::Full<bytes::Bytes>>,
) -> hyper::Response<hyper::body::Incoming> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    http_send_on(stream, &addr.to_string(), request).await
}

/// Sends `request` as HTTP/1.1 over `stream` (plain or TLS) to `host`.
pub async fn http_send_on(
    stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    host: &str,
    mut request: hyper::Request<http_body_util::Full<bytes::Bytes>>,
) -> hyper::Response<hyper::body::Incoming> {
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("HTTP/1.1 handshake");
    tokio::spawn(connection);
    request
        .headers_mut()
        .insert("host", host.parse().expect("a host is a header value"));
    sender.send_request(request).await.expect("response")
}

/// `response`, read whole.
pub async fn read_answer(response: hyper::Response<hyper::body::Incoming>) -> HttpAnswer {
    use http_body_util::BodyExt;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    HttpAnswer {
        status,
        content_type,
        body: String::from_utf8(body.to_vec()).expect("UTF-8 body"),
    }
}

/// `GET path` on `addr`, with `accept` if given.
pub async fn http_request(
    addr: SocketAddr,
    path: &str,
    accept: Option<&str>,
) -> hyper::Response<hyper::body::Incoming> {
    let mut request = hyper::Request::get(path);
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let request = request
        .body(http_body_util::Full::default())
        .expect("request");
    http_send(addr, request).await
}

/// `GET path` on `addr`, read whole.
pub async fn http_get(addr: SocketAddr, path: &str, accept: Option<&str>) -> HttpAnswer {
    read_answer(http_request(addr, path, accept).await).await
}

/// Reads Server-Sent Events from a response body.
pub struct Events {
    body: hyper::body::Incoming,
    buffer: String,
}

/// One event: its `event:`, `id:` and `data:` fields.
#[derive(Debug)]
pub struct Event {
    pub event: String,
    pub id: String,
    pub data: String,
}

impl Events {
    pub fn new(response: hyper::Response<hyper::body::Incoming>) -> Self {
        Self {
            body: response.into_body(),
            buffer: String::new(),
        }
    }

    /// The next event, or `None` if none comes within `wait` (or the stream ended).
    pub async fn next(&mut self, wait: Duration) -> Option<Event> {
        use http_body_util::BodyExt;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = Event {
                    event: String::new(),
                    id: String::new(),
                    data: String::new(),
                };
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event.event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        event.id = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        event.data.push_str(v.trim_start());
                    }
                }
                // Comments (keep-alives) carry no event.
                if !event.event.is_empty() {
                    return Some(event);
                }
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .ok()??;
            if let Ok(data) = frame.expect("an SSE frame").into_data() {
                self.buffer
                    .push_str(std::str::from_utf8(&data).expect("UTF-8 events"));
            }
        }
    }
}

/// Keeps the lines of the repository file `file` that `find` picks equal to `generated`. When
/// they differ the file is rewritten with the generated lines in their place, and the test
/// fails so that the change is reviewed and committed.
pub fn keep_generated(file: &str, find: impl Fn(&[&str]) -> Range<usize>, generated: &[String]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
    let lines: Vec<&str> = text.lines().collect();
    let range = find(&lines);
    if lines[range.clone()] == *generated {
        return;
    }
    let mut regenerated: Vec<&str> = lines[..range.start].to_vec();
    regenerated.extend(generated.iter().map(String::as_str));
    regenerated.extend(&lines[range.end..]);
    std::fs::write(&path, regenerated.join("\n") + "\n").unwrap_or_else(|e| panic!("{file}: {e}"));
    panic!("{file} was regenerated: review and commit it");
}

/// The grpc-status and grpc-message of a raw HTTP/2 call to `path` with `body`, the framed
/// messages as they are (and `gzip` as
/// its grpc-encoding when `compressed`): from the headers of a trailers-only answer, else from
/// the trailers, the message percent-decoded.
pub async fn raw_call(
    server: &TestServer,
    path: &str,
    body: bytes::Bytes,
    compressed: bool,
) -> (String, String) {
    let tcp = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let (mut client, connection) = h2::client::handshake(tcp).await.expect("HTTP/2 handshake");
    let connection = tokio::spawn(connection);
    let mut request = http::Request::post(format!("http://{}{path}", server.addr))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if compressed {
        request = request.header("grpc-encoding", "gzip");
    }
    let request = request.body(()).expect("request");
    let (response, mut send) = client.send_request(request, false).expect("send");
    send.send_data(body, true).expect("the request body");
    let response = response.await.expect("an answer");
    let header = |headers: &http::HeaderMap, name: &str| {
        headers
            .get(name)
            .map(|value| value.to_str().expect("ASCII").to_owned())
    };
    let (head, mut body) = response.into_parts();
    let found = match header(&head.headers, "grpc-status") {
        Some(status) => (status, header(&head.headers, "grpc-message")),
        None => {
            while body.data().await.is_some() {}
            let trailers = body
                .trailers()
                .await
                .expect("trailers")
                .expect("grpc-status in trailers");
            (
                header(&trailers, "grpc-status").expect("grpc-status"),
                header(&trailers, "grpc-message"),
            )
        }
    };
    connection.abort();
    // grpc-message is percent-encoded on the wire; a client shows it decoded.
    let message = found.1.unwrap_or_default();
    let message = percent_encoding::percent_decode_str(&message).decode_utf8_lossy();
    (found.0, message.into_owned())
}
