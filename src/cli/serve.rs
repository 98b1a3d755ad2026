//! `healthscore serve`: the server, its logging and its signals.

use std::{io::IsTerminal, net::SocketAddr, process::ExitCode};

use anyhow::Context;
use tokio::net::TcpListener;

use crate::{
    config::{Config, LogFormat},
    server,
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
    let listen = config.server.listen;
    let listener = TcpListener::bind(listen).await.with_context(|| {
        format!("cannot listen on {listen} (flag --listen, config key server.listen)")
    })?;
    tracing::info!(
        address = %listener.local_addr().unwrap_or(listen),
        host_sampler = config.host.enabled,
        host_interval_secs = config.host.interval_secs,
        "healthscore serving gRPC (HealthReports, grpc.health.v1, reflection)"
    );
    server::run(listener, &config, termination()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Completes on SIGTERM (what Kubernetes sends) or SIGINT (Ctrl-C).
async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGTERM; only Ctrl-C stops the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
