//! Every kind of bad push is INVALID_ARGUMENT naming the field, and changes nothing at all.

mod common;

use bytes::Bytes;
use common::{pool, push_pools, raw_call, TestServer};
use healthscore::{proto::v1, service::Config};
use prost::Message;

async fn start() -> TestServer {
    let mut config = Config::default();
    config.host.enabled = false;
    config.limits.max_sources = 2;
    config.limits.max_entities_per_request = 3;
    config.limits.max_name_bytes = 16;
    TestServer::start_with(config).await
}

async fn system_bytes(server: &TestServer) -> Vec<u8> {
    server
        .reports()
        .get_system_health(v1::GetSystemHealthRequest::default())
        .await
        .expect("system report")
        .into_inner()
        .encode_to_vec()
}

#[tokio::test]
async fn bad_pushes_are_rejected_by_field_and_leave_state_byte_for_byte_unchanged() {
    let server = start().await;
    let mut client = server.reports();
    client
        .report_metrics(push_pools("app-1", vec![pool("db", 31, 32)]))
        .await
        .expect("a good push");
    client
        .report_metrics(push_pools("app-2", vec![pool("db", 1, 32)]))
        .await
        .expect("a second source");
    let before = system_bytes(&server).await;

    let ttl = |seconds, nanos| Some(prost_types::Duration { seconds, nanos });
    let mut cases: Vec<(&str, v1::ReportMetricsRequest)> = vec![
        (
            "source: must not be empty",
            push_pools("", vec![pool("db", 1, 2)]),
        ),
        (
            "source: is 17 bytes long",
            push_pools("a-very-long-name!", vec![pool("db", 1, 2)]),
        ),
        (
            "datasources[0].name: must not be empty",
            push_pools("app-1", vec![pool(" ", 1, 2)]),
        ),
        (
            "datasources[1].name: duplicate entity name \"db\"",
            push_pools("app-1", vec![pool("db", 1, 2), pool("db", 1, 2)]),
        ),
    ];
    let mut over = pool("db", 1, 2);
    over.active = 3;
    cases.push((
        "datasources[0] \"db\".active: 3 is above max (2)",
        push_pools("app-1", vec![over]),
    ));
    cases.push((
        "entities: 4 entities in one request; the limit is 3",
        push_pools(
            "app-1",
            (0..4).map(|i| pool(&format!("p{i}"), 1, 2)).collect(),
        ),
    ));
    cases.push((
        "source: \"app-3\" would be source number 3",
        push_pools("app-3", vec![pool("db", 1, 2)]),
    ));
    let mut negative = push_pools("app-1", vec![pool("db", 1, 2)]);
    negative.ttl = ttl(-5, 0);
    cases.push(("ttl: -5s 0ns is not a valid positive duration", negative));
    let mut long_ttl = push_pools("app-1", vec![pool("db", 1, 2)]);
    long_ttl.ttl = ttl(7200, 0);
    cases.push(("ttl: 7200s is outside the allowed 1s to 3600s", long_ttl));
    let mut short_ttl = push_pools("app-1", vec![pool("db", 1, 2)]);
    short_ttl.ttl = ttl(0, 500_000_000);
    cases.push(("ttl: 500ms is outside the allowed 1s to 3600s", short_ttl));
    cases.push((
        "executors[0] \"x\".state: unknown executor state 42",
        v1::ReportMetricsRequest {
            source: "app-1".into(),
            executors: vec![v1::ExecutorSnapshot {
                name: "x".into(),
                state: 42,
                ..Default::default()
            }],
            ..Default::default()
        },
    ));
    cases.push((
        "web_servers[0] \"w\".errors: 5 is above requests (4)",
        v1::ReportMetricsRequest {
            source: "app-1".into(),
            web_servers: vec![v1::WebServerSnapshot {
                name: "w".into(),
                requests: 4,
                errors: 5,
                ..Default::default()
            }],
            ..Default::default()
        },
    ));
    cases.push((
        "schedulers[0] \"s\".paused_tasks: 2 is above tasks (1)",
        v1::ReportMetricsRequest {
            source: "app-1".into(),
            schedulers: vec![v1::SchedulerSnapshot {
                name: "s".into(),
                tasks: 1,
                paused_tasks: 2,
                ..Default::default()
            }],
            ..Default::default()
        },
    ));
    cases.push((
        "caches[0].name: must not contain control characters",
        v1::ReportMetricsRequest {
            source: "app-1".into(),
            caches: vec![v1::CacheSnapshot {
                name: "bad\nname".into(),
                ..Default::default()
            }],
            ..Default::default()
        },
    ));
    // A valid first list must not be applied when a later one in the same request is bad.
    let mut half_good = push_pools("app-1", vec![pool("db", 1, 32)]);
    half_good.runtimes = vec![v1::RuntimeSnapshot {
        name: "jvm".into(),
        heap_used_bytes: 10,
        heap_max_bytes: 5,
        blocked_threads: 0,
    }];
    cases.push((
        "runtimes[0] \"jvm\".heap_used_bytes: 10 is above heap_max_bytes (5)",
        half_good,
    ));

    for (expected, request) in cases {
        let error = client.report_metrics(request).await.expect_err(expected);
        // A full server is not the client's mistake: retrying later can succeed.
        let code = if expected.contains("would be source number") {
            tonic::Code::ResourceExhausted
        } else {
            tonic::Code::InvalidArgument
        };
        assert_eq!(error.code(), code, "{expected}");
        assert!(
            error.message().starts_with(expected),
            "expected {expected:?}, got {:?}",
            error.message()
        );
        assert_eq!(
            system_bytes(&server).await,
            before,
            "state changed after: {expected}"
        );
    }

    let error = client
        .forget_source(v1::ForgetSourceRequest { source: "".into() })
        .await
        .expect_err("empty source");
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    assert_eq!(error.message(), "source: must not be empty");

    let error = client
        .watch_health(v1::WatchHealthRequest {
            subsystems: vec!["caches".into(), "disks".into()],
            options: None,
        })
        .await
        .expect_err("unknown subsystem");
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    assert!(
        error
            .message()
            .starts_with("subsystems[1]: unknown subsystem \"disks\""),
        "{}",
        error.message()
    );

    let error = client
        .get_cache_health(v1::GetCacheHealthRequest {
            options: Some(v1::ReportOptions {
                min_severity: 9,
                omit_entities: false,
                ..Default::default()
            }),
        })
        .await
        .expect_err("unknown severity");
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        error.message(),
        "options.min_severity: unknown severity value 9"
    );
    assert_eq!(system_bytes(&server).await, before);
}

