//! `/livez` and `/readyz`: the grpc.health.v1 statuses for httpGet probes and load balancers
//! that cannot speak gRPC. Both answer 503 from the first moment of shutdown.

use axum::{
    extract::{rejection::QueryRejection, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};

use super::{json_response, query::Params, status_code, to_json};
use crate::{
    core::published::{Serving, LIVENESS_SERVICE},
    engine::Engine,
};

/// `/livez` and `/readyz` alone, for the probe-only listener.
pub fn router(engine: Engine) -> axum::Router {
    axum::Router::new()
        .route("/livez", axum::routing::get(livez))
        .route("/readyz", axum::routing::get(readyz))
        .with_state(engine)
}

/// 200 while the process is up and not shutting down.
pub async fn livez(State(engine): State<Engine>) -> Response {
    let serving = engine.serving(LIVENESS_SERVICE);
    let body = match serving {
        Some(Serving::Serving) => "ok\n",
        _ => "shutting down\n",
    };
    (status_code(serving), body).into_response()
}

/// The status of `service` (default `""`, the whole system): 200 SERVING, 503 NOT_SERVING,
/// 404 for a name healthscore does not know.
pub async fn readyz(
    State(engine): State<Engine>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let params = match Params::read(query, &["service"]) {
        Ok(params) => params,
        Err(bad) => return bad.into_response(),
    };
    let service = params.get("service").unwrap_or_default();
    let Some(serving) = engine.serving(service) else {
        return super::error(
            StatusCode::NOT_FOUND,
            format!("unknown service {service:?}"),
            Some("service"),
        );
    };
    let status = match serving {
        Serving::Serving => "SERVING",
        Serving::NotServing => "NOT_SERVING",
    };
    let mut body = serde_json::json!({ "service": service, "status": status });
    // Held NOT_SERVING by damping (health.recover_after) though the report serves again.
    let state = engine.state();
    if let Some(at) = state.recovering.get(service) {
        let left = at.saturating_duration_since(std::time::Instant::now());
        body["recovering"] = serde_json::json!({ "servingInSecs": left.as_secs_f64() });
    }
    json_response(status_code(Some(serving)), to_json(&body))
}
