//! The composition root: config in; the engine, the sources and the faces started; and the one
//! shutdown sequence for all of them. Nothing else spawns long-lived tasks or threads.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    alerts::Alerter,
    config::Config,
    engine::Engine,
    faces::{
        self,
        admission::Admission,
        auth::Tokens,
        budget::Budget,
        listener::Incoming,
        reload::Reloadable,
        tls::{Alpn, Certificates},
        WatchSlots,
    },
    history::History,
    setting::ConfigError,
    sources::{
        discovery::Discovery,
        fleet::FleetSource,
        host::HostSource,
        otlp::Otlp,
        scrape::{Scrape, ScrapeSource},
        Source, SourceError,
    },
    store::Store,
    telemetry::Telemetry,
};

/// How long an answer waits for its share of the answer budget before RESOURCE_EXHAUSTED.
const ANSWER_WAIT: Duration = Duration::from_secs(1);

/// Why the service could not run.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("cannot start the engine: {0}")]
    Engine(std::io::Error),
    #[error("the gRPC server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
}

/// The sockets the faces serve on, bound by the caller (so that errors name its flags).
pub struct Listeners {
    pub grpc: TcpListener,
    /// `None` when `http.enabled` is false.
    pub http: Option<TcpListener>,
    /// The probe-only listener, when `probes.listen` is set.
    pub probes: Option<TcpListener>,
}

/// Runs the service as configured on `listeners` until `shutdown` completes, then:
/// every probe-facing name turns NOT_SERVING (gRPC watchers are told, `/livez` and `/readyz`
/// answer 503); the faces keep answering for `server.shutdown_grace_secs` so probes and load
/// balancers move traffic away; the engine stops (ending every watch stream); the faces stop
/// accepting and drain the open calls for at most `server.drain_timeout_secs`, after which the
/// remaining connections are dropped.
pub async fn run(
    listeners: Listeners,
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    let certificates = Certificates::load(&config.tls)?;
    let tokens = Tokens::load(&config.auth)?;
    let mut secrets: Vec<Arc<dyn Reloadable>> = Vec::new();
    if let Some(certificates) = &certificates {
        secrets.push(Arc::new(certificates.clone()));
    }
    if let Some(tokens) = &tokens {
        secrets.push(tokens.clone());
    }
    // Everything that runs beside the faces, stopped together when the faces start draining
    // (after the engine has stopped) and awaited before run returns.
    let drain = CancellationToken::new();
    let tasks = Tasks {
        tracker: TaskTracker::new(),
        stop: drain.clone(),
    };
    let telemetry = Telemetry::new();
    // Always, and before serving: without a handler, SIGHUP's default action ends the process.
    tasks.spawn(faces::reload::run(
        secrets,
        faces::reload::hangups(),
        telemetry.clone(),
    ));
    tasks.spawn(crate::allocator::return_freed_memory());
    let (history, journal) = History::open(&config.history);
    let engine = Engine::start(
        Store::new(config.limits.clone(), config.policy()),
        config.engine(history, journal)?,
    )
    .map_err(AppError::Engine)?;
    if let Some(fleet) = &config.fleet {
        let source = FleetSource::new(fleet, &config.http.listen.to_string())?;
        tasks.spawn(source.run(engine.clone()));
    }
    if config.host.enabled {
        let host = HostSource::new(&config.host, &config.limits, telemetry.clone());
        tasks.spawn(host.start(&engine).await?);
    }
    for (index, target) in config.scrape.iter().enumerate() {
        let credentials = target.credentials(&format!("scrape[{index}]"))?;
        let (target, limits) = (target.clone(), config.limits.clone());
        let discovery = Discovery::new(
            target.clone(),
            credentials.clone(),
            limits.clone(),
            telemetry.clone(),
        );
        let running = match discovery {
            Some(discovery) => discovery.start(&engine).await?,
            None => {
                let endpoint = target.endpoint();
                let scrape = Scrape::new(target, credentials, None, limits, telemetry.clone());
                ScrapeSource::new(scrape, endpoint).start(&engine).await?
            }
        };
        tasks.spawn(running);
    }
    if let Some(alerting) = &config.alerting {
        let alerter = Alerter::new(
            alerting,
            &config.http.listen.to_string(),
            config.health.fail_after.0,
            telemetry.clone(),
        )?;
        tasks.spawn(alerter.run(engine.clone()));
    }
    let watch_slots = WatchSlots::new(
        config.server.max_watch_streams,
        "server.max_watch_streams",
        telemetry.clone(),
    );
    // grpc.health.v1 Watch needs no token: its own slots, so anonymous probes cannot take the
    // token holders' ones.
    let probe_watch_slots = WatchSlots::new(
        config.server.max_probe_watch_streams,
        "server.max_probe_watch_streams",
        telemetry.clone(),
    );
    let admission = Arc::new(Admission::new(
        config.server.max_concurrent_requests,
        &config.limits,
    ));
    let otlp = config.otlp.enabled.then(|| {
        Arc::new(Otlp::new(
            engine.clone(),
            config.limits.clone(),
            Duration::from_secs(config.otlp.ttl_secs),
            telemetry.clone(),
        ))
    });
    let incoming = |listener| Incoming::new(listener, config.accepting(), drain.clone());
    let grpc = faces::grpc::serve(
        incoming(listeners.grpc).with_tls(certificates.clone(), Alpn::Grpc),
        engine.clone(),
        faces::grpc::Settings {
            limits: config.limits.clone(),
            max_concurrent_streams: config.server.max_concurrent_streams,
            watch_slots: watch_slots.clone(),
            probe_watch_slots: probe_watch_slots.clone(),
            answers: Budget::new(config.server.max_answer_bytes_in_flight, ANSWER_WAIT),
            telemetry: telemetry.clone(),
            otlp: otlp.clone(),
            tokens: tokens.clone(),
            admission: admission.clone(),
        },
        drain.clone().cancelled_owned(),
    );
    let probes = listeners.probes.map(|listener| {
        faces::probe_port::serve(
            incoming(listener),
            engine.clone(),
            probe_watch_slots,
            drain.clone().cancelled_owned(),
        )
    });
    let http_engine = engine.clone();
    let http_incoming = listeners.http.map(incoming);
    let http_drain = drain.clone();
    let http = async move {
        let Some(incoming) = http_incoming else {
            return Ok(());
        };
        let settings = faces::http::Settings {
            max_listed: config.limits.max_listed,
            watch_slots,
            telemetry,
            otlp,
            tokens,
            admission,
            mcp: config
                .mcp
                .enabled
                // MCP's event streams end when draining starts, as the other faces' do with
                // the engine.
                .then(|| {
                    faces::mcp::http_service(http_engine.clone(), &config.mcp, http_drain.clone())
                }),
        };
        faces::http::serve(
            incoming.with_tls(certificates, Alpn::Http),
            http_engine,
            settings,
            faces::http::Timeouts {
                header: Duration::from_secs(config.server.handshake_timeout_secs),
                body: Duration::from_secs(config.server.body_timeout_secs),
            },
            http_drain,
        )
        .await;
        Ok(())
    };
    let probes = async {
        match probes {
            Some(probes) => probes.await.map_err(AppError::from),
            None => Ok(()),
        }
    };
    let servers = async {
        tokio::try_join!(async { grpc.await.map_err(AppError::from) }, http, probes).map(drop)
    };
    let sequence = shutdown_sequence(engine, config.shutdown_grace(), shutdown, drain);
    let served = serve_until_drained(servers, sequence, config.drain_timeout()).await;
    tasks.stop().await;
    served
}