#[tokio::test]
async fn invisible_names_broken_durations_and_empty_pushes_are_refused_and_change_nothing() {
    let server = start().await;
    let mut client = server.reports();
    client
        .report_metrics(push_pools("app-1", vec![pool("db", 1, 32)]))
        .await
        .expect("a good push");
    let before = system_bytes(&server).await;
    let mut cases = vec![
        (
            "source",
            push_pools("db\u{202e}exe.txt", vec![pool("db", 1, 2)]),
        ),
        (
            "source",
            push_pools("app-1\u{200b}", vec![pool("db", 1, 2)]),
        ),
        (
            "datasources[0].name",
            push_pools("app-1", vec![pool("d\u{200f}b", 1, 2)]),
        ),
        ("entities", push_pools("app-2", vec![])),
    ];
    for (seconds, nanos) in [(1, -1), (5, 1_000_000_000)] {
        let mut request = push_pools("app-1", vec![pool("db", 1, 2)]);
        request.ttl = Some(prost_types::Duration { seconds, nanos });
        cases.push(("ttl", request));
    }
    for (field, request) in cases {
        let error = client.report_metrics(request).await.expect_err(field);
        assert_eq!(error.code(), tonic::Code::InvalidArgument, "{field}");
        assert!(
            error.message().starts_with(&format!("{field}:")),
            "{field}: {}",
            error.message()
        );
        assert_eq!(system_bytes(&server).await, before, "changed by {field}");
    }
    // An empty push from a source that has entities is a heartbeat: accepted, nothing moves.
    let heartbeat = client
        .report_metrics(push_pools("app-1", vec![]))
        .await
        .expect("heartbeat")
        .into_inner();
    assert!(heartbeat.applied);
}

#[tokio::test]
async fn inconsistent_or_huge_counters_give_rates_within_0_and_100() {
    let server = start().await;
    let mut client = server.reports();
    let web = |requests, errors| v1::ReportMetricsRequest {
        source: "app-1".into(),
        web_servers: vec![v1::WebServerSnapshot {
            name: "http".into(),
            max_workers: 10,
            requests,
            errors,
            ..Default::default()
        }],
        ..Default::default()
    };
    let cache = v1::ReportMetricsRequest {
        source: "app-2".into(),
        caches: vec![v1::CacheSnapshot {
            name: "c".into(),
            hits: u64::MAX,
            misses: u64::MAX,
            ..Default::default()
        }],
        ..Default::default()
    };
    client.report_metrics(cache).await.expect("cache");
    client.report_metrics(web(1000, 0)).await.expect("first");
    // The window: +10 requests, +50 errors.
    client.report_metrics(web(1010, 50)).await.expect("second");
    let system = client
        .get_system_health(v1::GetSystemHealthRequest::default())
        .await
        .expect("report")
        .into_inner()
        .report()
        .expect("report");
    let web = &system.subsystems["webServer"];
    assert_eq!(web.entities[0].metrics["errorRate"], 100.0);
    assert!(
        web.issues[0].message.contains("inconsistently"),
        "{}",
        web.issues[0].message
    );
    let cache = &system.subsystems["caches"].entities[0];
    assert_eq!(cache.metrics["hitRate"], 50.0);
}

/// WatchHealth and GetSystemHealth read their request below tonic's codec (to send the shared
/// report without a copy): a body that is not one message, or a compressed one, is refused as
/// tonic refuses it, and a good one is answered.
#[tokio::test]
async fn reads_served_below_the_codec_refuse_what_tonic_refuses() {
    let server = start().await;
    for path in [
        "/healthscore.v1.HealthReports/GetSystemHealth",
        "/healthscore.v1.HealthReports/WatchHealth",
    ] {
        // A prefix announcing 9 bytes, and none of them.
        let (status, message) =
            raw_call(&server, path, Bytes::from_static(&[0, 0, 0, 0, 9]), false).await;
        assert_eq!(status, "3", "{path}: {message}");
        assert!(message.contains("length-prefixed"), "{path}: {message}");
        // Field 1 (options) as a varint: not a message.
        let (status, message) = raw_call(
            &server,
            path,
            Bytes::from_static(&[0, 0, 0, 0, 2, 0x08, 0x01]),
            false,
        )
        .await;
        assert_eq!(status, "3", "{path}: {message}");
        assert!(message.contains("Request"), "{path}: {message}");
        let (status, message) =
            raw_call(&server, path, Bytes::from_static(&[0, 0, 0, 0, 0]), true).await;
        assert_eq!(status, "12", "{path}: {message}");
    }
    let (status, message) = raw_call(
        &server,
        "/healthscore.v1.HealthReports/GetSystemHealth",
        Bytes::from_static(&[0, 0, 0, 0, 0]),
        false,
    )
    .await;
    assert_eq!(status, "0", "{message}");
}
