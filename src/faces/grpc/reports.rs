//! `healthscore.v1.HealthReports`: reads of the published state, WatchHealth streams, and the
//! ingestion RPCs that hand validated pushes to the engine.

use std::{future::Future, pin::Pin, sync::Arc, time::SystemTime};

use prost::Message;
use tokio_stream::{wrappers::WatchStream, Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::{
    super::{admission::Admission, auth::Grant, budget::Budget, WatchSlots},
    convert,
    engine_wait::waiting_on_engine,
};
use crate::{
    core::{
        ingest::{name, Limits},
        published::{selection, Follow, Published, Rendition, View},
        scoring::Subsystem,
        subsystem::for_each_subsystem,
    },
    engine::{Engine, EngineError},
    proto::{framed, v1, Envelope, SystemReportEnvelope},
    sources::push,
    telemetry::{PushResult, Telemetry},
};

pub struct Reports {
    engine: Engine,
    limits: Limits,
    admission: Arc<Admission>,
    watch_slots: WatchSlots,
    answers: Budget,
    telemetry: Arc<Telemetry>,
}

impl Reports {
    pub fn new(
        engine: Engine,
        limits: Limits,
        admission: Arc<Admission>,
        watch_slots: WatchSlots,
        answers: Budget,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        Self {
            engine,
            limits,
            admission,
            watch_slots,
            answers,
            telemetry,
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

    async fn push(
        &self,
        request: Request<v1::ReportMetricsRequest>,
    ) -> Result<Response<v1::ReportMetricsResponse>, Status> {
        let grant = request.extensions().get::<Grant>().cloned();
        let request = request.into_inner();
        let entity_count = u32::try_from(push::entity_count(&request)).unwrap_or(u32::MAX);
        // The name and the admission first: a refused push costs no conversion.
        let admitted = match name("source", &request.source, self.limits.max_name_bytes) {
            Ok(source) => self.admission.admit_push(grant.as_ref(), &source).await,
            Err(error) => Err(error),
        };
        let result = match admitted
            .and_then(|()| push::from_wire(request, &self.limits, SystemTime::now()))
        {
            Ok(push) => self.engine.push(push).await,
            Err(error) => Err(EngineError::Invalid(error)),
        };
        self.telemetry.push(PushResult::of(&result));
        let outcome = result?;
        Ok(Response::new(v1::ReportMetricsResponse {
            applied: outcome.applied,
            entity_count,
            system_status: v1::Status::from(outcome.system_status).into(),
            revision: outcome.revision,
        }))
    }

    async fn forget(
        &self,
        request: Request<v1::ForgetSourceRequest>,
    ) -> Result<Response<v1::ForgetSourceResponse>, Status> {
        let source = name(
            "source",
            &request.get_ref().source,
            self.limits.max_name_bytes,
        )?;
        Admission::admit_write(request.extensions().get::<Grant>(), &source)?;
        let (forgotten, revision) = self.engine.forget(source).await?;
        Ok(Response::new(v1::ForgetSourceResponse {
            forgotten,
            revision,
        }))
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

/// The system report of one state as `view` asks for it: the encoding shared by every reader of
/// the state for the default view (with or without entities), a message built for this reader
/// otherwise.
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
    Envelope::Framed(state.rendition(rendition, |state| {
        framed(&Envelope::built(convert::system_report(
            &state.system,
            state.stamp,
            view,
        )))
    }))
}

/// What a WatchHealth stream sends for a state that is news to `follow`.
fn watch_message(state: &Published, follow: &Follow, view: View) -> SystemReportEnvelope {
    match follow.partial(state) {
        None => system_envelope(state, view),
        Some(partial) => Envelope::built(convert::system_report(&partial, state.stamp, view)),
    }
}

type HealthReportStream =
    Pin<Box<dyn Stream<Item = Result<v1::WatchHealthResponse, Status>> + Send>>;

/// The per-subsystem reads, written out as `async_trait` would expand them (it cannot see
/// inside a macro's output).
macro_rules! subsystem_rpcs {
    ($($subsystem:ident [$method:ident $request:ident $response:ident];)+) => {$(
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
    for_each_subsystem!(subsystem_rpcs: variant report);

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
        let selected = selection(&request.subsystems, "subsystems")?;
        let view = convert::view(request.options.as_ref(), self.limits.max_listed)?;
        let slot = self.watch_slots.open()?;
        let mut follow = Follow::new(selected, view.min_severity);
        // WatchStream yields the current state first, then only the newest state after each
        // change: a slow reader skips states instead of queueing them.
        let stream = WatchStream::new(self.engine.subscribe()).filter_map(move |state| {
            // Held as long as the stream is.
            let _slot = &slot;
            follow
                .is_news(&state)
                .then(|| Ok(watch_message(&state, &follow, view)))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn report_metrics(
        &self,
        request: Request<v1::ReportMetricsRequest>,
    ) -> Result<Response<v1::ReportMetricsResponse>, Status> {
        waiting_on_engine(self.push(request)).await
    }

    async fn get_history(
        &self,
        request: Request<v1::GetHistoryRequest>,
    ) -> Result<Response<v1::GetHistoryResponse>, Status> {
        let query = convert::history_query(request.get_ref(), self.limits.max_listed)?;
        let answer = self.engine.history_answer(&query);
        self.answer(v1::GetHistoryResponse::from(&answer)).await
    }

    async fn forget_source(
        &self,
        request: Request<v1::ForgetSourceRequest>,
    ) -> Result<Response<v1::ForgetSourceResponse>, Status> {
        waiting_on_engine(self.forget(request)).await
    }
}