/// The tasks the app runs beside the faces: sources, the fleet guard, alerts, reloads, memory
/// trimming. Each runs until it ends or `stop` is cancelled.
struct Tasks {
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl Tasks {
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let stop = self.stop.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = task => {}
            }
        });
    }

    /// Stops every task and waits for them to end.
    async fn stop(self) {
        self.stop.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// Waits for `shutdown`, turns every probe-facing name NOT_SERVING, keeps serving for `grace`,
/// stops the engine and tells the faces to drain.
async fn shutdown_sequence(
    engine: Engine,
    grace: Duration,
    shutdown: impl Future<Output = ()>,
    drain: CancellationToken,
) {
    shutdown.await;
    tracing::info!(?grace, "shutting down: every health name is NOT_SERVING");
    // An error means the engine already stopped, which is where this is heading anyway.
    let _ = engine.begin_shutdown().await;
    tokio::time::sleep(grace).await;
    engine.stop().await;
    tracing::info!("grace period over: draining connections");
    drain.cancel();
}

/// Runs `servers` to their end, but no longer than `deadline` after `sequence` has told them to
/// drain: a peer that keeps a connection open (idle, or an HTTP/2 peer that stopped answering)
/// must not keep the process from exiting before the orchestrator kills it.
async fn serve_until_drained(
    servers: impl Future<Output = Result<(), AppError>>,
    sequence: impl Future<Output = ()>,
    deadline: Duration,
) -> Result<(), AppError> {
    tokio::pin!(servers);
    tokio::select! {
        result = &mut servers => return result,
        () = sequence => {}
    }
    match tokio::time::timeout(deadline, servers).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!(
                ?deadline,
                "drain deadline passed: closing the connections still open"
            );
            Ok(())
        }
    }
}
