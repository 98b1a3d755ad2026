//! The MCP face over streamable HTTP at `/mcp`, spoken as JSON-RPC by hand on a real server
//! (the official Python SDK drives both transports in `.ci/mcp.sh`).

mod common;

use common::{http_send, pool, push_pools, TestServer};
use healthscore::model::Subsystem;
use http_body_util::Full;
use serde_json::{json, Value};

/// Posts one JSON-RPC message; returns the session id and the answer (from the SSE body).
async fn post(
    server: &TestServer,
    session: Option<&str>,
    message: Value,
) -> (Option<String>, Option<Value>) {
    let mut request = hyper::Request::post("/mcp")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25");
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    let body = Full::from(message.to_string());
    let response = http_send(server.http, request.body(body).expect("request")).await;
    assert!(response.status().is_success(), "{:?}", response.status());
    let session = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = common::read_answer(response).await.body;
    let answer = text
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .find(|message| message.get("id").is_some());
    (session, answer)
}

#[tokio::test]
async fn tools_read_the_reports_and_bad_arguments_are_named() {
    let server = TestServer::start().await;
    server
        .reports()
        .report_metrics(push_pools("app-1", vec![pool("mainDB", 10, 10)]))
        .await
        .expect("push");
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"}}});
    let (session, answer) = post(&server, None, initialize).await;
    let session = session.expect("a session id");
    assert_eq!(
        answer.unwrap()["result"]["serverInfo"]["name"],
        "healthscore"
    );
    post(
        &server,
        Some(&session),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;

    let (_, tools) = post(
        &server,
        Some(&session),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    )
    .await;
    let names: Vec<String> = tools.unwrap()["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|tool| tool["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        names.contains(&"datasource_get_health".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"undertow_get_health".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"health_get_history".to_owned()),
        "{names:?}"
    );
    // One tool per subsystem, the system's and the history's.
    assert_eq!(names.len(), Subsystem::ALL.len() + 2, "{names:?}");

    let call = |id: u32, name: &str, arguments: Value| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": name, "arguments": arguments}})
    };
    let (_, report) = post(
        &server,
        Some(&session),
        call(
            3,
            "datasource_get_health",
            json!({"include_entities": false}),
        ),
    )
    .await;
    let report = &report.unwrap()["result"]["structuredContent"];
    assert_eq!(report["status"], "critical", "{report}");
    assert_eq!(report["issues"][0]["code"], "DS_POOL_SATURATED", "{report}");
    let http = common::http_get(server.http, "/v1/health/datasources?entities=false", None)
        .await
        .json();
    assert_eq!(
        report, &http,
        "the tool and GET /v1/health/datasources differ"
    );

    let (_, bad) = post(
        &server,
        Some(&session),
        call(4, "datasource_get_health", json!({"min_severity": "loud"})),
    )
    .await;
    let error = &bad.unwrap()["error"];
    assert_eq!(error["code"], -32602, "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("min_severity"),
        "{error}"
    );
    let (_, unknown) = post(
        &server,
        Some(&session),
        call(5, "reboot_the_server", json!({})),
    )
    .await;
    assert!(unknown.unwrap().get("error").is_some());

    let read = json!({"jsonrpc": "2.0", "id": 6, "method": "resources/read", "params": {"uri": "health://system"}});
    let (_, resource) = post(&server, Some(&session), read).await;
    let text = resource.unwrap()["result"]["contents"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let system: Value = serde_json::from_str(&text).expect("the resource is JSON");
    assert_eq!(system["status"], "critical");
}

#[tokio::test]
async fn sessions_beyond_the_cap_are_refused_until_one_ends() {
    let mut config = common::config();
    config.mcp.max_sessions = 1;
    let server = TestServer::start_with(config).await;
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"}}});
    let (session, _) = post(&server, None, initialize.clone()).await;
    let session = session.expect("a session id");
    let second = hyper::Request::post("/mcp")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(Full::from(initialize.to_string()))
        .expect("request");
    let refused = common::read_answer(http_send(server.http, second).await).await;
    assert_eq!(refused.status, 429, "{refused:?}");
    assert!(refused.body.contains("mcp.max_sessions"), "{refused:?}");
    // The first session still works.
    let (_, answer) = post(
        &server,
        Some(&session),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    )
    .await;
    assert!(answer.expect("an answer")["result"]["tools"].is_array());
    // Ending it frees the slot.
    let close = hyper::Request::delete("/mcp")
        .header("mcp-session-id", &session)
        .body(Full::default())
        .expect("request");
    http_send(server.http, close).await;
    let (again, _) = post(&server, None, initialize).await;
    assert!(again.is_some(), "no session after the first one ended");
}
