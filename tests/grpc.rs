//! The gRPC surface end to end: every RPC, watch semantics, staleness, grpc.health.v1.

mod common;

use std::time::{Duration, Instant};

use common::{next, pool, push_pools, TestServer};
use healthscore::{
    model::Subsystem,
    proto::v1::{self, ReportOptions, Severity, Status},
};
use tonic_health::pb::{health_check_response::ServingStatus, HealthCheckRequest};

fn status(raw: i32) -> Status {
    Status::try_from(raw).expect("a known status")
}

async fn check(server: &TestServer, service: &str) -> Result<ServingStatus, tonic::Code> {
    server
        .health()
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .map(|r| ServingStatus::try_from(r.into_inner().status).expect("known serving status"))
        .map_err(|s| s.code())
}

#[tokio::test]
async fn every_subsystem_rpc_answers_an_unavailable_healthy_report_at_start() {
    let server = TestServer::start().await;
    let mut client = server.reports();
    macro_rules! get {
        ($method:ident, $request:ident, $key:literal) => {{
            let report = client
                .$method(v1::$request::default())
                .await
                .expect(stringify!($method))
                .into_inner()
                .report
                .expect("a report");
            assert_eq!(report.subsystem, $key);
            assert!(!report.available, "{}", $key);
            assert_eq!(
                (status(report.status), report.score),
                (Status::Healthy, 100)
            );
            assert!(report.revision >= 1);
        }};
    }
    get!(
        get_datasource_health,
        GetDatasourceHealthRequest,
        "datasources"
    );
    get!(get_cache_health, GetCacheHealthRequest, "caches");
    get!(get_watcher_health, GetWatcherHealthRequest, "watchers");
    get!(
        get_scheduler_health,
        GetSchedulerHealthRequest,
        "schedulers"
    );
    get!(get_executor_health, GetExecutorHealthRequest, "executors");
    get!(
        get_web_server_health,
        GetWebServerHealthRequest,
        "webServer"
    );
    get!(get_runtime_health, GetRuntimeHealthRequest, "runtime");
    get!(
        get_performance_health,
        GetPerformanceHealthRequest,
        "performance"
    );
    get!(get_host_health, GetHostHealthRequest, "host");
    let system = client
        .get_system_health(v1::GetSystemHealthRequest::default())
        .await
        .expect("system")
        .into_inner()
        .report()
        .expect("a report");
    assert_eq!(system.subsystems.len(), Subsystem::ALL.len());
    assert_eq!(
        (status(system.status), system.score),
        (Status::Healthy, 100)
    );
}

#[tokio::test]
async fn a_push_that_crosses_a_threshold_turns_reports_and_probes_critical_and_reaches_watchers() {
    let server = TestServer::start().await;
    let mut client = server.reports();
    let mut watch = client
        .watch_health(v1::WatchHealthRequest::default())
        .await
        .expect("watch")
        .into_inner();
    let mut probe_watch = server
        .health()
        .watch(HealthCheckRequest {
            service: "datasources".into(),
        })
        .await
        .expect("health watch")
        .into_inner();
    let first = next(&mut watch, 5).await.report().expect("report");
    assert_eq!(status(first.status), Status::Healthy);
    assert_eq!(
        next(&mut probe_watch, 5).await.status,
        ServingStatus::Serving as i32
    );

    let response = client
        .report_metrics(push_pools("app-1", vec![pool("mainDB", 31, 32)]))
        .await
        .expect("push")
        .into_inner();
    assert!(response.applied);
    assert_eq!(response.entity_count, 1);
    assert_eq!(status(response.system_status), Status::Critical);

    let report = client
        .get_datasource_health(v1::GetDatasourceHealthRequest::default())
        .await
        .expect("get")
        .into_inner()
        .report
        .expect("report");
    assert_eq!(
        (status(report.status), report.score),
        (Status::Critical, 50)
    );
    assert_eq!(report.issues[0].code, "DS_POOL_SATURATED");
    assert_eq!(report.issues[0].source, "app-1");
    assert_eq!(report.entities.len(), 1);
    assert_eq!(report.revision, response.revision);

    let system = client
        .get_system_health(v1::GetSystemHealthRequest::default())
        .await
        .expect("system")
        .into_inner()
        .report()
        .expect("report");
    assert_eq!(status(system.status), Status::Critical);
    assert_eq!(system.issues[0].code, "datasources:DS_POOL_SATURATED");

    assert_eq!(check(&server, "").await, Ok(ServingStatus::NotServing));
    assert_eq!(
        check(&server, "datasources").await,
        Ok(ServingStatus::NotServing)
    );
    assert_eq!(check(&server, "caches").await, Ok(ServingStatus::Serving));
    assert_eq!(
        check(&server, "healthscore.v1.HealthReports").await,
        Ok(ServingStatus::Serving)
    );

    let changed = next(&mut watch, 5).await.report().expect("report");
    assert_eq!(status(changed.status), Status::Critical);
    assert_eq!(changed.issues[0].code, "datasources:DS_POOL_SATURATED");
    assert_eq!(
        next(&mut probe_watch, 5).await.status,
        ServingStatus::NotServing as i32
    );

    // Same band, other numbers: no message. The next message is the change of band after it.
    client
        .report_metrics(push_pools("app-1", vec![pool("mainDB", 32, 32)]))
        .await
        .expect("push in the same band");
    client
        .report_metrics(push_pools("app-1", vec![pool("mainDB", 28, 32)]))
        .await
        .expect("push into the warning band");
    let after = next(&mut watch, 5).await.report().expect("report");
    assert_eq!(status(after.status), Status::Warning);
    assert_eq!(after.issues[0].code, "datasources:DS_POOL_HIGH_UTILIZATION");
    // The probe watch only hears real status changes: critical -> warning is NOT_SERVING -> SERVING.
    assert_eq!(
        next(&mut probe_watch, 5).await.status,
        ServingStatus::Serving as i32
    );
}

