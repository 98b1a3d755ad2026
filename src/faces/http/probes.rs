//! `/livez` and `/readyz`: the grpc.health.v1 statuses for httpGet probes and load balancers
//! that cannot speak gRPC. From the first moment of shutdown `/readyz` answers 503 while
//! `/livez` stays 200 until the listener closes, as the Kubernetes apiserver does: a liveness
//! probe during the drain must not get the container killed early.

use std::{fmt::Write, time::Instant};

use axum::{
    extract::{rejection::QueryRejection, Query, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
};

use super::{json_response, query::Params, status_code, to_json};
use crate::{
    core::{
        fleet::Verdict,
        probes::LIVENESS_SERVICE,
        published::{Gate, Hold, Published, Serving},
        scoring::Subsystem,
    },
    engine::Engine,
};

/// `/livez` and `/readyz` alone, for the probe-only listener.
pub fn router(engine: Engine) -> axum::Router {
    axum::Router::new()
        .route("/livez", axum::routing::get(livez))
        .route("/readyz", axum::routing::get(readyz))
        .with_state(engine)
}

/// 200 while the process serves.
pub async fn livez(State(engine): State<Engine>) -> Response {
    let serving = engine.serving(LIVENESS_SERVICE);
    (status_code(serving), "ok\n").into_response()
}

/// The status of `service` (default `""`, the whole system): 200 SERVING, 503 NOT_SERVING,
/// 404 for a name healthscore does not know. `exclude` (repeatable) leaves subsystems out of
/// this answer; `verbose` answers one line per subsystem considered, as the Kubernetes
/// apiserver's `/readyz?verbose` does.
pub async fn readyz(
    State(engine): State<Engine>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let params =
        match Params::read_repeating(query, &["service", "verbose", "exclude"], &["exclude"]) {
            Ok(params) => params,
            Err(bad) => return bad.into_response(),
        };
    let (excluded, verbose) = match (params.subsystem_keys("exclude"), params.switch("verbose")) {
        (Ok(excluded), Ok(verbose)) => (excluded, verbose),
        (Err(bad), _) | (_, Err(bad)) => return bad.into_response(),
    };
    let service = params.get("service").unwrap_or_default();
    let state = engine.state();
    let Some(serving) = state
        .probes
        .serving_without(service, &excluded, &state.system)
    else {
        return super::error(
            StatusCode::NOT_FOUND,
            format!("unknown service {service:?}"),
            Some("service"),
        );
    };
    let status = status_code(Some(serving));
    if verbose {
        let body = verbose_lines(&state, service, &excluded, serving, Instant::now());
        return (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            body,
        )
            .into_response();
    }
    let mut body = serde_json::json!({
        "service": service,
        "status": match serving {
            Serving::Serving => "SERVING",
            Serving::NotServing => "NOT_SERVING",
        },
    });
    match state.probes.gate {
        Some(Gate::Starting) => body["starting"] = true.into(),
        Some(Gate::ShuttingDown) => body["shuttingDown"] = true.into(),
        None => {}
    }
    let now = Instant::now();
    match state.probes.holds.get(service) {
        Some(Hold::Failing {
            since,
            not_serving_at,
        }) => {
            body["failingForSecs"] = now.saturating_duration_since(*since).as_secs_f64().into();
            if serving == Serving::Serving && *not_serving_at > now {
                body["notServingInSecs"] = (*not_serving_at - now).as_secs_f64().into();
            }
        }
        // Held NOT_SERVING by damping (health.recover_after) though the reports serve again.
        Some(Hold::Recovering { serving_at }) => {
            let left = serving_at.saturating_duration_since(now);
            body["recovering"] = serde_json::json!({ "servingInSecs": left.as_secs_f64() });
        }
        None => {}
    }
    json_response(status, to_json(&body))
}

/// `[+]key ok` or `[-]key failed: CODES` per subsystem `service` reads, what holds or gates
/// it, then the verdict.
fn verbose_lines(
    state: &Published,
    service: &str,
    excluded: &[Subsystem],
    serving: Serving,
    now: Instant,
) -> String {
    let mut out = String::new();
    let probes = &state.probes;
    if let Some(probe) = probes.policy.name(service) {
        for &member in &probe.members {
            let key = member.key();
            let codes = probe.failing_codes(state.report(member));
            let names: Vec<&str> = codes.iter().map(|code| code.as_str()).collect();
            let _ = match (excluded.contains(&member), names.is_empty()) {
                (true, true) => writeln!(out, "[+]{key} excluded: ok"),
                (true, false) => writeln!(out, "[+]{key} excluded: {}", names.join(",")),
                (false, true) => writeln!(out, "[+]{key} ok"),
                (false, false) => writeln!(out, "[-]{key} failed: {}", names.join(",")),
            };
        }
    }
    let _ = match probes.gate {
        Some(Gate::Starting) => writeln!(out, "[-]startup failed: waiting for [health.startup]"),
        Some(Gate::ShuttingDown) => writeln!(out, "[-]shutdown failed: shutting down"),
        None => Ok(()),
    };
    let _ = match probes.holds.get(service) {
        Some(Hold::Failing { not_serving_at, .. })
            if serving == Serving::Serving && *not_serving_at > now =>
        {
            let left = (*not_serving_at - now).as_secs_f64();
            writeln!(
                out,
                "[+]fail_after ok: NOT_SERVING in {left:.1}s if still failing"
            )
        }
        Some(Hold::Recovering { serving_at }) if serving == Serving::NotServing => {
            let left = serving_at.saturating_duration_since(now).as_secs_f64();
            writeln!(
                out,
                "[-]recover_after failed: SERVING in {left:.1}s if still serving"
            )
        }
        _ => Ok(()),
    };
    if let Some(fleet) = &probes.fleet {
        let _ = match fleet.verdicts.get(service) {
            Some(Verdict::Held { failing, peers }) if fleet.held.contains_key(service) => writeln!(
                out,
                "[+]fleet held: {failing} of {peers} instances fail it, SERVING while the failure is shared"
            ),
            Some(Verdict::Held { failing, peers } | Verdict::Local { failing, peers }) => {
                writeln!(out, "[+]fleet ok: {failing} of {peers} instances fail it")
            }
            Some(Verdict::Unavailable { reason }) => {
                writeln!(out, "[-]fleet unavailable: {reason}; deciding locally")
            }
            None => Ok(()),
        };
    }
    let _ = match serving {
        Serving::Serving => writeln!(out, "readyz check passed"),
        Serving::NotServing => writeln!(out, "readyz check failed"),
    };
    out
}
