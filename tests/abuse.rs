//! What one hostile or careless client must not take from the others: connection slots (by
//! holding idle HTTP/2 connections, kept-alive HTTP/1.1 ones, half-sent headers or bodies, or
//! many connections from one address), the probes' slots, and the probes' watch streams.

mod common;

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use common::TestServer;
use healthscore::proto::v1;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};
use tonic::transport::Endpoint;
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};

/// A connection to `addr` from the loopback address `from`.
async fn connect_from(from: [u8; 4], addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from((from, 0)))
        .expect("bind a loopback source address");
    socket.connect(addr).await.expect("connect")
}

/// Waits up to `within` for the server to close `stream` (end of stream or reset), reading and
/// dropping whatever it sends first; the time it took, or `None` if it stayed open.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buffer = [0u8; 4096];
    loop {
        let left = within.checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// Waits up to 5 s for the server's first bytes on `stream`: its HTTP/2 SETTINGS, written as it
/// starts serving a connection, so the connection was accepted and holds its slots.
async fn served(stream: &mut TcpStream) {
    let mut settings = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut settings))
        .await
        .expect("the server's SETTINGS in time")
        .expect("read the server's SETTINGS");
    assert!(read > 0, "the server closed a connection it had room for");
}

/// A plaintext channel to `addr` on a connection of its own.
async fn channel(addr: SocketAddr) -> tonic::transport::Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("valid URI")
        .connect()
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread")]
async fn one_peer_address_cannot_take_every_connection() {
    let mut config = common::config();
    config.server.max_connections_per_peer = 3;
    let server = TestServer::start_with(config).await;
    // The test client's channel is one connection from 127.0.0.1; two more fill its share.
    let mut held = [
        connect_from([127, 0, 0, 1], server.addr).await,
        connect_from([127, 0, 0, 1], server.addr).await,
    ];
    for stream in &mut held {
        served(stream).await;
    }
    let mut refused = connect_from([127, 0, 0, 1], server.addr).await;
    assert!(
        closed_within(&mut refused, Duration::from_secs(5))
            .await
            .is_some(),
        "a fourth connection from one address stayed open"
    );
    // Another address is still served.
    let other = connect_from([127, 0, 0, 2], server.addr).await;
    let (mut client, connection) = h2::client::handshake(other)
        .await
        .expect("HTTP/2 handshake");
    tokio::spawn(connection);
    let request = http::Request::post("/grpc.health.v1.Health/Check")
        .header("content-type", "application/grpc")
        .body(())
        .expect("request");
    let (response, mut body) = client.send_request(request, false).expect("send");
    body.send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 0]), true)
        .expect("an empty HealthCheckRequest");
    let response = tokio::time::timeout(Duration::from_secs(5), response)
        .await
        .expect("an answer in time")
        .expect("an answer");
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn probes_are_served_on_the_kept_slots_when_every_other_is_taken() {
    let mut config = common::config();
    config.server.max_connections = 2;
    config.server.probe_connections = 1;
    let server = TestServer::start_with(config).await;
    // The test client's channel and one idle connection take both general slots.
    let mut held = connect_from([127, 0, 0, 2], server.addr).await;
    served(&mut held).await;

    let kept = channel(server.addr).await;
    let answer = HealthClient::new(kept.clone())
        .check(HealthCheckRequest::default())
        .await
        .expect("a probe on a kept slot is answered");
    assert_eq!(answer.into_inner().status, 1, "SERVING");
    let refused = v1::health_reports_client::HealthReportsClient::new(kept.clone())
        .get_system_health(v1::GetSystemHealthRequest::default())
        .await
        .expect_err("a kept slot serves probes only");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("probes only"), "{refused:?}");

    // Every slot, kept ones included, is taken now.
    let mut beyond = connect_from([127, 0, 0, 3], server.addr).await;
    assert!(closed_within(&mut beyond, Duration::from_secs(5))
        .await
        .is_some());
    server
        .reports()
        .get_system_health(v1::GetSystemHealthRequest::default())
        .await
        .expect("a general slot still serves everything");
    drop(kept);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_http2_connection_that_answers_pings_is_closed_but_a_watch_is_not() {
    let mut config = common::config();
    config.server.idle_timeout_secs = 1;
    let server = TestServer::start_with(config).await;

    // h2 answers the server's pings by itself, as grpc-go and every HTTP/2 client do.
    let stream = TcpStream::connect(server.addr).await.expect("connect");
    let (_client, connection) = h2::client::handshake(stream).await.expect("handshake");
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), connection)
        .await
        .expect("the server closes an idle HTTP/2 connection")
        .ok();
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );

    // A connection carrying a watch stream is not idle.
    let watching = channel(server.addr).await;
    let mut stream = HealthClient::new(watching)
        .watch(HealthCheckRequest::default())
        .await
        .expect("watch")
        .into_inner();
    common::next(&mut stream, 5).await;
    let quiet = tokio::time::timeout(Duration::from_secs(3), stream.message()).await;
    assert!(
        quiet.is_err(),
        "the watch stream ended or failed: {quiet:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn http1_headers_that_trickle_in_are_cut_off_at_the_header_timeout() {
    let mut config = common::config();
    config.server.handshake_timeout_secs = 1;
    let server = TestServer::start_with(config).await;
    let mut stream = TcpStream::connect(server.http).await.expect("connect");
    stream
        .write_all(b"GET /livez HTTP/1.1\r\nhost: x\r\n")
        .await
        .expect("write");
    let started = Instant::now();
    // A header line every 200 ms: never idle for long, never done.
    let trickle = async {
        for index in 0..50 {
            if stream
                .write_all(format!("x-slow-{index}: 1\r\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), trickle)
        .await
        .expect("the trickle ends");
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the connection stayed open for {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kept_alive_http1_connection_is_closed_after_the_header_timeout() {
    let mut config = common::config();
    config.server.handshake_timeout_secs = 1;
    let server = TestServer::start_with(config).await;
    let mut stream = TcpStream::connect(server.http).await.expect("connect");
    stream
        .write_all(b"GET /livez HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("write");
    let closed = closed_within(&mut stream, Duration::from_secs(8))
        .await
        .expect("the server closes a kept-alive connection that sends nothing more");
    assert!(closed >= Duration::from_millis(900), "{closed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_trickles_in_is_refused_at_the_body_timeout() {
    let mut config = common::config();
    config.server.body_timeout_secs = 1;
    let server = TestServer::start_with(config).await;
    let mut stream = TcpStream::connect(server.http).await.expect("connect");
    stream
        .write_all(
            b"POST /v1/metrics HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\n\
              content-length: 1000\r\n\r\n",
        )
        .await
        .expect("write");
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 1024];
    while started.elapsed() < Duration::from_secs(8) {
        let _ = stream.write_all(b"\n").await;
        if let Ok(Ok(read)) =
            tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buffer)).await
        {
            if read == 0 {
                break;
            }
            answer.extend_from_slice(&buffer[..read]);
            if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a 1000-byte body a byte at a time was read for {:?}",
        started.elapsed()
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn anonymous_probe_watches_cannot_take_the_report_watch_slots() {
    let mut config = common::config();
    config.server.max_watch_streams = 1;
    config.server.max_probe_watch_streams = 2;
    let server = TestServer::start_with(config).await;
    let mut health = server.health();
    let mut watches = Vec::new();
    for _ in 0..2 {
        let mut stream = health
            .watch(HealthCheckRequest::default())
            .await
            .expect("a probe watch within its cap")
            .into_inner();
        common::next(&mut stream, 5).await;
        watches.push(stream);
    }
    let code = match health.watch(HealthCheckRequest::default()).await {
        Err(status) => status.code(),
        Ok(stream) => match stream.into_inner().message().await {
            Err(status) => status.code(),
            Ok(message) => panic!("a third probe watch was served: {message:?}"),
        },
    };
    assert_eq!(code, tonic::Code::ResourceExhausted);
    // The token holders' slot is still free.
    let mut reports = server
        .reports()
        .watch_health(v1::WatchHealthRequest::default())
        .await
        .expect("WatchHealth has its own slots")
        .into_inner();
    common::next(&mut reports, 5).await;
}
