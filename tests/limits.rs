//! Limits that keep one client from exhausting the server: watch streams, streams per
//! connection, and running out of file descriptors.

mod common;

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use common::TestServer;
use healthscore::proto::v1;

fn watch_request() -> v1::WatchHealthRequest {
    v1::WatchHealthRequest::default()
}

#[tokio::test]
async fn watch_streams_beyond_the_cap_are_resource_exhausted_until_one_closes() {
    let mut config = common::config();
    config.server.max_watch_streams = 2;
    let server = TestServer::start_with(config).await;
    let mut client = server.reports();
    let first = client.watch_health(watch_request()).await.expect("first");
    // The second, on the other face: WatchHealth and /v1/watch share the slots.
    let second = common::http_request(server.http, "/v1/watch", None).await;
    assert_eq!(second.status(), 200, "second, on the HTTP face");
    let refused = client
        .watch_health(watch_request())
        .await
        .expect_err("third");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    drop(first);
    // The slot frees when the server sees the stream end.
    let mut reopened = None;
    for _ in 0..50 {
        if let Ok(stream) = client.watch_health(watch_request()).await {
            reopened = Some(stream);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        reopened.is_some(),
        "the closed stream's slot was never freed"
    );
}

#[tokio::test]
async fn one_connection_cannot_open_more_streams_than_it_is_allowed() {
    let mut config = common::config();
    config.server.max_concurrent_streams = 2;
    let server = TestServer::start_with(config).await;
    let mut client = server.reports();
    let _a = client.watch_health(watch_request()).await.expect("first");
    let _b = client.watch_health(watch_request()).await.expect("second");
    // The client honours the server's SETTINGS_MAX_CONCURRENT_STREAMS and waits for a slot.
    let third = tokio::time::timeout(
        Duration::from_millis(500),
        client.watch_health(watch_request()),
    )
    .await;
    assert!(
        third.is_err(),
        "a third stream opened on a 2-stream connection"
    );
}

/// CPU time (user + system) of process `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')').expect(")") + 2..].split(' ').collect();
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

#[test]
fn out_of_descriptors_the_accept_loop_backs_off_instead_of_spinning() {
    let mut child = Command::new("sh")
        .args([
            "-c",
            "ulimit -n 48 && exec \"$0\" serve --listen 127.0.0.1:0",
        ])
        .arg(env!("CARGO_BIN_EXE_healthscore"))
        .env("HEALTHSCORE_HOST__ENABLED", "false")
        .env("HEALTHSCORE_HTTP__ENABLED", "false")
        .env("HEALTHSCORE_SERVER__SHUTDOWN_GRACE_SECS", "0")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start healthscore");
    let mut log = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    while !line.contains("address=") {
        line.clear();
        assert!(log.read_line(&mut line).expect("log") > 0, "exited early");
    }
    let addr = line
        .split("address=")
        .nth(1)
        .expect("address")
        .split_whitespace()
        .next()
        .expect("addr")
        .to_owned();
    // The log tells when accept first fails for want of descriptors; it is drained after that.
    let (out_of_descriptors, logged) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in log.lines().map_while(Result::ok) {
            if line.contains("out of descriptors") {
                let _ = out_of_descriptors.send(());
            }
        }
    });
    // Far more connections than descriptors: the kernel queues them; accept fails with EMFILE.
    let held: Vec<_> = (0..80)
        .filter_map(|_| std::net::TcpStream::connect(&addr).ok())
        .collect();
    assert!(held.len() > 48, "only {} connections", held.len());
    logged
        .recv_timeout(Duration::from_secs(10))
        .expect("the server logged that it ran out of descriptors");
    let before = cpu_ticks(child.id());
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_ticks(child.id()) - before;
    // 2 s of a spinning accept loop is about 200 ticks; backing off costs a few.
    assert!(
        used < 40,
        "{used} ticks of CPU in 2 s while out of descriptors"
    );
    drop(held);
    let probe = Command::new(env!("CARGO_BIN_EXE_healthscore"))
        .args([
            "probe",
            "--addr",
            &addr,
            "--connect-timeout",
            "5s",
            "--rpc-timeout",
            "5s",
        ])
        .output()
        .expect("probe");
    assert!(probe.status.success(), "{probe:?}");
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_default_answer_fits_a_default_client_whatever_the_state_holds() {
    use prost::Message;
    let server = TestServer::start_with(common::config()).await;
    let mut client = server.reports();
    for source in ["app-1", "app-2"] {
        // Long names and an issue on every entity: the heaviest rows there are.
        let pools = (0..10_000)
            .map(|i| common::pool(&format!("{source}-pool-{i:05}-{}", "x".repeat(200)), 32, 32))
            .collect();
        client
            .report_metrics(common::push_pools(source, pools))
            .await
            .expect("push 10,000 entities");
    }
    // A client with the default 4 MB receive limit reads the default answer.
    let report = client
        .get_system_health(v1::GetSystemHealthRequest::default())
        .await
        .expect("GetSystemHealth within the default limit")
        .into_inner()
        .report()
        .expect("report");
    let size = report.encoded_len();
    assert!(size < 2 << 20, "{size} bytes");
    let pools = &report.subsystems["datasources"];
    assert_eq!(pools.entities.len(), 100);
    assert_eq!(pools.entities_omitted, 19_900);
    assert_eq!(pools.issues.len(), 100);
    assert_eq!(pools.issues_omitted, 19_900);
    let breakdown = pools.score_breakdown.as_ref().expect("breakdown");
    assert_eq!(
        breakdown.deductions.len() as u32 + breakdown.deductions_omitted,
        20_000
    );
    assert_eq!(report.issues_omitted, 19_900);
    // The same through the CLI, whose JSON says what was left out.
    let output = Command::new(env!("CARGO_BIN_EXE_healthscore"))
        .args(["get", "-o", "json", "--addr", &server.addr.to_string()])
        .output()
        .expect("healthscore get");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(json["subsystems"]["datasources"]["entitiesOmitted"], 19_900);
    // A reader can ask for more, up to limits.max_listed.
    let more = client
        .get_datasource_health(v1::GetDatasourceHealthRequest {
            options: Some(v1::ReportOptions {
                max_entities: 1_000,
                omit_entities: false,
                ..Default::default()
            }),
        })
        .await
        .expect("1,000 entities")
        .into_inner()
        .report
        .expect("report");
    assert_eq!(more.entities.len(), 1_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_beyond_the_byte_budget_wait_then_are_refused_until_the_budget_drains() {
    let mut config = common::config();
    // One KiB: any answer takes all of it.
    config.server.max_answer_bytes_in_flight = 1;
    let server = TestServer::start_with(config).await;
    // A reader that never reads: its HTTP/2 window is 0, so its answer stays on the server.
    let tcp = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let (mut stalled, connection) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake::<_, bytes::Bytes>(tcp)
        .await
        .expect("HTTP/2 handshake");
    let connection = tokio::spawn(connection);
    let request = http::Request::post(format!(
        "http://{}/healthscore.v1.HealthReports/GetSystemHealth",
        server.addr
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(())
    .expect("request");
    let (response, mut body) = stalled.send_request(request, false).expect("send");
    body.send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 0]), true)
        .expect("empty GetSystemHealthRequest");
    let response = response.await.expect("headers arrive without window");
    assert_eq!(response.status(), 200);

    let refused = server
        .reports()
        .get_system_health(v1::GetSystemHealthRequest::default())
        .await
        .expect_err("the budget is held by the stalled reader");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);

    drop(response);
    drop(stalled);
    connection.abort();
    let mut answered = false;
    for _ in 0..50 {
        let call = server
            .reports()
            .get_system_health(v1::GetSystemHealthRequest::default())
            .await;
        if call.is_ok() {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(answered, "the stalled reader's share was never given back");
}