#[tokio::test]
async fn watch_with_subsystems_and_min_severity_ignores_other_changes() {
    let server = TestServer::start().await;
    let mut client = server.reports();
    let mut watch = client
        .watch_health(v1::WatchHealthRequest {
            subsystems: vec!["caches".into()],
            options: Some(ReportOptions {
                min_severity: Severity::Warning.into(),
                omit_entities: true,
                ..Default::default()
            }),
        })
        .await
        .expect("watch")
        .into_inner();
    let first = next(&mut watch, 5).await.report().expect("report");
    assert_eq!(first.subsystems.keys().collect::<Vec<_>>(), vec!["caches"]);

    // A datasource change is outside the selection.
    client
        .report_metrics(push_pools("app-1", vec![pool("db", 31, 32)]))
        .await
        .expect("push");
    // An info issue elsewhere would not count either; a disabled cache does.
    client
        .report_metrics(v1::ReportMetricsRequest {
            source: "app-1".into(),
            caches: vec![v1::CacheSnapshot {
                name: "users".into(),
                enabled: Some(false),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .expect("push");
    let changed = next(&mut watch, 5).await.report().expect("report");
    assert_eq!(status(changed.status), Status::Warning);
    assert_eq!(changed.issues.len(), 1);
    assert_eq!(changed.issues[0].code, "caches:CACHE_DISABLED");
    assert!(
        changed.subsystems["caches"].entities.is_empty(),
        "omit_entities"
    );
}

#[tokio::test]
async fn min_severity_filters_issues_but_not_the_score() {
    let server = TestServer::start().await;
    let mut client = server.reports();
    client
        .report_metrics(v1::ReportMetricsRequest {
            source: "app-1".into(),
            performance: vec![v1::PerformanceSnapshot {
                name: "api".into(),
                slow_queries: 3,
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .expect("push");
    let report = client
        .get_performance_health(v1::GetPerformanceHealthRequest {
            options: Some(ReportOptions {
                min_severity: Severity::Warning.into(),
                omit_entities: false,
                ..Default::default()
            }),
        })
        .await
        .expect("get")
        .into_inner()
        .report
        .expect("report");
    assert!(report.issues.is_empty());
    assert_eq!(report.score, 95);
    assert_eq!(
        report.score_breakdown.expect("breakdown").deductions.len(),
        1
    );
}

#[tokio::test]
async fn a_silent_source_goes_stale_on_time_and_forget_source_removes_it() {
    let server = TestServer::start().await;
    let mut client = server.reports();
    let mut push = push_pools("app-1", vec![pool("db", 1, 32)]);
    push.ttl = Some(prost_types::Duration {
        seconds: 1,
        nanos: 0,
    });
    let mut watch = client
        .watch_health(v1::WatchHealthRequest::default())
        .await
        .expect("watch")
        .into_inner();
    next(&mut watch, 5).await;
    let pushed_at = Instant::now();
    client.report_metrics(push).await.expect("push");
    let healthy = next(&mut watch, 5).await.report().expect("report");
    // The subsystem became available: a change of the aggregate score from none to 100.
    assert_eq!(status(healthy.status), Status::Healthy);
    assert!(healthy.subsystems["datasources"].available);

    let stale = next(&mut watch, 5).await.report().expect("report");
    let waited = pushed_at.elapsed();
    assert!(
        waited >= Duration::from_secs(1),
        "stale after its TTL, not before ({waited:?})"
    );
    assert!(
        waited < Duration::from_millis(1500),
        "stale on time ({waited:?})"
    );
    assert_eq!(status(stale.status), Status::Critical);
    assert_eq!(stale.issues[0].code, "datasources:SOURCE_STALE");
    assert!(stale.subsystems["datasources"].entities[0].stale);
    assert_eq!(check(&server, "").await, Ok(ServingStatus::NotServing));

    let forgotten = client
        .forget_source(v1::ForgetSourceRequest {
            source: "app-1".into(),
        })
        .await
        .expect("forget")
        .into_inner();
    assert!(forgotten.forgotten);
    let gone = next(&mut watch, 5).await.report().expect("report");
    assert_eq!(status(gone.status), Status::Healthy);
    assert!(!gone.subsystems["datasources"].available);
    let again = client
        .forget_source(v1::ForgetSourceRequest {
            source: "app-1".into(),
        })
        .await
        .expect("forget again")
        .into_inner();
    assert!(!again.forgotten);
}

#[tokio::test]
async fn reordered_and_repeated_sequences_never_roll_state_back() {
    let server = TestServer::start().await;
    let mut client = server.reports();
    let mut newer = push_pools("app-1", vec![pool("db", 31, 32)]);
    newer.sequence = 7;
    let mut older = push_pools("app-1", vec![pool("db", 1, 32)]);
    older.sequence = 6;
    assert!(
        client
            .report_metrics(newer.clone())
            .await
            .expect("push")
            .into_inner()
            .applied
    );
    let retry = client
        .report_metrics(newer)
        .await
        .expect("retry is OK")
        .into_inner();
    assert!(!retry.applied);
    let late = client
        .report_metrics(older)
        .await
        .expect("late is OK")
        .into_inner();
    assert!(!late.applied);
    assert_eq!(status(late.system_status), Status::Critical);
}

#[tokio::test]
async fn a_restarted_source_counting_from_one_again_is_applied_at_once() {
    let server = TestServer::start().await;
    let mut client = server.reports();
    let started = |secs_ago: u64| {
        Some(prost_types::Timestamp::from(
            std::time::SystemTime::now() - Duration::from_secs(secs_ago),
        ))
    };
    let mut before = push_pools("app-1", vec![pool("db", 31, 32)]);
    before.sequence = u64::MAX;
    before.started_at = started(600);
    assert!(
        client
            .report_metrics(before)
            .await
            .expect("push")
            .into_inner()
            .applied
    );
    let mut restarted = push_pools("app-1", vec![pool("db", 1, 32)]);
    restarted.sequence = 1;
    restarted.started_at = started(1);
    let answer = client
        .report_metrics(restarted)
        .await
        .expect("push after restart")
        .into_inner();
    assert!(answer.applied, "the new incarnation is locked out");
    assert_eq!(status(answer.system_status), Status::Healthy);

    let mut skewed = push_pools("app-1", vec![pool("db", 1, 32)]);
    skewed.started_at = Some(prost_types::Timestamp::from(
        std::time::SystemTime::now() + Duration::from_secs(3600),
    ));
    let error = client.report_metrics(skewed).await.expect_err("future");
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    assert!(
        error.message().starts_with("started_at:"),
        "{}",
        error.message()
    );
}

#[tokio::test]
async fn health_v1_follows_the_standard_for_unknown_names_and_lists_every_name() {
    let server = TestServer::start().await;
    assert_eq!(check(&server, "nope").await, Err(tonic::Code::NotFound));
    let mut watch = server
        .health()
        .watch(HealthCheckRequest {
            service: "nope".into(),
        })
        .await
        .expect("watch on an unknown name is accepted")
        .into_inner();
    assert_eq!(
        next(&mut watch, 5).await.status,
        ServingStatus::ServiceUnknown as i32
    );
    // The stream stays open: nothing more arrives, and it has not ended.
    let more = tokio::time::timeout(Duration::from_millis(300), watch.message()).await;
    assert!(
        more.is_err(),
        "stream neither ended nor sent more: {more:?}"
    );

    let mut client =
        healthscore::proto::health::health_client::HealthClient::new(server.channel.clone());
    let list = client
        .list(healthscore::proto::health::HealthListRequest {})
        .await
        .expect("list")
        .into_inner();
    let mut names: Vec<_> = list.statuses.keys().map(String::as_str).collect();
    names.sort_unstable();
    // The whole system, the service itself, and every subsystem of the table.
    let mut expected = vec!["", "healthscore.v1.HealthReports"];
    expected.extend(Subsystem::ALL.iter().map(|s| s.key()));
    expected.sort_unstable();
    assert_eq!(names, expected);
    assert!(list
        .statuses
        .values()
        .all(|s| s.status == ServingStatus::Serving as i32));
}

#[tokio::test]
async fn warning_can_be_configured_to_be_not_serving() {
    let mut config = healthscore::service::Config::default();
    config.host.enabled = false;
    config.health.not_serving_at = healthscore::service::NotServingAt::Warning;
    let server = TestServer::start_with(config).await;
    server
        .reports()
        .report_metrics(push_pools("app-1", vec![pool("db", 28, 32)]))
        .await
        .expect("push");
    assert_eq!(
        check(&server, "datasources").await,
        Ok(ServingStatus::NotServing)
    );
    assert_eq!(check(&server, "caches").await, Ok(ServingStatus::Serving));
}
