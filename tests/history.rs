//! History, uptime and damping on real servers: GetHistory, `/v1/history`, `healthscore
//! history`, the journal across a restart, and damped grpc.health.v1 statuses.

mod common;

use std::{path::Path, time::Duration};

use common::{http_get, next, pool, push_pools, TestServer};
use healthscore::{
    proto::{
        health::{
            health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
        },
        v1::{GetHistoryRequest, Status},
    },
    service::Delay,
};

fn saturated() -> healthscore::proto::v1::ReportMetricsRequest {
    let mut pool = pool("mainDB", 10, 10);
    pool.threads_awaiting = 5;
    push_pools("app-1", vec![pool])
}

fn calm() -> healthscore::proto::v1::ReportMetricsRequest {
    push_pools("app-1", vec![pool("mainDB", 1, 10)])
}

/// The whole records in the journal at `path`: after its 8-byte magic, each is a little-endian
/// u32 length, a CRC-32 and that many bytes. A record still being written is not counted.
fn journal_records(path: &Path) -> usize {
    let bytes = std::fs::read(path).unwrap_or_default();
    let (mut offset, mut records) = (8, 0);
    while let Some(length) = bytes.get(offset..offset + 4) {
        let length = u32::from_le_bytes(length.try_into().expect("4 bytes"));
        let end = offset + 8 + length as usize;
        if end > bytes.len() {
            break;
        }
        records += 1;
        offset = end;
    }
    records
}

