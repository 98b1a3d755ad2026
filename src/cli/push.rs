//! `healthscore push`: snapshots from JSON to ReportMetrics, for scripts and apps that cannot
//! link gRPC.

use std::{io::Read, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context;
use serde::Deserialize;

use crate::proto::{
    self,
    v1::{self, health_reports_client::HealthReportsClient},
};

use super::connect::{parse_duration, Target};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// JSON file of snapshots, or - for stdin. Keys are the proto's JSON names:
    /// {"datasources": [{"name": "mainDB", "active": 31, "max": 32}], "webServers": [...]}.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Who is reporting (e.g. the pod name).
    #[arg(long, value_name = "NAME")]
    source: String,
    /// How long the values stay fresh (e.g. 30s); the server's default when left out.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    ttl: Option<Duration>,
    /// Optional increasing number; an older or repeated one is not applied.
    #[arg(long)]
    sequence: Option<u64>,
    #[command(flatten)]
    target: Target,
}

/// The snapshot lists of a ReportMetricsRequest, as JSON.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct Snapshots {
    datasources: Vec<v1::DatasourceSnapshot>,
    caches: Vec<v1::CacheSnapshot>,
    watchers: Vec<v1::WatcherSnapshot>,
    schedulers: Vec<v1::SchedulerSnapshot>,
    executors: Vec<v1::ExecutorSnapshot>,
    web_servers: Vec<v1::WebServerSnapshot>,
    runtimes: Vec<v1::RuntimeSnapshot>,
    performance: Vec<v1::PerformanceSnapshot>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (origin, text) = if args.file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read stdin")?;
        ("stdin".to_owned(), text)
    } else {
        let origin = args.file.display().to_string();
        let text =
            std::fs::read_to_string(&args.file).with_context(|| format!("cannot read {origin}"))?;
        (origin, text)
    };
    let snapshots: Snapshots = serde_json::from_str(&text)
        .with_context(|| format!("{origin} is not a valid snapshot file"))?;
    let request = v1::ReportMetricsRequest {
        source: args.source.clone(),
        sequence: args.sequence.unwrap_or(0),
        ttl: args.ttl.map(|ttl| prost_types::Duration {
            seconds: i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(ttl.subsec_nanos()).unwrap_or(0),
        }),
        datasources: snapshots.datasources,
        caches: snapshots.caches,
        watchers: snapshots.watchers,
        schedulers: snapshots.schedulers,
        executors: snapshots.executors,
        web_servers: snapshots.web_servers,
        runtimes: snapshots.runtimes,
        performance: snapshots.performance,
    };
    let runtime = super::client_runtime()?;
    let response = runtime.block_on(async {
        let mut client = HealthReportsClient::new(args.target.connect().await?);
        client
            .report_metrics(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| anyhow::anyhow!("{} ({:?})", status.message(), status.code()))
    })?;
    let status = proto::status(response.system_status, "system_status")
        .map_or("unknown", crate::scoring::Status::as_str);
    if response.applied {
        println!(
            "applied {} entities from {}: system {status}, revision {}",
            response.entity_count, args.source, response.revision
        );
    } else {
        println!(
            "not applied: sequence {} is not newer than the last one from {} (system {status}, revision {})",
            args.sequence.unwrap_or(0),
            args.source,
            response.revision
        );
    }
    Ok(ExitCode::SUCCESS)
}
