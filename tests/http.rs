//! The HTTP face end to end over real HTTP/1.1: probes, the JSON reports and their status
//! codes, the 400s, Server-Sent Events, /metrics and the Flask seed's endpoint.

mod common;

use std::time::Duration;

use common::{http_get, http_request, pool, push_pools, Events, TestServer};
use healthscore::proto::v1;

async fn push(server: &TestServer, active: u32) {
    server
        .reports()
        .report_metrics(push_pools("app-1", vec![pool("mainDB", active, 32)]))
        .await
        .expect("push");
}

#[tokio::test(flavor = "multi_thread")]
async fn probes_follow_the_grpc_health_statuses() {
    let server = TestServer::start().await;
    let http = server.http;
    assert_eq!(http_get(http, "/livez", None).await.status, 200);
    let ready = http_get(http, "/readyz", None).await;
    assert_eq!(
        (ready.status, ready.json()["status"].as_str()),
        (200, Some("SERVING"))
    );
    push(&server, 31).await; // 97%: DS_POOL_SATURATED, critical
    assert_eq!(http_get(http, "/readyz", None).await.status, 503);
    assert_eq!(
        http_get(http, "/readyz?service=datasources", None)
            .await
            .status,
        503
    );
    assert_eq!(
        http_get(http, "/readyz?service=caches", None).await.status,
        200
    );
    assert_eq!(
        http_get(http, "/readyz?service=healthscore.v1.HealthReports", None)
            .await
            .status,
        200
    );
    let unknown = http_get(http, "/readyz?service=nope", None).await;
    assert_eq!(
        (unknown.status, unknown.json()["parameter"].as_str()),
        (404, Some("service"))
    );
    let bad = http_get(http, "/readyz?servce=", None).await;
    assert_eq!(
        (bad.status, bad.json()["parameter"].as_str()),
        (400, Some("servce"))
    );
    assert_eq!(http_get(http, "/livez", None).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_are_the_seeds_json_with_status_codes_that_agree() {
    let server = TestServer::start().await;
    let http = server.http;
    let healthy = http_get(http, "/v1/health", None).await;
    assert_eq!(healthy.status, 200);
    assert_eq!(healthy.content_type, "application/json");
    let json = healthy.json();
    assert_eq!(
        (json["status"].as_str(), json["score"].as_u64()),
        (Some("healthy"), Some(100))
    );

    push(&server, 28).await; // 87.5%: DS_POOL_HIGH_UTILIZATION, warning
    let warning = http_get(http, "/v1/health", None).await;
    assert_eq!(warning.status, 200);
    let json = warning.json();
    assert_eq!(json["status"], "warning");
    assert_eq!(
        json["issues"][0]["code"],
        "datasources:DS_POOL_HIGH_UTILIZATION"
    );
    let pools = http_get(http, "/v1/health/datasources", None).await.json();
    assert_eq!(pools["score"], 75);
    assert!(pools["issues"][0]["suggestedAction"].as_str().is_some());
    assert_eq!(pools["issues"][0]["entityMetrics"]["active"], 28.0);
    assert_eq!(pools["scoreBreakdown"]["deductions"][0]["penalty"], 25);
    assert_eq!(pools["entities"][0]["name"], "mainDB");

    push(&server, 31).await;
    let critical = http_get(http, "/v1/health", None).await;
    assert_eq!(
        (critical.status, critical.json()["status"].as_str()),
        (503, Some("critical"))
    );
    assert_eq!(
        http_get(http, "/v1/health/datasources", None).await.status,
        503
    );
    assert_eq!(http_get(http, "/v1/health/caches", None).await.status, 200);

    let filtered = http_get(
        http,
        "/v1/health/datasources?min_severity=critical&entities=false",
        None,
    )
    .await
    .json();
    assert_eq!(filtered["entities"].as_array().map(Vec::len), Some(0));
    assert_eq!(filtered["entitiesOmitted"], 1);
    assert!(filtered["issues"]
        .as_array()
        .expect("issues")
        .iter()
        .all(|i| i["severity"] == "critical"));

    for (path, parameter, status) in [
        ("/v1/health?min_severity=loud", "min_severity", 400),
        ("/v1/health?entities=maybe", "entities", 400),
        ("/v1/health?max_entities=-1", "max_entities", 400),
        ("/v1/health?colour=red", "colour", 400),
        (
            "/v1/health?min_severity=info&min_severity=warning",
            "min_severity",
            400,
        ),
        ("/v1/health/disks", "subsystem", 404),
    ] {
        let answer = http_get(http, path, None).await;
        assert_eq!(answer.status, status, "{path}");
        assert_eq!(answer.json()["parameter"], parameter, "{path}");
        assert!(
            answer.json()["error"]
                .as_str()
                .is_some_and(|e| e.contains(parameter)),
            "{path}"
        );
    }
    assert_eq!(http_get(http, "/v2/nothing", None).await.status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_sends_the_state_then_changes_only() {
    let server = TestServer::start().await;
    let response = http_request(server.http, "/v1/watch?subsystems=datasources", None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().expect("ascii"),
        "text/event-stream"
    );
    let mut events = Events::new(response);
    let first = events
        .next(Duration::from_secs(5))
        .await
        .expect("the current state");
    assert_eq!(first.event, "report");
    let state: serde_json::Value = serde_json::from_str(&first.data).expect("JSON");
    assert_eq!(state["status"], "healthy");

    push(&server, 28).await;
    let change = events.next(Duration::from_secs(5)).await.expect("a change");
    let state: serde_json::Value = serde_json::from_str(&change.data).expect("JSON");
    assert_eq!(state["status"], "warning");
    assert!(change.id.parse::<u64>().expect("revision") > first.id.parse().expect("revision"));

    // 87.5% to 90.6%: the same issue, only a number moves. No event.
    push(&server, 29).await;
    assert!(events.next(Duration::from_millis(800)).await.is_none());
    // Another subsystem changes: not followed, no event.
    server
        .reports()
        .report_metrics(v1::ReportMetricsRequest {
            source: "app-2".into(),
            caches: vec![v1::CacheSnapshot {
                name: "c".into(),
                enabled: Some(false),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .expect("push caches");
    assert!(events.next(Duration::from_millis(800)).await.is_none());

    push(&server, 31).await;
    let critical = events.next(Duration::from_secs(5)).await.expect("critical");
    let state: serde_json::Value = serde_json::from_str(&critical.data).expect("JSON");
    assert_eq!(state["status"], "critical");

    let bad = http_get(server.http, "/v1/watch?subsystems=datasources,disks", None).await;
    assert_eq!(
        (bad.status, bad.json()["parameter"].as_str()),
        (400, Some("subsystems"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_openmetrics_or_prometheus_text_by_negotiation() {
    let server = TestServer::start().await;
    push(&server, 28).await;
    server
        .reports()
        .report_metrics(push_pools("app-\"2\\", vec![pool("a\"b\\c", 1, 32)]))
        .await
        .expect("a source with quotes in its name");
    let om = http_get(
        server.http,
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
    )
    .await;
    assert_eq!(om.status, 200);
    assert_eq!(
        om.content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(om.body.ends_with("# EOF\n"));
    let body = &om.body;
    for line in [
        "healthscore_system_score 75",
        "healthscore_system_status 1",
        "healthscore_subsystem_score{subsystem=\"datasources\"} 75",
        "healthscore_subsystem_status{subsystem=\"datasources\",status=\"warning\"} 1",
        "healthscore_subsystem_status{subsystem=\"datasources\",status=\"healthy\"} 0",
        "healthscore_subsystem_status{subsystem=\"caches\",status=\"healthy\"} 1",
        "healthscore_subsystem_available{subsystem=\"caches\"} 0",
        "healthscore_issue{subsystem=\"datasources\",code=\"DS_POOL_HIGH_UTILIZATION\",severity=\"warning\",entity=\"mainDB\",source=\"app-1\"} 1",
        "healthscore_source_stale{source=\"app-1\"} 0",
        "healthscore_source_stale{source=\"app-\\\"2\\\\\"} 0",
        "healthscore_pushes_total{result=\"accepted\"} 2",
        "healthscore_pushes_total{result=\"invalid\"} 0",
        "# TYPE healthscore_pushes counter",
    ] {
        assert!(body.lines().any(|l| l == line), "missing {line:?} in\n{body}");
    }
    let text = http_get(server.http, "/metrics", None).await;
    assert_eq!(
        text.content_type,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert!(!text.body.contains("# EOF"));
    assert!(
        text.body
            .lines()
            .any(|l| l == "# TYPE healthscore_pushes_total counter"),
        "{}",
        text.body
    );
    assert!(text
        .body
        .lines()
        .any(|l| l == "healthscore_subsystem_score{subsystem=\"datasources\"} 75"));
}

/// The type of a JSON value, as the seed's example shows it.
fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// Every key of `seed` is in `ours` with the same type, recursively; and no key is added.
fn same_shape(seed: &serde_json::Value, ours: &serde_json::Value, path: &str) {
    assert_eq!(kind(seed), kind(ours), "{path}");
    if let (Some(seed), Some(ours)) = (seed.as_object(), ours.as_object()) {
        let mut seed_keys: Vec<_> = seed.keys().collect();
        let mut our_keys: Vec<_> = ours.keys().collect();
        seed_keys.sort();
        our_keys.sort();
        assert_eq!(seed_keys, our_keys, "keys of {path}");
        for (key, value) in seed {
            same_shape(value, &ours[key], &format!("{path}.{key}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_flask_endpoint_answers_the_seeds_shape_and_bands() {
    // The seed's documented example response.
    let seed: serde_json::Value = serde_json::from_str(
        r#"{"success": true, "health_report": {"overall_status": "excellent", "health_score": 95,
            "issues": [], "system_stats": {"resource_usage": {"cpu_percent": 45.2,
            "memory_percent": 62.1, "disk_percent": 78.5}, "process_pool": {"active_workers": 4,
            "queue_size": 12}, "cache": {"hit_rate": 85.3}}, "recommendations": []},
            "timestamp": "2024-01-01T12:00:00Z"}"#,
    )
    .expect("the seed's example");
    let server = TestServer::start().await;
    let mut client = server.reports();
    let answer = http_get(server.http, "/api/process/health-check", None).await;
    assert_eq!(answer.status, 200);
    same_shape(&seed, &answer.json(), "response");

    // Scores on each side of the seed's bands (90/75/50/25): each slow API costs 5 points.
    let slow = |n: u64| v1::PerformanceSnapshot {
        name: format!("api-{n:02}"),
        slow_queries: 1,
        ..Default::default()
    };
    for (apis, score, band) in [
        (1, 95, "excellent"),
        (2, 90, "excellent"),
        (3, 85, "good"),
        (5, 75, "good"),
        (6, 70, "fair"),
        (10, 50, "fair"),
        (11, 45, "poor"),
        (15, 25, "poor"),
        (16, 20, "critical"),
    ] {
        client
            .forget_source(v1::ForgetSourceRequest {
                source: "app-1".into(),
            })
            .await
            .expect("forget");
        let request = v1::ReportMetricsRequest {
            source: "app-1".into(),
            performance: (0..apis).map(slow).collect(),
            ..Default::default()
        };
        client.report_metrics(request).await.expect("push");
        let json = http_get(server.http, "/api/process/health-check", None)
            .await
            .json();
        let report = &json["health_report"];
        assert_eq!(report["health_score"], score);
        assert_eq!(report["overall_status"], band, "score {score}");
        same_shape(&seed, &json, "response");
        assert!(report["issues"][0].as_str().is_some());
        assert!(report["recommendations"][0].as_str().is_some());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_is_one_small_page_from_healthscore_alone() {
    let server = TestServer::start().await;
    let page = http_get(server.http, "/", None).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.content_type, "text/html; charset=utf-8");
    assert!(page.body.len() < 50 * 1024, "{} bytes", page.body.len());
    assert!(page.body.contains("/v1/watch"));
    // The only URLs are SVG's namespace, which names and fetches nothing.
    let urls = page.body.replace("http://www.w3.org/2000/svg", "");
    assert!(
        !urls.contains("http://") && !urls.contains("https://"),
        "an outside URL"
    );
}
