//! `/v1/health`, `/v1/health/{subsystem}` (the seeds' JSON, 200 when serving and 503 when not)
//! and `/v1/watch` (Server-Sent Events with WatchHealth's semantics).

use std::{
    collections::VecDeque,
    convert::Infallible,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
    time::Duration,
};

use axum::{
    extract::{rejection::QueryRejection, Path, Query, RawQuery, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use futures_util::StreamExt;
use http_body::Frame;
use tokio_stream::wrappers::WatchStream;

use super::{json_answer, query, query::Params, status_code, to_json, Face};
use crate::{
    core::{
        json,
        published::{Follow, Published, Rendition, View},
        scoring::Subsystem,
    },
    faces::{
        arguments::{from_query, HistoryArgs},
        WatchSlot,
    },
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
    let status = status_code(state.probes.serving.get("").copied());
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
    let status = status_code(state.probes.serving.get(subsystem.key()).copied());
    let rendition = (view == View::default()).then_some(Rendition::JsonSubsystem(subsystem));
    json_answer(status, &state, rendition, |state| {
        to_json(&json::report(state.report(subsystem), view))
    })
}

/// How often an event stream sends a comment, so proxies do not close an idle one.
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
    let events = Events {
        states: WatchStream::new(face.engine.subscribe()),
        follow: Follow::new(subsystems, view.min_severity),
        view,
        pending: VecDeque::new(),
        keep_alive: tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE),
        _slot: slot,
    };
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        axum::body::Body::new(events),
    )
        .into_response()
}

/// An event stream's body. An event is written as three chunks: its `event:`, `id:` and
/// `data:` prefix, the report's JSON and the blank line; in the default view the JSON is the
/// state's shared rendition, so a reader (a stalled one too) holds a reference to it, not a
/// copy.
struct Events {
    states: WatchStream<Arc<Published>>,
    follow: Follow,
    view: View,
    /// The chunks of the event being written.
    pending: VecDeque<Bytes>,
    keep_alive: tokio::time::Interval,
    /// Held as long as the stream is.
    _slot: WatchSlot,
}

impl Events {
    fn event(&self, state: &Published) -> [Bytes; 3] {
        let view = self.view;
        let data = match self.follow.partial(state) {
            Some(partial) => to_json(&json::system(&partial, view)),
            None if view == View::default() => state.rendition(Rendition::JsonSystem, |state| {
                to_json(&json::system(&state.system, view))
            }),
            None => to_json(&json::system(&state.system, view)),
        };
        // Compact JSON has no line breaks, so it is one `data:` line.
        let head = format!("event: report\nid: {}\ndata: ", state.stamp.revision);
        [head.into(), data, Bytes::from_static(b"\n\n")]
    }
}

impl http_body::Body for Events {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        loop {
            if let Some(chunk) = self.pending.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
            match self.states.poll_next_unpin(cx) {
                Poll::Ready(Some(state)) => {
                    if self.follow.is_news(&state) {
                        let event = self.event(&state);
                        self.pending.extend(event);
                        self.keep_alive.reset();
                    }
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {
                    ready!(self.keep_alive.poll_tick(cx));
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b":\n\n")))));
                }
            }
        }
    }
}

/// `/v1/history`: status transitions (newest first) and uptime shares.
pub async fn history(State(face): State<Face>, RawQuery(query): RawQuery) -> Response {
    let query = match from_query::<HistoryArgs>(query.as_deref().unwrap_or_default()) {
        Ok(args) => args.query(face.settings.max_listed),
        Err(bad) => return query::BadParameter::from(bad).into_response(),
    };
    let answer = face.engine.history_answer(&query);
    super::json_response(StatusCode::OK, to_json(&answer.json()))
}
