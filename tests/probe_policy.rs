//! The probe policy on a real server: failure grace (`fail_after`), probe groups, the startup
//! gate, `/readyz?verbose` and `exclude`, as grpc.health.v1 clients and HTTP probes see them.

mod common;

use std::time::Duration;

use common::{http_get, next, pool, push_pools, TestServer};
use healthscore::service::{Delay, GroupConfig, StartupConfig};
use tonic_health::pb::{health_check_response::ServingStatus, HealthCheckRequest};

async fn push(server: &TestServer, source: &str, active: u32) {
    server
        .reports()
        .report_metrics(push_pools(source, vec![pool("mainDB", active, 32)]))
        .await
        .expect("push");
}

/// A grpc.health.v1 Watch of `service`.
async fn watch(
    server: &TestServer,
    service: &str,
) -> tonic::Streaming<tonic_health::pb::HealthCheckResponse> {
    server
        .health()
        .watch(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("watch")
        .into_inner()
}

async fn check(server: &TestServer, service: &str) -> ServingStatus {
    let status = server
        .health()
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("check")
        .into_inner()
        .status;
    ServingStatus::try_from(status).expect("a known status")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flap_inside_fail_after_sends_no_not_serving_and_a_lasting_failure_does() {
    let mut config = common::config();
    config.health.fail_after = Delay(Duration::from_secs(2));
    let server = TestServer::start_with(config).await;
    let mut watch = watch(&server, "").await;
    assert_eq!(
        next(&mut watch, 5).await.status,
        ServingStatus::Serving as i32
    );

    push(&server, "app-1", 31).await; // 97%: critical
    let readyz = http_get(server.http, "/readyz", None).await;
    let body = readyz.json();
    assert_eq!(
        (readyz.status, body["status"].as_str()),
        (200, Some("SERVING"))
    );
    let left = body["notServingInSecs"].as_f64().expect("notServingInSecs");
    assert!(left > 0.0 && left <= 2.0, "{body}");
    assert!(body["failingForSecs"].as_f64().expect("failingForSecs") < 2.0);
    assert_eq!(check(&server, "datasources").await, ServingStatus::Serving);
    // The reports themselves are never damped.
    let report = http_get(server.http, "/v1/health", None).await;
    assert_eq!(report.json()["status"], "critical");
    push(&server, "app-1", 1).await; // healthy again inside the window

    // Past the window the flap started: the watcher was sent nothing.
    let quiet = tokio::time::timeout(Duration::from_secs(3), watch.message()).await;
    assert!(quiet.is_err(), "a status was sent: {quiet:?}");

    push(&server, "app-1", 31).await;
    let turned = next(&mut watch, 5).await;
    assert_eq!(turned.status, ServingStatus::NotServing as i32);
    let readyz = http_get(server.http, "/readyz", None).await;
    assert_eq!(readyz.status, 503);
    assert!(
        readyz.json()["failingForSecs"]
            .as_f64()
            .expect("failingForSecs")
            >= 2.0
    );
    assert!(readyz.json().get("notServingInSecs").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_reads_only_its_subsystems_and_codes() {
    let mut config = common::config();
    config.health.groups.insert(
        "traffic".into(),
        GroupConfig {
            exclude: vec!["datasources".into()],
            ..GroupConfig::default()
        },
    );
    config.health.groups.insert(
        "lenient".into(),
        GroupConfig {
            exclude_codes: vec!["DS_POOL_SATURATED".parse().expect("a code")],
            ..GroupConfig::default()
        },
    );
    config.health.groups.insert(
        "pools".into(),
        GroupConfig {
            include: Some(vec!["datasources".into()]),
            fail_after: Some(Delay(Duration::from_secs(60))),
            ..GroupConfig::default()
        },
    );
    let server = TestServer::start_with(config).await;
    push(&server, "app-1", 31).await; // DS_POOL_SATURATED alone: critical
    assert_eq!(check(&server, "").await, ServingStatus::NotServing);
    assert_eq!(check(&server, "traffic").await, ServingStatus::Serving);
    assert_eq!(check(&server, "lenient").await, ServingStatus::Serving);
    // Its own fail_after holds it.
    assert_eq!(check(&server, "pools").await, ServingStatus::Serving);
    let readyz = http_get(server.http, "/readyz?service=traffic", None).await;
    assert_eq!(readyz.status, 200, "{}", readyz.body);
    let pools = http_get(server.http, "/readyz?service=pools", None).await;
    assert!(
        pools.json()["notServingInSecs"]
            .as_f64()
            .expect("time left")
            > 50.0
    );

    let mut client =
        healthscore::proto::health::health_client::HealthClient::new(server.channel.clone());
    let listed = client
        .list(healthscore::proto::health::HealthListRequest {})
        .await
        .expect("list")
        .into_inner()
        .statuses;
    for group in ["traffic", "lenient", "pools"] {
        assert_eq!(
            listed.get(group).map(|r| r.status),
            Some(ServingStatus::Serving as i32),
            "{group} in {:?}",
            listed.keys()
        );
    }
    let mut watch = watch(&server, "lenient").await;
    assert_eq!(
        next(&mut watch, 5).await.status,
        ServingStatus::Serving as i32
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_waits_for_the_startup_sources_but_liveness_does_not() {
    let mut config = common::config();
    config.health.startup = Some(StartupConfig {
        sources: vec!["app-*".into()],
        max_wait: Delay(Duration::from_secs(300)),
    });
    let server = TestServer::start_with(config).await;
    let readyz = http_get(server.http, "/readyz", None).await;
    assert_eq!(readyz.status, 503);
    assert_eq!(readyz.json()["starting"], true, "{}", readyz.body);
    assert_eq!(check(&server, "caches").await, ServingStatus::NotServing);
    assert_eq!(http_get(server.http, "/livez", None).await.status, 200);
    assert_eq!(
        check(&server, "healthscore.v1.HealthReports").await,
        ServingStatus::Serving
    );
    push(&server, "other", 1).await; // matches no pattern
    assert_eq!(check(&server, "").await, ServingStatus::NotServing);
    push(&server, "app-7", 1).await;
    assert_eq!(check(&server, "").await, ServingStatus::Serving);
    let readyz = http_get(server.http, "/readyz", None).await;
    assert_eq!(readyz.status, 200);
    assert!(readyz.json().get("starting").is_none(), "{}", readyz.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_serves_after_max_wait_without_the_startup_sources() {
    let mut config = common::config();
    config.health.startup = Some(StartupConfig {
        sources: vec!["app-*".into()],
        max_wait: Delay(Duration::from_millis(500)),
    });
    let server = TestServer::start_with(config).await;
    assert_eq!(check(&server, "").await, ServingStatus::NotServing);
    let mut watch = watch(&server, "").await;
    assert_eq!(
        next(&mut watch, 5).await.status,
        ServingStatus::NotServing as i32
    );
    assert_eq!(
        next(&mut watch, 5).await.status,
        ServingStatus::Serving as i32
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_verbose_lists_each_subsystem_and_exclude_leaves_one_out() {
    let server = TestServer::start_with(common::config()).await;
    push(&server, "app-1", 31).await;
    let verbose = http_get(server.http, "/readyz?verbose", None).await;
    assert_eq!(verbose.status, 503);
    let lines: Vec<&str> = verbose.body.lines().collect();
    assert!(
        lines.contains(&"[-]datasources failed: DS_POOL_SATURATED"),
        "{lines:?}"
    );
    assert!(lines.contains(&"[+]caches ok"), "{lines:?}");
    assert_eq!(lines.last(), Some(&"readyz check failed"));

    let excluded = http_get(server.http, "/readyz?exclude=datasources&verbose", None).await;
    assert_eq!(excluded.status, 200, "{}", excluded.body);
    assert!(excluded
        .body
        .contains("[+]datasources excluded: DS_POOL_SATURATED"));
    assert!(excluded.body.ends_with("readyz check passed\n"));
    let others = http_get(server.http, "/readyz?exclude=caches&exclude=host", None).await;
    assert_eq!(others.status, 503);

    let bad = http_get(server.http, "/readyz?exclude=nope", None).await;
    assert_eq!(
        (bad.status, bad.json()["parameter"].as_str()),
        (400, Some("exclude"))
    );
    let bad = http_get(server.http, "/readyz?verbose=maybe", None).await;
    assert_eq!(
        (bad.status, bad.json()["parameter"].as_str()),
        (400, Some("verbose"))
    );
}
