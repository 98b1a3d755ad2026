//! The composition root: config in; the engine, the sources and the faces started; and the one
//! shutdown sequence for all of them. Nothing else spawns long-lived tasks or threads.

use std::{future::Future, time::Duration};

use tokio::{net::TcpListener, sync::oneshot};

use crate::{
    config::Config,
    engine::Engine,
    faces::{self, budget::Budget, listener::Incoming},
    sources::{host::HostSource, Source, SourceError},
    store::Store,
};

/// How long an answer waits for its share of the answer budget before RESOURCE_EXHAUSTED.
const ANSWER_WAIT: Duration = Duration::from_secs(1);

/// Why the service could not run.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
}

/// Runs the service as configured on `listener` until `shutdown` completes, then:
/// every probe-facing name turns NOT_SERVING (watchers are told); the faces keep answering for
/// `server.shutdown_grace_secs` so probes and load balancers move traffic away; the engine
/// stops (ending every watch stream); the faces stop accepting and drain the open calls for at
/// most `server.drain_timeout_secs`, after which the remaining connections are dropped.
pub async fn run(
    listener: TcpListener,
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    let engine = Engine::start(
        Store::new(config.limits.clone(), config.policy()),
        config.health.not_serving_at,
    );
    if config.host.enabled {
        HostSource::new(&config.host, &config.limits)
            .start(&engine)
            .await?;
    }
    let (drain_started, draining) = oneshot::channel();
    let sequence = {
        let engine = engine.clone();
        let grace = config.shutdown_grace();
        async move {
            shutdown.await;
            tracing::info!(?grace, "shutting down: every health name is NOT_SERVING");
            // An error means the engine already stopped, which is where this is heading anyway.
            let _ = engine.begin_shutdown().await;
            tokio::time::sleep(grace).await;
            engine.stop().await;
            tracing::info!("grace period over: draining connections");
            let _ = drain_started.send(());
        }
    };
    serve_until_drained(
        faces::grpc::serve(
            Incoming::new(listener, config.accepting()),
            engine,
            faces::grpc::Settings {
                limits: config.limits.clone(),
                max_concurrent_streams: config.server.max_concurrent_streams,
                max_watch_streams: config.server.max_watch_streams,
                answers: Budget::new(config.server.max_answer_bytes_in_flight, ANSWER_WAIT),
            },
            sequence,
        ),
        draining,
        config.drain_timeout(),
    )
    .await
}

/// Runs `server` to its end, but no longer than `deadline` after `draining` fires: a peer that
/// keeps a connection open (idle, or an HTTP/2 peer that stopped answering) must not keep the
/// process from exiting before the orchestrator kills it.
async fn serve_until_drained(
    server: impl Future<Output = Result<(), tonic::transport::Error>>,
    draining: oneshot::Receiver<()>,
    deadline: Duration,
) -> Result<(), AppError> {
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return Ok(result?),
        _ = draining => {}
    }
    match tokio::time::timeout(deadline, server).await {
        Ok(result) => Ok(result?),
        Err(_) => {
            tracing::warn!(
                ?deadline,
                "drain deadline passed: closing the connections still open"
            );
            Ok(())
        }
    }
}
