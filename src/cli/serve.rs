//! `healthscore serve`: the server, its logging and its signals.

use std::{io::IsTerminal, net::SocketAddr, process::ExitCode};

use anyhow::Context;
use tokio::net::TcpListener;

use crate::{
    app,
    config::{Config, LogFormat},
};

use super::ConfigArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on [default: 127.0.0.1:50051, or server.listen from the config].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    #[command(flatten)]
    config: ConfigArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(args.config.config.as_deref(), std::env::vars())?;
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    init_logging(&config)?;
    crate::allocator::tune_for_server();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config))?;
    Ok(ExitCode::SUCCESS)
}

fn init_logging(config: &Config) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log.level))
        .with_context(|| {
            format!(
                "config key log.level: {:?} is not a valid filter",
                config.log.level
            )
        })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none());
    match config.log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    // Installed before anything can be observed, so even an immediate SIGTERM drains.
    let mut signals = Termination::install().context("cannot watch SIGTERM and SIGINT")?;
    // SIGHUP reloads secrets; its default action would end the process. Tokio keeps a handler
    // installed for the rest of the process once one is registered, so the app's reloader
    // (registered later) cannot miss an early one and the process never dies of it.
    drop(crate::faces::reload::hangups());
    let listen = config.server.listen;
    let grpc = TcpListener::bind(listen).await.with_context(|| {
        format!("cannot listen on {listen} (flag --listen, config key server.listen)")
    })?;
    let http =
        match config.http.enabled {
            false => None,
            true => {
                let listen = config.http.listen;
                Some(TcpListener::bind(listen).await.with_context(|| {
                    format!("cannot listen on {listen} (config key http.listen)")
                })?)
            }
        };
    let probes =
        match config.probes.listen {
            None => None,
            Some(listen) => Some(TcpListener::bind(listen).await.with_context(|| {
                format!("cannot listen on {listen} (config key probes.listen)")
            })?),
        };
    let http_address = http
        .as_ref()
        .and_then(|l| l.local_addr().ok())
        .map_or_else(|| "off".to_owned(), |addr| addr.to_string());
    tracing::info!(
        address = %grpc.local_addr().unwrap_or(listen),
        http = %http_address,
        host_sampler = config.host.enabled,
        host_interval_secs = config.host.interval_secs,
        "healthscore serving gRPC (HealthReports, grpc.health.v1, reflection) and HTTP"
    );
    let shutdown = async move {
        signals.recv().await;
        // A second signal during the grace period means "now": skip the drain.
        tokio::spawn(async move {
            signals.recv().await;
            tracing::warn!("second signal: exiting without draining");
            std::process::exit(1);
        });
    };
    app::run(app::Listeners { grpc, http, probes }, &config, shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}

/// SIGTERM (what Kubernetes and systemd send) and SIGINT (Ctrl-C), registered when installed.
struct Termination {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl Termination {
    fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                terminate: signal(SignalKind::terminate())?,
                interrupt: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Completes on the next signal.
    async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
        #[cfg(not(unix))]
        {
            // Without Ctrl-C support there is no way to stop gracefully; wait forever.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}