/// Waits up to 5 s for the journal at `path` to hold `records` whole records.
async fn journal_holds(path: &Path, records: usize) {
    common::eventually(
        Duration::from_secs(5),
        &format!("{records} records in the journal"),
        move || async move { (journal_records(path) >= records).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn transitions_are_served_over_grpc_http_and_the_cli() {
    let server = TestServer::start_with(common::config()).await;
    let mut client = server.reports();
    client.report_metrics(calm()).await.expect("push");
    client.report_metrics(saturated()).await.expect("push");
    client.report_metrics(calm()).await.expect("push");

    let answer = client
        .get_history(GetHistoryRequest {
            subsystem: "datasources".into(),
            ..GetHistoryRequest::default()
        })
        .await
        .expect("GetHistory")
        .into_inner();
    let steps: Vec<(i32, i32)> = answer.transitions.iter().map(|t| (t.from, t.to)).collect();
    let (healthy, critical) = (Status::Healthy as i32, Status::Critical as i32);
    assert_eq!(
        steps,
        vec![(critical, healthy), (healthy, critical)],
        "newest first"
    );
    assert_eq!(
        answer.transitions[1].added_codes,
        vec!["DS_POOL_SATURATED", "DS_POOL_THREADS_AWAITING"]
    );
    assert_eq!(answer.uptime.len(), 2, "the last hour and the last day");
    let hour = &answer.uptime[0];
    assert!(
        (hour.healthy + hour.warning + hour.critical - 1.0).abs() < 1e-6,
        "{hour:?}"
    );

    let bad = client
        .get_history(GetHistoryRequest {
            subsystem: "pools".into(),
            ..GetHistoryRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().contains("subsystem"), "{bad:?}");

    let http = http_get(server.http, "/v1/history?subsystem=system&limit=1", None).await;
    assert_eq!(http.status, 200, "{http:?}");
    let json = http.json();
    assert_eq!(json["transitions"][0]["subsystem"], "system");
    assert_eq!(json["transitions"][0]["to"], "healthy");
    assert_eq!(json["transitionsOmitted"], 1);
    assert!(json["transitions"][0]["at"]
        .as_str()
        .unwrap_or_default()
        .ends_with('Z'));
    let bad = http_get(server.http, "/v1/history?since=yesterday", None).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["parameter"], "since");

    let addr = server.addr.to_string();
    let cli = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_healthscore"))
            .args(["history", "datasources", "--addr", &addr, "--since", "10m"])
            .env("NO_COLOR", "1")
            .output()
            .expect("run history")
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&cli.stdout);
    assert!(cli.status.success(), "{cli:?}");
    assert!(
        text.contains("datasources") && text.contains("+DS_POOL_SATURATED"),
        "{text}"
    );
}

#[tokio::test]
async fn a_restart_with_a_journal_keeps_the_history() {
    let dir = std::env::temp_dir().join(format!("healthscore-history-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("history.journal");
    let mut config = common::config();
    config.history.path = Some(path.clone());
    {
        let server = TestServer::start_with(config.clone()).await;
        server
            .reports()
            .report_metrics(saturated())
            .await
            .expect("push");
        // The journal is written off the engine's task: wait for both records (system, pool)
        // to be whole, so the restart reads them and cuts no torn tail.
        journal_holds(&path, 2).await;
    }
    let server = TestServer::start_with(config).await;
    let answer = server
        .reports()
        .get_history(GetHistoryRequest::default())
        .await
        .expect("GetHistory")
        .into_inner();
    let names: Vec<&str> = answer
        .transitions
        .iter()
        .map(|t| t.subsystem.as_str())
        .collect();
    assert_eq!(names, vec!["system", "datasources"], "{answer:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn damping_holds_not_serving_until_recover_after_then_serves_once() {
    let mut config = common::config();
    config.health.recover_after = Delay(Duration::from_secs(2));
    let server = TestServer::start_with(config).await;
    let mut health = HealthClient::new(server.channel.clone());
    let mut watch = health
        .watch(HealthCheckRequest {
            service: "datasources".into(),
        })
        .await
        .expect("Watch")
        .into_inner();
    assert_eq!(
        next(&mut watch, 5).await.status,
        ServingStatus::Serving as i32
    );
    let check = |mut health: HealthClient<tonic::transport::Channel>| async move {
        health
            .check(HealthCheckRequest {
                service: "datasources".into(),
            })
            .await
            .expect("Check")
            .into_inner()
            .status
    };
    let mut client = server.reports();
    client.report_metrics(saturated()).await.expect("push");
    assert_eq!(
        check(health.clone()).await,
        ServingStatus::NotServing as i32,
        "at once"
    );
    client.report_metrics(calm()).await.expect("push");
    assert_eq!(
        check(health.clone()).await,
        ServingStatus::NotServing as i32,
        "held"
    );
    let readyz = http_get(server.http, "/readyz?service=datasources", None).await;
    assert_eq!(readyz.status, 503);
    let left = readyz.json()["recovering"]["servingInSecs"]
        .as_f64()
        .expect("time left");
    assert!(left > 0.5 && left <= 2.0, "{left}");
    // Flapping inside the window sends the watcher nothing more.
    client.report_metrics(saturated()).await.expect("push");
    client.report_metrics(calm()).await.expect("push");
    assert_eq!(
        next(&mut watch, 5).await.status,
        ServingStatus::NotServing as i32
    );
    assert_eq!(
        next(&mut watch, 5).await.status,
        ServingStatus::Serving as i32
    );
    assert_eq!(check(health.clone()).await, ServingStatus::Serving as i32);
    let extra = tokio::time::timeout(Duration::from_millis(500), watch.message()).await;
    assert!(extra.is_err(), "a third message: {extra:?}");
}

/// kill -9 right after a push: the journal, synced per record, still has every transition the
/// server recorded, and a restarted server serves them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_keeps_its_journal() {
    let dir = std::env::temp_dir().join(format!("healthscore-kill9-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let journal = dir.join("history.journal");
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let serve = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_healthscore"))
            .args(["serve", "--listen", &addr])
            .env("HEALTHSCORE_HISTORY__PATH", &journal)
            .env("HEALTHSCORE_HTTP__ENABLED", "false")
            .env("HEALTHSCORE_HOST__ENABLED", "false")
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("serve")
    };
    let connect = || async {
        for _ in 0..100 {
            if let Ok(channel) = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                .unwrap()
                .connect()
                .await
            {
                return healthscore::proto::v1::health_reports_client::HealthReportsClient::new(
                    channel,
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server did not start");
    };
    let mut server = serve();
    let mut client = connect().await;
    client.report_metrics(saturated()).await.expect("push");
    client.report_metrics(calm()).await.expect("push");
    // The journal is written off the engine's task: once it holds all four transitions, kill
    // with no grace at all.
    journal_holds(&journal, 4).await;
    server.kill().expect("kill -9");
    server.wait().expect("reaped");

    let mut server = serve();
    let answer = connect()
        .await
        .get_history(GetHistoryRequest::default())
        .await
        .expect("GetHistory")
        .into_inner();
    server.kill().expect("kill");
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let steps: Vec<(&str, i32)> = answer
        .transitions
        .iter()
        .map(|t| (t.subsystem.as_str(), t.to))
        .collect();
    let (healthy, critical) = (Status::Healthy as i32, Status::Critical as i32);
    assert_eq!(
        steps,
        vec![
            ("system", healthy),
            ("datasources", healthy),
            ("system", critical),
            ("datasources", critical)
        ]
    );
}

#[tokio::test]
async fn a_journal_that_cannot_be_used_leaves_the_history_in_memory() {
    let dir = std::env::temp_dir().join(format!("healthscore-garbage-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let garbage = dir.join("not-a-journal");
    std::fs::write(&garbage, "someone else's file\n").unwrap();
    // A file that is not a journal (left untouched), and a path that is a directory.
    for path in [garbage.clone(), dir.clone()] {
        let mut config = common::config();
        config.history.path = Some(path.clone());
        let server = TestServer::start_with(config).await;
        server
            .reports()
            .report_metrics(saturated())
            .await
            .expect("the server serves without its journal");
        let answer = server
            .reports()
            .get_history(GetHistoryRequest::default())
            .await
            .expect("GetHistory")
            .into_inner();
        assert_eq!(answer.transitions.len(), 2, "{path:?}: {answer:?}");
    }
    assert_eq!(
        std::fs::read_to_string(&garbage).unwrap(),
        "someone else's file\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
