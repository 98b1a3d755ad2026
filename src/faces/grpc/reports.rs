//! `healthscore.v1.HealthReports`: reads of the published state, WatchHealth streams, and the
//! ingestion RPCs that hand validated pushes to the engine.

use std::{collections::BTreeSet, future::Future, pin::Pin, sync::Arc, time::SystemTime};

use prost::Message;
use tokio::sync::Semaphore;
use tokio_stream::{wrappers::WatchStream, Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::{
    super::budget::Budget,
    convert,
    proto::{v1, Envelope, SystemReportEnvelope},
};
use crate::{
    core::{
        ingest::{name, FieldError, Limits},
        published::{verdict, Published, Rendition, View},
        scoring::{system_report, Subsystem},
        subsystem::for_each_subsystem,
    },
    engine::Engine,
    sources::push,
};

pub struct Reports {
    engine: Engine,
    limits: Limits,
    watch_slots: Arc<Semaphore>,
    answers: Budget,
}

impl Reports {
    pub fn new(
        engine: Engine,
        limits: Limits,
        watch_slots: Arc<Semaphore>,
        answers: Budget,
    ) -> Self {
        Self {
            engine,
            limits,
            watch_slots,
            answers,
        }
    }

    /// `message` as a response holding its share of the answer budget.
    async fn answer<M: Message>(&self, message: M) -> Result<Response<M>, Status> {
        let share = self.answers.take(message.encoded_len()).await.ok_or_else(|| {
            Status::resource_exhausted(
                "too many answer bytes are in flight (server.max_answer_bytes_in_flight); retry later",
            )
        })?;
        let mut response = Response::new(message);
        response.extensions_mut().insert(share);
        Ok(response)
    }

    fn report(
        &self,
        subsystem: Subsystem,
        options: Option<&v1::ReportOptions>,
    ) -> Result<v1::HealthReport, Status> {
        let view = convert::view(options, self.limits.max_listed)?;
        let state = self.engine.state();
        Ok(convert::health_report(
            state.report(subsystem),
            state.stamp,
            view,
        ))
    }
}

/// Which subsystems a WatchHealth follows (every one when the request names none).
fn selection(keys: &[String]) -> Result<Vec<Subsystem>, FieldError> {
    if keys.is_empty() {
        return Ok(Subsystem::ALL.to_vec());
    }
    let mut chosen = BTreeSet::new();
    for (index, key) in keys.iter().enumerate() {
        let subsystem = key
            .parse()
            .map_err(|problem: String| FieldError::new(format!("subsystems[{index}]"), problem))?;
        chosen.insert(subsystem);
    }
    Ok(chosen.into_iter().collect())
}

/// The system report of one state as `view` asks for it: the shared encoding when the view
/// keeps every issue, a message built for this reader otherwise.
fn system_envelope(state: &Published, view: View) -> SystemReportEnvelope {
    let compact = View {
        max_entities: 0,
        ..View::default()
    };
    let rendition = match view {
        _ if view == View::default() => Rendition::ProtoSystem,
        _ if view == compact => Rendition::ProtoSystemCompact,
        _ => return Envelope::built(convert::system_report(&state.system, state.stamp, view)),
    };
    Envelope::Encoded(state.rendition(rendition, |state| {
        convert::system_report(&state.system, state.stamp, view)
            .encode_to_vec()
            .into()
    }))
}

/// The aggregate over the selected subsystems of one published state.
fn watch_message(state: &Published, selected: &[Subsystem], view: View) -> SystemReportEnvelope {
    if selected.len() == Subsystem::ALL.len() {
        system_envelope(state, view)
    } else {
        let partial = system_report(selected.iter().map(|&s| state.report(s)));
        Envelope::built(convert::system_report(&partial, state.stamp, view))
    }
}

type HealthReportStream =
    Pin<Box<dyn Stream<Item = Result<v1::WatchHealthResponse, Status>> + Send>>;

/// The per-subsystem reads, written out as `async_trait` would expand them (it cannot see
/// inside a macro's output).
macro_rules! subsystem_rpcs {
    ($($subsystem:ident $key:literal $field:ident $snapshot:ident
        $method:ident($request:ident) -> $response:ident $(pushed as $wire:ident)?;)+) => {$(
        fn $method<'life0, 'async_trait>(
            &'life0 self,
            request: Request<v1::$request>,
        ) -> Pin<Box<dyn Future<Output = Result<Response<v1::$response>, Status>> + Send + 'async_trait>>
        where
            'life0: 'async_trait,
            Self: 'async_trait,
        {
            let report = self.report(Subsystem::$subsystem, request.get_ref().options.as_ref());
            Box::pin(async move { self.answer(v1::$response { report: Some(report?) }).await })
        }
    )+};
}

#[tonic::async_trait]
impl v1::health_reports_server::HealthReports for Reports {
    for_each_subsystem!(subsystem_rpcs);

    async fn get_system_health(
        &self,
        request: Request<v1::GetSystemHealthRequest>,
    ) -> Result<Response<v1::GetSystemHealthResponse>, Status> {
        let view = convert::view(request.get_ref().options.as_ref(), self.limits.max_listed)?;
        self.answer(system_envelope(&self.engine.state(), view))
            .await
    }

    type WatchHealthStream = HealthReportStream;

    async fn watch_health(
        &self,
        request: Request<v1::WatchHealthRequest>,
    ) -> Result<Response<Self::WatchHealthStream>, Status> {
        let request = request.into_inner();
        let slot = super::watch_slot(&self.watch_slots)?;
        let selected = selection(&request.subsystems)?;
        let view = convert::view(request.options.as_ref(), self.limits.max_listed)?;
        let mut last_sent = None;
        // WatchStream yields the current state first, then only the newest state after each
        // change: a slow reader skips states instead of queueing them.
        let whole_system = selected.len() == Subsystem::ALL.len() && view.min_severity.is_none();
        let stream = WatchStream::new(self.engine.subscribe()).filter_map(move |state| {
            // Held as long as the stream is.
            let _slot = &slot;
            let verdict = if whole_system {
                state.system_verdict
            } else {
                verdict(selected.iter().map(|&s| state.report(s)), view.min_severity)
            };
            if last_sent == Some(verdict) {
                return None;
            }
            last_sent = Some(verdict);
            Some(Ok(watch_message(&state, &selected, view)))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn report_metrics(
        &self,
        request: Request<v1::ReportMetricsRequest>,
    ) -> Result<Response<v1::ReportMetricsResponse>, Status> {
        let push = push::from_wire(request.into_inner(), &self.limits, SystemTime::now())?;
        let entity_count = u32::try_from(push.entity_count()).unwrap_or(u32::MAX);
        let outcome = self.engine.push(push).await?;
        Ok(Response::new(v1::ReportMetricsResponse {
            applied: outcome.applied,
            entity_count,
            system_status: v1::Status::from(outcome.system_status).into(),
            revision: outcome.revision,
        }))
    }

    async fn forget_source(
        &self,
        request: Request<v1::ForgetSourceRequest>,
    ) -> Result<Response<v1::ForgetSourceResponse>, Status> {
        let source = name(
            "source",
            &request.get_ref().source,
            self.limits.max_name_bytes,
        )?;
        let (forgotten, revision) = self.engine.forget(source).await?;
        Ok(Response::new(v1::ForgetSourceResponse {
            forgotten,
            revision,
        }))
    }
}
