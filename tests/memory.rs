//! What readers and inputs cost in memory: watchers that stop reading must not each hold a copy
//! of the report (a stalled WatchHealth stream or `/v1/watch` event stream keeps a reference to
//! the state's shared encoding), and a large scrape must not cost many times its size. Alone
//! in its binary, one test at a time, since it reads the process's resident memory.

mod common;

use std::time::Duration;

use common::{pool, push_pools, TestServer};
use healthscore::proto::v1;
use prost::Message;
use tokio::{io::AsyncWriteExt, net::TcpSocket};

const WATCHERS: usize = 100;

/// The tests measure the whole process: one at a time.
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn resident_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: usize = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

/// Pushes 100 entities with long names in each of six subsystems from `source`, pools at
/// `active` of 32: a large system report.
async fn push_large(server: &TestServer, source: &str, active: u32) {
    let name = |index: usize| format!("{index:03}-{}", "p".repeat(240));
    let mut request = push_pools(
        source,
        (0..100).map(|i| pool(&name(i), active, 32)).collect(),
    );
    for index in 0..100 {
        request.caches.push(v1::CacheSnapshot {
            name: name(index),
            ..Default::default()
        });
        request.watchers.push(v1::WatcherSnapshot {
            name: name(index),
            ..Default::default()
        });
        request.schedulers.push(v1::SchedulerSnapshot {
            name: name(index),
            ..Default::default()
        });
        request.runtimes.push(v1::RuntimeSnapshot {
            name: name(index),
            ..Default::default()
        });
        request.performance.push(v1::PerformanceSnapshot {
            name: name(index),
            ..Default::default()
        });
    }
    server
        .reports()
        .report_metrics(request)
        .await
        .expect("push");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_watchers_share_the_report_instead_of_copying_it() {
    let _alone = ALONE.lock().await;
    let mut config = common::config();
    config.server.max_connections_per_peer = 1_000;
    let server = TestServer::start_with(config).await;
    push_large(&server, "app-1", 1).await;
    let report_bytes = server
        .reports()
        .get_system_health(v1::GetSystemHealthRequest::default())
        .await
        .expect("GetSystemHealth")
        .into_inner()
        .report()
        .expect("a report")
        .encoded_len();
    assert!(
        report_bytes > 150_000,
        "{report_bytes} bytes: not a large report"
    );

    let before = resident_bytes();
    let mut held = Vec::new();
    for _ in 0..WATCHERS {
        // gRPC: a window of 1 KiB, never read, so the server keeps each message unsent.
        let stream = tokio::net::TcpStream::connect(server.addr)
            .await
            .expect("connect");
        let (client, connection) = h2::client::Builder::new()
            .initial_window_size(1024)
            .handshake::<_, bytes::Bytes>(stream)
            .await
            .expect("HTTP/2 handshake");
        tokio::spawn(connection);
        let mut client = client.ready().await.expect("ready");
        let request = http::Request::post(format!(
            "http://{}/healthscore.v1.HealthReports/WatchHealth",
            server.addr
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("request");
        let (response, mut body) = client.send_request(request, false).expect("send");
        body.send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 0]), true)
            .expect("an empty WatchHealthRequest");
        held.push(Box::new((client, response)) as Box<dyn Send>);

        // SSE: a small receive buffer, never read.
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let mut stream = socket.connect(server.http).await.expect("connect");
        stream
            .write_all(b"GET /v1/watch HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .expect("write");
        held.push(Box::new(stream));
    }
    // Each change is news to every watcher.
    for round in 0..6 {
        push_large(&server, "app-1", if round % 2 == 0 { 31 } else { 1 }).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let grown = resident_bytes().saturating_sub(before);
    let copies = 2 * WATCHERS * report_bytes;
    eprintln!("resident memory grew {grown} bytes; a copy each would be {copies}");
    assert!(
        grown < copies / 2,
        "resident memory grew {grown} bytes with {} stalled watchers of a {report_bytes}-byte report \
         (a copy each would be {copies})",
        2 * WATCHERS
    );
    drop(held);
}

/// An exposition of `bytes` or so: one pool the micrometer profile reads, then series it does
/// not, with labels.
fn large_exposition(bytes: usize) -> String {
    let mut text = String::from(
        "hikaricp_connections_active{pool=\"main\"} 31\n\
        hikaricp_connections_max{pool=\"main\"} 32\n",
    );
    let mut index = 0;
    while text.len() < bytes {
        text.push_str(&format!(
            "http_client_requests_seconds_count{{uri=\"/api/v1/orders/{index}\",method=\"GET\",status=\"200\",outcome=\"SUCCESS\"}} {index}\n"
        ));
        index += 1;
    }
    text
}

/// The scrapes of the "large" target so far, whatever their result, from `/metrics`.
async fn scrapes(http: std::net::SocketAddr) -> f64 {
    let metrics = common::http_get(http, "/metrics", None).await.body;
    ["ok", "failed", "refused"]
        .iter()
        .map(|result| {
            common::series_value(
                &metrics,
                &format!("healthscore_scrapes_total{{target=\"large\",result=\"{result}\"}}"),
            )
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_scrape_costs_a_few_times_its_size() {
    let _alone = ALONE.lock().await;
    let body = std::sync::Arc::new(large_exposition(9 << 20));
    let served = body.clone();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let body = served.clone();
            async move { body.to_string() }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let target = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });

    let before = resident_bytes();
    let mut config = common::config();
    config.scrape.push(healthscore::service::Target {
        name: "large".into(),
        url: Some(format!("http://{target}/metrics")),
        interval_secs: 1,
        timeout_secs: 10,
        profile: Some(healthscore::service::Profile::Micrometer),
        mappings: Vec::new(),
        max_body_bytes: (10 << 20).try_into().expect("not zero"),
        ..Default::default()
    });
    let server = TestServer::start_with(config).await;
    let mut scored = false;
    for _ in 0..100 {
        let report = common::http_get(server.http, "/v1/health/datasources", None).await;
        if report.json()["status"] == "critical" {
            scored = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(scored, "the large scrape was never scored");
    // A few scrapes more, then the peak that stays.
    let http = server.http;
    let done = scrapes(http).await;
    common::eventually(
        Duration::from_secs(30),
        "three scrapes more of the large target",
        move || async move { (scrapes(http).await >= done + 3.0).then_some(()) },
    )
    .await;
    let grown = resident_bytes().saturating_sub(before);
    eprintln!("resident memory grew {grown} bytes for a {}-byte scrape (the body is served from this process too)", body.len());
    assert!(
        grown < 8 * body.len(),
        "resident memory grew {grown} bytes for a {}-byte scrape",
        body.len()
    );
}
