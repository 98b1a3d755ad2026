//! `/v1/health`, `/v1/health/{subsystem}` (the seeds' JSON, 200 when serving and 503 when not)
//! and `/v1/watch` (Server-Sent Events with WatchHealth's semantics).

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::{rejection::QueryRejection, Path, Query, State},
    http::StatusCode,
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
};
use tokio_stream::{wrappers::WatchStream, StreamExt};

use super::{json_answer, query, query::Params, status_code, to_json, Face};
use crate::core::{
    json,
    published::{Follow, Rendition, View},
    scoring::Subsystem,
};

type QueryPairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// The view the report endpoints' parameters ask for.
fn report_view(face: &Face, query: QueryPairs) -> Result<View, query::BadParameter> {
    Params::read(query, query::VIEW)?.view(face.settings.max_listed)
}

/// The system report.
pub async fn system(State(face): State<Face>, query: QueryPairs) -> Response {
    let view = match report_view(&face, query) {
        Ok(view) => view,
        Err(bad) => return bad.into_response(),
    };
    let state = face.engine.state();
    let status = status_code(state.serving.get("").copied());
    let rendition = (view == View::default()).then_some(Rendition::JsonSystem);
    json_answer(status, &state, rendition, |state| {
        to_json(&json::system(&state.system, view))
    })
}

/// One subsystem's report.
pub async fn subsystem(
    State(face): State<Face>,
    Path(key): Path<String>,
    query: QueryPairs,
) -> Response {
    let subsystem: Subsystem = match key.parse() {
        Ok(subsystem) => subsystem,
        Err(problem) => return super::error(StatusCode::NOT_FOUND, problem, Some("subsystem")),
    };
    let view = match report_view(&face, query) {
        Ok(view) => view,
        Err(bad) => return bad.into_response(),
    };
    let state = face.engine.state();
    let status = status_code(state.serving.get(subsystem.key()).copied());
    let rendition = (view == View::default()).then_some(Rendition::JsonSubsystem(subsystem));
    json_answer(status, &state, rendition, |state| {
        to_json(&json::report(state.report(subsystem), view))
    })
}

/// How often an idle event stream sends a comment, so proxies do not close it.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `report` events: the current state at once, then one each time the followed reports'
/// status, score or issue set changes. A slow reader skips to the newest state. The stream ends
/// when healthscore shuts down.
pub async fn watch(State(face): State<Face>, query: QueryPairs) -> Response {
    let allowed = [
        "subsystems",
        "min_severity",
        "entities",
        "max_entities",
        "max_issues",
    ];
    let read = Params::read(query, &allowed)
        .and_then(|params| Ok((params.subsystems()?, params.view(face.settings.max_listed)?)));
    let (subsystems, view) = match read {
        Ok(read) => read,
        Err(bad) => return bad.into_response(),
    };
    let slot = match face.settings.watch_slots.open() {
        Ok(slot) => slot,
        Err(full) => return super::error(StatusCode::TOO_MANY_REQUESTS, full.to_string(), None),
    };
    let mut follow = Follow::new(subsystems, view.min_severity);
    let events = WatchStream::new(face.engine.subscribe()).filter_map(move |state| {
        // Held as long as the stream is.
        let _slot = &slot;
        if !follow.is_news(&state) {
            return None;
        }
        let data = match follow.partial(&state) {
            Some(partial) => serde_json::to_string(&json::system(&partial, view)),
            None => serde_json::to_string(&json::system(&state.system, view)),
        }
        .expect("reports always serialize to JSON");
        let event = Event::default()
            .event("report")
            .id(state.stamp.revision.to_string())
            .data(data);
        Some(Ok::<_, Infallible>(event))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

/// `/v1/history`: status transitions (newest first) and uptime shares.
pub async fn history(State(face): State<Face>, query: QueryPairs) -> Response {
    let query = match Params::read(query, &["subsystem", "since", "limit"])
        .and_then(|params| params.history(face.settings.max_listed))
    {
        Ok(query) => query,
        Err(bad) => return bad.into_response(),
    };
    let answer = face.engine.history_answer(&query);
    super::json_response(StatusCode::OK, to_json(&answer.json()))
}
